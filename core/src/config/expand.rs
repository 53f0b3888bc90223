//! `${VAR}` expansion inside the string values of a parsed YAML document.
//!
//! Expansion runs on the parsed tree, never on the raw text, so a password
//! full of `:`, `#` or quotes cannot change the document's structure. Keys are
//! never expanded: the shape of the file is fixed by what is written in it.
//!
//! Syntax: `${VAR}` (must be set), `${VAR:-default}` (the default when VAR is
//! unset or empty, as in the shell), `$$` for a literal `$`. Any other `$` is
//! kept as written, so SCRAM verifiers (`SCRAM-SHA-256$4096:...`) need no
//! escaping.

use serde_yaml::Value;

use super::de::{child, element};
use super::error::ConfigError;

/// Expands every string value below `value`, in place. `path` is where
/// `value` sits, for messages.
pub(crate) fn expand_value(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if s.contains('$') {
                *s = expand_str(s, path, env)?;
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &element(path, i), env)?;
            }
        }
        Value::Mapping(entries) => {
            for (key, item) in entries.iter_mut() {
                let key = match key {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::from("?"),
                };
                expand_value(item, &child(path, &key), env)?;
            }
        }
        Value::Tagged(tagged) => expand_value(&mut tagged.value, path, env)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Expands one string; `field` names the setting in errors.
pub(crate) fn expand_str(
    text: &str,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "`${{` in `{text}` is never closed; close it with `}}`, or write `$$` for a literal `$`"
                    ),
                ));
            };
            out.push_str(&substitute(&body[..end], field, env)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` body: `VAR` or `VAR:-default`.
fn substitute(
    body: &str,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_variable_name(name) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "`${{{body}}}` does not name an environment variable; use `${{NAME}}` or `${{NAME:-default}}` with letters, digits and `_`, or write `$$` for a literal `$`"
            ),
        ));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(ConfigError::MissingVariable {
            field: field.to_string(),
            var: name.to_string(),
        }),
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("5433".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_cases() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("${HOST}", "db.internal"),
            ("${HOST}:${PORT}", "db.internal:5433"),
            ("${UNSET:-fallback}", "fallback"),
            ("${UNSET:-}", ""),
            ("${EMPTY}", ""),
            ("${EMPTY:-used when empty}", "used when empty"),
            ("${HOST:-ignored}", "db.internal"),
            ("$$HOME", "$HOME"),
            ("a$$$${HOST}", "a$${HOST}"),
            ("$$${HOST}", "$db.internal"),
            ("cost $5", "cost $5"),
            ("trailing $", "trailing $"),
            (
                "SCRAM-SHA-256$4096:c2FsdA==$a:b",
                "SCRAM-SHA-256$4096:c2FsdA==$a:b",
            ),
            ("${UNSET:-a:-b}", "a:-b"),
            ("${UNSET:-x: #y}", "x: #y"),
        ];
        for (input, expected) in cases {
            let got = expand_str(input, "f", &env).unwrap();
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn expansion_errors_name_the_field_and_fix() {
        let cases: &[(&str, &str)] = &[
            (
                "${NOPE}",
                "`users[0].password` uses the environment variable `NOPE`, which is not set; set it, or give a default with `${NOPE:-default}`",
            ),
            (
                "${HOST",
                "`users[0].password`: `${` in `${HOST` is never closed; close it with `}`, or write `$$` for a literal `$`",
            ),
            (
                "${1X}",
                "`users[0].password`: `${1X}` does not name an environment variable; use `${NAME}` or `${NAME:-default}` with letters, digits and `_`, or write `$$` for a literal `$`",
            ),
        ];
        for (input, expected) in cases {
            let err = expand_str(input, "users[0].password", &env).unwrap_err();
            assert_eq!(&err.to_string(), expected, "input {input:?}");
        }
    }

    #[test]
    fn expands_only_values_and_tracks_paths() {
        let mut doc: Value =
            serde_yaml::from_str("a: { '${HOST}': [x, '${HOST}'] }\nb: [{c: '${MISSING}'}]")
                .unwrap();
        let err = expand_value(&mut doc, "", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`b[0].c` uses the environment variable `MISSING`, which is not set; set it, or give a default with `${MISSING:-default}`"
        );
        let mut doc: Value = serde_yaml::from_str("a: { '${HOST}': [x, '${HOST}'] }").unwrap();
        expand_value(&mut doc, "", &env).unwrap();
        let expected: Value = serde_yaml::from_str("a: { '${HOST}': [x, db.internal] }").unwrap();
        assert_eq!(doc, expected);
    }
}
