//! The protocol features a proxy must relay faithfully: COPY in both
//! directions, asynchronous messages (notifications, notices), cancel
//! requests, transaction status, pipelining, large values and errors in the
//! middle of an extended-protocol batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::common::{self, fe, RawPg, DEADLINE};

/// Waits for the next asynchronous message of a watched connection.
async fn next_message(watched: &mut common::Watched) -> AsyncMessage {
    tokio::time::timeout(DEADLINE, watched.messages.recv())
        .await
        .expect("an asynchronous message in time")
        .expect("connection still open")
}

#[tokio::test]
async fn copy_in_and_out_of_ten_thousand_rows() {
    let db = common::create_db("proto_copy").await;
    common::direct(&db)
        .await
        .batch_execute("CREATE TABLE t (id int primary key, v text)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let client = proxy.connect(&db).await;

    let sink = client.copy_in("COPY t (id, v) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    for chunk in 0..10 {
        let mut data = String::new();
        for id in chunk * 1000 + 1..=(chunk + 1) * 1000 {
            data.push_str(&format!("{id}\tvalue {id}\n"));
        }
        sink.send(Bytes::from(data)).await.unwrap();
    }
    assert_eq!(sink.finish().await.unwrap(), 10_000);
    client
        .simple_query("SELECT 1")
        .await
        .expect("the session answers after COPY FROM STDIN");

    let (count, sum): (i64, i64) = {
        let row = common::direct(&db)
            .await
            .query_one("SELECT count(*), sum(id)::bigint FROM t", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((count, sum), (10_000, 50_005_000));

    let stream = client
        .copy_out("COPY (SELECT id, v FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    let mut sum_out = 0i64;
    for (i, line) in lines.iter().enumerate() {
        let (id, v) = line.split_once('\t').unwrap();
        let id: i64 = id.parse().unwrap();
        assert_eq!(id, i as i64 + 1);
        assert_eq!(v, format!("value {id}"));
        sum_out += id;
    }
    assert_eq!(sum_out, sum);

    // A COPY that fails on the server leaves the session usable.
    let sink = client.copy_in("COPY t (id, v) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(b"1\tduplicate\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    assert_eq!(
        client
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        10_000
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn listen_notify_across_two_proxied_connections() {
    let db = common::create_db("proto_notify").await;
    let proxy = common::start_default().await;
    let mut listener = proxy.connect_watched("app", "app", &db).await.unwrap();
    listener
        .client
        .batch_execute("LISTEN sy_chan")
        .await
        .unwrap();

    let notifier = proxy.connect(&db).await;
    let pid: i32 = notifier
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    notifier
        .batch_execute("NOTIFY sy_chan, 'first'")
        .await
        .unwrap();
    notifier
        .query("SELECT pg_notify('sy_chan', $1)", &[&"second"])
        .await
        .unwrap();

    // The listener is idle: the notifications arrive unprompted.
    for payload in ["first", "second"] {
        match next_message(&mut listener).await {
            AsyncMessage::Notification(n) => {
                assert_eq!((n.channel(), n.payload()), ("sy_chan", payload));
                assert_eq!(n.process_id(), pid);
            }
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    // And the listener's session still answers in step.
    assert_eq!(
        listener
            .client
            .query_one("SELECT 5", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        5
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn notices_reach_the_client() {
    let db = common::create_db("proto_notice").await;
    let proxy = common::start_default().await;
    let mut watched = proxy.connect_watched("app", "app", &db).await.unwrap();
    watched
        .client
        .batch_execute("DO $$BEGIN RAISE NOTICE 'hi'; END$$")
        .await
        .unwrap();
    match next_message(&mut watched).await {
        AsyncMessage::Notice(n) => {
            assert_eq!(n.message(), "hi");
            assert_eq!(n.severity(), "NOTICE");
        }
        other => panic!("expected a notice, got {other:?}"),
    }
    // A notice in the middle of an extended-protocol query, too.
    watched
        .client
        .batch_execute("CREATE FUNCTION noisy(n int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'noisy %', n; RETURN n; END$$")
        .await
        .unwrap();
    let row = watched
        .client
        .query_one("SELECT noisy($1)", &[&7i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    match next_message(&mut watched).await {
        AsyncMessage::Notice(n) => assert_eq!(n.message(), "noisy 7"),
        other => panic!("expected a notice, got {other:?}"),
    }
    common::drop_db(&db).await;
}

#[tokio::test]
async fn cancel_stops_a_running_query_and_the_session_goes_on() {
    let db = common::create_db("proto_cancel").await;
    let proxy = common::start_default().await;
    let client = Arc::new(proxy.connect(&db).await);
    let runner = client.clone();
    let started = Instant::now();
    let query = tokio::spawn(async move { runner.simple_query("SELECT pg_sleep(30)").await });

    let direct = common::direct(&db).await;
    common::eventually(DEADLINE, "pg_sleep to run on the server", || async {
        let n: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(30)'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (n == 1).then_some(())
    })
    .await;

    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("cancel request sent");
    let result = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .expect("the cancelled query ends within 10 s")
        .unwrap();
    let err = result.expect_err("the query must be cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        client
            .query_one("SELECT 11", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        11
    );

    // A cancel aimed at another, idle session leaves this one alone.
    let other = proxy.connect(&db).await;
    other
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("cancel request sent");
    assert_eq!(
        client
            .query_one("SELECT 12", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        12
    );
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_failed_transaction_refuses_statements_until_rollback() {
    let db = common::create_db("proto_txn").await;
    common::direct(&db)
        .await
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let client = proxy.connect(&db).await;

    client
        .batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let err = client.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let err = client.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err:?}"
    );
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err:?}"
    );
    client.batch_execute("ROLLBACK").await.unwrap();

    assert_eq!(
        client
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "the rolled back insert is gone");

    // A transaction helper commits through the proxy.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let n: i64 = common::direct(&db)
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn pipelined_queries_get_their_own_answers() {
    let db = common::create_db("proto_pipeline").await;
    let proxy = common::start_default().await;
    let client = proxy.connect(&db).await;
    let stmt = client
        .prepare("SELECT $1::int * 2, repeat('x', $1::int)")
        .await
        .unwrap();

    let queries = (0..200).map(|i: i32| {
        let (client, stmt) = (&client, &stmt);
        async move {
            if i % 3 == 0 {
                let rows = client
                    .simple_query(&format!("SELECT {i} + 1"))
                    .await
                    .unwrap();
                let value = rows.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                });
                (i, value.unwrap().parse::<i32>().unwrap() - 1, i as usize)
            } else {
                let row = client.query_one(stmt, &[&i]).await.unwrap();
                (i, row.get::<_, i32>(0) / 2, row.get::<_, String>(1).len())
            }
        }
    });
    let results = futures_util::future::join_all(queries).await;
    for (i, value, len) in results {
        assert_eq!((value, len), (i, i as usize), "query {i}");
    }
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_five_megabyte_value_round_trips() {
    let db = common::create_db("proto_large").await;
    common::direct(&db)
        .await
        .batch_execute("CREATE TABLE big (v text)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let client = proxy.connect(&db).await;

    let value: String = (0..5 * 1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let row = client
        .query_one("SELECT $1::text, length($1::text)", &[&value])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(1), value.len() as i32);
    assert!(
        row.get::<_, String>(0) == value,
        "the value came back changed"
    );

    client
        .execute("INSERT INTO big VALUES ($1)", &[&value])
        .await
        .unwrap();
    let stored: String = common::direct(&db)
        .await
        .query_one("SELECT v FROM big", &[])
        .await
        .unwrap()
        .get(0);
    assert!(stored == value, "the stored value differs");
    // Generated on the server, through the simple protocol.
    let rows = client
        .simple_query("SELECT repeat('ab', 2621440)")
        .await
        .unwrap();
    let got = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::len),
            _ => None,
        })
        .unwrap();
    assert_eq!(got, 5 * 1024 * 1024);
    common::drop_db(&db).await;
}

#[tokio::test]
async fn an_error_mid_batch_skips_to_sync_and_the_session_goes_on() {
    let db = common::create_db("proto_batch").await;
    let proxy = common::start_default().await;

    // One extended batch, one Sync: the server skips everything after the
    // error until the Sync, and the proxy must stay in step with that.
    let mut raw = RawPg::login_trust(proxy.addr, "app_trust", &db).await;
    let mut batch = Vec::new();
    for sql in ["SELECT 1", "SELECT 1/(random() * 0)::int", "SELECT 3"] {
        batch.extend(fe::parse("", sql));
        batch.extend(fe::bind("", ""));
        batch.extend(fe::execute(""));
    }
    batch.extend(fe::sync());
    raw.send(&batch).await;
    let frames = raw.until_ready().await;
    let tags: String = frames.iter().map(|(t, _)| char::from(*t)).collect();
    assert!(tags.starts_with("12DC"), "{tags}");
    assert!(tags.ends_with("EZ"), "{tags}");
    assert_eq!(
        tags.matches('D').count(),
        1,
        "nothing after the error runs: {tags}"
    );
    let (_, error) = &frames[frames.len() - 2];
    assert_eq!(
        common::error_fields(error).get(&b'C').map(String::as_str),
        Some("22012")
    );
    assert_eq!(frames.last().unwrap().1, b"I");

    // The next batch on the same connection is answered normally.
    let mut batch = fe::parse("", "SELECT 42");
    batch.extend(fe::bind("", ""));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    batch.extend(fe::query("SELECT 43"));
    raw.send(&batch).await;
    let frames = raw.until_ready().await;
    let tags: String = frames.iter().map(|(t, _)| char::from(*t)).collect();
    assert_eq!(tags, "12DCZ");
    assert!(frames[2].1.ends_with(b"42"), "{:?}", frames[2]);
    let frames = raw.until_ready().await;
    let tags: String = frames.iter().map(|(t, _)| char::from(*t)).collect();
    assert_eq!(tags, "TDCZ");
    assert!(frames[1].1.ends_with(b"43"), "{:?}", frames[1]);

    // The same through tokio-postgres: pipelined, each with its own Sync.
    let client = proxy.connect(&db).await;
    let (a, b, c, d) = tokio::join!(
        client.query_one("SELECT 1", &[]),
        client.query_one("SELECT 1/0", &[]),
        client.query_one("SELECT 3", &[]),
        client.simple_query("SELECT 4"),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 1);
    assert_eq!(b.unwrap_err().code(), Some(&SqlState::DIVISION_BY_ZERO));
    assert_eq!(c.unwrap().get::<_, i32>(0), 3);
    assert!(d.is_ok());
    common::drop_db(&db).await;
}

#[tokio::test]
async fn extended_copy_in_answers_one_ready_for_two_syncs() {
    let db = common::create_db("proto_copy_sync").await;
    common::direct(&db)
        .await
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .unwrap();
    let proxy = common::start_default().await;
    let mut raw = RawPg::login_trust(proxy.addr, "app_trust", &db).await;

    // What tokio-postgres sends for copy_in: Bind/Execute/Sync, the data,
    // CopyDone, Sync. The server ignores the Sync that arrives in COPY IN
    // mode, so only one ReadyForQuery answers the two Syncs.
    let mut batch = fe::parse("", "COPY t FROM STDIN");
    batch.extend(fe::bind("", ""));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    batch.extend([b'd', 0, 0, 0, 6, b'1', b'\n']);
    batch.extend([b'c', 0, 0, 0, 4]);
    batch.extend(fe::sync());
    batch.extend(fe::parse("", "SELECT 5"));
    batch.extend(fe::bind("", ""));
    batch.extend(fe::execute(""));
    batch.extend(fe::sync());
    raw.send(&batch).await;

    let (tags, _) = raw.tags_until_ready().await;
    assert_eq!(tags, "12GCZ");
    let (tags, frames) = raw.tags_until_ready().await;
    assert_eq!(tags, "12DCZ");
    assert!(frames[2].1.ends_with(b"5"), "{:?}", frames[2]);
    let n: i64 = common::direct(&db)
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    common::drop_db(&db).await;
}
