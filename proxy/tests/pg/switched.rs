//! After the write switch the target takes the writes: a client's write of
//! the source, unchanged, lands in the target and is mirrored back to the
//! source in the same transaction; after `complete` it lands in the target
//! alone. The proof is the data, compared with the test's own SQL, and
//! the answers the client gets (its own RETURNING names, its tags).

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::Proxy;

const TABLES: &str = "
    CREATE TABLE items (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        price numeric(10,2)
    );
    CREATE TABLE items_v2 (
        id bigserial PRIMARY KEY,
        title text NOT NULL,
        price numeric(12,2)
    );
    SELECT setval('items_v2_id_seq', 1000);
";

/// Both tables, the store, the guard on the target (where the write switch
/// moves it) and a proxy with the migration in `phase`; in `complete` the
/// source is archived, as `complete` leaves it.
async fn setup(prefix: &str, phase: &str) -> (Proxy, String, Client) {
    let archive = match phase {
        "complete" => "ALTER TABLE items RENAME TO items_archived",
        _ => "",
    };
    crate::mirror::setup_phase(prefix, TABLES, "repair", phase, archive).await
}

async fn rows_of(direct: &Client, sql: &str) -> Vec<String> {
    direct
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

const SOURCE_ROWS: &str = "SELECT format('%s|%s|%s', id, name, price) FROM items ORDER BY id";
const TARGET_ROWS: &str = "SELECT format('%s|%s|%s', id, title, price) FROM items_v2 ORDER BY id";

fn tag(messages: &[SimpleQueryMessage]) -> Option<u64> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    })
}

#[tokio::test]
async fn writes_land_in_the_target_and_are_mirrored_back() {
    let (proxy, db, direct) = setup("switched", "write_switch").await;
    let client = proxy.connect(&db).await;

    // Simple protocol, the target's sequence, the client's RETURNING.
    let got = client
        .simple_query(
            "INSERT INTO items (name, price) VALUES ('a', 1.50), ('b', NULL) RETURNING id, name",
        )
        .await
        .unwrap();
    let returned: Vec<(String, String)> = got
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                assert_eq!(r.columns()[1].name(), "name");
                Some((r.get(0).unwrap().into(), r.get(1).unwrap().into()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        returned,
        [("1001".into(), "a".into()), ("1002".into(), "b".into())]
    );
    assert_eq!(tag(&got), Some(2));

    // Extended protocol: `*` comes back under the source's names.
    let row = client
        .query_one("INSERT INTO items (name) VALUES ($1) RETURNING *", &[&"c"])
        .await
        .unwrap();
    let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["id", "name", "price"]);
    assert_eq!(row.get::<_, i64>(0), 1003);
    assert_eq!(row.get::<_, String>(1), "c");

    let n = client
        .execute(
            "UPDATE items SET name = upper(name) WHERE id = $1",
            &[&1001i64],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = client
        .execute("DELETE FROM items WHERE name = 'b'", &[])
        .await
        .unwrap();
    assert_eq!(n, 1);
    client
        .batch_execute(
            "INSERT INTO items (id, name) VALUES (1003, 'c2') \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
        )
        .await
        .unwrap();

    // A rolled-back transaction leaves neither table changed.
    client
        .batch_execute("BEGIN; INSERT INTO items (name) VALUES ('gone'); ROLLBACK")
        .await
        .unwrap();

    let target = rows_of(&direct, TARGET_ROWS).await;
    assert_eq!(target, ["1001|A|1.50", "1003|c2|"]);
    assert_eq!(rows_of(&direct, SOURCE_ROWS).await, target);

    // What cannot be rewritten with certainty is refused, naming the
    // target and the fix; nothing is written.
    let err = client
        .batch_execute("INSERT INTO items (id, name) VALUES (7, 'x') ON CONFLICT ON CONSTRAINT items_pkey DO NOTHING")
        .await
        .unwrap_err();
    let text = err.as_db_error().unwrap().message().to_string();
    assert!(
        text.contains("items_v2") && text.contains("cannot be rewritten"),
        "{text}"
    );
    assert_eq!(rows_of(&direct, TARGET_ROWS).await.len(), 2);

    // The session still works after a refusal.
    client.simple_query("SELECT 1").await.unwrap();

    // A writer that bypasses the proxy writes the target; the guard there
    // queues its key for repair.
    direct
        .batch_execute("UPDATE items_v2 SET price = 9 WHERE id = 1001")
        .await
        .unwrap();
    let queued: i64 = direct
        .query_one(
            "SELECT count(*) FROM switchyard_repair_queue WHERE migration = 'items_v2'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 1);

    // A value the source's narrower type cannot hold: the client's write
    // stands on the target, and its key waits in the repair queue (the
    // rollback is no longer lossless, which the queue shows).
    let row = client
        .query_one(
            "INSERT INTO items (name, price) VALUES ('wide', 123456789) RETURNING id",
            &[],
        )
        .await
        .unwrap();
    let id: i64 = row.get(0);
    let queued: Vec<String> = rows_of(
        &direct,
        "SELECT key::text || ' ' || source FROM switchyard_repair_queue \
         WHERE migration = 'items_v2' ORDER BY id",
    )
    .await;
    assert_eq!(queued.last().unwrap(), &format!("[\"{id}\"] mirror_failed"));
    let on_source: i64 = direct
        .query_one("SELECT count(*) FROM items WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_source, 0);
}

#[tokio::test]
async fn after_complete_writes_land_in_the_target_alone() {
    // The source is archived: the client's text (prepared by the driver
    // before each execution) is prepared in its target form.
    let (proxy, db, direct) = setup("switched_done", "complete").await;
    let client = proxy.connect(&db).await;
    let row = client
        .query_one(
            "INSERT INTO items (name, price) VALUES ($1, 2) RETURNING id, name, price",
            &[&"only"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1001);
    client
        .execute(
            "UPDATE items SET price = price * 2 WHERE name = 'only'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows_of(&direct, TARGET_ROWS).await, ["1001|only|4.00"]);
    let archived = "SELECT id::text FROM items_archived";
    assert!(rows_of(&direct, archived).await.is_empty());
    // Reads follow: the client reads its write back under its own names.
    let row = client
        .query_one("SELECT name, price::text FROM items WHERE id = 1001", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "only");
    // A binary parameter binds the form the statement was prepared in.
    let row = client
        .query_one("SELECT name FROM items WHERE id = $1", &[&1001i64])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "only");
}
