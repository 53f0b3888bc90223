//! Identifiers and string literals written into SQL text, per engine: the
//! one place the control store's DDL and the proxy's mirror statements
//! quote what they did not write themselves (schema, table and column
//! names from the catalog, migration ids, key values).
//!
//! Every function here must return text the server reads back as exactly
//! the value given, whatever the value holds: no input can end the quoted
//! token early. Nothing here parses or executes SQL.

/// Which SQL dialect a statement is written in. Lexing rules differ: string
/// escapes, quoted identifiers, comment syntax and identifier case folding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `'..'` without backslash escapes (standard
    /// conforming strings), `E'..'`, `$tag$..$tag$`, nested `/* */`.
    Postgres,
    /// MySQL / MariaDB: `` `ident` ``, `'..'` and `".."` strings with
    /// backslash escapes, `#` and `-- ` comments.
    Mysql,
}

/// PostgreSQL quoting.
pub mod pg {
    /// `name` as a double-quoted identifier (`"` doubled), so a name keeps
    /// its case and may be a key word: catalog names are stored exactly,
    /// and quoting always is simpler than deciding when it is needed.
    pub fn ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// `schema.name` with both parts quoted.
    pub fn qualified(schema: &str, name: &str) -> String {
        format!("{}.{}", ident(schema), ident(name))
    }

    /// `value` as an escape string constant (`E'...'`, backslash and quote
    /// escaped). An `E''` constant means the same whatever
    /// `standard_conforming_strings` says, and like any string constant it
    /// takes the type of the column it is compared with or stored into.
    pub fn literal(value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 3);
        out.push_str("E'");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("''"),
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    }
}

/// MySQL and MariaDB quoting.
pub mod mysql {
    use std::fmt::Write;

    /// `name` as a backquoted identifier (backquote doubled). Backquotes
    /// work under every `sql_mode`, `ANSI_QUOTES` included.
    pub fn ident(name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    /// `database.name` with both parts quoted.
    pub fn qualified(database: &str, name: &str) -> String {
        format!("{}.{}", ident(database), ident(name))
    }

    /// `value` as a character string literal that reads back the same
    /// under every `sql_mode` and client character set. Printable ASCII
    /// without a backslash is written `'...'` with quotes doubled (a
    /// backslash would mean something else under `NO_BACKSLASH_ESCAPES`);
    /// anything else is written as its UTF-8 bytes in hex with the
    /// `_utf8mb4` introducer, which makes it a character string (not a
    /// binary one) that compares under the column's collation.
    pub fn literal(value: &str) -> String {
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'\\');
        if plain {
            return format!("'{}'", value.replace('\'', "''"));
        }
        let mut out = String::with_capacity(value.len() * 2 + 12);
        out.push_str("_utf8mb4 X'");
        for b in value.bytes() {
            // Writing into a String cannot fail.
            let _ = write!(out, "{b:02X}");
        }
        out.push('\'');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes() {
        let cases = [
            (pg::ident("api"), r#""api""#),
            (pg::ident(r#"we"ird"#), r#""we""ird""#),
            (pg::qualified("public", "Api"), r#""public"."Api""#),
            (pg::literal("api_v2"), "E'api_v2'"),
            (pg::literal(r"it's a \ path"), r"E'it''s a \\ path'"),
            (pg::literal("é"), "E'é'"),
            (mysql::ident("key"), "`key`"),
            (mysql::ident("we`ird"), "`we``ird`"),
            (mysql::qualified("app", "api"), "`app`.`api`"),
            (mysql::literal("api_v2"), "'api_v2'"),
            (mysql::literal("it's"), "'it''s'"),
            (mysql::literal(r"a\b"), "_utf8mb4 X'615C62'"),
            (mysql::literal("é"), "_utf8mb4 X'C3A9'"),
            (mysql::literal("tab\there"), "_utf8mb4 X'7461620968657265'"),
            (mysql::literal(""), "''"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
