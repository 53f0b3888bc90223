//! Whether a source column's values convert to a target column's type
//! without loss and without depending on the session: the type families
//! of both dialects, compared by the names the catalogs print.
//!
//! Pure: it never asks a server. It must never accept a conversion that
//! can lose or change a value (narrowing, text to number, a zone-dependent
//! timestamp retype the migration has not pinned); when unsure, it refuses,
//! because a refusal only keeps reads on the source.

/// What a type is, for compatibility: the family and what bounds its values.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Family {
    /// Whole numbers of `bits` width (8 to 64), signed or not.
    Integer { bits: u8, unsigned: bool },
    /// Exact decimals (`numeric`, `decimal`); holds any integer.
    Decimal,
    /// Binary floating point of `bits` width.
    Float { bits: u8 },
    /// Character strings of any length class (`text`, `varchar`, `char`,
    /// `citext`, MySQL's `*text`).
    Text,
    /// Date and time; `zoned` when the server converts it through the
    /// session's time zone (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`).
    Timestamp { zoned: bool },
    /// Anything else, by its name without modifiers: only equal names fit.
    Other(String),
}

/// The verdict on one source type → target type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Every value converts, the same way in every session.
    Yes,
    /// Every value converts, but how depends on the session's time zone:
    /// acceptable only when the migration pins one.
    NeedsTimeZone,
    /// Some values do not convert, or convert to something else; the
    /// reason says why in a clause a message can quote.
    No(String),
}

/// Whether values of `source` fit into `target`; both are type names as
/// the catalogs print them (`integer`, `character varying(64)`,
/// `bigint(20) unsigned`, `timestamp with time zone`).
pub fn fit(source: &str, target: &str) -> Fit {
    let (s, t) = (normalize(source), normalize(target));
    if s == t {
        return Fit::Yes;
    }
    match (family(&s), family(&t)) {
        (
            Family::Integer { bits, unsigned },
            Family::Integer {
                bits: to,
                unsigned: to_unsigned,
            },
        ) => {
            // An unsigned type fits a signed one only one size up; a
            // signed one never fits an unsigned one (negative values).
            let fits = match (unsigned, to_unsigned) {
                (false, false) | (true, true) => to >= bits,
                (true, false) => to > bits,
                (false, true) => false,
            };
            if fits {
                Fit::Yes
            } else {
                Fit::No(format!("not every `{source}` value fits in `{target}`"))
            }
        }
        (Family::Integer { .. } | Family::Decimal, Family::Decimal) => Fit::Yes,
        (Family::Float { bits }, Family::Float { bits: to }) if to >= bits => Fit::Yes,
        (Family::Text, Family::Text) => Fit::Yes,
        (Family::Timestamp { zoned }, Family::Timestamp { zoned: to }) => {
            if zoned == to {
                Fit::Yes
            } else {
                Fit::NeedsTimeZone
            }
        }
        (a, b) if a == b => Fit::Yes,
        _ => Fit::No(format!(
            "`{source}` values do not convert to `{target}` without loss"
        )),
    }
}

/// Whether values of the type are exact numbers (integers, decimals),
/// which SQL text may write bare. The mirror writes only such keys bare:
/// a bare number compared with a text column is wrong on both servers
/// (MySQL compares as numbers, so `'0123' = 123`; PostgreSQL refuses
/// `text = integer`).
pub fn is_exact_number(type_name: &str) -> bool {
    matches!(
        family(&normalize(type_name)),
        Family::Integer { .. } | Family::Decimal
    )
}

/// Lower case, without length, precision or display-width modifiers
/// (`varchar(64)` → `varchar`, `timestamp(3) with time zone` →
/// `timestamp with time zone`), single spaces; `zerofill` dropped. Lengths
/// are not compared: a shorter target string is the operator's call, and
/// the mirror reports a value that does not fit.
fn normalize(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len());
    let mut depth = 0u32;
    for c in type_name.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out.split_whitespace()
        .filter(|w| *w != "zerofill")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The family of a normalized type name. PostgreSQL's catalog never
/// prints a bare `timestamp` (it says `timestamp without time zone`), so a
/// bare `timestamp` is MySQL's, which the session's zone converts.
fn family(name: &str) -> Family {
    let (base, unsigned) = match name.strip_suffix(" unsigned") {
        Some(base) => (base, true),
        None => (name, false),
    };
    let integer = |bits| Family::Integer { bits, unsigned };
    match base {
        "tinyint" => integer(8),
        "smallint" | "int2" => integer(16),
        "mediumint" => integer(24),
        "integer" | "int" | "int4" => integer(32),
        "bigint" | "int8" => integer(64),
        "numeric" | "decimal" => Family::Decimal,
        "real" | "float4" | "float" => Family::Float { bits: 32 },
        "double precision" | "float8" | "double" => Family::Float { bits: 64 },
        "text" | "character varying" | "varchar" | "character" | "char" | "bpchar" | "citext"
        | "tinytext" | "mediumtext" | "longtext" => Family::Text,
        "timestamp without time zone" | "datetime" => Family::Timestamp { zoned: false },
        "timestamp with time zone" | "timestamptz" | "timestamp" => {
            Family::Timestamp { zoned: true }
        }
        other => Family::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let no = |s: &str| Fit::No(s.to_string());
        let cases = [
            ("integer", "integer", Fit::Yes),
            ("integer", "bigint", Fit::Yes),
            ("smallint", "integer", Fit::Yes),
            ("int(11)", "bigint(20)", Fit::Yes),
            ("int(10) unsigned", "bigint(20)", Fit::Yes),
            ("int(10) unsigned", "bigint(20) unsigned", Fit::Yes),
            ("integer", "numeric(20,0)", Fit::Yes),
            ("numeric(10,2)", "numeric(12,2)", Fit::Yes),
            ("real", "double precision", Fit::Yes),
            ("text", "character varying(64)", Fit::Yes),
            ("character varying(200)", "text", Fit::Yes),
            ("varchar(200)", "longtext", Fit::Yes),
            ("text", "citext", Fit::Yes),
            (
                "timestamp(3) with time zone",
                "timestamp with time zone",
                Fit::Yes,
            ),
            ("datetime(6)", "datetime", Fit::Yes),
            ("uuid", "uuid", Fit::Yes),
            (
                "timestamp with time zone",
                "timestamp without time zone",
                Fit::NeedsTimeZone,
            ),
            (
                "timestamp without time zone",
                "timestamptz",
                Fit::NeedsTimeZone,
            ),
            ("timestamp", "datetime", Fit::NeedsTimeZone),
            ("datetime", "timestamp", Fit::NeedsTimeZone),
            (
                "bigint",
                "integer",
                no("not every `bigint` value fits in `integer`"),
            ),
            (
                "int(11)",
                "int(10) unsigned",
                no("not every `int(11)` value fits in `int(10) unsigned`"),
            ),
            (
                "int(10) unsigned",
                "int(11)",
                no("not every `int(10) unsigned` value fits in `int(11)`"),
            ),
            (
                "integer",
                "text",
                no("`integer` values do not convert to `text` without loss"),
            ),
            (
                "text",
                "integer",
                no("`text` values do not convert to `integer` without loss"),
            ),
            (
                "numeric(10,2)",
                "integer",
                no("`numeric(10,2)` values do not convert to `integer` without loss"),
            ),
            (
                "double precision",
                "real",
                no("`double precision` values do not convert to `real` without loss"),
            ),
            (
                "json",
                "jsonb",
                no("`json` values do not convert to `jsonb` without loss"),
            ),
        ];
        for (source, target, want) in cases {
            assert_eq!(fit(source, target), want, "{source} → {target}");
        }
    }

    #[test]
    fn exact_numbers() {
        for name in ["integer", "bigint(20) unsigned", "numeric(10,2)", "int4"] {
            assert!(is_exact_number(name), "{name}");
        }
        for name in ["text", "varchar(64)", "double precision", "uuid"] {
            assert!(!is_exact_number(name), "{name}");
        }
    }
}
