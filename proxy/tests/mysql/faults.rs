//! Bad input and failures: each gets a clear error, and nothing else is
//! harmed. Malformed packets, an unreachable or dying backend, a client
//! that vanishes mid-transaction, and the graceful drain.

use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::wire::mysql::message::COM_QUERY;

use crate::common::{self, base_yaml, err_fields, Forwarder, RawMy, DEADLINE};

#[tokio::test]
async fn a_malformed_handshake_gets_an_error_and_the_connection_closes() {
    let proxy = common::start_default().await;
    let mut bystander = proxy.connect("mysql").await;
    let mut raw = RawMy::open(proxy.addr).await;
    raw.send_packet(1, &[0x01, 0x02, 0x03]).await;
    let err = raw.packet().await.expect("an ERR before the close");
    let (code, state, message) = err_fields(&err.payload);
    assert_eq!((code, state.as_str()), (1043, "08S01"), "{message}");
    raw.expect_closed().await;
    let one: Option<i64> = bystander.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "other sessions keep running");
}

#[tokio::test]
async fn a_command_out_of_sequence_gets_an_error_and_the_connection_closes() {
    let proxy = common::start_default().await;
    let mut bystander = proxy.connect("mysql").await;
    let mut raw = RawMy::login(proxy.addr, "app_empty", "", None).await;
    raw.send_packet(
        5,
        &[COM_QUERY, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1'],
    )
    .await;
    let err = raw.packet().await.expect("an ERR before the close");
    let (code, state, message) = err_fields(&err.payload);
    assert_eq!((code, state.as_str()), (1156, "08S01"), "{message}");
    raw.expect_closed().await;

    // A packet larger than limits.max_frame_bytes is refused from its header.
    let yaml = format!("{}limits: {{ max_frame_bytes: 4096 }}\n", base_yaml());
    let small = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let mut raw = RawMy::login(small.addr, "app_empty", "", None).await;
    raw.send(&[0x00, 0x00, 0x10, 0x00, COM_QUERY]).await;
    let err = raw.packet().await.expect("an ERR before the close");
    let (code, state, message) = err_fields(&err.payload);
    assert_eq!((code, state.as_str()), (1153, "08S01"), "{message}");
    raw.expect_closed().await;

    let one: Option<i64> = bystander.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "other sessions keep running");
}

#[tokio::test]
async fn an_unreachable_backend_gets_a_clear_error_and_the_proxy_recovers() {
    let mut forwarder = Forwarder::start("127.0.0.1:3306").await;
    let yaml = base_yaml().replace("port: 3306", &format!("port: {}", forwarder.port));
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let mut before = proxy.connect("mysql").await;
    let mut busy = proxy.connect("mysql").await;
    let sleeping = tokio::spawn(async move { busy.query_drop("SELECT SLEEP(20)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    forwarder.down().await;
    // A statement running when the backend goes gets the error at once.
    let err = tokio::time::timeout(DEADLINE, sleeping)
        .await
        .expect("the error comes at once")
        .unwrap()
        .unwrap_err();
    let (code, state, message) = common::server_error(&err);
    assert_eq!((code, state.as_str()), (2013, "08S01"), "{message}");
    assert!(message.contains("backend `my`"), "{message}");
    let err = proxy.try_connect("app", "app", None).await.unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 2003, "{message}");
    assert!(
        message.contains("backend `my`") && message.contains("unreachable"),
        "{message}"
    );
    // The session that lost its backend is told with its next command.
    let err = before.query_drop("SELECT 1").await.unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 2013, "{message}");
    assert!(message.contains("backend `my`"), "{message}");

    forwarder.up().await;
    let mut after = proxy.connect("mysql").await;
    let one: Option<i64> = after.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "new sessions work once the backend is back");
    forwarder.down().await;
}

#[tokio::test]
async fn a_client_vanishing_mid_transaction_releases_its_locks() {
    let db = common::create_db("vanish").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop(
            "CREATE TABLE l (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO l VALUES (1, 0)",
        )
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let mut raw = RawMy::login(proxy.addr, "app_empty", "", Some(&db)).await;
    for sql in ["BEGIN", "UPDATE l SET v = v + 1 WHERE id = 1"] {
        let mut payload = vec![COM_QUERY];
        payload.extend_from_slice(sql.as_bytes());
        raw.send_packet(0, &payload).await;
        assert_eq!(raw.packet().await.unwrap().payload[0], 0x00, "{sql}");
    }
    direct
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    assert!(
        direct
            .query_drop("UPDATE l SET v = v + 10 WHERE id = 1")
            .await
            .is_err(),
        "the row is locked"
    );
    drop(raw);
    let started = tokio::time::Instant::now();
    loop {
        if direct
            .query_drop("UPDATE l SET v = v + 10 WHERE id = 1")
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the lock was not released within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v: Option<i32> = direct
        .query_first("SELECT v FROM l WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(v, Some(10), "the vanished client's update was rolled back");
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn drain_closes_idle_sessions_and_waits_for_transactions() {
    let db = common::create_db("drain").await;
    let mut direct = common::direct(Some(&db)).await;
    direct
        .query_drop("CREATE TABLE d (v INT) ENGINE=InnoDB")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let mut idle = proxy.connect(&db).await;
    let mut busy = proxy.connect(&db).await;
    busy.query_drop("BEGIN").await.unwrap();
    busy.query_drop("INSERT INTO d VALUES (1)").await.unwrap();

    let shared = proxy.running.shared.clone();
    let drain = tokio::spawn(async move { proxy.running.drain().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(idle.ping().await.is_err(), "an idle session is closed");
    assert!(shared.active_connections() >= 1);
    busy.query_drop("INSERT INTO d VALUES (2)").await.unwrap();
    busy.query_drop("COMMIT").await.unwrap();
    let left = tokio::time::timeout(DEADLINE, drain)
        .await
        .expect("drain finishes")
        .unwrap();
    assert_eq!(left, 0);
    let count: Option<i64> = direct.query_first("SELECT COUNT(*) FROM d").await.unwrap();
    assert_eq!(
        count,
        Some(2),
        "the transaction finished before its session closed"
    );
    direct.disconnect().await.unwrap();
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_backend_never_seen_answers_with_an_error_instead_of_a_greeting() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let yaml = base_yaml().replace("port: 3306", &format!("port: {port}"));
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let err = proxy.try_connect("app", "app", None).await.unwrap_err();
    let (code, _, message) = common::server_error(&err);
    assert_eq!(code, 2003, "{message}");
    assert!(
        message.contains(&format!("backend `my` at 127.0.0.1:{port} is unreachable")),
        "{message}"
    );
}
