//! The backfill's PostgreSQL side: one session on the source's database,
//! in READ COMMITTED (the server's default, which the chunk copy's
//! promises need: a row it waited for is re-read at its newest version,
//! where REPEATABLE READ would fail the chunk instead).

use switchyard_core::backfill::Checkpoint;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};

use super::ChunkFailure;

/// The backfill's session.
pub(crate) struct Side {
    /// The connection; its driver task runs on its own.
    client: Client,
}

impl Side {
    /// Wraps a connection opened by `Live::source_conn`.
    pub(crate) fn new(client: Client) -> Side {
        Side { client }
    }

    /// Runs each statement on its own.
    pub(crate) async fn execute(&mut self, statements: &[String]) -> Result<(), String> {
        for statement in statements {
            self.client
                .batch_execute(statement)
                .await
                .map_err(describe)?;
        }
        Ok(())
    }

    /// The stored checkpoint, if any.
    pub(crate) async fn checkpoint(&mut self, query: &str) -> Result<Option<Checkpoint>, String> {
        let Some(row) = self.first_row(query).await? else {
            return Ok(None);
        };
        let number = |i: usize| -> Result<u64, String> {
            let text = row.get(i).unwrap_or("0");
            text.parse()
                .map_err(|_| format!("checkpoint column {i} holds `{text}`, not a count"))
        };
        Ok(Some(Checkpoint {
            last_key: row.get(0).map(Checkpoint::parse_key).transpose()?,
            rows_copied: number(1)?,
            chunk_size: number(2)?,
            done: row.get(3) == Some("t"),
        }))
    }

    /// `pg_class.reltuples`, or the exact count for a table never
    /// analysed (reltuples -1).
    pub(crate) async fn estimate(&mut self, estimate: &str, count: &str) -> Result<u64, String> {
        let read = |row: Option<SimpleQueryRow>| {
            row.and_then(|r| r.get(0).and_then(|v| v.parse::<i64>().ok()))
                .unwrap_or(-1)
        };
        let rows = read(self.first_row(estimate).await?);
        if rows >= 0 {
            return Ok(rows as u64);
        }
        Ok(read(self.first_row(count).await?).max(0) as u64)
    }

    /// Sessions of this database waiting for a lock, the backfill's own
    /// excepted (it holds none between chunks, and waits on none).
    pub(crate) async fn load(&mut self) -> Result<u64, String> {
        let row = self
            .first_row(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database() \
                 AND pid <> pg_backend_pid()",
            )
            .await?;
        Ok(row
            .and_then(|r| r.get(0).and_then(|v| v.parse().ok()))
            .unwrap_or(0))
    }

    /// The bound query's row: the key's text values, then the count.
    pub(crate) async fn bound(
        &mut self,
        query: &str,
        key_len: usize,
    ) -> Result<Option<(Vec<String>, u64)>, String> {
        let Some(row) = self.first_row(query).await? else {
            return Ok(None);
        };
        let mut key = Vec::with_capacity(key_len);
        for i in 0..key_len {
            // A primary-key column is never NULL.
            key.push(row.get(i).ok_or("a key column is NULL")?.to_string());
        }
        let rows = row.get(key_len).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some((key, rows)))
    }

    /// The copy and the checkpoint in one transaction; the rows inserted.
    /// The transaction rolls back when dropped unfinished.
    pub(crate) async fn chunk(&mut self, copy: &str, save: &str) -> Result<u64, ChunkFailure> {
        let tx = self.client.transaction().await.map_err(failure)?;
        let inserted = tx.execute(copy, &[]).await.map_err(failure)?;
        tx.batch_execute(save).await.map_err(failure)?;
        tx.commit().await.map_err(failure)?;
        Ok(inserted)
    }

    /// The first row a simple query returns.
    async fn first_row(&mut self, query: &str) -> Result<Option<SimpleQueryRow>, String> {
        let messages = self.client.simple_query(query).await.map_err(describe)?;
        Ok(messages.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        }))
    }
}

/// A chunk's error: deadlocks, lock timeouts and serialization failures
/// are retried; anything else stops the backfill.
fn failure(error: tokio_postgres::Error) -> ChunkFailure {
    let retry = [
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::LOCK_NOT_AVAILABLE,
    ];
    match error.code() {
        Some(code) if retry.contains(code) => ChunkFailure::Retry(describe(error)),
        _ => ChunkFailure::Fatal(describe(error)),
    }
}

/// The server's own words (message, detail, SQLSTATE), else the client's.
fn describe(error: tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            text
        }
        None => error.to_string(),
    }
}
