//! The session's four seams, each proven through the real server: relay
//! untouched, rewritten SQL (also for named statements), the proxy's own
//! statements inside the client's transaction, and a second backend.

use std::sync::Arc;

use switchyard_proxy::route::classify::Statement;
use switchyard_proxy::route::program::{OnError, Part, Program, Sql, Step};
use switchyard_proxy::route::routing::Routing;
use switchyard_proxy::route::{Decision, Plan, Route, SessionFacts};
use tokio_postgres::SimpleQueryMessage;

use crate::common::{self, base_yaml};

/// Decides by markers in the SQL, so each test picks its seam.
struct MarkerRouter;

impl Route for MarkerRouter {
    fn decide(&self, _: &Routing, _: &SessionFacts<'_>, _: &Statement, sql: &str) -> Decision {
        let plan = if sql.contains("/*rewrite*/") {
            Plan::rewrite(sql.replace("'original'", "'rewritten'"))
        } else if sql.contains("/*inject*/") || sql.contains("/*inject-fail*/") {
            let mut plan = Plan::rewrite(sql);
            plan.sql = None;
            let after = if sql.contains("/*inject-fail*/") {
                "SELECT 1/0"
            } else {
                "INSERT INTO audit (note) VALUES ('after')"
            };
            plan.program = Some(Program {
                steps: vec![
                    Step::proxy("INSERT INTO audit (note) VALUES ('before')"),
                    Step::as_sent(),
                    Step::proxy(after),
                ],
            });
            plan.tag = Some("INSERT 0 42".into());
            plan
        } else if sql.contains("/*program*/") {
            // Captures a value, runs the client's statement, writes what it
            // captured, and replaces a failing step with another.
            let mut capture = Step::proxy("SELECT max(id) + 100 FROM t");
            capture.capture = true;
            let mut failing = Step::proxy("INSERT INTO no_such_table VALUES (1)");
            failing.on_error = OnError::Instead(vec![Step::proxy(
                "INSERT INTO audit (note) VALUES ('instead')",
            )]);
            let mut plan = Plan::rewrite(sql);
            plan.sql = None;
            plan.program = Some(Program {
                steps: vec![
                    capture,
                    Step::as_sent(),
                    Step {
                        sql: Sql(vec![
                            Part::Text("INSERT INTO t VALUES ".into()),
                            Part::Rows { step: 0, width: 1 },
                        ]),
                        ..Step::proxy("")
                    },
                    failing,
                ],
            });
            plan
        } else if sql.contains("/*divert*/") {
            Plan::divert("pg2")
        } else {
            return Decision::Relay;
        };
        Decision::Plan(Arc::new(plan))
    }
}

async fn setup(prefix: &str) -> (common::Proxy, String, String) {
    let db = common::create_db(prefix).await;
    let db2 = common::create_db(&format!("{prefix}2")).await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute(
            "CREATE TABLE audit (id serial, note text); CREATE TABLE t (id int primary key)",
        )
        .await
        .unwrap();
    common::direct(&db2)
        .await
        .batch_execute(
            "CREATE TABLE only_in_2 (v text); INSERT INTO only_in_2 VALUES ('from second')",
        )
        .await
        .unwrap();
    let yaml = base_yaml().replace(
        "routes:",
        &format!("  pg2: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\", database: {db2} }}\nroutes:"),
    );
    (common::start(&yaml, Arc::new(MarkerRouter)).await, db, db2)
}

fn command_rows(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

async fn audit_notes(db: &str) -> Vec<String> {
    common::direct(db)
        .await
        .query("SELECT note FROM audit ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn relay_sends_the_clients_bytes_untouched() {
    let (proxy, db, db2) = setup("relay").await;
    let client = proxy.connect(&db).await;
    let text = "SELECT   current_query() /* spacing,\n comments */ ;";
    let got = client.simple_query(text).await.unwrap();
    assert_eq!(first_value(&got).as_deref(), Some(text));
    let row = client
        .query_one("select current_query()  -- extended", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        "select current_query()  -- extended"
    );
    common::drop_db(&db).await;
    common::drop_db(&db2).await;
}

#[tokio::test]
async fn rewrite_replaces_sql_in_simple_and_named_statements() {
    let (proxy, db, db2) = setup("rewrite").await;
    let client = proxy.connect(&db).await;
    let got = client
        .simple_query("SELECT 'original' /*rewrite*/")
        .await
        .unwrap();
    assert_eq!(first_value(&got).as_deref(), Some("rewritten"));

    // tokio-postgres prepares a named statement and binds it repeatedly.
    let stmt = client
        .prepare("SELECT 'original'::text /*rewrite*/, $1::int")
        .await
        .unwrap();
    for n in 0..3 {
        let row = client.query_one(&stmt, &[&n]).await.unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, i32>(1)),
            ("rewritten".to_string(), n)
        );
    }
    // The backend holds it under the proxy's own name, not the client's.
    let names: Vec<String> = client
        .query("SELECT name FROM pg_prepared_statements ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("switchyard_s")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n == "s0"), "{names:?}");
    drop(stmt);
    // Closing the client's statement closes the proxy's.
    client.simple_query("SELECT 1").await.unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'switchyard_s%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    common::drop_db(&db).await;
    common::drop_db(&db2).await;
}

#[tokio::test]
async fn a_program_feeds_captured_rows_forward_and_replaces_a_failed_step() {
    let (proxy, db, db2) = setup("program").await;
    let client = proxy.connect(&db).await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let got = client
        .simple_query("INSERT INTO t VALUES (7) /*program*/")
        .await
        .unwrap();
    assert_eq!(command_rows(&got), vec![1]);
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i32>>();
    // max(id) + 100 was captured before the client's insert, then written.
    assert_eq!(
        ids(direct
            .query("SELECT id FROM t ORDER BY id", &[])
            .await
            .unwrap()),
        vec![1, 7, 101]
    );
    assert_eq!(audit_notes(&db).await, vec!["instead"]);
    // In the client's transaction, its rollback takes all of it; the
    // transaction goes on after the replaced step.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .simple_query("INSERT INTO t VALUES (9) /*program*/")
        .await
        .unwrap();
    let inside: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inside, 5);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        ids(direct
            .query("SELECT id FROM t ORDER BY id", &[])
            .await
            .unwrap()),
        vec![1, 7, 101]
    );
    // The client's own failure is its answer, as the server gave it, and
    // leaves its transaction as that failure alone would.
    let err = client
        .simple_query("INSERT INTO t VALUES (1) /*program*/")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    client.batch_execute("BEGIN").await.unwrap();
    assert!(client
        .simple_query("INSERT INTO t VALUES (1) /*program*/")
        .await
        .is_err());
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
    );
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        ids(direct
            .query("SELECT id FROM t ORDER BY id", &[])
            .await
            .unwrap()),
        vec![1, 7, 101]
    );
    common::drop_db(&db).await;
    common::drop_db(&db2).await;
}

#[tokio::test]
async fn injected_statements_run_inside_the_clients_transaction() {
    let (proxy, db, db2) = setup("inject").await;
    let client = proxy.connect(&db).await;

    // Autocommit, simple protocol: the client sees only its own result,
    // with the tag the plan chose.
    let got = client
        .simple_query("INSERT INTO t VALUES (1) /*inject*/")
        .await
        .unwrap();
    assert_eq!(command_rows(&got), vec![42]);
    assert_eq!(audit_notes(&db).await, vec!["before", "after"]);

    // Extended protocol, with a parameter.
    let n = client
        .execute("INSERT INTO t VALUES ($1) /*inject*/", &[&2i32])
        .await
        .unwrap();
    assert_eq!(n, 42);
    assert_eq!(audit_notes(&db).await.len(), 4);

    // Inside a transaction the client rolls back, the proxy's writes go too.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .simple_query("INSERT INTO t VALUES (3) /*inject*/")
        .await
        .unwrap();
    client
        .execute("INSERT INTO t VALUES ($1) /*inject*/", &[&4i32])
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(audit_notes(&db).await.len(), 4);

    // A failing injected statement fails the client's statement atomically.
    let err = client
        .simple_query("INSERT INTO t VALUES (5) /*inject-fail*/")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    let err = client
        .execute("INSERT INTO t VALUES ($1) /*inject-fail*/", &[&6i32])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO)
    );
    let ids: Vec<i32> = common::direct(&db)
        .await
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2]);
    // The session is still usable afterwards.
    assert_eq!(
        client
            .query_one("SELECT 7", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        7
    );
    common::drop_db(&db).await;
    common::drop_db(&db2).await;
}

#[tokio::test]
async fn divert_sends_a_statement_to_a_second_backend() {
    let (proxy, db, db2) = setup("divert").await;
    let client = proxy.connect(&db).await;
    let got = client
        .simple_query("SELECT v FROM only_in_2 /*divert*/")
        .await
        .unwrap();
    assert_eq!(first_value(&got).as_deref(), Some("from second"));
    let row = client
        .query_one("SELECT v, $1::int FROM only_in_2 /*divert*/", &[&9i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "from second");

    // Inside a transaction on the primary, the diverted read does not end it.
    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (10)")
        .await
        .unwrap();
    let row = client
        .query_one("SELECT v FROM only_in_2 /*divert*/", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "from second");
    client
        .batch_execute("INSERT INTO t VALUES (11); COMMIT")
        .await
        .unwrap();
    let count: i64 = common::direct(&db)
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    // The primary still answers ordinary statements.
    let err = client
        .simple_query("SELECT v FROM only_in_2")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
    );
    common::drop_db(&db).await;
    common::drop_db(&db2).await;
}
