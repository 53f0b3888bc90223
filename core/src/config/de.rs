//! A serde `Deserializer` over an (already env-expanded) `serde_yaml::Value`
//! that knows where it is in the document.
//!
//! Why not `serde_yaml::from_value`: its errors do not say which setting was
//! wrong, it cannot suggest a name for a misspelt field, and it refuses the
//! string `"5432"` for a port. After `${PG_PORT:-5432}` is expanded every value
//! is a string, so numeric and boolean settings here deliberately accept a
//! string that spells a number or `true`/`false`. The other way round is
//! refused on purpose: a text setting given a bare number (`password: 1.10`)
//! would silently become `1.1`, so the fix offered is to quote it.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};
use serde_yaml::Value;

use super::error::ConfigError;

/// Deserializes `T` from `value`, reporting errors with their field path.
pub(crate) fn from_value<T: de::DeserializeOwned>(value: &Value) -> Result<T, ConfigError> {
    T::deserialize(ValueDe {
        value,
        path: String::new(),
    })
    .map_err(DeError::into_config_error)
}

/// Joins a parent path and a mapping key: `backends` + `pg` = `backends.pg`.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and a list index: `users` + 0 = `users[0]`.
pub(crate) fn element(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Describes a YAML value for "found ..." in a message.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (an empty value)".to_string(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the text `{s}`"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a group of `key: value` settings".to_string(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

/// The error serde sees while deserializing. The path is attached by the
/// innermost [`ValueDe`] that sees the error, so it names the exact setting.
#[derive(Debug)]
pub(crate) struct DeError {
    /// Where the problem is; `None` until a `ValueDe` claims the error.
    path: Option<String>,
    /// What the problem is.
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A complete "problem; fix" message.
    Message(String),
    /// A field name no struct field matches.
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    /// A required field that was not given.
    MissingField(&'static str),
}

impl DeError {
    fn message(message: impl Into<String>) -> Self {
        DeError {
            path: None,
            kind: Kind::Message(message.into()),
        }
    }

    /// Claims the error for `path` unless a deeper value already did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }

    fn into_config_error(self) -> ConfigError {
        let path = self.path.unwrap_or_default();
        match self.kind {
            Kind::Message(message) => ConfigError::invalid(path, message),
            Kind::MissingField(field) => ConfigError::invalid(
                path,
                format!("the required setting `{field}` is missing; add `{field}: ...` here"),
            ),
            Kind::UnknownField { field, expected } => {
                // The path already ends in the unknown name (it was claimed by the key).
                ConfigError::UnknownField {
                    suggestion: closest(&field, expected).map(str::to_string),
                    known: expected.iter().map(|s| s.to_string()).collect(),
                    field: path,
                }
            }
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Message(m) => f.write_str(m),
            Kind::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            Kind::MissingField(field) => write!(f, "missing field `{field}`"),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::message(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::message(format!(
            "expected {exp}, found {unexp}; see configs/ for examples"
        ))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::message(format!(
            "expected {exp}, found {unexp}; see configs/ for examples"
        ))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let choices = expected
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let fix = match closest(variant, expected) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("use one of {choices}"),
        };
        DeError::message(format!("`{variant}` is not one of {choices}; {fix}"))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            path: None,
            kind: Kind::UnknownField {
                field: field.to_string(),
                expected,
            },
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            path: None,
            kind: Kind::MissingField(field),
        }
    }
}

/// The known name closest to `name`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance by characters; names here are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// One value of the document and where it sits.
struct ValueDe<'a> {
    /// The value to read.
    value: &'a Value,
    /// Its path, for error messages.
    path: String,
}

impl<'a> ValueDe<'a> {
    fn fail<T>(&self, message: String) -> Result<T, DeError> {
        Err(DeError::message(message).at(&self.path))
    }

    /// Reads a whole number in `min..=max`, from a YAML number or a string
    /// that spells one (what `${VAR}` produces).
    fn integer(&self, min: i128, max: i128) -> Result<i128, DeError> {
        let n = match self.value {
            Value::Number(n) => n
                .as_u64()
                .map(i128::from)
                .or_else(|| n.as_i64().map(i128::from)),
            Value::String(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            Some(n) => self.fail(format!(
                "{n} is out of range; use a whole number from {min} to {max}"
            )),
            None => self.fail(format!(
                "expected a whole number, found {}; write digits only, e.g. `10`",
                describe(self.value)
            )),
        }
    }

    fn float(&self) -> Result<f64, DeError> {
        let n = match self.value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() => Ok(n),
            _ => self.fail(format!(
                "expected a number, found {}; write e.g. `0.01` or `3.0`",
                describe(self.value)
            )),
        }
    }

    fn text(&self) -> Result<&'a str, DeError> {
        match self.value {
            Value::String(s) => Ok(s),
            Value::Number(_) | Value::Bool(_) => self.fail(format!(
                "expected text, found {}; put it in quotes so it is read as text, e.g. \"{}\"",
                describe(self.value),
                scalar_text(self.value)
            )),
            _ => self.fail(format!(
                "expected text, found {}; write a single value, e.g. `name: value`",
                describe(self.value)
            )),
        }
    }

    fn mapping<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        static EMPTY: std::sync::OnceLock<serde_yaml::Mapping> = std::sync::OnceLock::new();
        let mapping = match self.value {
            Value::Mapping(m) => m,
            // `listen:` with nothing under it means "all defaults".
            Value::Null => EMPTY.get_or_init(serde_yaml::Mapping::new),
            other => {
                return self.fail(format!(
                    "expected a group of `key: value` settings, found {}; indent the settings under this name",
                    describe(other)
                ))
            }
        };
        let access = Entries {
            iter: mapping.iter(),
            path: &self.path,
            pending: None,
        };
        visitor
            .visit_map(access)
            .map_err(|e: DeError| e.at(&self.path))
    }
}

/// How a scalar was written, for the "put it in quotes" fix.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

macro_rules! integer_method {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
            let n = self.integer(<$ty>::MIN as i128, <$ty>::MAX as i128)?;
            // The range was checked just above, so the cast is exact.
            visitor
                .$visit(n as $ty)
                .map_err(|e: DeError| e.at(&self.path))
        }
    };
}

impl<'a> de::Deserializer<'a> for ValueDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Sequence(_) => return self.deserialize_seq(visitor),
            Value::Mapping(_) => return self.mapping(visitor),
            Value::Tagged(t) => {
                return self.fail(format!(
                    "YAML tags such as `{}` are not supported; remove the tag",
                    t.tag
                ))
            }
        };
        result.map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = match self.value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match b {
            Some(b) => visitor.visit_bool(b).map_err(|e: DeError| e.at(&self.path)),
            None => self.fail(format!(
                "expected `true` or `false`, found {}; write `true` or `false`",
                describe(self.value)
            )),
        }
    }

    integer_method!(deserialize_i8, visit_i8, i8);
    integer_method!(deserialize_i16, visit_i16, i16);
    integer_method!(deserialize_i32, visit_i32, i32);
    integer_method!(deserialize_i64, visit_i64, i64);
    integer_method!(deserialize_u8, visit_u8, u8);
    integer_method!(deserialize_u16, visit_u16, u16);
    integer_method!(deserialize_u32, visit_u32, u32);
    integer_method!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.float()?;
        visitor.visit_f64(n).map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let s = self.text()?;
        visitor
            .visit_borrowed_str(s)
            .map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e: DeError| e.at(&path))
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.value {
            Value::Null => visitor.visit_unit().map_err(|e: DeError| e.at(&self.path)),
            other => self.fail(format!(
                "expected nothing, found {}; leave the value empty",
                describe(other)
            )),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path.clone();
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DeError| e.at(&path))
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: &'a [Value] = match self.value {
            Value::Sequence(items) => items,
            // `users:` with nothing under it is an empty list.
            Value::Null => &[],
            other => {
                return self.fail(format!(
                    "expected a list, found {}; write a list as `[a, b]` or as lines starting with `- `",
                    describe(other)
                ))
            }
        };
        let access = Items {
            iter: items.iter().enumerate(),
            path: &self.path,
        };
        visitor
            .visit_seq(access)
            .map_err(|e: DeError| e.at(&self.path))
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.mapping(visitor)
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.mapping(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        // Every enum in the configuration is a plain word (`kind: postgres`).
        let path = self.path.clone();
        self.text()?;
        visitor.visit_enum(self).map_err(|e: DeError| e.at(&path))
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

impl<'a> EnumAccess<'a> for ValueDe<'a> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'a>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        let word = self.text()?;
        let variant = seed
            .deserialize(word.into_deserializer())
            .map_err(|e: DeError| e.at(&self.path))?;
        Ok((variant, self))
    }
}

impl<'a> VariantAccess<'a> for ValueDe<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'a>>(self, _seed: S) -> Result<S::Value, DeError> {
        self.fail("this value takes no data; write just the word".to_string())
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        self.fail("this value takes no data; write just the word".to_string())
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        self.fail("this value takes no data; write just the word".to_string())
    }
}

/// The elements of a YAML list.
struct Items<'a, 'p> {
    iter: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    path: &'p str,
}

impl<'a> SeqAccess<'a> for Items<'a, '_> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        match self.iter.next() {
            None => Ok(None),
            Some((i, value)) => {
                let path = element(self.path, i);
                // Claim here too: a `Deserialize` impl may fail after the
                // value's own deserializer has returned (parse after read).
                seed.deserialize(ValueDe {
                    value,
                    path: path.clone(),
                })
                .map(Some)
                .map_err(|e| e.at(&path))
            }
        }
    }
}

/// The entries of a YAML mapping; remembers the current value between the
/// key and value calls.
struct Entries<'a, 'p> {
    iter: serde_yaml::mapping::Iter<'a>,
    path: &'p str,
    pending: Option<(&'a Value, String)>,
}

impl<'a> MapAccess<'a> for Entries<'a, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = child(self.path, &scalar_text(key));
        let key = seed.deserialize(ValueDe {
            value: key,
            path: path.clone(),
        })?;
        self.pending = Some((value, path));
        Ok(Some(key))
    }

    fn next_value_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<S::Value, DeError> {
        let (value, path) = self
            .pending
            .take()
            .ok_or_else(|| DeError::message("internal error: a value was read before its key"))?;
        // Claimed here as well, for the same reason as in `Items`.
        seed.deserialize(ValueDe {
            value,
            path: path.clone(),
        })
        .map_err(|e| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names_catch_typos_only() {
        let known = &["postgres", "mysql"];
        assert_eq!(closest("postgress", known), Some("postgres"));
        assert_eq!(closest("mysq", known), Some("mysql"));
        assert_eq!(closest("oracle", known), None);
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
