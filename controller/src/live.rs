//! A migration resolved against its live servers: both tables loaded and
//! the mapping checked by the same code the proxy's catalog runs, and a
//! way to open connections to either side for the commands that read or
//! write them (diff, repair, backfill, the phase executor).
//!
//! Nothing here keeps a connection: every command opens what it needs and
//! drops it when done, so an idle controller holds no session on a server.

use std::time::Duration;

pub use switchyard_consistency::diff::conn::Conn;
use switchyard_core::config::{Backend, BackendKind, Config, Migration};
use switchyard_core::schema::{self, Mapping, MappingError};
use switchyard_core::sql::Dialect;
use switchyard_proxy::catalog::connect;
use switchyard_proxy::catalog::load::{LoadError, TableRef};
use switchyard_proxy::relay::backend_tls::{BackendTls, TlsFileError};

/// How long a connect, a login or a catalog query may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a migration cannot be resolved or a side cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No migration has this id.
    #[error("no migration `{id}` in the configuration; migrations are: {known}")]
    UnknownMigration { id: String, known: String },
    /// A backend the migration names is not under `backends`.
    #[error("migration `{migration}` names backend `{backend}`, which is not under `backends`; add it or correct the migration")]
    UnknownBackend { migration: String, backend: String },
    /// A backend's TLS files cannot be used.
    #[error(transparent)]
    TlsFile(#[from] Box<TlsFileError>),
    /// A table could not be loaded.
    #[error("migration `{migration}`: {error}")]
    Load {
        migration: String,
        error: Box<LoadError>,
    },
    /// The mapping does not fit the tables.
    #[error(transparent)]
    Mapping(#[from] Box<MappingError>),
    /// A connection to a side failed.
    #[error(
        "migration `{migration}`: connecting to the {side} (backend `{backend}`) failed: {error}"
    )]
    Connect {
        migration: String,
        side: &'static str,
        backend: String,
        error: String,
    },
    /// The two tables are on servers of different kinds.
    #[error("migration `{migration}`: the source is on {source_kind} but the target on {target_kind}; both tables must be on the same kind of server")]
    MixedKinds {
        migration: String,
        source_kind: BackendKind,
        target_kind: BackendKind,
    },
}

/// One side's server: how to connect, and in which database.
#[derive(Clone)]
pub struct Endpoint {
    /// The backend's name under `backends`, for messages.
    pub backend_name: String,
    /// How to connect.
    pub backend: Backend,
    /// The backend's TLS client, as sessions use it.
    tls: BackendTls,
    /// The table's database; `None` means the backend's.
    pub database: Option<String>,
}

/// A migration with its checked mapping and both sides' servers.
pub struct Live {
    /// The migration as the file states it.
    pub migration: Migration,
    /// Both tables' schemas and the column pairs.
    pub mapping: Mapping,
    /// The servers' dialect (both sides share it).
    pub dialect: Dialect,
    /// The source table's server.
    pub source: Endpoint,
    /// The target table's server.
    pub target: Endpoint,
}

impl Live {
    /// Loads migration `id`'s two tables and checks its mapping.
    pub async fn resolve(config: &Config, id: &str) -> Result<Live, LiveError> {
        let Some(migration) = config.migration(id) else {
            let known: Vec<&str> = config.migrations.iter().map(|m| m.id.as_str()).collect();
            return Err(LiveError::UnknownMigration {
                id: id.to_string(),
                known: if known.is_empty() {
                    "(none)".to_string()
                } else {
                    known.join(", ")
                },
            });
        };
        let endpoint = |name: &str, database: &Option<String>| {
            let backend = config
                .backends
                .get(name)
                .ok_or_else(|| LiveError::UnknownBackend {
                    migration: migration.id.clone(),
                    backend: name.to_string(),
                })?;
            Ok::<_, LiveError>(Endpoint {
                backend_name: name.to_string(),
                tls: BackendTls::build(name, backend).map_err(Box::new)?,
                backend: backend.clone(),
                database: database.clone(),
            })
        };
        let source = endpoint(&migration.backend, &migration.source.database)?;
        let target = endpoint(migration.target_backend(), &migration.target.database)?;
        if source.backend.kind != target.backend.kind {
            return Err(LiveError::MixedKinds {
                migration: migration.id.clone(),
                source_kind: source.backend.kind,
                target_kind: target.backend.kind,
            });
        }
        let table = |end: &Endpoint, schema: &Option<String>, table: &str| TableRef {
            backend_name: end.backend_name.clone(),
            backend: end.backend.clone(),
            database: end.database.clone(),
            schema: schema.clone(),
            table: table.to_string(),
        };
        let (s, t) = (&migration.source, &migration.target);
        let source_ref = table(&source, &s.schema, &s.table);
        let target_ref = table(&target, &t.schema, &t.table);
        let (source_schema, target_schema) = tokio::join!(
            source_ref.load(&source.tls, CONNECT_TIMEOUT),
            target_ref.load(&target.tls, CONNECT_TIMEOUT)
        );
        let load = |r: Result<_, LoadError>| {
            r.map_err(|error| LiveError::Load {
                migration: migration.id.clone(),
                error: Box::new(error),
            })
        };
        let mapping = schema::check(migration, load(source_schema)?, load(target_schema)?)
            .map_err(Box::new)?;
        let dialect = match source.backend.kind {
            BackendKind::Postgres => Dialect::Postgres,
            BackendKind::Mysql => Dialect::Mysql,
        };
        Ok(Live {
            migration: migration.clone(),
            mapping,
            dialect,
            source,
            target,
        })
    }

    /// Whether both tables are on one server and in one database, so one
    /// connection reads both in one snapshot and one transaction writes
    /// both.
    pub fn same_database(&self) -> bool {
        !self.migration.is_cross_server()
            && self.migration.source.database == self.migration.target.database
    }

    /// Opens a connection to the source table's server and database.
    pub async fn source_conn(&self) -> Result<Conn, LiveError> {
        self.connect("source", &self.source).await
    }

    /// Opens a connection to the target table's server and database.
    pub async fn target_conn(&self) -> Result<Conn, LiveError> {
        self.connect("target", &self.target).await
    }

    async fn connect(&self, side: &'static str, end: &Endpoint) -> Result<Conn, LiveError> {
        let failed = |error: String| LiveError::Connect {
            migration: self.migration.id.clone(),
            side,
            backend: end.backend_name.clone(),
            error,
        };
        match end.backend.kind {
            BackendKind::Postgres => connect::postgres(
                &end.backend,
                &end.tls,
                end.database.as_deref(),
                CONNECT_TIMEOUT,
            )
            .await
            .map(Conn::Postgres)
            .map_err(|e| failed(e.to_string())),
            BackendKind::Mysql => {
                let database = match side {
                    "source" => &self.mapping.source.schema,
                    _ => &self.mapping.target.schema,
                };
                connect::mysql(&end.backend, database)
                    .await
                    .map(Conn::Mysql)
                    .map_err(|e| failed(e.to_string()))
            }
        }
    }
}

impl switchyard_consistency::diff::Connect for Live {
    async fn open(&self, target: bool) -> Result<Conn, String> {
        let conn = if target {
            self.target_conn().await
        } else {
            self.source_conn().await
        };
        conn.map_err(|e| e.to_string())
    }
}
