//! The source's server, by engine: the runner's one door to it.

use switchyard_core::backfill::Checkpoint;

use super::{mysql, pg, ChunkFailure};

/// A connection to the source's server, by engine.
pub(super) enum Side {
    /// PostgreSQL.
    Pg(pg::Side),
    /// MySQL / MariaDB.
    Mysql(mysql::Side),
}

impl Side {
    /// Runs statements outside any chunk, each in its own transaction.
    pub(super) async fn execute(&mut self, statements: &[String]) -> Result<(), String> {
        match self {
            Side::Pg(s) => s.execute(statements).await,
            Side::Mysql(s) => s.execute(statements).await,
        }
    }

    /// The stored checkpoint, if any.
    pub(super) async fn checkpoint(&mut self, query: &str) -> Result<Option<Checkpoint>, String> {
        match self {
            Side::Pg(s) => s.checkpoint(query).await,
            Side::Mysql(s) => s.checkpoint(query).await,
        }
    }

    /// The server's estimate of the source's rows, else the exact count.
    pub(super) async fn estimate(&mut self, estimate: &str, count: &str) -> Result<u64, String> {
        match self {
            Side::Pg(s) => s.estimate(estimate, count).await,
            Side::Mysql(s) => s.estimate(estimate, count).await,
        }
    }

    /// The busy figure [`Settings::max_load`] describes.
    pub(super) async fn load(&mut self) -> Result<u64, String> {
        match self {
            Side::Pg(s) => s.load().await,
            Side::Mysql(s) => s.load().await,
        }
    }

    /// The next chunk's last key and row count; `None` when none is left.
    pub(super) async fn bound(
        &mut self,
        query: &str,
        key_len: usize,
    ) -> Result<Option<(Vec<String>, u64)>, String> {
        match self {
            Side::Pg(s) => s.bound(query, key_len).await,
            Side::Mysql(s) => s.bound(query, key_len).await,
        }
    }

    /// One chunk: the copy and the checkpoint in one transaction; the
    /// rows inserted.
    pub(super) async fn chunk(&mut self, copy: &str, save: &str) -> Result<u64, ChunkFailure> {
        match self {
            Side::Pg(s) => s.chunk(copy, save).await,
            Side::Mysql(s) => s.chunk(copy, save).await,
        }
    }
}
