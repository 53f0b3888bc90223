//! The control store and the row-image sync against the real MariaDB:
//! the store's DDL installs twice, the guard's triggers queue exactly the
//! keys of the writes the proxy did not mirror (and, as InnoDB fires no
//! trigger for a cascade, none of a cascade's), and the sync's statements
//! make the chosen target rows equal to the source's mapped rows, checked
//! with the test's own SQL.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use switchyard_core::store::{self, mysql, Guard};
use switchyard_proxy::catalog::mapping::Mapping;
use switchyard_proxy::mirror::sync::{Direction, RowSync};
use switchyard_proxy::route::classify::Dialect;

use crate::common;

#[path = "../support/mapping.rs"]
mod mapping;

const MIGRATION: &str = "orders_v2";

/// `tenants(name)` and `orders(tenant, id, note)` keyed by (tenant, id),
/// each order cascading from its tenant.
const ORDERS: [&str; 3] = [
    "CREATE TABLE tenants (name varchar(32) PRIMARY KEY) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE orders (
        tenant varchar(32), id int, note text, PRIMARY KEY (tenant, id),
        FOREIGN KEY (tenant) REFERENCES tenants (name) ON DELETE CASCADE
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "INSERT INTO tenants VALUES ('acme'), ('beta')",
];

fn key() -> Vec<String> {
    vec!["tenant".to_string(), "id".to_string()]
}

fn guard<'a>(db: &'a str, key: &'a [String]) -> Guard<'a> {
    Guard {
        migration: MIGRATION,
        store: db,
        schema: db,
        table: "orders",
        key,
        on_target: false,
    }
}

/// Runs `statements` one by one.
async fn run(conn: &mut Conn, statements: &[String]) {
    for sql in statements {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Runs `statements` in one transaction.
async fn run_in_transaction(conn: &mut Conn, statements: &[String]) {
    conn.query_drop("START TRANSACTION").await.unwrap();
    run(conn, statements).await;
    conn.query_drop("COMMIT").await.unwrap();
}

/// A fresh database with [`ORDERS`], the store and the guard on `orders`.
async fn guarded(prefix: &str) -> (String, Conn) {
    let db = common::create_db(prefix).await;
    let mut conn = common::direct(Some(&db)).await;
    for sql in ORDERS {
        conn.query_drop(sql).await.unwrap();
    }
    let key = key();
    run(&mut conn, &mysql::install(&db)).await;
    run(&mut conn, &mysql::install_guard(&guard(&db, &key))).await;
    (db, conn)
}

/// Every key queued for this migration, with its source, in queue order.
async fn queued(conn: &mut Conn) -> Vec<(String, String)> {
    conn.exec(
        "SELECT `key`, `source` FROM switchyard_repair_queue WHERE migration = ? ORDER BY id",
        (MIGRATION,),
    )
    .await
    .unwrap()
}

fn entries(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

#[tokio::test]
async fn store_and_guard_install_twice() {
    let (db, mut conn) = guarded("store_twice").await;
    let key = key();
    run(&mut conn, &mysql::install(&db)).await;
    run(&mut conn, &mysql::install_guard(&guard(&db, &key))).await;
    let version: Vec<u32> = conn.query(mysql::version_query(&db)).await.unwrap();
    assert_eq!(version, [store::STORE_VERSION]);
    let triggers: Option<i64> = conn
        .exec_first(
            "SELECT count(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = 'orders'",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(triggers, Some(3));
    conn.query_drop("INSERT INTO orders VALUES ('acme', 1, 'one')")
        .await
        .unwrap();
    assert_eq!(
        queued(&mut conn).await,
        entries(&[(r#"["acme", "1"]"#, "direct_client")])
    );
    run(&mut conn, &mysql::drop_guard(&guard(&db, &key))).await;
    run(&mut conn, &mysql::drop_guard(&guard(&db, &key))).await;
    conn.query_drop("INSERT INTO orders VALUES ('acme', 2, 'two')")
        .await
        .unwrap();
    assert_eq!(queued(&mut conn).await.len(), 1, "no guard, no key");
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn guard_queues_the_writes_it_did_not_see_mirrored() {
    let (db, mut conn) = guarded("store_guard").await;
    for sql in [
        "INSERT INTO orders VALUES ('acme', 1, 'one')",
        "UPDATE orders SET note = 'uno' WHERE id = 1",
        "UPDATE orders SET id = 2 WHERE id = 1",
        // Only the case of the key changes: another key to the queue.
        "UPDATE orders SET tenant = 'ACME' WHERE id = 2",
        "DELETE FROM orders WHERE id = 2",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    // The proxy's own mirrored write for this migration: nothing queued,
    // and the write after the marker's reset is queued again.
    let s = |v: &str| v.to_string();
    run_in_transaction(
        &mut conn,
        &[
            mysql::mark_mirrored(MIGRATION),
            s("INSERT INTO orders VALUES ('acme', 10, 'mirrored')"),
            mysql::unmark_mirrored(),
            s("INSERT INTO orders VALUES ('acme', 11, 'after')"),
        ],
    )
    .await;
    // Marked for another migration: still this one's to repair.
    run(
        &mut conn,
        &[
            mysql::mark_mirrored("other_migration"),
            s("INSERT INTO orders VALUES ('beta', 12, 'x')"),
            mysql::unmark_mirrored(),
        ],
    )
    .await;
    // Relayed by the proxy unmirrored.
    run(
        &mut conn,
        &[
            mysql::mark_proxy_session(),
            s("INSERT INTO orders VALUES ('beta', 13, 'y')"),
            s("SET @switchyard_proxy = NULL"),
        ],
    )
    .await;
    // InnoDB fires no trigger for a cascade: the guard cannot see it.
    conn.query_drop("DELETE FROM tenants WHERE name = 'beta'")
        .await
        .unwrap();
    let left: Vec<(String, i32)> = conn
        .query("SELECT tenant, id FROM orders ORDER BY id")
        .await
        .unwrap();
    assert_eq!(left, [(s("acme"), 10), (s("acme"), 11)]);
    assert_eq!(
        queued(&mut conn).await,
        entries(&[
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "2"]"#, "direct_client"),
            (r#"["acme", "2"]"#, "direct_client"),
            (r#"["ACME", "2"]"#, "direct_client"),
            (r#"["ACME", "2"]"#, "direct_client"),
            (r#"["acme", "11"]"#, "direct_client"),
            (r#"["beta", "12"]"#, "direct_client"),
            (r#"["beta", "13"]"#, "proxy_unparsed"),
        ])
    );
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

/// `orders(tenant, id, note, qty)` and its target `orders_v2`, with `note`
/// renamed to `remark`, `id` and `qty` widened and a column of its own:
/// rows the target lacks, a stale one whose key differs only in case, an
/// extra one, and two rows no test key names.
const SYNC_TABLES: [&str; 4] = [
    "CREATE TABLE orders (tenant varchar(32), id int, note text, qty int, PRIMARY KEY (tenant, id))
     ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE orders_v2 (
        tenant varchar(64), id bigint, remark text, qty bigint, extra varchar(8) DEFAULT 'new',
        PRIMARY KEY (tenant, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    r"INSERT INTO orders VALUES ('acme', 1, 'a', 1), ('acme', 2, 'b', 2), ('o''brien\\', 3, 'c', 3),
        ('é', 4, 'd', 4), ('007', 5, 'e', 5), ('zeta', 6, 'f', 6)",
    "INSERT INTO orders_v2 VALUES ('ACME', 1, 'stale', 0, 'old'), ('acme', 9, 'extra', 9, 'old'),
        ('zeta', 6, 'stale, not chosen', 60, 'old'), ('gone', 7, 'extra, not chosen', 7, 'old')",
];

/// A database with [`SYNC_TABLES`], and its migration's mapping as the
/// catalog loads it.
async fn sync_db(prefix: &str) -> (String, Conn, Mapping) {
    let db = common::create_db(prefix).await;
    let mut conn = common::direct(Some(&db)).await;
    for sql in SYNC_TABLES {
        conn.query_drop(sql).await.unwrap();
    }
    let yaml = format!(
        "backends:\n  my: {{ kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: \"\" }}\n\
         migrations:\n  - id: {MIGRATION}\n    backend: my\n\
         \x20   source: {{ database: {db}, table: orders, primary_key: [tenant, id] }}\n\
         \x20   target: {{ table: orders_v2 }}\n\
         \x20   columns: {{ note: remark }}\n"
    );
    let mapping = mapping::load(&yaml).await;
    (db, conn, mapping)
}

fn row_sync(mapping: &Mapping, direction: Direction) -> RowSync {
    RowSync::new(Dialect::Mysql, mapping, &key(), direction).unwrap()
}

fn keys(keys: &[(&str, &str)]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|(t, id)| vec![t.to_string(), id.to_string()])
        .collect()
}

/// A row of `orders_v2`.
type Row = (String, i64, String, i64, String);

fn rows(want: &[(&str, i64, &str, i64, &str)]) -> Vec<Row> {
    want.iter()
        .map(|(t, id, r, q, e)| (t.to_string(), *id, r.to_string(), *q, e.to_string()))
        .collect()
}

async fn target_rows(conn: &mut Conn) -> Vec<Row> {
    conn.query(
        "SELECT tenant, id, remark, qty, extra FROM orders_v2 ORDER BY CAST(tenant AS BINARY), id",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn sync_makes_the_chosen_target_rows_equal_to_the_source() {
    let (db, mut conn, mapping) = sync_db("store_sync").await;
    let sync = row_sync(&mapping, Direction::SourceToTarget);
    let chosen = keys(&[
        ("acme", "1"),
        ("acme", "2"),
        (r"o'brien\", "3"),
        ("é", "4"),
        ("007", "5"),
        ("acme", "9"),
        ("nobody", "100"),
    ]);
    let statements = sync.statements(&chosen).unwrap();
    // Key literals read the same whatever the session's quoting rules.
    conn.query_drop(
        "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_BACKSLASH_ESCAPES', 'ANSI_QUOTES')",
    )
    .await
    .unwrap();
    run_in_transaction(&mut conn, &statements).await;
    let once = target_rows(&mut conn).await;
    run_in_transaction(&mut conn, &statements).await;
    assert_eq!(
        target_rows(&mut conn).await,
        once,
        "a second sync changes nothing"
    );
    assert_eq!(
        once,
        rows(&[
            ("007", 5, "e", 5, "new"),
            ("acme", 1, "a", 1, "old"),
            ("acme", 2, "b", 2, "new"),
            ("gone", 7, "extra, not chosen", 7, "old"),
            (r"o'brien\", 3, "c", 3, "new"),
            ("zeta", 6, "stale, not chosen", 60, "old"),
            ("é", 4, "d", 4, "new"),
        ])
    );
    // The same, as a difference compared byte for byte: the source's rows
    // but the unchosen one are all in the target, and the target has no
    // other chosen row.
    let differ: Option<i64> = conn
        .query_first(
            "SELECT
               (SELECT count(*) FROM orders s WHERE s.tenant <> 'zeta' AND NOT EXISTS (
                  SELECT 1 FROM orders_v2 t WHERE BINARY t.tenant = BINARY s.tenant AND t.id = s.id
                    AND t.remark = s.note AND t.qty = s.qty))
             + (SELECT count(*) FROM orders_v2 t WHERE t.tenant NOT IN ('zeta', 'gone') AND NOT EXISTS (
                  SELECT 1 FROM orders s WHERE BINARY t.tenant = BINARY s.tenant AND t.id = s.id))",
        )
        .await
        .unwrap();
    assert_eq!(differ, Some(0));
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn sync_back_to_the_source() {
    let (db, mut conn, mapping) = sync_db("store_back").await;
    let back = row_sync(&mapping, Direction::TargetToSource);
    conn.query_drop("INSERT INTO orders_v2 VALUES ('acme', 20, 'new on target', 20, 'x')")
        .await
        .unwrap();
    let statements = back
        .statements(&keys(&[("acme", "1"), ("acme", "2"), ("acme", "20")]))
        .unwrap();
    run_in_transaction(&mut conn, &statements).await;
    let source: Vec<(String, i32, String, i32)> = conn
        .query("SELECT tenant, id, note, qty FROM orders WHERE tenant = 'acme' ORDER BY id")
        .await
        .unwrap();
    let s = |v: &str| v.to_string();
    assert_eq!(
        source,
        [
            (s("ACME"), 1, s("stale"), 0),
            (s("acme"), 20, s("new on target"), 20)
        ]
    );
    conn.disconnect().await.unwrap();
    common::drop_db(&db).await;
}
