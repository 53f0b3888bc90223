//! Text and binary protocol through the proxy, compared with a direct
//! connection: column types, big values, multi-statements, prepared
//! statements, transactions, KILL, and the simple commands.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::common;

const TYPES_TABLE: &str = r#"
CREATE TABLE t (
  id INT PRIMARY KEY,
  ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
  mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, bu BIGINT UNSIGNED,
  d DECIMAL(20,6), f FLOAT, db DOUBLE,
  dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(3) NULL DEFAULT NULL,
  c CHAR(10), vc VARCHAR(100), tx TEXT, bl BLOB, j JSON,
  b8 BIT(8), yr YEAR, en ENUM('a','b')
)"#;

const TYPES_ROW: &str = r#"
INSERT INTO t VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -12345678901234.123456, 3.25, -2.718281828459045,
  '2024-02-29', '-838:59:59.000001', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.123',
  'fixed', 'vär', REPEAT('text ', 100), X'00FF10', '{"a": [1, 2, {"b": null}]}',
  b'10100101', 2024, 'b'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"#;

fn values(rows: Vec<Row>) -> Vec<Vec<Value>> {
    rows.into_iter().map(Row::unwrap).collect()
}

async fn text_rows(conn: &mut Conn, sql: &str) -> Vec<Vec<Value>> {
    values(conn.query(sql).await.unwrap())
}

async fn binary_rows(conn: &mut Conn, sql: &str) -> Vec<Vec<Value>> {
    values(conn.exec(sql, (0,)).await.unwrap())
}

#[tokio::test]
async fn every_common_type_round_trips_like_a_direct_connection() {
    let db = common::create_db("types").await;
    let mut direct = common::direct(Some(&db)).await;
    direct.query_drop(TYPES_TABLE).await.unwrap();
    direct.query_drop(TYPES_ROW).await.unwrap();
    let proxy = common::start_default().await;
    let mut conn = proxy.connect(&db).await;

    // A row written through the proxy with binary parameters of each type.
    let row3: Vec<Value> = direct
        .exec_first::<Row, _, _>("SELECT * FROM t WHERE id = ?", (1,))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut params = row3.clone();
    params[0] = Value::Int(3);
    let placeholders = vec!["?"; params.len()].join(", ");
    conn.exec_drop(format!("INSERT INTO t VALUES ({placeholders})"), params)
        .await
        .unwrap();

    let text = "SELECT * FROM t ORDER BY id";
    let binary = "SELECT * FROM t WHERE id > ? ORDER BY id";
    let expected_text = text_rows(&mut direct, text).await;
    let expected_binary = binary_rows(&mut direct, binary).await;
    assert_eq!(expected_text.len(), 3);
    assert_eq!(text_rows(&mut conn, text).await, expected_text);
    assert_eq!(binary_rows(&mut conn, binary).await, expected_binary);
    // Row 3 (binary parameters through the proxy) equals row 1.
    assert_eq!(expected_binary[2][1..], expected_binary[0][1..]);

    conn.disconnect().await.unwrap();
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_20_mib_blob_round_trips_both_ways() {
    let db = common::create_db("blob").await;
    let mut direct = common::direct(Some(&db)).await;
    // Payloads over 16 MiB need a larger limit on the server; new sessions
    // pick it up.
    direct
        .query_drop("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
        .await
        .unwrap();
    direct
        .query_drop("CREATE TABLE b (id INT PRIMARY KEY, v LONGBLOB)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let mut conn = proxy.connect(&db).await;

    let blob: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    conn.exec_drop("INSERT INTO b VALUES (?, ?)", (1, blob.clone()))
        .await
        .unwrap();
    // The text protocol: the blob in the SQL text, a 40 MiB hex literal.
    let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
    conn.query_drop(format!("INSERT INTO b VALUES (2, x'{hex}')"))
        .await
        .unwrap();

    let md5_direct: Vec<String> = direct
        .query("SELECT MD5(v) FROM b ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        md5_direct[0], md5_direct[1],
        "both inserts stored the same bytes"
    );
    let text: Vec<Vec<u8>> = conn.query("SELECT v FROM b ORDER BY id").await.unwrap();
    let binary: Vec<Vec<u8>> = conn
        .exec("SELECT v FROM b WHERE id > ? ORDER BY id", (0,))
        .await
        .unwrap();
    for got in text.iter().chain(&binary) {
        assert_eq!(got.len(), blob.len());
        assert!(*got == blob, "blob bytes differ");
    }
    conn.disconnect().await.unwrap();
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn multi_statement_queries_return_every_result_set() {
    let proxy = common::start_default().await;
    let db = common::create_db("multi").await;
    let mut conn = proxy.connect(&db).await;
    let mut result = conn
        .query_iter("CREATE TABLE m (v INT); INSERT INTO m VALUES (1), (2); SELECT v FROM m ORDER BY v; SELECT 'x', 'y'; DO 1")
        .await
        .unwrap();
    let mut sets = Vec::new();
    while !result.is_empty() {
        let rows: Vec<Row> = result.collect().await.unwrap();
        sets.push((values(rows), result.affected_rows()));
    }
    drop(result);
    let rows: Vec<Vec<Vec<Value>>> = sets.iter().map(|(r, _)| r.clone()).collect();
    assert!(
        rows.contains(&vec![
            vec![Value::Bytes(b"1".to_vec())],
            vec![Value::Bytes(b"2".to_vec())]
        ]),
        "{rows:?}"
    );
    assert!(
        rows.contains(&vec![vec![
            Value::Bytes(b"x".to_vec()),
            Value::Bytes(b"y".to_vec())
        ]]),
        "{rows:?}"
    );
    // An error in the middle ends the batch and the connection goes on.
    let err = conn
        .query_drop("SELECT 1; SELECT * FROM no_such_table; SELECT 3")
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1146);
    let one: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn prepared_statements_are_reused_and_closed() {
    let proxy = common::start_default().await;
    let db = common::create_db("prep").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("CREATE TABLE p (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    let insert = conn.prep("INSERT INTO p VALUES (?, ?)").await.unwrap();
    let select = conn.prep("SELECT v FROM p WHERE id = ?").await.unwrap();
    for i in 0..200 {
        conn.exec_drop(&insert, (i, format!("v{i}"))).await.unwrap();
        let v: Option<String> = conn.exec_first(&select, (i,)).await.unwrap();
        assert_eq!(v, Some(format!("v{i}")));
    }
    conn.close(insert).await.unwrap();
    conn.close(select).await.unwrap();
    let status: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Com_stmt_close', 'Com_stmt_execute', 'Com_stmt_prepare')")
        .await
        .unwrap();
    let get = |name: &str| {
        status
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.parse::<u64>().unwrap())
    };
    assert_eq!(get("Com_stmt_prepare"), Some(2));
    assert_eq!(get("Com_stmt_execute"), Some(400));
    assert_eq!(get("Com_stmt_close"), Some(2));
    // Statements with errors: the client sees the server's error.
    let err = conn
        .prep("SELECT * FROM nowhere WHERE id = ?")
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1146);
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn transactions_commit_and_roll_back() {
    let proxy = common::start_default().await;
    let db = common::create_db("tx").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("CREATE TABLE x (v INT) ENGINE=InnoDB")
        .await
        .unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO x VALUES (1)").await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.exec_drop("INSERT INTO x VALUES (?)", (2,))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut direct = common::direct(Some(&db)).await;
    let got: Vec<i32> = direct.query("SELECT v FROM x").await.unwrap();
    assert_eq!(got, vec![2]);
    conn.disconnect().await.unwrap();
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn kill_query_with_the_proxy_connection_id_cancels_a_sleep() {
    let proxy = common::start_default().await;
    let db = common::create_db("kill").await;
    let mut sleeper = proxy.connect(&db).await;
    let mut killer = proxy.connect(&db).await;
    let id = sleeper.id();
    // The id the client sees is the proxy's, not the backend's thread id.
    let backend_thread: u32 = sleeper
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let proxy_ids: Vec<u32> = vec![id, killer.id()];
    assert!(proxy_ids[0] != proxy_ids[1]);
    let started = Instant::now();
    let sleep = tokio::spawn(async move {
        let result: mysql_async::Result<Option<i64>> =
            sleeper.query_first("SELECT SLEEP(30)").await;
        (result, sleeper)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    killer.query_drop(format!("KILL QUERY {id}")).await.unwrap();
    let (result, mut sleeper) = tokio::time::timeout(Duration::from_secs(5), sleep)
        .await
        .expect("the sleep was cut short")
        .unwrap();
    match result {
        Ok(v) => assert_eq!(v, Some(1), "MariaDB returns 1 from a killed SLEEP"),
        Err(e) => assert_eq!(common::server_error(&e).0, 1317),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The session survives a KILL QUERY.
    let again: u32 = sleeper
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, backend_thread);
    // Unknown ids are the server's business: it says so.
    let err = killer
        .query_drop("KILL QUERY 4000000000")
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1094);
    sleeper.disconnect().await.unwrap();
    killer.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn ping_reset_and_change_user_work() {
    let proxy = common::start_default().await;
    let db = common::create_db("cmds").await;
    let mut conn = proxy.connect(&db).await;
    conn.ping().await.unwrap();
    conn.query_drop("SET @marker = 42").await.unwrap();
    let stmt = conn.prep("SELECT ?").await.unwrap();
    assert!(
        conn.reset().await.unwrap(),
        "COM_RESET_CONNECTION is supported"
    );
    let marker: Option<Option<i64>> = conn.query_first("SELECT @marker").await.unwrap();
    assert_eq!(marker, Some(None), "the reset cleared the session");
    drop(stmt);

    conn.change_user(
        mysql_async::ChangeUserOpts::default()
            .with_user(Some("app_native".into()))
            .with_pass(Some("native".into()))
            .with_db_name(Some(db.clone())),
    )
    .await
    .unwrap();
    let current: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(current.as_deref(), Some(db.as_str()));
    // The proxy id stays; KILL QUERY of it still reaches the new backend thread.
    let mut other = proxy.connect(&db).await;
    other
        .query_drop(format!("KILL QUERY {}", conn.id()))
        .await
        .unwrap();
    conn.ping().await.unwrap();

    let err = conn
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some("app_native".into()))
                .with_pass(Some("wrong".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(common::server_error(&err).0, 1045);
    other.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn simple_commands_are_relayed() {
    use switchyard_proxy::wire::mysql::message::{
        COM_BINLOG_DUMP, COM_FIELD_LIST, COM_INIT_DB, COM_PING, COM_SET_OPTION, COM_STATISTICS,
    };
    let proxy = common::start_default().await;
    let db = common::create_db("simple").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE fl (a INT, b TEXT)")
        .await
        .unwrap();
    let mut raw = common::RawMy::login(proxy.addr, "app_empty", "", None).await;

    let mut init_db = vec![COM_INIT_DB];
    init_db.extend_from_slice(db.as_bytes());
    assert_eq!(
        raw.command(&init_db).await[0][0],
        0x00,
        "COM_INIT_DB answers OK"
    );
    // COM_FIELD_LIST: one definition per column, then the terminator.
    let fields = raw.command(&[COM_FIELD_LIST, b'f', b'l', 0]).await;
    assert_eq!(fields.len(), 3, "{fields:?}");
    let stats = raw.command(&[COM_STATISTICS]).await;
    assert!(
        String::from_utf8_lossy(&stats[0]).contains("Uptime"),
        "{stats:?}"
    );
    // MYSQL_OPTION_MULTI_STATEMENTS_OFF, then ON: a bare EOF / OK each.
    for option in [1u8, 0] {
        let answer = raw.command(&[COM_SET_OPTION, option, 0]).await;
        assert_ne!(answer[0][0], 0xFF, "{answer:?}");
    }
    assert_eq!(raw.command(&[COM_PING]).await[0][0], 0x00);
    raw.send_packet(0, &[COM_BINLOG_DUMP, 4, 0, 0, 0]).await;
    let refused = raw.packet().await.unwrap();
    let (code, _, message) = common::err_fields(&refused.payload);
    assert_eq!(code, 1047, "{message}");
    // Still in step after all that.
    let mut query = vec![switchyard_proxy::wire::mysql::message::COM_QUERY];
    query.extend_from_slice(b"SELECT DATABASE()");
    let rows = raw.command(&query).await;
    assert!(rows.iter().any(|p| p.ends_with(db.as_bytes())), "{rows:?}");
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

/// MariaDB's metadata caching (MARIADB_CLIENT_CACHE_METADATA) passes through
/// when the client asks for it: executes come without column definitions
/// until the table changes, and the session stays in step. A client that
/// does not ask gets the definitions every time.
#[tokio::test]
async fn mariadb_metadata_caching_is_negotiated_end_to_end() {
    use switchyard_proxy::wire::mysql::handshake::{
        CLIENT_LONG_PASSWORD, MARIADB_CLIENT_CACHE_METADATA,
    };
    use switchyard_proxy::wire::mysql::message::{COM_QUERY, COM_STMT_EXECUTE, COM_STMT_PREPARE};
    let proxy = common::start_default().await;
    let db = common::create_db("cachemeta").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(20)); INSERT INTO t VALUES (7, 'seven')")
        .await
        .unwrap();
    let server_has_it = common::RawMy::open(proxy.addr)
        .await
        .greeting
        .mariadb_capabilities
        & MARIADB_CLIENT_CACHE_METADATA
        != 0;
    let version: String = direct
        .query_first("SELECT VERSION()")
        .await
        .unwrap()
        .unwrap();
    assert!(
        server_has_it || !version.contains("MariaDB"),
        "a MariaDB backend ({version}) announces metadata caching, so the proxy offers it"
    );

    for ask in [MARIADB_CLIENT_CACHE_METADATA, 0] {
        let mut raw =
            common::RawMy::login_extended(proxy.addr, "app_empty", "", Some(&db), ask).await;
        let caching = raw.mariadb_capabilities != 0;
        assert_eq!(caching, ask != 0 && server_has_it);
        assert_eq!(
            raw.greeting.capabilities & CLIENT_LONG_PASSWORD == 0,
            server_has_it,
            "the greeting clears CLIENT_MYSQL exactly when it offers extended flags"
        );
        let mut prepare = vec![COM_STMT_PREPARE];
        prepare.extend_from_slice(b"SELECT id, name FROM t WHERE id = ?");
        let prepared = raw.command(&prepare).await;
        assert_eq!(prepared[0][0], 0x00, "{prepared:?}");
        let id = &prepared[0][1..5];
        // One BIGINT parameter, 7.
        let mut execute = vec![COM_STMT_EXECUTE];
        execute.extend_from_slice(id);
        execute.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x08, 0]);
        execute.extend_from_slice(&7i64.to_le_bytes());
        for round in 0..4 {
            if round == 2 {
                // Changed metadata is sent again, with the flag set.
                direct
                    .query_drop(format!(
                        "ALTER TABLE t MODIFY name VARCHAR({})",
                        if caching { 30 } else { 20 }
                    ))
                    .await
                    .unwrap();
            }
            let answer = raw.command(&execute).await;
            // The prepare answer carried the definitions already.
            let expected_count = match (caching, round) {
                (false, _) => vec![2],
                (true, 2) => vec![2, 1],
                (true, _) => vec![2, 0],
            };
            assert_eq!(answer[0], expected_count, "round {round}: {answer:?}");
            let definitions = if expected_count.last() == Some(&0) {
                0
            } else {
                2
            };
            // Column count, definitions, one row, the terminator.
            assert_eq!(
                answer.len(),
                1 + definitions + 2,
                "round {round}: {answer:?}"
            );
            assert!(
                answer[answer.len() - 2].ends_with(b"seven"),
                "round {round}: {answer:?}"
            );
        }
        // Text results carry the flag too, and the session is in step.
        let mut query = vec![COM_QUERY];
        query.extend_from_slice(b"SELECT name FROM t");
        let rows = raw.command(&query).await;
        assert_eq!(
            rows[0],
            if caching { vec![1, 1] } else { vec![1] },
            "{rows:?}"
        );
        assert!(rows.iter().any(|p| p.ends_with(b"seven")), "{rows:?}");
    }
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}
