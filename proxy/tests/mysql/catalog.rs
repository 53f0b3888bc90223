//! The catalog against the real MariaDB: a migration's two tables are
//! loaded from information_schema over the proxy's own connection and its
//! mapping checked; a mapping that does not fit, or a backend that is
//! down, leaves the migration on the source and the proxy serving.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use switchyard_proxy::route::MigrationRouter;

use crate::common::catalog::{closed_port, pairs, pending, ready, refused};
use crate::common::{self, base_yaml, Proxy};

/// A database with `api`, the renamed target `t_sys_api_endpoints`, and
/// `api_local`, whose `at` is a DATETIME where `api`'s is a TIMESTAMP.
async fn tables(prefix: &str) -> String {
    let db = common::create_db(prefix).await;
    let mut conn = common::direct(Some(&db)).await;
    for sql in [
        "CREATE TABLE api (id int PRIMARY KEY, path text, method text, at timestamp NULL)",
        "CREATE TABLE t_sys_api_endpoints (id bigint PRIMARY KEY, endpoint_path varchar(200), http_method text, at timestamp NULL)",
        "CREATE TABLE api_local (id int PRIMARY KEY, path text, method text, at datetime)",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    conn.disconnect().await.unwrap();
    db
}

/// The base config plus a `down` backend on a closed port and `plans`
/// (lines under `migrations:`, `DB` replaced by `db`).
async fn start(db: &str, plans: &str) -> Proxy {
    let down = format!(
        "  down: {{ kind: mysql, host: 127.0.0.1, port: {}, user: root }}\nroutes:",
        closed_port()
    );
    let yaml = format!(
        "{}migrations:\n{}",
        base_yaml().replace("routes:", &down),
        plans.replace("DB", db)
    );
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

const RENAMED: &str = r"  - id: api_v2
    backend: my
    source: { database: DB, table: api, primary_key: [id] }
    target: { table: t_sys_api_endpoints }
    columns: { path: endpoint_path, method: http_method }
";

async fn still_serves(proxy: &Proxy, db: &str) {
    let mut conn = proxy.connect(db).await;
    let count: Option<i64> = conn.query_first("SELECT count(*) FROM api").await.unwrap();
    assert_eq!(count, Some(0));
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn catalog_loads_both_tables_and_pairs_renamed_columns() {
    let db = tables("cat_ready").await;
    let proxy = start(&db, RENAMED).await;
    let mapping = ready(&proxy.running, "api_v2").await;
    let s = |v: &str| v.to_string();
    assert_eq!(
        pairs(&mapping),
        [
            (s("id"), s("id"), Some(s("int(11)"))),
            (s("path"), s("endpoint_path"), Some(s("text"))),
            (s("method"), s("http_method"), None),
            (s("at"), s("at"), None),
        ]
    );
    assert_eq!(mapping.source.name, format!("{db}.api"));
    assert_eq!(mapping.target.name, format!("{db}.t_sys_api_endpoints"));
    let id = &mapping.target.columns[0];
    assert_eq!(
        (id.type_name.as_str(), id.key, id.nullable, id.position),
        ("bigint(20)", true, false, 1)
    );
    let path = &mapping.target.columns[1];
    assert_eq!(
        (
            path.type_name.as_str(),
            path.key,
            path.nullable,
            path.position
        ),
        ("varchar(200)", false, true, 2)
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_missing_column_is_refused_and_the_proxy_serves_on() {
    let db = tables("cat_missing").await;
    let proxy = start(
        &db,
        &RENAMED.replace("{ path: endpoint_path, ", "{ pth: endpoint_path, "),
    )
    .await;
    assert_eq!(
        refused(&proxy.running, "api_v2").await,
        format!("migration `api_v2`: `columns` maps `pth`, which is not in `{db}.api`; columns are: id, path, method, at; correct or remove that entry")
    );
    still_serves(&proxy, &db).await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_backend_that_is_down_leaves_the_migration_pending() {
    let db = tables("cat_down").await;
    let proxy = start(&db, &RENAMED.replace("backend: my", "backend: down")).await;
    let reason = pending(&proxy.running, "api_v2", "backend `down`").await;
    assert!(
        reason.starts_with("migration `api_v2`: backend `down` (mysql at 127.0.0.1:"),
        "{reason}"
    );
    still_serves(&proxy, &db).await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_zone_dependent_retype_needs_a_pinned_time_zone() {
    let db = tables("cat_tz").await;
    let plan = |id: &str, extra: &str| {
        format!("  - id: {id}\n    backend: my\n    source: {{ database: DB, table: api, primary_key: [id] }}\n    target: {{ table: api_local }}\n{extra}")
    };
    let plans = plan("floating", "") + &plan("pinned", "    time_zone: '+00:00'\n");
    let proxy = start(&db, &plans).await;
    assert_eq!(
        refused(&proxy.running, "floating").await,
        "migration `floating`: column `at` is `timestamp` but target column `at` is `datetime`, a conversion that depends on each session's time zone; pin one with `time_zone: UTC` (or your zone) in the migration, or give both columns the same type"
    );
    let mapping = ready(&proxy.running, "pinned").await;
    assert_eq!(mapping.columns[3].cast.as_deref(), Some("timestamp"));
    common::drop_db(&db).await;
}

/// The renamed plan on a `tlsmy` backend reached with `fields` (host,
/// port and TLS settings).
async fn start_tls(db: &str, fields: &str) -> Proxy {
    let backend = format!("  tlsmy: {{ kind: mysql, {fields}, user: root }}\nroutes:");
    let yaml = format!(
        "{}migrations:\n{}",
        base_yaml().replace("routes:", &backend),
        RENAMED
            .replace("backend: my", "backend: tlsmy")
            .replace("DB", db)
    );
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

#[tokio::test]
async fn a_verify_full_backend_is_loaded_over_tls() {
    let db = tables("cat_tls").await;
    let ca = common::tls_ca();
    // Through a relay that sees the ClientHello: the server would take the
    // catalog's plain connection as well.
    let relay = common::Forwarder::start("127.0.0.1:3306").await;
    let proxy = start_tls(
        &db,
        &format!(
            "host: localhost, port: {}, tls: verify-full, ca: {}",
            relay.port,
            ca.display()
        ),
    )
    .await;
    let mapping = ready(&proxy.running, "api_v2").await;
    assert!(relay.tls_clients() > 0, "the catalog connected over TLS");
    assert_eq!(mapping.target.name, format!("{db}.t_sys_api_endpoints"));
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_certificate_that_fails_verification_leaves_the_catalog_pending() {
    let db = tables("cat_tls_bad").await;
    let ca = common::tls_ca();
    // The certificate names `localhost`, not the address.
    let proxy = start_tls(
        &db,
        &format!(
            "host: 127.0.0.1, port: 3306, tls: verify-full, ca: {}",
            ca.display()
        ),
    )
    .await;
    let reason = pending(&proxy.running, "api_v2", "TLS").await;
    assert!(
        reason.starts_with("migration `api_v2`: backend `tlsmy` (mysql at 127.0.0.1:3306): TLS handshake failed: invalid peer certificate: certificate not valid for name"),
        "{reason}"
    );
    assert!(
        reason.contains("`127.0.0.1` is not a name in the server's certificate"),
        "{reason}"
    );
    still_serves(&proxy, &db).await;

    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["Other CA".to_string()]).unwrap();
    let path = dir.path().join("other-ca.crt");
    std::fs::write(&path, other.cert.pem()).unwrap();
    let proxy = start_tls(
        &db,
        &format!(
            "host: localhost, port: 3306, tls: verify-full, ca: {}",
            path.display()
        ),
    )
    .await;
    let reason = pending(&proxy.running, "api_v2", "TLS").await;
    assert!(
        reason.starts_with(
            "migration `api_v2`: backend `tlsmy` (mysql at localhost:3306): TLS handshake failed"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("the certificate is not signed by the CA in `ca`"),
        "{reason}"
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn verify_ca_loads_by_an_address_the_certificate_does_not_name() {
    let db = tables("cat_tls_ca").await;
    let ca = common::tls_ca();
    let proxy = start_tls(
        &db,
        &format!(
            "host: 127.0.0.1, port: 3306, tls: verify-ca, ca: {}",
            ca.display()
        ),
    )
    .await;
    ready(&proxy.running, "api_v2").await;
    common::drop_db(&db).await;
}
