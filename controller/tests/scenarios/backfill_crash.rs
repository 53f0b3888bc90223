//! `switchyard backfill` killed with SIGKILL half way (no chance to pause
//! or clean up), then started again: the second run starts at the
//! checkpoint the first one committed, and the tables end equal.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{expect, Db, Engine};

/// Rows added to the harness's 480, so a throttled backfill takes seconds.
const MORE: i64 = 3500;

/// The backfill's command line: 1000 rows/s in chunks of 100, about four
/// seconds for the whole table.
const BACKFILL: [&str; 7] = [
    "--json",
    "backfill",
    "api",
    "--max-rows-per-sec",
    "1000",
    "--chunk-time-ms",
    "100",
];

pub async fn a_killed_backfill_resumes_from_its_checkpoint(engine: Engine) {
    let db = Db::create(engine, "crash").await;
    let series = match engine {
        Engine::Pg => format!("generate_series(1, {MORE}) AS s(seq)"),
        Engine::My => format!("seq_1_to_{MORE}"),
    };
    db.exec(&[&format!(
        "INSERT INTO api (path, method) SELECT concat('/v2/r', seq), 'POST' FROM {series}"
    )])
    .await;
    let total = db.int("SELECT count(*) FROM api").await;
    // The backfill runs in dual_write, which the file states here.
    db.write_config(&db.yaml().replace("phase: planned", "phase: dual_write"));
    expect(&db, &["init"], 0);

    let mut first = db.spawn(&BACKFILL);
    let started = Instant::now();
    let copied = loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no checkpoint within 20 s"
        );
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the backfill ended before it was killed: {status}");
        }
        let copied = checkpoint_rows(&db).await;
        if copied >= 300 {
            break copied;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill().await.unwrap();
    let after_kill = checkpoint_rows(&db).await;
    assert!(after_kill >= copied, "{after_kill} < {copied}");
    assert!(
        after_kill < total,
        "killed too late: {after_kill} of {total} copied"
    );
    let in_target = db.int("SELECT count(*) FROM t_sys_api_endpoints").await;
    assert_eq!(
        in_target, after_kill,
        "the target holds exactly what the checkpoint says"
    );

    // The second run says where it starts, then finishes.
    let mut second = db.spawn(&BACKFILL);
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    let mut reports = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the resumed backfill stalled")
        .unwrap()
    {
        let report: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        reports.push(report);
    }
    let status = second.wait().await.unwrap();
    assert!(status.success(), "resumed backfill: {status}; {reports:?}");
    assert_eq!(
        reports[0]["rows_copied"], after_kill,
        "the resumed run starts at the checkpoint: {reports:?}"
    );
    assert!(
        !reports[0]["last_key"].is_null(),
        "a resumed run starts after a key: {reports:?}"
    );
    let last = reports.last().unwrap();
    assert_eq!(last["state"], "done", "{reports:?}");
    assert_eq!(last["rows_copied"], total, "{reports:?}");

    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints").await,
        total
    );
    assert_eq!(db.differences().await, 0);
    db.drop().await;
}

/// Rows the backfill's checkpoint says are copied (0 before it exists).
async fn checkpoint_rows(db: &Db) -> i64 {
    let exists = db
        .int(match db.engine {
            Engine::Pg => {
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'switchyard_backfill' AND table_catalog = current_database()"
            }
            Engine::My => {
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_NAME = 'switchyard_backfill' AND TABLE_SCHEMA = DATABASE()"
            }
        })
        .await;
    if exists == 0 {
        return 0;
    }
    db.int("SELECT coalesce(max(rows_copied), 0) FROM switchyard_backfill WHERE migration = 'api'")
        .await
}
