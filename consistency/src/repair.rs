//! Repair: makes the target's rows for a set of keys equal to the
//! source's, with the row-image sync the mirror runs
//! ([`switchyard_core::sync::RowSync`]), then compares those keys again.
//!
//! Where both tables share a database, each batch of keys is synced in
//! one transaction on one connection, under the sync's share locks, so a
//! concurrent writer is waited for rather than overwritten. Across
//! servers (or databases) a batch's row images are read on the source's
//! server under a share lock held until the target's transaction has
//! committed them, as the outbox applier does: a writer of those keys
//! waits, and its own write then reaches the target after the repair's.
//!
//! It writes only the target, and only through the sync's statements.

use switchyard_core::sync::{RowSync, SyncError};

use crate::diff::compared::Compared;
use crate::diff::conn::{Cell, Conn, DbError};
use crate::diff::report::RowDiff;
use crate::diff::rows;
use switchyard_core::sql::{self, Dialect};

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

/// Syncs `keys` from the source's connection to the target's (another
/// server or database), batch by batch, then compares them again.
pub async fn sync_keys_across(
    migration: &str,
    sync: &RowSync,
    compared: &Compared,
    source: &mut Conn,
    target: &mut Conn,
    keys: &[Vec<String>],
) -> Result<Repaired, RepairError> {
    let failed = |error: DbError| RepairError::Query {
        migration: migration.to_string(),
        error,
    };
    let sync_failed = |error: SyncError| RepairError::Sync {
        migration: migration.to_string(),
        error,
    };
    for batch in keys.chunks(BATCH) {
        source.execute("BEGIN").await.map_err(failed)?;
        let images = match source
            .rows(&sync.read_images(batch).map_err(sync_failed)?)
            .await
        {
            Ok(images) => images,
            Err(e) => {
                let _ = source.execute("ROLLBACK").await;
                return Err(failed(e));
            }
        };
        let literals: Vec<Vec<String>> = images
            .iter()
            .map(|row| {
                row.iter()
                    .map(|cell| literal(compared.dialect, cell))
                    .collect()
            })
            .collect();
        let statements = sync.write_images(batch, &literals).map_err(sync_failed)?;
        let written = write_all(target, &statements).await;
        // The source's share locks end only after the target committed.
        let _ = source.execute("COMMIT").await;
        written.map_err(failed)?;
    }
    let mut still_differing = Vec::new();
    let columns = columns(compared);
    for batch in keys.chunks(BATCH) {
        let mut listed = source
            .rows(&compared.rows_for_one(batch, false))
            .await
            .map_err(failed)?;
        listed.extend(
            target
                .rows(&compared.rows_for_one(batch, true))
                .await
                .map_err(failed)?,
        );
        still_differing.extend(rows::differences(
            listed,
            compared.key_names.len(),
            &columns,
        ));
    }
    Ok(Repaired {
        keys: keys.len() as u64,
        still_differing,
    })
}

/// Runs `statements` in one transaction on `conn`.
async fn write_all(conn: &mut Conn, statements: &[String]) -> Result<(), DbError> {
    conn.execute("BEGIN").await?;
    for statement in statements {
        if let Err(e) = conn.execute(statement).await {
            let _ = conn.execute("ROLLBACK").await;
            return Err(e);
        }
    }
    conn.execute("COMMIT").await
}

/// A value the source's server printed, as a literal the target's server
/// reads back as that value (binary bytes that are not UTF-8 as a MySQL
/// hex string).
fn literal(dialect: Dialect, cell: &Cell) -> String {
    let Some(bytes) = cell else {
        return "NULL".to_string();
    };
    match (dialect, std::str::from_utf8(bytes)) {
        (Dialect::Postgres, Ok(text)) => sql::pg::literal(text),
        (Dialect::Mysql, Ok(text)) => sql::mysql::literal(text),
        (Dialect::Postgres, Err(_)) => sql::pg::literal(&String::from_utf8_lossy(bytes)),
        (Dialect::Mysql, Err(_)) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            format!("X'{hex}'")
        }
    }
}

/// The compared columns as (source, target) names.
fn columns(compared: &Compared) -> Vec<(String, String)> {
    compared
        .columns
        .iter()
        .map(|c| (c.source.clone(), c.target.clone()))
        .collect()
}

/// The differences left among `keys`, read in one statement per batch.
pub async fn verify(
    compared: &Compared,
    conn: &mut Conn,
    keys: &[Vec<String>],
) -> Result<Vec<RowDiff>, DbError> {
    let columns = columns(compared);
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
