//! The read switch's guard on MariaDB: a broken target never reaches
//! clients (its reads are answered by the source), its reads are rolled
//! back once the window holds enough failures, the rollback is announced
//! once, and only an operator's new rule lifts it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use serde_json::json;
use switchyard_proxy::route::MigrationRouter;

use crate::common::{self, catalog, webhook::Webhook, Proxy};
use crate::reads::tables;

async fn proxy(db: &str, rollback: &str, hook: &Webhook) -> Proxy {
    let yaml = format!(
        "{}
migrations:
  - id: api_move
    backend: my
    source: {{ database: {db}, table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {{ path: endpoint_path, method: http_method }}
    phase: read_ramp
    reads: {{ strategy: percentage, percent: 50, sticky_by: 'column:id' }}
    rollback: {rollback}
    alerts: {{ webhooks: ['{}'] }}
",
        common::base_yaml(),
        hook.url()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    proxy
}

async fn migration(proxy: &Proxy) -> serde_json::Value {
    let admin = proxy.running.admin.expect("admin listener");
    common::http::migration(admin, "api_move").await
}

/// Reads keys 1..=n through `clients` connections, text and binary,
/// checking every answer; returns how many answers the target gave.
async fn read_all(proxy: &Proxy, db: &str, clients: u32, n: u32) -> usize {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut conn = proxy.connect(db).await;
        tasks.push(tokio::spawn(async move {
            let stmt = conn
                .prep("SELECT id, path, method FROM api WHERE id = ?")
                .await
                .unwrap();
            let mut on_target = 0;
            for id in (1..=n).filter(|id| id % clients == c) {
                let row: (u32, String, String) = if id % 2 == 0 {
                    conn.exec_first(&stmt, (id,)).await
                } else {
                    conn.query_first(format!("SELECT id, path, method FROM api WHERE id = {id}"))
                        .await
                }
                .unwrap_or_else(|e| panic!("key {id}: {e}"))
                .expect("a row");
                assert_eq!((row.0, row.1.as_str()), (id, format!("/p/{id}").as_str()));
                on_target += usize::from(row.2 == "tgt");
            }
            conn.disconnect().await.unwrap();
            on_target
        }));
    }
    let mut on_target = 0;
    for task in tasks {
        on_target += task.await.unwrap();
    }
    on_target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_target_is_hidden_rolled_back_and_announced_once() {
    let db = tables("guard_break").await;
    let hook = Webhook::start().await;
    let proxy = proxy(
        &db,
        "{ window: 10s, min_samples: 40, max_error_rate: 0.05, max_latency_ratio: 1000 }",
        &hook,
    )
    .await;
    assert!(
        read_all(&proxy, &db, 4, 200).await > 50,
        "half the keys read the target"
    );
    assert!(migration(&proxy).await["rollback"].is_null());

    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("RENAME TABLE t_sys_api_endpoints TO t_broken")
        .await
        .unwrap();
    let broken = Instant::now();
    // Every client still gets the right answer: the source's.
    let on_target = read_all(&proxy, &db, 4, 400).await;
    assert_eq!(on_target, 0);
    let m = migration(&proxy).await;
    assert_eq!(m["rollback"]["reason"], "error_rate", "{m}");
    assert_eq!(m["target_share_basis_points"], 0, "{m}");
    assert!(
        broken.elapsed() < Duration::from_secs(10),
        "rolled back under load in time"
    );
    // Announced exactly once, as a rollback with its figures.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let bodies = hook.bodies();
    let rollbacks: Vec<_> = bodies.iter().filter(|b| b["kind"] == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "{bodies:?}");
    assert_eq!(rollbacks[0]["reason"], "error_rate");
    assert_eq!(rollbacks[0]["migration"], "api_move");
    assert!(rollbacks[0]["text"].as_str().unwrap().contains("api_move"));
    let admin = proxy.running.admin.expect("admin listener");
    let (_, metrics) = common::http_get(admin, "/metrics").await;
    assert!(
        metrics
            .contains("switchyard_rollbacks_total{migration=\"api_move\",reason=\"error_rate\"} 1"),
        "{metrics}"
    );

    // The rollback holds while nothing changes...
    direct
        .query_drop("RENAME TABLE t_broken TO t_sys_api_endpoints")
        .await
        .unwrap();
    assert_eq!(read_all(&proxy, &db, 2, 100).await, 0);
    // ...and an operator's new rule lifts it.
    let (code, text) = common::http_put(
        admin,
        "/migrations/api_move/reads",
        &json!({"strategy": "percentage", "percent": 50, "sticky_by": "column:id"}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(migration(&proxy).await["rollback"].is_null());
    assert!(read_all(&proxy, &db, 2, 100).await > 20);
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_failures_than_min_samples_do_not_roll_back() {
    let db = tables("guard_few").await;
    let hook = Webhook::start().await;
    let proxy = proxy(&db, "{ window: 30s, min_samples: 1000 }", &hook).await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("RENAME TABLE t_sys_api_endpoints TO t_broken")
        .await
        .unwrap();
    assert_eq!(read_all(&proxy, &db, 2, 200).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = migration(&proxy).await;
    assert!(m["rollback"].is_null(), "{m}");
    assert_eq!(m["target_share_basis_points"], 5000, "{m}");
    assert!(hook.bodies().is_empty());
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_read_times_out_to_the_source_and_trips_the_rollback() {
    let db = tables("guard_hang").await;
    let hook = Webhook::start().await;
    let proxy = proxy(&db, "{ read_timeout: 300ms, max_timeouts: 3 }", &hook).await;
    let admin = proxy.running.admin.expect("admin listener");
    let (code, text) = common::http_put(
        admin,
        "/migrations/api_move/reads",
        &json!({"strategy": "immediate", "path": "target"}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    // A session holding a write lock on the target: target reads wait.
    let mut locker = common::direct(Some(&db)).await;
    locker
        .query_drop("LOCK TABLES t_sys_api_endpoints WRITE")
        .await
        .unwrap();
    let started = Instant::now();
    // Four clients, text and binary: each gets the source's answer.
    assert_eq!(read_all(&proxy, &db, 4, 4).await, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = migration(&proxy).await;
    assert_eq!(m["rollback"]["reason"], "timeouts", "{m}");
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    let (_, metrics) = common::http_get(admin, "/metrics").await;
    assert!(metrics.contains("outcome=\"timeout\""), "{metrics}");
    locker.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_rolls_back_for_latency() {
    let db = tables("guard_slow").await;
    let hook = Webhook::start().await;
    let proxy = proxy(
        &db,
        "{ read_timeout: off, min_samples: 30, max_latency_ratio: 3.0 }",
        &hook,
    )
    .await;
    // A session that keeps taking the target's write lock for 40 ms at a
    // time: target reads wait behind it, source reads do not.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        let mut locker = common::direct(Some(&db)).await;
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                locker
                    .query_drop("LOCK TABLES t_sys_api_endpoints WRITE")
                    .await
                    .unwrap();
                locker.query_drop("DO SLEEP(0.04)").await.unwrap();
                locker.query_drop("UNLOCK TABLES").await.unwrap();
            }
            locker.disconnect().await.unwrap();
        })
    };
    let started = Instant::now();
    while migration(&proxy).await["rollback"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no rollback: {}",
            migration(&proxy).await
        );
        read_all(&proxy, &db, 2, 40).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    slow.await.unwrap();
    let m = migration(&proxy).await;
    assert_eq!(m["rollback"]["reason"], "latency", "{m}");
    common::drop_db(&db).await;
}
