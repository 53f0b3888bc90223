//! The outbox applier on PostgreSQL: the source's connection holds the
//! round's transaction (entry locks and row share locks); the target's
//! makes its rows equal in a transaction of its own.

use std::time::Duration;

use switchyard_core::config::Backend;
use switchyard_core::sql::pg::{literal, qualified};
use tokio_postgres::Client;

use super::{keys, Job, Round, BATCH};
use crate::relay::backend_tls::BackendTls;

/// The applier's own connections for one migration.
pub(crate) struct Conns {
    source: Client,
    target: Client,
}

impl Conns {
    /// Connects to both backends, each in its table's database.
    pub async fn open(
        source: (&Backend, &BackendTls),
        target: (&Backend, &BackendTls),
        source_db: Option<&str>,
        target_db: Option<&str>,
        timeout: Duration,
    ) -> Result<Conns, String> {
        let fail = |e: tokio_postgres::Error| format!("cannot connect to copy the outbox: {e}");
        let source = crate::catalog::connect::postgres(source.0, source.1, source_db, timeout)
            .await
            .map_err(fail)?;
        let target = crate::catalog::connect::postgres(target.0, target.1, target_db, timeout)
            .await
            .map_err(fail)?;
        // Values travel as text: pin the zone they are read and written in.
        for client in [&source, &target] {
            client
                .batch_execute("SET TIME ZONE 'UTC'")
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(Conns { source, target })
    }

    /// Copies one batch of entries; see the module's documentation.
    pub async fn round(&mut self, job: &Job<'_>) -> Result<Round, String> {
        let map = job.map;
        let outbox = qualified(&map.source.schema, "switchyard_outbox");
        let err = |e: tokio_postgres::Error| e.to_string();
        let tx = self.source.transaction().await.map_err(err)?;
        let entries = tx
            .query(
                &format!(
                    "SELECT id, key::text FROM {outbox} WHERE migration = $1 ORDER BY id LIMIT {BATCH} FOR UPDATE SKIP LOCKED"
                ),
                &[&job.migration],
            )
            .await
            .map_err(err)?;
        let ids: Vec<i64> = entries.iter().map(|r| r.get(0)).collect();
        let texts: Vec<String> = entries.iter().map(|r| r.get(1)).collect();
        let keys = keys(&texts, job.key.len());
        if !keys.is_empty() {
            let read = job.sync.read_images(&keys).map_err(|e| e.to_string())?;
            let images = tx.query(&read, &[]).await.map_err(err)?;
            let width = map.columns.len();
            let rows: Vec<Vec<Option<String>>> = images
                .iter()
                .map(|r| (0..width).map(|i| r.get(i)).collect())
                .collect();
            write_target(&mut self.target, job, &keys, &rows).await?;
        }
        if !ids.is_empty() {
            tx.execute(&format!("DELETE FROM {outbox} WHERE id = ANY($1)"), &[&ids])
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        let left = self
            .source
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(extract(epoch FROM now() - min(queued_at)), 0)::float8 FROM {outbox} WHERE migration = $1"
                ),
                &[&job.migration],
            )
            .await
            .map_err(err)?;
        Ok(Round {
            applied: ids.len(),
            depth: left.get(0),
            lag: left.get(1),
        })
    }
}

/// Makes the target's rows for `keys` equal to `rows`, in one transaction.
async fn write_target(
    target_client: &mut Client,
    job: &Job<'_>,
    keys: &[Vec<String>],
    rows: &[Vec<Option<String>>],
) -> Result<(), String> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|v| v.as_deref().map_or_else(|| "NULL".into(), literal))
                .collect()
        })
        .collect();
    let tx = target_client
        .transaction()
        .await
        .map_err(|e| e.to_string())?;
    let statements = job
        .sync
        .write_images(keys, &rows)
        .map_err(|e| e.to_string())?;
    for sql in statements {
        tx.batch_execute(&sql).await.map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}
