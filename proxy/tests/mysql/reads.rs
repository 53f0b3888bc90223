//! The read switch end to end on MariaDB: reads of a migrated table follow
//! the rule, the target's rows are marked so the test can tell which path
//! answered, and clients get the source's column names and values in the
//! text and the binary protocol.

use std::collections::BTreeSet;
use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde_json::json;
use switchyard_proxy::route::MigrationRouter;

use crate::common::{self, catalog, Proxy};

const KEYS: u32 = 2_000;

/// Source `api` and target `t_sys_api_endpoints` (two columns renamed,
/// path retyped to varchar, id of type `id_type`), both with every key; the
/// target's rows are marked `tgt`.
pub async fn tables_with(prefix: &str, id_type: &str) -> String {
    let db = common::create_db(prefix).await;
    let mut conn = common::direct(Some(&db)).await;
    conn.query_drop(format!(
        "CREATE TABLE api (id int PRIMARY KEY, path text NOT NULL, method text);
         CREATE TABLE t_sys_api_endpoints (id {id_type} PRIMARY KEY, endpoint_path text NOT NULL, http_method text);"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO api SELECT seq, CONCAT('/p/', seq), 'src' FROM seq_1_to_{KEYS};
         INSERT INTO t_sys_api_endpoints SELECT seq, CONCAT('/p/', seq), 'tgt' FROM seq_1_to_{KEYS};"
    ))
    .await
    .unwrap();
    install_guard(&mut conn, &db, "api_move", "api").await;
    conn.disconnect().await.unwrap();
    db
}

/// The control store and a migration's guard, as `switchyard init` leaves
/// them: the dual write of a mirroring phase learns written keys from it.
pub async fn install_guard(conn: &mut mysql_async::Conn, db: &str, migration: &str, table: &str) {
    use switchyard_core::store::{mysql as store, Guard};
    let key = vec!["id".to_string()];
    let guard = Guard {
        migration,
        store: db,
        schema: db,
        table,
        key: &key,
        on_target: false,
    };
    for sql in store::install(db)
        .into_iter()
        .chain(store::install_guard(&guard))
    {
        conn.query_drop(&sql).await.unwrap();
    }
}

/// The tables with the id widened to bigint on the target.
pub async fn tables(prefix: &str) -> String {
    tables_with(prefix, "bigint").await
}

async fn proxy(db: &str, reads: &str) -> Proxy {
    let yaml = format!(
        "{}
migrations:
  - id: api_move
    backend: my
    source: {{ database: {db}, table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {{ path: endpoint_path, method: http_method }}
    phase: read_ramp
    reads: {reads}
    rollback: {{ max_latency_ratio: 1000 }}
",
        common::base_yaml()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    proxy
}

async fn put_reads(proxy: &Proxy, body: serde_json::Value) {
    let admin = proxy.running.admin.expect("admin listener");
    let (code, text) =
        common::http_put(admin, "/migrations/api_move/reads", &body.to_string()).await;
    assert_eq!(code, 200, "{text}");
}

/// Keys the target answered, one text-protocol read per key.
async fn on_target(conn: &mut Conn) -> BTreeSet<u32> {
    let mut keys = BTreeSet::new();
    for id in 1..=KEYS {
        let row: (u32, String, String) = conn
            .query_first(format!("SELECT id, path, method FROM api WHERE id = {id}"))
            .await
            .unwrap()
            .expect("a row");
        assert_eq!(row.0, id);
        assert_eq!(row.1, format!("/p/{id}"));
        if row.2 == "tgt" {
            keys.insert(id);
        }
    }
    keys
}

fn assert_share(keys: &BTreeSet<u32>, percent: f64) {
    let share = keys.len() as f64 * 100.0 / f64::from(KEYS);
    assert!(
        (share - percent).abs() <= 3.0,
        "{percent}% rule sent {share:.1}% of keys to the target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_by_column_ramps_monotonically() {
    let db = tables("reads_pct").await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 30, sticky_by: \"column:id\" }",
    )
    .await;
    let mut conn = proxy.connect(&db).await;
    assert_share(&on_target(&mut conn).await, 30.0);
    let mut previous = BTreeSet::new();
    for percent in [5, 25, 50] {
        put_reads(
            &proxy,
            json!({"strategy": "percentage", "percent": percent, "sticky_by": "column:id"}),
        )
        .await;
        let now = on_target(&mut conn).await;
        assert_share(&now, f64::from(percent));
        assert!(
            previous.is_subset(&now),
            "a key left the target at {percent}%"
        );
        previous = now;
    }
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

/// One execute of the prepared read; returns the row's marker after
/// checking the source's names and values.
async fn read(conn: &mut Conn, stmt: &mysql_async::Statement, id: u32) -> String {
    let row: mysql_async::Row = conn.exec_first(stmt, (id,)).await.unwrap().unwrap();
    let names: Vec<String> = row
        .columns_ref()
        .iter()
        .map(|c| c.name_str().to_string())
        .collect();
    assert_eq!(names, ["id", "path", "method"]);
    let (got, path, method): (u32, String, String) = mysql_async::from_row(row);
    assert_eq!((got, path.as_str()), (id, format!("/p/{id}").as_str()));
    method
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_follow_a_flip_without_re_preparing() {
    let db = tables_with("reads_flip", "int").await;
    let proxy = proxy(&db, "{ strategy: blue_green, path: source }").await;
    let mut conn = proxy.connect(&db).await;
    let stmt = conn
        .prep("SELECT id, path, method FROM api WHERE id = ?")
        .await
        .unwrap();
    assert_eq!(read(&mut conn, &stmt, 5).await, "src");
    put_reads(&proxy, json!({"strategy": "blue_green", "path": "target"})).await;
    for id in [5, 6, 7] {
        assert_eq!(read(&mut conn, &stmt, id).await, "tgt");
    }
    put_reads(&proxy, json!({"strategy": "blue_green", "path": "source"})).await;
    assert_eq!(read(&mut conn, &stmt, 5).await, "src");
    // The text protocol returns the source's names too, with `*` expanded.
    put_reads(&proxy, json!({"strategy": "immediate", "path": "target"})).await;
    let rows: Vec<mysql_async::Row> = conn.query("SELECT * FROM api WHERE id = 9").await.unwrap();
    let names: Vec<String> = rows[0]
        .columns_ref()
        .iter()
        .map(|c| c.name_str().to_string())
        .collect();
    assert_eq!(names, ["id", "path", "method"]);
    let (id, _, method): (u32, String, String) = mysql_async::from_row(rows[0].clone());
    assert_eq!((id, method.as_str()), (9, "tgt"));
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_user_and_tag_and_transaction_affinity() {
    let db = tables("reads_canary").await;
    let proxy = proxy(
        &db,
        "{ strategy: canary, percent: 0, canary: { users: [app_native], comment_tag: \"switchyard:target\" } }",
    )
    .await;
    let read = "SELECT method FROM api WHERE id = 1";
    let mut plain = proxy.connect(&db).await;
    let method: String = plain.query_first(read).await.unwrap().unwrap();
    assert_eq!(method, "src");
    let tagged: String = plain
        .query_first("/* switchyard:target */ SELECT method FROM api WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tagged, "tgt");
    let mut by_user = proxy
        .try_connect("app_native", "native", Some(&db))
        .await
        .unwrap();
    let method: String = by_user.query_first(read).await.unwrap().unwrap();
    assert_eq!(method, "tgt");

    // In a transaction the first read's path holds, whatever later reads'
    // tags say; a write pins the source.
    plain.query_drop("BEGIN").await.unwrap();
    let first: String = plain.query_first(read).await.unwrap().unwrap();
    let second: String = plain
        .query_first("/* switchyard:target */ SELECT method FROM api WHERE id = 2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("src", "src"));
    plain.query_drop("COMMIT").await.unwrap();
    by_user.query_drop("BEGIN").await.unwrap();
    by_user
        // (Another key: a write in a mirroring phase copies its row to
        // the target, which would then answer 'src' for it too.)
        .query_drop("UPDATE api SET path = path WHERE id = 3")
        .await
        .unwrap();
    let after_write: String = by_user.query_first(read).await.unwrap().unwrap();
    assert_eq!(after_write, "src");
    by_user.query_drop("COMMIT").await.unwrap();
    let again: String = by_user.query_first(read).await.unwrap().unwrap();
    assert_eq!(again, "tgt");
    plain.disconnect().await.unwrap();
    by_user.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retyped_column_reads_from_the_target_in_both_protocols() {
    let db = tables("reads_retype").await;
    let proxy = proxy(&db, "{ strategy: immediate, path: target }").await;
    raw_reads_with_and_without_metadata_caching(&proxy, &db).await;
    let mut conn = proxy.connect(&db).await;
    // Text protocol: the target answers with the source's names, and the
    // widened id decodes to the same value.
    let rows: Vec<mysql_async::Row> = conn.query("SELECT * FROM api WHERE id = 9").await.unwrap();
    let names: Vec<String> = rows[0]
        .columns_ref()
        .iter()
        .map(|c| c.name_str().to_string())
        .collect();
    assert_eq!(names, ["id", "path", "method"]);
    let (id, path, method): (u32, String, String) = mysql_async::from_row(rows[0].clone());
    assert_eq!((id, path.as_str(), method.as_str()), (9, "/p/9", "tgt"));
    // Binary protocol: the target's BIGINT comes back as the source's INT,
    // under the source's column definitions.
    let stmt = conn
        .prep("SELECT id, path, method FROM api WHERE id = ?")
        .await
        .unwrap();
    for id in [9, 10, 9] {
        assert_eq!(read(&mut conn, &stmt, id).await, "tgt");
    }
    let row: mysql_async::Row = conn.exec_first(&stmt, (11,)).await.unwrap().unwrap();
    let types: Vec<_> = row.columns_ref().iter().map(|c| c.column_type()).collect();
    assert_eq!(types[0], mysql_async::consts::ColumnType::MYSQL_TYPE_LONG);
    // A target value the source's INT cannot hold is an error that says so.
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("UPDATE t_sys_api_endpoints SET id = 3000000000 WHERE id = 12")
        .await
        .unwrap();
    let wide = conn
        .prep("SELECT id, path FROM api WHERE id > ? ORDER BY id")
        .await
        .unwrap();
    let err = conn
        .exec::<mysql_async::Row, _, _>(&wide, (2_999_999_999u64,))
        .await
        .unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1264, "{message}");
    assert!(message.contains("cannot hold"), "{message}");
    // The session goes on.
    assert_eq!(read(&mut conn, &stmt, 9).await, "tgt");
    let admin = proxy.running.admin.expect("admin listener");
    let (_, metrics) = common::http_get(admin, "/metrics").await;
    assert!(
        !metrics.contains("switchyard_unroutable_total"),
        "{metrics}"
    );
    direct.disconnect().await.unwrap();
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

/// A client that caches metadata (MariaDB's extension) and one that does
/// not both get the source's INT: four bytes in the row and, whenever
/// definitions are sent, the source's type.
async fn raw_reads_with_and_without_metadata_caching(proxy: &Proxy, db: &str) {
    use mysql_common::constants::ColumnType;
    use mysql_common::io::ParseBuf;
    use mysql_common::packets::Column;
    use mysql_common::proto::MyDeserialize;
    use switchyard_proxy::wire::mysql::handshake::MARIADB_CLIENT_CACHE_METADATA;
    use switchyard_proxy::wire::mysql::message::{COM_STMT_EXECUTE, COM_STMT_PREPARE};
    for ask in [MARIADB_CLIENT_CACHE_METADATA, 0] {
        let mut raw =
            common::RawMy::login_extended(proxy.addr, "app_empty", "", Some(db), ask).await;
        let mut prepare = vec![COM_STMT_PREPARE];
        prepare.extend_from_slice(b"SELECT id, path FROM api WHERE id = ?");
        let prepared = raw.command(&prepare).await;
        assert_eq!(prepared[0][0], 0x00, "{prepared:?}");
        let mut execute = vec![COM_STMT_EXECUTE];
        execute.extend_from_slice(&prepared[0][1..5]);
        // One INT parameter, 9.
        execute.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x03, 0]);
        execute.extend_from_slice(&9i32.to_le_bytes());
        for round in 0..3 {
            let answer = raw.command(&execute).await;
            let definitions = &answer[1..answer.len() - 2];
            for d in definitions {
                let column = Column::deserialize((), &mut ParseBuf(d)).unwrap();
                if column.name_str() == "id" {
                    assert_eq!(column.column_type(), ColumnType::MYSQL_TYPE_LONG);
                }
            }
            // 0x00, the NULL bitmap, a four-byte id, the path.
            let row = &answer[answer.len() - 2];
            assert_eq!(&row[2..6], &9i32.to_le_bytes(), "round {round}: {answer:?}");
            assert_eq!(&row[6..], b"\x04/p/9", "round {round}: {answer:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_name_follows_the_current_database() {
    let db = tables_with("reads_use", "int").await;
    let other = common::create_db("reads_use_other").await;
    let mut direct = common::direct(Some(&other)).await;
    direct
        .query_drop("CREATE TABLE api (id int PRIMARY KEY, path text, method text); INSERT INTO api VALUES (1, '/o/1', 'oth')")
        .await
        .unwrap();
    direct.disconnect().await.unwrap();
    let proxy = proxy(&db, "{ strategy: immediate, path: target }").await;
    let mut conn = proxy.connect(&db).await;
    let read = "SELECT method FROM api WHERE id = 1";
    let got: String = conn.query_first(read).await.unwrap().unwrap();
    assert_eq!(got, "tgt");
    // `USE` moves unqualified names to another database's `api`.
    conn.query_drop(format!("USE {other}")).await.unwrap();
    let got: String = conn.query_first(read).await.unwrap().unwrap();
    assert_eq!(got, "oth");
    // A qualified name is the source wherever the session is.
    let got: String = conn
        .query_first(format!("SELECT method FROM {db}.api WHERE id = 1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "tgt");
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
    common::drop_db(&other).await;
}

/// A transaction ended by a prepared COMMIT ends its affinity: the next
/// transaction's reads follow the rule again, not the last one's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn affinity_ends_with_a_prepared_commit() {
    let db = tables("reads_txend").await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 50, sticky_by: 'column:id' }",
    )
    .await;
    let mut conn = proxy.connect(&db).await;
    let stmt = conn
        .prep("SELECT id, path, method FROM api WHERE id = ?")
        .await
        .unwrap();
    let mut on_target = 0;
    for id in 1..=200u32 {
        // Prepared, as sysbench --db-ps-mode=auto sends them.
        conn.exec_drop("BEGIN", ()).await.unwrap();
        on_target += usize::from(read(&mut conn, &stmt, id).await == "tgt");
        conn.exec_drop("COMMIT", ()).await.unwrap();
    }
    assert!(
        (60..=140).contains(&on_target),
        "{on_target} of 200 transactions read the target at a 50% rule"
    );
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}
