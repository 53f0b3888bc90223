//! A PostgreSQL backend connection: connect, log in with the configured
//! credentials, and collect what the server announces (parameters, key).

use std::time::Duration;

use bytes::BytesMut;
use switchyard_core::config::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::relay::backend_stream::{BackendStream, Socket};
use crate::relay::backend_tls::{BackendTls, TlsError};
use crate::relay::dial::{dial, DialError, Endpoint};
use crate::wire::pg::auth::{AuthError, AuthRequest, BackendAuth};
use crate::wire::pg::{frame, message, CodecError};

/// Why a backend connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Unreachable, or too slow to log in.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// TLS was required and refused, or its handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server refused the login; its ErrorResponse goes to the client as is.
    #[error("backend `{name}` refused the login: {message} (SQLSTATE {code})")]
    Rejected {
        /// The backend's name.
        name: String,
        /// SQLSTATE.
        code: String,
        /// The server's message.
        message: String,
        /// The ErrorResponse frame.
        frame: BytesMut,
    },
    /// Authenticating to the server failed on the proxy's side.
    #[error("backend `{name}`: {source}")]
    Auth {
        /// The backend's name.
        name: String,
        /// The failure.
        source: AuthError,
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

/// A logged-in backend connection.
pub struct PgBackend {
    /// The connection, ready for queries.
    pub stream: BackendStream,
    /// Where the server listens, for cancel requests.
    pub endpoint: Endpoint,
    /// ParameterStatus values the server sent at login.
    pub params: Vec<(String, String)>,
    /// The server's process id (BackendKeyData).
    pub pid: i32,
    /// The server's cancel secret (BackendKeyData).
    pub secret: i32,
}

/// Login parameters for a backend connection.
pub struct Login<'a> {
    /// The backend's name in `backends:`.
    pub name: &'a str,
    /// Its address and default credentials.
    pub backend: &'a Backend,
    /// Its TLS setting, from the snapshot.
    pub tls: &'a BackendTls,
    /// The role to log in as.
    pub user: &'a str,
    /// Its password.
    pub password: &'a str,
    /// Startup parameters besides `user` (database, application_name, ...).
    pub params: &'a [(String, String)],
}

/// Connects and logs in, within `timeout`.
pub async fn connect(
    login: Login<'_>,
    timeout: Duration,
    max_frame: usize,
) -> Result<PgBackend, BackendError> {
    let endpoint = Endpoint::of(login.backend);
    match tokio::time::timeout(timeout, connect_inner(&login, &endpoint, max_frame)).await {
        Ok(result) => result,
        Err(_) => Err(DialError::timeout(login.name, &endpoint, timeout).into()),
    }
}

async fn connect_inner(
    login: &Login<'_>,
    endpoint: &Endpoint,
    max_frame: usize,
) -> Result<PgBackend, BackendError> {
    let name = login.name.to_string();
    let protocol = |reason: String| BackendError::Protocol {
        name: name.clone(),
        addr: endpoint.to_string(),
        reason,
    };
    let socket = dial(&name, endpoint).await?;
    let mut stream = start_tls(login, endpoint, socket).await?;

    let mut params: Vec<(&str, &str)> = vec![("user", login.user)];
    params.extend(
        login
            .params
            .iter()
            .filter(|(k, _)| k != "user")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut out = BytesMut::new();
    message::startup_message(&mut out, &params);
    let io = |e: std::io::Error| protocol(format!("connection lost during login: {e}"));
    stream.write_all(&out).await.map_err(io)?;

    let mut auth = BackendAuth::new(login.user, login.password);
    let mut buf = BytesMut::with_capacity(4096);
    let mut server_params = Vec::new();
    let (mut pid, mut secret) = (0, 0);
    loop {
        let frame = loop {
            match frame::decode(&mut buf, max_frame) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => return Err(protocol(e.to_string())),
            }
            if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
                return Err(protocol(
                    "the server closed the connection during login".into(),
                ));
            }
        };
        match frame.tag {
            b'R' => {
                let request =
                    AuthRequest::parse(frame.body()).map_err(|source| BackendError::Auth {
                        name: name.clone(),
                        source,
                    })?;
                let reply = auth.respond(request).map_err(|source| BackendError::Auth {
                    name: name.clone(),
                    source,
                })?;
                if let Some(reply) = reply {
                    stream.write_all(&reply).await.map_err(io)?;
                }
            }
            b'S' => {
                let body = frame.body();
                let (k, rest) = message::cstr(b'S', body).map_err(codec(&protocol))?;
                let (v, _) = message::cstr(b'S', rest).map_err(codec(&protocol))?;
                server_params.push((k.to_string(), v.to_string()));
            }
            b'K' if frame.body().len() >= 8 => {
                let b = frame.body();
                pid = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                secret = i32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            }
            b'E' => {
                let (code, message) = message::error_fields(frame.body());
                return Err(BackendError::Rejected {
                    name,
                    code,
                    message,
                    frame: frame.bytes,
                });
            }
            b'Z' => {
                return Ok(PgBackend {
                    stream,
                    endpoint: endpoint.clone(),
                    params: server_params,
                    pid,
                    secret,
                })
            }
            // Notices and protocol-version negotiation need no answer.
            _ => {}
        }
    }
}

fn codec<'a>(
    protocol: &'a impl Fn(String) -> BackendError,
) -> impl Fn(CodecError) -> BackendError + 'a {
    move |e| protocol(e.to_string())
}

/// Asks the server for TLS with an SSLRequest when the backend's mode
/// wants it, and runs the handshake if the server agrees ('S'). A refusal
/// ('N') is fine for `prefer` and an error for the stricter modes.
async fn start_tls(
    login: &Login<'_>,
    endpoint: &Endpoint,
    mut socket: Socket,
) -> Result<BackendStream, BackendError> {
    if !login.tls.wanted(endpoint) {
        return Ok(socket.into());
    }
    let lost = |e: std::io::Error| BackendError::Protocol {
        name: login.name.to_string(),
        addr: endpoint.to_string(),
        reason: format!("connection lost while asking for TLS: {e}"),
    };
    let mut out = BytesMut::new();
    message::ssl_request(&mut out);
    socket.write_all(&out).await.map_err(lost)?;
    // The answer is one byte, and the server sends nothing more before the
    // client's TLS hello, so nothing read here belongs to the handshake.
    match socket.read_u8().await.map_err(lost)? {
        b'S' => Ok(login.tls.handshake(login.name, endpoint, socket).await?),
        b'N' => match login.tls.refused(login.name, endpoint) {
            Some(e) => Err(e.into()),
            None => Ok(socket.into()),
        },
        other => Err(BackendError::Protocol {
            name: login.name.to_string(),
            addr: endpoint.to_string(),
            reason: format!(
                "the server answered the SSLRequest with byte {other:#04x}, not S or N"
            ),
        }),
    }
}

/// Sends a CancelRequest for a backend key on a fresh connection, in plain
/// even to a TLS backend: the request carries only the key, and servers
/// take it before any TLS.
pub async fn cancel(endpoint: &Endpoint, pid: i32, secret: i32) -> std::io::Result<()> {
    let mut stream = dial("cancel", endpoint)
        .await
        .map_err(std::io::Error::other)?;
    let mut out = BytesMut::new();
    message::cancel_request(&mut out, pid, secret);
    stream.write_all(&out).await?;
    // The server closes the connection once it has read the request.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
    Ok(())
}
