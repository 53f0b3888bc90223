//! The backfill's MySQL / MariaDB side: one session on the source's
//! database. A chunk fails on any warning its copy raises: with the copy's
//! no-op `ON DUPLICATE KEY UPDATE` a duplicate raises none, so whatever is
//! left (a value converted or cut where the session's `sql_mode` let it
//! through) is a row the target would hold differently from the source.

use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value};
use switchyard_core::backfill::Checkpoint;

use super::ChunkFailure;

/// How many warnings a failed chunk's message lists.
const LISTED_WARNINGS: usize = 5;

/// The backfill's session.
pub(crate) struct Side {
    /// The connection.
    conn: mysql_async::Conn,
}

impl Side {
    /// Wraps a connection opened by `Live::source_conn`.
    pub(crate) fn new(conn: mysql_async::Conn) -> Side {
        Side { conn }
    }

    /// Runs each statement on its own.
    pub(crate) async fn execute(&mut self, statements: &[String]) -> Result<(), String> {
        for statement in statements {
            self.conn.query_drop(statement).await.map_err(describe)?;
        }
        Ok(())
    }

    /// The stored checkpoint, if any.
    pub(crate) async fn checkpoint(&mut self, query: &str) -> Result<Option<Checkpoint>, String> {
        let Some(row) = self.first_row(query).await? else {
            return Ok(None);
        };
        let number = |i: usize| -> Result<u64, String> {
            let text = text(&row, i).unwrap_or_else(|| "0".into());
            text.parse()
                .map_err(|_| format!("checkpoint column {i} holds `{text}`, not a count"))
        };
        Ok(Some(Checkpoint {
            last_key: text(&row, 0)
                .map(|t| Checkpoint::parse_key(&t))
                .transpose()?,
            rows_copied: number(1)?,
            chunk_size: number(2)?,
            done: number(3)? != 0,
        }))
    }

    /// `information_schema.TABLES.TABLE_ROWS` (InnoDB's sampled estimate),
    /// or the exact count when it says 0 (statistics not gathered yet).
    pub(crate) async fn estimate(&mut self, estimate: &str, count: &str) -> Result<u64, String> {
        let read = |row: Option<Row>| {
            row.and_then(|r| text(&r, 0))
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let rows = read(self.first_row(estimate).await?);
        if rows > 0 {
            return Ok(rows);
        }
        Ok(read(self.first_row(count).await?))
    }

    /// `Threads_running`, less the backfill's own thread.
    pub(crate) async fn load(&mut self) -> Result<u64, String> {
        let row = self
            .first_row("SHOW GLOBAL STATUS LIKE 'Threads_running'")
            .await?;
        let running = row
            .and_then(|r| text(&r, 1))
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0);
        Ok(running.saturating_sub(1))
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
            key.push(text(&row, i).ok_or("a key value is NULL or not UTF-8 text")?);
        }
        let rows = text(&row, key_len)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Ok(Some((key, rows)))
    }

    /// The copy and the checkpoint in one transaction; the rows inserted.
    /// Any error or warning rolls the transaction back.
    pub(crate) async fn chunk(&mut self, copy: &str, save: &str) -> Result<u64, ChunkFailure> {
        let result = self.chunk_inner(copy, save).await;
        if result.is_err() {
            // The connection may be gone; the server then rolls back itself.
            let _ = self.conn.query_drop("ROLLBACK").await;
        }
        result
    }

    async fn chunk_inner(&mut self, copy: &str, save: &str) -> Result<u64, ChunkFailure> {
        let conn = &mut self.conn;
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(failure)?;
        conn.query_drop(copy).await.map_err(failure)?;
        let inserted = conn.affected_rows();
        let warnings = conn.get_warnings();
        if warnings > 0 {
            let list: Vec<(String, u32, String)> =
                conn.query("SHOW WARNINGS").await.map_err(failure)?;
            let shown: Vec<String> = list
                .iter()
                .take(LISTED_WARNINGS)
                .map(|(level, code, message)| format!("{level} {code}: {message}"))
                .collect();
            return Err(ChunkFailure::Warnings(format!(
                "{warnings} warning(s): {}",
                shown.join("; ")
            )));
        }
        conn.query_drop(save).await.map_err(failure)?;
        conn.query_drop("COMMIT").await.map_err(failure)?;
        Ok(inserted)
    }

    /// The first row of a text-protocol query.
    async fn first_row(&mut self, query: &str) -> Result<Option<Row>, String> {
        self.conn.query_first(query).await.map_err(describe)
    }
}

/// Column `i` as text: the text protocol sends every value as its text.
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::Bytes(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A chunk's error: a deadlock (1213) or a lock wait timeout (1205) is
/// retried; anything else stops the backfill.
fn failure(error: mysql_async::Error) -> ChunkFailure {
    match &error {
        mysql_async::Error::Server(e) if e.code == 1213 || e.code == 1205 => {
            ChunkFailure::Retry(describe(error))
        }
        _ => ChunkFailure::Fatal(describe(error)),
    }
}

/// The server's own words and error number, else the client's.
fn describe(error: mysql_async::Error) -> String {
    match error {
        mysql_async::Error::Server(e) => format!("{} (error {})", e.message, e.code),
        other => other.to_string(),
    }
}
