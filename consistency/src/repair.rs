//! Repair: makes the target's rows for a set of keys equal to the
//! source's, with the row-image sync the mirror runs
//! ([`switchyard_core::sync::RowSync`]), then compares those keys again.
//!
//! Where both tables share a database, each batch of keys is synced in
//! one transaction on one connection, under the sync's share locks, so a
//! concurrent writer is waited for rather than overwritten. Across
//! servers the keys go to the source's outbox instead, for the applier
//! that already carries every mirrored write across (the caller does
//! that; see `switchyard repair`).
//!
//! It writes only the target, and only through the sync's statements.

use switchyard_core::sync::{RowSync, SyncError};

use crate::diff::compared::Compared;
use crate::diff::conn::{Conn, DbError};
use crate::diff::report::RowDiff;
use crate::diff::rows;

/// Keys synced per transaction: a few hundred keep each statement's key
/// list short and its locks brief.
pub const BATCH: usize = 500;

/// Why a repair failed. Batches committed before the failure stay
/// repaired; running it again is safe.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The sync's statements could not be built for a key.
    #[error("migration `{migration}`: {error}")]
    Sync { migration: String, error: SyncError },
    /// A statement failed.
    #[error("migration `{migration}`: repair failed: {error}")]
    Query { migration: String, error: DbError },
}

/// What a repair did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Repaired {
    /// Keys synced.
    pub keys: u64,
    /// Keys that still differ when compared again (a write since the
    /// sync, or a row the target refuses).
    pub still_differing: Vec<RowDiff>,
}

/// Syncs `keys` from the source on `conn` (a connection to the database
/// holding both tables, its session set as the diff sets it), batch by
/// batch, then compares them again.
pub async fn sync_keys(
    migration: &str,
    sync: &RowSync,
    compared: &Compared,
    conn: &mut Conn,
    keys: &[Vec<String>],
) -> Result<Repaired, RepairError> {
    let failed = |error: DbError| RepairError::Query {
        migration: migration.to_string(),
        error,
    };
    for batch in keys.chunks(BATCH) {
        let statements = sync.statements(batch).map_err(|error| RepairError::Sync {
            migration: migration.to_string(),
            error,
        })?;
        conn.execute("BEGIN").await.map_err(failed)?;
        for statement in &statements {
            if let Err(e) = conn.execute(statement).await {
                let _ = conn.execute("ROLLBACK").await;
                return Err(failed(e));
            }
        }
        conn.execute("COMMIT").await.map_err(failed)?;
    }
    let still_differing = verify(compared, conn, keys).await.map_err(failed)?;
    Ok(Repaired {
        keys: keys.len() as u64,
        still_differing,
    })
}

/// The differences left among `keys`, read in one statement per batch.
pub async fn verify(
    compared: &Compared,
    conn: &mut Conn,
    keys: &[Vec<String>],
) -> Result<Vec<RowDiff>, DbError> {
    let columns: Vec<(String, String)> = compared
        .columns
        .iter()
        .map(|c| (c.source.clone(), c.target.clone()))
        .collect();
    let mut left = Vec::new();
    for batch in keys.chunks(BATCH) {
        let listed = conn.rows(&compared.rows_for(batch)).await?;
        left.extend(rows::differences(
            listed,
            compared.key_names.len(),
            &columns,
        ));
    }
    Ok(left)
}
