//! How the catalog reaches a backend: driver options built from a
//! `backends.NAME` entry, in one place per driver, so a new way to connect
//! (TLS, another socket kind) changes only these two functions.
//!
//! It must never connect with anything but the backend's own credentials,
//! and never reach a client session's connection: the catalog has its own.

use std::time::Duration;

use switchyard_core::config::Backend;

/// Whether `host` names a Unix socket (a directory for PostgreSQL, the
/// socket file for MySQL) rather than a host name or address.
fn is_socket(host: &str) -> bool {
    host.starts_with('/')
}

/// tokio-postgres options for `backend`, in `database` (the backend's own
/// when `None`; tokio-postgres then uses the user's name, as libpq does).
pub fn postgres(
    backend: &Backend,
    database: Option<&str>,
    timeout: Duration,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    if is_socket(&backend.host) {
        config.host_path(&backend.host);
    } else {
        config.host(&backend.host);
    }
    config
        .port(backend.port)
        .user(&backend.user)
        .password(&backend.password)
        .connect_timeout(timeout)
        // Shows in pg_stat_activity, so an operator knows whose it is.
        .application_name("switchyard-catalog");
    if let Some(database) = database.or(backend.database.as_deref()) {
        config.dbname(database);
    }
    config
}

/// mysql_async options for `backend`, in `database`.
pub fn mysql(backend: &Backend, database: &str) -> mysql_async::Opts {
    let builder = mysql_async::OptsBuilder::default()
        .user(Some(&backend.user))
        .pass(Some(&backend.password))
        .db_name(Some(database))
        // One query per load: no statement cache to keep, nothing to pool.
        .stmt_cache_size(0);
    let builder = if is_socket(&backend.host) {
        builder.socket(Some(&backend.host))
    } else {
        // Without this the driver would switch a loopback TCP connection to
        // the server's own socket, which the file never named.
        builder
            .ip_or_hostname(&backend.host)
            .tcp_port(backend.port)
            .prefer_socket(false)
    };
    builder.into()
}
