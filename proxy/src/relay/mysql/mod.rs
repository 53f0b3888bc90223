//! The MySQL / MariaDB side of the relay: the client's handshake, TLS and
//! login (terminated at the proxy), the backend login, the `KILL` registry,
//! and the session that relays commands between them.
//!
//! A connection goes: proxy greeting (its own connection id, a fresh salt,
//! and the backend's version and capabilities as the backend last announced
//! them) → optional TLS → the client proves the password configured under
//! `users:` → only then the proxy opens the backend connection and logs in
//! with the configured credentials and the client's schema and collation →
//! [`session::Session`]. So an unauthenticated client never holds a backend
//! connection (only the first client of a backend address waits for a real
//! backend greeting to copy).
//! The codec in `wire::mysql` does the byte work; this module owns the IO.

pub mod backend;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use dashmap::DashMap;
use switchyard_core::config::{AuthMethod, Backend, Protocol, User};
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

use self::backend::{BackendError, MyBackend};
use self::session::{ClientInfo, Session};
use crate::relay::stream::{ClientStream, Replayed};
use crate::state::{KillTarget, Shared, Snapshot};
use crate::wire::mysql::auth::{
    AuthPlugin, AuthStep, Rejection, RsaKeys, ServerAuth, REQUEST_PUBLIC_KEY,
};
use crate::wire::mysql::handshake::{
    client_offer, mariadb_offer, new_salt, parse_client_hello, ClientHello, HandshakeResponse41,
    HandshakeV10, CLIENT_LONG_PASSWORD, CLIENT_SSL, SESSION_CAPABILITIES,
};
use crate::wire::mysql::login::BackendLoginConfig;
use crate::wire::mysql::message::{ErrPacket, OkPacket};
use crate::wire::mysql::packet::{self, Packet};

/// A client has this long to finish TLS and authentication.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Error codes the proxy itself answers with (MySQL's numbers).
pub mod code {
    /// ER_CON_COUNT_ERROR: too many connections.
    pub const TOO_MANY_CONNECTIONS: u16 = 1040;
    /// ER_HANDSHAKE_ERROR: bad handshake.
    pub const HANDSHAKE: u16 = 1043;
    /// ER_UNKNOWN_COM_ERROR: unknown or unsupported command.
    pub const UNKNOWN_COMMAND: u16 = 1047;
    /// ER_SERVER_SHUTDOWN: the server is shutting down.
    pub const SHUTDOWN: u16 = 1053;
    /// ER_NO_SUCH_THREAD: unknown thread id for KILL.
    pub const NO_SUCH_THREAD: u16 = 1094;
    /// ER_NOT_ALLOWED_COMMAND: the command is not allowed (LOCAL INFILE).
    pub const NOT_ALLOWED: u16 = 1148;
    /// ER_NET_PACKET_TOO_LARGE: a packet exceeds the limit.
    pub const PACKET_TOO_LARGE: u16 = 1153;
    /// ER_NET_PACKETS_OUT_OF_ORDER: a sequence id out of step.
    pub const OUT_OF_ORDER: u16 = 1156;
    /// ER_WARN_DATA_OUT_OF_RANGE: a value outside its column type's range.
    pub const OUT_OF_RANGE: u16 = 1264;
    /// ER_UNKNOWN_ERROR: the proxy's own failure with no closer code.
    pub const UNKNOWN_ERROR: u16 = 1105;
    /// ER_MALFORMED_PACKET: a packet that cannot be decoded.
    pub const MALFORMED: u16 = 1835;
    /// CR_CONN_HOST_ERROR: the backend cannot be reached.
    pub const BACKEND_UNREACHABLE: u16 = 2003;
    /// CR_SERVER_LOST: the backend connection was lost.
    pub const BACKEND_LOST: u16 = 2013;
}

/// The ERR packet a server sends instead of its greeting when full.
pub fn too_many_connections(out: &mut BytesMut) {
    let err = ErrPacket::new(
        code::TOO_MANY_CONNECTIONS,
        "08004",
        "Too many connections: the proxy is at limits.max_connections; retry later or raise the limit",
    );
    let mut payload = BytesMut::new();
    err.encode(&mut payload);
    packet::encode(0, &payload, out);
}

/// The proxy's RSA key pair for caching_sha2_password full authentication
/// without TLS, generated on first need (it takes a moment).
async fn rsa_keys() -> Option<&'static RsaKeys> {
    static KEYS: OnceCell<Option<RsaKeys>> = OnceCell::const_new();
    KEYS.get_or_init(|| async {
        match tokio::task::spawn_blocking(RsaKeys::generate).await {
            Ok(Ok(keys)) => Some(keys),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not generate the MySQL RSA key pair");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "RSA key generation panicked");
                None
            }
        }
    })
    .await
    .as_ref()
}

/// The RSA keys for a caching_sha2_password reply, only when the client is
/// on the RSA path (asking for the public key, or sending a 2048-bit
/// ciphertext) on a plaintext connection: keys are made on first need.
pub(crate) async fn keys_for(
    auth: &ServerAuth,
    secure: bool,
    reply: &[u8],
) -> Option<&'static RsaKeys> {
    let rsa_path = reply == [REQUEST_PUBLIC_KEY] || reply.len() == 256;
    if secure || auth.plugin() != AuthPlugin::CachingSha2Password || !rsa_path {
        return None;
    }
    rsa_keys().await
}

/// What a backend's greeting says that the proxy's own greeting repeats.
#[derive(Clone, Debug)]
struct GreetingFacts {
    /// Server version string (clients read features from it).
    server_version: String,
    /// The server's capability flags.
    capabilities: u32,
    /// The server's MariaDB extended flags.
    mariadb_capabilities: u32,
    /// Default collation id.
    charset: u8,
    /// Status flags.
    status: u16,
}

/// The last greeting of each backend address (`host:port`).
fn greetings() -> &'static DashMap<String, GreetingFacts> {
    static GREETINGS: std::sync::OnceLock<DashMap<String, GreetingFacts>> =
        std::sync::OnceLock::new();
    GREETINGS.get_or_init(DashMap::new)
}

/// Remembers a backend's greeting for the next clients; returns its facts.
fn remember(addr: &str, handshake: &HandshakeV10) -> GreetingFacts {
    let facts = GreetingFacts {
        server_version: handshake.server_version.clone(),
        capabilities: handshake.capabilities,
        mariadb_capabilities: handshake.mariadb_capabilities,
        charset: handshake.charset,
        status: handshake.status,
    };
    greetings().insert(addr.to_string(), facts.clone());
    facts
}

/// Why a login ended before a session started: the ERR the client gets.
#[derive(Debug)]
struct Refusal {
    err: ErrPacket,
    /// Sequence id of the ERR packet.
    seq: u8,
    /// Metric label.
    reason: &'static str,
    /// Whether the client is still there to be told.
    answer: bool,
}

impl Refusal {
    fn new(
        code: u16,
        sql_state: &str,
        reason: &'static str,
        seq: u8,
        text: impl Into<String>,
    ) -> Refusal {
        Refusal {
            err: ErrPacket::new(code, sql_state, text),
            seq,
            reason,
            answer: true,
        }
    }

    fn gone() -> Refusal {
        Refusal {
            err: ErrPacket::new(
                code::HANDSHAKE,
                "08S01",
                "client closed the connection during login",
            ),
            seq: 0,
            reason: "client_gone",
            answer: false,
        }
    }
}

/// The client connection during login.
struct Client {
    stream: ClientStream,
    inbox: BytesMut,
    max_payload: usize,
    /// The client's IP address, as MySQL names it in "Access denied".
    host: String,
}

impl Client {
    async fn packet(&mut self) -> Result<Packet, Refusal> {
        loop {
            match packet::decode(&mut self.inbox, self.max_payload) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => {
                    return Err(Refusal::new(
                        code::MALFORMED,
                        "08S01",
                        "protocol",
                        2,
                        e.to_string(),
                    ))
                }
            }
            match self.stream.read_buf(&mut self.inbox).await {
                Ok(0) | Err(_) => return Err(Refusal::gone()),
                Ok(n) => session::count_bytes("client_to_server", n),
            }
        }
    }

    /// Reads exactly one small packet and nothing after it: a client that
    /// asks for TLS sends its TLS ClientHello right behind the SSLRequest,
    /// and those bytes belong to the TLS handshake, not to this buffer.
    async fn packet_exact(&mut self) -> Result<Packet, Refusal> {
        if !self.inbox.is_empty() {
            return self.packet().await;
        }
        let mut header = [0u8; packet::HEADER_LEN];
        self.stream
            .read_exact(&mut header)
            .await
            .map_err(|_| Refusal::gone())?;
        let (len, seq) = packet::peek_header(&header).unwrap_or_default();
        if len >= 64 * 1024 {
            let text = format!("Bad handshake: a handshake response of {len} bytes");
            return Err(Refusal::new(
                code::HANDSHAKE,
                "08S01",
                "protocol",
                seq.wrapping_add(1),
                text,
            ));
        }
        let mut payload = BytesMut::zeroed(len);
        self.stream
            .read_exact(&mut payload)
            .await
            .map_err(|_| Refusal::gone())?;
        session::count_bytes("client_to_server", packet::HEADER_LEN + len);
        Ok(Packet { seq, payload })
    }

    async fn send(&mut self, packets: &[Packet]) -> Result<(), Refusal> {
        let mut out = BytesMut::new();
        for p in packets {
            p.encode(&mut out);
        }
        session::count_bytes("server_to_client", out.len());
        self.stream
            .write_all(&out)
            .await
            .map_err(|_| Refusal::gone())
    }
}

/// Serves one MySQL client connection from accept to close.
pub async fn serve(shared: Arc<Shared>, socket: TcpStream) {
    socket.set_nodelay(true).ok();
    let snapshot = shared.snapshot_full();
    let proxy_id = issue_id(&shared);
    let host = socket
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut client = Client {
        stream: ClientStream::Plain(socket),
        inbox: BytesMut::with_capacity(8192),
        max_payload: snapshot.config.limits.max_frame_bytes,
        host,
    };
    let login = tokio::time::timeout(
        LOGIN_TIMEOUT,
        login(&shared, &snapshot, &mut client, proxy_id),
    )
    .await;
    let result = login.unwrap_or_else(|_| {
        Err(Refusal::new(
            code::HANDSHAKE,
            "08S01",
            "timeout",
            0,
            "login did not complete within 30 seconds",
        ))
    });
    match result {
        Ok((info, conn)) => {
            shared.mysql_threads.insert(
                proxy_id,
                KillTarget {
                    backend: conn.name.clone(),
                    thread_id: conn.thread_id,
                },
            );
            let session = Session::new(shared.clone(), info, client.stream, client.inbox, conn);
            let end = session.run().await;
            tracing::debug!(%end, "mysql session ended");
            shared.mysql_threads.remove(&proxy_id);
        }
        Err(refusal) => {
            tracing::info!(reason = refusal.reason, error = %refusal.err.message, "mysql login refused");
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "mysql", "reason" => refusal.reason).increment(1);
            if refusal.answer {
                let mut payload = BytesMut::new();
                refusal.err.encode(&mut payload);
                let _ = client
                    .send(&[Packet {
                        seq: refusal.seq,
                        payload,
                    }])
                    .await;
            }
            let _ = client.stream.shutdown().await;
        }
    }
}

/// A fresh proxy connection id: never 0, never one in use.
fn issue_id(shared: &Shared) -> u32 {
    loop {
        let id = shared
            .next_mysql_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if id != 0 && !shared.mysql_threads.contains_key(&id) {
            return id;
        }
    }
}

/// The backend credentials a proxy user logs in with.
pub fn credentials<'a>(user: &'a User, backend: &'a Backend) -> (&'a str, &'a str) {
    match &user.backend_user {
        Some(name) => (name, user.backend_password.as_deref().unwrap_or("")),
        None => (&backend.user, &backend.password),
    }
}

/// The plugin a user must authenticate with on the MySQL listener.
fn plugin_of(user: &User) -> AuthPlugin {
    match user.auth_for(Protocol::Mysql) {
        AuthMethod::MysqlNativePassword => AuthPlugin::MysqlNativePassword,
        _ => AuthPlugin::CachingSha2Password,
    }
}

/// The password the proxy checks a MySQL client against. MySQL's scrambles
/// need the plaintext, so a SCRAM verifier cannot serve this listener.
fn mysql_password(user: &User) -> Option<Vec<u8>> {
    (!user.password.starts_with("SCRAM-SHA-256$")).then(|| user.password.as_bytes().to_vec())
}

/// Greeting, TLS, authentication and the backend login.
async fn login(
    shared: &Arc<Shared>,
    snapshot: &Arc<Snapshot>,
    client: &mut Client,
    proxy_id: u32,
) -> Result<(ClientInfo, MyBackend), Refusal> {
    let config = &snapshot.config;
    if shared.is_draining() {
        return Err(Refusal::new(
            code::SHUTDOWN,
            "08S01",
            "draining",
            0,
            "the proxy is shutting down and accepts no new sessions; connect to another replica",
        ));
    }
    let (backend_name, backend) = config.route(Protocol::Mysql).ok_or_else(|| {
        Refusal::new(
            code::BACKEND_UNREACHABLE,
            "08S01",
            "no_route",
            0,
            "no MySQL backend is configured; set `routes.mysql`",
        )
    })?;
    let timeout = config.limits.connect_timeout;
    // Greet from what this backend said last time, so an unauthenticated
    // client holds no backend connection; only the first client of a
    // backend address waits for a real greeting.
    let addr = backend.location();
    let tls = snapshot.backend_tls(backend_name);
    let (mut greeted, facts) = match greetings().get(&addr).map(|f| f.clone()) {
        Some(facts) => (None, facts),
        None => {
            let greeted = backend::open(backend_name, backend, tls, timeout, client.max_payload)
                .await
                .map_err(|e| backend_refusal(e, 0))?;
            let facts = remember(&addr, &greeted.handshake);
            (Some(greeted), facts)
        }
    };

    let salt = new_salt();
    let mut offer = client_offer(facts.capabilities, snapshot.tls.is_some());
    let extended_offer = mariadb_offer(facts.capabilities, facts.mariadb_capabilities);
    if extended_offer != 0 {
        offer &= !CLIENT_LONG_PASSWORD;
    }
    let greeting = HandshakeV10 {
        server_version: facts.server_version.clone(),
        connection_id: proxy_id,
        auth_plugin_data: salt.to_vec(),
        capabilities: offer,
        mariadb_capabilities: extended_offer,
        charset: facts.charset,
        status: facts.status,
        auth_plugin_name: AuthPlugin::CachingSha2Password.name().to_string(),
    };
    let mut payload = BytesMut::new();
    greeting.encode(&mut payload);
    client.send(&[Packet { seq: 0, payload }]).await?;

    let (hello, seq) = client_hello(client, snapshot, offer).await?;
    let capabilities = hello.capabilities & offer;
    let mariadb_capabilities = hello.mariadb_capabilities & extended_offer;
    let user = config.user(&hello.username);
    let (plugin, password) = match user {
        Some(u) => (plugin_of(u), mysql_password(u)),
        None => (AuthPlugin::CachingSha2Password, None),
    };
    let secure = client.stream.is_tls();
    let login = Credentials {
        plugin,
        password,
        secure,
        full_auth: config.mysql.caching_sha2_full_auth,
    };
    let auth = authenticate(client, &hello, seq, salt, login).await;
    let ((packets, ok_seq), user) = match (auth, user) {
        (Ok(accepted), Some(user)) => (accepted, user),
        (Ok((_, ok_seq)), None) => {
            return Err(access_denied(&hello, &client.host, ok_seq, "unknown_user"))
        }
        (Err(mut r), user) => {
            if user.is_none() && r.reason == "wrong_password" {
                r.reason = "unknown_user";
            }
            metrics::counter!(names::AUTH_FAILURES_TOTAL, "protocol" => "mysql", "reason" => r.reason).increment(1);
            return Err(r);
        }
    };

    // An error now takes the place of the first packet not yet sent (the
    // caching_sha2 fast-auth success, or the OK).
    let err_seq = packets.first().map_or(ok_seq, |p| p.seq);
    let (backend_user, backend_password) = credentials(user, backend);
    let database = hello
        .database
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| backend.database.clone());
    let login = BackendLoginConfig {
        user: backend_user.to_string(),
        password: backend_password.to_string(),
        database: database.clone(),
        charset: hello.charset,
        client_capabilities: capabilities,
        client_mariadb_capabilities: mariadb_capabilities,
        tls: false,
        connect_attrs: session_attrs(&hello.connect_attrs, proxy_id),
        max_packet_size: hello.max_packet_size.max(1 << 24),
        server_public_key: None,
    };
    let greeted = match greeted.take() {
        Some(greeted) => greeted,
        None => backend::open(backend_name, backend, tls, timeout, client.max_payload)
            .await
            .map_err(|e| backend_refusal(e, err_seq))?,
    };
    let fresh = remember(&addr, &greeted.handshake);
    let extended_now = mariadb_offer(fresh.capabilities, fresh.mariadb_capabilities);
    if capabilities & SESSION_CAPABILITIES & !fresh.capabilities != 0
        || mariadb_capabilities & !extended_now != 0
    {
        // The server changed since the greeting was made (an upgrade or a
        // failover to another version); the two legs would disagree.
        return Err(Refusal::new(
            code::BACKEND_UNREACHABLE,
            "08S01",
            "backend_changed",
            err_seq,
            format!("switchyard: backend `{backend_name}` changed its capabilities since this connection was greeted; reconnect"),
        ));
    }
    let mut conn = backend::login(greeted, login, timeout, client.max_payload)
        .await
        .map_err(|e| backend_refusal(e, err_seq))?;
    if !snapshot.config.migrations.is_empty() {
        // Marks the connection as the proxy's, so the guard of a migrated
        // table tells a write the proxy relayed unmirrored (a CALL) from
        // one that bypassed it. A failure only costs that label.
        let mark = switchyard_core::store::mysql::mark_proxy_session();
        if let Err(e) = backend::simple_query(&mut conn, &mark).await {
            tracing::debug!(error = %e, "could not mark the backend connection as the proxy's");
        }
    }

    let mut out = packets;
    let mut payload = BytesMut::new();
    OkPacket {
        status: conn.status,
        ..OkPacket::default()
    }
    .encode(capabilities, &mut payload);
    out.push(Packet {
        seq: ok_seq,
        payload,
    });
    client.send(&out).await?;
    let application = hello
        .connect_attrs
        .iter()
        .find(|(k, _)| k == "program_name")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let info = ClientInfo {
        user: user.name.clone(),
        database: database.unwrap_or_default(),
        application,
        capabilities,
        mariadb_capabilities,
        charset: hello.charset,
        max_packet_size: hello.max_packet_size,
        connect_attrs: hello.connect_attrs,
        salt,
        proxy_id,
        backend_name: backend_name.to_string(),
        host: client.host.clone(),
        backend_user: user.backend_user.clone(),
    };
    Ok((info, conn))
}

/// The connection attributes sent to the backend: the client's, plus the
/// proxy's connection id so a DBA can match the two in the processlist.
pub fn session_attrs(client: &[(String, String)], proxy_id: u32) -> Vec<(String, String)> {
    let mut attrs = client.to_vec();
    attrs.push(("_switchyard_connection_id".into(), proxy_id.to_string()));
    attrs
}

/// Reads the client's HandshakeResponse41, after TLS if it asks for it.
/// Returns the response and its sequence id.
async fn client_hello(
    client: &mut Client,
    snapshot: &Snapshot,
    offer: u32,
) -> Result<(HandshakeResponse41, u8), Refusal> {
    let first = client.packet_exact().await?;
    let bad = |seq: u8, e: String| {
        Refusal::new(
            code::HANDSHAKE,
            "08S01",
            "protocol",
            seq.wrapping_add(1),
            format!("Bad handshake: {e}"),
        )
    };
    match parse_client_hello(&first.payload).map_err(|e| bad(first.seq, e.to_string()))? {
        ClientHello::Response(hello) => Ok((hello, first.seq)),
        ClientHello::SslRequest(_) => {
            let acceptor = match (&snapshot.tls, offer & CLIENT_SSL != 0) {
                (Some(acceptor), true) => acceptor.clone(),
                _ => {
                    return Err(bad(
                        first.seq,
                        "the client asked for TLS, which the proxy did not offer".into(),
                    ))
                }
            };
            let ClientStream::Plain(tcp) =
                std::mem::replace(&mut client.stream, ClientStream::Closed)
            else {
                return Err(bad(first.seq, "TLS was already negotiated".into()));
            };
            // The client does not wait for an answer to its SSLRequest: the
            // TLS handshake may already be in the buffer.
            let early = client.inbox.split();
            let tls = acceptor
                .accept(Replayed::new(tcp, early))
                .await
                .map_err(|e| {
                    let mut r = Refusal::gone();
                    r.reason = "tls";
                    r.err.message = format!("TLS handshake failed: {e}");
                    r
                })?;
            client.stream = ClientStream::Tls(Box::new(tls));
            let second = client.packet().await?;
            match parse_client_hello(&second.payload).map_err(|e| bad(second.seq, e.to_string()))? {
                ClientHello::Response(hello) => Ok((hello, second.seq)),
                ClientHello::SslRequest(_) => Err(bad(second.seq, "a second SSLRequest".into())),
            }
        }
    }
}

/// What a client's login is checked against.
struct Credentials {
    /// The user's method.
    plugin: AuthPlugin,
    /// The user's password; `None` for an unknown user (the exchange runs
    /// the same and fails at the end).
    password: Option<Vec<u8>>,
    /// The client connection is encrypted.
    secure: bool,
    /// `mysql.caching_sha2_full_auth`.
    full_auth: bool,
}

/// Runs the authentication exchange. On success returns the packets to
/// send before the OK (caching_sha2 fast-auth success) and the OK's
/// sequence id; the backend login happens before either is sent.
async fn authenticate(
    client: &mut Client,
    hello: &HandshakeResponse41,
    seq: u8,
    salt: [u8; 20],
    login: Credentials,
) -> Result<(Vec<Packet>, u8), Refusal> {
    let secure = login.secure;
    let mut auth = ServerAuth::new(salt, login.plugin, login.password, secure)
        .strict(true)
        .force_full_auth(login.full_auth);
    let mut step = auth.start(hello, seq);
    loop {
        match step {
            AuthStep::Send(p) => {
                client.send(&[p]).await?;
                let reply = client.packet().await?;
                let keys = keys_for(&auth, secure, &reply.payload).await;
                step = auth.next(reply.seq, &reply.payload, keys);
            }
            AuthStep::Accepted { packets, ok_seq } => return Ok((packets, ok_seq)),
            AuthStep::Rejected { reason, err_seq } => {
                let label = match reason {
                    Rejection::WrongPassword => "wrong_password",
                    Rejection::InsecureTransport => "insecure_transport",
                    Rejection::ProtocolViolation => "protocol",
                };
                return Err(access_denied(hello, &client.host, err_seq, label));
            }
        }
    }
}

/// MySQL's "Access denied" for every failed login: wrong password and
/// unknown user alike, so the answer does not tell which user names exist.
fn access_denied(
    hello: &HandshakeResponse41,
    host: &str,
    seq: u8,
    reason: &'static str,
) -> Refusal {
    let mut r = Refusal::new(0, "28000", reason, seq, "");
    r.err = ErrPacket::access_denied(&hello.username, host, !hello.auth_response.is_empty());
    r
}

/// What a client is told when its backend connection cannot be opened.
fn backend_refusal(e: BackendError, seq: u8) -> Refusal {
    match e {
        // The server's own words (unknown database, access denied for the
        // configured backend user) are the clearest answer.
        BackendError::Rejected { err, name } => {
            tracing::warn!(backend = %name, code = err.code, message = %err.message, "mysql backend refused the login");
            Refusal {
                err,
                seq,
                reason: "backend_rejected",
                answer: true,
            }
        }
        e => {
            tracing::warn!(error = %e, "mysql backend login failed");
            Refusal::new(
                code::BACKEND_UNREACHABLE,
                "08S01",
                "backend_unavailable",
                seq,
                format!("switchyard: {e}"),
            )
        }
    }
}

/// Parses `KILL [HARD|SOFT] [CONNECTION|QUERY] [ID] <n>`: whether only the
/// query is killed, and the id.
pub fn parse_kill(sql: &str) -> Option<(bool, u64)> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let mut words = sql.split_ascii_whitespace().peekable();
    if !words.next()?.eq_ignore_ascii_case("kill") {
        return None;
    }
    let mut query_only = false;
    while let Some(word) = words.peek() {
        let w = word.to_ascii_lowercase();
        match w.as_str() {
            "hard" | "soft" | "connection" | "id" => {}
            "query" => query_only = true,
            _ => break,
        }
        words.next();
    }
    let id = words.next()?.parse().ok()?;
    words.next().is_none().then_some((query_only, id))
}

/// Runs a KILL of a proxy-issued connection id against the backend thread
/// behind it, on a side connection logged in with `user`'s backend
/// credentials. `None` when the id is not one the proxy issued.
pub async fn kill(
    shared: &Shared,
    user: &str,
    proxy_id: u64,
    query_only: bool,
) -> Option<Result<(), ErrPacket>> {
    let target = u32::try_from(proxy_id)
        .ok()
        .and_then(|id| shared.mysql_threads.get(&id).map(|t| t.clone()))?;
    let snapshot = shared.snapshot_full();
    let config = &snapshot.config;
    let outcome = match (config.backends.get(&target.backend), config.user(user)) {
        (Some(backend), Some(u)) => {
            let (name, password) = credentials(u, backend);
            let timeout = config.limits.connect_timeout;
            backend::kill(
                &target.backend,
                backend,
                snapshot.backend_tls(&target.backend),
                name,
                password,
                target.thread_id,
                query_only,
                timeout,
            )
            .await
            .map_err(|e| match e {
                BackendError::Rejected { err, .. } => err,
                e => ErrPacket::new(
                    code::BACKEND_UNREACHABLE,
                    "08S01",
                    format!("switchyard: KILL failed: {e}"),
                ),
            })
        }
        _ => Err(ErrPacket::new(
            code::NO_SUCH_THREAD,
            "HY000",
            format!("Unknown thread id: {proxy_id}"),
        )),
    };
    let label = if outcome.is_ok() {
        "forwarded"
    } else {
        "failed"
    };
    metrics::counter!(names::CANCELS_TOTAL, "protocol" => "mysql", "outcome" => label).increment(1);
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use super::parse_kill;

    #[test]
    fn kill_statements_parse() {
        assert_eq!(parse_kill("KILL QUERY 12"), Some((true, 12)));
        assert_eq!(parse_kill("kill 7;"), Some((false, 7)));
        assert_eq!(parse_kill("  KILL HARD CONNECTION 3 "), Some((false, 3)));
        assert_eq!(parse_kill("KILL SOFT QUERY ID 9"), Some((true, 9)));
        assert_eq!(parse_kill("KILL QUERY 1 2"), None);
        assert_eq!(parse_kill("KILL USER bob"), None);
        assert_eq!(parse_kill("SELECT 1"), None);
    }
}
