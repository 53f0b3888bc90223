//! The real database servers behind the proxy, and the credentials the proxy
//! logs in with.

use serde::Deserialize;

use super::Protocol;

/// One database server, named by its key under `backends`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Which wire protocol the server speaks.
    pub kind: BackendKind,
    /// Host name or IP address; resolved when connecting, not at load, so a
    /// DNS name that moves (a failover) is followed.
    pub host: String,
    /// TCP port; never 0.
    pub port: u16,
    /// User the proxy logs in as, unless a proxy user names its own
    /// `backend_user`.
    pub user: String,
    /// Password for `user`; empty for trust or socket-less test servers.
    #[serde(default)]
    pub password: String,
    /// Database to connect to; `None` uses the client's requested database
    /// (PostgreSQL) or none (MySQL).
    #[serde(default)]
    pub database: Option<String>,
}

/// The server's protocol family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB, which share the wire protocol.
    #[serde(alias = "mariadb")]
    Mysql,
}

impl BackendKind {
    /// The client protocol this server speaks.
    pub fn protocol(self) -> Protocol {
        match self {
            BackendKind::Postgres => Protocol::Postgres,
            BackendKind::Mysql => Protocol::Mysql,
        }
    }

    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        self.protocol().as_str()
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
