//! The production router: reads of a migrated table follow the
//! migration's phase and rule, rewritten for the target when they go
//! there; everything else is relayed untouched.
//!
//! Deciding is pure. The one piece of memory is a cache of rewrites by
//! statement text, so a prepared statement that runs for hours is parsed
//! and rewritten once per routing generation, not per execution.

use std::sync::Arc;

use dashmap::DashMap;
use switchyard_core::config::{Phase, ReadPath, StickyBy};

use super::classify::{Statement, StatementKind};
use super::decide::{
    Connection, Decision, Plan, ReadRoute, Route, SessionFacts, ShadowRoute, Stage,
};
use super::rewrite::{self, KeyValue, ReadForm, Scope};
use super::routing::{MigrationRoute, Routing};
use super::rules::{self, ReadFacts};

/// Rewrites kept at most; half are dropped when full.
const CACHE_ENTRIES: usize = 10_000;

/// The cache's hasher: fixed keys, so every session's lookup of one text
/// lands on the same entry.
static FIXED: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// Routes reads of migrated tables; relays everything else.
#[derive(Debug, Default)]
pub struct MigrationRouter {
    /// `(generation, migration index, hash of schema and text)` → the text,
    /// the schema and its read form. Keyed by a hash so a lookup allocates
    /// nothing; the stored text and schema rule out a collision.
    cache: DashMap<(u64, usize, u64), Arc<Cached>>,
}

/// One cached read form and what it was computed for.
#[derive(Debug)]
struct Cached {
    /// The statement text.
    sql: String,
    /// The schema unqualified names resolved to.
    schema: Option<String>,
    /// The read form.
    form: Arc<ReadForm>,
}

impl Route for MigrationRouter {
    fn decide(
        &self,
        routing: &Routing,
        facts: &SessionFacts<'_>,
        statement: &Statement,
        sql: &str,
    ) -> Decision {
        // Preparing: the client's own text describes the statement (the
        // source's shape); each execution is decided when it runs.
        if facts.stage == Stage::Prepare
            || statement.kind != StatementKind::Read
            || !statement.parsed
            || !routing.touches(statement)
        {
            return Decision::Relay;
        }
        for (index, m) in routing.migrations.iter().enumerate() {
            if let Some(plan) = self.read(routing.generation, index, m, facts, statement, sql) {
                return Decision::Plan(Arc::new(plan));
            }
        }
        Decision::Relay
    }
}

impl MigrationRouter {
    /// The plan of a read under one migration; `None` when the read does
    /// not read its source table.
    fn read(
        &self,
        generation: u64,
        index: usize,
        m: &MigrationRoute,
        facts: &SessionFacts<'_>,
        statement: &Statement,
        sql: &str,
    ) -> Option<Plan> {
        if m.dialect != facts.dialect {
            return None;
        }
        let source = |arm: Option<String>,
                      unroutable: Option<&'static str>,
                      shadow: Option<Arc<ShadowRoute>>| {
            Plan::source_read(ReadRoute {
                migration: m.plan.id.as_str().into(),
                path: ReadPath::Source,
                arm,
                unroutable,
                timeout: None,
                shadow,
            })
        };
        let Some(map) = &m.table_map else {
            // The catalog is not ready: every read stays on the source.
            return m.names(statement, false).then(|| source(None, None, None));
        };
        let form = self.form(generation, index, m, map, facts, sql);
        let ReadForm::Source { target, key } = &*form else {
            return None;
        };
        let primary = primary_path(m.phase);
        let key = key.as_ref().and_then(|k| match k {
            KeyValue::Literal(text) => Some(text.as_str()),
            KeyValue::Param(n) => facts.params.get(n - 1).and_then(|v| v.as_deref()),
        });
        let choice = match facts.pinned_path(&m.plan.id) {
            Some(path) => rules::Choice { path, arm: None },
            // Row locks are taken where the writes run, and a rolled-back
            // migration reads there until an operator's new rule.
            None if statement.locking || m.rolled_back.is_some() => rules::Choice {
                path: primary,
                arm: None,
            },
            None => rules::choose(
                &m.plan.id,
                m.phase,
                &m.reads,
                &ReadFacts {
                    session: facts.session,
                    user: facts.user,
                    application: facts.application,
                    client: facts.client,
                    sql,
                    key,
                },
            ),
        };
        let shadow = match (&m.reads.shadow, target) {
            (Some(shadow), Ok(sql)) if shadow.percent.basis_points() > 0 => {
                Some(Arc::new(ShadowRoute {
                    basis_points: shadow.percent.basis_points(),
                    target_sql: sql.clone(),
                    key: m.plan.source.primary_key.clone(),
                    target_backend: (m.target_backend() != m.plan.backend)
                        .then(|| m.target_backend().to_string()),
                }))
            }
            _ => None,
        };
        if choice.path == ReadPath::Source {
            return Some(source(choice.arm, None, shadow));
        }
        let sql = match target {
            Ok(sql) => sql.clone(),
            Err(reason) => return Some(source(choice.arm, Some(reason.label()), None)),
        };
        let connection = if m.target_backend() == facts.backend {
            Connection::Own
        } else {
            Connection::Backend(m.target_backend().to_string())
        };
        Some(Plan {
            connection,
            read: Some(ReadRoute {
                migration: m.plan.id.as_str().into(),
                path: ReadPath::Target,
                arm: choice.arm,
                unroutable: None,
                timeout: m.plan.rollback.read_timeout,
                shadow,
            }),
            fields: m.fields.clone(),
            ..Plan::rewrite(sql)
        })
    }

    /// The read form of `sql` under one migration, from the cache when
    /// this text was seen in this generation.
    fn form(
        &self,
        generation: u64,
        index: usize,
        m: &MigrationRoute,
        map: &rewrite::TableMap,
        facts: &SessionFacts<'_>,
        sql: &str,
    ) -> Arc<ReadForm> {
        let hash = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = FIXED.build_hasher();
            facts.schema.hash(&mut h);
            sql.hash(&mut h);
            h.finish()
        };
        let key = (generation, index, hash);
        if let Some(hit) = self.cache.get(&key) {
            if hit.sql == sql && hit.schema.as_deref() == facts.schema {
                return hit.form.clone();
            }
        }
        let sticky = match &m.reads.sticky_by {
            StickyBy::Column(column) => Some(column.as_str()),
            _ => None,
        };
        let scope = Scope {
            default_schema: facts.schema,
        };
        let form = Arc::new(rewrite::read_form(m.dialect, sql, map, &scope, sticky));
        if self.cache.len() >= CACHE_ENTRIES {
            let mut keep = CACHE_ENTRIES / 2;
            self.cache.retain(|_, _| {
                keep = keep.saturating_sub(1);
                keep > 0
            });
        }
        let cached = Cached {
            sql: sql.to_string(),
            schema: facts.schema.map(str::to_string),
            form: form.clone(),
        };
        self.cache.insert(key, Arc::new(cached));
        form
    }
}

/// The table that takes the writes in a phase: the source until the write
/// switch, the target from then on.
pub fn primary_path(phase: Phase) -> ReadPath {
    match phase {
        Phase::WriteSwitch | Phase::Complete => ReadPath::Target,
        _ => ReadPath::Source,
    }
}

/// The paths one transaction has pinned, by migration: its first routed
/// read pins that read's path; a write or a locking read pins the primary
/// table, so a transaction never mixes the two tables.
#[derive(Debug, Default)]
pub struct Affinity {
    /// Migration id and path, at most one entry per migration.
    pinned: Vec<(Arc<str>, ReadPath)>,
}

impl Affinity {
    /// What the router reads.
    pub fn as_slice(&self) -> &[(Arc<str>, ReadPath)] {
        &self.pinned
    }

    /// Records what one statement run inside a transaction pins.
    pub fn note(&mut self, routing: &Routing, statement: &Statement, decision: &Decision) {
        if let Decision::Plan(plan) = decision {
            if let Some(read) = plan.read.as_ref().filter(|_| !statement.locking) {
                self.pin(read.migration.clone(), read.path);
                return;
            }
        }
        if statement.kind == StatementKind::Write || statement.locking {
            // The reads after a write must see it: it re-pins the table
            // that takes the writes, even over an earlier read's path.
            for m in routing
                .migrations
                .iter()
                .filter(|m| m.names(statement, true))
            {
                let migration: Arc<str> = m.plan.id.as_str().into();
                self.pinned.retain(|(id, _)| *id != migration);
                self.pinned.push((migration, primary_path(m.phase)));
            }
        }
    }

    fn pin(&mut self, migration: Arc<str>, path: ReadPath) {
        if !self.pinned.iter().any(|(id, _)| *id == migration) {
            self.pinned.push((migration, path));
        }
    }

    /// The transaction ended.
    pub fn clear(&mut self) {
        self.pinned.clear();
    }

    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.pinned.is_empty()
    }
}

/// The schema unqualified names resolve to under a PostgreSQL
/// `search_path` value (`"$user", public`, `app, public`): its first
/// schema, skipping `$user` (the proxy assumes no schema is named after a
/// login role, the usual setup). `None` when it cannot be told: an empty
/// path or a value that is not a plain list.
pub fn search_path_schema(value: &str) -> Option<String> {
    value
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(quoted) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                quoted.replace("\"\"", "\"")
            } else if let Some(quoted) = s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                // `SET search_path = 'a, b'` is one quoted list.
                quoted.to_string()
            } else {
                s.to_ascii_lowercase()
            }
        })
        .find(|s| s != "$user")
        .filter(|s| {
            s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

/// The new search_path of a `SET [SESSION|LOCAL] search_path {TO|=} ...`
/// statement: `Some(schema)` for a path that resolves, `Some(None)` for one
/// that cannot be told, `None` when the text is not such a statement.
pub fn set_search_path(sql: &str) -> Option<Option<String>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let lower = text.to_ascii_lowercase();
    let rest = lower.strip_prefix("set")?.trim_start();
    let rest = rest
        .strip_prefix("session ")
        .or_else(|| rest.strip_prefix("local "))
        .unwrap_or(rest)
        .trim_start();
    let rest = rest.strip_prefix("search_path")?.trim_start();
    let value = rest
        .strip_prefix("to ")
        .or_else(|| rest.strip_prefix('='))?
        .trim();
    if value == "default" {
        return Some(Some("public".into()));
    }
    // Quoted names keep their case: take the value from the original text.
    let original = &text[text.len() - value.len()..];
    Some(search_path_schema(original))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_paths() {
        let cases = [
            ("\"$user\", public", Some("public")),
            ("app, public", Some("app")),
            ("\"App\", public", Some("App")),
            ("APP", Some("app")),
            ("", None),
            ("'app, public'", None),
        ];
        for (value, want) in cases {
            assert_eq!(search_path_schema(value).as_deref(), want, "{value}");
        }
        let sets = [
            ("SET search_path TO app, public", Some(Some("app"))),
            ("set search_path = \"$user\", public;", Some(Some("public"))),
            ("SET SESSION search_path TO DEFAULT", Some(Some("public"))),
            ("SET LOCAL search_path = \"Mixed\"", Some(Some("Mixed"))),
            ("SET statement_timeout = 0", None),
            ("SELECT 1", None),
        ];
        for (sql, want) in sets {
            assert_eq!(
                set_search_path(sql),
                want.map(|w| w.map(str::to_string)),
                "{sql}"
            );
        }
    }
}
