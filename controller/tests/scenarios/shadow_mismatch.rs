//! What the proxies' shadow finds reaches `status`: a proxy compares every
//! routed read with the other path's answer while one target row differs
//! from its source row; the proxies' heartbeats carry the comparisons and
//! the mismatches, and `status` shows them.

use std::time::Duration;

use switchyard_core::config::Protocol;

use super::proxies::Through;
use super::{status, to_read_ramp, Db, Engine};

pub async fn status_shows_the_shadows_mismatches(engine: Engine) {
    let db = Db::create(engine, "shadow").await;
    let protocol = match engine {
        Engine::Pg => Protocol::Postgres,
        Engine::My => Protocol::Mysql,
    };
    // Every read compared, and no mismatch rate rolls the reads back.
    db.write_config(&db.proxied_yaml(
        "    reads: { strategy: percentage, percent: 0, sticky_by: 'column:id', shadow: { percent: 100 } }\n    \
         rollback: { max_mismatch_rate: 1.0, max_latency_ratio: 1000 }\n",
    ));
    to_read_ramp(&db);
    db.exec(&["UPDATE t_sys_api_endpoints SET endpoint_path = '/tampered' WHERE id = 5"])
        .await;
    let proxy = super::proxies::start(db.config(), "api").await;
    let mut client = Through::connect(&proxy, protocol, &db.name).await;
    let started = std::time::Instant::now();
    let seen = loop {
        for id in [5, 6, 7] {
            let _ = client
                .text(&format!("SELECT path FROM api WHERE id = {id}"))
                .await;
        }
        let line = status(&db);
        let found = line["shadow_mismatches"].as_u64().unwrap_or(0) > 0
            && line["shadow_compared"].as_u64().unwrap_or(0) >= 3;
        if found || started.elapsed() > Duration::from_secs(10) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(seen, "{}", status(&db));
    let line = status(&db);
    assert!(
        line["shadow_mismatches"].as_u64() < line["shadow_compared"].as_u64(),
        "only key 5 differs: {line}"
    );
    proxy.drain().await;
    db.drop().await;
}
