//! The read switch's guard on PostgreSQL: a target read that fails before
//! the client saw any of it is answered by the source (inside a transaction
//! too, behind a savepoint the client never sees), a hung target read is
//! ended by the server's statement timeout and answered by the source, and
//! enough failures roll the target's reads back and are announced once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::SimpleQueryMessage;

use crate::common::{self, catalog, webhook::Webhook, Proxy};
use crate::reads::{config, tables, RENAMES};

async fn proxy(db: &str, reads: &str, rollback: &str, hook: &Webhook) -> Proxy {
    let yaml = format!(
        "{}    rollback: {rollback}\n    alerts: {{ webhooks: ['{}'] }}\n",
        config(&common::base_yaml(), db, RENAMES, reads),
        hook.url()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    proxy
}

async fn migration(proxy: &Proxy) -> serde_json::Value {
    common::http::migration(proxy.admin(), "api_move").await
}

/// The `method` of key `id` read with a simple query, after checking the
/// row is the key's.
async fn read(client: &tokio_postgres::Client, id: i32) -> String {
    let messages = client
        .simple_query(&format!("SELECT id, path, method FROM api WHERE id = {id}"))
        .await
        .unwrap_or_else(|e| panic!("key {id}: {e}"));
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get(0), Some(id.to_string().as_str()));
    assert_eq!(row.get(1), Some(format!("/p/{id}").as_str()));
    row.get(2).unwrap().to_string()
}

/// The `method` of key `id` read with a prepared statement (the extended
/// protocol), after checking the row is the key's.
async fn read_prepared(
    client: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    id: i32,
) -> String {
    let row = client
        .query_one(stmt, &[&id])
        .await
        .unwrap_or_else(|e| panic!("key {id}: {e}"));
    assert_eq!(row.get::<_, i32>(0), id);
    assert_eq!(row.get::<_, String>(1), format!("/p/{id}"));
    row.get(2)
}

/// Reads keys 1..=n over `clients` connections, odd keys with simple
/// queries and even ones with a prepared statement; returns the target's
/// answers.
async fn read_all(proxy: &Proxy, db: &str, clients: i32, n: i32) -> usize {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = proxy.connect(db).await;
        tasks.push(tokio::spawn(async move {
            let stmt = client
                .prepare("SELECT id, path, method FROM api WHERE id = $1")
                .await
                .unwrap();
            let mut on_target = 0;
            for id in (1..=n).filter(|id| id % clients == c) {
                let method = match id % 2 {
                    0 => read_prepared(&client, &stmt, id).await,
                    _ => read(&client, id).await,
                };
                on_target += usize::from(method == "tgt");
            }
            on_target
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

/// Tables in a new database and a proxy whose rule sends every read of
/// `api` to the target, with `rollback` and a test webhook.
async fn all_to_target(prefix: &str, rollback: &str) -> (String, Proxy, Webhook) {
    let db = tables(prefix).await;
    let hook = Webhook::start().await;
    let proxy = proxy(
        &db,
        "{ strategy: immediate, path: target }",
        rollback,
        &hook,
    )
    .await;
    (db, proxy, hook)
}

/// The point read by key, prepared (the extended protocol).
async fn prepare_read(client: &tokio_postgres::Client) -> tokio_postgres::Statement {
    client
        .prepare("SELECT id, path, method FROM api WHERE id = $1")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_target_is_hidden_rolled_back_and_announced_once() {
    let db = tables("guard_break").await;
    let hook = Webhook::start().await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 50, sticky_by: 'column:id' }",
        "{ window: 10s, min_samples: 40, max_error_rate: 0.05, max_latency_ratio: 1000 }",
        &hook,
    )
    .await;
    assert!(read_all(&proxy, &db, 4, 200).await > 50);
    let direct = common::direct(&db).await;
    direct
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME TO t_broken")
        .await
        .unwrap();
    let broken = Instant::now();
    assert_eq!(read_all(&proxy, &db, 4, 400).await, 0);
    let m = migration(&proxy).await;
    assert_eq!(m["rollback"]["reason"], "error_rate", "{m}");
    assert_eq!(m["target_share_basis_points"], 0, "{m}");
    assert!(broken.elapsed() < Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let bodies = hook.bodies();
    let rollbacks: Vec<_> = bodies.iter().filter(|b| b["kind"] == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "{bodies:?}");
    assert_eq!(rollbacks[0]["reason"], "error_rate");
    // The rollback holds while nothing changes, and an operator's new rule
    // lifts it.
    direct
        .batch_execute("ALTER TABLE t_broken RENAME TO t_sys_api_endpoints")
        .await
        .unwrap();
    assert_eq!(read_all(&proxy, &db, 2, 100).await, 0);
    let body =
        serde_json::json!({"strategy": "percentage", "percent": 50, "sticky_by": "column:id"});
    let (code, text) = common::http_put(
        proxy.admin(),
        "/migrations/api_move/reads",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    assert!(migration(&proxy).await["rollback"].is_null());
    assert!(read_all(&proxy, &db, 2, 100).await > 20);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_failures_than_min_samples_do_not_roll_back() {
    let (db, proxy, hook) = all_to_target("guard_few", "{ window: 30s, min_samples: 1000 }").await;
    common::direct(&db)
        .await
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME TO t_broken")
        .await
        .unwrap();
    assert_eq!(read_all(&proxy, &db, 2, 200).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = migration(&proxy).await;
    assert!(m["rollback"].is_null(), "{m}");
    assert_eq!(m["target_share_basis_points"], 10000, "{m}");
    assert!(hook.bodies().is_empty());
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_target_read_inside_a_transaction_is_answered_by_the_source() {
    let (db, proxy, _hook) = all_to_target("guard_tx", "{ min_samples: 1000 }").await;
    common::direct(&db)
        .await
        .batch_execute("ALTER TABLE t_sys_api_endpoints DROP COLUMN http_method")
        .await
        .unwrap();
    let client = proxy.connect(&db).await;
    let messages = client
        .simple_query("BEGIN; INSERT INTO api VALUES (5000, '/p/5000', 'new')")
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    // The target read fails (its column is gone); the source answers, and
    // the transaction goes on as if the source alone had been read.
    assert_eq!(read(&client, 7).await, "src");
    let messages = client
        .simple_query("SELECT count(*) FROM api WHERE id = 5000")
        .await
        .unwrap();
    let tags: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(tags, [1]);
    client.simple_query("COMMIT").await.unwrap();
    let count: i64 = common::direct(&db)
        .await
        .query_one("SELECT count(*) FROM api WHERE id = 5000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "the client's transaction committed");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_target_read_times_out_to_the_source_and_trips_the_rollback() {
    let (db, proxy, _hook) =
        all_to_target("guard_hang", "{ read_timeout: 300ms, max_timeouts: 3 }").await;
    // A session holding an exclusive lock on the target: every target
    // read blocks until it lets go.
    let mut locker = common::direct(&db).await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE t_sys_api_endpoints IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in 1..=4 {
        let client = proxy.connect(&db).await;
        tasks.push(tokio::spawn(async move { read(&client, id).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "src");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = migration(&proxy).await;
    assert_eq!(m["rollback"]["reason"], "timeouts", "{m}");
    lock.rollback().await.unwrap();
    let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
    assert!(metrics.contains("outcome=\"timeout\""), "{metrics}");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_rolls_back_for_latency() {
    let db = tables("guard_slow").await;
    let hook = Webhook::start().await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 50, sticky_by: 'column:id' }",
        "{ read_timeout: off, min_samples: 30, max_latency_ratio: 3.0 }",
        &hook,
    )
    .await;
    // A session that keeps taking the target's lock for 40 ms at a time:
    // target reads wait behind it, source reads do not.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        let mut locker = common::direct(&db).await;
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tx = locker.transaction().await.unwrap();
                tx.batch_execute("LOCK TABLE t_sys_api_endpoints IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.04)")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
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
    assert!(
        m["rollback"]["verdict"].as_str().unwrap().contains("p99"),
        "{m}"
    );
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_read_survives_a_target_that_breaks_and_comes_back() {
    let (db, proxy, _hook) = all_to_target("guard_back", "{ min_samples: 1000 }").await;
    let client = proxy.connect(&db).await;
    let stmt = prepare_read(&client).await;
    assert_eq!(read_prepared(&client, &stmt, 3).await, "tgt");
    let direct = common::direct(&db).await;
    direct
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME COLUMN http_method TO gone")
        .await
        .unwrap();
    // The target form fails at Bind, then (forgotten) at Parse: the
    // client's own form answers both times.
    assert_eq!(read_prepared(&client, &stmt, 3).await, "src");
    assert_eq!(read_prepared(&client, &stmt, 4).await, "src");
    direct
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME COLUMN gone TO http_method")
        .await
        .unwrap();
    assert_eq!(read_prepared(&client, &stmt, 5).await, "tgt");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_prepared_target_read_times_out_to_the_source() {
    let (db, proxy, _hook) = all_to_target(
        "guard_hang_ext",
        "{ read_timeout: 300ms, max_timeouts: 100, min_samples: 1000 }",
    )
    .await;
    let client = proxy.connect(&db).await;
    let stmt = prepare_read(&client).await;
    assert_eq!(read_prepared(&client, &stmt, 2).await, "tgt");
    let mut locker = common::direct(&db).await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE t_sys_api_endpoints IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(read_prepared(&client, &stmt, 3).await, "src");
    assert!(started.elapsed() < Duration::from_secs(5));
    lock.rollback().await.unwrap();
    // The timeout ended with the read: the session's own setting is as it was.
    let setting: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, "0");
    assert_eq!(read_prepared(&client, &stmt, 4).await, "tgt");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_prepared_read_inside_a_transaction_is_answered_by_the_source() {
    let (db, proxy, _hook) = all_to_target("guard_tx_ext", "{ min_samples: 1000 }").await;
    let mut client = proxy.connect(&db).await;
    let stmt = prepare_read(&client).await;
    common::direct(&db)
        .await
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME COLUMN http_method TO gone")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    // The target read fails behind the proxy's savepoint; the source
    // answers and the transaction goes on (a write first would pin it to
    // the source).
    for id in [8, 9] {
        let row = tx
            .query_one(&stmt, &[&id])
            .await
            .unwrap_or_else(|e| panic!("key {id}: {e}"));
        assert_eq!(row.get::<_, String>(2), "src");
    }
    tx.execute("INSERT INTO api VALUES (5001, '/p/5001', 'new')", &[])
        .await
        .unwrap();
    let n: i64 = tx
        .query_one("SELECT count(*) FROM api WHERE id = 5001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    tx.commit().await.unwrap();
    let count: i64 = common::direct(&db)
        .await
        .query_one("SELECT count(*) FROM api WHERE id = 5001", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1, "the client's transaction committed");
    common::drop_db(&db).await;
}
