//! Test harness: fresh databases on the real MariaDB, an in-process proxy
//! on free ports, mysql_async clients through it, and a raw client for what
//! drivers cannot send.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use switchyard_core::config::Config;
use switchyard_proxy::route::{MigrationRouter, Route};
use switchyard_proxy::server::{self, Running};
use switchyard_proxy::wire::mysql::auth::AuthPlugin;
use switchyard_proxy::wire::mysql::handshake::{
    HandshakeResponse41, HandshakeV10, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF,
    CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_TRANSACTIONS,
};
use switchyard_proxy::wire::mysql::packet::{self, Packet};

/// How long polling helpers wait before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Options for the real MariaDB as root.
pub fn direct_opts(db: Option<&str>) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .pass(Some(""))
        .db_name(db)
        .prefer_socket(false)
        .into()
}

/// A direct connection to the real server.
pub async fn direct(db: Option<&str>) -> Conn {
    Conn::new(direct_opts(db))
        .await
        .expect("MariaDB on 127.0.0.1:3306 (run scripts/ensure-databases.sh)")
}

/// Creates a fresh database named after the test.
pub async fn create_db(prefix: &str) -> String {
    let name = format!("sy_{prefix}_{}", rand::random::<u32>());
    let mut conn = direct(None).await;
    conn.query_drop(format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    name
}

/// Drops a test database.
pub async fn drop_db(name: &str) {
    let mut conn = direct(None).await;
    let _ = conn
        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
        .await;
    let _ = conn.disconnect().await;
}

/// The users and backend every test config starts from.
pub fn base_yaml() -> String {
    r#"
listen: { mysql: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
users:
  - { name: app, password: app }
  - { name: app_native, password: native, auth: mysql_native_password }
  - { name: app_sha2, password: sha2pass, auth: caching_sha2_password }
  - { name: app_empty, password: "", auth: mysql_native_password }
backends:
  my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: "" }
routes: { mysql: my }
"#
    .replace("host: 127.0.0.1, port: 3306", &transport_fields())
}

/// The base backend's address, by `SWITCHYARD_TEST_BACKEND`: `socket` or
/// `tls` runs the whole suite with the backend behind a Unix socket or TLS
/// (verify-full).
pub fn transport_fields() -> String {
    match std::env::var("SWITCHYARD_TEST_BACKEND")
        .unwrap_or_default()
        .as_str()
    {
        "socket" => "host: /run/mysqld/mysqld.sock".to_string(),
        "tls" => format!(
            "host: localhost, port: 3306, tls: verify-full, ca: {}",
            tls_ca().display()
        ),
        _ => "host: 127.0.0.1, port: 3306".to_string(),
    }
}

/// The test CA that signed the local servers' certificates.
pub fn tls_ca() -> std::path::PathBuf {
    let dir = std::env::var("SWITCHYARD_TEST_TLS_DIR")
        .unwrap_or_else(|_| "/var/lib/switchyard/test-tls".into());
    let ca = Path::new(&dir).join("ca.crt");
    assert!(ca.is_file(), "{} is missing: run scripts/ensure-databases.sh (as root) to give the local servers their test TLS certificates", ca.display());
    ca
}

/// A proxy running in this process.
pub struct Proxy {
    /// The running proxy.
    pub running: Running,
    /// Its MySQL listener.
    pub addr: SocketAddr,
}

/// Starts a proxy from YAML with a router.
pub async fn start(yaml: &str, router: Arc<dyn Route>) -> Proxy {
    // `RUST_LOG=switchyard_proxy=debug` shows the proxy's logs in test output.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let config = Config::from_yaml(yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let running = server::start(config, None, router)
        .await
        .expect("proxy starts");
    let addr = running.mysql.expect("mysql listener");
    Proxy { running, addr }
}

/// Starts a proxy with the base config and the production router.
pub async fn start_default() -> Proxy {
    start(&base_yaml(), Arc::new(MigrationRouter::default())).await
}

impl Proxy {
    /// Client options through the proxy.
    pub fn opts(&self, user: &str, password: &str, db: Option<&str>) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(self.addr.ip().to_string())
            .tcp_port(self.addr.port())
            .user(Some(user))
            .pass(Some(password))
            .db_name(db)
            .prefer_socket(false)
    }

    /// Connects through the proxy as `app`.
    pub async fn connect(&self, db: &str) -> Conn {
        self.try_connect("app", "app", Some(db))
            .await
            .expect("connect through the proxy")
    }

    /// Connects through the proxy, returning the error if login fails.
    pub async fn try_connect(
        &self,
        user: &str,
        password: &str,
        db: Option<&str>,
    ) -> mysql_async::Result<Conn> {
        Conn::new(self.opts(user, password, db)).await
    }
}

/// The server error inside a mysql_async error, as (code, SQLSTATE, message).
pub fn server_error(e: &mysql_async::Error) -> (u16, String, String) {
    match e {
        mysql_async::Error::Server(s) => (s.code, s.state.clone(), s.message.clone()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// A client speaking the protocol by hand.
pub struct RawMy {
    /// The socket to the proxy.
    pub stream: tokio::net::TcpStream,
    /// Bytes read but not yet split into packets.
    buf: BytesMut,
    /// The greeting the proxy sent.
    pub greeting: HandshakeV10,
    /// Capabilities the client announced.
    pub capabilities: u32,
    /// MariaDB extended capabilities the client announced.
    pub mariadb_capabilities: u32,
}

impl RawMy {
    /// Opens a connection and reads the greeting.
    pub async fn open(addr: SocketAddr) -> RawMy {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("proxy reachable");
        let mut raw = RawMy {
            stream,
            buf: BytesMut::new(),
            greeting: placeholder(),
            capabilities: 0,
            mariadb_capabilities: 0,
        };
        let greeting = raw.packet().await.expect("a greeting");
        raw.greeting = HandshakeV10::parse(&greeting.payload).expect("a HandshakeV10 greeting");
        raw
    }

    /// Logs in with mysql_native_password and waits for the OK.
    pub async fn login(addr: SocketAddr, user: &str, password: &str, db: Option<&str>) -> RawMy {
        RawMy::login_extended(addr, user, password, db, 0).await
    }

    /// Logs in like [`RawMy::login`], asking for the MariaDB extended
    /// capabilities `mariadb_capabilities` (as far as the greeting offers them).
    pub async fn login_extended(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: Option<&str>,
        mariadb_capabilities: u32,
    ) -> RawMy {
        let mut raw = RawMy::open(addr).await;
        raw.mariadb_capabilities = mariadb_capabilities & raw.greeting.mariadb_capabilities;
        raw.capabilities = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CLIENT_TRANSACTIONS
            | CLIENT_MULTI_STATEMENTS
            | CLIENT_MULTI_RESULTS
            | CLIENT_DEPRECATE_EOF
            | if db.is_some() {
                CLIENT_CONNECT_WITH_DB
            } else {
                0
            };
        let plugin = AuthPlugin::MysqlNativePassword;
        let hello = HandshakeResponse41 {
            capabilities: raw.capabilities,
            max_packet_size: 1 << 24,
            charset: 45,
            username: user.into(),
            auth_response: plugin.scramble(password.as_bytes(), &raw.greeting.auth_plugin_data),
            database: db.map(str::to_string),
            auth_plugin_name: Some(plugin.name().into()),
            mariadb_capabilities: raw.mariadb_capabilities,
            ..HandshakeResponse41::default()
        };
        let mut payload = BytesMut::new();
        hello.encode(&mut payload);
        raw.send_packet(1, &payload).await;
        // The proxy announces caching_sha2_password and switches a native
        // user's client when it answered with the other plugin; this one did not.
        let reply = raw.packet().await.expect("login answer");
        assert_eq!(
            reply.payload.first(),
            Some(&0x00),
            "login failed: {:?}",
            String::from_utf8_lossy(&reply.payload)
        );
        raw
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the proxy");
    }

    /// Frames and writes one packet.
    pub async fn send_packet(&mut self, seq: u8, payload: &[u8]) {
        let mut out = BytesMut::new();
        packet::encode(seq, payload, &mut out);
        self.send(&out).await;
    }

    /// The next packet, or `None` once the proxy closed the connection.
    /// Panics if nothing arrives within [`DEADLINE`].
    pub async fn packet(&mut self) -> Option<Packet> {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some(p) = packet::decode(&mut self.buf, 1 << 30).expect("valid framing") {
                return Some(p);
            }
            let read = tokio::time::timeout(DEADLINE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the proxy answers or closes in time");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends a command and reads its whole response (the codec's tracker
    /// says where it ends); returns the payloads.
    pub async fn command(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        use switchyard_proxy::wire::mysql::tracker::{Progress, ResponseTracker};
        self.send_packet(0, payload).await;
        let mut tracker = ResponseTracker::for_command(payload, self.capabilities)
            .expect("a trackable command")
            .with_mariadb_capabilities(self.mariadb_capabilities);
        let mut got = Vec::new();
        let mut expected_seq = 1u8;
        while !tracker.is_done() {
            let p = self.packet().await.expect("a response");
            assert_eq!(p.seq, expected_seq, "answers are numbered in step");
            expected_seq = p.seq.wrapping_add(1);
            let progress = tracker.feed(&p.payload).expect("a well-formed response");
            got.push(p.payload.to_vec());
            if let Progress::ResultEnd {
                more_results: false,
                ..
            } = progress
            {
                break;
            }
        }
        got
    }

    /// Reads until the proxy closes the connection; panics if it does not
    /// within [`DEADLINE`].
    pub async fn expect_closed(&mut self) {
        if let Some(p) = self.packet().await {
            panic!(
                "expected the connection to close, got a packet: {:?}",
                &p.payload[..]
            );
        }
    }
}

fn placeholder() -> HandshakeV10 {
    HandshakeV10 {
        server_version: String::new(),
        connection_id: 0,
        auth_plugin_data: Vec::new(),
        capabilities: 0,
        mariadb_capabilities: 0,
        charset: 0,
        status: 0,
        auth_plugin_name: String::new(),
    }
}

/// Code, SQLSTATE and message of an ERR payload.
pub fn err_fields(payload: &[u8]) -> (u16, String, String) {
    let err = switchyard_proxy::wire::mysql::message::ErrPacket::parse(payload)
        .unwrap_or_else(|e| panic!("expected an ERR packet ({e}): {payload:?}"));
    (err.code, err.sql_state_str().to_string(), err.message)
}

#[path = "../support/forwarder.rs"]
mod forwarder;
/// A relay to the real MariaDB that can be cut and restored.
pub use forwarder::Forwarder;

#[path = "../support/http.rs"]
pub mod http;
pub use http::{http_get, http_put};

#[path = "../support/catalog.rs"]
pub mod catalog;

#[path = "../support/webhook.rs"]
pub mod webhook;
