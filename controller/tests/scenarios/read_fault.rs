//! A target that fails during the read ramp: two proxies follow the
//! control store at the ramp's first step while clients read through
//! both; a target column is renamed away. Every proxy sends its reads
//! back to the source within two seconds, the rollback is in the audit
//! log, and the migration's alert webhook hears of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::config::Protocol;
use switchyard_proxy::server::Running;

use super::harness::ROWS;
use super::proxies::{eventually, until, Through};
use super::webhook::Webhook;
use super::{status, to_read_ramp, Db, Engine};

/// The bound on how long a proxy may read a failing target.
const BACK_WITHIN: Duration = Duration::from_secs(2);

pub async fn a_failing_target_sends_every_proxy_back_to_the_source(engine: Engine) {
    let db = Db::create(engine, "fault").await;
    let protocol = match engine {
        Engine::Pg => Protocol::Postgres,
        Engine::My => Protocol::Mysql,
    };
    let hook = Webhook::start().await;
    // Sticky by key, so every session reads from both tables at the
    // ramp's share.
    db.write_config(&db.proxied_yaml(&format!(
        "    reads: {{ strategy: percentage, percent: 0, sticky_by: 'column:id' }}\n    \
         rollback: {{ window: 10s, min_samples: 20, max_error_rate: 0.05, max_latency_ratio: 1000 }}\n    \
         alerts: {{ webhooks: ['{}'] }}\n",
        hook.url()
    )));
    to_read_ramp(&db);
    assert_eq!(status(&db)["share"], 50.0);

    let proxies = [start(&db).await, start(&db).await];
    for proxy in &proxies {
        until(Duration::from_secs(5), "the proxy follows the ramp", || {
            share(proxy) == 5_000
        })
        .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for proxy in &proxies {
        for _ in 0..2 {
            let client = Through::connect(proxy, protocol, &db.name).await;
            readers.push(tokio::spawn(read_until(
                client,
                stop.clone(),
                failed.clone(),
            )));
        }
    }
    for proxy in &proxies {
        until(Duration::from_secs(5), "reads reach the target", || {
            target_reads(proxy) > 20
        })
        .await;
    }

    // The same statement on both engines: reads of the target now fail.
    db.exec(&["ALTER TABLE t_sys_api_endpoints RENAME COLUMN endpoint_path TO endpoint_url"])
        .await;
    let broken = Instant::now();
    for (i, proxy) in proxies.iter().enumerate() {
        until(BACK_WITHIN * 3, "the proxy reads the source only", || {
            share(proxy) == 0
        })
        .await;
        let took = broken.elapsed();
        assert!(took <= BACK_WITHIN, "proxy {i} took {took:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.unwrap();
    }
    eprintln!(
        "{engine:?}: {reads} reads, {} failed, while the target broke",
        failed.load(Ordering::Relaxed)
    );

    // Reads succeed through both proxies, and none of them goes to the
    // target any more.
    for proxy in &proxies {
        let before = target_reads(proxy);
        let mut client = Through::connect(proxy, protocol, &db.name).await;
        for id in 1..=50 {
            assert_eq!(
                read(&mut client, id).await.unwrap(),
                Some(format!("/v1/r{id}"))
            );
        }
        assert_eq!(target_reads(proxy), before, "a read went to the target");
    }

    // Stored and audited, so the controller and every replica follow.
    let audited = eventually(Duration::from_secs(5), || async {
        db.int("SELECT count(*) FROM switchyard_events WHERE migration = 'api' AND action = 'rollback'")
            .await
            > 0
    })
    .await;
    assert!(audited, "no rollback in the audit log");
    let line = status(&db);
    assert_eq!(line["share"], 0.0, "{line}");
    assert!(line["rollback_reason"].is_string(), "{line}");
    // The proxies' heartbeats carry their target reads: status shows the
    // error rate the fault caused.
    let rate = eventually(Duration::from_secs(5), || async {
        status(&db)["target_error_rate"]
            .as_f64()
            .is_some_and(|r| r > 0.0)
    })
    .await;
    assert!(rate, "{}", status(&db));

    let announced = eventually(Duration::from_secs(5), || async {
        hook.bodies()
            .iter()
            .any(|b| b["kind"] == "rollback" && b["migration"] == "api")
    })
    .await;
    assert!(announced, "no rollback posted: {:?}", hook.bodies());
    for proxy in &proxies {
        proxy.drain().await;
    }
    db.drop().await;
}

/// A proxy on the test's configuration, its tables loaded.
async fn start(db: &Db) -> Running {
    super::proxies::start(db.config(), "api").await
}

/// The target's share of `api`'s reads in the proxy's routing, in basis
/// points.
fn share(proxy: &Running) -> u32 {
    proxy
        .shared
        .routing()
        .migration("api")
        .map_or(0, |m| m.target_share())
}

/// Reads of `api` the proxy sent to the target since it started.
fn target_reads(proxy: &Running) -> u64 {
    proxy.shared.guards.reads("api")[0]
}

/// The `path` of key `id`, read through the proxy.
async fn read(client: &mut Through, id: i64) -> Result<Option<String>, String> {
    client
        .text(&format!("SELECT path FROM api WHERE id = {id}"))
        .await
}

/// Reads every key in turn until `stop`, counting reads that failed or
/// returned the wrong row; returns how many it made.
async fn read_until(mut client: Through, stop: Arc<AtomicBool>, failed: Arc<AtomicU64>) -> u64 {
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = 1 + (reads as i64) % (ROWS - super::harness::DELETED);
        if read(&mut client, id).await != Ok(Some(format!("/v1/r{id}"))) {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        reads += 1;
    }
    reads
}
