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

use switchyard_core::config::{Config, Migration, Phase, Reads};

use super::classify::Statement;
use crate::catalog::mapping::Mapping;

/// Everything routing needs, for one generation of config and state.
#[derive(Debug, Default)]
pub struct Routing {
    /// The configuration generation it was built from.
    pub generation: u64,
    /// One entry per migration, in the file's order.
    pub migrations: Vec<MigrationRoute>,
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
}

impl RuleFrom {
    /// The name `/migrations` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleFrom::File => "file",
            RuleFrom::Api => "api",
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
    }
}

impl Routing {
    /// Merges a configuration with runtime state.
    pub fn build(config: &Config, generation: u64, runtime: &Runtime) -> Routing {
        let migrations = config
            .migrations
            .iter()
            .map(|m| {
                let (reads, rule_from) = match runtime.overrides.get(&m.id) {
                    Some(o) if o.file == m.reads => (o.reads.clone(), RuleFrom::Api),
                    _ => (Arc::new(m.reads.clone()), RuleFrom::File),
                };
                MigrationRoute {
                    plan: Arc::new(m.clone()),
                    reads,
                    rule_from,
                    phase: m.phase,
                    catalog: runtime
                        .catalogs
                        .get(&m.id)
                        .cloned()
                        .unwrap_or_else(|| CatalogState::Pending("not loaded yet".into())),
                }
            })
            .collect();
        Routing {
            generation,
            migrations,
        }
    }

    /// Whether a statement names a migration's source or target table, so
    /// a prepared form of it must be decided again at each execution.
    /// Compares names only (a superset: a same-named table in another
    /// schema is decided too, and relayed).
    pub fn touches(&self, statement: &Statement) -> bool {
        if self.migrations.is_empty() {
            return false;
        }
        statement.tables.iter().any(|t| {
            self.migrations.iter().any(|m| {
                t.name.eq_ignore_ascii_case(&m.plan.source.table)
                    || t.name.eq_ignore_ascii_case(&m.plan.target.table)
            })
        })
    }

    /// The migration with this id.
    pub fn migration(&self, id: &str) -> Option<&MigrationRoute> {
        self.migrations.iter().find(|m| m.plan.id == id)
    }
}
