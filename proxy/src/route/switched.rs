//! Writes after the write switch: the target takes them. A client's write
//! of the source is rewritten as the same write of the target
//! (`rewrite::write_form`) and, until the migration completes, mirrored
//! back to the source in the client's own transaction — the dual write
//! with the tables' roles swapped — so a rollback of the switch loses
//! nothing. A write that cannot be rewritten with certainty is refused:
//! it must not land in a table no one reads.

use std::sync::Arc;

use switchyard_core::config::Phase;

use super::classify::{Dialect, Statement, StatementKind};
use super::decide::{Decision, Plan, SessionFacts};
use super::rewrite::{self, ReadForm, Scope, TableMap};
use super::routing::{CatalogState, MigrationRoute};
use super::write::{self, fence, MirroredWrite};

/// The decision for a write in `m`'s write switch or after it; `None`
/// when the statement does not write the source.
pub fn decide(
    m: &MigrationRoute,
    facts: &SessionFacts<'_>,
    statement: &Statement,
    sql: &str,
) -> Option<Decision> {
    if statement.kind != StatementKind::Write || !m.names(statement, false) {
        return None;
    }
    let refuse = |why: &str| Some(Decision::Refuse(Arc::new(fence::not_rewritten(m, why))));
    let (Some(map), CatalogState::Ready(mapping)) = (&m.table_map, &m.catalog) else {
        return refuse("the proxy has not loaded both tables' catalogs yet; retry in a moment");
    };
    if !m.mirrors_inline() {
        return refuse("the target is in another database, which one transaction cannot reach");
    }
    let scope = Scope {
        default_schema: facts.schema,
    };
    let target_sql = match rewrite::write_form(m.dialect, sql, map, &scope) {
        ReadForm::Untouched => return None,
        ReadForm::Source {
            target: Ok(sql), ..
        } => sql,
        ReadForm::Source {
            target: Err(reason),
            ..
        } => {
            return refuse(&format!(
                "this statement cannot be rewritten for the target with certainty ({reason})"
            ))
        }
    };
    if m.phase == Phase::Complete {
        return Some(Decision::Plan(Arc::new(Plan::rewrite(target_sql))));
    }
    // The mirror back: the target is its primary now.
    let back = map.inverse();
    let key: Vec<String> = m
        .plan
        .source
        .primary_key
        .iter()
        .map(|k| m.plan.target_column(k).to_string())
        .collect();
    let key_types = key_types(&mapping.target, &key);
    let mirror_facts = write::MirrorFacts {
        migration: &m.plan.id,
        on_error: m.plan.on_mirror_error,
        key: &key,
        default_schema: facts.schema,
        key_types: &key_types,
        allowed: &m.plan.allow_unmirrored,
        outbox: false,
    };
    if m.dialect == Dialect::Mysql
        && !guarded(&m.plan.id, &mapping.target, true)
        && m.stored.is_none()
    {
        return refuse("the target's guard triggers are not installed, so the mirror back to the source cannot learn which rows a write touches");
    }
    match write::mirror(m.dialect, &back, &mirror_facts, &target_sql, true) {
        None => Some(Decision::Plan(Arc::new(Plan::rewrite(target_sql)))),
        Some(Err(refusal)) => Some(Decision::Refuse(Arc::new(refusal))),
        Some(Ok(mirrored)) => Some(mirrored_plan(m, &back, mirrored, Some(target_sql))),
    }
}

/// The plan of a mirrored write: the program, and (PostgreSQL) the tag and
/// trim that give the client the answer of its own statement. `rewritten`
/// is the client's statement as it must run, when not as it came (MySQL's
/// program runs the client's step "as sent": this text then).
pub fn mirrored_plan(
    m: &MigrationRoute,
    map: &TableMap,
    mirrored: MirroredWrite,
    rewritten: Option<String>,
) -> Decision {
    let client_sql = mirrored
        .program
        .steps
        .iter()
        .find_map(|s| match (&s.role, &s.sql.0[..]) {
            (super::program::Role::Client, [super::program::Part::Text(sql)]) => Some(sql.clone()),
            _ => None,
        });
    let postgres = m.dialect == Dialect::Postgres;
    Decision::Plan(Arc::new(Plan {
        sql: client_sql.or(rewritten),
        program: Some(mirrored.program),
        tag: postgres.then_some(mirrored.tag),
        trim: postgres.then_some(mirrored.trim),
        mirror: Some(m.plan.id.as_str().into()),
        mirror_target: Some(map.target.name.as_str().into()),
        outbox: !m.mirrors_inline(),
        ..Plan::rewrite(String::new())
    }))
}

/// The SQL types of `table`'s key columns, in key order (MySQL's mirror
/// reads the keys its guard collected as these types).
pub fn key_types(table: &switchyard_core::schema::TableSchema, key: &[String]) -> Vec<String> {
    key.iter()
        .map(|k| {
            table
                .column(k)
                .map_or_else(|| "TEXT".to_string(), |c| c.type_name.clone())
        })
        .collect()
}

/// Whether a MySQL migration's guard triggers are all on `table` (the
/// source's guard, or with `on_target` the target's).
pub fn guarded(
    migration: &str,
    table: &switchyard_core::schema::TableSchema,
    on_target: bool,
) -> bool {
    switchyard_core::store::mysql::guard_triggers(migration, on_target)
        .iter()
        .all(|name| table.triggers.iter().any(|t| t == name))
}
