//! The backfill against real servers, every scenario on PostgreSQL and on
//! MariaDB. The proof is the data: after each scenario the test compares
//! source and target with `EXCEPT` both ways, its own SQL.

#[path = "backfill/harness.rs"]
mod harness;
#[path = "support/proxy.rs"]
mod proxies;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{Db, Engine, ROWS};
use proxies::{wait_ready, Through};
use switchyard_controller::backfill::{BackfillError, Outcome, Settings, State};
use switchyard_core::config::Protocol;

/// Small chunks, so a few thousand rows make dozens of chunks.
fn small_chunks() -> Settings {
    Settings {
        initial_chunk: 100,
        min_chunk: 50,
        max_chunk: 400,
        chunk_time: Duration::from_millis(20),
        ..Settings::default()
    }
}

async fn copies_every_row_through_the_mapping(engine: Engine) {
    let db = Db::create(engine, "copy", 64).await;
    for (id, table) in [("items_v2", "items"), ("events_v2", "events")] {
        let (outcome, reports) = db.backfill(id, &small_chunks(), None).await;
        assert_eq!(
            outcome.unwrap(),
            Outcome::Done { rows: ROWS as u64 },
            "{id}"
        );
        assert_eq!(db.differences(table).await, 0, "{id}");
        assert!(reports.len() > 5, "{id}: {} reports", reports.len());
        let last = reports.last().unwrap();
        assert_eq!((last.state, last.percent()), (State::Done, 100.0), "{id}");
    }
    // The checkpoint says done, and a rerun has nothing to do.
    let done = db
        .int("SELECT count(*) FROM switchyard_backfill WHERE done AND rows_copied = 3000")
        .await;
    assert_eq!(done, 2);
    let (again, _) = db.backfill("items_v2", &small_chunks(), None).await;
    assert_eq!(again.unwrap(), Outcome::Done { rows: ROWS as u64 });
    db.drop().await;
}

async fn a_newer_image_in_the_target_is_kept(engine: Engine) {
    let db = Db::create(engine, "newer", 64).await;
    // What the mirror wrote for rows updated after the dual write began.
    db.exec(&[
        "UPDATE items SET name = 'newer' WHERE id IN (1, 1500, 3000)",
        "INSERT INTO items_v2 SELECT id, 'newer', price, note FROM items WHERE id IN (1, 1500, 3000)",
        "UPDATE items SET name = 'older' WHERE id IN (1, 1500, 3000)",
    ])
    .await;
    let (outcome, _) = db.backfill("items_v2", &small_chunks(), None).await;
    assert_eq!(outcome.unwrap(), Outcome::Done { rows: ROWS as u64 });
    let kept = db
        .int("SELECT count(*) FROM items_v2 WHERE title = 'newer'")
        .await;
    assert_eq!(kept, 3, "the mirror's rows were overwritten");
    // Every row but those three equals its source.
    assert_eq!(db.differences("items").await, 6);
    db.drop().await;
}

async fn a_paused_backfill_resumes_and_finishes_equal(engine: Engine) {
    let db = Db::create(engine, "resume", 64).await;
    let (outcome, _) = db.backfill("events_v2", &small_chunks(), Some(5)).await;
    let Outcome::Paused { rows } = outcome.unwrap() else {
        panic!("expected a pause");
    };
    let copied = db.int("SELECT count(*) FROM events_v2").await;
    assert!(rows > 0 && rows < ROWS as u64, "paused at {rows}");
    assert_eq!(
        copied, rows as i64,
        "the checkpoint matches what was copied"
    );
    // As after a crash: a chunk past the checkpoint that was copied but
    // whose checkpoint never committed is copied again, harmlessly.
    db.exec(&["INSERT INTO events_v2 SELECT region, id, body FROM events WHERE id % 100 = 0 AND region = 'r4' AND id > 2000"])
        .await;
    let (outcome, reports) = db.backfill("events_v2", &small_chunks(), None).await;
    assert_eq!(outcome.unwrap(), Outcome::Done { rows: ROWS as u64 });
    assert_eq!(reports[0].rows_copied, rows, "resumed from the checkpoint");
    assert_eq!(db.differences("events").await, 0);
    db.drop().await;
}

async fn a_value_the_target_cannot_hold_fails_the_chunk(engine: Engine) {
    // `title` holds 12 characters; `name 1000` is 9, the long row 20.
    let db = Db::create(engine, "toolong", 12).await;
    db.exec(&["UPDATE items SET name = 'a name far too long' WHERE id = 1234"])
        .await;
    let (outcome, _) = db.backfill("items_v2", &small_chunks(), None).await;
    let error = outcome.unwrap_err();
    assert!(matches!(error, BackfillError::Chunk { .. }), "{error:?}");
    let message = error.to_string();
    for needle in [
        "migration `items_v2`",
        "copying keys (",
        "long",
        "rerun `switchyard backfill items_v2`",
    ] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    // Nothing of the failed chunk, nothing after it.
    let beyond = db
        .int("SELECT count(*) FROM items_v2 WHERE id >= 1234")
        .await;
    assert_eq!(beyond, 0, "{message}");
    db.drop().await;
}

/// Without the dual write, rows written after their chunk would be lost:
/// the backfill refuses to start.
#[tokio::test]
async fn refuses_a_migration_whose_writes_are_not_mirrored() {
    let db = Db::create(Engine::Pg, "phase", 64).await;
    let yaml = db.yaml().replace("phase: dual_write", "phase: planned");
    let config =
        switchyard_core::config::Config::from_yaml(&yaml, std::path::Path::new("."), &|_| None)
            .unwrap();
    let live = switchyard_controller::live::Live::resolve(&config, "items_v2")
        .await
        .unwrap();
    let (_pause, stop) = tokio::sync::watch::channel(false);
    let error =
        switchyard_controller::backfill::run(&live, &Settings::default(), stop, &mut |_| {})
            .await
            .unwrap_err();
    assert!(
        error.to_string().contains("is in phase `planned`"),
        "{error}"
    );
    assert_eq!(db.int("SELECT count(*) FROM items_v2").await, 0);
    db.drop().await;
}

/// MariaDB: a value the strict `sql_mode` lets through with a note (a
/// decimal rounded to the target's scale) still fails the chunk.
#[tokio::test]
async fn mysql_a_warning_fails_the_chunk() {
    let db = Db::create(Engine::My, "warn", 64).await;
    db.exec(&[
        "ALTER TABLE items MODIFY price decimal(10,3)",
        "UPDATE items SET price = 1.005 WHERE id = 2222",
    ])
    .await;
    let (outcome, _) = db.backfill("items_v2", &small_chunks(), None).await;
    let error = outcome.unwrap_err();
    let BackfillError::Warnings { ref warnings, .. } = error else {
        panic!("expected warnings: {error:?}");
    };
    assert!(warnings.contains("1265"), "{error}");
    assert!(error.to_string().contains("rolled back"), "{error}");
    assert_eq!(
        db.int("SELECT count(*) FROM items_v2 WHERE id >= 2222")
            .await,
        0
    );
    db.drop().await;
}

async fn concurrent_writes_through_the_proxy_end_equal_after_repair(engine: Engine) {
    let db = Db::create(engine, "live", 64).await;
    let running = db.proxy().await;
    wait_ready(&running, "items_v2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let protocol = match engine {
        Engine::Pg => Protocol::Postgres,
        Engine::My => Protocol::Mysql,
    };
    let client = Through::connect(&running, protocol, &db.name).await;
    let writer = tokio::spawn(write_load(engine, client, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (outcome, _) = db.backfill("items_v2", &small_chunks(), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (writes, errors) = writer.await.unwrap();
    assert!(matches!(outcome.unwrap(), Outcome::Done { .. }));
    eprintln!("{engine:?}: {writes} writes, {errors} failed, during the backfill");
    assert!(writes > 50, "only {writes} writes ran during the backfill");
    assert!(errors * 10 <= writes, "{errors} of {writes} writes failed");
    // On PostgreSQL a mirrored DELETE that waited for a chunk's share lock
    // runs on a snapshot taken before the chunk committed, so it cannot
    // see (nor delete) the row the chunk copied: the row stays in the
    // target, and the dual write queues its key for repair, having
    // deleted nothing. Every difference must be so queued; the repair
    // (the row-image sync) then leaves the tables equal.
    assert_eq!(
        db.unqueued_differences().await,
        0,
        "a difference nothing repairs"
    );
    let queued = db.drain_repair_queue().await;
    eprintln!("{engine:?}: {queued} key(s) repaired");
    assert_eq!(db.differences("items").await, 0, "after {writes} writes");
    running.drain().await;
    db.drop().await;
}

/// Updates, deletes and inserts rows of `items` through the proxy, one
/// autocommit statement at a time, until `stop`; returns (writes, errors).
async fn write_load(engine: Engine, mut client: Through, stop: Arc<AtomicBool>) -> (u64, u64) {
    let mut seed = 0x2545_f491_u64;
    let (mut writes, mut errors) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let id = 1 + seed % (ROWS as u64 + 500);
        let mut sql = match seed % 4 {
            0 => format!("DELETE FROM items WHERE id = {id}"),
            1 => format!("INSERT INTO items (id, name, price) VALUES ({id}, 'new {id}', 1) ON CONFLICT (id) DO NOTHING"),
            _ => format!("UPDATE items SET name = concat(name, '+'), price = price + 1 WHERE id = {id}"),
        };
        if engine == Engine::My {
            sql = sql.replace(
                "ON CONFLICT (id) DO NOTHING",
                "ON DUPLICATE KEY UPDATE id = id",
            );
        }
        writes += 1;
        if let Err(error) = client.text(&sql).await {
            eprintln!("write failed: {sql}: {error}");
            errors += 1;
        }
    }
    (writes, errors)
}

/// One `#[tokio::test]` per engine for each scenario.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod pg {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Engine::Pg).await })*
        }
        mod mysql {
            $(#[tokio::test] async fn $scenario() { super::$scenario(super::Engine::My).await })*
        }
    };
}

on_both!(
    copies_every_row_through_the_mapping,
    a_newer_image_in_the_target_is_kept,
    a_paused_backfill_resumes_and_finishes_equal,
    a_value_the_target_cannot_hold_fails_the_chunk,
    concurrent_writes_through_the_proxy_end_equal_after_repair,
);
