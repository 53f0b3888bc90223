//! How the proxy reaches its MariaDB backend: a Unix socket, and TLS in
//! libpq's modes, against the real local server (which serves TLS with the
//! test CA's certificate for `localhost`, see scripts/ensure-databases.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use switchyard_proxy::route::MigrationRouter;
use tokio::io::AsyncWriteExt;

use crate::common::{self, Proxy};

/// A proxy whose backend `my` is reached with these fields.
async fn proxy_with(fields: &str) -> Proxy {
    let yaml = common::base_yaml().replace(&common::transport_fields(), fields);
    assert!(
        yaml.contains(fields),
        "the base config names the backend differently"
    );
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

/// The cipher of the session's backend connection; empty in plain.
async fn backend_cipher(conn: &mut mysql_async::Conn) -> String {
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    row.map(|(_, v)| v).unwrap_or_default()
}

/// The message a client gets when the proxy cannot open its backend.
async fn login_error(proxy: &Proxy) -> String {
    let err = proxy
        .try_connect("app", "app", None)
        .await
        .expect_err("the backend must be refused");
    common::server_error(&err).2
}

#[tokio::test]
async fn a_unix_socket_backend_serves_sessions_and_kill() {
    let proxy = proxy_with("host: /run/mysqld/mysqld.sock").await;
    let db = common::create_db("unix").await;
    let mut sleeper = proxy.connect(&db).await;
    let host: String = sleeper
        .query_first("SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(host, "localhost", "a socket connection shows as localhost");
    let n: i64 = sleeper
        .exec_first("SELECT ? + 1", (41,))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 42);

    // KILL QUERY runs on a side connection over the same socket.
    let mut killer = proxy.connect(&db).await;
    let id = sleeper.id();
    let started = Instant::now();
    let sleep =
        tokio::spawn(async move { sleeper.query_first::<i64, _>("SELECT SLEEP(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    killer.query_drop(format!("KILL QUERY {id}")).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), sleep)
        .await
        .expect("the sleep was cut short");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(killer);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_is_named_with_the_fix() {
    let proxy = proxy_with("host: /run/mysqld").await;
    let message = login_error(&proxy).await;
    assert!(
        message.contains(
            "backend `my`: cannot connect to the Unix socket `/run/mysqld`: it is not a socket"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn verify_full_accepts_the_certificate_name_and_relays_over_tls() {
    let ca = common::tls_ca();
    let proxy = proxy_with(&format!(
        "host: localhost, port: 3306, tls: verify-full, ca: {}",
        ca.display()
    ))
    .await;
    let db = common::create_db("tls_full").await;
    let mut conn = proxy.connect(&db).await;
    assert!(
        !backend_cipher(&mut conn).await.is_empty(),
        "the backend connection is encrypted"
    );
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v LONGTEXT)")
        .await
        .unwrap();
    for i in 0..100 {
        conn.exec_drop("INSERT INTO t VALUES (?, ?)", (i, "x".repeat(i * 300)))
            .await
            .unwrap();
    }
    let rows: Vec<String> = conn.query("SELECT v FROM t ORDER BY id").await.unwrap();
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[99].len(), 99 * 300);
    drop(conn);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn verify_full_refuses_a_name_the_certificate_does_not_hold() {
    let ca = common::tls_ca();
    let proxy = proxy_with(&format!(
        "host: 127.0.0.1, port: 3306, tls: verify-full, ca: {}",
        ca.display()
    ))
    .await;
    let message = login_error(&proxy).await;
    assert!(
        message.contains("backend `my` at 127.0.0.1:3306: TLS handshake failed"),
        "{message}"
    );
    assert!(
        message.contains("`127.0.0.1` is not a name in the server's certificate"),
        "{message}"
    );

    let proxy = proxy_with(&format!(
        "host: 127.0.0.1, port: 3306, tls: verify-ca, ca: {}",
        ca.display()
    ))
    .await;
    let mut conn = proxy.connect("test").await;
    assert!(!backend_cipher(&mut conn).await.is_empty());
}

/// A server that greets without CLIENT_SSL.
async fn server_without_tls() -> u16 {
    use switchyard_proxy::wire::mysql::handshake::HandshakeV10;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let greeting = HandshakeV10 {
                server_version: "10.11.0-fake".into(),
                connection_id: 7,
                auth_plugin_data: vec![b'a'; 20],
                // CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH, no CLIENT_SSL.
                capabilities: 0x200 | 0x8000 | 0x80000,
                mariadb_capabilities: 0,
                charset: 45,
                status: 2,
                auth_plugin_name: "mysql_native_password".into(),
            };
            let mut payload = bytes::BytesMut::new();
            greeting.encode(&mut payload);
            let mut out = bytes::BytesMut::new();
            switchyard_proxy::wire::mysql::packet::encode(0, &payload, &mut out);
            let _ = socket.write_all(&out).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    port
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let port = server_without_tls().await;
    let proxy = proxy_with(&format!("host: 127.0.0.1, port: {port}, tls: require")).await;
    let message = login_error(&proxy).await;
    assert!(
        message.contains(&format!("backend `my` at 127.0.0.1:{port} does not offer TLS, and `tls: require` requires it; enable TLS on the server, or set `tls: prefer` to accept a plain connection")),
        "{message}"
    );
}
