//! The dual write across servers: the target is reached through a relay
//! the test can cut, so it is "another server" to the proxy. Writes put
//! their keys in the outbox in the client's transaction; two proxies' appliers
//! copy the rows; the relay is cut mid-run and nothing is lost. The proof
//! is the data: each side read with the test's own SQL and compared.

use std::sync::Arc;
use std::time::Duration;

use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::conn::Conn;
use switchyard_consistency::diff::report::{Level, Report};
use switchyard_consistency::diff::{Connect, Job, Options};
use switchyard_core::schema::Mapping;
use switchyard_core::sql::Dialect;
use switchyard_core::store::pg as store;
use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::Client;

use crate::common::{self, catalog, Proxy};

async fn rows(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The source's rows and the target's, each as `id|name|price|made` text.
async fn both(source: &Client, target: &Client) -> (Vec<String>, Vec<String>) {
    (
        rows(
            source,
            "SELECT concat_ws('|', id, name, price, made) FROM items ORDER BY id",
        )
        .await,
        rows(
            target,
            "SELECT concat_ws('|', id, title, price, made) FROM items_v2 ORDER BY id",
        )
        .await,
    )
}

/// Opens direct connections to the source's database and the target's.
struct Sides(String, String);

impl Connect for Sides {
    async fn open(&self, target: bool) -> Result<Conn, String> {
        let db = if target { &self.1 } else { &self.0 };
        Ok(Conn::Postgres(common::direct(db).await))
    }
}

/// A detailed diff of migration `items_v2` across the two databases.
async fn cross_diff(db: &str, target_db: &str, mapping: &Mapping) -> Report {
    let compared = Compared::new(Dialect::Postgres, mapping, &["id".to_string()], None).unwrap();
    let options = Options {
        level: Level::Detailed,
        settle: Duration::from_secs(60),
        outbox_pending: Some(
            "SELECT count(*)::text FROM switchyard_outbox WHERE migration = 'items_v2'".into(),
        ),
        ..Options::default()
    };
    let job = Job {
        migration: "items_v2",
        compared: &compared,
        connect: &Sides(db.to_string(), target_db.to_string()),
        one_connection: false,
    };
    job.run(&options, &|_| {}).await.unwrap()
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
    let source = common::direct(&db).await;
    let target = common::direct(&target_db).await;
    source
        .batch_execute(&format!(
            "CREATE TABLE items (id bigserial PRIMARY KEY, name text, price numeric(10,2), made timestamptz DEFAULT clock_timestamp()); {}",
            store::install("public").join(";\n")
        ))
        .await
        .unwrap();
    target
        .batch_execute("CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text, price numeric(12,2), made timestamptz)")
        .await
        .unwrap();
    let mut relay = common::Forwarder::start("127.0.0.1:5432").await;
    let yaml = format!(
        "{}migrations:
  - id: items_v2
    backend: pg
    source: {{ database: {db}, schema: public, table: items, primary_key: [id] }}
    target: {{ backend: far, database: {target_db}, table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
",
        common::base_yaml().replace(
            "routes:",
            &format!(
                "  far: {{ kind: postgres, host: 127.0.0.1, port: {}, user: postgres, password: \"\" }}\nroutes:",
                relay.port
            )
        )
    );
    // Two proxies, so two appliers copy at once.
    let first = start(&yaml).await;
    let second = start(&yaml).await;
    let clients = [first.connect(&db).await, second.connect(&db).await];

    let mut n = 0;
    for round in 0..6 {
        if round == 2 {
            relay.down().await;
        }
        if round == 4 {
            relay.up().await;
        }
        for client in &clients {
            n += 1;
            client
                .simple_query(&format!(
                    "INSERT INTO items (name, price) VALUES ('n{n}', {n}), ('m{n}', NULL)"
                ))
                .await
                .unwrap();
            client
                .execute(
                    "UPDATE items SET price = coalesce(price, 0) + 1 WHERE id % 3 = $1",
                    &[&((n % 3) as i64)],
                )
                .await
                .unwrap();
            client
                .simple_query(&format!(
                    "UPDATE items SET id = id + 100000 WHERE name = 'm{n}'"
                ))
                .await
                .unwrap();
            client
                .execute("DELETE FROM items WHERE id % 7 = $1", &[&((n % 7) as i64)])
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    common::eventually(Duration::from_secs(30), "the outbox drains", || async {
        let left: i64 = source
            .query_one("SELECT count(*) FROM switchyard_outbox", &[])
            .await
            .unwrap()
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    // A diff across the two servers once the outbox is drained (the diff
    // waits for it too) finds the tables equal.
    let mapping = catalog::ready(&first.running, "items_v2").await;
    let report = cross_diff(&db, &target_db, &mapping).await;
    assert!(report.clean, "{report}");
    let (source_rows, target_rows) = both(&source, &target).await;
    assert!(!source_rows.is_empty());
    assert_eq!(source_rows, target_rows);
    // Nothing went to repair: every write was recorded in the outbox.
    let queued: i64 = source
        .query_one("SELECT count(*) FROM switchyard_repair_queue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);
    common::drop_db(&db).await;
    common::drop_db(&target_db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_its_own_writes_until_the_applier_has_copied_them() {
    let db = common::create_db("outbox_ryw").await;
    let target_db = common::create_db("outbox_ryw_tgt").await;
    let source = common::direct(&db).await;
    let target = common::direct(&target_db).await;
    source
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text); {}",
            store::install("public").join(";\n")
        ))
        .await
        .unwrap();
    // A row only the target has tells which table answered. The target is
    // in another database of the same server: its reads take a second
    // connection there, its writes the outbox.
    target
        .batch_execute("CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text); INSERT INTO items_v2 VALUES (0, 'only on the target')")
        .await
        .unwrap();
    let yaml = format!(
        "{}migrations:
  - id: items_v2
    backend: pg
    source: {{ database: {db}, schema: public, table: items, primary_key: [id] }}
    target: {{ database: {target_db}, table: items_v2 }}
    columns: {{ name: title }}
    phase: read_ramp
    reads: {{ strategy: immediate, path: target }}
    rollback: {{ max_latency_ratio: 1000 }}
",
        common::base_yaml()
    );
    let proxy = start(&yaml).await;
    let client = proxy.connect(&db).await;
    for id in 1..=20i64 {
        client
            .execute("INSERT INTO items VALUES ($1, 'mine')", &[&id])
            .await
            .unwrap();
        let row = client
            .query_opt("SELECT name FROM items WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(
            row.map(|r| r.get::<_, String>(0)).as_deref(),
            Some("mine"),
            "key {id}"
        );
    }
    // Once the applier has caught up, the session reads the target again.
    common::eventually(
        Duration::from_secs(20),
        "reads return to the target",
        || async {
            let n: i64 = client
                .query_one("SELECT count(*) FROM items WHERE id = 0", &[])
                .await
                .unwrap()
                .get(0);
            (n == 1).then_some(())
        },
    )
    .await;
    let copied = rows(&target, "SELECT title FROM items_v2 WHERE id > 0").await;
    assert_eq!(copied.len(), 20);
    common::drop_db(&db).await;
    common::drop_db(&target_db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applier_updates_rows_in_place_so_the_targets_cascades_do_not_fire() {
    let db = common::create_db("outbox_cascade").await;
    let target_db = common::create_db("outbox_cascade_t").await;
    let source = common::direct(&db).await;
    let target = common::direct(&target_db).await;
    source
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text); {}",
            store::install("public").join(";\n")
        ))
        .await
        .unwrap();
    // A table of the target's own refers to it, deleting with it.
    target
        .batch_execute(
            "CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text);
             CREATE TABLE notes (item bigint REFERENCES items_v2 ON DELETE CASCADE, note text)",
        )
        .await
        .unwrap();
    let yaml = format!(
        "{}migrations:
  - id: items_v2
    backend: pg
    source: {{ database: {db}, schema: public, table: items, primary_key: [id] }}
    target: {{ database: {target_db}, table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
",
        common::base_yaml()
    );
    let proxy = start(&yaml).await;
    let client = proxy.connect(&db).await;
    client
        .batch_execute("INSERT INTO items VALUES (1, 'first'), (2, 'second')")
        .await
        .unwrap();
    let copied = || async {
        rows(
            &target,
            "SELECT concat_ws('|', id, title) FROM items_v2 ORDER BY id",
        )
        .await
    };
    common::eventually(Duration::from_secs(20), "the rows are copied", || async {
        (copied().await.len() == 2).then_some(())
    })
    .await;
    target
        .batch_execute("INSERT INTO notes VALUES (1, 'kept'), (2, 'goes with its row')")
        .await
        .unwrap();
    client
        .batch_execute("UPDATE items SET name = 'renamed' WHERE id = 1")
        .await
        .unwrap();
    client
        .batch_execute("DELETE FROM items WHERE id = 2")
        .await
        .unwrap();
    common::eventually(
        Duration::from_secs(20),
        "the changes are copied",
        || async { (copied().await == ["1|renamed"]).then_some(()) },
    )
    .await;
    // The update did not delete and insert the row again: its note stays.
    assert_eq!(
        rows(&target, "SELECT concat_ws('|', item, note) FROM notes").await,
        ["1|kept"]
    );
    common::drop_db(&db).await;
    common::drop_db(&target_db).await;
}
