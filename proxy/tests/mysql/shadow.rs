//! Shadow compare against the real MariaDB: both forms of a read run on
//! the shadow's own connection in one consistent snapshot, and the
//! outcome says whether the target agrees.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use switchyard_core::config::Config;
use switchyard_proxy::route::fingerprint::Dialect;
use switchyard_proxy::shadow::{
    Shadow, ShadowJob, ShadowLimits, ShadowOutcome, ShadowResult, Skip,
};
use switchyard_proxy::state::Snapshot;
use tokio::sync::mpsc;

use crate::common;

/// A database with the source `api` and the target `t_api`, whose `path`
/// is `endpoint_path`, holding the same rows; triggers mirror every write
/// to the source into the target in the writer's transaction.
async fn tables(prefix: &str) -> String {
    let db = common::create_db(prefix).await;
    let mut conn = common::direct(Some(&db)).await;
    for statement in [
        "CREATE TABLE api (id int PRIMARY KEY, path varchar(100), price decimal(10,2), at datetime(6), hits bigint) ENGINE=InnoDB",
        "CREATE TABLE t_api (id bigint PRIMARY KEY, endpoint_path varchar(200), price decimal(12,4), at datetime(6), hits bigint) ENGINE=InnoDB",
        "INSERT INTO api SELECT seq, CONCAT('/p/', seq), seq * 1.5, '2024-01-01 00:00:00' + INTERVAL seq HOUR, seq FROM seq_1_to_50",
        "INSERT INTO t_api SELECT * FROM api",
        "CREATE TRIGGER mirror_insert AFTER INSERT ON api FOR EACH ROW
           INSERT INTO t_api VALUES (NEW.id, NEW.path, NEW.price, NEW.at, NEW.hits)",
        "CREATE TRIGGER mirror_update AFTER UPDATE ON api FOR EACH ROW
           UPDATE t_api SET endpoint_path = NEW.path, price = NEW.price, at = NEW.at, hits = NEW.hits WHERE id = NEW.id",
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    crate::reads::install_guard(&mut conn, &db, "shadow_e2e_my", "api").await;
    conn.disconnect().await.unwrap();
    db
}

/// A shadow over the test backend whose outcomes arrive on a channel.
fn shadow(limits: ShadowLimits) -> (Shadow, mpsc::UnboundedReceiver<ShadowOutcome>) {
    let config = Config::from_yaml(&common::base_yaml(), Path::new("."), &|_| None).unwrap();
    let snapshot = Arc::new(Snapshot::build(config, 1).unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let report = Arc::new(move |outcome| {
        let _ = tx.send(outcome);
    });
    (Shadow::new(snapshot, limits, report), rx)
}

const SOURCE: &str = "SELECT id, path, price, at, hits FROM api WHERE id > ? ORDER BY id";
const TARGET: &str =
    "SELECT id, endpoint_path AS path, price, at, hits FROM t_api AS api WHERE id > ? ORDER BY id";

fn job(db: &str, source: &str, target: &str) -> ShadowJob {
    ShadowJob {
        migration: "api_v2".into(),
        dialect: Dialect::Mysql,
        backend: "my".into(),
        target_backend: None,
        database: db.into(),
        role: None,
        settings: vec![("time_zone".into(), "+02:00".into())],
        source_sql: source.into(),
        target_sql: target.into(),
        params: vec![Some("0".into())],
        key_columns: vec!["id".into()],
        order: None,
    }
}

async fn next(outcomes: &mut mpsc::UnboundedReceiver<ShadowOutcome>) -> ShadowResult {
    tokio::time::timeout(Duration::from_secs(10), outcomes.recv())
        .await
        .expect("an outcome in time")
        .expect("the shadow is running")
        .result
}

#[tokio::test]
async fn identical_tables_match() {
    let db = tables("shadow_match").await;
    let (shadow, mut outcomes) = shadow(ShadowLimits::default());
    shadow.submit(job(&db, SOURCE, TARGET));
    // The text protocol (no parameters), unordered, numeric scale differing.
    let mut unordered = job(
        &db,
        "SELECT path, price, at FROM api",
        "SELECT endpoint_path AS path, price, at FROM t_api AS api",
    );
    unordered.params.clear();
    shadow.submit(unordered);
    for _ in 0..2 {
        let result = next(&mut outcomes).await;
        assert!(matches!(result, ShadowResult::Match), "{result:?}");
    }
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_changed_target_row_is_a_mismatch_with_its_key_and_values() {
    let db = tables("shadow_mismatch").await;
    let mut conn = common::direct(Some(&db)).await;
    conn.query_drop("UPDATE t_api SET endpoint_path = '/changed', hits = NULL WHERE id = 7")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let (shadow, mut outcomes) = shadow(ShadowLimits::default());
    shadow.submit(job(&db, SOURCE, TARGET));
    let ShadowResult::Mismatch(sample) = next(&mut outcomes).await else {
        panic!("a mismatch");
    };
    let json = serde_json::to_value(&sample).unwrap();
    assert_eq!(json["key"], serde_json::json!([["id", "7"]]));
    assert_eq!(
        json["columns"],
        serde_json::json!([
            {"column": "path", "source": "/p/7", "target": "/changed"},
            {"column": "hits", "source": "7", "target": null},
        ])
    );
    assert_eq!(shadow.mismatches("api_v2"), vec![sample]);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn skips_volatile_reads_and_reports_failures() {
    let db = tables("shadow_skips").await;
    let (shadow, mut outcomes) = shadow(ShadowLimits::default());
    shadow.submit(job(
        &db,
        "SELECT id, NOW() FROM api WHERE id > ?",
        "SELECT id, NOW() FROM t_api WHERE id > ?",
    ));
    let result = next(&mut outcomes).await;
    assert!(
        matches!(result, ShadowResult::Skipped(Skip::Volatile)),
        "{result:?}"
    );

    let mut other_user = job(&db, SOURCE, TARGET);
    other_user.role = Some("app_rw".into());
    shadow.submit(other_user);
    let result = next(&mut outcomes).await;
    assert!(
        matches!(result, ShadowResult::Skipped(Skip::Settings)),
        "{result:?}"
    );

    let mut conn = common::direct(Some(&db)).await;
    conn.query_drop("DROP TABLE t_api").await.unwrap();
    conn.disconnect().await.unwrap();
    shadow.submit(job(&db, SOURCE, TARGET));
    let ShadowResult::Error(error) = next(&mut outcomes).await else {
        panic!("an error");
    };
    assert!(error.contains("t_api"), "{error}");
    // The connection survived the server's error, its time zone back to
    // the default: the next read works.
    let mut plain = job(&db, "SELECT id FROM api", "SELECT id FROM api");
    plain.params.clear();
    shadow.submit(plain);
    let result = next(&mut outcomes).await;
    assert!(matches!(result, ShadowResult::Match), "{result:?}");
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_full_queue_skips_without_waiting() {
    let db = tables("shadow_busy").await;
    let limits = ShadowLimits {
        queue: 1,
        ..ShadowLimits::default()
    };
    let (shadow, mut outcomes) = shadow(limits);
    // One runtime thread: the worker cannot take a job off the queue
    // before these calls return.
    for _ in 0..3 {
        shadow.submit(job(&db, SOURCE, TARGET));
    }
    let mut results = Vec::new();
    for _ in 0..3 {
        results.push(next(&mut outcomes).await);
    }
    let busy = results
        .iter()
        .filter(|r| matches!(r, ShadowResult::Skipped(Skip::Busy)))
        .count();
    let matched = results
        .iter()
        .filter(|r| matches!(r, ShadowResult::Match))
        .count();
    assert_eq!((busy, matched), (2, 1), "{results:?}");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_mirrored_writes_never_mismatch() {
    let db = tables("shadow_writes").await;
    let (shadow, mut outcomes) = shadow(ShadowLimits::default());
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut conn = common::direct(Some(&db)).await;
            for i in 0..400 {
                let id = i % 60 + 1;
                conn.exec_drop(
                    "INSERT INTO api VALUES (?, '/w', 1, NOW(6), 0)
                     ON DUPLICATE KEY UPDATE path = CONCAT(path, 'x'), price = price + 0.25, hits = hits + 1",
                    (id,),
                )
                .await
                .unwrap();
            }
            conn.disconnect().await.unwrap();
        })
    };
    let reads = 150;
    for _ in 0..reads {
        shadow.submit(job(&db, SOURCE, TARGET));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut counts = std::collections::HashMap::new();
    for _ in 0..reads {
        *counts.entry(next(&mut outcomes).await.label()).or_insert(0) += 1;
    }
    writer.await.unwrap();
    assert_eq!(counts.get("mismatch"), None, "{counts:?}");
    assert!(
        counts.get("match").copied().unwrap_or(0) > reads / 2,
        "{counts:?}"
    );
    common::drop_db(&db).await;
}

/// `switchyard_shadow_compare_total{migration="shadow_e2e_my",result}` now.
async fn compared(proxy: &common::Proxy, result: &str) -> u64 {
    let admin = proxy.running.admin.expect("admin listener");
    let labels = [("migration", "shadow_e2e_my"), ("result", result)];
    common::http::counter(admin, "switchyard_shadow_compare_total", &labels).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_proxy_are_shadowed_and_a_changed_row_is_found() {
    let db = tables("shadow_proxy").await;
    let yaml = format!(
        "{}
migrations:
  - id: shadow_e2e_my
    backend: my
    source: {{ database: {db}, table: api, primary_key: [id] }}
    target: {{ table: t_api }}
    columns: {{ path: endpoint_path }}
    phase: read_ramp
    reads: {{ strategy: immediate, path: source, shadow: {{ percent: 100 }} }}
",
        common::base_yaml()
    );
    let proxy = common::start(
        &yaml,
        Arc::new(switchyard_proxy::route::MigrationRouter::default()),
    )
    .await;
    common::catalog::ready(&proxy.running, "shadow_e2e_my").await;
    let mut conn = proxy.connect(&db).await;
    let mut writer = proxy.connect(&db).await;
    let writes = tokio::spawn(async move {
        for i in 0..150u32 {
            writer
                .exec_drop("UPDATE api SET hits = hits + 1 WHERE id = ?", (i % 50 + 1,))
                .await
                .unwrap();
        }
        writer.disconnect().await.unwrap();
    });
    let stmt = conn
        .prep("SELECT id, path, price, hits FROM api WHERE id = ?")
        .await
        .unwrap();
    for i in 0..80u32 {
        let id = i % 50 + 1;
        if i % 2 == 0 {
            let _: Option<mysql_async::Row> = conn.exec_first(&stmt, (id,)).await.unwrap();
        } else {
            let _: Option<mysql_async::Row> = conn
                .query_first(format!("SELECT id, path, hits FROM api WHERE id = {id}"))
                .await
                .unwrap();
        }
    }
    writes.await.unwrap();
    let started = std::time::Instant::now();
    while compared(&proxy, "match").await < 70 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "shadow results did not arrive: {} matched",
            compared(&proxy, "match").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(compared(&proxy, "mismatch").await, 0);

    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("UPDATE t_api SET endpoint_path = '/changed' WHERE id = 7")
        .await
        .unwrap();
    direct.disconnect().await.unwrap();
    let _: Option<mysql_async::Row> = conn.exec_first(&stmt, (7,)).await.unwrap();
    let admin = proxy.running.admin.expect("admin listener");
    let started = std::time::Instant::now();
    let sample = loop {
        let (_, body) = common::http_get(admin, "/migrations/shadow_e2e_my/mismatches").await;
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        if let Some(sample) = body["mismatches"].as_array().and_then(|m| m.first()) {
            break sample.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no mismatch: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(sample["key"], serde_json::json!([["id", "7"]]), "{sample}");
    let columns = sample["columns"].to_string();
    assert!(
        columns.contains("/changed") && columns.contains("/p/7"),
        "{sample}"
    );
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}
