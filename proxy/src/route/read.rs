//! The production router: reads of a migrated table follow the
//! migration's phase and rule, rewritten for the target when they go
//! there; everything else is relayed untouched.
//!
//! Deciding is pure. The one piece of memory is the read-form cache
//! (`route::shape`): a read is parsed and rewritten once per statement
//! shape and routing generation, not per execution, whether its text
//! carries literals or placeholders.

use std::sync::Arc;

use switchyard_core::config::{Phase, ReadPath, StickyBy};

use super::classify::{Dialect, Statement, StatementKind};
use super::decide::{
    Connection, Decision, Plan, ReadRoute, Route, SessionFacts, ShadowRoute, Stage,
};
use super::rewrite::Scope;
use super::routing::{CatalogState, MigrationRoute, Routing};
use super::rules::{self, ReadFacts};
use super::shape::{FormCache, FormInputs, Key};
use super::write;

/// Routes reads of migrated tables; relays everything else.
#[derive(Debug, Default)]
pub struct MigrationRouter {
    /// Read forms by statement shape (and by text where a shape cannot
    /// serve), per generation and migration.
    forms: FormCache,
    /// Write decisions by routing build (`Routing::serial`), protocol,
    /// default schema and exact text: a prepared write (the same text at every execution) is
    /// parsed once, not at every Bind.
    writes: dashmap::DashMap<(u64, Dialect, Option<String>, String), Decision>,
}

/// Write decisions kept before the cache is emptied.
const WRITE_CACHE: usize = 4096;

impl Route for MigrationRouter {
    fn decide(
        &self,
        routing: &Routing,
        facts: &SessionFacts<'_>,
        statement: &Statement,
        sql: &str,
    ) -> Decision {
        if matches!(statement.kind, StatementKind::Write | StatementKind::Ddl)
            && statement.parsed
            && facts.stage == Stage::Execute
            && routing.touches(statement)
        {
            let key = (
                routing.serial,
                facts.dialect,
                facts.schema.map(str::to_string),
                sql.to_string(),
            );
            if let Some(decision) = self.writes.get(&key) {
                return decision.clone();
            }
            let decision = write_decision(routing, facts, statement, sql);
            if self.writes.len() >= WRITE_CACHE {
                self.writes.clear();
            }
            self.writes.insert(key, decision.clone());
            return decision;
        }
        if facts.stage == Stage::Prepare
            && statement.parsed
            && routing
                .migrations
                .iter()
                .any(|m| m.phase == Phase::Complete && m.names(statement, false))
        {
            // Once complete the source is archived: the client's text no
            // longer prepares there, so it is prepared as it runs.
            let running = SessionFacts {
                stage: Stage::Execute,
                ..*facts
            };
            return self.decide(routing, &running, statement, sql);
        }
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
        let sticky_column = match &m.reads.sticky_by {
            StickyBy::Column(column) => Some(column.as_str()),
            _ => None,
        };
        let inputs = FormInputs {
            dialect: m.dialect,
            map,
            scope: Scope {
                default_schema: facts.schema,
            },
            sticky_column,
        };
        let form = self.forms.form(generation, index, &inputs, sql);
        if !form.reads_source() {
            return None;
        }
        let primary = primary_path(m.phase);
        let key = form.key();
        let key = key.as_ref().and_then(|k| match k {
            Key::Literal(text) => Some(&**text),
            Key::Param(n) => facts
                .params
                .get(n.checked_sub(1)?)
                .and_then(|v| v.as_deref()),
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
        // The target form is spliced only when it is needed: to shadow the
        // read, or to send it there.
        let shadow = match &m.reads.shadow {
            Some(shadow) if shadow.percent.basis_points() > 0 => match form.target() {
                Some(Ok(sql)) => Some(Arc::new(ShadowRoute {
                    basis_points: shadow.percent.basis_points(),
                    target_sql: sql,
                    key: m.plan.source.primary_key.clone(),
                    target_backend: (m.target_backend() != m.plan.backend)
                        .then(|| m.target_backend().to_string()),
                })),
                _ => None,
            },
            _ => None,
        };
        if choice.path == ReadPath::Source {
            return Some(source(choice.arm, None, shadow));
        }
        let sql = match &shadow {
            Some(shadow) => shadow.target_sql.clone(),
            None => match form.target() {
                Some(Ok(sql)) => sql,
                Some(Err(reason)) => return Some(source(choice.arm, Some(reason.label()), None)),
                None => return None,
            },
        };
        let target_database = m.plan.target.database.as_deref();
        let connection = if m.target_backend() != facts.backend {
            Connection::Backend(m.target_backend().to_string())
        } else if let (Dialect::Postgres, Some(database)) = (m.dialect, target_database) {
            if database == facts.database {
                Connection::Own
            } else {
                Connection::Database {
                    backend: facts.backend.to_string(),
                    database: database.to_string(),
                }
            }
        } else {
            Connection::Own
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
}

/// A write of a migrated table: mirrored while its migration mirrors (on
/// one server; the outbox carries the rest), refused when it cannot be
/// mirrored with certainty, relayed otherwise.
fn write_decision(
    routing: &Routing,
    facts: &SessionFacts<'_>,
    statement: &Statement,
    sql: &str,
) -> Decision {
    for m in &routing.migrations {
        if m.dialect != facts.dialect {
            continue;
        }
        if let Some(refusal) = write::fence::fenced(m, statement) {
            return Decision::Refuse(Arc::new(refusal));
        }
        if matches!(m.phase, Phase::WriteSwitch | Phase::Complete) {
            match super::switched::decide(m, facts, statement, sql) {
                Some(decision) => return decision,
                None => continue,
            }
        }
        if !write::mirrors(m.phase) {
            continue;
        }
        // Until the catalog is loaded the mirror cannot be built; the
        // guard on the source queues what is written meanwhile.
        let (Some(map), CatalogState::Ready(mapping)) = (&m.table_map, &m.catalog) else {
            continue;
        };
        let key_types = super::switched::key_types(&mapping.source, &m.plan.source.primary_key);
        let mirror_facts = write::MirrorFacts {
            migration: &m.plan.id,
            on_error: m.plan.on_mirror_error,
            key: &m.plan.source.primary_key,
            default_schema: facts.schema,
            key_types: &key_types,
            allowed: &m.plan.allow_unmirrored,
            outbox: !m.mirrors_inline(),
        };
        let names_source = statement.kind == StatementKind::Write && m.names(statement, false);
        // A phase the control store set was entered by the controller,
        // which installs the guard first; the catalog's list of triggers
        // may lag it by one load (it reloads on every phase change), and
        // writes in that moment are mirrored, not refused.
        let guard_known =
            super::switched::guarded(&m.plan.id, &mapping.source, false) || m.stored.is_some();
        if names_source && m.dialect == Dialect::Mysql && !guard_known {
            // Without its guard the MySQL mirror cannot learn which rows a
            // write touched: the write would go unmirrored and unrecorded.
            return Decision::Refuse(Arc::new(write::Refusal {
                migration: m.plan.id.clone(),
                table: format!("{}.{}", map.source.schema, map.source.name),
                reason: "its guard triggers are not installed, so the proxy cannot learn which rows a write touches".into(),
                fix: "install the control store and the guard (`switchyard init`, or the DDL `proxy/examples/store_ddl.rs` prints); the proxy sees them at its next catalog load (a reload, or within a minute)".into(),
                label: "no_guard",
            }));
        }
        match write::mirror(m.dialect, map, &mirror_facts, sql, names_source) {
            None => continue,
            Some(Err(refusal)) => return Decision::Refuse(Arc::new(refusal)),
            Some(Ok(mirrored)) => return super::switched::mirrored_plan(m, map, mirrored, None),
        }
    }
    Decision::Relay
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
