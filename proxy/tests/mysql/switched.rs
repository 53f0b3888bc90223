//! After the write switch on MariaDB: a client's write of the source lands
//! in the target (its OK packet the target's own) and is mirrored back to
//! the source in the same transaction, keyed by what the target's guard
//! collected; after `complete` it lands in the target alone. The proof is
//! the data, compared with the test's own SQL.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::common::Proxy;

const TABLES: [&str; 2] = [
    "CREATE TABLE items (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        name VARCHAR(64) NOT NULL,
        price DECIMAL(10,2)
    ) ENGINE=InnoDB",
    "CREATE TABLE items_v2 (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        title VARCHAR(64) NOT NULL,
        price DECIMAL(12,2)
    ) ENGINE=InnoDB AUTO_INCREMENT=1001",
];

/// Both tables, the store, the guard on the target (where the write switch
/// moves it) and a proxy in `phase`; in `complete` the source is archived,
/// as `complete` leaves it.
async fn setup(prefix: &str, phase: &str) -> (Proxy, String, Conn) {
    let archive = match phase {
        "complete" => "RENAME TABLE items TO items_archived",
        _ => "",
    };
    crate::mirror::setup_phase(prefix, &TABLES, "repair", phase, archive).await
}

async fn rows(direct: &mut Conn, sql: &str) -> Vec<String> {
    direct.query(sql).await.unwrap()
}

const SOURCE_ROWS: &str =
    "SELECT CONCAT_WS('|', id, name, IFNULL(price, '-')) FROM items ORDER BY id";
const TARGET_ROWS: &str =
    "SELECT CONCAT_WS('|', id, title, IFNULL(price, '-')) FROM items_v2 ORDER BY id";

#[tokio::test]
async fn writes_land_in_the_target_and_are_mirrored_back() {
    let (proxy, db, mut direct) = setup("my_switched", "write_switch").await;
    let mut client = proxy.connect(&db).await;

    client
        .query_drop("INSERT INTO items (name, price) VALUES ('a', 1.50), ('b', NULL)")
        .await
        .unwrap();
    assert_eq!(client.affected_rows(), 2);
    assert_eq!(client.last_insert_id(), Some(1001));
    client
        .exec_drop("INSERT INTO items (name) VALUES (?)", ("c",))
        .await
        .unwrap();
    assert_eq!(client.last_insert_id(), Some(1003));
    client
        .exec_drop("UPDATE items SET name = UPPER(name) WHERE id = ?", (1001,))
        .await
        .unwrap();
    assert_eq!(client.affected_rows(), 1);
    client
        .query_drop("DELETE FROM items WHERE name = 'b'")
        .await
        .unwrap();
    client
        .query_drop(
            "INSERT INTO items (id, name) VALUES (1003, 'c2') \
             ON DUPLICATE KEY UPDATE name = VALUES(name)",
        )
        .await
        .unwrap();
    assert_eq!(client.affected_rows(), 2);
    client.query_drop("BEGIN").await.unwrap();
    client
        .query_drop("INSERT INTO items (name) VALUES ('gone')")
        .await
        .unwrap();
    client.query_drop("ROLLBACK").await.unwrap();

    let target = rows(&mut direct, TARGET_ROWS).await;
    assert_eq!(target, ["1001|A|1.50", "1003|c2|-"]);
    assert_eq!(rows(&mut direct, SOURCE_ROWS).await, target);

    // What cannot be rewritten with certainty is refused; nothing written.
    let err = client
        .query_drop("UPDATE items JOIN items_v2 o ON o.id = items.id SET items.name = 'x'")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot be rewritten"), "{text}");
    assert_eq!(rows(&mut direct, TARGET_ROWS).await, target);
    client.query_drop("SELECT 1").await.unwrap();

    // A writer bypassing the proxy writes the target: queued for repair.
    direct
        .query_drop("UPDATE items_v2 SET price = 9 WHERE id = 1001")
        .await
        .unwrap();
    let queued: i64 = direct
        .query_first("SELECT count(*) FROM switchyard_repair_queue WHERE migration = 'items_v2'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued, 1);
}

#[tokio::test]
async fn after_complete_writes_land_in_the_target_alone() {
    let (proxy, db, mut direct) = setup("my_switched_done", "complete").await;
    let mut client = proxy.connect(&db).await;
    client
        .exec_drop("INSERT INTO items (name, price) VALUES (?, 2)", ("only",))
        .await
        .unwrap();
    assert_eq!(client.last_insert_id(), Some(1001));
    client
        .query_drop("UPDATE items SET price = price * 2 WHERE name = 'only'")
        .await
        .unwrap();
    assert_eq!(rows(&mut direct, TARGET_ROWS).await, ["1001|only|4.00"]);
    assert!(
        rows(&mut direct, "SELECT CAST(id AS CHAR) FROM items_archived")
            .await
            .is_empty()
    );
    let name: Option<String> = client
        .query_first("SELECT name FROM items WHERE id = 1001")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("only"));
}
