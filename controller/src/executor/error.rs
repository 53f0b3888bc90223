//! Why the executor could not carry a migration further, as the operator
//! reads it: each message names the migration and the fix.

use switchyard_consistency::diff::conn::DbError;

use crate::backfill::BackfillError;
use crate::live::LiveError;

/// Why an executor step failed. The stored state is whatever the last
/// successful compare-and-set wrote; rerunning the command resumes.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The migration could not be resolved or a side reached.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// A statement on the control store or a side failed.
    #[error("migration `{migration}`: {what} failed: {error}")]
    Query {
        /// The migration's id.
        migration: String,
        /// What the executor was doing.
        what: &'static str,
        /// The server's message and the statement.
        error: DbError,
    },
    /// The control store is not installed in the source's schema.
    #[error("migration `{migration}`: the control store is not installed in `{store}` on the source's server; run `switchyard init` first")]
    NoStore {
        /// The migration's id.
        migration: String,
        /// The schema (PostgreSQL) or database (MySQL) searched.
        store: String,
    },
    /// The stored state could not be read back.
    #[error("migration `{migration}`: the stored state is unreadable ({what}); check `switchyard_state` for this migration")]
    BadState {
        /// The migration's id.
        migration: String,
        /// Which column, and its value.
        what: String,
    },
    /// Another writer changed the state after this controller read it.
    #[error("migration `{migration}`: the state changed under this controller (epoch {expected} is no longer current); run the command again to act on the new state")]
    Stale {
        /// The migration's id.
        migration: String,
        /// The epoch this controller had read.
        expected: u64,
    },
    /// Another controller holds the lease and did not let go in time.
    #[error("migration `{migration}`: controller `{holder}` holds the control lease; waited {waited_secs} s for it; stop that controller or wait until its lease expires")]
    Lease {
        /// The migration's id.
        migration: String,
        /// Who holds the lease.
        holder: String,
        /// How long this controller waited.
        waited_secs: u64,
    },
    /// Proxies did not acknowledge the epoch in time.
    #[error("migration `{migration}`: waited {waited_secs} s for epoch {epoch}: {missing}; the state is stored, run the command again once they catch up")]
    Acks {
        /// The migration's id.
        migration: String,
        /// The epoch waited for.
        epoch: u64,
        /// Which proxies or transactions were still behind.
        missing: String,
        /// How long the executor waited.
        waited_secs: u64,
    },
    /// The backfill stopped with an error.
    #[error(transparent)]
    Backfill(#[from] BackfillError),
    /// A gate's check could not run.
    #[error("migration `{migration}`: checking gate {gate} failed: {error}")]
    Gate {
        /// The migration's id.
        migration: String,
        /// Which gate.
        gate: String,
        /// Why.
        error: String,
    },
    /// Objects name the source and would follow its rename.
    #[error("migration `{migration}`: the source cannot be archived while these name it: {list}; move them to the target (or drop them), then run `switchyard advance {migration}` again")]
    Dependents {
        /// The migration's id.
        migration: String,
        /// The views, foreign keys and triggers, by name.
        list: String,
    },
    /// A counter could not be moved.
    #[error("migration `{migration}`: moving the {side}'s counters failed: {error}")]
    Sequences {
        /// The migration's id.
        migration: String,
        /// The side whose counters were moved.
        side: String,
        /// Why.
        error: String,
    },
}
