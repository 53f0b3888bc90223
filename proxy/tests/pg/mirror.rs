//! The dual write on one server (inline): every write of the source
//! through the proxy is mirrored to the target by row image in the
//! client's own transaction. The proof is the data: after each scenario
//! the test compares the two tables with SQL of its own.

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::store::{pg as store, Guard};
use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::{self, catalog, Proxy};

pub(crate) const TABLES: &str = "
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
    CREATE TABLE items (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        price numeric(10,2),
        made timestamptz NOT NULL DEFAULT clock_timestamp(),
        token uuid NOT NULL DEFAULT gen_random_uuid()
    );
    CREATE TABLE items_v2 (
        id bigint PRIMARY KEY,
        title text,
        price numeric(12,2) CHECK (price IS NULL OR price < 1000),
        made timestamptz,
        token uuid
    );
";

async fn setup(prefix: &str, on_error: &str) -> (Proxy, String, Client) {
    setup_tables(prefix, TABLES, on_error).await
}

/// A fresh database with `tables` (a source `items` keyed by `id` with a
/// `name` column, a target `items_v2` with `title` for it), the store,
/// the guard of migration `items_v2`, and a proxy with the migration in
/// `dual_write`: what every dual-write test starts from.
pub(crate) async fn setup_tables(
    prefix: &str,
    tables: &str,
    on_error: &str,
) -> (Proxy, String, Client) {
    setup_phase(prefix, tables, on_error, "dual_write", "").await
}

/// [`setup_tables`] in `phase`, with the guard on the table that takes
/// the writes there (the target from `write_switch` on), and `before`
/// run once all is installed, before the proxy starts.
pub(crate) async fn setup_phase(
    prefix: &str,
    tables: &str,
    on_error: &str,
    phase: &str,
    before: &str,
) -> (Proxy, String, Client) {
    let db = common::create_db(prefix).await;
    let direct = common::direct(&db).await;
    direct.batch_execute(tables).await.unwrap();
    let key = vec!["id".to_string()];
    let on_target = matches!(phase, "write_switch" | "complete");
    let guard = Guard {
        migration: "items_v2",
        store: "public",
        schema: "public",
        table: if on_target { "items_v2" } else { "items" },
        key: &key,
        on_target,
    };
    let mut install = store::install("public");
    install.extend(store::install_guard(&guard));
    direct
        .batch_execute(&format!("BEGIN; {}; COMMIT", install.join(";\n")))
        .await
        .unwrap();
    if !before.is_empty() {
        direct.batch_execute(before).await.unwrap();
    }
    let yaml = format!(
        "{}
migrations:
  - id: items_v2
    backend: pg
    source: {{ database: {db}, schema: public, table: items, primary_key: [id] }}
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
async fn differences(direct: &Client) -> i64 {
    direct
        .query_one(
            "SELECT count(*) FROM (
                (SELECT id, name, price, made, token FROM items
                 EXCEPT SELECT id, title, price, made, token FROM items_v2)
                UNION ALL
                (SELECT id, title, price, made, token FROM items_v2
                 EXCEPT SELECT id, name, price, made, token FROM items)
            ) d",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn count(direct: &Client, table: &str) -> i64 {
    direct
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn tags(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_kind_of_write_is_mirrored_by_row_image() {
    let (proxy, db, direct) = setup("mirror", "repair").await;
    let client = proxy.connect(&db).await;

    // Simple protocol: defaults, volatile functions, several rows.
    let got = client
        .simple_query(
            "INSERT INTO items (name, price) VALUES ('a', 1.5), ('b', random() * 100), ('c', NULL)",
        )
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![3]);
    assert!(rows(&got).is_empty(), "no RETURNING, no rows: {got:?}");
    // The client's own RETURNING, in its own order, and nothing more.
    let got = client
        .simple_query(
            "INSERT INTO items AS i (name) VALUES ('d') RETURNING i.name, upper(i.name) AS shout",
        )
        .await
        .unwrap();
    assert_eq!(rows(&got), vec![vec![Some("d".into()), Some("D".into())]]);
    assert_eq!(tags(&got), vec![1]);
    let got = client
        .simple_query("UPDATE items SET price = coalesce(price, 0) + 1, made = clock_timestamp() WHERE name <> 'a'")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![3]);
    // A key that changes: the old keys leave the target.
    let got = client
        .simple_query("UPDATE items SET id = id + 1000 WHERE name IN ('b', 'c')")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![2]);
    let got = client
        .simple_query("INSERT INTO items (id, name) VALUES (1, 'again') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name || '!'")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![1]);
    let got = client
        .simple_query("DELETE FROM items WHERE made < clock_timestamp() AND name = 'd'")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![1]);
    assert_eq!(differences(&direct).await, 0);

    // Extended protocol with parameters, and RETURNING.
    let n = client
        .execute(
            "INSERT INTO items (name, price) VALUES ($1, ($2::text)::numeric)",
            &[&"e", &"7.25"],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let returned = client
        .query(
            "UPDATE items SET price = price * 2 WHERE name = $1 RETURNING id, price::text",
            &[&"e"],
        )
        .await
        .unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].len(), 2);
    assert_eq!(returned[0].get::<_, String>(1), "14.50");
    let n = client
        .execute(
            "DELETE FROM items WHERE id = $1",
            &[&returned[0].get::<_, i64>(0)],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(differences(&direct).await, 0);

    // Inside transactions: a rollback takes both tables' rows, a rollback
    // to a savepoint takes what followed it.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("INSERT INTO items (name) VALUES ('gone')")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("INSERT INTO items (name) VALUES ('kept')")
        .await
        .unwrap();
    client.batch_execute("SAVEPOINT s").await.unwrap();
    client
        .execute(
            "UPDATE items SET name = 'undone' WHERE name = $1",
            &[&"kept"],
        )
        .await
        .unwrap();
    client
        .batch_execute("ROLLBACK TO SAVEPOINT s")
        .await
        .unwrap();
    client.batch_execute("COMMIT").await.unwrap();
    let names: Vec<String> = direct
        .query(
            "SELECT title FROM items_v2 WHERE title IN ('gone', 'kept', 'undone')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, vec!["kept"]);
    assert_eq!(differences(&direct).await, 0);
    assert_eq!(
        count(&direct, "items").await,
        count(&direct, "items_v2").await
    );
    // Every key went through the mirror. The guard queued only the key
    // change's keys (its writes go unmarked, so the guard sees their old
    // keys), which the mirror had already settled.
    let queued: Vec<String> = direct
        .query("SELECT DISTINCT key->>0 FROM switchyard_repair_queue WHERE source = 'proxy_unparsed' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(queued, vec!["1002", "1003", "2", "3"]);
    assert_eq!(
        count(
            &direct,
            "switchyard_repair_queue WHERE source <> 'proxy_unparsed'"
        )
        .await,
        0
    );
    direct
        .batch_execute("DELETE FROM switchyard_repair_queue")
        .await
        .unwrap();
    // A write that bypasses the proxy is queued by the guard.
    direct
        .batch_execute("UPDATE items SET name = 'direct' WHERE name = 'kept'")
        .await
        .unwrap();
    let sources: Vec<String> = direct
        .query("SELECT source FROM switchyard_repair_queue", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sources, vec!["direct_client"]);
    // ... and counted on the proxy's metrics.
    common::eventually(
        Duration::from_secs(10),
        "the guard's entry counted",
        || async {
            let counted = common::http::counter(
                proxy.admin(),
                "switchyard_unmirrored_writes_total",
                &[("migration", "items_v2"), ("source", "direct_client")],
            )
            .await;
            (counted >= 1).then_some(())
        },
    )
    .await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_failed_mirror_queues_its_keys_with_the_write() {
    let (proxy, db, direct) = setup("mirror_repair", "repair").await;
    let client = proxy.connect(&db).await;
    // The target's CHECK refuses the price: the client's write stands.
    let got = client
        .simple_query("INSERT INTO items (id, name, price) VALUES (7, 'dear', 5000)")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![1]);
    // Extended protocol, inside a transaction (which goes on) and alone.
    client.batch_execute("BEGIN").await.unwrap();
    let n = client
        .execute(
            "INSERT INTO items (id, name, price) VALUES ($1, 'dear too', 6000)",
            &[&8i64],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    client.batch_execute("COMMIT").await.unwrap();
    let returned = client
        .query(
            "INSERT INTO items (id, name, price) VALUES ($1, 'dearest', 7000) RETURNING name",
            &[&9i64],
        )
        .await
        .unwrap();
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].len(), 1);
    assert_eq!(returned[0].get::<_, String>(0), "dearest");
    let queued: Vec<String> = direct
        .query("SELECT key::text FROM switchyard_repair_queue WHERE migration = 'items_v2' AND source = 'mirror_failed' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(queued, vec!["[\"7\"]", "[\"8\"]", "[\"9\"]"]);
    assert_eq!(count(&direct, "items WHERE id IN (8, 9)").await, 2);
    assert_eq!(count(&direct, "items WHERE id = 7").await, 1);
    assert_eq!(count(&direct, "items_v2 WHERE id = 7").await, 0);
    // Counted as such (metrics are per process: at least this one).
    let queued = common::http::counter(
        proxy.admin(),
        "switchyard_mirror_writes_total",
        &[("migration", "items_v2"), ("outcome", "repair_queued")],
    )
    .await;
    assert!(queued >= 1, "repair_queued counted {queued}");
    // The client's own error is its own, as the server gave it.
    let err = client
        .simple_query("INSERT INTO items (id, name) VALUES (7, 'twice')")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    common::drop_db(&db).await;
}

#[tokio::test]
async fn fail_write_fails_the_write_and_leaves_both_tables_as_they_were() {
    let (proxy, db, direct) = setup("mirror_fail", "fail_write").await;
    let client = proxy.connect(&db).await;
    client
        .simple_query("INSERT INTO items (id, name, price) VALUES (1, 'cheap', 5)")
        .await
        .unwrap();
    let err = client
        .simple_query("UPDATE items SET price = 5000 WHERE id = 1")
        .await
        .unwrap_err();
    let db_err = err.as_db_error().expect("a server error");
    assert_eq!(db_err.code().code(), "SYM01", "{db_err:?}");
    assert!(
        db_err.message().contains("items_v2"),
        "{}",
        db_err.message()
    );
    let price: String = direct
        .query_one("SELECT price::text FROM items WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(price, "5.00");
    assert_eq!(differences(&direct).await, 0);
    assert_eq!(count(&direct, "switchyard_repair_queue").await, 0);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_write_that_cannot_be_mirrored_is_refused_and_changes_nothing() {
    let (proxy, db, direct) = setup("mirror_refuse", "repair").await;
    let client = proxy.connect(&db).await;
    // Extended protocol: the batch fails as the statement would have.
    let err = client
        .execute("INSERT INTO items_v2 (id) VALUES ($1)", &[&1i64])
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("SYM01"));
    // After an extended batch whose statement the client closes in
    // the same flight as its next query.
    for sql in [
        "TRUNCATE items",
        "ALTER TABLE items_v2 ADD COLUMN extra int",
        "INSERT INTO items_v2 (id) VALUES (1)",
    ] {
        let err = client.simple_query(sql).await.unwrap_err();
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("SYM01"),
            "{sql}: {err:?}"
        );
    }
    // Counted by reason.
    let refused = common::http::counter(
        proxy.admin(),
        "switchyard_rejected_writes_total",
        &[("migration", "items_v2"), ("reason", "truncate")],
    )
    .await;
    assert!(refused >= 1, "truncate refusals counted {refused}");
    // The session goes on.
    client.simple_query("SELECT 1").await.unwrap();
    assert_eq!(count(&direct, "items").await, 0);
    assert_eq!(count(&direct, "items_v2").await, 0);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn several_statements_run_as_they_came_and_the_guard_queues_their_keys() {
    let (proxy, db, direct) = setup("mirror_several", "repair").await;
    let client = proxy.connect(&db).await;
    let got = client
        .simple_query("BEGIN; INSERT INTO items (id, name) VALUES (1, 'x'), (2, 'y'); COMMIT")
        .await
        .unwrap();
    assert_eq!(tags(&got), vec![0, 2, 0]);
    let queued: Vec<(String, String)> = direct
        .query(
            "SELECT key::text, source FROM switchyard_repair_queue ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        queued,
        vec![
            ("[\"1\"]".to_string(), "proxy_unparsed".to_string()),
            ("[\"2\"]".to_string(), "proxy_unparsed".to_string()),
        ]
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn clients_get_what_the_server_alone_would_answer() {
    let (proxy, db, direct) = setup("mirror_twin", "repair").await;
    let client = proxy.connect(&db).await;
    // A twin of the source, written directly, gives the answers.
    direct
        .batch_execute(
            "CREATE TABLE twin (LIKE items INCLUDING ALL);
             ALTER TABLE twin ALTER COLUMN id SET DEFAULT nextval('items_id_seq')",
        )
        .await
        .unwrap();
    let writes = [
        "INSERT INTO {t} (id, name, price) VALUES (1, 'a', 1.5), (2, 'b', 2), (3, 'c', NULL)",
        "INSERT INTO {t} AS x (id, name) VALUES (4, 'd') RETURNING x.name, x.price, upper(x.name) AS shout",
        "INSERT INTO {t} (id, name) VALUES (1, 'again') ON CONFLICT (id) DO NOTHING",
        "INSERT INTO {t} (id, name) VALUES (2, 'again') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id, name",
        "UPDATE {t} SET price = coalesce(price, 0) + 1 WHERE id <= 3 RETURNING *",
        "UPDATE {t} SET id = id + 100 WHERE id = 3",
        "UPDATE {t} SET name = 'none' WHERE id = 99",
        "DELETE FROM {t} WHERE id = 4 RETURNING name",
        "WITH gone AS (SELECT 2 AS id) DELETE FROM {t} WHERE id IN (SELECT id FROM gone)",
    ];
    // What a client sees: each message's kind, rows' values (minus the
    // volatile columns the twin fills on its own), and row counts.
    let seen = |messages: Vec<SimpleQueryMessage>| -> Vec<String> {
        messages
            .into_iter()
            .map(|m| match m {
                SimpleQueryMessage::Row(row) => {
                    let columns: Vec<String> = row
                        .columns()
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| !matches!(c.name(), "made" | "token"))
                        .map(|(i, c)| format!("{}={:?}", c.name(), row.get(i)))
                        .collect();
                    format!("row {}", columns.join(" "))
                }
                SimpleQueryMessage::CommandComplete(n) => format!("complete {n}"),
                SimpleQueryMessage::RowDescription(fields) => format!(
                    "fields {}",
                    fields
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                _ => "other".into(),
            })
            .collect()
    };
    for sql in writes {
        let through = seen(
            client
                .simple_query(&sql.replace("{t}", "items"))
                .await
                .unwrap(),
        );
        let alone = seen(
            direct
                .simple_query(&sql.replace("{t}", "twin"))
                .await
                .unwrap(),
        );
        assert_eq!(through, alone, "{sql}");
    }
    // Extended protocol: row counts and RETURNING rows.
    for (sql, id) in [
        (
            "UPDATE {t} SET name = $1 WHERE id = 1 RETURNING id, name",
            "z",
        ),
        ("DELETE FROM {t} WHERE name = $1", "none"),
    ] {
        let through = client
            .query(&sql.replace("{t}", "items"), &[&id])
            .await
            .unwrap();
        let alone = direct
            .query(&sql.replace("{t}", "twin"), &[&id])
            .await
            .unwrap();
        assert_eq!(through.len(), alone.len(), "{sql}");
        for (a, b) in through.iter().zip(&alone) {
            assert_eq!(a.len(), b.len(), "{sql}");
            assert_eq!(a.get::<_, i64>(0), b.get::<_, i64>(0), "{sql}");
        }
    }
    assert_eq!(differences(&direct).await, 0);
    common::drop_db(&db).await;
}
