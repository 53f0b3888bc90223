//! How the proxy reaches its PostgreSQL backend: a Unix socket, and TLS in
//! libpq's modes, against the real local server (which serves TLS with the
//! test CA's certificate for `localhost`, see scripts/ensure-databases.sh).

use std::sync::Arc;
use std::time::Duration;

use switchyard_proxy::route::MigrationRouter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::common::{self, Proxy, DEADLINE};

/// A proxy whose backend `pg` has these fields (besides kind and user).
async fn proxy_with(fields: &str) -> Proxy {
    let yaml = common::base_yaml().replace(
        &format!("pg: {{ {} }}", common::backend_fields()),
        &format!(r#"pg: {{ kind: postgres, {fields}, user: postgres, password: "" }}"#),
    );
    assert!(
        yaml.contains(fields),
        "the base config names the backend differently"
    );
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

/// Whether the session's backend connection is encrypted, as the server sees it.
async fn server_sees_tls(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The error a client gets when the proxy cannot open its backend.
async fn login_error(proxy: &Proxy, db: &str) -> String {
    let err = proxy
        .try_connect("app", "app", db)
        .await
        .expect_err("the backend must be refused");
    let db_err = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected a server error, got {err:?}"));
    assert_eq!(db_err.code(), &SqlState::CONNECTION_FAILURE, "{db_err:?}");
    db_err.message().to_string()
}

#[tokio::test]
async fn a_unix_socket_backend_serves_sessions_and_cancels() {
    let db = common::create_db("unix").await;
    let proxy = proxy_with("host: /var/run/postgresql, port: 5432").await;
    let client = Arc::new(proxy.connect(&db).await);
    // A socket connection has no server address.
    let addr: Option<String> = client
        .query_one("SELECT inet_server_addr()::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(addr, None);
    let n: i32 = client
        .query_one("SELECT $1::int + 1", &[&41])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 42);

    // The cancel request reaches the server over the same socket.
    let runner = client.clone();
    let query = tokio::spawn(async move { runner.simple_query("SELECT pg_sleep(30)").await });
    let direct = common::direct(&db).await;
    common::eventually(DEADLINE, "pg_sleep to run", || async {
        let n: i64 = direct
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(30)' AND state = 'active'", &[])
            .await
            .unwrap()
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    client.cancel_token().cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap_err().code(), Some(&SqlState::QUERY_CANCELED));
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_missing_socket_is_named_with_the_fix() {
    let proxy = proxy_with("host: /nonexistent/run, port: 5432").await;
    let message = login_error(&proxy, "test").await;
    assert!(
        message.contains("backend `pg`: cannot connect to the Unix socket `/nonexistent/run/.s.PGSQL.5432`: the directory `/nonexistent/run` does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn verify_full_accepts_the_certificate_name_and_relays_over_tls() {
    let db = common::create_db("tls_full").await;
    let ca = common::tls_ca();
    let proxy = proxy_with(&format!(
        "host: localhost, port: 5432, tls: verify-full, ca: {}",
        ca.display()
    ))
    .await;
    let client = proxy.connect(&db).await;
    assert!(server_sees_tls(&client).await);
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .unwrap();
    for i in 0..200 {
        client
            .execute(&insert, &[&i, &"x".repeat(i as usize * 50)])
            .await
            .unwrap();
    }
    // A result far larger than one TLS record.
    let rows = client
        .query("SELECT v FROM t ORDER BY id", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[199].get::<_, String>(0).len(), 199 * 50);
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn verify_full_refuses_a_name_the_certificate_does_not_hold() {
    let ca = common::tls_ca();
    // The certificate names `localhost`, not the address.
    let proxy = proxy_with(&format!(
        "host: 127.0.0.1, port: 5432, tls: verify-full, ca: {}",
        ca.display()
    ))
    .await;
    let message = login_error(&proxy, "test").await;
    assert!(
        message.contains("backend `pg` at 127.0.0.1:5432: TLS handshake failed"),
        "{message}"
    );
    assert!(message.contains("not valid for name"), "{message}");
    assert!(
        message.contains("`127.0.0.1` is not a name in the server's certificate"),
        "{message}"
    );

    // verify-ca checks the chain only, so the same address is fine.
    let proxy = proxy_with(&format!(
        "host: 127.0.0.1, port: 5432, tls: verify-ca, ca: {}",
        ca.display()
    ))
    .await;
    let client = proxy.connect("test").await;
    assert!(server_sees_tls(&client).await);
}

#[tokio::test]
async fn verify_ca_refuses_a_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["Other CA".to_string()]).unwrap();
    let path = dir.path().join("other-ca.crt");
    std::fs::write(&path, other.cert.pem()).unwrap();
    let proxy = proxy_with(&format!(
        "host: localhost, port: 5432, tls: verify-ca, ca: {}",
        path.display()
    ))
    .await;
    let message = login_error(&proxy, "test").await;
    assert!(
        message.contains("backend `pg` at localhost:5432: TLS handshake failed"),
        "{message}"
    );
    assert!(
        message.contains("not signed by the CA in `ca`"),
        "{message}"
    );
}

#[tokio::test]
async fn prefer_uses_tls_when_offered() {
    let proxy = proxy_with("host: 127.0.0.1, port: 5432, tls: prefer").await;
    let client = proxy.connect("test").await;
    assert!(server_sees_tls(&client).await);
}

/// A server that declines TLS: answers every SSLRequest with `N`, then
/// closes.
async fn server_without_tls() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    port
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let port = server_without_tls().await;
    let proxy = proxy_with(&format!("host: 127.0.0.1, port: {port}, tls: require")).await;
    let message = login_error(&proxy, "test").await;
    assert_eq!(
        message,
        format!("backend `pg` at 127.0.0.1:{port} does not offer TLS, and `tls: require` requires it; enable TLS on the server, or set `tls: prefer` to accept a plain connection")
    );
}
