//! The control store as the proxy's metrics see it: every few seconds, per
//! migration that mirrors, the repair queue's depth and the keys the guard
//! queued since the last look, by where the write came from.
//!
//! Every replica reports the same store, so sum nothing across replicas:
//! `switchyard_repair_queue_depth` is a gauge of the shared queue, and
//! `switchyard_unmirrored_writes_total` counts the entries a replica has
//! seen in the queue, those there when it started included (take the max
//! over replicas).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use switchyard_core::names;
use switchyard_core::sql;

use crate::route::classify::Dialect;
use crate::route::routing::{CatalogState, MigrationRoute};
use crate::state::Shared;

/// How often the store is read.
const EVERY: Duration = Duration::from_secs(2);

/// A connection to a migration's source backend.
enum Conn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

/// What the watch remembers per migration.
struct Watched {
    conn: Option<Conn>,
    /// The highest queue id counted (the first look counts what is queued).
    seen: i64,
}

/// Starts the watch: it runs until the proxy drains.
pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut draining = shared.draining.subscribe();
        let mut watched: HashMap<String, Watched> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = draining.changed() => {}
            }
            if *draining.borrow() {
                return;
            }
            let routing = shared.routing().clone();
            for m in routing.migrations.iter().filter(|m| watches(m)) {
                let entry = watched.entry(m.plan.id.clone()).or_insert(Watched {
                    conn: None,
                    seen: 0,
                });
                if let Err(error) = look(&shared, m, entry).await {
                    entry.conn = None;
                    tracing::debug!(migration = %m.plan.id, %error, "cannot read the repair queue");
                }
            }
            watched.retain(|id, _| routing.migrations.iter().any(|m| &m.plan.id == id));
        }
    })
}

fn watches(m: &MigrationRoute) -> bool {
    crate::route::write::mirrors(m.phase) && matches!(m.catalog, CatalogState::Ready(_))
}

/// One look at one migration's queue.
async fn look(shared: &Shared, m: &MigrationRoute, watched: &mut Watched) -> Result<(), String> {
    let Some(map) = m.table_map.as_deref() else {
        return Ok(());
    };
    let snapshot = shared.snapshot_full();
    let config = &snapshot.config;
    let backend = config
        .backends
        .get(&m.plan.backend)
        .ok_or_else(|| format!("backend `{}` is not configured", m.plan.backend))?;
    if watched.conn.is_none() {
        watched.conn = Some(match m.dialect {
            Dialect::Postgres => Conn::Postgres(
                crate::catalog::connect::postgres(
                    backend,
                    snapshot.backend_tls(&m.plan.backend),
                    m.plan.source.database.as_deref(),
                    config.limits.connect_timeout,
                )
                .await
                .map_err(|e| e.to_string())?,
            ),
            Dialect::Mysql => Conn::Mysql(
                crate::catalog::connect::mysql(backend, &map.source.schema)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        });
    }
    let since = watched.seen;
    // Depth, the highest id, and the new entries by source.
    let (depth, max, new): (i64, i64, Vec<(String, i64)>) = match watched.conn.as_mut() {
        Some(Conn::Postgres(client)) => {
            let queue = sql::pg::qualified(&map.source.schema, "switchyard_repair_queue");
            let totals = client
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(max(id), 0) FROM {queue} WHERE migration = $1"
                    ),
                    &[&m.plan.id],
                )
                .await
                .map_err(|e| e.to_string())?;
            let max: i64 = totals.get(1);
            let new = client
                .query(
                    &format!("SELECT source, count(*) FROM {queue} WHERE migration = $1 AND id > $2 AND id <= $3 GROUP BY source"),
                    &[&m.plan.id, &since, &max],
                )
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            (totals.get(0), max, new)
        }
        Some(Conn::Mysql(conn)) => {
            let queue = sql::mysql::qualified(&map.source.schema, "switchyard_repair_queue");
            let id = sql::mysql::literal(&m.plan.id);
            let totals: Option<(i64, i64)> = conn
                .query_first(format!(
                    "SELECT count(*), CAST(COALESCE(max(id), 0) AS SIGNED) FROM {queue} WHERE migration = {id}"
                ))
                .await
                .map_err(|e| e.to_string())?;
            let (depth, max) = totals.unwrap_or((0, 0));
            let new: Vec<(String, i64)> = conn
                .query(format!(
                    "SELECT source, count(*) FROM {queue} WHERE migration = {id} AND id > {since} AND id <= {max} GROUP BY source"
                ))
                .await
                .map_err(|e| e.to_string())?;
            (depth, max, new)
        }
        None => return Ok(()),
    };
    metrics::gauge!(names::REPAIR_QUEUE_DEPTH, "migration" => m.plan.id.clone()).set(depth as f64);
    for (source, count) in new {
        if source == "mirror_failed" {
            continue;
        }
        metrics::counter!(names::UNMIRRORED_WRITES_TOTAL, "migration" => m.plan.id.clone(), "source" => source)
            .increment(count.max(0) as u64);
    }
    watched.seen = watched.seen.max(max);
    Ok(())
}
