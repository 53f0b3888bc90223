//! The dual write on MariaDB: the client's write runs as it came (so its
//! OK packet is the server's own), the guard collects the keys it wrote,
//! and the mirror syncs them by row image in the same transaction. The
//! proof is the data, compared with the test's own SQL, and the OK
//! packets, compared with a direct connection's.

use std::sync::Arc;

use mysql_async::prelude::*;
use mysql_async::Conn;
use switchyard_core::store::{mysql as store, Guard};
use switchyard_proxy::route::MigrationRouter;

use crate::common::{self, catalog, Proxy};

pub(crate) const TABLES: [&str; 2] = [
    "CREATE TABLE items (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        sku VARCHAR(32) NOT NULL UNIQUE,
        name VARCHAR(64),
        price DECIMAL(10,2),
        made DATETIME(6) NOT NULL DEFAULT NOW(6)
    ) ENGINE=InnoDB",
    "CREATE TABLE items_v2 (
        id BIGINT PRIMARY KEY,
        sku VARCHAR(32),
        title VARCHAR(64),
        price DECIMAL(12,2) CHECK (price IS NULL OR price < 1000),
        made DATETIME(6)
    ) ENGINE=InnoDB",
];

async fn setup(prefix: &str, on_error: &str) -> (Proxy, String, Conn) {
    setup_tables(prefix, &TABLES, on_error).await
}

/// A fresh database with `tables` (a source `items` keyed by `id` with a
/// `name` column, a target `items_v2` with `title` for it), the store,
/// the guard of migration `items_v2`, and a proxy with the migration in
/// `dual_write`: what every dual-write test starts from.
pub(crate) async fn setup_tables(
    prefix: &str,
    tables: &[&str],
    on_error: &str,
) -> (Proxy, String, Conn) {
    setup_phase(prefix, tables, on_error, "dual_write", "").await
}

/// [`setup_tables`] in `phase`, with the guard on the table that takes
/// the writes there (the target from `write_switch` on), and `before`
/// run once all is installed, before the proxy starts.
pub(crate) async fn setup_phase(
    prefix: &str,
    tables: &[&str],
    on_error: &str,
    phase: &str,
    before: &str,
) -> (Proxy, String, Conn) {
    let db = common::create_db(prefix).await;
    let mut direct = common::direct(Some(&db)).await;
    for sql in tables {
        direct.query_drop(*sql).await.unwrap();
    }
    let key = vec!["id".to_string()];
    let on_target = matches!(phase, "write_switch" | "complete");
    let guard = Guard {
        migration: "items_v2",
        store: &db,
        schema: &db,
        table: if on_target { "items_v2" } else { "items" },
        key: &key,
        on_target,
    };
    for sql in store::install(&db)
        .into_iter()
        .chain(store::install_guard(&guard))
    {
        direct.query_drop(&sql).await.unwrap();
    }
    if !before.is_empty() {
        direct.query_drop(before).await.unwrap();
    }
    let yaml = format!(
        "{}
migrations:
  - id: items_v2
    backend: my
    source: {{ database: {db}, table: items, primary_key: [id] }}
    target: {{ table: items_v2 }}
    columns: {{ name: title }}
    phase: {phase}
    on_mirror_error: {on_error}
",
        common::base_yaml()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "items_v2").await;
    (proxy, db, direct)
}

/// Rows that differ between the two tables, both ways, by plain SQL.
async fn differences(direct: &mut Conn) -> i64 {
    direct
        .query_first(
            "SELECT (SELECT count(*) FROM items s LEFT JOIN items_v2 t
                       ON s.id <=> t.id AND s.sku <=> t.sku AND s.name <=> t.title
                      AND s.price <=> t.price AND s.made <=> t.made
                    WHERE t.id IS NULL)
                  + (SELECT count(*) FROM items_v2 t LEFT JOIN items s
                       ON s.id <=> t.id AND s.sku <=> t.sku AND s.name <=> t.title
                      AND s.price <=> t.price AND s.made <=> t.made
                    WHERE s.id IS NULL)",
        )
        .await
        .unwrap()
        .unwrap()
}

async fn count(direct: &mut Conn, sql: &str) -> i64 {
    direct
        .query_first(format!("SELECT count(*) FROM {sql}"))
        .await
        .unwrap()
        .unwrap()
}

/// What an OK packet told the client.
async fn ok_of(conn: &mut Conn, sql: &str) -> (u64, Option<u64>, u16) {
    conn.query_drop(sql).await.unwrap();
    (
        conn.affected_rows(),
        conn.last_insert_id(),
        conn.get_warnings(),
    )
}

#[tokio::test]
async fn every_kind_of_write_is_mirrored_and_answered_as_the_server_would() {
    let (proxy, db, mut direct) = setup("mirror", "repair").await;
    let mut conn = proxy.connect(&db).await;
    // A twin of the source, written directly, gives the OK packets the
    // client must see.
    direct
        .query_drop("CREATE TABLE twin LIKE items")
        .await
        .unwrap();
    let writes = [
        "INSERT INTO {t} (sku, name, price) VALUES ('a', 'A', 1.5), ('b', 'B', 2), ('c', 'C', NULL)",
        "INSERT INTO {t} (sku, name) VALUES ('a', 'again') ON DUPLICATE KEY UPDATE name = VALUES(name)",
        "INSERT IGNORE INTO {t} (sku, name) VALUES ('b', 'ignored'), ('d', 'D')",
        "REPLACE INTO {t} (sku, name, price) VALUES ('c', 'replaced', 3)",
        "UPDATE {t} SET price = COALESCE(price, 0) + 1, made = NOW(6) WHERE name <> 'A' ORDER BY sku LIMIT 2",
        "UPDATE {t} SET id = id + 1000 WHERE sku = 'd'",
        "DELETE FROM {t} WHERE sku = 'b'",
    ];
    for sql in writes {
        let through = ok_of(&mut conn, &sql.replace("{t}", "items")).await;
        let alone = ok_of(&mut direct, &sql.replace("{t}", "twin")).await;
        assert_eq!(through, alone, "{sql}");
    }
    assert_eq!(differences(&mut direct).await, 0);
    assert_eq!(
        count(&mut direct, "items").await,
        count(&mut direct, "items_v2").await
    );

    // Prepared statements, and a transaction's rollback.
    let stmt = conn
        .prep("UPDATE items SET name = ? WHERE sku = ?")
        .await
        .unwrap();
    conn.exec_drop(&stmt, ("prepared", "a")).await.unwrap();
    assert_eq!(conn.affected_rows(), 1);
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO items (sku, name) VALUES ('gone', 'x')")
        .await
        .unwrap();
    tx.exec_drop("DELETE FROM items WHERE sku = ?", ("a",))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop("INSERT INTO items (sku, name) VALUES ('kept', 'y')")
        .await
        .unwrap();
    tx.query_drop("SAVEPOINT s").await.unwrap();
    tx.query_drop("UPDATE items SET name = 'undone' WHERE sku = 'kept'")
        .await
        .unwrap();
    tx.query_drop("ROLLBACK TO SAVEPOINT s").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        count(
            &mut direct,
            "items_v2 WHERE sku IN ('gone', 'kept') AND title <> 'undone'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut direct,
            "items_v2 WHERE sku = 'a' AND title = 'prepared'"
        )
        .await,
        1
    );
    assert_eq!(differences(&mut direct).await, 0);
    // Every key went through the mirror: nothing was queued for repair.
    assert_eq!(count(&mut direct, "switchyard_repair_queue").await, 0);

    // A write that bypasses the proxy is queued by the guard.
    direct
        .query_drop("UPDATE items SET name = 'direct' WHERE sku = 'kept'")
        .await
        .unwrap();
    let queued: Option<String> = direct
        .query_first("SELECT source FROM switchyard_repair_queue")
        .await
        .unwrap();
    assert_eq!(queued.as_deref(), Some("direct_client"));
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_failed_mirror_queues_its_keys_or_fails_the_write() {
    let (proxy, db, mut direct) = setup("mirror_repair", "repair").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("INSERT INTO items (id, sku, price) VALUES (7, 'dear', 5000)")
        .await
        .unwrap();
    assert_eq!(conn.affected_rows(), 1);
    let queued: Option<String> = direct
        .query_first("SELECT `key` FROM switchyard_repair_queue WHERE source = 'mirror_failed'")
        .await
        .unwrap();
    assert_eq!(queued.as_deref(), Some("[\"7\"]"));
    assert_eq!(count(&mut direct, "items WHERE id = 7").await, 1);
    assert_eq!(count(&mut direct, "items_v2 WHERE id = 7").await, 0);
    // Counted as such (metrics are per process: at least this one).
    let queued = common::http::counter(
        proxy.running.admin.expect("admin listener"),
        "switchyard_mirror_writes_total",
        &[("migration", "items_v2"), ("outcome", "repair_queued")],
    )
    .await;
    assert!(queued >= 1, "repair_queued counted {queued}");
    common::drop_db(&db).await;

    let (proxy, db, mut direct) = setup("mirror_fail", "fail_write").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("INSERT INTO items (id, sku, price) VALUES (1, 'cheap', 5)")
        .await
        .unwrap();
    let err = conn
        .query_drop("UPDATE items SET price = 5000 WHERE id = 1")
        .await
        .unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1290, "{message}");
    assert!(message.contains("items_v2"), "{message}");
    let price: Option<String> = direct
        .query_first("SELECT CAST(price AS CHAR) FROM items WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(price.as_deref(), Some("5.00"));
    assert_eq!(differences(&mut direct).await, 0);
    assert_eq!(count(&mut direct, "switchyard_repair_queue").await, 0);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn writes_that_cannot_be_mirrored_are_refused_and_change_nothing() {
    let (proxy, db, mut direct) = setup("mirror_refuse", "repair").await;
    let mut conn = proxy.connect(&db).await;
    conn.query_drop("INSERT INTO items (sku) VALUES ('kept')")
        .await
        .unwrap();
    for sql in [
        "TRUNCATE TABLE items",
        "ALTER TABLE items_v2 ADD COLUMN extra INT",
        "INSERT INTO items_v2 (id) VALUES (99)",
    ] {
        let err = conn.query_drop(sql).await.unwrap_err();
        let (code, _, message) = common::server_error(&err);
        assert_eq!(code, 1290, "{sql}: {message}");
        assert!(message.contains("migration `items_v2`"), "{message}");
    }
    assert_eq!(count(&mut direct, "items").await, 1);
    assert_eq!(count(&mut direct, "items_v2").await, 1);
    assert_eq!(differences(&mut direct).await, 0);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn without_its_guard_a_write_is_refused_rather_than_left_unmirrored() {
    let db = common::create_db("mirror_noguard").await;
    let mut direct = common::direct(Some(&db)).await;
    for sql in TABLES {
        direct.query_drop(sql).await.unwrap();
    }
    let yaml = format!(
        "{}
migrations:
  - id: items_v2
    backend: my
    source: {{ database: {db}, table: items, primary_key: [id] }}
    target: {{ table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
",
        common::base_yaml()
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "items_v2").await;
    let mut conn = proxy.connect(&db).await;
    let err = conn
        .query_drop("INSERT INTO items (sku) VALUES ('x')")
        .await
        .unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 1290, "{message}");
    assert!(message.contains("guard"), "{message}");
    // A prepared write too, and the statement stays usable.
    let stmt = conn
        .prep("INSERT INTO items (sku) VALUES (?)")
        .await
        .unwrap();
    for _ in 0..2 {
        let err = conn.exec_drop(&stmt, ("y",)).await.unwrap_err();
        assert_eq!(common::server_error(&err).0, 1290);
    }
    assert_eq!(count(&mut direct, "items").await, 0);
    // Reads go on.
    let n: Option<i64> = conn
        .query_first("SELECT count(*) FROM items")
        .await
        .unwrap();
    assert_eq!(n, Some(0));
    common::drop_db(&db).await;
}

#[tokio::test]
async fn open_transactions_inserting_new_keys_do_not_wait_on_each_other() {
    let (proxy, db, mut direct) = setup("mirror_gap", "repair").await;
    let mut a = proxy.connect(&db).await;
    let mut b = proxy.connect(&db).await;
    // Waiting would show as this error within two seconds, not as a hang.
    b.query_drop("SET SESSION innodb_lock_wait_timeout = 2")
        .await
        .unwrap();
    a.query_drop("BEGIN").await.unwrap();
    a.query_drop("INSERT INTO items (sku, name) VALUES ('gap-a', 'a')")
        .await
        .unwrap();
    b.query_drop("BEGIN").await.unwrap();
    b.query_drop("INSERT INTO items (sku, name) VALUES ('gap-b', 'b')")
        .await
        .unwrap();
    b.query_drop("COMMIT").await.unwrap();
    a.query_drop("COMMIT").await.unwrap();
    assert_eq!(count(&mut direct, "items_v2").await, 2);
    assert_eq!(differences(&mut direct).await, 0);
}
