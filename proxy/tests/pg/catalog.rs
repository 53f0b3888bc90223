//! The catalog against the real PostgreSQL: a migration's two tables are
//! loaded over the proxy's own connection and its mapping checked; a
//! mapping that does not fit, or a backend that is down, leaves the
//! migration on the source and the proxy serving.

use std::sync::Arc;

use switchyard_proxy::route::MigrationRouter;

use crate::common::catalog::{closed_port, pairs, pending, ready, refused};
use crate::common::{self, base_yaml, http_get, Proxy};

/// A database with `api(id, path, method)` and the target table
/// `t_sys_api_endpoints(id bigint, endpoint_path varchar(200), http_method)`.
async fn tables(prefix: &str) -> String {
    let db = common::create_db(prefix).await;
    common::direct(&db)
        .await
        .batch_execute(
            "CREATE TABLE api (id int PRIMARY KEY, path text, method text, at timestamptz);
             CREATE TABLE t_sys_api_endpoints (id bigint PRIMARY KEY, endpoint_path varchar(200), http_method text, at timestamptz);
             CREATE TABLE api_local (id int PRIMARY KEY, path text, method text, at timestamp);",
        )
        .await
        .unwrap();
    db
}

/// The base config with `backend` added under `backends:`.
fn with_backend(backend: &str) -> String {
    base_yaml().replace("routes:", &format!("  {backend}\nroutes:"))
}

/// The base config plus a `down` backend on a closed port and `plans`
/// (lines under `migrations:`, `DB` replaced by `db`).
async fn start(db: &str, plans: &str) -> Proxy {
    let down = format!(
        "down: {{ kind: postgres, host: 127.0.0.1, port: {}, user: postgres }}",
        closed_port()
    );
    let yaml = format!(
        "{}migrations:\n{}",
        with_backend(&down),
        plans.replace("DB", db)
    );
    common::start(&yaml, Arc::new(MigrationRouter::default())).await
}

const RENAMED: &str = r"  - id: api_v2
    backend: pg
    source: { database: DB, table: api, primary_key: [id] }
    target: { table: t_sys_api_endpoints }
    columns: { path: endpoint_path, method: http_method }
";

async fn still_serves(proxy: &Proxy, db: &str) {
    let client = proxy.connect(db).await;
    let row = client
        .query_one("SELECT count(*) FROM api", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
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
            (s("id"), s("id"), Some(s("integer"))),
            (s("path"), s("endpoint_path"), Some(s("text"))),
            (s("method"), s("http_method"), None),
            (s("at"), s("at"), None),
        ]
    );
    assert_eq!(mapping.source.name, "public.api");
    assert_eq!(mapping.target.name, "public.t_sys_api_endpoints");
    assert_ne!(mapping.source.oid, 0, "RowDescription names tables by OID");
    let id = &mapping.target.columns[0];
    assert_eq!(
        (
            id.type_name.as_str(),
            id.type_oid,
            id.key,
            id.nullable,
            id.position
        ),
        ("bigint", 20, true, false, 1)
    );
    let path = &mapping.target.columns[1];
    assert_eq!(
        (
            path.type_name.as_str(),
            path.typmod,
            path.key,
            path.nullable
        ),
        ("character varying(200)", 204, false, true)
    );
    let (_, body) = http_get(proxy.admin(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let migration = &status["migrations"][0];
    assert_eq!(
        (
            &migration["id"],
            &migration["catalog"],
            &migration["catalog_reason"]
        ),
        (
            &serde_json::json!("api_v2"),
            &serde_json::json!("ready"),
            &serde_json::Value::Null
        ),
        "{status}"
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_missing_column_is_refused_and_the_proxy_serves_on() {
    let db = tables("cat_missing").await;
    let plans = RENAMED.replace("method: http_method", "method: verb");
    let proxy = start(&db, &plans).await;
    let reason = refused(&proxy.running, "api_v2").await;
    assert_eq!(
        reason,
        "migration `api_v2`: `columns` maps `method` to `verb`, which is not in `public.t_sys_api_endpoints`; columns are: id, endpoint_path, http_method, at; correct the entry or add the column to the target"
    );
    still_serves(&proxy, &db).await;
    let (_, body) = http_get(proxy.admin(), "/status").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["migrations"][0]["catalog"], "refused");
    assert_eq!(status["migrations"][0]["catalog_reason"], reason.as_str());
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_missing_table_names_the_table_and_the_backend() {
    let db = tables("cat_notable").await;
    let proxy = start(
        &db,
        &RENAMED.replace("table: t_sys_api_endpoints", "table: nowhere"),
    )
    .await;
    assert_eq!(
        refused(&proxy.running, "api_v2").await,
        format!("migration `api_v2`: table `public.nowhere` does not exist in database `{db}` on backend `pg`; create it or correct the migration's table name")
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_backend_that_is_down_leaves_the_migration_pending() {
    let db = tables("cat_down").await;
    let proxy = start(&db, &RENAMED.replace("backend: pg", "backend: down")).await;
    let reason = pending(&proxy.running, "api_v2", "backend `down`").await;
    assert!(
        reason.starts_with("migration `api_v2`: backend `down` (postgres at 127.0.0.1:"),
        "{reason}"
    );
    still_serves(&proxy, &db).await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_backend_that_comes_back_makes_the_catalog_ready() {
    let db = tables("cat_back").await;
    let mut forwarder = common::Forwarder::start("127.0.0.1:5432").await;
    forwarder.down().await;
    let fwd = format!(
        "fwd: {{ kind: postgres, host: 127.0.0.1, port: {}, user: postgres }}",
        forwarder.port
    );
    let yaml = format!(
        "{}migrations:\n{}",
        with_backend(&fwd),
        RENAMED
            .replace("backend: pg", "backend: fwd")
            .replace("DB", &db)
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    pending(&proxy.running, "api_v2", "backend `fwd`").await;
    forwarder.up().await;
    ready(&proxy.running, "api_v2").await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_zone_dependent_retype_needs_a_pinned_time_zone() {
    let db = tables("cat_tz").await;
    let plan = |id: &str, extra: &str| {
        format!("  - id: {id}\n    backend: pg\n    source: {{ database: DB, table: api, primary_key: [id] }}\n    target: {{ table: api_local }}\n{extra}")
    };
    let plans = plan("floating", "") + &plan("pinned", "    time_zone: UTC\n");
    let proxy = start(&db, &plans).await;
    assert_eq!(
        refused(&proxy.running, "floating").await,
        "migration `floating`: column `at` is `timestamp with time zone` but target column `at` is `timestamp without time zone`, a conversion that depends on each session's time zone; pin one with `time_zone: UTC` (or your zone) in the migration, or give both columns the same type"
    );
    let mapping = ready(&proxy.running, "pinned").await;
    assert_eq!(
        mapping.columns[3].cast.as_deref(),
        Some("timestamp with time zone")
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_table_fixed_with_ddl_becomes_ready_without_a_reload() {
    let db = tables("cat_fix").await;
    let plans = RENAMED.replace("method: http_method", "method: verb");
    let proxy = start(&db, &plans).await;
    refused(&proxy.running, "api_v2").await;
    common::direct(&db)
        .await
        .batch_execute("ALTER TABLE t_sys_api_endpoints ADD COLUMN verb text")
        .await
        .unwrap();
    let mapping =
        crate::common::catalog::catalog_until(&proxy.running, "api_v2", |s| s.as_str() == "ready")
            .await;
    assert_eq!(mapping.as_str(), "ready");
    common::drop_db(&db).await;
}

/// The renamed plan on a `tlspg` backend reached with `fields` (host,
/// port and TLS settings).
async fn start_tls(db: &str, fields: &str) -> Proxy {
    let backend = format!("tlspg: {{ kind: postgres, {fields}, user: postgres }}");
    let yaml = format!(
        "{}migrations:\n{}",
        with_backend(&backend),
        RENAMED
            .replace("backend: pg", "backend: tlspg")
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
    let relay = common::Forwarder::start("127.0.0.1:5432").await;
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
    assert_eq!(mapping.target.name, "public.t_sys_api_endpoints");
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
            "host: 127.0.0.1, port: 5432, tls: verify-full, ca: {}",
            ca.display()
        ),
    )
    .await;
    let reason = pending(&proxy.running, "api_v2", "TLS").await;
    assert!(
        reason.starts_with("migration `api_v2`: backend `tlspg` (postgres at 127.0.0.1:5432): TLS handshake failed: invalid peer certificate: certificate not valid for name"),
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
            "host: localhost, port: 5432, tls: verify-full, ca: {}",
            path.display()
        ),
    )
    .await;
    let reason = pending(&proxy.running, "api_v2", "TLS").await;
    assert!(
        reason.starts_with(
            "migration `api_v2`: backend `tlspg` (postgres at localhost:5432): TLS handshake failed"
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
async fn a_refresh_that_cannot_reach_a_backend_keeps_the_mapping_it_checked() {
    let db = tables("cat_keep").await;
    let mut forwarder = common::Forwarder::start("127.0.0.1:5432").await;
    let fwd = format!(
        "fwd: {{ kind: postgres, host: 127.0.0.1, port: {}, user: postgres }}",
        forwarder.port
    );
    let yaml = format!(
        "{}migrations:\n{}",
        with_backend(&fwd),
        RENAMED
            .replace("backend: pg", "backend: fwd")
            .replace("DB", &db)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.yaml");
    common::write_atomically(&path, &yaml);
    let proxy = common::start_file(&path, Arc::new(MigrationRouter::default())).await;
    ready(&proxy.running, "api_v2").await;
    // The backend goes away, and a reload makes the catalog load again.
    forwarder.down().await;
    common::write_atomically(
        &path,
        &yaml.replace(
            "routes:",
            "limits: { classify_cache_entries: 10001 }\nroutes:",
        ),
    );
    common::eventually(std::time::Duration::from_secs(10), "the reload", || async {
        (proxy.running.shared.snapshot().generation == 2).then_some(())
    })
    .await;
    // Longer than a load against the closed port takes.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let state = proxy
        .running
        .shared
        .routing()
        .migration("api_v2")
        .unwrap()
        .catalog
        .clone();
    assert!(
        matches!(
            state,
            switchyard_proxy::route::routing::CatalogState::Ready(_)
        ),
        "{state:?}"
    );
    common::drop_db(&db).await;
}
