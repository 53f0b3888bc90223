//! The proxy's life around the sessions: the admin endpoints, config hot
//! reload (applied and rejected), and the graceful drain on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::error::SqlState;

use crate::common::{self, base_yaml, http_get, DEADLINE};

/// The sum of every sample of one metric family in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn status(proxy: &common::Proxy) -> serde_json::Value {
    let (code, body) = http_get(proxy.admin(), "/status").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
}

#[tokio::test]
async fn admin_endpoints_report_health_status_and_metrics() {
    let db = common::create_db("life_admin").await;
    let proxy = common::start_default().await;

    let (code, body) = http_get(proxy.admin(), "/healthz").await;
    assert_eq!((code, body.trim()), (200, "ok"));

    let client = proxy.connect(&db).await;
    let status = status(&proxy).await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"), "{status}");
    assert!(status["uptime_seconds"].is_u64(), "{status}");
    assert_eq!(status["connections"]["active"], 1, "{status}");
    assert_eq!(status["config"]["generation"], 1, "{status}");
    assert_eq!(status["draining"], false, "{status}");

    let (_, before) = http_get(proxy.admin(), "/metrics").await;
    for i in 0..5 {
        client.query_one("SELECT $1::int", &[&i]).await.unwrap();
    }
    let (code, after) = http_get(proxy.admin(), "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        after.contains("switchyard_connections_total{protocol=\"postgres\"}"),
        "{after}"
    );
    assert!(after.contains("switchyard_statements_total{"), "{after}");
    // Other tests share the process-wide recorder, so only a lower bound.
    let grew = metric_sum(&after, "switchyard_statements_total")
        - metric_sum(&before, "switchyard_statements_total");
    assert!(grew >= 5.0, "statements counted: {grew}");
    assert!(metric_sum(&after, "switchyard_connections_total") >= 1.0);

    let (code, _) = http_get(proxy.admin(), "/no-such-page").await;
    assert_eq!(code, 404);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn hot_reload_applies_a_valid_file_and_keeps_it_over_an_invalid_one() {
    let db = common::create_db("life_reload").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.yaml");
    common::write_atomically(&path, &base_yaml());
    let proxy = common::start_file(&path, Arc::new(MigrationRouter::default())).await;
    let early = proxy.connect(&db).await;
    let err = proxy
        .try_connect("late", "late", &db)
        .await
        .expect_err("`late` is not configured yet");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );

    let with_late = base_yaml().replace("users:\n", "users:\n  - { name: late, password: late }\n");
    common::write_atomically(&path, &with_late);
    let late = common::eventually(DEADLINE, "`late` to log in after the reload", || async {
        proxy.try_connect("late", "late", &db).await.ok()
    })
    .await;
    assert_eq!(
        late.query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    assert_eq!(status(&proxy).await["config"]["generation"], 2);
    // Sessions opened before the reload carry on.
    assert_eq!(
        early
            .query_one("SELECT 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );

    let (_, before) = http_get(proxy.admin(), "/metrics").await;
    let rejected = "switchyard_config_reloads_total{outcome=\"rejected\"}";
    let rejected_before = metric_sum(
        &before,
        "switchyard_config_reloads_total{outcome=\"rejected\"}",
    );
    common::write_atomically(&path, &format!("{with_late}no_such_setting: 1\n"));
    common::eventually(DEADLINE, "the invalid file to be rejected", || async {
        let (_, text) = http_get(proxy.admin(), "/metrics").await;
        (text.contains(rejected) && metric_sum(&text, rejected) > rejected_before).then_some(())
    })
    .await;
    assert_eq!(status(&proxy).await["config"]["generation"], 2);
    let again = proxy
        .try_connect("late", "late", &db)
        .await
        .expect("`late` still configured");
    assert_eq!(
        again
            .query_one("SELECT 3", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn drain_lets_open_transactions_finish_and_refuses_new_sessions() {
    let db = common::create_db("life_drain").await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let yaml = format!("{}limits: {{ drain_timeout: 20s }}\n", base_yaml());
    let proxy = Arc::new(common::start(&yaml, Arc::new(MigrationRouter::default())).await);
    let open = proxy.connect_watched("app", "app", &db).await.unwrap();
    open.client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    let started = Instant::now();
    let draining = proxy.clone();
    let drain = tokio::spawn(async move { draining.running.drain().await });
    common::eventually(DEADLINE, "/healthz to answer 503", || async {
        let (code, body) = http_get(proxy.admin(), "/healthz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert_eq!(status(&proxy).await["draining"], true);

    // New sessions are refused, with the reason.
    let err = proxy
        .try_connect("app", "app", &db)
        .await
        .expect_err("no new session while draining");
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");

    // The open transaction finishes its work.
    open.client
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    open.client.batch_execute("COMMIT").await.unwrap();
    let n: i64 = direct
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "the drained session's transaction committed");

    // Then the proxy closes it, saying why.
    let end = tokio::time::timeout(DEADLINE, open.conn)
        .await
        .expect("the idle session is closed by the drain")
        .unwrap();
    let err = end.expect_err("closed with the proxy's notice");
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");

    let left = tokio::time::timeout(DEADLINE, drain)
        .await
        .expect("drain returns")
        .unwrap();
    assert_eq!(left, 0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drain took {:?}",
        started.elapsed()
    );
    common::drop_db(&db).await;
}

/// `switchyard_config_reloads_total{outcome="unchanged"}` in this process.
async fn unchanged_reloads(proxy: &common::Proxy) -> u64 {
    let (_, text) = common::http_get(proxy.admin(), "/metrics").await;
    text.lines()
        .find(|l| l.starts_with("switchyard_config_reloads_total{outcome=\"unchanged\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sighup_rereads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.yaml");
    common::write_atomically(&path, &base_yaml());
    // Registering a handler first makes SIGHUP safe for this test process
    // even before the proxy's watcher has registered its own.
    let _guard = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let proxy = common::start_file(&path, Arc::new(MigrationRouter::default())).await;
    let before = unchanged_reloads(&proxy).await;
    // The file has not changed, so only the signal can cause a reload.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    common::eventually(DEADLINE, "a reload after SIGHUP", || async {
        (unchanged_reloads(&proxy).await > before).then_some(())
    })
    .await;
}
