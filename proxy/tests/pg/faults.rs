//! Faults on either side of the proxy: malformed and oversized client
//! input, a backend that is unreachable or dies mid-session, and a client
//! that vanishes inside a transaction. Each fault must end only the session
//! it hits, with a clear error, and never hang.

use std::sync::Arc;

use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::error::SqlState;

use crate::common::{self, base_yaml, Forwarder, RawPg, DEADLINE};

async fn value(client: &tokio_postgres::Client, n: i32) -> i32 {
    tokio::time::timeout(DEADLINE, client.query_one("SELECT $1::int", &[&n]))
        .await
        .expect("answer in time")
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn malformed_startup_packets_get_08p01_and_a_close() {
    let db = common::create_db("fault_startup").await;
    let proxy = common::start_default().await;
    let cases: [(&str, Vec<u8>); 3] = [
        ("length 3", vec![0, 0, 0, 3, 0, 3, 0, 0]),
        ("length 1 GB", vec![0x40, 0, 0, 0, 0, 3, 0, 0]),
        ("protocol 2.0", vec![0, 0, 0, 8, 0, 2, 0, 0]),
    ];
    for (what, packet) in cases {
        let mut raw = RawPg::open(proxy.addr).await;
        raw.send(&packet).await;
        let (tag, body) = raw
            .frame()
            .await
            .unwrap_or_else(|| panic!("{what}: closed without an error"));
        assert_eq!(tag, b'E', "{what}");
        let fields = common::error_fields(&body);
        assert_eq!(
            fields.get(&b'C').map(String::as_str),
            Some("08P01"),
            "{what}: {fields:?}"
        );
        assert_eq!(
            fields.get(&b'S').map(String::as_str),
            Some("FATAL"),
            "{what}: {fields:?}"
        );
        assert!(
            fields
                .get(&b'M')
                .is_some_and(|m| m.contains("startup packet")),
            "{what}: {fields:?}"
        );
        assert_eq!(
            raw.frame().await,
            None,
            "{what}: the proxy closes the connection"
        );
    }
    // The listener is unharmed.
    assert_eq!(value(&proxy.connect(&db).await, 1).await, 1);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn an_oversized_frame_ends_only_that_session() {
    let db = common::create_db("fault_frame").await;
    let yaml = format!("{}limits: {{ max_frame_bytes: 4096 }}\n", base_yaml());
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let bystander = proxy.connect(&db).await;
    assert_eq!(value(&bystander, 1).await, 1);

    let victim = proxy.connect_watched("app", "app", &db).await.unwrap();
    // Just under the limit is fine.
    let fits = format!("SELECT '{}'", "y".repeat(3000));
    victim
        .client
        .simple_query(&fits)
        .await
        .expect("a 3 kB query fits in 4096 bytes");

    let big = format!("SELECT '{}'", "x".repeat(10_000));
    let err = tokio::time::timeout(DEADLINE, victim.client.simple_query(&big))
        .await
        .expect("an answer, not a hang")
        .expect_err("a 10 kB frame exceeds max_frame_bytes");
    let db_err = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected the proxy's error, got {err:?}"));
    assert_eq!(db_err.code(), &SqlState::PROTOCOL_VIOLATION, "{db_err:?}");
    assert!(
        db_err.message().contains("max_frame_bytes"),
        "{}",
        db_err.message()
    );
    tokio::time::timeout(DEADLINE, victim.conn)
        .await
        .expect("the proxy closes the session")
        .unwrap()
        .ok();
    assert!(victim.client.is_closed());

    assert_eq!(value(&bystander, 2).await, 2);
    assert_eq!(value(&proxy.connect(&db).await, 3).await, 3);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn an_unreachable_backend_fails_logins_until_it_returns() {
    let db = common::create_db("fault_unreachable").await;
    let mut forwarder = Forwarder::start("127.0.0.1:5432").await;
    let yaml = base_yaml().replace("port: 5432", &format!("port: {}", forwarder.port));
    assert_ne!(yaml, base_yaml());
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let before = proxy.connect_watched("app", "app", &db).await.unwrap();
    assert_eq!(value(&before.client, 1).await, 1);
    // tokio-postgres closes the statement behind `query_one` without waiting;
    // a round trip makes sure that answer is in before the backend goes.
    before.client.batch_execute("SELECT 1").await.unwrap();

    forwarder.down().await;
    // The open session loses its backend: an error, not a hang.
    let end = tokio::time::timeout(DEADLINE, before.conn)
        .await
        .expect("the session ends")
        .unwrap();
    let err = end.expect_err("the connection ends with the proxy's error");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err:?}");
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("backend `pg`")),
        "{err:?}"
    );

    let err = match proxy.try_connect("app", "app", &db).await {
        Ok(_) => panic!("login succeeded with the backend down"),
        Err(e) => e,
    };
    let db_err = err
        .as_db_error()
        .unwrap_or_else(|| panic!("expected the proxy's error, got {err:?}"));
    assert_eq!(db_err.code(), &SqlState::CONNECTION_FAILURE, "{db_err:?}");
    assert!(
        db_err.message().contains("backend `pg`"),
        "{}",
        db_err.message()
    );
    assert!(
        db_err.message().contains(&forwarder.port.to_string()),
        "{}",
        db_err.message()
    );

    forwarder.up().await;
    let after = common::eventually(DEADLINE, "a login after the backend returned", || async {
        proxy.try_connect("app", "app", &db).await.ok()
    })
    .await;
    assert_eq!(value(&after, 2).await, 2);
    forwarder.down().await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_terminated_backend_ends_only_its_session() {
    let db = common::create_db("fault_terminate").await;
    let proxy = common::start_default().await;
    let victim = proxy.connect_watched("app", "app", &db).await.unwrap();
    let survivor = proxy.connect(&db).await;
    let pid: i32 = victim
        .client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let survivor_pid: i32 = survivor
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(pid, survivor_pid);

    let killed: bool = common::direct(&db)
        .await
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);

    // The client hears why (the server's own FATAL is relayed) and its
    // connection ends; a query on it fails at once instead of hanging.
    let end = tokio::time::timeout(DEADLINE, victim.conn)
        .await
        .expect("the session ends")
        .unwrap();
    let err = end.expect_err("the connection ends with an error");
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
    let failed = tokio::time::timeout(DEADLINE, victim.client.query_one("SELECT 1", &[]))
        .await
        .expect("an error, not a hang");
    assert!(failed.is_err());

    assert_eq!(value(&survivor, 4).await, 4);
    assert_eq!(value(&proxy.connect(&db).await, 5).await, 5);
    common::eventually(DEADLINE, "the dead session to be released", || async {
        (proxy.running.shared.active_connections() == 2).then_some(())
    })
    .await;
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_vanished_client_releases_its_transaction() {
    let db = common::create_db("fault_vanish").await;
    let direct = common::direct(&db).await;
    direct
        .batch_execute("CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let gone = proxy.connect_watched("app", "app", &db).await.unwrap();
    gone.client
        .batch_execute("BEGIN; INSERT INTO t VALUES (2); SELECT * FROM t WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let err = direct
        .query("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT", &[])
        .await
        .expect_err("the row is locked by the proxied transaction");
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err:?}");

    // The client disappears without a Terminate message: the socket just
    // closes.
    gone.conn.abort();
    let _ = gone.conn.await;

    common::eventually(DEADLINE, "the lock to be released", || async {
        direct
            .query("SELECT id FROM t WHERE id = 1 FOR UPDATE NOWAIT", &[])
            .await
            .ok()
    })
    .await;
    let ids: Vec<i32> = direct
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1], "the uncommitted insert is rolled back");
    common::eventually(DEADLINE, "the proxy to drop the session", || async {
        (proxy.running.shared.active_connections() == 0).then_some(())
    })
    .await;
    common::drop_db(&db).await;
}
