//! The PostgreSQL side of the relay: the client's startup and login, the
//! backend connection, and the session that relays between them.

pub mod backend;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use switchyard_core::config::{AuthMethod, Protocol, User};
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::backend::{BackendError, Login};
use self::session::{ClientInfo, Session};
use crate::relay::stream::{ClientStream, Replayed};
use crate::state::{CancelTarget, Shared};
use crate::wire::pg::auth::{self, PasswordSecret, ScramServer};
use crate::wire::pg::frame::{self, Startup};
use crate::wire::pg::message::{self, sqlstate};
use crate::wire::pg::CodecError;

/// A client has this long to finish TLS, startup and authentication.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a login ended before a session started. Each carries what the client
/// is told.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    text: String,
    hint: Option<String>,
    /// Metric label.
    reason: &'static str,
    /// The server's own ErrorResponse, sent instead of one built from the
    /// fields above when the backend refused the login.
    frame: Option<BytesMut>,
}

impl Refusal {
    fn new(code: &'static str, reason: &'static str, text: impl Into<String>) -> Refusal {
        Refusal {
            code,
            text: text.into(),
            hint: None,
            reason,
            frame: None,
        }
    }
}

impl From<CodecError> for Refusal {
    fn from(e: CodecError) -> Refusal {
        Refusal::new(sqlstate::PROTOCOL_VIOLATION, "protocol", e.to_string())
    }
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Refusal {
        Refusal::new(sqlstate::CONNECTION_FAILURE, "io", e.to_string())
    }
}

/// The client connection during login.
struct Client {
    stream: ClientStream,
    buf: BytesMut,
    max_frame: usize,
}

impl Client {
    async fn fill(&mut self) -> Result<(), Refusal> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(Refusal::new(
                sqlstate::CONNECTION_FAILURE,
                "client_gone",
                "client closed the connection during login",
            ));
        }
        Ok(())
    }

    async fn startup(&mut self) -> Result<Startup, Refusal> {
        loop {
            if let Some(s) = frame::decode_startup(&mut self.buf)? {
                return Ok(s);
            }
            self.fill().await?;
        }
    }

    async fn frame(&mut self) -> Result<frame::Frame, Refusal> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, self.max_frame)? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// Reads the client's password message ('p').
    async fn password(&mut self) -> Result<frame::Frame, Refusal> {
        let f = self.frame().await?;
        if f.tag != b'p' {
            return Err(Refusal::new(
                sqlstate::PROTOCOL_VIOLATION,
                "protocol",
                format!("expected a password message, got '{}'", char::from(f.tag)),
            ));
        }
        Ok(f)
    }

    async fn send(&mut self, out: &BytesMut) -> Result<(), Refusal> {
        self.stream.write_all(out).await?;
        Ok(())
    }
}

/// Serves one PostgreSQL client connection from accept to close.
pub async fn serve(shared: Arc<Shared>, socket: TcpStream) {
    socket.set_nodelay(true).ok();
    let peer = socket.peer_addr().ok().map(|a| a.ip());
    let max_frame = shared.snapshot().config.limits.max_frame_bytes;
    let mut client = Client {
        stream: ClientStream::Plain(socket),
        buf: BytesMut::with_capacity(8192),
        max_frame,
    };
    let login = tokio::time::timeout(LOGIN_TIMEOUT, login(&shared, &mut client)).await;
    let result = login.unwrap_or_else(|_| {
        Err(Refusal::new(
            sqlstate::PROTOCOL_VIOLATION,
            "timeout",
            "login did not complete within 30 seconds",
        ))
    });
    match result {
        // A cancel request: close politely (a TLS client expects close_notify).
        Ok(None) => {
            let _ = client.stream.shutdown().await;
        }
        Ok(Some((mut info, conn, backend_name, key))) => {
            info.client = peer;
            let session = Session::new(shared.clone(), info, client.stream, conn, backend_name);
            let end = session.run().await;
            tracing::debug!(%end, "postgres session ended");
            shared.cancel_keys.remove(&key);
        }
        Err(refusal) => {
            tracing::info!(reason = refusal.reason, error = %refusal.text, "postgres login refused");
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "postgres", "reason" => refusal.reason).increment(1);
            let out = refusal.frame.unwrap_or_else(|| {
                let mut out = BytesMut::new();
                message::error_response(
                    &mut out,
                    "FATAL",
                    refusal.code,
                    &refusal.text,
                    refusal.hint.as_deref(),
                );
                out
            });
            let _ = client.stream.write_all(&out).await;
            let _ = client.stream.shutdown().await;
        }
    }
}

type LoggedIn = (ClientInfo, backend::PgBackend, String, (i32, i32));

/// Startup, TLS, authentication and the backend login. `None` when the
/// connection was a cancel request.
async fn login(shared: &Arc<Shared>, client: &mut Client) -> Result<Option<LoggedIn>, Refusal> {
    let snapshot = shared.snapshot_full();
    let params = loop {
        match client.startup().await? {
            Startup::SslRequest => match (&snapshot.tls, &client.stream) {
                (Some(acceptor), ClientStream::Plain(_)) => {
                    client.stream.write_all(b"S").await?;
                    if !client.buf.is_empty() {
                        return Err(Refusal::new(
                            sqlstate::PROTOCOL_VIOLATION,
                            "protocol",
                            "data arrived before the TLS handshake",
                        ));
                    }
                    let ClientStream::Plain(tcp) =
                        std::mem::replace(&mut client.stream, ClientStream::Closed)
                    else {
                        unreachable!("matched above");
                    };
                    let tls = acceptor.accept(Replayed::new(tcp, BytesMut::new())).await?;
                    client.stream = ClientStream::Tls(Box::new(tls));
                }
                _ => client.stream.write_all(b"N").await?,
            },
            Startup::GssEncRequest => client.stream.write_all(b"N").await?,
            Startup::Cancel { pid, secret } => {
                forward_cancel(shared, pid, secret).await;
                return Ok(None);
            }
            Startup::Message { params, .. } => break params,
        }
    };
    if shared.is_draining() {
        return Err(Refusal::new(
            sqlstate::ADMIN_SHUTDOWN,
            "draining",
            "the proxy is shutting down and accepts no new sessions; connect to another replica",
        ));
    }
    let config = &snapshot.config;
    let user_name = Startup::param(&params, "user")
        .ok_or_else(|| {
            Refusal::new(
                sqlstate::INVALID_AUTHORIZATION,
                "no_user",
                "no user name was given in the startup packet",
            )
        })?
        .to_string();
    let Some(user) = config.user(&user_name) else {
        metrics::counter!(names::AUTH_FAILURES_TOTAL, "protocol" => "postgres", "reason" => "unknown_user").increment(1);
        let mut r = Refusal::new(
            sqlstate::INVALID_AUTHORIZATION,
            "unknown_user",
            format!("user \"{user_name}\" is not known to the proxy"),
        );
        r.hint = Some(
            "add the user under `users:` in the proxy's config, or connect as a configured user"
                .into(),
        );
        return Err(r);
    };
    authenticate(client, user).await.inspect_err(|r| {
        metrics::counter!(names::AUTH_FAILURES_TOTAL, "protocol" => "postgres", "reason" => r.reason).increment(1);
    })?;

    let (backend_name, backend) = config.route(Protocol::Postgres).ok_or_else(|| {
        Refusal::new(
            sqlstate::CONNECTION_FAILURE,
            "no_route",
            "no PostgreSQL backend is configured; set `routes.postgres`",
        )
    })?;
    let database = Startup::param(&params, "database")
        .unwrap_or(&user_name)
        .to_string();
    let mut backend_params: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "user")
        .cloned()
        .collect();
    if Startup::param(&params, "database").is_none() {
        backend_params.push(("database".into(), database.clone()));
    }
    // Marks the connection as the proxy's, so the guard of a migrated
    // table tells a write the proxy relayed unmirrored from one that
    // bypassed it (a custom setting: the server reports nothing back).
    backend_params.push((
        switchyard_core::store::pg::PROXY_SETTING.to_string(),
        "on".into(),
    ));
    let login = Login {
        name: backend_name,
        backend,
        tls: snapshot.backend_tls(backend_name),
        user: user.backend_user.as_deref().unwrap_or(&backend.user),
        password: user
            .backend_password
            .as_deref()
            .unwrap_or(&backend.password),
        params: &backend_params,
    };
    let conn = match backend::connect(login, config.limits.connect_timeout, client.max_frame).await
    {
        Ok(conn) => conn,
        Err(BackendError::Rejected {
            frame,
            code,
            message,
            ..
        }) => {
            // The server's own words (e.g. database "x" does not exist) are
            // the clearest error the client can get.
            let mut refusal = Refusal::new(
                sqlstate::CONNECTION_FAILURE,
                "backend_rejected",
                format!("{message} ({code})"),
            );
            refusal.frame = Some(frame);
            return Err(refusal);
        }
        Err(e) => {
            tracing::warn!(error = %e, "postgres backend login failed");
            return Err(Refusal::new(
                sqlstate::CONNECTION_FAILURE,
                "backend_unavailable",
                e.to_string(),
            ));
        }
    };

    let key = issue_key(
        shared,
        CancelTarget {
            endpoint: conn.endpoint.clone(),
            pid: conn.pid,
            secret: conn.secret,
        },
    );
    let mut out = BytesMut::new();
    for (k, v) in &conn.params {
        message::parameter_status(&mut out, k, v);
    }
    message::backend_key_data(&mut out, key.0, key.1);
    message::ready_for_query(&mut out, b'I');
    if let Err(e) = client.send(&out).await {
        shared.cancel_keys.remove(&key);
        return Err(e);
    }
    let application = Startup::param(&params, "application_name")
        .unwrap_or("")
        .to_string();
    let info = ClientInfo {
        user: user_name,
        database,
        application,
        params: backend_params,
        client: None,
        backend_user: user.backend_user.clone(),
    };
    Ok(Some((info, conn, backend_name.to_string(), key)))
}

/// Runs the configured authentication exchange with the client.
async fn authenticate(client: &mut Client, user: &User) -> Result<(), Refusal> {
    let wrong = || {
        Refusal::new(
            sqlstate::INVALID_PASSWORD,
            "wrong_password",
            format!("password authentication failed for user \"{}\"", user.name),
        )
    };
    let secret = || {
        PasswordSecret::parse(&user.password).map_err(|e| {
            Refusal::new(
                sqlstate::INVALID_AUTHORIZATION,
                "bad_secret",
                format!(
                    "user \"{}\" has an unusable password in the proxy's config: {e}",
                    user.name
                ),
            )
        })
    };
    let mut out = BytesMut::new();
    match user.auth_for(Protocol::Postgres) {
        AuthMethod::Trust => {}
        AuthMethod::Md5 => {
            let secret = secret()?;
            let salt = auth::md5_salt();
            message::auth_md5(&mut out, salt);
            client.send(&out).await?;
            out.clear();
            let reply = client.password().await?;
            auth::md5_verify(&secret, &user.name, salt, reply.body()).map_err(|e| match e {
                auth::AuthError::WrongPassword | auth::AuthError::MalformedMd5Response => wrong(),
                e => Refusal::new(sqlstate::INVALID_AUTHORIZATION, "bad_secret", format!("user \"{}\": {e}", user.name)),
            })?;
        }
        AuthMethod::ScramSha256 => {
            let secret = secret()?;
            let mut scram = ScramServer::new(&secret).map_err(|e| {
                Refusal::new(sqlstate::INVALID_AUTHORIZATION, "bad_secret", format!("user \"{}\": {e}", user.name))
            })?;
            message::auth_sasl(&mut out, &[ScramServer::MECHANISM]);
            client.send(&out).await?;
            out.clear();
            let first = client.password().await?;
            let (mechanism, rest) = message::cstr(b'p', first.body())?;
            if rest.len() < 4 {
                return Err(CodecError::BadBody { tag: b'p', reason: "SASLInitialResponse is truncated" }.into());
            }
            let mut data = rest;
            let len = data.get_i32();
            let data = if len < 0 { &[][..] } else { data };
            let server_first = scram.client_first(mechanism, data).map_err(|e| {
                Refusal::new(sqlstate::PROTOCOL_VIOLATION, "protocol", format!("SCRAM exchange failed: {e}"))
            })?;
            message::auth_sasl_data(&mut out, 11, &server_first);
            client.send(&out).await?;
            out.clear();
            let last = client.password().await?;
            let server_final = scram.client_final(last.body()).map_err(|e| match e {
                auth::AuthError::WrongPassword => wrong(),
                e => Refusal::new(sqlstate::PROTOCOL_VIOLATION, "protocol", format!("SCRAM exchange failed: {e}")),
            })?;
            message::auth_sasl_data(&mut out, 12, &server_final);
        }
        other => {
            return Err(Refusal::new(
                sqlstate::INVALID_AUTHORIZATION,
                "bad_method",
                format!("user \"{}\" is configured for {other:?}, a MySQL method; use scram-sha-256, md5 or trust for PostgreSQL", user.name),
            ))
        }
    }
    message::auth_ok(&mut out);
    client.send(&out).await
}

/// Issues a fresh proxy-side cancel key for a backend key.
fn issue_key(shared: &Shared, target: CancelTarget) -> (i32, i32) {
    loop {
        let key = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
        if let dashmap::Entry::Vacant(slot) = shared.cancel_keys.entry(key) {
            slot.insert(target);
            return key;
        }
    }
}

/// Forwards a cancel request for a proxy-issued key to its backend.
async fn forward_cancel(shared: &Shared, pid: i32, secret: i32) {
    let Some(target) = shared.cancel_keys.get(&(pid, secret)).map(|t| t.clone()) else {
        // Like PostgreSQL, say nothing about keys that do not exist.
        metrics::counter!(names::CANCELS_TOTAL, "protocol" => "postgres", "outcome" => "unknown_key").increment(1);
        return;
    };
    let outcome = match backend::cancel(&target.endpoint, target.pid, target.secret).await {
        Ok(()) => "forwarded",
        Err(e) => {
            tracing::warn!(error = %e, addr = %target.endpoint, "cancel request could not reach the backend");
            "failed"
        }
    };
    metrics::counter!(names::CANCELS_TOTAL, "protocol" => "postgres", "outcome" => outcome)
        .increment(1);
}
