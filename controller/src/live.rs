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

/// Migration `id` of `config`, or the error that lists the known ones.
fn find<'a>(config: &'a Config, id: &str) -> Result<&'a Migration, LiveError> {
    config.migration(id).ok_or_else(|| {
        let known: Vec<&str> = config.migrations.iter().map(|m| m.id.as_str()).collect();
        LiveError::UnknownMigration {
            id: id.to_string(),
            known: if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            },
        }
    })
}

/// The endpoint of backend `name` for `migration`'s table in `database`.
fn endpoint(
    config: &Config,
    migration: &Migration,
    name: &str,
    database: &Option<String>,
) -> Result<Endpoint, LiveError> {
    let backend = config
        .backends
        .get(name)
        .ok_or_else(|| LiveError::UnknownBackend {
            migration: migration.id.clone(),
            backend: name.to_string(),
        })?;
    Ok(Endpoint {
        backend_name: name.to_string(),
        tls: BackendTls::build(name, backend).map_err(Box::new)?,
        backend: backend.clone(),
        database: database.clone(),
    })
}

/// A migration's source server and the schema (PostgreSQL) or database
/// (MySQL) its control store lives in, found from the file alone: what
/// the store's commands need, even once the source table is archived and
/// [`Live::resolve`] can no longer load it.
#[derive(Clone)]
pub struct Site {
    /// The migration as the file states it.
    pub migration: Migration,
    /// The source server's dialect.
    pub dialect: Dialect,
    /// The source table's server.
    pub source: Endpoint,
    /// Where the store lives: the source table's schema or database.
    pub schema: String,
}

impl Site {
    /// Finds migration `id`'s source server and store.
    pub fn resolve(config: &Config, id: &str) -> Result<Site, LiveError> {
        let migration = find(config, id)?;
        let source = endpoint(
            config,
            migration,
            &migration.backend,
            &migration.source.database,
        )?;
        let (dialect, schema) = match source.backend.kind {
            BackendKind::Postgres => (
                Dialect::Postgres,
                migration
                    .source
                    .schema
                    .clone()
                    .unwrap_or_else(|| "public".into()),
            ),
            BackendKind::Mysql => (
                Dialect::Mysql,
                source
                    .database
                    .clone()
                    .or_else(|| source.backend.database.clone())
                    .unwrap_or_default(),
            ),
        };
        Ok(Site {
            migration: migration.clone(),
            dialect,
            source,
            schema,
        })
    }

    /// Opens a connection to the source's server and database.
    pub async fn conn(&self) -> Result<Conn, LiveError> {
        let failed = |error: String| LiveError::Connect {
            migration: self.migration.id.clone(),
            side: "source",
            backend: self.source.backend_name.clone(),
            error,
        };
        let end = &self.source;
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
            BackendKind::Mysql => connect::mysql(&end.backend, &self.schema)
                .await
                .map(Conn::Mysql)
                .map_err(|e| failed(e.to_string())),
        }
    }
}

impl Live {
    /// Loads migration `id`'s two tables and checks its mapping.
    pub async fn resolve(config: &Config, id: &str) -> Result<Live, LiveError> {
        let migration = find(config, id)?;
        let source = endpoint(
            config,
            migration,
            &migration.backend,
            &migration.source.database,
        )?;
        let target = endpoint(
            config,
            migration,
            migration.target_backend(),
            &migration.target.database,
        )?;
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
