//! Moves the counters of the side about to become primary past the
//! other side's: PostgreSQL sequences (serial and identity columns, by
//! `pg_get_serial_sequence`) and MySQL's `AUTO_INCREMENT`. The value
//! comes from the other side's counter, never from `MAX(id)`, which hands
//! out again the ids of rows deleted from the end of the table.

use switchyard_consistency::diff::conn::Conn;
use switchyard_core::schema::TableSchema;
use switchyard_core::sql::{self, Dialect};

use super::store::{number, text};
use super::ExecError;
use crate::live::Live;
use crate::phase::Side;

/// Moves `primary`'s counters; returns one line per counter moved.
pub async fn move_past(live: &Live, primary: Side) -> Result<Vec<String>, ExecError> {
    let failed = |error: String| ExecError::Sequences {
        migration: live.migration.id.clone(),
        side: primary.to_string(),
        error,
    };
    let mut source = live.source_conn().await?;
    let mut target = live.target_conn().await?;
    let (from, to, from_table, to_table) = match primary {
        Side::Target => (
            &mut source,
            &mut target,
            &live.mapping.source,
            &live.mapping.target,
        ),
        Side::Source => (
            &mut target,
            &mut source,
            &live.mapping.target,
            &live.mapping.source,
        ),
    };
    match live.dialect {
        Dialect::Postgres => {
            let mut moved = Vec::new();
            for pair in &live.mapping.columns {
                let (from_col, to_col) = match primary {
                    Side::Target => (&pair.source, &pair.target),
                    Side::Source => (&pair.target, &pair.source),
                };
                let Some(from_seq) = pg_sequence(from, from_table, from_col)
                    .await
                    .map_err(failed)?
                else {
                    continue;
                };
                let Some(to_seq) = pg_sequence(to, to_table, to_col).await.map_err(failed)? else {
                    continue;
                };
                let other = pg_next(from, &from_seq).await.map_err(failed)?;
                let own = pg_next(to, &to_seq).await.map_err(failed)?;
                let next = other.max(own);
                to.execute(&format!(
                    "SELECT setval({}, {next}, false)",
                    sql::pg::literal(&to_seq)
                ))
                .await
                .map_err(|e| failed(e.to_string()))?;
                moved.push(format!(
                    "{to_seq}: next value {next} (was {own}; {from_seq} is at {other})"
                ));
            }
            Ok(moved)
        }
        Dialect::Mysql => {
            let other = my_auto_increment(from, from_table).await.map_err(failed)?;
            let own = my_auto_increment(to, to_table).await.map_err(failed)?;
            let (Some(other), Some(own)) = (other, own) else {
                return Ok(Vec::new());
            };
            let next = other.max(own);
            to.execute(&format!(
                "ALTER TABLE {} AUTO_INCREMENT = {next}",
                sql::mysql::qualified(&to_table.schema, &to_table.table)
            ))
            .await
            .map_err(|e| failed(e.to_string()))?;
            Ok(vec![format!(
                "{}.{}: AUTO_INCREMENT {next} (was {own}; {}.{} is at {other})",
                to_table.schema, to_table.table, from_table.schema, from_table.table
            )])
        }
    }
}

/// The sequence behind `column` of `table`, if it has one.
async fn pg_sequence(
    conn: &mut Conn,
    table: &TableSchema,
    column: &str,
) -> Result<Option<String>, String> {
    let query = format!(
        "SELECT pg_get_serial_sequence({}, {})",
        sql::pg::literal(&sql::pg::qualified(&table.schema, &table.table)),
        sql::pg::literal(column)
    );
    let row = conn.row(&query).await.map_err(|e| e.to_string())?;
    let name = text(row.as_ref().and_then(|r| r.first()));
    Ok((!name.is_empty()).then_some(name))
}

/// The value `sequence` hands out next.
async fn pg_next(conn: &mut Conn, sequence: &str) -> Result<u64, String> {
    let query = format!(
        "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {sequence}"
    );
    let row = conn.row(&query).await.map_err(|e| e.to_string())?;
    Ok(number(row.as_ref().and_then(|r| r.first())))
}

/// The table's next AUTO_INCREMENT value, `None` when it has no such column.
async fn my_auto_increment(conn: &mut Conn, table: &TableSchema) -> Result<Option<u64>, String> {
    let query = format!(
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        sql::mysql::literal(&table.schema),
        sql::mysql::literal(&table.table)
    );
    let row = conn.row(&query).await.map_err(|e| e.to_string())?;
    let value = text(row.as_ref().and_then(|r| r.first()));
    Ok(value.parse::<u64>().ok())
}
