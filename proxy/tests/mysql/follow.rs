//! Proxies follow the control store on MariaDB: a state the test writes
//! with the store's own SQL reaches two proxies within two seconds (their
//! `/migrations` and where a read goes), both heartbeat its epoch, a rule
//! set through one proxy's admin API reaches the other, and a proxy cut off
//! from its store refuses writes to the migrated table once its lease
//! lapses while other tables keep working.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde_json::{json, Value};
use switchyard_core::config::{Percent, Phase};
use switchyard_core::store::{mysql as store, StateRow};
use switchyard_proxy::route::MigrationRouter;

use crate::common::{self, catalog, http, Proxy};
use crate::reads::tables;

/// How long a replica may take to follow the store (the issue's bound).
const FOLLOW: Duration = Duration::from_secs(2);

/// `api_move` in `db` on backend `backend`, in `dual_write` by the file.
fn yaml(base: &str, db: &str, backend: &str) -> String {
    format!(
        "{base}
migrations:
  - id: api_move
    backend: {backend}
    source: {{ database: {db}, table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {{ path: endpoint_path, method: http_method }}
    phase: dual_write
    rollback: {{ max_latency_ratio: 1000 }}
"
    )
}

async fn start(yaml: &str) -> Proxy {
    let proxy = common::start(yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    proxy
}

fn admin(proxy: &Proxy) -> SocketAddr {
    proxy.running.admin.expect("admin listener")
}

fn state(phase: Phase, epoch: u64, read_rule: Option<&str>) -> StateRow<'_> {
    StateRow {
        migration: "api_move",
        phase,
        epoch,
        read_rule,
        share: Percent::ZERO,
        paused: false,
        pending_approval: None,
        holding_writes: false,
        rollback_reason: None,
    }
}

/// Polls `probe` every 25 ms until it returns `Some`, panicking after `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn until_listed(
    proxy: &Proxy,
    within: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) {
    eventually(within, what, || async {
        let m = http::migration(admin(proxy), "api_move").await;
        wanted(&m).then_some(())
    })
    .await;
}

/// Writes the migrated table until the write is refused; the error's text.
async fn until_refused(conn: &mut Conn, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Err(e) = conn
            .query_drop("UPDATE api SET method = 'cut' WHERE id = 3")
            .await
        {
            return e.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease did not lapse in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which table answered a read of key 1: `src` or `tgt`.
async fn answered_by(conn: &mut Conn) -> String {
    conn.query_first("SELECT method FROM api WHERE id = 1")
        .await
        .unwrap()
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_follow_the_store_and_share_a_rule_set_on_one() {
    let db = tables("follow").await;
    let mut direct = common::direct(Some(&db)).await;
    let yaml = yaml(&common::base_yaml(), &db, "my");
    let proxies = [start(&yaml).await, start(&yaml).await];
    let mut conns = [proxies[0].connect(&db).await, proxies[1].connect(&db).await];
    for conn in &mut conns {
        assert_eq!(answered_by(conn).await, "src");
    }

    let rule = r#"{"strategy": "immediate", "path": "target"}"#;
    direct
        .query_drop(store::init_state(
            &db,
            &state(Phase::ReadRamp, 3, Some(rule)),
        ))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for (proxy, conn) in proxies.iter().zip(&mut conns) {
        until_listed(proxy, FOLLOW, "the stored phase and rule", |m| {
            m["phase"] == "read_ramp" && m["rule_from"] == "store" && m["store"]["epoch"] == 3
        })
        .await;
        assert_eq!(answered_by(conn).await, "tgt");
    }
    assert!(started.elapsed() <= FOLLOW + Duration::from_millis(500));

    let live = store::live_proxies(&db, "api_move", Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let ids = loop {
        let rows: Vec<(String, u64)> = direct
            .query_map(live.as_str(), |row: mysql_async::Row| {
                (
                    row.get::<String, _>(0).unwrap(),
                    row.get::<u64, _>(1).unwrap(),
                )
            })
            .await
            .unwrap();
        let at_3: Vec<String> = rows.into_iter().filter(|r| r.1 == 3).map(|r| r.0).collect();
        if at_3.len() == 2 {
            break at_3;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "two heartbeats of epoch 3: {at_3:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(ids[0], ids[1], "each proxy has an id of its own");

    let (code, text) = common::http_put(
        admin(&proxies[0]),
        "/migrations/api_move/reads",
        &json!({"strategy": "immediate", "path": "source"}).to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    until_listed(
        &proxies[1],
        FOLLOW,
        "the rule set on the other proxy",
        |m| m["reads"]["path"] == "source" && m["rule_from"] == "store",
    )
    .await;
    assert_eq!(answered_by(&mut conns[1]).await, "src");
    let actor: Option<String> = direct
        .query_first("SELECT actor FROM switchyard_events WHERE action = 'read_rule' ORDER BY id DESC LIMIT 1")
        .await
        .unwrap();
    let first = admin(&proxies[0]).port().to_string();
    assert!(actor.unwrap().ends_with(&format!(":{first}")));
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cut_off_from_its_store_refuses_writes_to_the_migrated_table() {
    let db = tables("follow_lease").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE other (id int PRIMARY KEY)")
        .await
        .unwrap();
    direct
        .query_drop(store::init_state(&db, &state(Phase::DualWrite, 1, None)))
        .await
        .unwrap();
    // Sessions reach the server directly (`my`); the migration, and so its
    // store, is reached through a relay the test cuts (`via`).
    let mut relay = common::Forwarder::start("127.0.0.1:3306").await;
    let base = common::base_yaml().replace(
        "routes:",
        &format!(
            "  via: {{ kind: mysql, host: 127.0.0.1, port: {}, user: root, password: \"\" }}\nroutes:",
            relay.port
        ),
    );
    let proxy = start(&yaml(&base, &db, "via")).await;
    until_listed(&proxy, FOLLOW, "epoch 1", |m| m["store"]["epoch"] == 1).await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("UPDATE api SET method = 'before' WHERE id = 3")
        .await
        .unwrap();

    relay.down().await;
    let refusal = until_refused(&mut conn, Duration::from_secs(12)).await;
    assert!(
        refusal.contains("api_move")
            && refusal.contains("lease")
            && refusal.contains("control store"),
        "{refusal}"
    );
    until_listed(&proxy, FOLLOW, "the lapsed lease", |m| {
        m["store"]["lease"] == "lapsed"
    })
    .await;
    conn.query_drop("INSERT INTO other VALUES (1)")
        .await
        .unwrap();
    assert_eq!(answered_by(&mut conn).await, "src");

    relay.up().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = conn
        .query_drop("UPDATE api SET method = 'back' WHERE id = 3")
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes after the store is back: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::drop_db(&db).await;
}
