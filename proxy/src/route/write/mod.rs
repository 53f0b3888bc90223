//! The dual write's router: a write to a migration's primary table, while
//! the migration mirrors, becomes a program that writes the secondary in
//! the same transaction, by row image (DESIGN.md, "Writes: row-image
//! mirroring").
//!
//! Deciding is pure: the statement's text and the migration's table map in,
//! a [`Plan`] out. Statements are never replayed on the secondary: the
//! rows the client's statement wrote are read back from it (PostgreSQL's
//! `RETURNING`, inside the same statement), so `now()`, `random()`,
//! sequences, defaults and BEFORE triggers cannot make the two tables
//! differ.
//!
//! What the router cannot mirror with certainty it refuses ([`Refusal`]):
//! the session answers with an error naming the migration, and nothing is
//! written. What it does not see at all (a cascade, a function, a client
//! connected straight to the database) the guard trigger on the source
//! records in the repair queue.

pub mod fence;
pub mod mysql;
pub mod pg;

#[cfg(test)]
mod tests;

use sqlparser::ast::{self, ObjectName};
use switchyard_core::config::{OnMirrorError, Phase, Unmirrored};

use super::classify::Dialect;
use super::program::Program;
use super::rewrite::{Relation, TableMap};

/// Whether writes of the source are mirrored to the target in a phase.
pub fn mirrors(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::DualWrite
            | Phase::Backfill
            | Phase::Validate
            | Phase::ReadRamp
            | Phase::ReadsOnTarget
    )
}

/// What one migration's mirror needs to know, beyond its tables.
#[derive(Clone, Copy, Debug)]
pub struct MirrorFacts<'a> {
    /// The migration's id: the guard's marker and the repair queue's key.
    pub migration: &'a str,
    /// What a failed mirror write does to the client's write.
    pub on_error: OnMirrorError,
    /// The source table's primary key, in key order (source names).
    pub key: &'a [String],
    /// Where unqualified table names resolve for the session.
    pub default_schema: Option<&'a str>,
    /// The source's key columns' SQL types, in key order (MySQL reads the
    /// keys the guard collected as these types).
    pub key_types: &'a [String],
    /// The writes the migration lets through unmirrored.
    pub allowed: &'a [Unmirrored],
    /// The target is on another server (or, on PostgreSQL, in another
    /// database): the written keys go to the outbox, for the applier.
    pub outbox: bool,
}

/// A mirrored write: the program the session runs, and how the client's
/// answer is made the one its statement alone would have given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirroredWrite {
    /// The statements, framed in one transaction by the run.
    pub program: Program,
    /// The client's command tag, with `{rows}` for the row count.
    pub tag: String,
    /// How the client step's rows are cut back to the client's own.
    pub trim: crate::wire::pg::message::Trim,
}

/// Why a write of a mirrored table is refused. The message names the
/// migration and says what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("switchyard: migration `{migration}` mirrors writes of {table}, and {reason}; {fix}")]
pub struct Refusal {
    /// The migration's id.
    pub migration: String,
    /// The source table as the client named it.
    pub table: String,
    /// What the proxy cannot mirror.
    pub reason: String,
    /// What the client can do instead.
    pub fix: String,
    /// The `reason` label of `switchyard_rejected_writes_total`.
    pub label: &'static str,
}

impl Refusal {
    /// Counts the refusal (`switchyard_rejected_writes_total`), once per
    /// refused statement, whichever protocol refused it.
    pub fn count(&self) {
        metrics::counter!(
            switchyard_core::names::REJECTED_WRITES_TOTAL,
            "migration" => self.migration.clone(),
            "reason" => self.label
        )
        .increment(1);
    }
}

/// The mirror of one client text that writes the source, per dialect;
/// `None` when the text does not write the source table. MySQL's mirror
/// learns the written keys from the guard, so any write that names the
/// source (`names_source`, from the classification) runs under it.
pub fn mirror(
    dialect: Dialect,
    map: &TableMap,
    facts: &MirrorFacts<'_>,
    sql: &str,
    names_source: bool,
) -> Option<Result<MirroredWrite, Refusal>> {
    match dialect {
        Dialect::Postgres => pg::mirror(map, facts, sql),
        Dialect::Mysql => {
            // Only a text that may truncate or alter a table, or names the
            // target, is parsed: every other write runs under the guard.
            if may_be_unmirrorable(sql) || names_target(map, sql) {
                let statements = super::classify::parse(Dialect::Mysql, sql).unwrap_or_default();
                if let Some(refusal) = refused(Dialect::Mysql, &statements, map, facts) {
                    return Some(Err(refusal));
                }
            }
            names_source.then(|| Ok(mysql::mirror(map, facts, facts.key_types)))
        }
    }
}

/// A cheap look at a text's first word: statements that no row trigger
/// sees or that change a table's shape.
fn may_be_unmirrorable(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(
        word.as_str(),
        "truncate" | "alter" | "drop" | "rename" | "create" | "copy" | "merge"
    )
}

fn names_target(map: &TableMap, sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains(&map.target.name.to_ascii_lowercase())
}

/// The first statement of a text the dual write must refuse, as a refusal;
/// `None` when every statement may run (mirrored or not touching either
/// table), or the migration allows what it is.
pub fn refused(
    dialect: Dialect,
    statements: &[ast::Statement],
    map: &TableMap,
    facts: &MirrorFacts<'_>,
) -> Option<Refusal> {
    use ast::Statement as S;
    let names = |name: &ObjectName, relation: &Relation| {
        names_relation(dialect, name, relation, facts.default_schema)
    };
    let either = |name: &ObjectName| names(name, &map.source) || names(name, &map.target);
    for statement in statements {
        let kind = match statement {
            S::Truncate(t) if t.table_names.iter().any(|t| either(&t.name)) => Unmirrored::Truncate,
            S::Copy {
                source: ast::CopySource::Table { table_name, .. },
                to: false,
                ..
            } if names(table_name, &map.source) => Unmirrored::Copy,
            S::Merge(m) if table_factor_names(&m.table, &|n| names(n, &map.source)) => {
                Unmirrored::Merge
            }
            S::AlterTable(a) if either(&a.name) => Unmirrored::Ddl,
            S::Drop { names: dropped, .. } if dropped.iter().any(either) => Unmirrored::Ddl,
            S::RenameTable(renames) if renames.iter().any(|r| either(&r.old_name)) => {
                Unmirrored::Ddl
            }
            S::CreateIndex(c) if either(&c.table_name) => Unmirrored::Ddl,
            _ if written_table(statement).is_some_and(|n| names(n, &map.target)) => {
                Unmirrored::TargetWrite
            }
            _ => continue,
        };
        if facts.allowed.contains(&kind) {
            continue;
        }
        let (reason, fix) = match kind {
            Unmirrored::Truncate => ("no trigger sees the rows a TRUNCATE removes", "delete the rows with DELETE, or add `truncate` to the migration's allow_unmirrored and run a diff after"),
            Unmirrored::Copy => ("COPY FROM is not mirrored", "load the rows with INSERT, or add `copy` to allow_unmirrored (the guard queues the rows)"),
            Unmirrored::Merge => ("PostgreSQL 15 returns no rows from MERGE, so its keys cannot be mirrored", "use INSERT ... ON CONFLICT, or add `merge` to allow_unmirrored (the guard queues the rows)"),
            Unmirrored::Ddl => ("a change of either table's shape would break the column mapping", "finish or roll back the migration first, or add `ddl` to allow_unmirrored and reload"),
            Unmirrored::TargetWrite => ("the target table is written only by the mirror", "write the source table; the proxy mirrors it"),
        };
        return Some(Refusal {
            migration: facts.migration.to_string(),
            table: format!("{}.{}", map.source.schema, map.source.name),
            reason: reason.to_string(),
            fix: fix.to_string(),
            label: kind.label(),
        });
    }
    None
}

/// The table an INSERT, UPDATE or DELETE writes.
fn written_table(statement: &ast::Statement) -> Option<&ObjectName> {
    match statement {
        ast::Statement::Insert(i) => match &i.table {
            ast::TableObject::TableName(name) => Some(name),
            _ => None,
        },
        ast::Statement::Update(u) => match &u.table.relation {
            ast::TableFactor::Table { name, .. } => Some(name),
            _ => None,
        },
        ast::Statement::Delete(d) => {
            let (ast::FromTable::WithFromKeyword(from) | ast::FromTable::WithoutKeyword(from)) =
                &d.from;
            match from.first().map(|t| &t.relation) {
                Some(ast::TableFactor::Table { name, .. }) => Some(name),
                _ => None,
            }
        }
        ast::Statement::Query(q) => match &*q.body {
            ast::SetExpr::Insert(s) | ast::SetExpr::Update(s) | ast::SetExpr::Delete(s) => {
                written_table(s)
            }
            _ => None,
        },
        _ => None,
    }
}

fn table_factor_names(factor: &ast::TableFactor, names: &dyn Fn(&ObjectName) -> bool) -> bool {
    matches!(factor, ast::TableFactor::Table { name, .. } if names(name))
}

/// Whether `name` as a statement wrote it is `relation`: PostgreSQL folds
/// unquoted names and resolves an unqualified one in the session's
/// schema; MySQL compares names without regard to case (a superset where
/// the server is case-sensitive, which only refuses more).
pub fn names_relation(
    dialect: Dialect,
    name: &ObjectName,
    relation: &Relation,
    default_schema: Option<&str>,
) -> bool {
    let parts: Vec<&ast::Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
    let same = |ident: &ast::Ident, folded: &str| match dialect {
        Dialect::Postgres => match ident.quote_style {
            Some(_) => ident.value == folded,
            None => ident.value.to_lowercase() == folded,
        },
        Dialect::Mysql => ident.value.eq_ignore_ascii_case(folded),
    };
    match &parts[..] {
        [table] => {
            same(table, &relation.name)
                && default_schema.is_some_and(|s| match dialect {
                    Dialect::Postgres => s == relation.schema,
                    Dialect::Mysql => s.eq_ignore_ascii_case(&relation.schema),
                })
        }
        [schema, table] => same(schema, &relation.schema) && same(table, &relation.name),
        _ => false,
    }
}
