//! The shadow's own backend connections: a few per (backend, login user,
//! database), reused across reads, never a client's.
//!
//! A connection that failed in any way but a server's error answer is
//! dropped, not returned: a broken socket or a half-read result must never
//! reach the next read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_core::config::{Backend, BackendKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::connect;
use crate::relay::backend_tls::BackendTls;

/// One connection of the shadow's.
pub(super) enum Conn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

/// Which connections may serve a read: same server, same login, same
/// database.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    /// The backend's name in the configuration.
    backend: String,
    /// The user the connections log in as.
    user: String,
    /// The database they are connected to.
    database: String,
}

/// The connections of one key.
struct Pool {
    /// The backend entry they were opened with; a reload that changes it
    /// retires them.
    backend: Backend,
    /// At most this many reads use the key's connections at once.
    permits: Arc<Semaphore>,
    /// Connections not in use.
    idle: Mutex<Vec<Conn>>,
}

/// Every key's connections.
pub(super) struct Pools {
    /// Connections per key, at most.
    per_backend: usize,
    /// How long to wait for a connection to open.
    connect_timeout: Duration,
    /// The statement timeout set on every connection, so a slow shadow read
    /// ends on the server too.
    statement_timeout: Duration,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
}

/// Why no connection could be had.
pub(super) enum LeaseError {
    /// Every place was in use for the whole wait.
    Busy,
    /// Connecting failed; the message names the backend.
    Failed(String),
}

/// A connection in use, with its place in the pool's bound. Dropped, it
/// closes the connection; [`Lease::give_back`] keeps it for the next read.
pub(super) struct Lease {
    pool: Arc<Pool>,
    pub(super) conn: Conn,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// Returns a healthy connection for reuse.
    pub(super) fn give_back(self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(self.conn);
    }
}

impl Pools {
    pub(super) fn new(per_backend: usize, timeout: Duration) -> Pools {
        Pools {
            per_backend: per_backend.max(1),
            connect_timeout: timeout,
            statement_timeout: timeout,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// A connection to `database` on backend `name`: an idle one, or a new
    /// one once fewer than `per_backend` are in use. Waits for a free
    /// place at most the connect timeout (then `Busy`).
    pub(super) async fn lease(
        &self,
        name: &str,
        backend: &Backend,
        tls: &BackendTls,
        database: &str,
    ) -> Result<Lease, LeaseError> {
        let pool = self.pool(name, backend, database);
        let waiting = pool.permits.clone().acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(self.connect_timeout, waiting).await else {
            return Err(LeaseError::Busy);
        };
        let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self
                .open(name, backend, tls, database)
                .await
                .map_err(LeaseError::Failed)?,
        };
        Ok(Lease {
            pool,
            conn,
            _permit: permit,
        })
    }

    fn pool(&self, name: &str, backend: &Backend, database: &str) -> Arc<Pool> {
        let key = PoolKey {
            backend: name.to_string(),
            user: backend.user.clone(),
            database: database.to_string(),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let current = pools.get(&key).filter(|p| p.backend == *backend);
        if let Some(pool) = current {
            return pool.clone();
        }
        let pool = Arc::new(Pool {
            backend: backend.clone(),
            permits: Arc::new(Semaphore::new(self.per_backend)),
            idle: Mutex::new(Vec::new()),
        });
        pools.insert(key, pool.clone());
        pool
    }

    /// Opens a connection as the catalog does (`catalog::connect`), and
    /// names it and bounds its statements.
    async fn open(
        &self,
        name: &str,
        backend: &Backend,
        tls: &BackendTls,
        database: &str,
    ) -> Result<Conn, String> {
        let failed = |e: &dyn std::fmt::Display| format!("backend `{name}`: {e}");
        let timeout_ms = self.statement_timeout.as_millis();
        match backend.kind {
            BackendKind::Postgres => {
                let client = connect::postgres(backend, tls, Some(database), self.connect_timeout)
                    .await
                    .map_err(|e| failed(&e))?;
                client
                    .batch_execute(&format!(
                        "SET application_name = 'switchyard-shadow'; \
                         SET statement_timeout = {timeout_ms}"
                    ))
                    .await
                    .map_err(|e| failed(&e))?;
                Ok(Conn::Postgres(client))
            }
            BackendKind::Mysql => {
                let connecting = connect::mysql(backend, database);
                let mut conn = tokio::time::timeout(self.connect_timeout, connecting)
                    .await
                    .map_err(|_| failed(&"connect timed out"))?
                    .map_err(|e| failed(&e))?;
                use mysql_async::prelude::Queryable;
                conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .await
                    .map_err(|e| failed(&e))?;
                // MariaDB's statement timeout (seconds); MySQL's is
                // max_execution_time (milliseconds, SELECT only).
                let seconds = self.statement_timeout.as_secs_f64();
                let mariadb = conn
                    .query_drop(format!("SET SESSION max_statement_time = {seconds}"))
                    .await;
                if mariadb.is_err() {
                    conn.query_drop(format!("SET SESSION max_execution_time = {timeout_ms}"))
                        .await
                        .map_err(|e| failed(&e))?;
                }
                Ok(Conn::Mysql(conn))
            }
        }
    }
}
