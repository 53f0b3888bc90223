//! The control store and the row-image sync against the real PostgreSQL:
//! the store's DDL installs twice, the guard queues exactly the keys of
//! the writes the proxy did not mirror, and the sync's statements make
//! the chosen target rows equal to the source's mapped rows, checked
//! with the test's own SQL.

use switchyard_core::store::{self, pg, Guard};
use switchyard_proxy::catalog::mapping::Mapping;
use switchyard_proxy::mirror::sync::{Direction, RowSync};
use switchyard_proxy::route::classify::Dialect;
use tokio_postgres::Client;

use crate::common;

#[path = "../support/mapping.rs"]
mod mapping;

const MIGRATION: &str = "orders_v2";

/// `tenants(name)` and `orders(tenant, id, note)` keyed by (tenant, id),
/// each order cascading from its tenant.
const ORDERS: &str = "
    CREATE TABLE tenants (name text PRIMARY KEY);
    CREATE TABLE orders (
        tenant text REFERENCES tenants ON DELETE CASCADE,
        id int,
        note text,
        PRIMARY KEY (tenant, id)
    );
    INSERT INTO tenants VALUES ('acme'), ('beta');";

fn key() -> Vec<String> {
    vec!["tenant".to_string(), "id".to_string()]
}

fn guard(key: &[String]) -> Guard<'_> {
    Guard {
        migration: MIGRATION,
        store: "public",
        schema: "public",
        table: "orders",
        key,
        on_target: false,
    }
}

/// Runs `statements` in one transaction.
async fn run(client: &Client, statements: &[String]) {
    client.batch_execute("BEGIN").await.unwrap();
    for sql in statements {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    client.batch_execute("COMMIT").await.unwrap();
}

/// Installs the store and the guard on `orders`.
async fn install(client: &Client) {
    let key = key();
    run(client, &store::pg::install("public")).await;
    run(client, &pg::install_guard(&guard(&key))).await;
}

/// Every key queued for `migration`, with its source, in queue order.
async fn queued(client: &Client, migration: &str) -> Vec<(String, String)> {
    client
        .query(
            "SELECT key::text, source FROM switchyard_repair_queue WHERE migration = $1 ORDER BY id",
            &[&migration],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn entries(want: &[(&str, &str)]) -> Vec<(String, String)> {
    want.iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

#[tokio::test]
async fn store_and_guard_install_twice() {
    let db = common::create_db("store_twice").await;
    let client = common::direct(&db).await;
    client.batch_execute(ORDERS).await.unwrap();
    install(&client).await;
    install(&client).await;
    let version: i32 = client
        .query_one(&pg::version_query("public"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, store::STORE_VERSION as i32);
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM switchyard_store_version").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal").await,
        3
    );
    client
        .batch_execute("INSERT INTO orders VALUES ('acme', 1, 'one')")
        .await
        .unwrap();
    assert_eq!(
        queued(&client, MIGRATION).await,
        entries(&[(r#"["acme", "1"]"#, "direct_client")])
    );
    let key = key();
    run(&client, &pg::drop_guard(&guard(&key))).await;
    run(&client, &pg::drop_guard(&guard(&key))).await;
    client
        .batch_execute("INSERT INTO orders VALUES ('acme', 2, 'two')")
        .await
        .unwrap();
    assert_eq!(
        queued(&client, MIGRATION).await.len(),
        1,
        "no guard, no key"
    );
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn guard_queues_the_writes_it_did_not_see_mirrored() {
    let db = common::create_db("store_guard").await;
    let client = common::direct(&db).await;
    client.batch_execute(ORDERS).await.unwrap();
    install(&client).await;
    client
        .batch_execute(
            "INSERT INTO orders VALUES ('acme', 1, 'one');
             UPDATE orders SET note = 'uno' WHERE id = 1;
             UPDATE orders SET id = 2 WHERE id = 1;
             DELETE FROM orders WHERE id = 2;",
        )
        .await
        .unwrap();
    // The proxy's own mirrored write for this migration: nothing queued,
    // and the write after the marker's reset is queued again.
    let mark = pg::mark_mirrored(MIGRATION);
    let unmark = pg::unmark_mirrored();
    client
        .batch_execute(&format!(
            "BEGIN; {mark}; INSERT INTO orders VALUES ('acme', 10, 'mirrored');
             {unmark}; INSERT INTO orders VALUES ('acme', 11, 'after'); COMMIT;"
        ))
        .await
        .unwrap();
    // Marked for another migration: still this one's to repair.
    let other = pg::mark_mirrored("other_migration");
    client
        .batch_execute(&format!(
            "BEGIN; {other}; INSERT INTO orders VALUES ('beta', 12, 'x'); COMMIT;"
        ))
        .await
        .unwrap();
    // Relayed by the proxy unmirrored.
    client
        .batch_execute(&format!(
            "{}; INSERT INTO orders VALUES ('beta', 13, 'y'); RESET switchyard.proxy;",
            pg::mark_proxy_session()
        ))
        .await
        .unwrap();
    // A cascade is one trigger level down, so queued even while the
    // statement that caused it is marked as mirrored.
    client
        .batch_execute(&format!(
            "BEGIN; {mark}; DELETE FROM tenants WHERE name = 'beta'; COMMIT;"
        ))
        .await
        .unwrap();
    let mut got = queued(&client, MIGRATION).await;
    // The cascade deletes in an order of the server's choosing.
    let mut cascaded = got.split_off(8);
    cascaded.sort();
    assert_eq!(
        got,
        entries(&[
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "1"]"#, "direct_client"),
            (r#"["acme", "2"]"#, "direct_client"),
            (r#"["acme", "2"]"#, "direct_client"),
            (r#"["acme", "11"]"#, "direct_client"),
            (r#"["beta", "12"]"#, "direct_client"),
            (r#"["beta", "13"]"#, "proxy_unparsed"),
        ])
    );
    assert_eq!(
        cascaded,
        entries(&[
            (r#"["beta", "12"]"#, "cascade_or_function"),
            (r#"["beta", "13"]"#, "cascade_or_function"),
        ])
    );
    drop(client);
    common::drop_db(&db).await;
}

/// `orders(tenant, id, note, qty)` and its target `orders_v2`, with `note`
/// renamed to `remark`, `id` and `qty` widened and a column of its own:
/// rows the target lacks, a stale one, an extra one, and two rows no test
/// key names.
const SYNC_TABLES: &str = r#"
    CREATE TABLE orders (tenant text, id int, note text, qty int, PRIMARY KEY (tenant, id));
    CREATE TABLE orders_v2 (
        tenant varchar(64), id bigint, remark text, qty bigint, extra text DEFAULT 'new',
        PRIMARY KEY (tenant, id)
    );
    INSERT INTO orders VALUES ('acme', 1, 'a', 1), ('acme', 2, 'b', 2), (E'o''brien\\', 3, 'c', 3),
        ('é', 4, 'd', 4), ('007', 5, 'e', 5), ('zeta', 6, 'f', 6);
    INSERT INTO orders_v2 VALUES ('acme', 1, 'stale', 0, 'old'), ('acme', 9, 'extra', 9, 'old'),
        ('zeta', 6, 'stale, not chosen', 60, 'old'), ('gone', 7, 'extra, not chosen', 7, 'old');"#;

/// A database with [`SYNC_TABLES`], and its migration's mapping as the
/// catalog loads it.
async fn sync_db(prefix: &str) -> (String, Client, Mapping) {
    let db = common::create_db(prefix).await;
    let client = common::direct(&db).await;
    client.batch_execute(SYNC_TABLES).await.unwrap();
    let yaml = format!(
        "backends:\n  pg: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres }}\n\
         migrations:\n  - id: {MIGRATION}\n    backend: pg\n\
         \x20   source: {{ database: {db}, table: orders, primary_key: [tenant, id] }}\n\
         \x20   target: {{ table: orders_v2 }}\n\
         \x20   columns: {{ note: remark }}\n"
    );
    let mapping = mapping::load(&yaml).await;
    (db, client, mapping)
}

fn row_sync(mapping: &Mapping, direction: Direction) -> RowSync {
    RowSync::new(Dialect::Postgres, mapping, &key(), direction).unwrap()
}

fn keys(keys: &[(&str, &str)]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|(t, id)| vec![t.to_string(), id.to_string()])
        .collect()
}

/// A row of `orders_v2` (or `orders`, with `extra` empty).
type Row = (String, i64, String, i64, String);

fn rows(want: &[(&str, i64, &str, i64, &str)]) -> Vec<Row> {
    want.iter()
        .map(|(t, id, r, q, e)| (t.to_string(), *id, r.to_string(), *q, e.to_string()))
        .collect()
}

async fn target_rows(client: &Client) -> Vec<Row> {
    client
        .query(
            r#"SELECT tenant::text, id, remark, qty, extra FROM orders_v2 ORDER BY tenant COLLATE "C", id"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

#[tokio::test]
async fn sync_makes_the_chosen_target_rows_equal_to_the_source() {
    let (db, client, mapping) = sync_db("store_sync").await;
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
    client
        .batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    run(&client, &statements).await;
    let once = target_rows(&client).await;
    run(&client, &statements).await;
    assert_eq!(
        target_rows(&client).await,
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
    // The same, as a difference: the source's rows but the unchosen one
    // are all in the target, and the target has no other chosen row.
    let differ: i64 = client
        .query_one(
            "SELECT count(*) FROM (
                 (SELECT tenant, id::bigint, note, qty::bigint FROM orders WHERE tenant <> 'zeta'
                  EXCEPT SELECT tenant::text, id, remark, qty FROM orders_v2)
                 UNION ALL
                 (SELECT tenant::text, id, remark, qty FROM orders_v2 WHERE tenant NOT IN ('zeta', 'gone')
                  EXCEPT SELECT tenant, id::bigint, note, qty::bigint FROM orders)
             ) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differ, 0);
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn sync_back_and_the_inline_fragments() {
    let (db, client, mapping) = sync_db("store_back").await;
    let back = row_sync(&mapping, Direction::TargetToSource);
    client
        .batch_execute(
            "UPDATE orders_v2 SET remark = 'from target' WHERE tenant = 'acme' AND id = 1;
             INSERT INTO orders_v2 VALUES ('acme', 20, 'new on target', 20, 'x');",
        )
        .await
        .unwrap();
    let statements = back
        .statements(&keys(&[("acme", "1"), ("acme", "2"), ("acme", "20")]))
        .unwrap();
    run(&client, &statements).await;
    let source: Vec<(String, i32, String, i32)> = client
        .query(
            "SELECT tenant, id, note, qty FROM orders WHERE tenant = 'acme' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let s = |v: &str| v.to_string();
    assert_eq!(
        source,
        [
            (s("acme"), 1, s("from target"), 0),
            (s("acme"), 20, s("new on target"), 20)
        ]
    );

    let forward = row_sync(&mapping, Direction::SourceToTarget);
    let upsert = forward.upsert_from("w").unwrap();
    let delete = forward.delete_using("d").unwrap();
    client
        .batch_execute(&format!(
            "WITH w AS (UPDATE orders SET qty = qty + 100 WHERE tenant = 'zeta' RETURNING *),
                  m AS ({upsert})
             SELECT count(*) FROM w;
             WITH d AS (DELETE FROM orders WHERE tenant = 'acme' RETURNING tenant, id),
                  m AS ({delete})
             SELECT count(*) FROM d;"
        ))
        .await
        .unwrap();
    let zeta_and_acme: Vec<Row> = target_rows(&client)
        .await
        .into_iter()
        .filter(|r| r.0 == "zeta" || r.0 == "acme")
        .collect();
    assert_eq!(
        zeta_and_acme,
        rows(&[("acme", 9, "extra", 9, "old"), ("zeta", 6, "f", 106, "old")])
    );
    drop(client);
    common::drop_db(&db).await;
}
