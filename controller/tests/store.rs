//! The control store on the real servers (PostgreSQL on 127.0.0.1:5432,
//! MariaDB on 127.0.0.1:3306): installing twice is installing once, a
//! version-1 store is upgraded, a stale epoch cannot overwrite the state,
//! one controller holds the lease at a time, and heartbeats are listed by
//! age. Each test makes its own database and checks with SQL of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_core::config::{Percent, Phase};
use switchyard_core::store::{AuditEvent, Heartbeat, StateRow, STORE_VERSION};

/// A database name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "sy_{prefix}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `api_v2` at `phase` under `epoch`.
fn row(phase: Phase, epoch: u64) -> StateRow<'static> {
    StateRow {
        migration: "api_v2",
        phase,
        epoch,
        read_rule: None,
        share: Percent::ZERO,
        paused: false,
        pending_approval: None,
        holding_writes: false,
        rollback_reason: None,
    }
}

fn beat(proxy: &'static str, epoch: u64) -> Heartbeat<'static> {
    Heartbeat {
        proxy,
        migration: "api_v2",
        epoch,
        target_reads: 10,
        source_reads: 90,
        target_errors: 0,
        source_errors: 1,
        shadow_compared: 0,
        shadow_mismatches: 0,
    }
}

const EVENT: AuditEvent<'static> = AuditEvent {
    migration: "api_v2",
    actor: "ops@bastion",
    action: "advance",
    from: Some(Phase::Planned),
    to: Some(Phase::DualWrite),
    reason: Some("it's time"),
    detail: r#"{"ticket": "OPS-1"}"#,
};

/// The tables a version-2 store has, by name.
const TABLES: [&str; 7] = [
    "switchyard_controller_lease",
    "switchyard_events",
    "switchyard_outbox",
    "switchyard_proxy_stats",
    "switchyard_repair_queue",
    "switchyard_state",
    "switchyard_store_version",
];

/// The tables version 2 added, dropped to make a version-1 store.
const ADDED_IN_2: [&str; 4] = [
    "switchyard_state",
    "switchyard_events",
    "switchyard_proxy_stats",
    "switchyard_controller_lease",
];

const TTL: Duration = Duration::from_secs(10);

mod pg {
    use super::*;
    use switchyard_core::store::pg;
    use tokio_postgres::{Client, NoTls};

    async fn connect(db: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
            NoTls,
        )
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-databases.sh)");
        tokio::spawn(conn);
        client
    }

    /// A fresh database with the store installed in `public`.
    async fn fresh() -> (String, Client) {
        let db = unique("store");
        connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let client = connect(&db).await;
        install(&client).await;
        (db, client)
    }

    async fn install(client: &Client) {
        for statement in pg::install("public") {
            client.batch_execute(&statement).await.unwrap();
        }
    }

    async fn drop_db(db: &str) {
        let _ = connect("postgres")
            .await
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await;
    }

    async fn tables(client: &Client) -> Vec<String> {
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name LIKE 'switchyard%' ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn version(client: &Client) -> Vec<i32> {
        let rows = client
            .query("SELECT version FROM switchyard_store_version", &[])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    #[tokio::test]
    async fn installing_twice_is_installing_once() {
        let (db, client) = fresh().await;
        install(&client).await;
        assert_eq!(tables(&client).await, TABLES);
        assert_eq!(version(&client).await, [STORE_VERSION as i32]);
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_version_1_store_is_upgraded_and_keeps_its_rows() {
        let (db, client) = fresh().await;
        client
            .batch_execute(&format!(
                "DROP TABLE {}; UPDATE switchyard_store_version SET version = 1; \
                 INSERT INTO switchyard_repair_queue (migration, key, source) \
                 VALUES ('api_v2', '[\"7\"]', 'direct_client')",
                ADDED_IN_2.join(", ")
            ))
            .await
            .unwrap();
        install(&client).await;
        assert_eq!(tables(&client).await, TABLES);
        assert_eq!(version(&client).await, [STORE_VERSION as i32]);
        let queued: i64 = client
            .query_one("SELECT count(*) FROM switchyard_repair_queue", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(queued, 1);
        // A store a later release wrote is never downgraded.
        client
            .batch_execute("UPDATE switchyard_store_version SET version = 99")
            .await
            .unwrap();
        install(&client).await;
        assert_eq!(version(&client).await, [99]);
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_version_2_store_gains_the_shadows_counts() {
        let (db, client) = fresh().await;
        client
            .batch_execute(
                "ALTER TABLE switchyard_proxy_stats DROP COLUMN shadow_compared, \
                 DROP COLUMN shadow_mismatches; \
                 UPDATE switchyard_store_version SET version = 2",
            )
            .await
            .unwrap();
        install(&client).await;
        assert_eq!(version(&client).await, [STORE_VERSION as i32]);
        client
            .batch_execute(&switchyard_core::store::pg::heartbeat(
                "public",
                &beat("p", 1),
            ))
            .await
            .unwrap();
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_stale_epoch_cannot_overwrite_the_state() {
        let (db, client) = fresh().await;
        let init = |r: StateRow| pg::init_state("public", &r);
        assert_eq!(
            client
                .execute(&init(row(Phase::Planned, 0)), &[])
                .await
                .unwrap(),
            1
        );
        // A second controller's first write finds the state there.
        assert_eq!(
            client
                .execute(&init(row(Phase::Backfill, 0)), &[])
                .await
                .unwrap(),
            0
        );
        let write = |r: StateRow, expected| pg::write_state("public", &r, expected);
        let moved = write(row(Phase::DualWrite, 1), 0);
        assert_eq!(client.execute(&moved, &[]).await.unwrap(), 1);
        let stale = write(row(Phase::RolledBack, 1), 0);
        assert_eq!(client.execute(&stale, &[]).await.unwrap(), 0);
        let state = client
            .query_one("SELECT phase, epoch FROM switchyard_state", &[])
            .await
            .unwrap();
        assert_eq!(
            (state.get::<_, String>(0), state.get::<_, i64>(1)),
            ("dual_write".into(), 1)
        );
        let read = client
            .query_one(&pg::read_state("public", "api_v2"), &[])
            .await
            .unwrap();
        assert_eq!(read.get::<_, String>("phase"), "dual_write");
        client
            .execute(&pg::append_event("public", &EVENT), &[])
            .await
            .unwrap();
        let event = client
            .query_one(
                "SELECT actor, reason, detail->>'ticket' FROM switchyard_events",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(event.get::<_, String>(1), "it's time");
        assert_eq!(event.get::<_, String>(2), "OPS-1");
        drop_db(&db).await;
    }

    /// Whether `holder` got the lease.
    async fn acquire(client: &Client, holder: &str, ttl: Duration) -> bool {
        let rows = client
            .query(&pg::acquire_lease("public", holder, ttl), &[])
            .await
            .unwrap();
        !rows.is_empty()
    }

    #[tokio::test]
    async fn one_controller_holds_the_lease_until_it_expires() {
        let (db, a) = fresh().await;
        let b = connect(&db).await;
        let (got_a, got_b) = tokio::join!(acquire(&a, "a", TTL), acquire(&b, "b", TTL));
        assert!(got_a ^ got_b, "exactly one wins: a {got_a}, b {got_b}");
        let (winner, loser) = if got_a { ("a", "b") } else { ("b", "a") };
        assert!(acquire(&a, winner, TTL).await, "the holder renews");
        assert!(!acquire(&b, loser, TTL).await);
        let holder: String = a
            .query_one("SELECT holder FROM switchyard_controller_lease", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(holder, winner);
        // A lease that lapses (its controller crashed) is taken over.
        assert!(acquire(&a, winner, Duration::from_millis(200)).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(a
            .query(&pg::lease_holder("public"), &[])
            .await
            .unwrap()
            .is_empty());
        assert!(acquire(&b, loser, TTL).await);
        assert!(!acquire(&a, winner, TTL).await);
        // Released, it is free at once.
        a.execute(&pg::release_lease("public", loser), &[])
            .await
            .unwrap();
        assert!(acquire(&a, winner, TTL).await);
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn heartbeats_list_live_proxies_with_their_epochs() {
        let (db, client) = fresh().await;
        let send = |b: Heartbeat| pg::heartbeat("public", &b);
        for b in [beat("p1", 3), beat("p2", 4), beat("p3", 4)] {
            client.execute(&send(b), &[]).await.unwrap();
        }
        client
            .batch_execute(
                "UPDATE switchyard_proxy_stats SET heartbeat_at = now() - interval '10 seconds' \
                 WHERE proxy = 'p3'",
            )
            .await
            .unwrap();
        let since = "SELECT enforced_since FROM switchyard_proxy_stats WHERE proxy = 'p1'";
        let first: std::time::SystemTime = client.query_one(since, &[]).await.unwrap().get(0);
        client.execute(&send(beat("p1", 3)), &[]).await.unwrap();
        let same: std::time::SystemTime = client.query_one(since, &[]).await.unwrap().get(0);
        assert_eq!(first, same, "the same epoch keeps its start");
        client.execute(&send(beat("p1", 4)), &[]).await.unwrap();
        let moved: std::time::SystemTime = client.query_one(since, &[]).await.unwrap().get(0);
        assert!(moved > first, "a new epoch starts anew");
        let live = client
            .query(
                &pg::live_proxies("public", "api_v2", Duration::from_secs(2)),
                &[],
            )
            .await
            .unwrap();
        let live: Vec<(String, i64)> = live.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(live, [("p1".into(), 4), ("p2".into(), 4)]);
        drop_db(&db).await;
    }
}

mod mysql {
    use super::*;
    use mysql_async::prelude::Queryable;
    use mysql_async::{Conn, OptsBuilder};
    use switchyard_core::store::mysql;

    async fn connect(db: Option<&str>) -> Conn {
        let opts = OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(3306)
            .user(Some("root"))
            .pass(Some(""))
            .db_name(db)
            .prefer_socket(false);
        Conn::new(opts)
            .await
            .expect("MariaDB on 127.0.0.1:3306 (run scripts/ensure-databases.sh)")
    }

    /// A fresh database with the store installed in it.
    async fn fresh() -> (String, Conn) {
        let db = unique("store");
        let mut admin = connect(None).await;
        admin
            .query_drop(format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let _ = admin.disconnect().await;
        let mut conn = connect(Some(&db)).await;
        install(&mut conn, &db).await;
        (db, conn)
    }

    async fn install(conn: &mut Conn, db: &str) {
        for statement in mysql::install(db) {
            conn.query_drop(statement).await.unwrap();
        }
    }

    async fn drop_db(db: &str) {
        let mut admin = connect(None).await;
        let _ = admin
            .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await;
        let _ = admin.disconnect().await;
    }

    async fn tables(conn: &mut Conn, db: &str) -> Vec<String> {
        conn.query(format!(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = '{db}' AND table_name LIKE 'switchyard%' ORDER BY 1"
        ))
        .await
        .unwrap()
    }

    async fn version(conn: &mut Conn) -> Vec<u32> {
        conn.query("SELECT version FROM switchyard_store_version")
            .await
            .unwrap()
    }

    /// Rows `sql` changed.
    async fn affected(conn: &mut Conn, sql: String) -> u64 {
        conn.query_drop(sql).await.unwrap();
        conn.affected_rows()
    }

    #[tokio::test]
    async fn installing_twice_is_installing_once() {
        let (db, mut conn) = fresh().await;
        install(&mut conn, &db).await;
        assert_eq!(tables(&mut conn, &db).await, TABLES);
        assert_eq!(version(&mut conn).await, [STORE_VERSION]);
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_version_1_store_is_upgraded_and_keeps_its_rows() {
        let (db, mut conn) = fresh().await;
        conn.query_drop(format!(
            "DROP TABLE {}; UPDATE switchyard_store_version SET version = 1; \
             INSERT INTO switchyard_repair_queue (migration, `key`, source) \
             VALUES ('api_v2', '[\"7\"]', 'direct_client')",
            ADDED_IN_2.join(", ")
        ))
        .await
        .unwrap();
        install(&mut conn, &db).await;
        assert_eq!(tables(&mut conn, &db).await, TABLES);
        assert_eq!(version(&mut conn).await, [STORE_VERSION]);
        let queued: Vec<u64> = conn
            .query("SELECT count(*) FROM switchyard_repair_queue")
            .await
            .unwrap();
        assert_eq!(queued, [1]);
        conn.query_drop("UPDATE switchyard_store_version SET version = 99")
            .await
            .unwrap();
        install(&mut conn, &db).await;
        assert_eq!(version(&mut conn).await, [99]);
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_version_2_store_gains_the_shadows_counts() {
        let (db, mut conn) = fresh().await;
        conn.query_drop(
            "ALTER TABLE switchyard_proxy_stats DROP COLUMN shadow_compared, \
             DROP COLUMN shadow_mismatches; \
             UPDATE switchyard_store_version SET version = 2",
        )
        .await
        .unwrap();
        install(&mut conn, &db).await;
        assert_eq!(version(&mut conn).await, [STORE_VERSION]);
        conn.query_drop(switchyard_core::store::mysql::heartbeat(&db, &beat("p", 1)))
            .await
            .unwrap();
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn a_stale_epoch_cannot_overwrite_the_state() {
        let (db, mut conn) = fresh().await;
        let init = |r: StateRow| mysql::init_state(&db, &r);
        assert_eq!(affected(&mut conn, init(row(Phase::Planned, 0))).await, 1);
        assert_eq!(affected(&mut conn, init(row(Phase::Backfill, 0))).await, 0);
        let write = |r: StateRow, expected| mysql::write_state(&db, &r, expected);
        assert_eq!(
            affected(&mut conn, write(row(Phase::DualWrite, 1), 0)).await,
            1
        );
        // The same values again, under the right epoch: still one row.
        assert_eq!(
            affected(&mut conn, write(row(Phase::DualWrite, 1), 1)).await,
            1
        );
        assert_eq!(
            affected(&mut conn, write(row(Phase::RolledBack, 1), 0)).await,
            0
        );
        let state: Vec<(String, u64)> = conn
            .query("SELECT phase, epoch FROM switchyard_state")
            .await
            .unwrap();
        assert_eq!(state, [("dual_write".into(), 1)]);
        let read: Vec<mysql_async::Row> =
            conn.query(mysql::read_state(&db, "api_v2")).await.unwrap();
        assert_eq!(read[0].get::<String, _>("phase").unwrap(), "dual_write");
        conn.query_drop(mysql::append_event(&db, &EVENT))
            .await
            .unwrap();
        let event: Vec<(String, String)> = conn
            .query("SELECT reason, JSON_VALUE(detail, '$.ticket') FROM switchyard_events")
            .await
            .unwrap();
        assert_eq!(event, [("it's time".into(), "OPS-1".into())]);
        drop_db(&db).await;
    }

    /// Whether `holder` has the lease after trying to take it.
    async fn acquire(conn: &mut Conn, db: &str, holder: &str, ttl: Duration) -> bool {
        conn.query_drop(mysql::acquire_lease(db, holder, ttl))
            .await
            .unwrap();
        let live: Vec<(String, mysql_async::Value)> =
            conn.query(mysql::lease_holder(db)).await.unwrap();
        live.first().is_some_and(|(h, _)| h == holder)
    }

    #[tokio::test]
    async fn one_controller_holds_the_lease_until_it_expires() {
        let (db, mut a) = fresh().await;
        let mut b = connect(Some(&db)).await;
        let (got_a, got_b) = tokio::join!(
            acquire(&mut a, &db, "a", TTL),
            acquire(&mut b, &db, "b", TTL)
        );
        assert!(got_a ^ got_b, "exactly one wins: a {got_a}, b {got_b}");
        let (winner, loser) = if got_a { ("a", "b") } else { ("b", "a") };
        assert!(acquire(&mut a, &db, winner, TTL).await, "the holder renews");
        assert!(!acquire(&mut b, &db, loser, TTL).await);
        let holder: Vec<String> = a
            .query("SELECT holder FROM switchyard_controller_lease")
            .await
            .unwrap();
        assert_eq!(holder, [winner]);
        assert!(acquire(&mut a, &db, winner, Duration::from_millis(200)).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            acquire(&mut b, &db, loser, TTL).await,
            "a lapsed lease is taken over"
        );
        assert!(!acquire(&mut a, &db, winner, TTL).await);
        a.query_drop(mysql::release_lease(&db, loser))
            .await
            .unwrap();
        assert!(
            acquire(&mut a, &db, winner, TTL).await,
            "a released lease is free"
        );
        drop_db(&db).await;
    }

    #[tokio::test]
    async fn heartbeats_list_live_proxies_with_their_epochs() {
        let (db, mut conn) = fresh().await;
        for b in [beat("p1", 3), beat("p2", 4), beat("p3", 4)] {
            conn.query_drop(mysql::heartbeat(&db, &b)).await.unwrap();
        }
        conn.query_drop(
            "UPDATE switchyard_proxy_stats SET heartbeat_at = NOW(6) - INTERVAL 10 SECOND \
             WHERE proxy = 'p3'",
        )
        .await
        .unwrap();
        let since =
            "SELECT CAST(enforced_since AS CHAR) FROM switchyard_proxy_stats WHERE proxy = 'p1'";
        let first: Vec<String> = conn.query(since).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        conn.query_drop(mysql::heartbeat(&db, &beat("p1", 3)))
            .await
            .unwrap();
        let same: Vec<String> = conn.query(since).await.unwrap();
        assert_eq!(first, same, "the same epoch keeps its start");
        conn.query_drop(mysql::heartbeat(&db, &beat("p1", 4)))
            .await
            .unwrap();
        let moved: Vec<String> = conn.query(since).await.unwrap();
        assert!(
            moved > first,
            "a new epoch starts anew: {moved:?} after {first:?}"
        );
        let live: Vec<(String, u64, mysql_async::Value, mysql_async::Value)> = conn
            .query(mysql::live_proxies(&db, "api_v2", Duration::from_secs(2)))
            .await
            .unwrap();
        let live: Vec<(String, u64)> = live.into_iter().map(|(p, e, _, _)| (p, e)).collect();
        assert_eq!(live, [("p1".into(), 4), ("p2".into(), 4)]);
        drop_db(&db).await;
    }
}
