//! One shadow read on MySQL / MariaDB: the session's settings set on the
//! connection, both forms inside one `START TRANSACTION WITH CONSISTENT
//! SNAPSHOT, READ ONLY`, then the settings back to their defaults. Rows
//! are mapped by the column types the server reports, from the text
//! protocol (no parameters) or the binary one (parameters bound).

use mysql_async::consts::ColumnType;
use mysql_async::prelude::{Protocol, Queryable};
use mysql_async::{Column, Conn, Params, QueryResult, Value as MyValue};

use super::compare::Rows;
use super::runner::{Failure, ShadowLimits};
use super::value::{days_from_civil, parse_date, parse_time, parse_timestamp, Value};
use super::{ShadowJob, Skip};

/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// Runs both forms of `job` in one snapshot.
pub(super) async fn snapshot_read(
    conn: &mut Conn,
    job: &ShadowJob,
    limits: &ShadowLimits,
) -> Result<(Rows, Rows), Failure> {
    // System variable names go into the text; only plain names can.
    let plain = |name: &str| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !job.settings.iter().all(|(name, _)| plain(name)) {
        return Err(Failure::Skipped(Skip::Settings));
    }
    let result = with_settings(conn, job, limits).await;
    // SET SESSION outlives the transaction: undo each one, or the next
    // read on this connection would inherit it.
    for (name, _) in &job.settings {
        conn.query_drop(format!("SET SESSION {name} = DEFAULT"))
            .await
            .map_err(|e| Failure::Broken(e.to_string()))?;
    }
    result
}

async fn with_settings(
    conn: &mut Conn,
    job: &ShadowJob,
    limits: &ShadowLimits,
) -> Result<(Rows, Rows), Failure> {
    for (name, value) in &job.settings {
        // The value is a parameter: nothing to quote whatever the sql_mode.
        let set = conn
            .exec_drop(format!("SET SESSION {name} = ?"), (value.as_str(),))
            .await;
        if let Err(e) = set {
            tracing::debug!(setting = %name, error = %e, "shadow: setting refused");
            return Err(match e {
                mysql_async::Error::Server(_) => Failure::Skipped(Skip::Settings),
                e => Failure::Broken(e.to_string()),
            });
        }
    }
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(failure)?;
    let result = both(conn, job, limits).await;
    match conn.query_drop("ROLLBACK").await {
        Ok(()) => result,
        Err(e) => Err(Failure::Broken(e.to_string())),
    }
}

async fn both(
    conn: &mut Conn,
    job: &ShadowJob,
    limits: &ShadowLimits,
) -> Result<(Rows, Rows), Failure> {
    let source = fetch(conn, &job.source_sql, &job.params, limits).await?;
    let target = fetch(conn, &job.target_sql, &job.params, limits).await?;
    Ok((source, target))
}

/// Runs one form: the text protocol without parameters, a prepared
/// statement with them (the values bound as strings, which the server
/// converts as it would the client's).
async fn fetch(
    conn: &mut Conn,
    sql: &str,
    params: &[Option<String>],
    limits: &ShadowLimits,
) -> Result<Rows, Failure> {
    if params.is_empty() {
        let result = conn.query_iter(sql).await.map_err(failure)?;
        return read_rows(result, limits).await;
    }
    let values = params
        .iter()
        .map(|p| match p {
            Some(text) => MyValue::Bytes(text.as_bytes().to_vec()),
            None => MyValue::NULL,
        })
        .collect();
    let result = conn
        .exec_iter(sql, Params::Positional(values))
        .await
        .map_err(failure)?;
    read_rows(result, limits).await
}

/// Reads the rows of the first result set. Past the limits the read stops
/// and the connection is given up: the unread rest would be in the way of
/// its next command.
async fn read_rows<P: Protocol>(
    mut result: QueryResult<'_, '_, P>,
    limits: &ShadowLimits,
) -> Result<Rows, Failure> {
    let columns = result.columns().unwrap_or_default();
    let mut rows = Rows {
        columns: columns.iter().map(|c| c.name_str().into_owned()).collect(),
        rows: Vec::new(),
    };
    let mut bytes = 0usize;
    while let Some(row) = result.next().await.map_err(failure)? {
        let values: Vec<Value> = row
            .unwrap_raw()
            .into_iter()
            .zip(columns.iter())
            .map(|(value, column)| {
                let value = value.unwrap_or(MyValue::NULL);
                bytes += value.bin_len() as usize;
                decode(column, value)
            })
            .collect();
        rows.rows.push(values);
        if rows.rows.len() > limits.max_rows || bytes > limits.max_bytes {
            return Err(Failure::Abandoned(Skip::TooLarge));
        }
    }
    result.drop_result().await.map_err(failure)?;
    Ok(rows)
}

/// A server's error answer leaves the connection usable; anything else
/// does not.
fn failure(e: mysql_async::Error) -> Failure {
    match e {
        mysql_async::Error::Server(e) => Failure::Server(e.message),
        e => Failure::Broken(e.to_string()),
    }
}

/// A column value as a [`Value`], by the column's type. A value that does
/// not parse as its type (MySQL's zero dates) is kept as text.
fn decode(column: &Column, value: MyValue) -> Value {
    let bytes = match value {
        MyValue::NULL => return Value::Null,
        MyValue::Int(n) => return Value::Int(n.into()),
        MyValue::UInt(n) => return Value::Int(n.into()),
        MyValue::Float(f) => return Value::float(f.into()),
        MyValue::Double(f) => return Value::float(f),
        MyValue::Date(y, mo, d, h, mi, s, us) => {
            return date_value(column, [y, mo.into(), d.into()], [h, mi, s], us)
        }
        MyValue::Time(negative, days, h, mi, s, us) => {
            let secs =
                i64::from(days) * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
            let micros = secs * 1_000_000 + i64::from(us);
            return Value::Time(if negative { -micros } else { micros });
        }
        MyValue::Bytes(bytes) => bytes,
    };
    let parsed = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text_value(column, text));
    parsed.unwrap_or_else(|| {
        if column.character_set() == BINARY_CHARSET {
            Value::Bytes(bytes)
        } else {
            Value::Text(bytes)
        }
    })
}

/// A text-protocol value of a numeric or temporal column; `None` for the
/// string types (and what does not parse).
fn text_value(column: &Column, text: &str) -> Option<Value> {
    use ColumnType::*;
    match column.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => text.parse::<i128>().ok().map(Value::Int),
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => Value::decimal(text),
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => text.parse::<f64>().ok().map(Value::float),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => parse_date(text).map(Value::Date),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => parse_time(text).map(Value::Time),
        MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => parse_timestamp(text),
        MYSQL_TYPE_JSON => Value::json(text.as_bytes()),
        MYSQL_TYPE_NULL => Some(Value::Null),
        _ => None,
    }
}

/// A binary-protocol date or datetime.
fn date_value(
    column: &Column,
    [year, month, day]: [u16; 3],
    [h, mi, s]: [u8; 3],
    us: u32,
) -> Value {
    let days = days_from_civil(year.into(), month.into(), day.into());
    if matches!(
        column.column_type(),
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE
    ) {
        return Value::Date(days as i32);
    }
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    Value::LocalTimestamp(secs * 1_000_000 + i64::from(us))
}
