//! Logins: each method with the right and a wrong password, unknown users,
//! TLS, and LOAD DATA LOCAL INFILE (refused unless allowed).

use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::{Conn, SslOpts, WhiteListFsHandler};
use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::wire::mysql::handshake::CLIENT_SSL;

use crate::common::{self, base_yaml, RawMy};

async fn assert_denied(proxy: &common::Proxy, user: &str, password: &str) {
    let err = proxy
        .try_connect(user, password, None)
        .await
        .err()
        .unwrap_or_else(|| panic!("{user} logged in with a wrong password"));
    let (code, state, message) = common::server_error(&err);
    assert_eq!((code, state.as_str()), (1045, "28000"), "{message}");
    assert!(
        message.starts_with(&format!("Access denied for user '{user}'")),
        "{message}"
    );
}

async fn works(mut conn: Conn) {
    let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn each_method_accepts_the_right_password_and_denies_a_wrong_one() {
    let proxy = common::start_default().await;
    // app: the default, caching_sha2_password; app_native is switched to
    // mysql_native_password after answering the greeting with sha2.
    for (user, password) in [
        ("app", "app"),
        ("app_sha2", "sha2pass"),
        ("app_native", "native"),
        ("app_empty", ""),
    ] {
        works(
            proxy
                .try_connect(user, password, None)
                .await
                .unwrap_or_else(|e| panic!("{user}: {e}")),
        )
        .await;
        assert_denied(&proxy, user, "wrong").await;
    }
    assert_denied(&proxy, "nobody", "app").await;
    let metrics = switchyard_proxy::admin::recorder().render();
    assert!(
        metrics.contains("switchyard_auth_failures_total{protocol=\"mysql\""),
        "auth failures are counted"
    );
}

#[tokio::test]
async fn caching_sha2_full_authentication_over_rsa_and_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        "{}tls: {{ cert: {}, key: {} }}\nmysql: {{ caching_sha2_full_auth: true }}\n",
        base_yaml(),
        cert_path.display(),
        key_path.display()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    // Without TLS the client asks for the proxy's RSA key and sends the
    // password encrypted with it.
    let first = proxy.try_connect("app_sha2", "sha2pass", None).await;
    let metrics = switchyard_proxy::admin::recorder().render();
    works(first.unwrap_or_else(|e| panic!("full auth over RSA: {e}\n{metrics}"))).await;
    assert_denied(&proxy, "app_sha2", "wrong").await;
    // Over TLS the client sends the password itself.
    let ssl = SslOpts::default()
        .with_danger_accept_invalid_certs(true)
        .with_danger_skip_domain_validation(true);
    let conn = Conn::new(
        proxy
            .opts("app_sha2", "sha2pass", None)
            .ssl_opts(ssl.clone()),
    )
    .await
    .expect("full auth over TLS");
    works(conn).await;
    let err = Conn::new(proxy.opts("app_sha2", "wrong", None).ssl_opts(ssl))
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1045);
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        "{}tls: {{ cert: {}, key: {} }}\n",
        base_yaml(),
        cert_path.display(),
        key_path.display()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let raw = RawMy::open(proxy.addr).await;
    assert_ne!(raw.greeting.capabilities & CLIENT_SSL, 0, "TLS is offered");

    let ssl = SslOpts::default()
        .with_danger_accept_invalid_certs(true)
        .with_danger_skip_domain_validation(true);
    for (user, password) in [("app", "app"), ("app_native", "native")] {
        let conn = Conn::new(proxy.opts(user, password, None).ssl_opts(ssl.clone()))
            .await
            .unwrap();
        works(conn).await;
    }
    let err = Conn::new(proxy.opts("app", "bad", None).ssl_opts(ssl))
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1045);

    // Without `tls:` the proxy does not offer it.
    let plain = common::start_default().await;
    assert_eq!(
        RawMy::open(plain.addr).await.greeting.capabilities & CLIENT_SSL,
        0
    );
}

#[tokio::test]
async fn load_data_local_is_refused_unless_allowed() {
    let db = common::create_db("infile").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE f (a INT, b TEXT)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.tsv");
    std::fs::write(&file, "1\tone\n2\ttwo\n").unwrap();
    let load = format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE f", file.display());

    let proxy = common::start_default().await;
    let opts = proxy
        .opts("app", "app", Some(&db))
        .local_infile_handler(Some(WhiteListFsHandler::new([file.clone()])));
    let mut conn = Conn::new(opts).await.unwrap();
    let err = conn.query_drop(&load).await.unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1148, "{message}");
    assert!(
        message.contains("mysql.allow_local_infile"),
        "the error names the setting: {message}"
    );
    // Nothing was loaded, and the session goes on.
    let count: Option<i64> = conn.query_first("SELECT COUNT(*) FROM f").await.unwrap();
    assert_eq!(count, Some(0));

    let yaml = format!("{}mysql: {{ allow_local_infile: true }}\n", base_yaml());
    let allowing = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let opts = allowing
        .opts("app", "app", Some(&db))
        .local_infile_handler(Some(WhiteListFsHandler::new([file.clone()])));
    let mut conn = Conn::new(opts).await.unwrap();
    conn.query_drop(&load).await.unwrap();
    assert_eq!(conn.affected_rows(), 2);
    let rows: Vec<(i32, String)> = conn.query("SELECT a, b FROM f ORDER BY a").await.unwrap();
    assert_eq!(rows, vec![(1, "one".into()), (2, "two".into())]);
    conn.disconnect().await.unwrap();
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}
