//! The dual write across servers on MariaDB: the target is reached through
//! a relay the test can cut, so it is "another server" to the proxy. The
//! guard's collected keys go to the outbox in the client's transaction;
//! two proxies' appliers copy the rows; the relay is cut mid-run and
//! nothing is lost. Each side is read with the test's own SQL.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;
use switchyard_core::store::{mysql as store, Guard};
use switchyard_proxy::route::MigrationRouter;

use crate::common::{self, catalog, Proxy};

async fn rows(conn: &mut Conn, sql: &str) -> Vec<String> {
    conn.query(sql).await.unwrap()
}

async fn start(yaml: &str) -> Proxy {
    let proxy = common::start(yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "items_v2").await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_another_server_through_the_outbox_and_survive_a_cut() {
    let db = common::create_db("outbox_src").await;
    let target_db = common::create_db("outbox_tgt").await;
    let mut source = common::direct(Some(&db)).await;
    let mut target = common::direct(Some(&target_db)).await;
    source
        .query_drop("CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(32) UNIQUE, name VARCHAR(64), price DECIMAL(10,2), made DATETIME(6) DEFAULT NOW(6))")
        .await
        .unwrap();
    let key = vec!["id".to_string()];
    let guard = Guard {
        migration: "items_v2",
        store: &db,
        schema: &db,
        table: "items",
        key: &key,
        on_target: false,
    };
    for sql in store::install(&db)
        .into_iter()
        .chain(store::install_guard(&guard))
    {
        source.query_drop(&sql).await.unwrap();
    }
    target
        .query_drop("CREATE TABLE items_v2 (id BIGINT PRIMARY KEY, sku VARCHAR(32), title VARCHAR(64), price DECIMAL(12,2), made DATETIME(6))")
        .await
        .unwrap();
    let mut relay = common::Forwarder::start("127.0.0.1:3306").await;
    let yaml = format!(
        "{}migrations:
  - id: items_v2
    backend: my
    source: {{ database: {db}, table: items, primary_key: [id] }}
    target: {{ backend: far, database: {target_db}, table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
",
        common::base_yaml().replace(
            "routes:",
            &format!(
                "  far: {{ kind: mysql, host: 127.0.0.1, port: {}, user: root, password: \"\" }}\nroutes:",
                relay.port
            )
        )
    );
    let first = start(&yaml).await;
    let second = start(&yaml).await;
    let mut clients = [first.connect(&db).await, second.connect(&db).await];
    let mut n = 0;
    for round in 0..6 {
        if round == 2 {
            relay.down().await;
        }
        if round == 4 {
            relay.up().await;
        }
        for client in &mut clients {
            n += 1;
            client
                .query_drop(format!("INSERT INTO items (sku, name, price) VALUES ('n{n}', 'n', {n}), ('m{n}', 'm', NULL)"))
                .await
                .unwrap();
            client
                .exec_drop(
                    "UPDATE items SET price = COALESCE(price, 0) + 1 WHERE id % 3 = ?",
                    (n % 3,),
                )
                .await
                .unwrap();
            client
                .query_drop(format!(
                    "REPLACE INTO items (sku, name) VALUES ('n{n}', 'replaced')"
                ))
                .await
                .unwrap();
            client
                .query_drop(format!(
                    "UPDATE items SET id = id + 100000 WHERE sku = 'm{n}'"
                ))
                .await
                .unwrap();
            client
                .exec_drop("DELETE FROM items WHERE id % 7 = ?", (n % 7,))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: Option<i64> = source
            .query_first("SELECT count(*) FROM switchyard_outbox")
            .await
            .unwrap();
        if left == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outbox did not drain: {left:?} left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let source_rows = rows(
        &mut source,
        "SELECT CONCAT_WS('|', id, sku, name, price, made) FROM items ORDER BY id",
    )
    .await;
    let target_rows = rows(
        &mut target,
        "SELECT CONCAT_WS('|', id, sku, title, price, made) FROM items_v2 ORDER BY id",
    )
    .await;
    assert!(!source_rows.is_empty());
    assert_eq!(source_rows, target_rows);
    let queued: Option<i64> = source
        .query_first("SELECT count(*) FROM switchyard_repair_queue")
        .await
        .unwrap();
    assert_eq!(queued, Some(0));
    common::drop_db(&db).await;
    common::drop_db(&target_db).await;
}
