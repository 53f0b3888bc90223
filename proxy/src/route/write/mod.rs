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

pub mod mysql;
pub mod pg;

#[cfg(test)]
mod tests;

use switchyard_core::config::{OnMirrorError, Phase};

use super::classify::Dialect;
use super::program::Program;
use super::rewrite::TableMap;

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
        Dialect::Mysql => names_source.then(|| Ok(mysql::mirror(map, facts, facts.key_types))),
    }
}
