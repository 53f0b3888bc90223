//! A literal's value as sqlparser reads it, so a sticky key taken from a
//! text's literal is the key `rewrite::read_form` would have found.
//!
//! Only the classes the shape path takes: numbers are their text;
//! strings are unquoted with PostgreSQL's standard-conforming rules (a
//! doubled quote is a quote) or MySQL's (also backslash escapes, and `\%`,
//! `\_` keep their backslash as LIKE patterns need).
//!
//! No IO, no panics; allocates only for a string with an escape in it.

use std::borrow::Cow;

use sqlparser::ast::Value;

use super::literals::Class;
use crate::route::fingerprint::Dialect;

/// The value of the string literal `literal` (quotes included, class
/// [`Class::Single`] or [`Class::Double`]). `None` when it is not one
/// well-formed literal: unterminated, or a backslash at the end.
pub(super) fn string(dialect: Dialect, literal: &str) -> Option<Cow<'_, str>> {
    let quote = *literal.as_bytes().first()?;
    let body = literal.get(1..)?;
    let backslash = dialect == Dialect::Mysql;
    let stop = body
        .bytes()
        .position(|c| c == quote || (backslash && c == b'\\'))?;
    if stop + 1 == body.len() && body.as_bytes()[stop] == quote {
        // No escape: the value is the text between the quotes.
        return Some(Cow::Borrowed(&body[..stop]));
    }
    let quote = char::from(quote);
    let mut value = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            match chars.next() {
                None => return Some(Cow::Owned(value)),
                Some(q) if q == quote => value.push(quote),
                // A quote that ends the literal before the span does.
                Some(_) => return None,
            }
        } else if backslash && c == '\\' {
            let escaped = chars.next()?;
            match escaped {
                '%' | '_' => {
                    value.push('\\');
                    value.push(escaped);
                }
                '0' => value.push('\0'),
                'a' => value.push('\u{7}'),
                'b' => value.push('\u{8}'),
                'f' => value.push('\u{c}'),
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                'Z' => value.push('\u{1a}'),
                other => value.push(other),
            }
        } else {
            value.push(c);
        }
    }
    None
}

/// The literal as sqlparser prints it after reading it: what
/// `rewrite::read_form` puts in its output where this literal was. Used to
/// check a shape's template against the exact-text rewrite.
pub(super) fn printed(dialect: Dialect, class: Class, literal: &str) -> Option<String> {
    let value = match class {
        Class::Integer | Class::Decimal => return Some(literal.to_string()),
        Class::Single => Value::SingleQuotedString(string(dialect, literal)?.into_owned()),
        Class::Double => Value::DoubleQuotedString(string(dialect, literal)?.into_owned()),
        Class::Other => return None,
    };
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_decode_as_sqlparser_reads_them() {
        let pg = Dialect::Postgres;
        let my = Dialect::Mysql;
        let cases: &[(Dialect, &str, Option<&str>)] = &[
            (pg, "'abc'", Some("abc")),
            (pg, "''", Some("")),
            (pg, "'it''s'", Some("it's")),
            (pg, "''''", Some("'")),
            (pg, r"'a\'", Some(r"a\")),
            (pg, "'open", None),
            (pg, "'open''", None),
            (pg, "'é''ü'", Some("é'ü")),
            (my, "'abc'", Some("abc")),
            (my, r"'it\'s'", Some("it's")),
            (my, "'it''s'", Some("it's")),
            (my, r"'a\\b'", Some(r"a\b")),
            (my, r"'a\nb\tc\0\Z'", Some("a\nb\tc\0\u{1a}")),
            (my, r"'50\% off\_'", Some(r"50\% off\_")),
            (my, r"'\q\é'", Some("qé")),
            (my, "\"say \"\"hi\"\"\"", Some("say \"hi\"")),
            (my, r#""a\"b""#, Some("a\"b")),
            (my, "\"it's\"", Some("it's")),
            (my, r"'trailing\'", None),
            (my, r"'x\", None),
            (my, "'open", None),
        ];
        for (dialect, literal, want) in cases {
            assert_eq!(
                string(*dialect, literal).as_deref(),
                *want,
                "{dialect:?} {literal}"
            );
        }
    }

    #[test]
    fn decoding_matches_sqlparser() {
        use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
        use sqlparser::tokenizer::{Token, Tokenizer};
        let literals: &[(Dialect, &str)] = &[
            (Dialect::Postgres, "'it''s'"),
            (Dialect::Postgres, r"'a\'"),
            (Dialect::Mysql, r"'a\\b\'c\nd\%e\_f\x'"),
            (Dialect::Mysql, r#""q\"""x""#),
            (Dialect::Mysql, r"'\0\a\b\f\r\t\Z'"),
        ];
        for (dialect, literal) in literals {
            let parser_dialect: &dyn sqlparser::dialect::Dialect = match dialect {
                Dialect::Postgres => &PostgreSqlDialect {},
                Dialect::Mysql => &MySqlDialect {},
            };
            let tokens = Tokenizer::new(parser_dialect, literal)
                .tokenize()
                .expect("tokenizes");
            let want = match &tokens[..] {
                [Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)] => s.clone(),
                other => panic!("{literal}: {other:?}"),
            };
            assert_eq!(
                string(*dialect, literal).as_deref(),
                Some(want.as_str()),
                "{literal}"
            );
        }
    }
}
