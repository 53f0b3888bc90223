//! A write switch that runs out of its budget (the migration's
//! `switch.budget`, set below the default 2 s) aborts cleanly. Two
//! proxies follow the control store; a client's transaction through one
//! of them wrote the source before the switch held writes and stays open
//! past the budget, so the switch cannot know the source is quiet even
//! though both proxies acknowledged the hold. The phase stays
//! reads_on_target, the proxies release writes, the audit log says why,
//! and the transaction still commits with its rows (mirrored to the
//! target). A write a proxy holds is refused after the same budget. Once
//! the transaction is done the same switch goes through.

use std::time::{Duration, Instant};

use switchyard_core::config::Protocol;
use switchyard_core::store;
use switchyard_proxy::server::Running;

use super::harness::{code, err, out};
use super::proxies::{self, until, Through};
use super::{expect, status, to_reads_on_target, Db, Engine};

/// Rows the held transaction writes.
const HELD: i64 = 3;

/// The budget the configuration gives the switch, in milliseconds: below
/// the default 2 s, so the abort's audit proves the file's value is the
/// one in force. MariaDB's proxies hear of the hold at their next poll of
/// the store (once a second; PostgreSQL's are woken by NOTIFY), so the
/// budget there leaves time for that.
fn budget_ms(engine: Engine) -> u64 {
    match engine {
        Engine::Pg => 500,
        Engine::My => 1_500,
    }
}

/// How long a proxy may take to follow a new stored state.
const FOLLOW: Duration = Duration::from_secs(5);

pub async fn a_switch_past_its_budget_aborts_and_loses_nothing(engine: Engine) {
    let db = Db::create(engine, "budget").await;
    let protocol = match engine {
        Engine::Pg => Protocol::Postgres,
        Engine::My => Protocol::Mysql,
    };
    let budget = budget_ms(engine);
    db.write_config(&db.proxied_yaml(&format!("    switch: {{ budget: {budget}ms }}\n")));
    to_reads_on_target(&db);
    let epoch = status(&db)["epoch"].as_u64().unwrap();
    let proxies = [
        proxies::start(db.config(), "api").await,
        proxies::start(db.config(), "api").await,
    ];
    for proxy in &proxies {
        until(FOLLOW, "the proxy follows the store", || {
            proxies::epoch(proxy, "api") == epoch
        })
        .await;
    }

    // A client's transaction through the first proxy, begun before the
    // switch holds writes and still open when it does.
    let mut held = Through::connect(&proxies[0], protocol, &db.name).await;
    held.text("BEGIN").await.unwrap();
    let insert = format!(
        "INSERT INTO api (path, method) VALUES {}",
        (1..=HELD)
            .map(|i| format!("('/held/{i}', 'PUT')"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    held.text(&insert).await.unwrap();

    let switch = db
        .spawn(&["advance", "api", "--min-samples", "0"])
        .wait_with_output()
        .await
        .unwrap();
    let line = status(&db);
    assert_eq!(
        line["phase"],
        "reads_on_target",
        "{line}\nstdout: {}\nstderr: {}",
        out(&switch),
        err(&switch)
    );
    assert_eq!(line["holding_writes"], false, "{line}");
    // Held, then released: two new epochs, so every proxy sees the release.
    assert_eq!(line["epoch"].as_u64().unwrap(), epoch + 2, "{line}");
    assert!(
        out(&switch).contains("switch_aborted"),
        "the operator is told: {}",
        out(&switch)
    );
    assert_ne!(code(&switch), 0, "an aborted switch is not a success");
    // The fence names the transaction only once every live proxy enforces
    // the hold's epoch: both proxies really acknowledged it.
    let why = db
        .int(&format!(
            "SELECT count(*) FROM switchyard_events WHERE migration = 'api' \
             AND action = 'switch_aborted' AND reason LIKE '%after {budget} ms%transaction%'"
        ))
        .await;
    assert_eq!(why, 1, "the audit log says why: {}", out(&switch));
    for proxy in &proxies {
        let name = proxies::proxy_id(proxy);
        let acknowledged = db
            .int(&format!(
                "SELECT count(*) FROM switchyard_proxy_stats WHERE migration = 'api' \
                 AND proxy = '{name}' AND epoch >= {}",
                epoch + 1
            ))
            .await;
        assert_eq!(acknowledged, 1, "proxy {name} acknowledged the hold");
    }

    // The proxies release writes: one through each goes through at once,
    // where a held one would wait out the budget. (An update of an old
    // row: on MariaDB a new row at the end of the key range would wait for
    // the open transaction's lock on the target's end of range instead.)
    for (i, proxy) in proxies.iter().enumerate() {
        until(FOLLOW, "the proxy follows the release", || {
            proxies::epoch(proxy, "api") == epoch + 2 && !proxies::holding_writes(proxy, "api")
        })
        .await;
        let started = Instant::now();
        let mut client = Through::connect(proxy, protocol, &db.name).await;
        let update = format!("UPDATE api SET method = 'after{i}' WHERE id = {}", 7 + i);
        client.text(&update).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(budget),
            "proxy {i} held a write after the release: {:?}",
            started.elapsed()
        );
    }

    // Nothing is lost: the transaction commits, and its rows are in both
    // tables (the proxy mirrored them in the client's transaction).
    held.text("COMMIT").await.unwrap();
    assert_eq!(
        db.int("SELECT count(*) FROM api WHERE path LIKE '/held/%'")
            .await,
        HELD
    );
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints WHERE endpoint_path LIKE '/held/%'")
            .await,
        HELD
    );
    assert_eq!(db.differences().await, 0);

    drop(held);

    // A proxy holds a write for the same budget, not the default 2 s: the
    // test stores a hold as the controller does and leaves it there.
    store_hold(&db, true).await;
    for proxy in &proxies {
        until(FOLLOW, "the proxy follows the hold", || {
            proxies::holding_writes(proxy, "api")
        })
        .await;
    }
    let started = Instant::now();
    let mut client = Through::connect(&proxies[0], protocol, &db.name).await;
    let refused = client
        .text("UPDATE api SET method = 'late' WHERE id = 9")
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        refused.contains("api") && refused.contains("held"),
        "{refused}"
    );
    assert!(
        waited >= Duration::from_millis(budget - 50) && waited < Duration::from_millis(1_900),
        "a held write waited {waited:?}, the budget is {budget} ms"
    );
    store_hold(&db, false).await;
    for proxy in &proxies {
        until(FOLLOW, "the proxy follows the release", || {
            !proxies::holding_writes(proxy, "api")
        })
        .await;
    }

    // With the transaction gone, the same switch goes through, the
    // proxies acknowledging it.
    expect(&db, &["advance", "api", "--min-samples", "0"], 0);
    let line = status(&db);
    assert_eq!(line["phase"], "write_switch", "{line}");
    assert_eq!(line["holding_writes"], false, "{line}");
    let switched = line["epoch"].as_u64().unwrap();
    for proxy in &proxies {
        until(FOLLOW, "the proxy follows the switch", || {
            proxies::epoch(proxy, "api") == switched
        })
        .await;
    }
    write_through(&proxies[1], protocol, &db.name, "/switched").await;
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints WHERE endpoint_path = '/switched'")
            .await,
        1
    );
    assert_eq!(db.differences().await, 0);
    for proxy in &proxies {
        proxy.drain().await;
    }
    db.drop().await;
}

/// Stores a hold of `api`'s writes (or its release) under a new epoch,
/// as the controller's write switch does, and wakes the proxies.
async fn store_hold(db: &Db, on: bool) {
    let update = format!(
        "UPDATE switchyard_state SET holding_writes = {on}, epoch = epoch + 1 WHERE migration = 'api'"
    );
    match db.engine {
        Engine::Pg => db.exec(&[&update, &store::pg::notify_state("api")]).await,
        Engine::My => db.exec(&[&update]).await,
    }
}

/// Inserts one row with `path` into the source through `proxy`.
async fn write_through(proxy: &Running, protocol: Protocol, db: &str, path: &str) {
    let mut client = Through::connect(proxy, protocol, db).await;
    client
        .text(&format!(
            "INSERT INTO api (path, method) VALUES ('{path}', 'POST')"
        ))
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}
