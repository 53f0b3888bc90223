//! Where the proxy accepts connections: the client listeners, the admin HTTP
//! port, client-side TLS, and which backend serves each listener.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::scalars;

/// The client listeners. Omitting one turns that protocol off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Address for PostgreSQL clients, e.g. `127.0.0.1:6432`.
    #[serde(deserialize_with = "scalars::socket_addr")]
    pub postgres: Option<SocketAddr>,
    /// Address for MySQL and MariaDB clients, e.g. `127.0.0.1:6033`.
    #[serde(deserialize_with = "scalars::socket_addr")]
    pub mysql: Option<SocketAddr>,
}

/// The admin HTTP port: `/metrics`, `/healthz`, `/status` and the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address of the admin HTTP server; `None` runs none.
    #[serde(deserialize_with = "scalars::socket_addr")]
    pub listen: Option<SocketAddr>,
    /// Bearer token required for changes. `None` (also for an empty string,
    /// so `${SWITCHYARD_ADMIN_TOKEN:-}` works) allows changes from loopback only.
    #[serde(deserialize_with = "scalars::non_empty")]
    pub token: Option<String>,
}

/// Certificate and key the proxy presents to clients that ask for TLS.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain. A relative path is resolved against the config
    /// file's directory at load, so this is always usable as is.
    pub cert: PathBuf,
    /// PEM private key, resolved like `cert`.
    pub key: PathBuf,
}

/// Which backend (a name under `backends`) serves each listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routes {
    /// Backend for the PostgreSQL listener; must be a `postgres` backend.
    pub postgres: Option<String>,
    /// Backend for the MySQL listener; must be a `mysql` backend.
    pub mysql: Option<String>,
}
