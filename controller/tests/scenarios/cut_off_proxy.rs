//! A proxy cut off from the control store while the migration mirrors
//! writes. Two proxies follow the store in dual_write; one reaches the
//! store (its migration's backend) through a relay the test cuts, while
//! its clients still reach the server. Through it, a write of the source
//! is refused once its lease lapses, naming the lease; through the other,
//! writes keep succeeding all along. `advance` to the backfill waits for
//! every live proxy to acknowledge the new epoch: while the cut-off
//! proxy's last heartbeat is recent it gives up naming that proxy, and
//! nothing is copied; once the heartbeat has gone stale the same command
//! copies every row and moves on. The relay back, the proxy follows again
//! and writes through it succeed.
//!
//! And a store that goes silent rather than refusing (a statement that
//! never answers): the proxy refuses writes no later than the controller
//! stops counting it as live, so no fence can open on a proxy that still
//! writes under the phase it left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_core::config::{Config, Protocol};
use switchyard_proxy::server::Running;

use super::forwarder::Forwarder;
use super::harness::{code, err, out};
use super::proxies::{self, eventually, until, Through};
use super::stall::StallingRelay;
use super::{expect, status, Db, Engine};

/// How long a proxy may take to follow a new stored state.
const FOLLOW: Duration = Duration::from_secs(5);

pub async fn a_proxy_cut_off_from_the_store_holds_the_backfill_until_it_is_gone(engine: Engine) {
    let db = Db::create(engine, "cutoff").await;
    let (protocol, server) = match engine {
        Engine::Pg => (Protocol::Postgres, "127.0.0.1:5432"),
        Engine::My => (Protocol::Mysql, "127.0.0.1:3306"),
    };
    db.write_config(&db.proxied_yaml(""));
    expect(&db, &["init"], 0);
    expect(&db, &["advance", "api"], 0);
    let dual_write = status(&db)["epoch"].as_u64().unwrap();

    let mut relay = Forwarder::start(server).await;
    let kept = proxies::start(db.config(), "api").await;
    let cut = proxies::start(through_relay(db.config(), relay.port), "api").await;
    let (kept_id, cut_id) = (proxies::proxy_id(&kept), proxies::proxy_id(&cut));
    for proxy in [&kept, &cut] {
        until(FOLLOW, "the proxy follows dual_write", || {
            proxies::epoch(proxy, "api") == dual_write
        })
        .await;
    }
    write(&cut, protocol, &db.name, "/cut/before")
        .await
        .unwrap();
    let writer = Writer::start(&kept, protocol, &db.name).await;

    // Cut just after its heartbeat, so the heartbeat stays live (5 s)
    // through the whole first advance.
    let beat = heartbeat_ms(&db, &cut_id).await;
    let fresh = eventually(Duration::from_secs(3), || async {
        heartbeat_ms(&db, &cut_id).await > beat
    })
    .await;
    assert!(fresh, "proxy {cut_id} does not heartbeat");
    relay.down().await;

    let fenced = db
        .spawn(&["advance", "api", "--ack-timeout", "2"])
        .wait_with_output()
        .await
        .unwrap();
    let said = format!("{}{}", out(&fenced), err(&fenced));
    assert_eq!(code(&fenced), 2, "{said}");
    assert!(
        said.contains(&format!("proxy `{cut_id}` enforces epoch {dual_write}")),
        "the missing proxy is named: {said}"
    );
    assert!(!said.contains("every chunk copied"), "{said}");
    let line = status(&db);
    assert_eq!(line["phase"], "backfill", "{line}");
    let backfill = line["epoch"].as_u64().unwrap();
    assert!(backfill > dual_write, "{line}");
    assert_eq!(copied(&db).await, 0, "the backfill started: {said}");

    // The cut-off proxy refuses writes of the source once its lease has
    // lapsed, saying so; the other proxy's writes never stopped.
    let refusal = eventually_refused(&cut, protocol, &db.name).await;
    assert!(
        refusal.contains("api") && refusal.contains("lease") && refusal.contains("control store"),
        "{refusal}"
    );
    assert!(writer.written() > 0);
    assert_eq!(writer.failures(), Vec::<String>::new());

    // Once its heartbeat is stale the proxy is not live, and the same
    // command copies every row and moves on.
    let gone = eventually(Duration::from_secs(10), || async {
        let line = status(&db);
        let live = line["proxies"].as_array().cloned().unwrap_or_default();
        !live.iter().any(|p| p["proxy"] == cut_id.as_str())
    })
    .await;
    assert!(gone, "proxy {cut_id} still counts as live: {}", status(&db));
    let copied_all = expect(&db, &["advance", "api"], 0);
    assert!(
        out(&copied_all).contains("every chunk copied"),
        "{}",
        out(&copied_all)
    );
    assert_eq!(status(&db)["phase"], "validate");
    assert!(proxies::epoch(&kept, "api") >= backfill);

    let written = writer.stop().await;
    assert_eq!(written.failures, Vec::<String>::new(), "through {kept_id}");
    assert_eq!(
        db.int("SELECT count(*) FROM api WHERE path LIKE '/kept/%'")
            .await,
        written.rows as i64
    );
    assert_eq!(copied(&db).await, 480, "every original row is copied");
    assert_eq!(db.differences().await, 0);

    // The store back, the proxy follows the current epoch and writes
    // through it succeed again, mirrored.
    relay.up().await;
    let current = status(&db)["epoch"].as_u64().unwrap();
    until(Duration::from_secs(10), "the proxy follows again", || {
        proxies::epoch(&cut, "api") == current
    })
    .await;
    let back = eventually(Duration::from_secs(10), || async {
        write(&cut, protocol, &db.name, "/cut/after").await.is_ok()
    })
    .await;
    assert!(back, "writes through {cut_id} after the store came back");
    assert_eq!(db.differences().await, 0);
    for proxy in [&kept, &cut] {
        proxy.drain().await;
    }
    relay.down().await;
    db.drop().await;
}

pub async fn a_proxy_whose_store_goes_silent_refuses_writes_before_it_stops_counting(
    engine: Engine,
) {
    let db = Db::create(engine, "silent").await;
    let server = match engine {
        Engine::Pg => "127.0.0.1:5432",
        Engine::My => "127.0.0.1:3306",
    };
    db.write_config(&db.proxied_yaml(""));
    expect(&db, &["init"], 0);
    expect(&db, &["advance", "api"], 0);
    let dual_write = status(&db)["epoch"].as_u64().unwrap();
    let relay = StallingRelay::start(server).await;
    let cut = proxies::start(through_relay(db.config(), relay.port), "api").await;
    let cut_id = proxies::proxy_id(&cut);
    until(FOLLOW, "the proxy follows dual_write", || {
        proxies::epoch(&cut, "api") == dual_write
    })
    .await;
    let beat = heartbeat_ms(&db, &cut_id).await;
    let fresh = eventually(Duration::from_secs(3), || async {
        heartbeat_ms(&db, &cut_id).await > beat
    })
    .await;
    assert!(fresh, "proxy {cut_id} does not heartbeat");
    relay.stall();

    // Sample both views until the proxy is gone from the controller's.
    let stalled = Instant::now();
    let lapsed_at = loop {
        // The proxy's view after the controller's: a proxy the controller
        // no longer counts has lapsed by the time `status` returns.
        let line = status(&db);
        let live = line["proxies"].as_array().cloned().unwrap_or_default();
        let counted = live.iter().any(|p| p["proxy"] == cut_id.as_str());
        let lapsed = proxies::lapsed(&cut, "api");
        assert!(
            counted || lapsed,
            "{:?} after the store went silent the controller no longer waits for proxy \
             {cut_id}, which still writes under epoch {dual_write} (its lease has not lapsed)",
            stalled.elapsed()
        );
        if !counted {
            break lapsed;
        }
        assert!(stalled.elapsed() < Duration::from_secs(30), "{line}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(lapsed_at);
    cut.drain().await;
    drop(relay);
    db.drop().await;
}

/// The test's configuration with the migration's backend (so its store
/// and its catalog) reached through the relay on `port`; clients' sessions
/// still reach the server directly.
fn through_relay(mut config: Config, port: u16) -> Config {
    let mut via = config.backends["db"].clone();
    via.port = port;
    config.backends.insert("via".into(), via);
    config.migrations[0].backend = "via".into();
    config
}

/// The proxy's last heartbeat of `api`, in milliseconds since the epoch
/// (0 before the first).
async fn heartbeat_ms(db: &Db, proxy: &str) -> i64 {
    let at = match db.engine {
        Engine::Pg => "(extract(epoch FROM max(heartbeat_at)) * 1000)::bigint",
        Engine::My => "CAST(UNIX_TIMESTAMP(MAX(heartbeat_at)) * 1000 AS SIGNED)",
    };
    db.int(&format!(
        "SELECT coalesce({at}, 0) FROM switchyard_proxy_stats \
         WHERE migration = 'api' AND proxy = '{proxy}'"
    ))
    .await
}

/// Original rows (`/v1/...`) the target holds: only the backfill copies
/// them, since nothing writes them during the test.
async fn copied(db: &Db) -> i64 {
    db.int("SELECT count(*) FROM t_sys_api_endpoints WHERE endpoint_path LIKE '/v1/%'")
        .await
}

/// Inserts one row with `path` into the source through `proxy`.
async fn write(proxy: &Running, protocol: Protocol, db: &str, path: &str) -> Result<(), String> {
    let mut client = Through::connect(proxy, protocol, db).await;
    let insert = format!("INSERT INTO api (path, method) VALUES ('{path}', 'POST')");
    client.text(&insert).await.map(|_| ())
}

/// The error a write of the source through `proxy` gets once its lease
/// lapses (within the lease, 5 s, and a few polls).
async fn eventually_refused(proxy: &Running, protocol: Protocol, db: &str) -> String {
    let mut client = Through::connect(proxy, protocol, db).await;
    for _ in 0..120 {
        if let Err(e) = client
            .text("UPDATE api SET method = 'cut' WHERE id = 3")
            .await
        {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("writes through the cut-off proxy were never refused");
}

/// Inserts `/kept/<n>` rows through one proxy every few milliseconds until
/// stopped, keeping every failure.
struct Writer {
    /// Tells the task to stop.
    stop: Arc<AtomicBool>,
    /// What the task has seen so far.
    seen: Arc<Mutex<Written>>,
    /// The task that writes.
    task: tokio::task::JoinHandle<()>,
}

/// A writer's tally.
#[derive(Clone, Debug, Default)]
struct Written {
    /// Rows inserted.
    rows: u64,
    /// Each failed insert's error.
    failures: Vec<String>,
}

impl Writer {
    async fn start(proxy: &Running, protocol: Protocol, db: &str) -> Writer {
        let mut client = Through::connect(proxy, protocol, db).await;
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Written::default()));
        let (flag, tally) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let insert = format!("INSERT INTO api (path, method) VALUES ('/kept/{n}', 'POST')");
                let result = client.text(&insert).await;
                {
                    let mut tally = tally.lock().unwrap();
                    match result {
                        Ok(_) => tally.rows += 1,
                        Err(e) => tally.failures.push(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Writer { stop, seen, task }
    }

    fn written(&self) -> u64 {
        self.seen.lock().unwrap().rows
    }

    fn failures(&self) -> Vec<String> {
        self.seen.lock().unwrap().failures.clone()
    }

    async fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let written = self.seen.lock().unwrap().clone();
        written
    }
}
