//! The live catalog: both tables of every migration, loaded over a
//! connection of the proxy's own, and checked against the mapping.
//!
//! A background task loads every migration at start, again whenever the
//! configuration changes, and on a timer (soon while a backend is down,
//! rarely once ready, to notice a changed table), and publishes each
//! result into the router's input. A migration whose catalog is not ready
//! keeps its reads on the source.
//!
//! The catalog must never stop the proxy, delay a session, or hold a
//! client's connection: a backend that is down only leaves its migrations
//! pending.

pub mod connect;
pub mod load;
pub use switchyard_core::schema as mapping;
pub use switchyard_core::schema::types;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::config::{Config, Migration, Phase};
use switchyard_core::names;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::relay::backend_tls::BackendTls;
use crate::route::routing::CatalogState;
use crate::state::Shared;
use load::{LoadError, TableRef};

/// How often the task looks for a new configuration generation and for
/// loads that are due.
const TICK: Duration = Duration::from_secs(1);
/// A migration whose backend was unreachable is retried this soon.
const RETRY_PENDING: Duration = Duration::from_secs(2);
/// A refused migration is re-read this often, so a table fixed with DDL
/// is picked up without a reload.
const RETRY_REFUSED: Duration = Duration::from_secs(5);
/// A ready migration is re-read this often, so a table altered under the
/// proxy is noticed.
const REFRESH_READY: Duration = Duration::from_secs(60);

/// Everything one load reads from the configuration. A load whose plan
/// differs from the one in force when it finishes is stale and dropped.
#[derive(Clone, Debug, PartialEq)]
struct Plan {
    /// The migration as the file states it.
    migration: Migration,
    /// Where the source table lives.
    source: TableRef,
    /// Where the target table lives.
    target: TableRef,
}

impl Plan {
    /// The plan of `migration` under `config`. A validated config always
    /// names defined backends; `None` covers the impossible rest.
    fn of(config: &Config, migration: &Migration) -> Option<Plan> {
        let table = |backend_name: &str,
                     database: &Option<String>,
                     schema: &Option<String>,
                     table: &str| {
            Some(TableRef {
                backend_name: backend_name.to_string(),
                backend: config.backends.get(backend_name)?.clone(),
                database: database.clone(),
                schema: schema.clone(),
                table: table.to_string(),
            })
        };
        let (s, t) = (&migration.source, &migration.target);
        Some(Plan {
            migration: migration.clone(),
            source: table(&migration.backend, &s.database, &s.schema, &s.table)?,
            target: table(migration.target_backend(), &t.database, &t.schema, &t.table)?,
        })
    }

    /// Loads both tables and checks the mapping against them, reaching each
    /// backend with the TLS client its sessions use.
    async fn load(&self, tls: &[BackendTls; 2], timeout: Duration) -> CatalogState {
        let id = &self.migration.id;
        let (mut source, target) = tokio::join!(
            self.source.load(&tls[0], timeout),
            self.target.load(&tls[1], timeout)
        );
        if let Err(LoadError::NoTable { .. }) = &source {
            // A completed migration's source is archived under another
            // name with the same columns: clients still write the source's
            // name, and the mapping still reads the source's columns.
            let archive = TableRef {
                table: switchyard_core::store::archive_name(&self.source.table),
                ..self.source.clone()
            };
            if let Ok(mut archived) = archive.load(&tls[0], timeout).await {
                archived.name = archived.name.replace(&archive.table, &self.source.table);
                archived.table = self.source.table.clone();
                source = Ok(archived);
            }
        }
        match (source, target) {
            (Ok(source), Ok(target)) => match mapping::check(&self.migration, source, target) {
                Ok(mapping) => CatalogState::Ready(Arc::new(mapping)),
                Err(e) => CatalogState::Refused(e.to_string()),
            },
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => failed(id, e),
            // A definite answer (no such table) says more than a down server.
            (Err(a), Err(b)) => failed(id, if a.is_transient() { b } else { a }),
        }
    }
}

fn failed(id: &str, e: LoadError) -> CatalogState {
    let reason = format!("migration `{id}`: {e}");
    if e.is_transient() {
        CatalogState::Pending(reason)
    } else {
        CatalogState::Refused(reason)
    }
}

/// What the task knows about one migration.
struct Tracked {
    /// When to load it next.
    due: Instant,
    /// A load is running; another is not started until it ends.
    loading: bool,
    /// The state last published, to log and publish changes only.
    last: Option<CatalogState>,
    /// The plan of the last load that found the tables ready. A refresh of
    /// the same plan that cannot reach a backend keeps that mapping: the
    /// dual write needs it to record writes (an outbox migration's target
    /// may be down for minutes), and reads of an unreachable target are
    /// the read guard's to judge.
    ready_for: Option<Plan>,
    /// Refreshes of the ready plan are failing (logged once, not per try).
    refresh_failing: bool,
    /// The phase in force (the store's, else the file's) when this
    /// migration was last loaded: a
    /// new phase often comes with new catalog facts (the guard's triggers,
    /// installed on the way into dual_write), so a phase change makes the
    /// migration due at once rather than at the next refresh.
    phase: Option<Phase>,
}

/// The catalog task's state between ticks.
struct Catalog {
    /// Where results are published.
    shared: Arc<Shared>,
    /// The configuration generation last seen.
    generation: u64,
    /// Per migration id.
    tracked: HashMap<String, Tracked>,
    /// Loads running now: id, the plan loaded, the result.
    loads: JoinSet<(String, Plan, CatalogState)>,
}

/// Starts the catalog task: it runs until the proxy drains.
pub fn spawn(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut draining = shared.draining.subscribe();
        let mut catalog = Catalog {
            generation: 0,
            tracked: HashMap::new(),
            loads: JoinSet::new(),
            shared,
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut routing_changed = catalog.shared.routing_changed.subscribe();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = routing_changed.changed() => {}
                Some(done) = catalog.loads.join_next() => match done {
                    Ok((id, plan, state)) => catalog.finish(id, plan, state),
                    Err(e) => tracing::error!(error = %e, "catalog load panicked"),
                },
                _ = draining.changed() => {}
            }
            if *draining.borrow() {
                return;
            }
            catalog.start_due();
        }
    })
}

impl Catalog {
    /// Notices a new configuration (everything becomes due, removed
    /// migrations are forgotten) and starts every load that is due.
    fn start_due(&mut self) {
        let snapshot = self.shared.snapshot_full();
        let now = Instant::now();
        if snapshot.generation != self.generation {
            self.generation = snapshot.generation;
            let config = &snapshot.config;
            self.tracked.retain(|id, _| config.migration(id).is_some());
            for t in self.tracked.values_mut() {
                t.due = now;
            }
            self.shared.publish_routing(|rt| {
                rt.catalogs.retain(|id, _| config.migration(id).is_some());
            });
        }
        let timeout = snapshot.config.limits.connect_timeout;
        let routing = self.shared.routing().clone();
        for migration in &snapshot.config.migrations {
            let t = self.tracked.entry(migration.id.clone()).or_insert(Tracked {
                due: now,
                loading: false,
                last: None,
                ready_for: None,
                refresh_failing: false,
                phase: None,
            });
            let phase = routing.migration(&migration.id).map(|m| m.phase);
            if phase != t.phase {
                // Recorded when a load starts, so a change during a load
                // makes the next one due as soon as that one ends.
                t.due = now;
            }
            if t.loading || t.due > now {
                continue;
            }
            let Some(plan) = Plan::of(&snapshot.config, migration) else {
                continue;
            };
            t.loading = true;
            t.phase = phase;
            let id = migration.id.clone();
            // From the same snapshot as the plan, so it matches the plan's
            // backend entries; not part of the plan, which compares by value.
            let tls = [
                snapshot.backend_tls(&plan.source.backend_name).clone(),
                snapshot.backend_tls(&plan.target.backend_name).clone(),
            ];
            self.loads.spawn(async move {
                let state = plan.load(&tls, timeout).await;
                (id, plan, state)
            });
        }
    }

    /// Publishes a finished load, unless the configuration moved on while
    /// it ran (then it is due again at once).
    fn finish(&mut self, id: String, plan: Plan, state: CatalogState) {
        let snapshot = self.shared.snapshot_full();
        let Some(t) = self.tracked.get_mut(&id) else {
            return;
        };
        t.loading = false;
        let current = snapshot
            .config
            .migration(&id)
            .and_then(|m| Plan::of(&snapshot.config, m));
        if current.as_ref() != Some(&plan) {
            t.due = Instant::now();
            return;
        }
        if let (CatalogState::Pending(reason), Some(ready)) = (&state, &t.ready_for) {
            if *ready == plan {
                if !std::mem::replace(&mut t.refresh_failing, true) {
                    tracing::warn!(migration = %id, %reason, "catalog refresh failed; keeping the mapping last checked until a load succeeds");
                }
                t.due = Instant::now() + RETRY_PENDING;
                return;
            }
        }
        t.refresh_failing = false;
        t.ready_for = matches!(state, CatalogState::Ready(_)).then(|| plan.clone());
        t.due = Instant::now()
            + match state {
                CatalogState::Ready(_) => REFRESH_READY,
                CatalogState::Refused(_) => RETRY_REFUSED,
                CatalogState::Pending(_) => RETRY_PENDING,
            };
        if t.last.as_ref() == Some(&state) {
            return;
        }
        log_change(&id, &state);
        metrics::gauge!(names::CATALOG_READY, "migration" => id.clone()).set(
            if matches!(state, CatalogState::Ready(_)) {
                1.0
            } else {
                0.0
            },
        );
        t.last = Some(state.clone());
        self.shared.publish_routing(|rt| {
            rt.catalogs.insert(id, state);
        });
    }
}

/// One line per change of state, never one per retry.
fn log_change(id: &str, state: &CatalogState) {
    match state {
        CatalogState::Ready(mapping) => tracing::info!(
            migration = id,
            source = %mapping.source.name,
            target = %mapping.target.name,
            columns = mapping.columns.len(),
            "catalog ready; the mapping fits both tables"
        ),
        CatalogState::Refused(reason) => tracing::warn!(
            migration = id,
            reason = %reason,
            "catalog refused; reads stay on the source"
        ),
        CatalogState::Pending(reason) => tracing::warn!(
            migration = id,
            reason = %reason,
            "catalog pending; reads stay on the source until it loads"
        ),
    }
}
