//! A write switch that runs out of its budget (2 s) aborts cleanly: a
//! transaction on the source began before the proxies held writes and
//! stays open past the budget, so the switch cannot know the source is
//! quiet. The phase stays reads_on_target, writes are not held, the audit
//! log says why, and the transaction still commits with its rows; once it
//! is done the same switch goes through.
//!
//! The fence only waits for transactions when a proxy is live, and the
//! readiness gate of this release stays closed while one is (see
//! `executor/gates.rs`), so the proxy here is the store's view of one: a
//! trigger heartbeats it, acknowledging the hold's epoch, in the very
//! transaction that stores the hold, as a proxy following the store would
//! a moment later.

use mysql_async::prelude::Queryable;

use super::harness::servers::{my, pg};
use super::harness::{code, err, out};
use super::{expect, status, to_reads_on_target, Db, Engine};

/// Rows the held transaction writes.
const HELD: i64 = 3;

pub async fn a_switch_past_its_budget_aborts_and_loses_nothing(engine: Engine) {
    let db = Db::create(engine, "budget").await;
    to_reads_on_target(&db);
    db.exec(&proxy_acknowledging_every_hold(engine)).await;
    let epoch = status(&db)["epoch"].as_u64().unwrap();

    let held = Held::begin(&db).await;
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
    let why = db
        .int(
            "SELECT count(*) FROM switchyard_events WHERE migration = 'api' \
             AND action = 'switch_aborted' AND reason LIKE '%after 2000 ms%transaction%'",
        )
        .await;
    assert_eq!(why, 1, "the audit log says why");

    // Nothing is lost: the transaction commits, and its rows are there.
    held.commit().await;
    assert_eq!(
        db.int("SELECT count(*) FROM api WHERE path LIKE '/held/%'")
            .await,
        HELD
    );
    // Written without a proxy, they wait in the repair queue.
    expect(&db, &["repair", "api", "--queue"], 0);
    assert_eq!(db.differences().await, 0);

    // With the transaction gone, the same switch goes through.
    db.exec(&["DELETE FROM switchyard_proxy_stats"]).await;
    expect(&db, &["advance", "api", "--min-samples", "0"], 0);
    let line = status(&db);
    assert_eq!(line["phase"], "write_switch", "{line}");
    assert_eq!(line["holding_writes"], false, "{line}");
    db.drop().await;
}

/// A trigger that heartbeats a proxy `test-proxy` enforcing the epoch of
/// every stored hold of writes, from the moment it is stored.
fn proxy_acknowledging_every_hold(engine: Engine) -> Vec<&'static str> {
    match engine {
        Engine::Pg => vec![
            "CREATE FUNCTION test_proxy_ack() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO switchyard_proxy_stats (migration, proxy, epoch, enforced_since, heartbeat_at) \
             VALUES (NEW.migration, 'test-proxy', NEW.epoch, clock_timestamp(), clock_timestamp()) \
             ON CONFLICT (migration, proxy) DO UPDATE SET epoch = EXCLUDED.epoch, \
             enforced_since = EXCLUDED.enforced_since, heartbeat_at = EXCLUDED.heartbeat_at; \
             RETURN NULL; END $$",
            "CREATE TRIGGER test_proxy_ack AFTER UPDATE ON switchyard_state FOR EACH ROW \
             WHEN (NEW.holding_writes) EXECUTE FUNCTION test_proxy_ack()",
        ],
        Engine::My => vec![
            "CREATE TRIGGER test_proxy_ack AFTER UPDATE ON switchyard_state FOR EACH ROW \
             INSERT INTO switchyard_proxy_stats (migration, proxy, epoch, enforced_since, heartbeat_at) \
             SELECT NEW.migration, 'test-proxy', NEW.epoch, NOW(6), NOW(6) FROM DUAL WHERE NEW.holding_writes \
             ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), enforced_since = VALUES(enforced_since), \
             heartbeat_at = VALUES(heartbeat_at)",
        ],
    }
}

/// A transaction on a direct connection that inserted [`HELD`] rows into
/// the source and is still open.
enum Held {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Held {
    async fn begin(db: &Db) -> Held {
        let insert = format!(
            "INSERT INTO api (path, method) VALUES {}",
            (1..=HELD)
                .map(|i| format!("('/held/{i}', 'PUT')"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match db.engine {
            Engine::Pg => {
                let client = pg(&db.name).await;
                client
                    .batch_execute(&format!("BEGIN; {insert}"))
                    .await
                    .unwrap();
                Held::Pg(client)
            }
            Engine::My => {
                let mut conn = my(Some(&db.name)).await;
                conn.query_drop("START TRANSACTION").await.unwrap();
                conn.query_drop(insert).await.unwrap();
                Held::My(conn)
            }
        }
    }

    async fn commit(self) {
        match self {
            Held::Pg(client) => client.batch_execute("COMMIT").await.unwrap(),
            Held::My(mut conn) => {
                conn.query_drop("COMMIT").await.unwrap();
                conn.disconnect().await.unwrap();
            }
        }
    }
}
