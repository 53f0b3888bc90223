//! Test harness: fresh databases, an in-process proxy on free ports, and
//! clients connected through it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use switchyard_core::config::Config;
use switchyard_proxy::route::{MigrationRouter, Route};
use switchyard_proxy::server::{self, Running};
use tokio_postgres::{Client, NoTls};

/// A direct connection to the real server.
pub async fn direct(db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-databases.sh)");
    tokio::spawn(conn);
    client
}

/// Creates a fresh database named after the test.
pub async fn create_db(prefix: &str) -> String {
    let name = format!("sy_{prefix}_{}", rand::random::<u32>());
    direct("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    name
}

/// Drops a test database, ending any session still in it.
pub async fn drop_db(name: &str) {
    let admin = direct("postgres").await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// The users and backend every test config starts from.
/// `SWITCHYARD_TEST_BACKEND=socket` or `=tls` runs the whole suite with the
/// backend behind a Unix socket or TLS (verify-full).
pub fn base_yaml() -> String {
    format!(
        r#"
listen: {{ postgres: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
users:
  - {{ name: app, password: app }}
  - {{ name: app_md5, password: app, auth: md5 }}
  - {{ name: app_trust, password: "", auth: trust }}
backends:
  pg: {{ {} }}
routes: {{ postgres: pg }}
"#,
        backend_fields()
    )
}

/// The base backend's fields, by `SWITCHYARD_TEST_BACKEND`.
pub fn backend_fields() -> String {
    let transport = std::env::var("SWITCHYARD_TEST_BACKEND").unwrap_or_default();
    let fields = match transport.as_str() {
        "socket" => "host: /var/run/postgresql, port: 5432".to_string(),
        "tls" => format!(
            "host: localhost, port: 5432, tls: verify-full, ca: {}",
            tls_ca().display()
        ),
        _ => "host: 127.0.0.1, port: 5432".to_string(),
    };
    format!(r#"kind: postgres, {fields}, user: postgres, password: """#)
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
    /// Its PostgreSQL listener.
    pub addr: SocketAddr,
}

/// Starts a proxy from YAML with a router.
pub async fn start(yaml: &str, router: Arc<dyn Route>) -> Proxy {
    let config = Config::from_yaml(yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    let running = server::start(config, None, router)
        .await
        .expect("proxy starts");
    let addr = running.postgres.expect("postgres listener");
    Proxy { running, addr }
}

/// Starts a proxy with the base config and the production router.
pub async fn start_default() -> Proxy {
    start(&base_yaml(), Arc::new(MigrationRouter::default())).await
}

impl Proxy {
    /// A libpq-style connection string through the proxy.
    pub fn dsn(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "host={} port={} user={user} password={password} dbname={db}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Connects through the proxy as `app`.
    pub async fn connect(&self, db: &str) -> Client {
        self.try_connect("app", "app", db)
            .await
            .expect("connect through the proxy")
    }

    /// Connects through the proxy, returning the error if login fails.
    pub async fn try_connect(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.dsn(user, password, db), NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

// ---- helpers for the auth, protocol, faults and lifecycle suites ---------

/// How long any polling helper waits before the test fails.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Polls `probe` every 25 ms until it returns `Some`, panicking with `what`
/// after `within`.
pub async fn eventually<T, F, Fut>(within: std::time::Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A client whose connection task reports notices and notifications on a
/// channel and whose end (with the error that ended it) can be awaited.
pub struct Watched {
    /// The client.
    pub client: Client,
    /// Notices and notifications, in arrival order.
    pub messages: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::AsyncMessage>,
    /// The connection task; its result says how the connection ended.
    pub conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

/// Connects with `dsn` and watches the connection's asynchronous messages.
pub async fn connect_watched(dsn: &str) -> Result<Watched, tokio_postgres::Error> {
    use futures_util::StreamExt;
    let (client, mut connection) = tokio_postgres::connect(dsn, NoTls).await?;
    let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
    let conn = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let _ = tx.send(message?);
        }
        Ok(())
    });
    Ok(Watched {
        client,
        messages,
        conn,
    })
}

impl Proxy {
    /// Connects through the proxy and watches the connection.
    pub async fn connect_watched(
        &self,
        user: &str,
        password: &str,
        db: &str,
    ) -> Result<Watched, tokio_postgres::Error> {
        connect_watched(&self.dsn(user, password, db)).await
    }

    /// The admin listener's address.
    pub fn admin(&self) -> SocketAddr {
        self.running.admin.expect("admin listener")
    }
}

/// Starts a proxy from a config file, which the proxy then watches for
/// changes (hot reload).
pub async fn start_file(path: &Path, router: Arc<dyn Route>) -> Proxy {
    let config = Config::load(path).unwrap_or_else(|e| panic!("test config: {e}"));
    let running = server::start(config, Some(path.to_path_buf()), router)
        .await
        .expect("proxy starts");
    let addr = running.postgres.expect("postgres listener");
    Proxy { running, addr }
}

/// Replaces a file's content at once (write and rename), so a watcher never
/// reads half of it.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[path = "../support/http.rs"]
pub mod http;
pub use http::{http_get, http_put, http_request};

#[path = "../support/webhook.rs"]
pub mod webhook;

#[path = "../support/forwarder.rs"]
mod forwarder;
/// A relay to the real PostgreSQL that can be cut and restored.
pub use forwarder::Forwarder;

/// A client speaking the protocol by hand, for what tokio-postgres cannot
/// send: malformed packets, one extended batch with several statements.
pub struct RawPg {
    /// The socket to the proxy.
    pub stream: tokio::net::TcpStream,
    /// Bytes read but not yet split into frames.
    buf: bytes::BytesMut,
}

impl RawPg {
    /// Opens a TCP connection without logging in.
    pub async fn open(addr: SocketAddr) -> RawPg {
        RawPg {
            stream: tokio::net::TcpStream::connect(addr)
                .await
                .expect("proxy reachable"),
            buf: bytes::BytesMut::new(),
        }
    }

    /// Logs in as a `trust` user and waits for the first ReadyForQuery.
    pub async fn login_trust(addr: SocketAddr, user: &str, db: &str) -> RawPg {
        let mut raw = RawPg::open(addr).await;
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for (k, v) in [("user", user), ("database", db)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        raw.send(&packet).await;
        for (tag, body) in raw.until_ready().await {
            assert_ne!(tag, b'E', "login failed: {:?}", error_fields(&body));
            if tag == b'R' {
                assert_eq!(
                    &body[..4],
                    &[0, 0, 0, 0],
                    "trust login expects AuthenticationOk"
                );
            }
        }
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

    /// The next frame as (tag, body), or `None` once the proxy closed the
    /// connection. Panics if nothing arrives within [`DEADLINE`].
    pub async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize
                    + 1;
                if self.buf.len() >= len {
                    let frame = self.buf.split_to(len);
                    return Some((frame[0], frame[5..].to_vec()));
                }
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

    /// Frames up to and including the next ReadyForQuery or the close,
    /// with their tags as text (`!` marks a close), for assertions that
    /// show what came instead.
    pub async fn tags_until_ready(&mut self) -> (String, Vec<(u8, Vec<u8>)>) {
        let mut frames = Vec::new();
        let mut tags = String::new();
        while let Some(frame) = self.frame().await {
            tags.push(char::from(frame.0));
            let done = frame.0 == b'Z';
            frames.push(frame);
            if done {
                return (tags, frames);
            }
        }
        tags.push('!');
        if let Some((_, body)) = frames.iter().rev().find(|(t, _)| *t == b'E') {
            let fields = error_fields(body);
            for field in [b'C', b'M'] {
                let text = fields.get(&field).map_or("", String::as_str);
                tags.push_str(&format!(" {}={text}", char::from(field)));
            }
        }
        (tags, frames)
    }

    /// Frames up to and including the next ReadyForQuery.
    pub async fn until_ready(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        loop {
            let frame = self
                .frame()
                .await
                .expect("connection open until ReadyForQuery");
            let done = frame.0 == b'Z';
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse body, by field type
/// (`C` SQLSTATE, `M` message, `S` severity, `H` hint).
pub fn error_fields(body: &[u8]) -> std::collections::HashMap<u8, String> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// Frontend messages, encoded by hand.
pub mod fe {
    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// Query (simple protocol).
    pub fn query(sql: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, sql);
        frame(b'Q', &body)
    }

    /// Parse of an unnamed or named statement without parameter types.
    pub fn parse(name: &str, sql: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, name);
        cstr(&mut body, sql);
        body.extend_from_slice(&0i16.to_be_bytes());
        frame(b'P', &body)
    }

    /// Bind without parameters, all results in text.
    pub fn bind(portal: &str, statement: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        cstr(&mut body, statement);
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        frame(b'B', &body)
    }

    /// Describe a portal.
    pub fn describe_portal(name: &str) -> Vec<u8> {
        let mut body = vec![b'P'];
        cstr(&mut body, name);
        frame(b'D', &body)
    }

    /// Execute a portal, all rows.
    pub fn execute(portal: &str) -> Vec<u8> {
        let mut body = Vec::new();
        cstr(&mut body, portal);
        body.extend_from_slice(&0i32.to_be_bytes());
        frame(b'E', &body)
    }

    /// Sync.
    pub fn sync() -> Vec<u8> {
        frame(b'S', &[])
    }
}

#[path = "../support/catalog.rs"]
pub mod catalog;
