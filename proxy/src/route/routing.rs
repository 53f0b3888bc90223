//! The router's input: the validated plan of every migration merged with
//! the state that changes at run time (the read rule an operator set
//! through the admin API, the phase, the live catalog).
//!
//! One [`Routing`] is immutable and published whole through `arc-swap`, so
//! every statement sees one consistent view, and a change to the file or
//! to the runtime state is live for the next statement. This module holds
//! no IO types: building and deciding are pure.

use std::collections::HashMap;
use std::sync::Arc;

use switchyard_core::config::{BackendKind, Config, Migration, Phase, Reads, StickyBy};

use super::classify::{Dialect, Statement};
use super::rewrite::{ColumnMap, Relation, TableMap};
use crate::catalog::mapping::Mapping;
use crate::wire::pg::message::FieldPatch;

/// Everything routing needs, for one generation of config and state.
#[derive(Debug, Default)]
pub struct Routing {
    /// The configuration generation it was built from.
    pub generation: u64,
    /// This build's own number, unique in the process: anything cached
    /// from a routing (a write's decision) is valid for this one only, as
    /// the runtime state (catalog, rollbacks, rules) changes without a new
    /// configuration generation.
    pub serial: u64,
    /// One entry per migration, in the file's order.
    pub migrations: Vec<MigrationRoute>,
    /// Some migration holds writes for its write switch: sessions look
    /// for a held write before deciding (one load of a bool otherwise).
    pub holds_writes: bool,
}

/// One migration as routing sees it now.
#[derive(Debug)]
pub struct MigrationRoute {
    /// The plan from the file.
    pub plan: Arc<Migration>,
    /// The read rule in force: the file's, or the admin API's override.
    pub reads: Arc<Reads>,
    /// Where `reads` came from, for `/migrations`.
    pub rule_from: RuleFrom,
    /// The phase in force.
    pub phase: Phase,
    /// The live schemas and the checked mapping; reads stay on the source
    /// until it is ready.
    pub catalog: CatalogState,
    /// What the rewrite needs, once the catalog is ready.
    pub table_map: Option<Arc<TableMap>>,
    /// PostgreSQL: the target's RowDescription fields mapped to the
    /// source's, once the catalog is ready.
    pub fields: Option<Arc<FieldPatch>>,
    /// The SQL dialect of the source's server.
    pub dialect: Dialect,
    /// Set when the guard took the target's reads away; until an operator
    /// gives a new rule, reads go to the table that takes the writes.
    pub rolled_back: Option<Arc<RolledBack>>,
    /// The control store's state this proxy follows (epoch, holding,
    /// lease); `None` while the migration follows its file.
    pub stored: Option<Arc<Stored>>,
}

/// A migration's state as the control store gave it, and whether this
/// proxy can still vouch for it (its lease).
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// The epoch whose phase this proxy enforces, which it heartbeats.
    pub epoch: u64,
    /// The stored phase; it overrides the file's.
    pub phase: Phase,
    /// The stored read rule, which replaces the file's; `None` keeps it.
    pub reads: Option<Arc<Reads>>,
    /// Writes to the migrated table wait while the write switch runs.
    pub holding_writes: bool,
    /// Why the migration (phase `rolled_back`) or its reads (any other
    /// phase: a proxy's guard decided it) were rolled back.
    pub rollback_reason: Option<String>,
    /// Set when the store could not be read for longer than the lease:
    /// what failed. Writes to the migrated tables are refused meanwhile,
    /// so none is made under a phase the others may have left.
    pub lapsed: Option<String>,
}

/// An automatic read rollback in force.
#[derive(Clone, Debug, PartialEq)]
pub struct RolledBack {
    /// What tripped it: `error_rate`, `mismatch_rate`, `latency`, `timeouts`.
    pub reason: &'static str,
    /// The verdict with its figures, for people.
    pub text: String,
    /// When it tripped.
    pub at: std::time::SystemTime,
    /// The file's rule then: a changed file rule lifts the rollback.
    pub file: Reads,
}

impl MigrationRoute {
    /// Whether a statement names this migration's source table, or with
    /// `or_target` its target table too. Compares names only (a superset:
    /// a same-named table in another schema matches too; the rewrite tells
    /// them apart).
    pub fn names(&self, statement: &Statement, or_target: bool) -> bool {
        statement.tables.iter().any(|t| {
            t.name.eq_ignore_ascii_case(&self.plan.source.table)
                || (or_target && t.name.eq_ignore_ascii_case(&self.plan.target.table))
        })
    }

    /// Whether writes are mirrored inside the writer's transaction: the
    /// target on the source's server and, on PostgreSQL, in its database
    /// (a transaction cannot span two PostgreSQL databases).
    pub fn mirrors_inline(&self) -> bool {
        if self.plan.is_cross_server() {
            return false;
        }
        match self.dialect {
            Dialect::Postgres => {
                self.plan.target.database.is_none()
                    || self.plan.target.database == self.plan.source.database
            }
            Dialect::Mysql => true,
        }
    }

    /// The share of reads the target serves now, in basis points: none
    /// while rolled back before the write switch.
    pub fn target_share(&self) -> u32 {
        match &self.rolled_back {
            Some(_)
                if super::read::primary_path(self.phase)
                    == switchyard_core::config::ReadPath::Source =>
            {
                0
            }
            _ => super::rules::target_share(self.phase, &self.reads),
        }
    }

    /// Whether the rule reads a key value from the statement (sticky by a
    /// column, or canary keys), so the execution's bound values matter.
    pub fn reads_keys(&self) -> bool {
        matches!(self.reads.sticky_by, StickyBy::Column(_)) || !self.reads.canary.keys.is_empty()
    }

    /// Whether the session's own connection (to `backend`) reaches the
    /// target table, or a second connection to the target's server must.
    pub fn target_backend(&self) -> &str {
        self.plan.target_backend()
    }
}

/// Whether a migration's live schemas are known and fit its mapping.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogState {
    /// Not loaded yet (starting, or a backend is down): reads stay on the
    /// source until it loads.
    Pending(String),
    /// Both tables are loaded and the mapping fits them.
    Ready(Arc<Mapping>),
    /// The mapping does not fit the live schemas; the reason names the
    /// column and the fix. Reads stay on the source.
    Refused(String),
}

impl CatalogState {
    /// The name `/migrations` and `/status` report.
    pub fn as_str(&self) -> &'static str {
        match self {
            CatalogState::Pending(_) => "pending",
            CatalogState::Ready(_) => "ready",
            CatalogState::Refused(_) => "refused",
        }
    }
}

/// Where a migration's rule in force came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleFrom {
    /// The configuration file.
    File,
    /// `PUT /migrations/{id}/reads`.
    Api,
    /// The control store (set through any proxy's admin API or the
    /// controller).
    Store,
}

impl RuleFrom {
    /// The name `/migrations` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleFrom::File => "file",
            RuleFrom::Api => "api",
            RuleFrom::Store => "store",
        }
    }
}

/// A read rule set through the admin API. It lasts until the file's rule
/// for that migration changes: `file` remembers which file rule it replaced.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleOverride {
    /// The file's rule when the override was set.
    pub file: Reads,
    /// The rule in force instead.
    pub reads: Arc<Reads>,
}

/// The runtime state merged into a [`Routing`].
#[derive(Clone, Debug, Default)]
pub struct Runtime {
    /// Read rules set through the admin API, by migration id.
    pub overrides: HashMap<String, RuleOverride>,
    /// The catalog of each migration, by id, as last loaded.
    pub catalogs: HashMap<String, CatalogState>,
    /// Automatic read rollbacks in force, by migration id.
    pub rollbacks: HashMap<String, Arc<RolledBack>>,
    /// The control store's state of each migration that has one, by id.
    pub stored: HashMap<String, Arc<Stored>>,
}

impl Runtime {
    /// Drops overrides whose file rule has changed since they were set (the
    /// file wins again) or whose migration is gone.
    pub fn prune(&mut self, config: &Config) {
        self.overrides.retain(|id, o| {
            config
                .migrations
                .iter()
                .any(|m| &m.id == id && m.reads == o.file)
        });
        self.rollbacks.retain(|id, r| {
            config
                .migrations
                .iter()
                .any(|m| &m.id == id && m.reads == r.file)
        });
        self.stored.retain(|id, _| config.migration(id).is_some());
    }
}

impl Routing {
    /// Merges a configuration with runtime state.
    pub fn build(config: &Config, generation: u64, runtime: &Runtime) -> Routing {
        let migrations = config
            .migrations
            .iter()
            .map(|m| {
                let stored = runtime.stored.get(&m.id).cloned();
                let stored_reads = stored.as_ref().and_then(|s| s.reads.clone());
                let (reads, rule_from) = match (stored_reads, runtime.overrides.get(&m.id)) {
                    (Some(reads), _) => (reads, RuleFrom::Store),
                    (None, Some(o)) if o.file == m.reads => (o.reads.clone(), RuleFrom::Api),
                    _ => (Arc::new(m.reads.clone()), RuleFrom::File),
                };
                let catalog = runtime
                    .catalogs
                    .get(&m.id)
                    .cloned()
                    .unwrap_or_else(|| CatalogState::Pending("not loaded yet".into()));
                let dialect = match config.backends.get(&m.backend).map(|b| b.kind) {
                    Some(BackendKind::Mysql) => Dialect::Mysql,
                    _ => Dialect::Postgres,
                };
                let (table_map, fields) = match &catalog {
                    CatalogState::Ready(mapping) => (
                        Some(Arc::new(table_map(config, m, dialect, mapping))),
                        Some(Arc::new(field_patch(mapping))),
                    ),
                    _ => (None, None),
                };
                MigrationRoute {
                    plan: Arc::new(m.clone()),
                    reads,
                    rule_from,
                    phase: stored.as_ref().map_or(m.phase, |s| s.phase),
                    catalog,
                    table_map,
                    fields,
                    dialect,
                    rolled_back: runtime.rollbacks.get(&m.id).cloned(),
                    stored,
                }
            })
            .collect();
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let migrations: Vec<MigrationRoute> = migrations;
        Routing {
            generation,
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            holds_writes: migrations
                .iter()
                .any(|m| m.stored.as_ref().is_some_and(|s| s.holding_writes)),
            migrations,
        }
    }

    /// Whether a statement names a migration's source or target table, so
    /// a prepared form of it must be decided again at each execution.
    /// Compares names only (a superset: a same-named table in another
    /// schema is decided too, and relayed).
    pub fn touches(&self, statement: &Statement) -> bool {
        self.migrations.iter().any(|m| m.names(statement, true))
    }

    /// Whether any migration's rule reads key values, so sessions decode an
    /// execution's bound values at all.
    pub fn reads_keys(&self) -> bool {
        self.migrations.iter().any(MigrationRoute::reads_keys)
    }

    /// The migration with this id.
    pub fn migration(&self, id: &str) -> Option<&MigrationRoute> {
        self.migrations.iter().find(|m| m.plan.id == id)
    }
}

/// The rewrite's view of a migration: both tables named as the server
/// resolves them, and every source column with its target column.
fn table_map(config: &Config, m: &Migration, dialect: Dialect, mapping: &Mapping) -> TableMap {
    let database = |db: &Option<String>, backend: &str| {
        db.clone()
            .or_else(|| {
                config
                    .backends
                    .get(backend)
                    .and_then(|b| b.database.clone())
            })
            .unwrap_or_default()
    };
    let (source_schema, target_schema) = match dialect {
        Dialect::Postgres => (
            m.source.schema.clone().unwrap_or_else(|| "public".into()),
            m.target
                .schema
                .clone()
                .or_else(|| m.source.schema.clone())
                .unwrap_or_else(|| "public".into()),
        ),
        Dialect::Mysql => {
            let source = database(&m.source.database, &m.backend);
            let target = m.target.database.clone().unwrap_or_else(|| source.clone());
            (source, target)
        }
    };
    TableMap {
        source: Relation {
            schema: source_schema,
            name: m.source.table.clone(),
        },
        target: Relation {
            schema: target_schema,
            name: m.target.table.clone(),
        },
        columns: mapping
            .columns
            .iter()
            .map(|c| ColumnMap {
                source: c.source.clone(),
                target: c.target.clone(),
                cast: match dialect {
                    Dialect::Postgres => c.cast.clone(),
                    Dialect::Mysql => None,
                },
            })
            .collect(),
    }
}

/// The target's columns as RowDescription reports them, mapped to the
/// source's; a recast column, which the server reports as computed (no
/// table), is known by its source name and the source's type.
fn field_patch(mapping: &Mapping) -> FieldPatch {
    let mut patch = FieldPatch::default();
    for pair in &mapping.columns {
        let (Some(source), Some(target)) = (
            mapping.source.column(&pair.source),
            mapping.target.column(&pair.target),
        ) else {
            continue;
        };
        let origin = (mapping.source.oid, source.position);
        patch
            .columns
            .push(((mapping.target.oid, target.position), origin));
        if pair.cast.is_some() {
            patch
                .computed
                .push(((pair.source.clone(), source.type_oid), origin));
        }
    }
    patch
}
