//! The outbox applier on MySQL and MariaDB: the same round as on
//! PostgreSQL (see the module above), with `LOCK IN SHARE MODE` for the
//! share lock and the values written as mysql_common renders them.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use switchyard_core::config::Backend;
use switchyard_core::sql::mysql::{literal, qualified};

use super::{keys, Job, Round, BATCH};
use crate::route::rewrite::TableMap;

/// The applier's own connections for one migration.
pub(crate) struct Conns {
    source: Conn,
    target: Conn,
}

impl Conns {
    /// Connects to both backends, each in its table's database.
    pub async fn open(source: &Backend, target: &Backend, map: &TableMap) -> Result<Conns, String> {
        let connect = |backend, db| async move {
            crate::catalog::connect::mysql(backend, db)
                .await
                .map_err(|e| format!("cannot connect to copy the outbox: {e}"))
        };
        let mut source = connect(source, &map.source.schema).await?;
        let mut target = connect(target, &map.target.schema).await?;
        for conn in [&mut source, &mut target] {
            conn.query_drop(
                "SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')",
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(Conns { source, target })
    }

    /// Copies one batch of entries; see the module's documentation.
    pub async fn round(&mut self, job: &Job<'_>) -> Result<Round, String> {
        let map = job.map;
        let outbox = qualified(&map.source.schema, "switchyard_outbox");
        let err = |e: mysql_async::Error| e.to_string();
        let source = &mut self.source;
        source.query_drop("START TRANSACTION").await.map_err(err)?;
        let entries: Vec<(u64, String)> = source
            .query(format!(
                "SELECT id, `key` FROM {outbox} WHERE migration = {} ORDER BY id LIMIT {BATCH} FOR UPDATE SKIP LOCKED",
                literal(job.migration)
            ))
            .await
            .map_err(err)?;
        let texts: Vec<String> = entries.iter().map(|(_, k)| k.clone()).collect();
        let keys = keys(&texts, job.key.len());
        if !keys.is_empty() {
            let read = job.sync.read_images(&keys).map_err(|e| e.to_string())?;
            let images: Vec<Row> = source.query(read).await.map_err(err)?;
            let rows: Vec<Vec<Value>> = images.into_iter().map(Row::unwrap).collect();
            write_target(&mut self.target, job, &keys, &rows).await?;
        }
        let source = &mut self.source;
        if !entries.is_empty() {
            let ids = entries
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            source
                .query_drop(format!("DELETE FROM {outbox} WHERE id IN ({ids})"))
                .await
                .map_err(err)?;
        }
        source.query_drop("COMMIT").await.map_err(err)?;
        let left: Option<(i64, f64)> = source
            .query_first(format!(
                "SELECT count(*), CAST(COALESCE(TIMESTAMPDIFF(MICROSECOND, min(queued_at), NOW(6)), 0) / 1e6 AS DOUBLE) FROM {outbox} WHERE migration = {}",
                literal(job.migration)
            ))
            .await
            .map_err(err)?;
        let (depth, lag) = left.unwrap_or((0, 0.0));
        Ok(Round {
            applied: entries.len(),
            depth,
            lag,
        })
    }
}

/// Makes the target's rows for `keys` equal to `rows`, in one transaction.
async fn write_target(
    target: &mut Conn,
    job: &Job<'_>,
    keys: &[Vec<String>],
    rows: &[Vec<Value>],
) -> Result<(), String> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|v| v.as_sql(true)).collect())
        .collect();
    let mut statements = vec!["START TRANSACTION".to_string()];
    statements.extend(
        job.sync
            .write_images(keys, &rows)
            .map_err(|e| e.to_string())?,
    );
    statements.push("COMMIT".into());
    for sql in &statements {
        if let Err(e) = target.query_drop(sql).await {
            let _ = target.query_drop("ROLLBACK").await;
            return Err(e.to_string());
        }
    }
    Ok(())
}
