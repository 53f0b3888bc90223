//! How the catalog reaches a backend: driver options built from a
//! `backends.NAME` entry, in one place per driver, so a new way to connect
//! (TLS, another socket kind) changes only these two functions.
//!
//! TLS follows the backend's `tls` mode as sessions do. PostgreSQL uses the
//! very rustls client configuration sessions use (`BackendTls`), so the
//! catalog trusts exactly what a session trusts. mysql_async takes no rustls
//! configuration of ours, only its `SslOpts`, so the MySQL side states the
//! same mode in those terms.
//!
//! It must never connect with anything but the backend's own credentials,
//! and never reach a client session's connection: the catalog has its own.

use std::time::Duration;

use mysql_async::{ClientIdentity, DriverError, SslOpts};
use rustls::CertificateError;
use switchyard_core::config::{Backend, BackendTlsMode};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::relay::backend_tls::{find_rustls, BackendTls};

/// Whether `host` names a Unix socket (a directory for PostgreSQL, the
/// socket file for MySQL) rather than a host name or address.
fn is_socket(host: &str) -> bool {
    host.starts_with('/')
}

/// Connects to `backend` with tokio-postgres, in `database` (the backend's
/// own when `None`; tokio-postgres then uses the user's name, as libpq
/// does), encrypted as `tls` says. The connection's task ends when the
/// client is dropped.
pub async fn postgres(
    backend: &Backend,
    tls: &BackendTls,
    database: Option<&str>,
    timeout: Duration,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    postgres_listening(backend, tls, database, timeout, None).await
}

/// [`postgres`], handing the payload of every notification the
/// connection receives (after a `LISTEN`) to `notify`.
pub async fn postgres_listening(
    backend: &Backend,
    tls: &BackendTls,
    database: Option<&str>,
    timeout: Duration,
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
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
    // PostgreSQL offers no TLS on a Unix socket (libpq does not ask there).
    let rustls = tls.client_config().filter(|_| !is_socket(&backend.host));
    let Some(rustls) = rustls else {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        drive(connection, notify);
        return Ok(client);
    };
    // The rustls verifier BackendTls built does the checking for every mode
    // (none, chain only, chain and name), so tokio-postgres is only told
    // whether a plain connection is acceptable. The server name it hands
    // rustls is `host`, which verify-full checks the certificate against.
    config.ssl_mode(match tls.mode {
        BackendTlsMode::Disable => SslMode::Disable,
        BackendTlsMode::Prefer => SslMode::Prefer,
        BackendTlsMode::Require | BackendTlsMode::VerifyCa | BackendTlsMode::VerifyFull => {
            SslMode::Require
        }
    });
    let (client, connection) = config
        .connect(MakeRustlsConnect::new((*rustls).clone()))
        .await?;
    drive(connection, notify);
    Ok(client)
}

/// Runs a connection until its client is dropped or it fails, passing
/// notifications' payloads on when asked to.
fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(notify) = notify else {
        tokio::spawn(connection);
        return;
    };
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = notify.send(n.payload().to_string());
            }
        }
    });
}

/// Connects to `backend` with mysql_async, in `database`, encrypted as its
/// `tls` says; `prefer` falls back to plain when the server offers no TLS,
/// as libpq's `prefer` does.
pub async fn mysql(
    backend: &Backend,
    database: &str,
) -> Result<mysql_async::Conn, mysql_async::Error> {
    let encrypt = backend.tls != BackendTlsMode::Disable && !is_socket(&backend.host);
    let error = match mysql_async::Conn::new(mysql_opts(backend, database, encrypt, None)).await {
        Ok(conn) => return Ok(conn),
        Err(e) => e,
    };
    if backend.tls == BackendTlsMode::Prefer
        && matches!(
            error,
            mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
        )
    {
        return mysql_async::Conn::new(mysql_opts(backend, database, false, None)).await;
    }
    match name_in_certificate(backend, &error) {
        Some(name) => mysql_async::Conn::new(mysql_opts(backend, database, true, Some(name))).await,
        None => Err(error),
    }
}

/// For a chain-only check (`verify-ca`, `require` with `ca`) that failed on
/// the name alone: a DNS name the server's certificate holds, to connect
/// again by.
///
/// mysql_async 0.37 means to forgive a name mismatch when told to skip
/// domain validation, but recognises one by the text `NotValidForName`,
/// which rustls 0.23 no longer prints. rustls checks the chain before the
/// name, so a name error means the chain passed (the reasoning of
/// `BackendTls`' `ChainOnly`); the second connection checks the chain
/// again, against a name the certificate holds.
fn name_in_certificate(backend: &Backend, error: &mysql_async::Error) -> Option<String> {
    let chain_only = backend.ca.is_some()
        && matches!(
            backend.tls,
            BackendTlsMode::Require | BackendTlsMode::VerifyCa
        );
    if !chain_only {
        return None;
    }
    let rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        presented,
        ..
    }) = find_rustls(error)?
    else {
        return None;
    };
    // webpki lists the names as `DnsName("db.example")`; a wildcard is no
    // name to connect by.
    presented.iter().find_map(|name| {
        let name = name.strip_prefix("DnsName(\"")?.strip_suffix("\")")?;
        (!name.contains('*')).then(|| name.to_string())
    })
}

/// mysql_async options for `backend`, in `database`, with TLS if `encrypt`,
/// checking the certificate against `server_name` instead of `host` if set.
fn mysql_opts(
    backend: &Backend,
    database: &str,
    encrypt: bool,
    server_name: Option<String>,
) -> mysql_async::Opts {
    let builder = mysql_async::OptsBuilder::default()
        .user(Some(&backend.user))
        .pass(Some(&backend.password))
        .db_name(Some(database))
        // One query per load: no statement cache to keep, nothing to pool.
        .stmt_cache_size(0)
        .ssl_opts(
            encrypt.then(|| ssl_opts(backend).with_danger_tls_hostname_override(server_name)),
        );
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

/// The backend's `tls` mode in mysql_async's terms, with the same meaning
/// as `BackendTls`: `prefer` ignores `ca`, `require` with `ca` is
/// `verify-ca`, and only `ca` is trusted (never the built-in web roots).
/// (`verify-ca` by a name the certificate does not hold needs a second
/// connection: see `name_in_certificate`.)
fn ssl_opts(backend: &Backend) -> SslOpts {
    let identity = match (&backend.cert, &backend.key) {
        (Some(cert), Some(key)) => {
            Some(ClientIdentity::new(cert.clone().into(), key.clone().into()))
        }
        _ => None,
    };
    let opts = SslOpts::default().with_client_identity(identity);
    let ca = backend
        .ca
        .as_ref()
        .filter(|_| backend.tls != BackendTlsMode::Prefer);
    match ca {
        Some(ca) => opts
            .with_root_certs(vec![ca.clone().into()])
            .with_disable_built_in_roots(true)
            .with_danger_skip_domain_validation(backend.tls != BackendTlsMode::VerifyFull),
        // `prefer`, and `require` without `ca`: any certificate (the
        // handshake's signatures are still checked against it). Validation
        // makes the verify modes name a `ca`.
        None => opts.with_danger_accept_invalid_certs(true),
    }
}
