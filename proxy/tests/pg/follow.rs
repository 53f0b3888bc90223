//! Proxies follow the control store: a state the test writes with the
//! store's own SQL reaches two proxies started on one file within two
//! seconds (their `/migrations` and where a read actually goes), both
//! heartbeat its epoch, a rule set through one proxy's admin API reaches
//! the other, and a proxy cut off from its store refuses writes to the
//! migrated table once its lease lapses while other tables keep working.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::config::{Percent, Phase};
use switchyard_core::store::{pg as store, StateRow};
use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::Client;

use crate::common::{self, catalog, http, Proxy};
use crate::reads::{tables, RENAMES};

/// How long a replica may take to follow the store (the issue's bound).
const FOLLOW: Duration = Duration::from_secs(2);

/// `api_move` in `db` on backend `backend`, in `dual_write` by the file.
fn yaml(base: &str, db: &str, backend: &str) -> String {
    format!(
        "{base}
migrations:
  - id: api_move
    backend: {backend}
    source: {{ database: {db}, schema: public, table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {RENAMES}
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

/// Which table answered a read of key 1: `src` or `tgt`.
async fn answered_by(client: &Client) -> String {
    client
        .query_one("SELECT method FROM api WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits until `proxy`'s `/migrations` entry satisfies `wanted`.
async fn until_listed(
    proxy: &Proxy,
    within: Duration,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) {
    common::eventually(within, what, || async {
        let m = http::migration(proxy.admin(), "api_move").await;
        wanted(&m).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_follow_the_store_and_share_a_rule_set_on_one() {
    let db = tables("follow").await;
    let direct = common::direct(&db).await;
    let yaml = yaml(&common::base_yaml(), &db, "pg");
    let proxies = [start(&yaml).await, start(&yaml).await];
    let clients = [proxies[0].connect(&db).await, proxies[1].connect(&db).await];
    for client in &clients {
        assert_eq!(answered_by(client).await, "src");
    }

    // The controller's move, with the store's own statements.
    let rule = r#"{"strategy": "immediate", "path": "target"}"#;
    direct
        .batch_execute(&format!(
            "BEGIN; {}; {}; COMMIT",
            store::init_state("public", &state(Phase::ReadRamp, 3, Some(rule))),
            store::notify_state("api_move")
        ))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    for (proxy, client) in proxies.iter().zip(&clients) {
        until_listed(proxy, FOLLOW, "the stored phase and rule", |m| {
            m["phase"] == "read_ramp" && m["rule_from"] == "store" && m["store"]["epoch"] == 3
        })
        .await;
        assert_eq!(answered_by(client).await, "tgt");
    }
    assert!(started.elapsed() <= FOLLOW + Duration::from_millis(500));

    // Both heartbeat the epoch they enforce.
    let ids: Vec<String> = common::eventually(
        Duration::from_secs(3),
        "two heartbeats of epoch 3",
        || async {
            let rows = direct
                .query(
                    &store::live_proxies("public", "api_move", Duration::from_secs(10)),
                    &[],
                )
                .await
                .unwrap();
            let at_3: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<_, i64>(1) == 3)
                .map(|r| r.get(0))
                .collect();
            (at_3.len() == 2).then_some(at_3)
        },
    )
    .await;
    assert_ne!(ids[0], ids[1], "each proxy has an id of its own");

    // A rule set through the first proxy reaches the second.
    let (code, text) = common::http_put(
        proxies[0].admin(),
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
    assert_eq!(answered_by(&clients[1]).await, "src");
    let actor: String = direct
        .query_one(
            "SELECT actor FROM switchyard_events WHERE action = 'read_rule' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let first = proxies[0].admin().port().to_string();
    assert!(actor.ends_with(&format!(":{first}")), "{actor}");
    // The epoch stays: a rule is not a phase change.
    let epoch: i64 = direct
        .query_one("SELECT epoch FROM switchyard_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(epoch, 3);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_waits_for_the_hold_and_fails_past_the_budget() {
    let db = tables("follow_hold").await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute(&store::init_state(
            "public",
            &state(Phase::ReadsOnTarget, 5, None),
        ))
        .await
        .unwrap();
    let proxy = start(&yaml(&common::base_yaml(), &db, "pg")).await;
    let client = proxy.connect(&db).await;
    until_listed(&proxy, FOLLOW, "epoch 5", |m| m["store"]["epoch"] == 5).await;
    let hold = |on: bool, epoch: u64| {
        let row = StateRow {
            holding_writes: on,
            ..state(Phase::ReadsOnTarget, epoch, None)
        };
        format!(
            "{}; {}",
            store::write_state("public", &row, epoch - 1),
            store::notify_state("api_move")
        )
    };
    direct.batch_execute(&hold(true, 6)).await.unwrap();
    until_listed(&proxy, FOLLOW, "the hold", |m| {
        m["store"]["holding_writes"] == true
    })
    .await;

    // Released within the budget: the write waits, then goes through.
    let started = tokio::time::Instant::now();
    let write = client.execute("UPDATE api SET method = 'held' WHERE id = 7", &[]);
    let release = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        direct.batch_execute(&hold(false, 7)).await.unwrap();
    };
    let (written, ()) = tokio::join!(write, release);
    assert_eq!(written.unwrap(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    // Held past the budget: refused, naming the migration and the hold.
    direct.batch_execute(&hold(true, 8)).await.unwrap();
    until_listed(&proxy, FOLLOW, "the hold", |m| {
        m["store"]["holding_writes"] == true
    })
    .await;
    let started = tokio::time::Instant::now();
    let e = client
        .execute("UPDATE api SET method = 'late' WHERE id = 7", &[])
        .await
        .unwrap_err();
    let text = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(text.contains("api_move") && text.contains("held"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    // Other tables are not held.
    client
        .batch_execute("CREATE TABLE other (id int); INSERT INTO other VALUES (1)")
        .await
        .unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_cut_off_from_its_store_refuses_writes_to_the_migrated_table() {
    let db = tables("follow_lease").await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE other (id int PRIMARY KEY); {}",
            store::init_state("public", &state(Phase::DualWrite, 1, None))
        ))
        .await
        .unwrap();
    // Sessions reach the server directly (`pg`); the migration, and so its
    // store, is reached through a relay the test cuts (`via`).
    let mut relay = common::Forwarder::start("127.0.0.1:5432").await;
    let base = common::base_yaml().replace(
        "routes:",
        &format!(
            "  via: {{ kind: postgres, host: 127.0.0.1, port: {}, user: postgres, password: \"\" }}\nroutes:",
            relay.port
        ),
    );
    let proxy = start(&yaml(&base, &db, "via")).await;
    until_listed(&proxy, FOLLOW, "epoch 1", |m| m["store"]["epoch"] == 1).await;
    let client = proxy.connect(&db).await;
    client
        .execute("UPDATE api SET method = 'before' WHERE id = 3", &[])
        .await
        .unwrap();

    relay.down().await;
    let refusal = common::eventually(Duration::from_secs(12), "the lease to lapse", || async {
        match client
            .execute("UPDATE api SET method = 'cut' WHERE id = 3", &[])
            .await
        {
            Ok(_) => None,
            Err(e) => Some(
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or(e.to_string()),
            ),
        }
    })
    .await;
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
    // Other tables keep working, and so do reads of the migrated one.
    client
        .execute("INSERT INTO other VALUES (1)", &[])
        .await
        .unwrap();
    assert_eq!(answered_by(&client).await, "src");
    let failures = http::counter(
        proxy.admin(),
        "switchyard_store_read_failures_total",
        &[("migration", "api_move")],
    )
    .await;
    assert!(failures > 0);

    // The store answers again: writes go through again.
    relay.up().await;
    common::eventually(
        Duration::from_secs(10),
        "writes after the store is back",
        || async {
            client
                .execute("UPDATE api SET method = 'back' WHERE id = 3", &[])
                .await
                .ok()
        },
    )
    .await;
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_one_proxys_guard_decides_reaches_the_other() {
    let db = tables("follow_rollback").await;
    let direct = common::direct(&db).await;
    let rule = r#"{"strategy": "immediate", "path": "target"}"#;
    direct
        .batch_execute(&store::init_state(
            "public",
            &state(Phase::ReadRamp, 2, Some(rule)),
        ))
        .await
        .unwrap();
    let yaml = yaml(&common::base_yaml(), &db, "pg").replace(
        "rollback: { max_latency_ratio: 1000 }",
        "rollback: { window: 10s, min_samples: 20, max_error_rate: 0.05, max_latency_ratio: 1000 }",
    );
    let proxies = [start(&yaml).await, start(&yaml).await];
    let clients = [proxies[0].connect(&db).await, proxies[1].connect(&db).await];
    for (proxy, client) in proxies.iter().zip(&clients) {
        until_listed(proxy, FOLLOW, "epoch 2", |m| m["store"]["epoch"] == 2).await;
        assert_eq!(answered_by(client).await, "tgt");
    }

    // The target breaks; the first proxy's reads trip its guard.
    direct
        .batch_execute("ALTER TABLE t_sys_api_endpoints RENAME TO t_broken")
        .await
        .unwrap();
    for _ in 0..60 {
        assert_eq!(answered_by(&clients[0]).await, "src");
    }
    until_listed(&proxies[0], FOLLOW, "the guard's rollback", |m| {
        m["rollback"]["reason"] == "error_rate"
    })
    .await;
    direct
        .batch_execute("ALTER TABLE t_broken RENAME TO t_sys_api_endpoints")
        .await
        .unwrap();

    // The second follows from the store, with the first's reason.
    until_listed(&proxies[1], FOLLOW, "the stored rollback", |m| {
        m["rollback"]["reason"] == "control_store"
            && m["target_share_basis_points"] == 0
            && m["store"]["epoch"] == 3
    })
    .await;
    assert_eq!(answered_by(&clients[1]).await, "src");
    let event = direct
        .query_one(
            "SELECT actor, reason, from_phase, to_phase FROM switchyard_events \
             WHERE action = 'rollback'",
            &[],
        )
        .await
        .unwrap();
    let first = proxies[0].admin().port().to_string();
    assert!(event.get::<_, String>(0).ends_with(&format!(":{first}")));
    assert!(event.get::<_, String>(1).starts_with("error_rate"));
    assert_eq!(event.get::<_, String>(3), "read_ramp", "the phase stays");

    // An operator's rule through the second lifts it on the first too.
    let (code, text) =
        common::http_put(proxies[1].admin(), "/migrations/api_move/reads", rule).await;
    assert_eq!(code, 200, "{text}");
    until_listed(&proxies[0], FOLLOW, "the rollback lifted", |m| {
        m["rollback"].is_null() && m["store"]["rollback_reason"].is_null()
    })
    .await;
    assert_eq!(answered_by(&clients[0]).await, "tgt");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_ramp_share_moves_the_proxies_reads() {
    let db = tables("follow_share").await;
    let direct = common::direct(&db).await;
    let yaml = yaml(&common::base_yaml(), &db, "pg");
    let proxy = start(&yaml).await;
    let client = proxy.connect(&db).await;
    // `switchyard ramp` stores a share and no rule: the file's rule at
    // that share is in force.
    for (epoch, share, answer) in [(1, Percent::ZERO, "src"), (2, Percent::FULL, "tgt")] {
        let row = StateRow {
            share,
            ..state(Phase::ReadRamp, epoch, None)
        };
        direct
            .batch_execute(&format!(
                "BEGIN; DELETE FROM switchyard_state; {}; COMMIT",
                store::init_state("public", &row)
            ))
            .await
            .unwrap();
        until_listed(&proxy, FOLLOW, "the stored share", |m| {
            m["store"]["epoch"] == epoch
        })
        .await;
        assert_eq!(answered_by(&client).await, answer, "share {share:?}");
    }
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_write_switch_a_write_of_the_source_lands_in_the_target() {
    let db = tables("follow_switch").await;
    let direct = common::direct(&db).await;
    let proxy = start(&yaml(&common::base_yaml(), &db, "pg")).await;
    let client = proxy.connect(&db).await;
    direct
        .batch_execute(&store::init_state(
            "public",
            &state(Phase::WriteSwitch, 7, None),
        ))
        .await
        .unwrap();
    until_listed(&proxy, FOLLOW, "the write switch", |m| {
        m["phase"] == "write_switch"
    })
    .await;
    // The phase the store set routes the client's write of the source to
    // the target, mirrored back to the source in the same transaction.
    client
        .batch_execute("UPDATE api SET method = 'late' WHERE id = 1")
        .await
        .unwrap();
    let target: String = direct
        .query_one(
            "SELECT http_method FROM t_sys_api_endpoints WHERE id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let source: String = direct
        .query_one("SELECT method FROM api WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((target.as_str(), source.as_str()), ("late", "late"));
    assert_eq!(answered_by(&client).await, "late");
    common::drop_db(&db).await;
}
