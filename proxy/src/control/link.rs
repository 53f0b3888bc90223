//! Where a migration's control store is and the connection that reaches
//! it, whichever engine: one per backend and database, shared by the
//! migrations stored there and kept open between polls.

use std::time::Duration;

use switchyard_core::config::{Backend, BackendKind, Config, Migration};
use switchyard_core::store::{AuditEvent, Heartbeat};

use super::row::Row;
use super::{mysql, pg};
use crate::relay::backend_tls::BackendTls;
use crate::state::Snapshot;

/// Why the store could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The store's tables are not there: no store is installed, and the
    /// migration follows its file.
    NoStore,
    /// The server could not be reached or answered with an error; the
    /// text says what, for the lease's refusal and the log.
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NoStore => {
                f.write_str("no control store is installed (run `switchyard init`)")
            }
            Failure::Unreachable(why) => f.write_str(why),
        }
    }
}

/// Which connection serves a store: backend name and database.
pub type Key = (String, Option<String>);

/// Where one migration's store lives: on its source's backend, in the
/// source table's schema (PostgreSQL) or database (MySQL).
#[derive(Clone)]
pub struct Place {
    /// The connection that reaches it.
    pub key: Key,
    /// The source's backend, as the file describes it.
    pub backend: Backend,
    /// The backend's TLS client, as sessions use it.
    pub tls: BackendTls,
    /// The database to connect to (PostgreSQL: `None` is the backend's own).
    pub database: Option<String>,
    /// The store's schema (PostgreSQL) or database (MySQL) in statements.
    pub store: String,
    /// The backend's engine.
    pub kind: BackendKind,
    /// How long connecting and each statement may take.
    pub timeout: Duration,
}

impl Place {
    /// Where `m`'s store is under `snapshot`; `None` when the file names no
    /// database for a MySQL source (validation makes that impossible).
    pub fn of(snapshot: &Snapshot, m: &Migration) -> Option<Place> {
        let config: &Config = &snapshot.config;
        let backend = config.backends.get(&m.backend)?.clone();
        let database = m
            .source
            .database
            .clone()
            .or_else(|| backend.database.clone());
        let store = match backend.kind {
            BackendKind::Postgres => m.source.schema.clone().unwrap_or_else(|| "public".into()),
            BackendKind::Mysql => database.clone()?,
        };
        Some(Place {
            key: (m.backend.clone(), database.clone()),
            tls: snapshot.backend_tls(&m.backend).clone(),
            kind: backend.kind,
            backend,
            database,
            store,
            timeout: config.limits.connect_timeout,
        })
    }
}

/// An open connection to a store.
pub enum Link {
    /// PostgreSQL, listening for state changes.
    Postgres(pg::Conn),
    /// MySQL or MariaDB.
    Mysql(mysql::Conn),
}

impl Link {
    /// Opens the connection `place` needs; PostgreSQL notifications'
    /// payloads go to `wake`.
    pub async fn open(
        place: &Place,
        wake: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Link, Failure> {
        Ok(match place.kind {
            BackendKind::Postgres => Link::Postgres(pg::Conn::open(place, wake).await?),
            BackendKind::Mysql => Link::Mysql(mysql::Conn::open(place).await?),
        })
    }

    /// The migration's stored state; `None` when it has none.
    pub async fn read(&mut self, place: &Place, migration: &str) -> Result<Option<Row>, Failure> {
        bounded(place, async {
            match self {
                Link::Postgres(c) => c.read(&place.store, migration).await,
                Link::Mysql(c) => c.read(&place.store, migration).await,
            }
        })
        .await
    }

    /// Records a heartbeat.
    pub async fn heartbeat(&mut self, place: &Place, beat: &Heartbeat<'_>) -> Result<(), Failure> {
        bounded(place, async {
            match self {
                Link::Postgres(c) => c.heartbeat(&place.store, beat).await,
                Link::Mysql(c) => c.heartbeat(&place.store, beat).await,
            }
        })
        .await
    }

    /// Compare-and-set: stores `row` if the state is still `expected`.
    pub async fn write(
        &mut self,
        place: &Place,
        expected: Option<u64>,
        row: &Row,
        event: &AuditEvent<'_>,
    ) -> Result<bool, Failure> {
        bounded(place, async {
            match self {
                Link::Postgres(c) => c.write(&place.store, expected, row, event).await,
                Link::Mysql(c) => c.write(&place.store, expected, row, event).await,
            }
        })
        .await
    }
}

/// A statement that does not answer within the backend's connect timeout
/// fails, so a silent network never stalls the follower (or its lease).
async fn bounded<T>(
    place: &Place,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout(place.timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unreachable(format!(
                "the store on backend `{}` did not answer within {:?}",
                place.key.0, place.timeout
            )))
        })
}
