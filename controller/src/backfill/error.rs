//! Why a backfill stops, as the operator reads it, and how the engine
//! modules report a chunk's failure to the runner.

use switchyard_core::sync::SyncError;

use crate::live::LiveError;

/// Why a backfill stopped. Each message names the migration, the chunk
/// and the fix; every committed chunk stays committed, and rerunning
/// resumes after the last one.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The migration could not be resolved or a side reached.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The plan's key does not fit the tables.
    #[error("migration `{migration}`: {error}")]
    Key { migration: String, error: SyncError },
    /// The migration is in a phase where the source's writes are not
    /// mirrored to the target, so rows written after their chunk would be
    /// missed (or the target is already primary).
    #[error("migration `{migration}` is in phase `{phase}`; the backfill runs only while writes to the source are mirrored to the target (phases dual_write to reads_on_target); advance it to `dual_write` first")]
    Phase {
        migration: String,
        phase: &'static str,
    },
    /// The two tables cannot be copied in one statement.
    #[error("migration `{migration}`: the source and the target are in different databases or on different servers; the backfill copies within one database (MySQL: one server) only so far; put the target beside the source")]
    CrossDatabase { migration: String },
    /// The chunk's copy failed for a reason a retry does not cure.
    #[error("migration `{migration}`: copying keys {range} failed: {error}; nothing of this chunk was written; fix the row or the target column, then rerun `switchyard backfill {migration}` to resume from the checkpoint")]
    Chunk {
        migration: String,
        range: String,
        error: String,
    },
    /// The chunk's copy raised warnings (a value the target changed).
    #[error("migration `{migration}`: copying keys {range} raised {warnings}; the chunk was rolled back; widen the target column or fix the source rows, then rerun `switchyard backfill {migration}` to resume from the checkpoint")]
    Warnings {
        migration: String,
        range: String,
        warnings: String,
    },
    /// The chunk kept meeting deadlocks or lock timeouts.
    #[error("migration `{migration}`: copying keys {range} gave up after {attempts} attempts: {error}; long transactions hold these rows; rerun `switchyard backfill {migration}` once they end (it resumes from the checkpoint)")]
    Contended {
        migration: String,
        range: String,
        attempts: u32,
        error: String,
    },
    /// A statement outside a chunk failed (setup, bound, checkpoint, load).
    #[error("migration `{migration}`: {what} failed: {error}")]
    Query {
        migration: String,
        what: &'static str,
        error: String,
    },
}

/// Why one chunk's transaction failed, as the engine modules tell it.
pub(crate) enum ChunkFailure {
    /// A deadlock or a lock timeout: the chunk is retried.
    Retry(String),
    /// Any other error: the backfill stops.
    Fatal(String),
    /// The copy raised warnings, listed.
    Warnings(String),
}

/// How a chunk finally failed, after its retries.
pub(super) enum Failed {
    /// An error a retry does not cure.
    Fatal(String),
    /// The copy raised warnings.
    Warnings(String),
    /// Deadlocks or lock timeouts, every attempt.
    Contended { attempts: u32, error: String },
}
