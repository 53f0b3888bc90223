//! One shadow read on PostgreSQL: both forms inside one
//! `REPEATABLE READ READ ONLY` transaction, with the session's settings and
//! role set LOCAL so they end with it, and the rows decoded from the binary
//! format by the types the server reports.

use std::error::Error as StdError;

use bytes::BytesMut;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::Client;

use super::compare::Rows;
use super::runner::{Failure, ShadowLimits};
use super::value::Value;
use super::{ShadowJob, Skip};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Runs both forms of `job` in one snapshot. `login_user` is the pool's
/// user, to tell whether the job's role needs setting.
pub(super) async fn snapshot_read(
    client: &Client,
    job: &ShadowJob,
    login_user: &str,
    limits: &ShadowLimits,
) -> Result<(Rows, Rows), Failure> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(failure)?;
    let result = in_snapshot(client, job, login_user, limits).await;
    // Ending the transaction also undoes the LOCAL settings and role.
    match client.batch_execute("ROLLBACK").await {
        Ok(()) => result,
        Err(e) => Err(Failure::Broken(e.to_string())),
    }
}

async fn in_snapshot(
    client: &Client,
    job: &ShadowJob,
    login_user: &str,
    limits: &ShadowLimits,
) -> Result<(Rows, Rows), Failure> {
    let role = job.role.as_deref().filter(|role| *role != login_user);
    let settings = job
        .settings
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(role.map(|role| ("role", role)));
    for (name, value) in settings {
        // set_config takes name and value as parameters: nothing to quote.
        let set = client
            .execute("SELECT set_config($1, $2, true)", &[&name, &value])
            .await;
        if let Err(e) = set {
            tracing::debug!(setting = name, error = %e, "shadow: setting refused");
            return Err(match e.as_db_error() {
                Some(_) => Failure::Skipped(Skip::Settings),
                None => Failure::Broken(e.to_string()),
            });
        }
    }
    let source = fetch(client, &job.source_sql, &job.params, limits).await?;
    let target = fetch(client, &job.target_sql, &job.params, limits).await?;
    Ok((source, target))
}

/// Runs one form and reads its rows, stopping as soon as they pass the
/// limits (the rest of the result is discarded by the driver).
async fn fetch(
    client: &Client,
    sql: &str,
    params: &[Option<String>],
    limits: &ShadowLimits,
) -> Result<Rows, Failure> {
    let statement = client.prepare(sql).await.map_err(failure)?;
    let params = params.iter().map(|p| TextParam(p.as_deref()));
    let stream = client
        .query_raw(&statement, params)
        .await
        .map_err(failure)?;
    pin_mut!(stream);
    let columns = statement.columns();
    let mut rows = Rows {
        columns: columns.iter().map(|c| c.name().to_string()).collect(),
        rows: Vec::new(),
    };
    let mut bytes = 0usize;
    while let Some(row) = stream.try_next().await.map_err(failure)? {
        let mut values = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let raw: Option<Raw> = row.try_get(i).map_err(failure)?;
            bytes += raw.as_ref().map_or(0, |r| r.bytes.len());
            values.push(raw.map_or(Value::Null, |r| decode(r.oid, r.bytes)));
        }
        rows.rows.push(values);
        if rows.rows.len() > limits.max_rows || bytes > limits.max_bytes {
            return Err(Failure::Skipped(Skip::TooLarge));
        }
    }
    Ok(rows)
}

/// A server's error answer leaves the connection usable; anything else
/// (IO, protocol, a closed connection) does not.
fn failure(e: tokio_postgres::Error) -> Failure {
    match e.as_db_error() {
        Some(db) => Failure::Server(db.message().to_string()),
        None => Failure::Broken(e.to_string()),
    }
}

/// A bound value sent in text format, whatever the parameter's type: the
/// server parses it exactly as it parsed the client's.
#[derive(Debug)]
struct TextParam<'a>(Option<&'a str>);

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// One value as the server sent it: its type and binary encoding.
struct Raw<'a> {
    oid: u32,
    bytes: &'a [u8],
}

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(ty: &Type, bytes: &'a [u8]) -> Result<Raw<'a>, Box<dyn StdError + Sync + Send>> {
        Ok(Raw {
            oid: ty.oid(),
            bytes,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The type OIDs `decode` understands (pg_type.dat); every other type is
/// compared by its binary encoding.
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// A binary-format value as a [`Value`]. An encoding that does not match
/// its type (impossible from a sane server) is kept as bytes.
fn decode(oid: u32, bytes: &[u8]) -> Value {
    decode_known(oid, bytes).unwrap_or_else(|| Value::Bytes(bytes.to_vec()))
}

fn decode_known(oid: u32, b: &[u8]) -> Option<Value> {
    let int = |n: i128| Some(Value::Int(n));
    Some(match oid {
        oid::BOOL => Value::Bool(*b.first()? != 0),
        oid::INT2 => return int(i16::from_be_bytes(b.try_into().ok()?).into()),
        oid::INT4 => return int(i32::from_be_bytes(b.try_into().ok()?).into()),
        oid::INT8 => return int(i64::from_be_bytes(b.try_into().ok()?).into()),
        oid::OID => return int(u32::from_be_bytes(b.try_into().ok()?).into()),
        oid::FLOAT4 => Value::float(f32::from_be_bytes(b.try_into().ok()?).into()),
        oid::FLOAT8 => Value::float(f64::from_be_bytes(b.try_into().ok()?)),
        oid::NUMERIC => numeric(b)?,
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR => Value::Text(b.to_vec()),
        oid::DATE => {
            let days = i32::from_be_bytes(b.try_into().ok()?);
            Value::Date(days.checked_add(PG_EPOCH_DAYS).unwrap_or(days))
        }
        oid::TIME => Value::Time(i64::from_be_bytes(b.try_into().ok()?)),
        oid::TIMETZ => {
            let micros = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
            // The zone is stored in seconds *west* of UTC.
            let west = i32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
            Value::Time(micros + i64::from(west) * 1_000_000)
        }
        oid::TIMESTAMP => Value::LocalTimestamp(pg_micros(b)?),
        oid::TIMESTAMPTZ => Value::Timestamp(pg_micros(b)?),
        oid::JSON => Value::json(b)?,
        oid::JSONB => Value::json(b.strip_prefix(&[1])?)?,
        oid::UUID => Value::Text(uuid_text(b)?.into_bytes()),
        oid::BYTEA => Value::Bytes(b.to_vec()),
        _ => return None,
    })
}

/// A timestamp's microseconds moved to the Unix epoch (±infinity kept).
fn pg_micros(b: &[u8]) -> Option<i64> {
    let micros = i64::from_be_bytes(b.try_into().ok()?);
    Some(match micros {
        i64::MAX | i64::MIN => micros,
        _ => micros + PG_EPOCH_MICROS,
    })
}

fn uuid_text(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// NUMERIC's binary form: digit count, weight (of the first base-10000
/// digit), sign, display scale, then the base-10000 digits.
fn numeric(b: &[u8]) -> Option<Value> {
    let word = |i: usize| {
        Some(u16::from_be_bytes(
            b.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let (count, weight, sign) = (word(0)? as usize, word(1)? as i16, word(2)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Value::decimal("NaN"),
        0xD000 => return Value::decimal("Infinity"),
        0xF000 => return Value::decimal("-Infinity"),
        _ => return None,
    }
    let mut digits = String::with_capacity(count * 4);
    for i in 0..count {
        let digit = word(4 + i)?;
        if digit > 9999 {
            return None;
        }
        digits.push_str(&format!("{digit:04}"));
    }
    // The value is digits × 10000^(weight + 1 - count).
    let exponent = (i32::from(weight) + 1 - count as i32) * 4;
    let text = format!(
        "{}{}e{exponent}",
        if sign == 0x4000 { "-" } else { "" },
        if digits.is_empty() { "0" } else { &digits }
    );
    Value::decimal(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::value::{civil_from_days, days_from_civil};

    #[test]
    fn numerics_decode_by_value() {
        // 1.50: one digit group 1, one group 5000 with weight 0, scale 2.
        let one_fifty = [0, 2, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88];
        assert_eq!(numeric(&one_fifty), Some(Value::Decimal("1.5".into())));
        // 70000: groups 7, 0 with weight 1.
        let seventy_k = [0, 1, 0, 1, 0, 0, 0, 0, 0, 7];
        assert_eq!(numeric(&seventy_k), Some(Value::Int(70_000)));
        // -0.0001: group 1 with weight -1.
        let tiny = [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1];
        assert_eq!(numeric(&tiny), Some(Value::Decimal("-0.0001".into())));
        // zero: no digit groups.
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 2]), Some(Value::Int(0)));
    }

    #[test]
    fn dates_and_instants_move_to_the_unix_epoch() {
        assert_eq!(decode(oid::DATE, &0i32.to_be_bytes()), Value::Date(10_957));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(
            decode(oid::TIMESTAMPTZ, &0i64.to_be_bytes()),
            Value::Timestamp(PG_EPOCH_MICROS)
        );
        // 12:00 at UTC+2 (stored as 7200 s west negated) is 10:00 UTC.
        let mut timetz = (12 * 3600 * 1_000_000i64).to_be_bytes().to_vec();
        timetz.extend((-7200i32).to_be_bytes());
        assert_eq!(
            decode(oid::TIMETZ, &timetz),
            Value::Time(10 * 3600 * 1_000_000)
        );
    }
}
