//! One column value of a shadowed read, in a form where equal meaning is
//! equal data: numerics by value, instants by instant, JSON by value. The
//! drivers' own types differ per server and per protocol; both runners map
//! into this one enum so the comparison never looks at a driver.
//!
//! Pure: no IO. The constructors normalise, so derived `Eq` and `Hash` are
//! comparison by meaning.

use std::fmt;

/// A column value, normalised at construction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// SQL NULL. Equal to NULL (two results agree when both have NULL
    /// there), never to an empty string.
    Null,
    /// An exact integer, or an exact numeric with no fraction (`7`,
    /// `7::bigint` and `7.00::numeric` are all `Int(7)`).
    Int(i128),
    /// An exact numeric with a fraction, as canonical text: no leading or
    /// trailing zeros, `-` only when not zero (`1.50` → `1.5`).
    Decimal(String),
    /// A floating point number's bits, with `-0.0` as `0.0` and one NaN.
    Float(u64),
    /// Text, compared by bytes (the server's collation is not ours).
    Text(Vec<u8>),
    /// Binary strings and values of types mapped by their encoding.
    Bytes(Vec<u8>),
    /// An instant: microseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A wall-clock date and time without a zone (PostgreSQL `timestamp`,
    /// MySQL `DATETIME` and `TIMESTAMP` as the session shows them), in
    /// microseconds since 1970-01-01 00:00.
    LocalTimestamp(i64),
    /// Days since 1970-01-01.
    Date(i32),
    /// A time of day (or a MySQL duration) in microseconds.
    Time(i64),
    /// A boolean.
    Bool(bool),
    /// JSON as canonical text: object keys sorted, no whitespace.
    Json(String),
}

impl Value {
    /// A float, with `-0.0` and every NaN made one value each.
    pub fn float(f: f64) -> Value {
        if f == 0.0 {
            Value::Float(0.0f64.to_bits())
        } else if f.is_nan() {
            Value::Float(f64::NAN.to_bits())
        } else {
            Value::Float(f.to_bits())
        }
    }

    /// An exact numeric from its text (`-0012.3400`, `1e3`, `NaN`); `None`
    /// if it is not one.
    pub fn decimal(text: &str) -> Option<Value> {
        let text = text.trim();
        if ["nan", "infinity", "-infinity", "+infinity"].contains(&text.to_lowercase().as_str()) {
            return Some(Value::Decimal(text.to_lowercase()));
        }
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(at) => (&body[..at], body[at + 1..].parse::<i32>().ok()?),
            None => (body, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        // The value is digits × 10^point_shift.
        let point_shift = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
        Some(canonical_decimal(negative, &digits, point_shift))
    }

    /// JSON from its text, by value: `None` if it does not parse.
    pub fn json(text: &[u8]) -> Option<Value> {
        let parsed: serde_json::Value = serde_json::from_slice(text).ok()?;
        Some(Value::Json(canonical_json(&parsed)))
    }
}

/// `digits × 10^shift` as `Int` when whole and in range, else `Decimal`.
fn canonical_decimal(negative: bool, digits: &str, shift: i32) -> Value {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Value::Int(0);
    }
    // Trailing zeros move into the exponent.
    let trimmed = digits.trim_end_matches('0');
    let shift = shift + (digits.len() - trimmed.len()) as i32;
    let sign = if negative { "-" } else { "" };
    if shift >= 0 {
        let text = format!("{sign}{trimmed}{}", "0".repeat(shift as usize));
        return match text.parse::<i128>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Decimal(text),
        };
    }
    let places = (-shift) as usize;
    let text = if trimmed.len() > places {
        let (int, frac) = trimmed.split_at(trimmed.len() - places);
        format!("{sign}{int}.{frac}")
    } else {
        format!("{sign}0.{}{trimmed}", "0".repeat(places - trimmed.len()))
    };
    Value::Decimal(text)
}

/// JSON printed with sorted object keys and no whitespace, so equal values
/// print alike whatever order the server kept.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        serde_json::Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A date `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    i32::try_from(days_from_civil(year, month, day)).ok()
}

/// A time `[-]H+:MM:SS[.ffffff]` in microseconds (MySQL's TIME is a
/// duration and may be negative or over 24 hours).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut parts = text.splitn(3, ':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let last = parts.next()?;
    let (seconds, fraction) = last.split_once('.').unwrap_or((last, ""));
    let seconds: i64 = seconds.parse().ok()?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{fraction:0<6}").parse().ok()?;
    let total = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
    Some(if negative { -total } else { total })
}

/// A timestamp `YYYY-MM-DD[ T]HH:MM:SS[.ffffff][zone]`: with a zone
/// (`Z`, `+02`, `-05:30`) an instant, without one a wall-clock time.
pub fn parse_timestamp(text: &str) -> Option<Value> {
    let text = text.trim();
    let (date, rest) = text.split_at(text.find([' ', 'T'])?);
    let rest = &rest[1..];
    let zone_at = rest.find(['Z', 'z', '+', '-']);
    let (time, zone) = match zone_at {
        Some(at) => (&rest[..at], Some(&rest[at..])),
        None => (rest, None),
    };
    let local = i64::from(parse_date(date)?) * MICROS_PER_DAY + parse_time(time)?;
    match zone {
        None => Some(Value::LocalTimestamp(local)),
        Some(zone) => Some(Value::Timestamp(local - zone_offset_micros(zone)?)),
    }
}

/// A zone suffix's offset east of UTC in microseconds.
fn zone_offset_micros(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    Some(sign * (hours * 3600 + minutes * 60) * 1_000_000)
}

/// Hours, minutes, seconds and microseconds of a time of day.
fn clock(micros: i64) -> String {
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if frac == 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}.{frac:06}")
    }
}

/// A date and time of day from microseconds since 1970-01-01 00:00.
fn date_time(micros: i64) -> String {
    let (y, mo, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    format!(
        "{y:04}-{mo:02}-{d:02} {}",
        clock(micros.rem_euclid(MICROS_PER_DAY))
    )
}

/// As an operator reads it in a mismatch sample (NULL is `None` there, not
/// text, so NULL and `'NULL'` stay apart).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Decimal(text) | Value::Json(text) => f.write_str(text),
            Value::Float(bits) => write!(f, "{}", f64::from_bits(*bits)),
            Value::Text(bytes) => f.write_str(&String::from_utf8_lossy(bytes)),
            Value::Bytes(bytes) => {
                f.write_str("\\x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Value::Timestamp(micros) => write!(f, "{}+00", date_time(*micros)),
            Value::LocalTimestamp(micros) => f.write_str(&date_time(*micros)),
            Value::Date(days) => {
                let (y, m, d) = civil_from_days(i64::from(*days));
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Value::Time(micros) if *micros < 0 => write!(f, "-{}", clock(-micros)),
            Value::Time(micros) => f.write_str(&clock(*micros)),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}
