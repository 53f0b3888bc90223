//! How fast the guard takes a broken target's reads away: the time from
//! the moment the window first holds a breach (the verdict the guard
//! judges by turns `Breach`) to the moment the routing every session reads
//! its next statement from says the target's share is 0. Run by
//! `benches/rollback.sh`; prints one line per trial and the quantiles.
//!
//! Each trial: readers hammer a migrated table at an immediate target rule
//! through an in-process proxy (PostgreSQL at 127.0.0.1:5432, trust), the
//! target is renamed away, and a probe polls the proxy's state every 100 µs
//! for the two moments. Then the target comes back and a new rule lifts the
//! rollback for the next trial.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_consistency::Verdict;
use switchyard_core::config::{Config, Reads};
use switchyard_proxy::route::routing::RuleOverride;
use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::server;
use tokio_postgres::NoTls;

const DB: &str = "sy_bench_rollback";
const MIGRATION: &str = "bench_rollback";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let readers: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    setup().await?;
    let yaml = format!(
        "listen: {{ postgres: 127.0.0.1:0 }}
users: [{{ name: app, password: \"\", auth: trust }}]
backends:
  pg: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\" }}
routes: {{ postgres: pg }}
migrations:
  - id: {MIGRATION}
    backend: pg
    source: {{ database: {DB}, schema: public, table: api, primary_key: [id] }}
    target: {{ table: api_copy }}
    phase: read_ramp
    reads: {{ strategy: immediate, path: target }}
    rollback: {{ window: 10s, min_samples: 50, max_error_rate: 0.05, max_latency_ratio: 1000 }}
"
    );
    let config = Config::from_yaml(&yaml, Path::new("."), &|_| None)?;
    let running = server::start(config, None, Arc::new(MigrationRouter::default())).await?;
    let shared = running.shared.clone();
    let addr = running.postgres.expect("a PostgreSQL listener");
    wait_ready(&shared).await;
    let direct = connect("127.0.0.1", 5432, "postgres").await?;
    let mut reactions = Vec::new();
    for trial in 1..=trials {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for r in 0..readers {
            let client = connect(&addr.ip().to_string(), addr.port(), "app").await?;
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut id = r as i32;
                while !stop.load(Ordering::Relaxed) {
                    id = id % 1000 + 1;
                    let sql = format!("SELECT id, v FROM api WHERE id = {id}");
                    client.simple_query(&sql).await.expect("reads never fail");
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        direct
            .batch_execute("ALTER TABLE api_copy RENAME TO api_gone")
            .await?;
        let started = Instant::now();
        let mut breach = None;
        let share_zero = loop {
            let routing = shared.routing();
            let m = routing.migration(MIGRATION).expect("the migration");
            if m.target_share() == 0 {
                break Instant::now();
            }
            if breach.is_none() && matches!(shared.guards.verdict(m), Verdict::Breach(_)) {
                breach = Some(Instant::now());
            }
            drop(routing);
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "no rollback within 30 s"
            );
            tokio::time::sleep(Duration::from_micros(100)).await;
        };
        // A probe that saw no breach before the share fell: the guard was
        // faster than one probe interval.
        let reaction = share_zero - breach.unwrap_or(share_zero);
        println!(
            "trial {trial}: break → share 0 in {:.1} ms, breach → share 0 in {:.3} ms",
            (share_zero - started).as_secs_f64() * 1e3,
            reaction.as_secs_f64() * 1e3
        );
        reactions.push(reaction);
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await?;
        }
        direct
            .batch_execute("ALTER TABLE api_gone RENAME TO api_copy")
            .await?;
        lift(&shared);
    }
    reactions.sort();
    let q = |p: f64| reactions[((reactions.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "reaction (breach → share 0) over {} trials: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        reactions.len(),
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        reactions.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    Ok(())
}

async fn connect(host: &str, port: u16, user: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(host)
        .port(port)
        .user(user)
        .dbname(DB)
        .connect(NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn setup() -> anyhow::Result<()> {
    let (admin, connection) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        NoTls,
    )
    .await?;
    tokio::spawn(connection);
    // Two statements: CREATE DATABASE cannot share a transaction.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await?;
    let db = connect("127.0.0.1", 5432, "postgres").await?;
    db.batch_execute(
        "CREATE TABLE api (id int PRIMARY KEY, v text);
         CREATE TABLE api_copy (id int PRIMARY KEY, v text);
         INSERT INTO api SELECT g, 'v' || g FROM generate_series(1, 1000) g;
         INSERT INTO api_copy SELECT * FROM api;",
    )
    .await?;
    Ok(())
}

async fn wait_ready(shared: &switchyard_proxy::state::Shared) {
    while shared
        .routing()
        .migration(MIGRATION)
        .is_none_or(|m| m.table_map.is_none())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An operator's new rule: the same immediate target rule, which lifts the
/// rollback.
fn lift(shared: &switchyard_proxy::state::Shared) {
    let file = shared.snapshot().config.migrations[0].reads.clone();
    let reads: Reads = file.clone();
    shared.publish_routing(|runtime| {
        runtime.overrides.insert(
            MIGRATION.to_string(),
            RuleOverride {
                file,
                reads: Arc::new(reads),
            },
        );
        runtime.rollbacks.remove(MIGRATION);
    });
}
