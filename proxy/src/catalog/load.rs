//! Reads one table's columns from the server's own catalog: PostgreSQL's
//! `pg_catalog`, MySQL's and MariaDB's `information_schema.COLUMNS`, over
//! a short-lived connection of the proxy's own.
//!
//! It only reads the catalog: it must never touch the table's rows, hold a
//! lock, or leave its connection open.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use switchyard_core::config::{Backend, BackendKind};

use super::connect;
use super::mapping::{Column, TableSchema};
use crate::relay::backend_tls::{explain_rustls, find_rustls, BackendTls};

/// One table to load, and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRef {
    /// The backend's name under `backends`, for messages.
    pub backend_name: String,
    /// The backend entry: how to connect.
    pub backend: Backend,
    /// The migration's database for this table; `None` means the backend's.
    pub database: Option<String>,
    /// PostgreSQL schema; `None` means `public`. MySQL names tables by
    /// database and ignores it.
    pub schema: Option<String>,
    /// The table's name.
    pub table: String,
}

/// Why a table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The server could not be reached or refused the login. Worth a
    /// retry: the backend may come back.
    #[error("backend `{backend}` ({kind} at {addr}) is unreachable: {error}")]
    Unreachable {
        backend: String,
        kind: BackendKind,
        addr: String,
        error: String,
    },
    /// The server was reached but TLS with it failed: most often its
    /// certificate does not pass the backend's `tls` mode. Retried, as a
    /// renewed certificate may fix it.
    #[error("backend `{backend}` ({kind} at {addr}): TLS handshake failed: {reason}")]
    Tls {
        backend: String,
        kind: BackendKind,
        addr: String,
        reason: String,
    },
    /// The catalog query failed on a live connection. Also retried.
    #[error("backend `{backend}`: reading the columns of `{table}` failed: {error}")]
    Query {
        backend: String,
        table: String,
        error: String,
    },
    /// The table is not there (or has no columns).
    #[error("table `{table}` does not exist in database `{database}` on backend `{backend}`; create it or correct the migration's table name")]
    NoTable {
        backend: String,
        database: String,
        table: String,
    },
    /// A MySQL table needs a database, and neither the migration nor the
    /// backend names one.
    #[error("backend `{backend}` is MySQL and no database is named for table `{table}`; set the migration's `database` or `backends.{backend}.database`")]
    NoDatabase { backend: String, table: String },
}

impl LoadError {
    /// Whether a later attempt may succeed without a change to the file:
    /// the server was down or the query failed, rather than the table or
    /// the plan being wrong.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LoadError::Unreachable { .. } | LoadError::Tls { .. } | LoadError::Query { .. }
        )
    }
}

impl TableRef {
    /// Loads the table's columns; the connect and the login are bounded
    /// by `timeout`, and so is the query. `tls` is the backend's TLS client
    /// that sessions use; PostgreSQL connects with it, while MySQL's driver
    /// builds its own from the same fields.
    pub async fn load(
        &self,
        tls: &BackendTls,
        timeout: Duration,
    ) -> Result<TableSchema, LoadError> {
        match self.backend.kind {
            BackendKind::Postgres => self.load_postgres(tls, timeout).await,
            BackendKind::Mysql => self.load_mysql(timeout).await,
        }
    }

    fn addr(&self) -> String {
        if self.backend.host.starts_with('/') {
            self.backend.host.clone()
        } else {
            format!("{}:{}", self.backend.host, self.backend.port)
        }
    }

    fn unreachable(&self, error: impl ToString) -> LoadError {
        LoadError::Unreachable {
            backend: self.backend_name.clone(),
            kind: self.backend.kind,
            addr: self.addr(),
            error: error.to_string(),
        }
    }

    /// A failed connect: a TLS failure named as one, with the fix, rather
    /// than as the driver's generic error.
    fn connect_failed(&self, error: &(dyn std::error::Error + 'static)) -> LoadError {
        let reason = if let Some(tls) = find_rustls(error) {
            explain_rustls(tls, &self.backend.host, self.backend.tls)
        } else if matches!(
            error.downcast_ref::<mysql_async::Error>(),
            Some(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer
            ))
        ) {
            format!(
                "the server does not offer TLS, and `tls: {}` requires it; enable TLS on the server, or set `tls: prefer` to accept a plain connection",
                self.backend.tls
            )
        } else {
            return self.unreachable(error);
        };
        LoadError::Tls {
            backend: self.backend_name.clone(),
            kind: self.backend.kind,
            addr: self.addr(),
            reason,
        }
    }

    fn query_failed(&self, table: &str, error: impl ToString) -> LoadError {
        LoadError::Query {
            backend: self.backend_name.clone(),
            table: table.to_string(),
            error: error.to_string(),
        }
    }

    async fn load_postgres(
        &self,
        tls: &BackendTls,
        timeout: Duration,
    ) -> Result<TableSchema, LoadError> {
        let schema = self.schema.as_deref().unwrap_or("public");
        let name = format!("{schema}.{}", self.table);
        let database = self
            .database
            .as_deref()
            .or(self.backend.database.as_deref())
            .unwrap_or(&self.backend.user)
            .to_string();
        let client = tokio::time::timeout(
            timeout,
            connect::postgres(&self.backend, tls, self.database.as_deref(), timeout),
        )
        .await
        .map_err(|_| self.unreachable(format!("no answer within {timeout:?}")))?
        .map_err(|e| self.connect_failed(&e))?;
        let rows = tokio::time::timeout(timeout, client.query(PG_COLUMNS, &[&schema, &self.table]))
            .await
            .map_err(|_| self.query_failed(&name, format!("no answer within {timeout:?}")))?
            .map_err(|e| self.query_failed(&name, e))?;
        let mut oid = 0;
        let mut columns = Vec::with_capacity(rows.len());
        for row in &rows {
            oid = row.try_get(0).map_err(|e| self.query_failed(&name, e))?;
            columns.push(pg_column(row).map_err(|e| self.query_failed(&name, e))?);
        }
        if columns.is_empty() {
            return Err(LoadError::NoTable {
                backend: self.backend_name.clone(),
                database,
                table: name,
            });
        }
        Ok(TableSchema {
            name,
            schema: schema.to_string(),
            table: self.table.clone(),
            oid,
            columns,
            triggers: Vec::new(),
        })
    }

    async fn load_mysql(&self, timeout: Duration) -> Result<TableSchema, LoadError> {
        let Some(database) = self
            .database
            .as_deref()
            .or(self.backend.database.as_deref())
        else {
            return Err(LoadError::NoDatabase {
                backend: self.backend_name.clone(),
                table: self.table.clone(),
            });
        };
        let name = format!("{database}.{}", self.table);
        let mut conn = tokio::time::timeout(timeout, connect::mysql(&self.backend, database))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {timeout:?}")))?
            .map_err(|e| self.connect_failed(&e))?;
        let rows: Result<Vec<MyRow>, _> =
            tokio::time::timeout(timeout, conn.exec(MY_COLUMNS, (database, &self.table)))
                .await
                .map_err(|_| self.query_failed(&name, format!("no answer within {timeout:?}")))?;
        let triggers: Result<Vec<String>, _> =
            tokio::time::timeout(timeout, conn.exec(MY_TRIGGERS, (database, &self.table)))
                .await
                .map_err(|_| self.query_failed(&name, format!("no answer within {timeout:?}")))?;
        // MariaDB's JSON is LONGTEXT with a `json_valid` check; MySQL's
        // catalog has no such table layout (and a JSON type of its own),
        // so a failure here only means there is nothing to learn.
        let json: Vec<String> =
            tokio::time::timeout(timeout, conn.exec(MY_JSON_CHECKS, (database, &self.table)))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
        // Closing politely is a courtesy; the load stands either way.
        let _ = conn.disconnect().await;
        let rows = rows.map_err(|e| self.query_failed(&name, e))?;
        let triggers = triggers.map_err(|e| self.query_failed(&name, e))?;
        if rows.is_empty() {
            return Err(LoadError::NoTable {
                backend: self.backend_name.clone(),
                database: database.to_string(),
                table: name,
            });
        }
        let columns = rows
            .into_iter()
            .map(|(name, type_name, nullable, position, key)| Column {
                base_type: json
                    .iter()
                    .any(|clause| is_json_check(clause, &name))
                    .then(|| "json".to_string()),
                name,
                type_name,
                type_oid: 0,
                typmod: -1,
                nullable: nullable.eq_ignore_ascii_case("YES"),
                position: i16::try_from(position).unwrap_or(i16::MAX),
                key: key.eq_ignore_ascii_case("PRI"),
            })
            .collect();
        Ok(TableSchema {
            name,
            schema: database.to_string(),
            table: self.table.clone(),
            oid: 0,
            columns,
            triggers,
        })
    }
}

/// Every live column of one table, in column order, with its printed type,
/// a domain's base type, and whether the primary key includes it. Views
/// and partitioned tables count as tables: a migration may read either.
const PG_COLUMNS: &str = "\
SELECT c.oid, a.attname::text, format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       a.atttypid, a.atttypmod, a.attnotnull, a.attnum,
       EXISTS (SELECT 1 FROM pg_index i
               WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey))
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum";

fn pg_column(row: &tokio_postgres::Row) -> Result<Column, tokio_postgres::Error> {
    Ok(Column {
        name: row.try_get(1)?,
        type_name: row.try_get(2)?,
        base_type: row.try_get(3)?,
        type_oid: row.try_get(4)?,
        typmod: row.try_get(5)?,
        nullable: !row.try_get::<_, bool>(6)?,
        position: row.try_get(7)?,
        key: row.try_get(8)?,
    })
}

/// Whether a MariaDB check clause is the `json_valid` check its JSON
/// type adds to `column`.
fn is_json_check(clause: &str, column: &str) -> bool {
    let clause = clause.trim().to_ascii_lowercase();
    let column = column.to_ascii_lowercase();
    clause == format!("json_valid(`{column}`)")
}

/// MariaDB: the check clauses of one table, where its JSON columns show.
const MY_JSON_CHECKS: &str = "\
SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?";

/// Name, `COLUMN_TYPE` (`bigint(20) unsigned`, `varchar(64)`), nullable,
/// position, key.
type MyRow = (String, String, String, u64, String);

/// MySQL and MariaDB name a table by database (`TABLE_SCHEMA`).
/// The names of one table's triggers.
const MY_TRIGGERS: &str = "\
SELECT TRIGGER_NAME FROM information_schema.TRIGGERS
WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?";

const MY_COLUMNS: &str = "\
SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, ORDINAL_POSITION, COLUMN_KEY
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
ORDER BY ORDINAL_POSITION";
