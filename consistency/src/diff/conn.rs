//! A connection a diff or a repair reads and writes through, on either
//! engine: statements in, rows of raw cells out. The caller opens it (the
//! controller reaches servers as the proxy does); this module only runs
//! text statements on it.

use mysql_async::prelude::Queryable;

/// One cell: the value's bytes as the server printed them, or NULL.
pub type Cell = Option<Vec<u8>>;

/// A connection to one side's server.
pub enum Conn {
    /// A PostgreSQL connection.
    Postgres(tokio_postgres::Client),
    /// A MySQL or MariaDB connection.
    Mysql(mysql_async::Conn),
}

/// A statement failed on a server.
#[derive(Debug, thiserror::Error)]
#[error("{error} (while running: {statement})")]
pub struct DbError {
    /// The server's or the driver's message.
    pub error: String,
    /// The statement, shortened, so the report names what failed.
    pub statement: String,
}

impl DbError {
    fn new(error: impl std::fmt::Display, statement: &str) -> DbError {
        let mut statement = statement.to_string();
        if statement.len() > 300 {
            let mut cut = 300;
            while !statement.is_char_boundary(cut) {
                cut -= 1;
            }
            statement.truncate(cut);
            statement.push_str("...");
        }
        DbError {
            error: error.to_string(),
            statement,
        }
    }
}

impl Conn {
    /// Runs `sql` (one or more statements) and ignores any rows.
    pub async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Conn::Postgres(client) => client
                .batch_execute(sql)
                .await
                .map_err(|e| DbError::new(pg_message(&e), sql)),
            Conn::Mysql(conn) => conn.query_drop(sql).await.map_err(|e| DbError::new(e, sql)),
        }
    }

    /// Runs one query and returns its rows' cells as text bytes.
    pub async fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Cell>>, DbError> {
        match self {
            Conn::Postgres(client) => {
                let messages = client
                    .simple_query(sql)
                    .await
                    .map_err(|e| DbError::new(pg_message(&e), sql))?;
                Ok(messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(|v| v.as_bytes().to_vec()))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect())
            }
            Conn::Mysql(conn) => {
                let rows: Vec<mysql_async::Row> =
                    conn.query(sql).await.map_err(|e| DbError::new(e, sql))?;
                Ok(rows
                    .into_iter()
                    .map(|row| row.unwrap().into_iter().map(mysql_cell).collect())
                    .collect())
            }
        }
    }

    /// Runs one query expected to return one row and returns its cells;
    /// `None` when it returned none.
    pub async fn row(&mut self, sql: &str) -> Result<Option<Vec<Cell>>, DbError> {
        Ok(self.rows(sql).await?.into_iter().next())
    }
}

/// A text-protocol MySQL value as the server printed it.
fn mysql_cell(value: mysql_async::Value) -> Cell {
    use mysql_async::Value;
    match value {
        Value::NULL => None,
        Value::Bytes(bytes) => Some(bytes),
        Value::Int(v) => Some(v.to_string().into_bytes()),
        Value::UInt(v) => Some(v.to_string().into_bytes()),
        Value::Float(v) => Some(v.to_string().into_bytes()),
        Value::Double(v) => Some(v.to_string().into_bytes()),
        // The text protocol prints dates and times as bytes; a driver
        // that decoded them anyway gets its SQL form back.
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// A PostgreSQL error with the server's own message where there is one.
fn pg_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// A cell as text for reports: its bytes when they are UTF-8, else hex.
pub fn show(cell: &Cell) -> Option<String> {
    cell.as_ref().map(|bytes| match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    })
}
