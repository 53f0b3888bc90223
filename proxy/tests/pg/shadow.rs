//! Shadow compare against the real PostgreSQL: both forms of a read run on
//! the shadow's own connection in one snapshot, and the outcome says
//! whether the target agrees.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::config::Config;
use switchyard_proxy::route::fingerprint::Dialect;
use switchyard_proxy::shadow::{
    Shadow, ShadowJob, ShadowLimits, ShadowOutcome, ShadowResult, Skip,
};
use switchyard_proxy::state::Snapshot;
use tokio::sync::mpsc;

use crate::common;

/// A database with the source `api` and the target `t_api`, whose `path`
/// is `endpoint_path`, holding the same rows; a trigger mirrors every
/// write to the source into the target in the writer's transaction.
async fn tables(prefix: &str) -> String {
    let db = common::create_db(prefix).await;
    common::direct(&db)
        .await
        .batch_execute(
            "CREATE TABLE api (id int PRIMARY KEY, path text, price numeric(10,2), at timestamptz, hits bigint);
             CREATE TABLE t_api (id bigint PRIMARY KEY, endpoint_path text, price numeric(12,4), at timestamptz, hits bigint);
             INSERT INTO api SELECT g, '/p/' || g, g * 1.5, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour', g
               FROM generate_series(1, 50) g;
             INSERT INTO t_api SELECT id, path, price, at, hits FROM api;
             CREATE FUNCTION mirror() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO t_api VALUES (NEW.id, NEW.path, NEW.price, NEW.at, NEW.hits)
               ON CONFLICT (id) DO UPDATE SET endpoint_path = EXCLUDED.endpoint_path,
                 price = EXCLUDED.price, at = EXCLUDED.at, hits = EXCLUDED.hits;
               RETURN NULL;
             END $$;
             CREATE TRIGGER mirror AFTER INSERT OR UPDATE ON api FOR EACH ROW EXECUTE FUNCTION mirror();",
        )
        .await
        .unwrap();
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

const SOURCE: &str = "SELECT id, path, price, at, hits FROM api WHERE id > $1 ORDER BY id";
const TARGET: &str = "SELECT id, endpoint_path AS path, CAST(price AS numeric(10,2)) AS price, at, hits FROM t_api AS api WHERE id > $1 ORDER BY id";

fn job(db: &str, source: &str, target: &str) -> ShadowJob {
    ShadowJob {
        migration: "api_v2".into(),
        dialect: Dialect::Postgres,
        backend: "pg".into(),
        target_backend: None,
        database: db.into(),
        role: None,
        settings: vec![("TimeZone".into(), "Europe/Paris".into())],
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
    // Unordered, no parameters, and the numeric scale differs on purpose.
    let mut unordered = job(
        &db,
        "SELECT path, price FROM api",
        "SELECT endpoint_path AS path, price FROM t_api AS api",
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
    common::direct(&db)
        .await
        .batch_execute("UPDATE t_api SET endpoint_path = '/changed', hits = NULL WHERE id = 7")
        .await
        .unwrap();
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
        "SELECT id, now() FROM api WHERE id > $1",
        "SELECT id, now() FROM t_api WHERE id > $1",
    ));
    let result = next(&mut outcomes).await;
    assert!(
        matches!(result, ShadowResult::Skipped(Skip::Volatile)),
        "{result:?}"
    );

    let mut bad_setting = job(&db, SOURCE, TARGET);
    bad_setting.settings = vec![("TimeZone".into(), "Nowhere/Atlantis".into())];
    shadow.submit(bad_setting);
    let result = next(&mut outcomes).await;
    assert!(
        matches!(result, ShadowResult::Skipped(Skip::Settings)),
        "{result:?}"
    );

    common::direct(&db)
        .await
        .batch_execute("DROP TRIGGER mirror ON api; DROP TABLE t_api")
        .await
        .unwrap();
    shadow.submit(job(&db, SOURCE, TARGET));
    let ShadowResult::Error(error) = next(&mut outcomes).await else {
        panic!("an error");
    };
    assert!(error.contains("t_api"), "{error}");
    // The connection survived the server's error: the next read works.
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
    // This test's runtime has one thread: the worker cannot take a job off
    // the queue before these calls return.
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
            let client = common::direct(&db).await;
            for i in 0..400 {
                let id = i % 60 + 1;
                client
                    .execute(
                        "INSERT INTO api VALUES ($1, '/w', 1, now(), 0)
                         ON CONFLICT (id) DO UPDATE SET path = api.path || 'x', price = api.price + 0.25, hits = api.hits + 1",
                        &[&id],
                    )
                    .await
                    .unwrap();
            }
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

/// The proxy with migration `shadow_e2e` of `api` in `db`: reads stay on
/// the source, and every one is shadowed.
async fn proxy_shadowing(db: &str) -> common::Proxy {
    let yaml = format!(
        "{}
migrations:
  - id: shadow_e2e
    backend: pg
    source: {{ database: {db}, schema: public, table: api, primary_key: [id] }}
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
    common::catalog::ready(&proxy.running, "shadow_e2e").await;
    proxy
}

/// `switchyard_shadow_compare_total{migration="shadow_e2e",result}` now.
async fn compared(proxy: &common::Proxy, result: &str) -> u64 {
    let labels = [("migration", "shadow_e2e"), ("result", result)];
    common::http::counter(proxy.admin(), "switchyard_shadow_compare_total", &labels).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_through_the_proxy_are_shadowed_and_a_changed_row_is_found() {
    let db = tables("shadow_proxy").await;
    let proxy = proxy_shadowing(&db).await;
    let client = proxy.connect(&db).await;
    let writer = proxy.connect(&db).await;
    let stmt = client
        .prepare("SELECT id, path, price, at, hits FROM api WHERE id = $1")
        .await
        .unwrap();
    // Reads while another client writes through the proxy (the trigger
    // mirrors each write in its transaction): no false mismatch.
    let writes = tokio::spawn(async move {
        for i in 0..200 {
            writer
                .execute(
                    "UPDATE api SET hits = hits + 1 WHERE id = $1",
                    &[&(i % 50 + 1)],
                )
                .await
                .unwrap();
        }
    });
    for i in 0..100 {
        let id = i % 50 + 1;
        if i % 2 == 0 {
            client.query_one(&stmt, &[&id]).await.unwrap();
        } else {
            client
                .simple_query(&format!("SELECT id, path, hits FROM api WHERE id = {id}"))
                .await
                .unwrap();
        }
    }
    writes.await.unwrap();
    let started = std::time::Instant::now();
    while compared(&proxy, "match").await < 80 {
        if started.elapsed() > Duration::from_secs(20) {
            let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
            let lines: Vec<_> = metrics.lines().filter(|l| l.contains("shadow")).collect();
            panic!("shadow results did not arrive: {lines:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(compared(&proxy, "mismatch").await, 0);

    // Reads whose answer is not determined are skipped, not compared.
    common::direct(&db)
        .await
        .batch_execute("CREATE SEQUENCE s")
        .await
        .unwrap();
    let skipped = compared(&proxy, "skipped").await;
    for sql in [
        "SELECT id, now() FROM api WHERE id = 3",
        "SELECT id FROM api LIMIT 3",
        "SELECT id, random() FROM api WHERE id = 4",
        "SELECT id, nextval('s') FROM api WHERE id = 5",
    ] {
        client.simple_query(sql).await.unwrap();
    }
    let started = std::time::Instant::now();
    while compared(&proxy, "skipped").await < skipped + 4 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "skips were not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A row changed on the target alone is found, with its key and both values.
    common::direct(&db)
        .await
        .batch_execute("UPDATE t_api SET endpoint_path = '/changed' WHERE id = 7")
        .await
        .unwrap();
    client.query_one(&stmt, &[&7]).await.unwrap();
    let started = std::time::Instant::now();
    let sample = loop {
        let (_, body) = common::http_get(proxy.admin(), "/migrations/shadow_e2e/mismatches").await;
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
    let (_, listing) = common::http_get(proxy.admin(), "/migrations").await;
    assert!(listing.contains("\"shadow_mismatches\":1"), "{listing}");
    drop(client);
    common::drop_db(&db).await;
}
