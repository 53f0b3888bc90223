//! The session's four seams, each proven through the real server: relay
//! untouched, rewritten SQL (also for prepared statements, whose ids the
//! proxy maps), the proxy's own statements inside the client's transaction
//! with the OK packet adjusted, and a second backend.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use mysql_async::prelude::*;
use switchyard_proxy::route::classify::Statement;
use switchyard_proxy::route::program::{OnError, Part, Program, Sql, Step};
use switchyard_proxy::route::routing::Routing;
use switchyard_proxy::route::{Affected, Decision, Plan, Route, SessionFacts};
use switchyard_proxy::wire::mysql::message::{
    StmtPrepareOk, COM_QUERY, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE,
    COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, CURSOR_TYPE_READ_ONLY,
};

use crate::common::{self, base_yaml, RawMy};

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
                "INSERT INTO no_such_table VALUES (1)"
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
            plan.affected = Some(Affected {
                rows: 42,
                last_insert_id: Some(4242),
            });
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
            Plan::divert("my2")
        } else if sql.contains("/*divert-down*/") {
            Plan::divert("down")
        } else if sql.contains("/*divert-unknown*/") {
            Plan::divert("nowhere")
        } else {
            return Decision::Relay;
        };
        Decision::Plan(Arc::new(plan))
    }
}

async fn setup(prefix: &str) -> (common::Proxy, String, String) {
    let db = common::create_db(prefix).await;
    let db2 = common::create_db(&format!("{prefix}2")).await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT); CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let mut direct2 = common::direct(Some(&db2)).await;
    direct2
        .query_drop("CREATE TABLE only_in_2 (v TEXT); INSERT INTO only_in_2 VALUES ('from second')")
        .await
        .unwrap();
    // A backend nothing listens on: a port just freed.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = base_yaml().replace(
        "routes:",
        &format!("  my2: {{ kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: \"\", database: {db2} }}\n  down: {{ kind: mysql, host: 127.0.0.1, port: {down}, user: root, password: \"\" }}\nroutes:"),
    );
    (common::start(&yaml, Arc::new(MarkerRouter)).await, db, db2)
}

async fn column(db: &str, sql: &str) -> Vec<String> {
    let mut direct = common::direct(Some(db)).await;
    let got: Vec<String> = direct.query(sql).await.unwrap();
    direct.disconnect().await.unwrap();
    got
}

async fn teardown(dbs: &[&str]) {
    for db in dbs {
        common::drop_db(db).await;
    }
}

#[tokio::test]
async fn relay_sends_the_clients_bytes_untouched() {
    let (proxy, db, db2) = setup("relay").await;
    let mut conn = proxy.connect(&db).await;
    let text = "SELECT   INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID() /* spacing,\n comments */";
    let got: Option<String> = conn.query_first(text).await.unwrap();
    assert_eq!(got.as_deref(), Some(text));
    // A relayed prepared statement keeps the server's own id.
    let stmt = conn.prep("SELECT ?  -- relayed").await.unwrap();
    assert!(
        stmt.id() < 0x8000_0000,
        "relayed statement id {}",
        stmt.id()
    );
    let one: Option<i64> = conn.exec_first(&stmt, (1,)).await.unwrap();
    assert_eq!(one, Some(1));
    teardown(&[&db, &db2]).await;
}

#[tokio::test]
async fn rewrite_replaces_sql_in_queries_and_prepared_statements() {
    let (proxy, db, db2) = setup("rewrite").await;
    let mut conn = proxy.connect(&db).await;
    let got: Option<String> = conn
        .query_first("SELECT 'original' /*rewrite*/")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("rewritten"));

    let relayed = conn.prep("SELECT ?").await.unwrap();
    let stmt = conn.prep("SELECT 'original', ? /*rewrite*/").await.unwrap();
    // The client holds the proxy's id; the server's is another.
    assert!(
        stmt.id() >= 0x8000_0000,
        "proxy-owned id expected, got {}",
        stmt.id()
    );
    assert_ne!(stmt.id(), relayed.id());
    for n in 0..50i64 {
        let row: Option<(String, i64)> = conn.exec_first(&stmt, (n,)).await.unwrap();
        assert_eq!(row, Some(("rewritten".to_string(), n)));
        let plain: Option<i64> = conn.exec_first(&relayed, (n,)).await.unwrap();
        assert_eq!(plain, Some(n));
    }
    conn.close(stmt).await.unwrap();
    let closes: Option<(String, u64)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Com_stmt_close'")
        .await
        .unwrap();
    assert_eq!(
        closes.map(|c| c.1),
        Some(1),
        "the close reached the server under its own id"
    );
    teardown(&[&db, &db2]).await;
}

/// Statement commands with ids the client got from the proxy are mapped
/// back: SEND_LONG_DATA, EXECUTE, RESET, FETCH (cursor) and CLOSE.
#[tokio::test]
async fn rewritten_statement_ids_are_mapped_for_every_statement_command() {
    let (proxy, db, db2) = setup("ids").await;
    let mut raw = RawMy::login(proxy.addr, "app_empty", "", Some(&db)).await;
    let mut prepare = BytesMut::new();
    prepare.put_u8(COM_STMT_PREPARE);
    prepare.put_slice(
        b"SELECT CONCAT('original', ?) /*rewrite*/ FROM (SELECT 1 UNION ALL SELECT 2) two",
    );
    raw.send_packet(0, &prepare).await;
    let ok = StmtPrepareOk::parse(&raw.packet().await.unwrap().payload).unwrap();
    assert!(ok.statement_id >= 0x8000_0000);
    assert_eq!((ok.num_params, ok.num_columns), (1, 1));
    // Parameter and column definitions (DEPRECATE_EOF: no EOF packets).
    for _ in 0..2 {
        raw.packet().await.unwrap();
    }
    let id = ok.statement_id.to_le_bytes();

    let mut long_data = vec![COM_STMT_SEND_LONG_DATA];
    long_data.extend_from_slice(&id);
    long_data.extend_from_slice(&0u16.to_le_bytes());
    long_data.extend_from_slice(b"-long");
    raw.send_packet(0, &long_data).await;

    let mut execute = vec![COM_STMT_EXECUTE];
    execute.extend_from_slice(&id);
    execute.push(CURSOR_TYPE_READ_ONLY);
    execute.extend_from_slice(&1u32.to_le_bytes());
    execute.push(0); // NULL bitmap
    execute.push(1); // new params bound
    execute.extend_from_slice(&[0xFC, 0]); // MYSQL_TYPE_BLOB, value from long data
    raw.send_packet(0, &execute).await;
    // Column count, definition, then the terminator with CURSOR_EXISTS.
    let mut packets = Vec::new();
    loop {
        let p = raw.packet().await.unwrap();
        assert_ne!(
            p.payload[0],
            0xFF,
            "execute failed: {}",
            String::from_utf8_lossy(&p.payload)
        );
        let end = p.payload[0] == 0xFE && p.payload.len() < 0xFF_FFFF;
        packets.push(p);
        if end {
            break;
        }
    }
    assert_eq!(packets.len(), 3);

    let mut fetch = vec![COM_STMT_FETCH];
    fetch.extend_from_slice(&id);
    fetch.extend_from_slice(&10u32.to_le_bytes());
    raw.send_packet(0, &fetch).await;
    let mut rows = Vec::new();
    loop {
        let p = raw.packet().await.unwrap();
        assert_ne!(
            p.payload[0],
            0xFF,
            "fetch failed: {}",
            String::from_utf8_lossy(&p.payload)
        );
        if p.payload[0] == 0xFE {
            break;
        }
        rows.push(p.payload.to_vec());
    }
    assert_eq!(rows.len(), 2);
    // Binary row: header, NULL bitmap, then the length-encoded string.
    let value = &rows[0][3..];
    assert_eq!(value, b"rewritten-long");

    let mut reset = vec![COM_STMT_RESET];
    reset.extend_from_slice(&id);
    raw.send_packet(0, &reset).await;
    assert_eq!(
        raw.packet().await.unwrap().payload[0],
        0x00,
        "reset answered OK"
    );

    let mut close = vec![COM_STMT_CLOSE];
    close.extend_from_slice(&id);
    raw.send_packet(0, &close).await;
    // No answer to a close; the next command still works.
    let mut query = vec![COM_QUERY];
    query.extend_from_slice(b"SHOW SESSION STATUS LIKE 'Com_stmt_%'");
    raw.send_packet(0, &query).await;
    let mut text = String::new();
    loop {
        let p = raw.packet().await.unwrap();
        if p.payload[0] == 0xFE && p.payload.len() < 0xFF_FFFF {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&p.payload));
        text.push('\n');
    }
    for counter in [
        "Com_stmt_send_long_data",
        "Com_stmt_execute",
        "Com_stmt_fetch",
        "Com_stmt_reset",
        "Com_stmt_close",
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(counter))
            .unwrap_or_else(|| panic!("{counter} in {text}"));
        assert!(
            line.ends_with("\u{1}1"),
            "{counter} counted once on the server: {line:?}"
        );
    }
    teardown(&[&db, &db2]).await;
}

#[tokio::test]
async fn injected_statements_share_the_clients_transaction() {
    let (proxy, db, db2) = setup("inject").await;
    let mut conn = proxy.connect(&db).await;

    // Autocommit: the proxy wraps the write and its own statements in one
    // transaction; the client sees only its OK, with the plan's numbers.
    conn.query_drop("INSERT INTO t VALUES (1) /*inject*/")
        .await
        .unwrap();
    assert_eq!(
        (conn.affected_rows(), conn.last_insert_id()),
        (42, Some(4242))
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["before", "after"]
    );
    // Not left in a transaction the client did not open.
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_tx, Some(0));

    // Inside the client's transaction: its rollback takes the proxy's rows too.
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO t VALUES (2) /*inject*/")
        .await
        .unwrap();
    assert_eq!(tx.affected_rows(), 42);
    tx.rollback().await.unwrap();
    assert_eq!(
        column(&db, "SELECT CAST(id AS CHAR) FROM t").await,
        vec!["1"]
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["before", "after"]
    );

    // A failing injected statement fails the client's statement, atomically.
    let err = conn
        .query_drop("INSERT INTO t VALUES (3) /*inject-fail*/")
        .await
        .unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1146, "{message}");
    assert!(message.contains("switchyard"), "{message}");
    assert_eq!(
        column(&db, "SELECT CAST(id AS CHAR) FROM t").await,
        vec!["1"]
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["before", "after"]
    );

    // ... also inside a transaction, which goes on without it.
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO t VALUES (4)").await.unwrap();
    assert!(tx
        .query_drop("INSERT INTO t VALUES (5) /*inject-fail*/")
        .await
        .is_err());
    tx.commit().await.unwrap();
    assert_eq!(
        column(&db, "SELECT CAST(id AS CHAR) FROM t ORDER BY id").await,
        vec!["1", "4"]
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["before", "after"]
    );

    // Prepared statements get the same treatment.
    let stmt = conn
        .prep("INSERT INTO t VALUES (?) /*inject*/")
        .await
        .unwrap();
    conn.exec_drop(&stmt, (6,)).await.unwrap();
    assert_eq!(
        (conn.affected_rows(), conn.last_insert_id()),
        (42, Some(4242))
    );
    assert!(
        conn.exec_drop(&stmt, (6,)).await.is_err(),
        "duplicate key: the client's own error"
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["before", "after", "before", "after"]
    );
    teardown(&[&db, &db2]).await;
}

#[tokio::test]
async fn a_program_feeds_captured_rows_forward_and_replaces_a_failed_step() {
    let (proxy, db, db2) = setup("program").await;
    let mut conn = proxy.connect(&db).await;
    common::direct(Some(&db))
        .await
        .query_drop("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // Text and prepared alike: the client sees its own statement's OK.
    conn.query_drop("INSERT INTO t VALUES (7) /*program*/")
        .await
        .unwrap();
    assert_eq!(conn.affected_rows(), 1);
    let stmt = conn
        .prep("INSERT INTO t VALUES (?) /*program*/")
        .await
        .unwrap();
    conn.exec_drop(&stmt, (8,)).await.unwrap();
    assert_eq!(conn.affected_rows(), 1);
    // max(id) + 100 was captured before each client insert, then written.
    assert_eq!(
        column(&db, "SELECT CAST(id AS CHAR) FROM t ORDER BY id").await,
        vec!["1", "7", "8", "101", "201"]
    );
    assert_eq!(
        column(&db, "SELECT note FROM audit ORDER BY id").await,
        vec!["instead", "instead"]
    );
    // In the client's transaction, its rollback takes all of it.
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO t VALUES (9) /*program*/")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        column(&db, "SELECT CAST(count(*) AS CHAR) FROM t").await,
        vec!["5"]
    );
    // The client's own failure is its answer, as the server gave it.
    let err = conn
        .query_drop("INSERT INTO t VALUES (1) /*program*/")
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1062);
    assert_eq!(
        column(&db, "SELECT CAST(count(*) AS CHAR) FROM t").await,
        vec!["5"]
    );
    let in_tx: Option<i64> = conn.query_first("SELECT @@in_transaction").await.unwrap();
    assert_eq!(in_tx, Some(0));
    teardown(&[&db, &db2]).await;
}

#[tokio::test]
async fn divert_runs_a_statement_on_a_second_backend() {
    let (proxy, db, db2) = setup("divert").await;
    let mut conn = proxy.connect(&db).await;
    let got: Option<String> = conn
        .query_first("SELECT v FROM only_in_2 /*divert*/")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("from second"));
    // The primary does not have that table.
    let err = conn
        .query_drop("SELECT v FROM only_in_2")
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1146);
    // Prepared on the second connection, executed there, next to one on the primary.
    let diverted = conn
        .prep("SELECT v FROM only_in_2 WHERE ? = ? /*divert*/")
        .await
        .unwrap();
    let local = conn.prep("SELECT DATABASE()").await.unwrap();
    for _ in 0..3 {
        let v: Option<String> = conn.exec_first(&diverted, (1, 1)).await.unwrap();
        assert_eq!(v.as_deref(), Some("from second"));
        let here: Option<String> = conn.exec_first(&local, ()).await.unwrap();
        assert_eq!(here.as_deref(), Some(db.as_str()));
    }
    teardown(&[&db, &db2]).await;
}

/// A plan whose second backend cannot be had fails that statement with an
/// error naming the backend and the fix; the session, its transaction and
/// the other statements go on.
#[tokio::test]
async fn a_second_backend_that_cannot_be_had_fails_only_the_statement() {
    let (proxy, db, db2) = setup("divertfail").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("BEGIN").await.unwrap();
    conn.query_drop("INSERT INTO t VALUES (1)").await.unwrap();

    let err = conn
        .query_drop("SELECT 1 /*divert-unknown*/")
        .await
        .unwrap_err();
    let (code, state, message) = common::server_error(&err);
    assert_eq!((code, state.as_str()), (1105, "HY000"), "{message}");
    assert!(
        message.contains("`nowhere`") && message.contains("backends:"),
        "{message}"
    );
    let err = conn.prep("SELECT ? /*divert-unknown*/").await.unwrap_err();
    assert_eq!(common::server_error(&err).0, 1105);

    let err = conn
        .query_drop("SELECT 1 /*divert-down*/")
        .await
        .unwrap_err();
    let (code, state, message) = common::server_error(&err);
    assert_eq!((code, state.as_str()), (2003, "08S01"), "{message}");
    assert!(message.contains("`down`"), "{message}");

    // The transaction is still the client's to finish.
    conn.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    conn.query_drop("COMMIT").await.unwrap();
    assert_eq!(
        column(&db, "SELECT id FROM t ORDER BY id").await,
        ["1", "2"]
    );

    // Once a second backend is open, a plan for a third is refused the same way.
    let got: Option<String> = conn
        .query_first("SELECT v FROM only_in_2 /*divert*/")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("from second"));
    let err = conn
        .query_drop("SELECT 1 /*divert-down*/")
        .await
        .unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1105, "{message}");
    assert!(
        message.contains("one second backend at a time"),
        "{message}"
    );
    let got: Option<String> = conn
        .query_first("SELECT v FROM only_in_2 /*divert*/")
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("from second"));
    teardown(&[&db, &db2]).await;
}
