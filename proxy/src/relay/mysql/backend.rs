//! A MySQL / MariaDB backend connection: connect, read the greeting, log in
//! with the configured credentials (driving the codec's [`BackendLogin`]),
//! and the side connection that runs `KILL` for a client's cancel.
//!
//! Opening is split in two ([`open`] then [`login`]) because a client's
//! greeting carries the backend's version and capabilities, while the
//! backend login needs what the client answers to it.

use std::time::Duration;

use bytes::BytesMut;
use switchyard_core::config::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::relay::backend_stream::BackendStream;
use crate::relay::backend_tls::{BackendTls, TlsError};
use crate::relay::dial::{dial, DialError, Endpoint};
use crate::wire::mysql::handshake::{HandshakeV10, CLIENT_SSL};
use crate::wire::mysql::login::{BackendLogin, BackendLoginConfig, LoginStep};
use crate::wire::mysql::message::{ErrPacket, COM_QUERY, COM_QUIT};
use crate::wire::mysql::packet::{self, Packet};
use crate::wire::mysql::tracker::{Outcome, Progress, ResponseTracker};
use crate::wire::mysql::CodecError;

/// Why a backend connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Unreachable, or too slow to log in.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// TLS was required and refused, or its handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server answered with an ERR packet; it goes to the client as is.
    #[error("backend `{name}` refused: {} ({}) {}", .err.code, .err.sql_state_str(), .err.message)]
    Rejected {
        /// The backend's name.
        name: String,
        /// The server's ERR packet.
        err: ErrPacket,
    },
    /// The server broke the protocol or closed the connection.
    #[error("backend `{name}` at {addr}: {reason}")]
    Protocol {
        /// The backend's name.
        name: String,
        /// `host:port` or the socket path.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// A backend connection that has sent its greeting and waits for a login.
pub struct Greeted {
    /// The connection, plain until the login asks for TLS.
    stream: BackendStream,
    /// Bytes read after the greeting.
    inbox: BytesMut,
    /// The greeting packet, fed to the [`BackendLogin`] later.
    greeting: Packet,
    /// The parsed greeting: version, capabilities, charset, status.
    pub handshake: HandshakeV10,
    /// The backend's name in `backends:`.
    name: String,
    /// Where the server listens.
    endpoint: Endpoint,
    /// The backend's TLS setting, applied at login.
    tls: BackendTls,
}

/// A logged-in backend connection.
pub struct MyBackend {
    /// The connection, in the command phase.
    pub stream: BackendStream,
    /// Bytes read but not yet relayed.
    pub inbox: BytesMut,
    /// The backend's name in `backends:`.
    pub name: String,
    /// Where the server listens, for messages.
    pub endpoint: Endpoint,
    /// The server's own connection (thread) id, for `KILL`.
    pub thread_id: u32,
    /// The capabilities of the session (the client's session flags).
    pub capabilities: u32,
    /// The MariaDB extended flags of the session.
    pub mariadb_capabilities: u32,
    /// The server is MariaDB (its greeting's version says so), which
    /// limits a statement's time with `SET STATEMENT ... FOR`.
    pub mariadb: bool,
    /// Server status flags from its last OK / EOF (transaction, autocommit).
    pub status: u16,
}

/// Connects and reads the greeting, within `timeout`. `tls` is the
/// backend's setting from the snapshot, used when logging in.
pub async fn open(
    name: &str,
    backend: &Backend,
    tls: &BackendTls,
    timeout: Duration,
    max_payload: usize,
) -> Result<Greeted, BackendError> {
    let endpoint = Endpoint::of(backend);
    tokio::time::timeout(
        timeout,
        open_inner(name, endpoint.clone(), tls, max_payload),
    )
    .await
    .map_err(|_| DialError::timeout(name, &endpoint, timeout))?
}

async fn open_inner(
    name: &str,
    endpoint: Endpoint,
    tls: &BackendTls,
    max_payload: usize,
) -> Result<Greeted, BackendError> {
    let addr = &endpoint.to_string();
    let mut stream = BackendStream::from(dial(name, &endpoint).await?);
    let mut inbox = BytesMut::with_capacity(16 * 1024);
    let greeting = read_packet(&mut stream, &mut inbox, max_payload)
        .await
        .map_err(|reason| protocol(name, addr, reason))?;
    if greeting.payload.first() == Some(&0xFF) {
        // "Too many connections", "Host is blocked", ...
        let err =
            ErrPacket::parse(&greeting.payload).map_err(|e| protocol(name, addr, e.to_string()))?;
        return Err(BackendError::Rejected {
            name: name.to_string(),
            err,
        });
    }
    let handshake =
        HandshakeV10::parse(&greeting.payload).map_err(|e| protocol(name, addr, e.to_string()))?;
    Ok(Greeted {
        stream,
        inbox,
        greeting,
        handshake,
        name: name.to_string(),
        endpoint,
        tls: tls.clone(),
    })
}

fn protocol(name: &str, addr: &str, reason: String) -> BackendError {
    BackendError::Protocol {
        name: name.to_string(),
        addr: addr.to_string(),
        reason,
    }
}

/// Logs in on a greeted connection, within `timeout`.
pub async fn login(
    greeted: Greeted,
    config: BackendLoginConfig,
    timeout: Duration,
    max_payload: usize,
) -> Result<MyBackend, BackendError> {
    let (name, endpoint) = (greeted.name.clone(), greeted.endpoint.clone());
    tokio::time::timeout(timeout, login_inner(greeted, config, max_payload))
        .await
        .map_err(|_| DialError::timeout(&name, &endpoint, timeout))?
}

async fn login_inner(
    greeted: Greeted,
    mut config: BackendLoginConfig,
    max_payload: usize,
) -> Result<MyBackend, BackendError> {
    let Greeted {
        mut stream,
        mut inbox,
        greeting,
        handshake,
        name,
        endpoint,
        tls,
    } = greeted;
    let addr = endpoint.to_string();
    // TLS follows the backend's mode; a server without CLIENT_SSL in its
    // greeting is used in plain by `prefer` and refused by the rest (the
    // login's `TlsUnavailable`).
    let offered = handshake.capabilities & CLIENT_SSL != 0;
    config.tls = tls.wanted(&endpoint) && (offered || tls.mode.mandatory());
    let codec = |e: CodecError| match e {
        CodecError::LoginRejected(err) => BackendError::Rejected {
            name: name.clone(),
            err,
        },
        CodecError::TlsUnavailable => tls
            .refused(&name, &endpoint)
            .map_or_else(|| protocol(&name, &addr, e.to_string()), BackendError::from),
        e => protocol(&name, &addr, e.to_string()),
    };
    let mut login = BackendLogin::new(config);
    let mut packet = greeting;
    loop {
        match login.receive(&packet).map_err(codec)? {
            LoginStep::Send(p) => {
                let mut out = BytesMut::new();
                p.encode(&mut out);
                stream.write_all(&out).await.map_err(|e| {
                    protocol(&name, &addr, format!("connection lost during login: {e}"))
                })?;
            }
            LoginStep::StartTls(request) => {
                let lost = |e: std::io::Error| {
                    protocol(
                        &name,
                        &addr,
                        format!("connection lost while asking for TLS: {e}"),
                    )
                };
                let mut out = BytesMut::new();
                request.encode(&mut out);
                stream.write_all(&out).await.map_err(lost)?;
                // The server reads the SSLRequest and then waits for the TLS
                // hello; it sends nothing in between, so `inbox` is empty.
                let BackendStream::Tcp(socket) = stream else {
                    return Err(protocol(
                        &name,
                        &addr,
                        "TLS was asked for on a connection that is not plain TCP".into(),
                    ));
                };
                stream = tls
                    .handshake(
                        &name,
                        &endpoint,
                        crate::relay::backend_stream::Socket::Tcp(socket),
                    )
                    .await?;
                let LoginStep::Send(response) = login.tls_established().map_err(codec)? else {
                    return Err(protocol(
                        &name,
                        &addr,
                        "the login did not answer after TLS".into(),
                    ));
                };
                out.clear();
                response.encode(&mut out);
                stream.write_all(&out).await.map_err(lost)?;
            }
            LoginStep::Wait => {}
            LoginStep::Done(ok) => {
                return Ok(MyBackend {
                    stream,
                    inbox,
                    name,
                    endpoint,
                    thread_id: handshake.connection_id,
                    capabilities: login.capabilities(),
                    mariadb_capabilities: login.mariadb_capabilities(),
                    mariadb: handshake.server_version.contains("MariaDB"),
                    status: ok.status,
                });
            }
        }
        packet = read_packet(&mut stream, &mut inbox, max_payload)
            .await
            .map_err(|reason| protocol(&name, &addr, reason))?;
    }
}

/// Reads one logical packet.
async fn read_packet(
    stream: &mut BackendStream,
    inbox: &mut BytesMut,
    max_payload: usize,
) -> Result<Packet, String> {
    loop {
        match packet::decode(inbox, max_payload) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match stream.read_buf(inbox).await {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("connection lost: {e}")),
        }
    }
}

/// Opens a connection, logs in and returns it: for second connections and
/// side connections.
pub async fn connect(
    name: &str,
    backend: &Backend,
    tls: &BackendTls,
    config: BackendLoginConfig,
    timeout: Duration,
    max_payload: usize,
) -> Result<MyBackend, BackendError> {
    let greeted = open(name, backend, tls, timeout, max_payload).await?;
    login(greeted, config, timeout, max_payload).await
}

/// Runs `KILL [QUERY] <thread_id>` on a side connection logged in as
/// `user`, so the server's own rules decide whether it is allowed.
#[allow(clippy::too_many_arguments)]
pub async fn kill(
    name: &str,
    backend: &Backend,
    tls: &BackendTls,
    user: &str,
    password: &str,
    thread_id: u32,
    query_only: bool,
    timeout: Duration,
) -> Result<(), BackendError> {
    let config = BackendLoginConfig {
        user: user.to_string(),
        password: password.to_string(),
        charset: crate::wire::mysql::handshake::UTF8MB4_GENERAL_CI,
        max_packet_size: 1 << 24,
        ..BackendLoginConfig::default()
    };
    let mut conn = connect(name, backend, tls, config, timeout, 1 << 20).await?;
    let sql = if query_only {
        format!("KILL QUERY {thread_id}")
    } else {
        format!("KILL {thread_id}")
    };
    let result = tokio::time::timeout(timeout, simple_query(&mut conn, &sql))
        .await
        .unwrap_or_else(|_| Err(DialError::timeout(name, &backend.location(), timeout).into()));
    let mut quit = BytesMut::new();
    packet::encode(0, &[COM_QUIT], &mut quit);
    let _ = conn.stream.write_all(&quit).await;
    result
}

/// Sends one COM_QUERY and reads its whole response; an ERR becomes
/// [`BackendError::Rejected`].
pub(crate) async fn simple_query(conn: &mut MyBackend, sql: &str) -> Result<(), BackendError> {
    let addr = conn.endpoint.to_string();
    let mut payload = vec![COM_QUERY];
    payload.extend_from_slice(sql.as_bytes());
    let mut out = BytesMut::new();
    packet::encode(0, &payload, &mut out);
    let lost = |e: String| protocol(&conn.name, &addr, e);
    conn.stream
        .write_all(&out)
        .await
        .map_err(|e| lost(e.to_string()))?;
    let mut tracker = ResponseTracker::for_command(&payload, conn.capabilities)
        .map_err(|e| lost(e.to_string()))?
        .with_mariadb_capabilities(conn.mariadb_capabilities);
    loop {
        let p = read_packet(&mut conn.stream, &mut conn.inbox, 1 << 20)
            .await
            .map_err(lost)?;
        match tracker.feed(&p.payload).map_err(|e| lost(e.to_string()))? {
            Progress::ResultEnd {
                outcome: Outcome::Err(err),
                ..
            } => {
                return Err(BackendError::Rejected {
                    name: conn.name.clone(),
                    err,
                });
            }
            Progress::ResultEnd {
                more_results: false,
                ..
            } => return Ok(()),
            _ => {}
        }
    }
}
