//! The outbox applier: copies the rows whose keys the proxy recorded in
//! `switchyard_outbox` (a migration whose target is on another server, or
//! in another PostgreSQL database) to the target.
//!
//! Each round, per migration, in one transaction on the source: lock a
//! batch of outbox entries (`FOR UPDATE SKIP LOCKED`, so two appliers —
//! every proxy replica runs one — never take the same entry), read the
//! current rows of their keys with a share lock, make the target's rows
//! for those keys equal to them (in one target transaction), then delete
//! the entries and commit. The share lock is held until the target has
//! committed, so a newer write of the same row waits for this copy and
//! queues an entry of its own: a key is always copied from the image after
//! its latest entry committed, and an older image never lands last.
//! Everything is at least once and idempotent: a crash between the target's
//! commit and the source's leaves the entries, and the next round copies
//! the same rows again.
//!
//! It must never hold a client's connection (it has its own) and never
//! stop the proxy: a backend that is down only delays the copy, with
//! backoff, and nothing is lost, since the entries stay until copied.

mod mysql;
mod pg;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::names;
use switchyard_core::sync::{Direction, RowSync};

use crate::route::classify::Dialect;
use crate::route::rewrite::TableMap;
use crate::route::routing::{CatalogState, MigrationRoute};
use crate::state::Shared;

/// How often an idle applier looks for entries.
const POLL: Duration = Duration::from_millis(200);
/// Entries copied per round.
const BATCH: i64 = 500;
/// The longest wait between attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What one round needs to know about a migration.
pub(crate) struct Job<'a> {
    /// The migration's id (the outbox's `migration`).
    pub migration: &'a str,
    /// Both tables and the column mapping.
    pub map: &'a TableMap,
    /// The source's key columns, in key order.
    pub key: &'a [String],
    /// The row-image sync's statements, split across the two servers.
    pub sync: &'a RowSync,
}

/// What a round did.
pub(crate) struct Round {
    /// Entries copied and deleted.
    pub applied: usize,
    /// Entries left for the migration after the round.
    pub depth: i64,
    /// Seconds since the oldest entry left was queued (0 when none).
    pub lag: f64,
}

/// One migration's connections and backoff.
enum Conns {
    Postgres(Box<pg::Conns>),
    Mysql(mysql::Conns),
}

/// Per-migration state between rounds.
struct Applier {
    /// Open connections, dropped after a failure.
    conns: Option<Conns>,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// Not before this instant.
    next: Instant,
}

/// Starts the applier task: it runs until the proxy drains.
pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut draining = shared.draining.subscribe();
        let mut appliers: HashMap<String, Applier> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = draining.changed() => {}
            }
            if *draining.borrow() {
                return;
            }
            let routing = shared.routing().clone();
            for m in routing.migrations.iter().filter(|m| applies(m)) {
                let applier = appliers.entry(m.plan.id.clone()).or_insert(Applier {
                    conns: None,
                    failures: 0,
                    next: Instant::now(),
                });
                if Instant::now() < applier.next {
                    continue;
                }
                // Drain what is there, a batch at a time.
                loop {
                    let started = Instant::now();
                    match round(&shared, m, applier).await {
                        Ok(round) => {
                            applier.failures = 0;
                            report(&m.plan.id, &round);
                            if round.depth == 0 {
                                // Every entry committed before this round
                                // began is copied.
                                shared.outbox_applied.insert(m.plan.id.clone(), started);
                            }
                            if round.applied < BATCH as usize {
                                break;
                            }
                        }
                        Err(error) => {
                            applier.conns = None;
                            applier.failures += 1;
                            let wait = POLL * 2u32.saturating_pow(applier.failures.min(6));
                            applier.next = Instant::now() + wait.min(MAX_BACKOFF);
                            tracing::warn!(migration = %m.plan.id, %error, "outbox: copying failed; retrying");
                            break;
                        }
                    }
                }
            }
            appliers.retain(|id, _| routing.migrations.iter().any(|m| &m.plan.id == id));
        }
    })
}

/// Whether a migration's writes go through the outbox now.
fn applies(m: &MigrationRoute) -> bool {
    crate::route::write::mirrors(m.phase)
        && !m.mirrors_inline()
        && matches!(m.catalog, CatalogState::Ready(_))
        && m.table_map.is_some()
}

/// One round for one migration, connecting first when needed.
async fn round(
    shared: &Shared,
    m: &MigrationRoute,
    applier: &mut Applier,
) -> Result<Round, String> {
    let snapshot = shared.snapshot_full();
    let config = &snapshot.config;
    let map = m.table_map.as_deref().expect("checked by applies()");
    let CatalogState::Ready(mapping) = &m.catalog else {
        return Err("the catalog is not ready".to_string());
    };
    let sync = RowSync::new(
        m.dialect,
        mapping,
        &m.plan.source.primary_key,
        Direction::SourceToTarget,
    )
    .map_err(|e| e.to_string())?;
    let job = Job {
        migration: &m.plan.id,
        map,
        key: &m.plan.source.primary_key,
        sync: &sync,
    };
    let timeout = config.limits.connect_timeout;
    let backend = |name: &str| {
        config
            .backends
            .get(name)
            .ok_or_else(|| format!("backend `{name}` is not in `backends:`"))
    };
    let source = backend(&m.plan.backend)?;
    let target_name = m.target_backend();
    let target = backend(target_name)?;
    if applier.conns.is_none() {
        applier.conns = Some(match m.dialect {
            Dialect::Postgres => Conns::Postgres(Box::new(
                pg::Conns::open(
                    (source, snapshot.backend_tls(&m.plan.backend)),
                    (target, snapshot.backend_tls(target_name)),
                    m.plan.source.database.as_deref(),
                    m.plan
                        .target
                        .database
                        .as_deref()
                        .or(m.plan.source.database.as_deref()),
                    timeout,
                )
                .await?,
            )),
            Dialect::Mysql => Conns::Mysql(mysql::Conns::open(source, target, map).await?),
        });
    }
    match applier.conns.as_mut().expect("opened above") {
        Conns::Postgres(conns) => conns.round(&job).await,
        Conns::Mysql(conns) => conns.round(&job).await,
    }
}

fn report(migration: &str, round: &Round) {
    let migration = migration.to_string();
    metrics::gauge!(names::OUTBOX_DEPTH, "migration" => migration.clone()).set(round.depth as f64);
    metrics::gauge!(names::OUTBOX_LAG_SECONDS, "migration" => migration).set(round.lag);
}

/// The distinct keys of a batch of entries, parsed from their JSON arrays
/// of text; an entry that is not one is skipped (and left for an operator).
pub(crate) fn keys(entries: &[String], width: usize) -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = entries
        .iter()
        .filter_map(|text| serde_json::from_str::<Vec<String>>(text).ok())
        .filter(|k| k.len() == width)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_of_the_keys_width() {
        let entries = [
            r#"["1","a"]"#.to_string(),
            r#"["1","a"]"#.to_string(),
            r#"["2","b"]"#.to_string(),
            r#"["3"]"#.to_string(),
            "not json".to_string(),
        ];
        assert_eq!(
            keys(&entries, 2),
            vec![
                vec!["1".to_string(), "a".to_string()],
                vec!["2".to_string(), "b".to_string()]
            ]
        );
    }
}
