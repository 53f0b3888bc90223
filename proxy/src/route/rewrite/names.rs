//! Identifiers as each server sees them: how a written name folds, when two
//! names are the same, and how to write a name so the server reads it back
//! unchanged.
//!
//! PostgreSQL folds unquoted identifiers to lower case and compares
//! exactly. MySQL keeps table names and aliases as written (case-sensitive
//! on the usual Linux servers, `lower_case_table_names = 0`) and compares
//! column names case-insensitively.
//!
//! Pure string functions: no IO, no panics.

use sqlparser::ast::Ident;

use crate::route::fingerprint::Dialect;

/// A written identifier's value as the server resolves it.
pub(super) fn fold(dialect: Dialect, ident: &Ident) -> String {
    fold_value(dialect, &ident.value, ident.quote_style)
}

/// [`fold`] for a token's value and quote.
pub(super) fn fold_value(dialect: Dialect, value: &str, quote: Option<char>) -> String {
    match (dialect, quote) {
        (Dialect::Postgres, None) => value.to_ascii_lowercase(),
        _ => value.to_string(),
    }
}

/// Whether two folded column names are the same column.
pub(super) fn same_column(dialect: Dialect, a: &str, b: &str) -> bool {
    match dialect {
        Dialect::Postgres => a == b,
        Dialect::Mysql => a.eq_ignore_ascii_case(b),
    }
}

/// Whether a string literal's value names the table `table` (`'api'`,
/// `'public.api'`, `'"api"'`), as functions taking a table name get it.
/// The statement-shape cache asks this too: a text whose string literal
/// names the source is rewritten by its exact text.
pub(crate) fn text_names_table(value: &str, table: &str) -> bool {
    let value = value.trim_matches('"');
    let name = value.rsplit('.').next().unwrap_or(value).trim_matches('"');
    name.eq_ignore_ascii_case(table)
}

/// An identifier that the server reads back as exactly `name`: bare when it
/// can be, quoted otherwise.
pub(super) fn ident_for(dialect: Dialect, name: &str) -> Ident {
    match dialect {
        Dialect::Postgres if needs_quotes_pg(name) => Ident::with_quote('"', name),
        Dialect::Mysql if needs_quotes_mysql(name) => Ident::with_quote('`', name),
        _ => Ident::new(name),
    }
}

fn needs_quotes_pg(name: &str) -> bool {
    let mut chars = name.chars();
    let plain = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '$'));
    !plain || PG_RESERVED.binary_search(&name).is_ok()
}

fn needs_quotes_mysql(name: &str) -> bool {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.chars().all(|c| c.is_ascii_digit());
    !plain
        || MYSQL_RESERVED
            .binary_search(&name.to_ascii_lowercase().as_str())
            .is_ok()
}

/// PostgreSQL's reserved key words (and those reserved as column names),
/// which must be quoted to be used as column names or aliases. Sorted.
const PG_RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// MySQL / MariaDB reserved words that commonly appear as column names or
/// aliases. Sorted. Not the full list: a name missing here that the server
/// reserves would print bare and fail on the target, which the fail-safe
/// read re-runs on the source.
const MYSQL_RESERVED: &[&str] = &[
    "accessible",
    "add",
    "all",
    "alter",
    "analyze",
    "and",
    "as",
    "asc",
    "before",
    "between",
    "bigint",
    "binary",
    "blob",
    "both",
    "by",
    "call",
    "cascade",
    "case",
    "change",
    "char",
    "character",
    "check",
    "collate",
    "column",
    "condition",
    "constraint",
    "continue",
    "convert",
    "create",
    "cross",
    "cube",
    "cume_dist",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "cursor",
    "database",
    "databases",
    "default",
    "delayed",
    "delete",
    "dense_rank",
    "desc",
    "describe",
    "deterministic",
    "distinct",
    "distinctrow",
    "div",
    "double",
    "drop",
    "dual",
    "each",
    "else",
    "elseif",
    "empty",
    "enclosed",
    "escaped",
    "except",
    "exists",
    "exit",
    "explain",
    "false",
    "fetch",
    "first_value",
    "float",
    "for",
    "force",
    "foreign",
    "from",
    "fulltext",
    "function",
    "generated",
    "get",
    "grant",
    "group",
    "grouping",
    "groups",
    "having",
    "high_priority",
    "if",
    "ignore",
    "in",
    "index",
    "infile",
    "inner",
    "inout",
    "insensitive",
    "insert",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "iterate",
    "join",
    "json_table",
    "key",
    "keys",
    "kill",
    "lag",
    "last_value",
    "lateral",
    "lead",
    "leading",
    "leave",
    "left",
    "like",
    "limit",
    "linear",
    "lines",
    "load",
    "localtime",
    "localtimestamp",
    "lock",
    "long",
    "loop",
    "low_priority",
    "match",
    "maxvalue",
    "mod",
    "modifies",
    "natural",
    "not",
    "nth_value",
    "ntile",
    "null",
    "numeric",
    "of",
    "offset",
    "on",
    "optimize",
    "option",
    "optionally",
    "or",
    "order",
    "out",
    "outer",
    "outfile",
    "over",
    "partition",
    "percent_rank",
    "precision",
    "primary",
    "procedure",
    "purge",
    "range",
    "rank",
    "read",
    "reads",
    "real",
    "recursive",
    "references",
    "regexp",
    "release",
    "rename",
    "repeat",
    "replace",
    "require",
    "resignal",
    "restrict",
    "return",
    "returning",
    "revoke",
    "right",
    "rlike",
    "row",
    "row_number",
    "rows",
    "schema",
    "schemas",
    "select",
    "sensitive",
    "separator",
    "set",
    "show",
    "signal",
    "smallint",
    "spatial",
    "specific",
    "sql",
    "sqlexception",
    "sqlstate",
    "sqlwarning",
    "starting",
    "stored",
    "straight_join",
    "system",
    "table",
    "terminated",
    "then",
    "to",
    "trailing",
    "trigger",
    "true",
    "undo",
    "union",
    "unique",
    "unlock",
    "unsigned",
    "update",
    "usage",
    "use",
    "using",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "values",
    "varbinary",
    "varchar",
    "varying",
    "virtual",
    "when",
    "where",
    "while",
    "window",
    "with",
    "write",
    "xor",
    "zerofill",
];

/// PostgreSQL key words that, written bare, call a function rather than
/// name a column (`SELECT user FROM t` is the current user), so a bare one
/// is never a column reference.
pub(super) fn is_pg_value_keyword(ident: &Ident) -> bool {
    ident.quote_style.is_none()
        && [
            "current_catalog",
            "current_date",
            "current_role",
            "current_schema",
            "current_time",
            "current_timestamp",
            "current_user",
            "localtime",
            "localtimestamp",
            "session_user",
            "system_user",
            "user",
        ]
        .iter()
        .any(|k| ident.value.eq_ignore_ascii_case(k))
}

/// PostgreSQL system columns: every table has them, but their values are
/// physical (row location, transaction ids, table oid) and differ between
/// source and target rows.
pub(super) fn is_pg_system_column(name: &str) -> bool {
    matches!(
        name,
        "ctid" | "xmin" | "xmax" | "cmin" | "cmax" | "tableoid"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_lists_are_sorted_for_binary_search() {
        assert!(PG_RESERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(MYSQL_RESERVED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn quotes_only_when_needed() {
        let pg = |n| ident_for(Dialect::Postgres, n).to_string();
        let my = |n| ident_for(Dialect::Mysql, n).to_string();
        assert_eq!(pg("endpoint_path"), "endpoint_path");
        assert_eq!(pg("order"), "\"order\"");
        assert_eq!(pg("Path"), "\"Path\"");
        assert_eq!(my("Path"), "Path");
        assert_eq!(my("order"), "`order`");
        assert_eq!(my("a b"), "`a b`");
    }
}
