//! The `switchyard` binary against real servers, on PostgreSQL and on
//! MariaDB: a migration taken from planned to complete one command at a
//! time (init twice, the backfill, a gate a difference closes and a
//! repair opens, the ramp, the counters moved at the write switch, the
//! source archived), a rollback from read_ramp, refused commands, the
//! shape of `status --json`, and the report's timeline. No proxy runs,
//! so every fence is open at once. The data is checked with SQL of the
//! test's own.

#[path = "exec/harness.rs"]
mod harness;

use harness::{code, err, out, Db, Engine, DELETED, ROWS};

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&out(o)).unwrap_or_else(|e| panic!("{e}: {}", out(o)))
}

fn phase(db: &Db) -> String {
    let status = db.cli(&["--json", "status", "api"]);
    assert_eq!(code(&status), 0, "{}", err(&status));
    json(&status)["migrations"][0]["phase"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs `args`, expects exit `want`, returns the output.
fn expect(db: &Db, args: &[&str], want: i32) -> std::process::Output {
    let o = db.cli(args);
    assert_eq!(
        code(&o),
        want,
        "{args:?}\nstdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
    o
}

async fn planned_to_complete(engine: Engine) {
    let db = Db::create(engine, "flow").await;
    expect(&db, &["init"], 0);
    let again = expect(&db, &["--json", "init"], 0);
    assert_eq!(json(&again)["migrations"][0]["store_version"], 3);

    // A ramp before validate is refused with what must happen first.
    let early = expect(&db, &["ramp", "api", "10"], 1);
    assert!(err(&early).contains("read_ramp"), "{}", err(&early));

    expect(&db, &["advance", "api"], 0);
    assert_eq!(phase(&db), "dual_write");
    // dual_write → backfill: the backfill runs to its end, then validate.
    expect(&db, &["advance", "api"], 0);
    assert_eq!(phase(&db), "validate");
    assert_eq!(db.differences().await, 0);
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints").await,
        ROWS - DELETED
    );

    // A difference in the target keeps the gate closed.
    db.exec(&["UPDATE t_sys_api_endpoints SET endpoint_path = '/tampered' WHERE id = 7"])
        .await;
    let closed = expect(&db, &["advance", "api"], 1);
    assert!(
        out(&closed).contains("gate clean_diff is closed"),
        "{}",
        out(&closed)
    );
    assert_eq!(phase(&db), "validate");
    expect(&db, &["repair", "api"], 0);
    assert_eq!(db.differences().await, 0);
    expect(&db, &["advance", "api"], 0);
    assert_eq!(phase(&db), "read_ramp");

    expect(&db, &["ramp", "api", "100"], 0);
    expect(&db, &["advance", "api"], 0);
    assert_eq!(phase(&db), "reads_on_target");

    // The write switch bakes, passes its gates and moves the counter
    // past the source's (at least 501), not past MAX(id) + 1 (481).
    let before = db.target_next_id().await;
    assert!(before <= ROWS - DELETED + 1, "target counter {before}");
    let source = db.next_id("api").await;
    assert!(source > ROWS, "source counter {source}");
    expect(&db, &["advance", "api", "--min-samples", "0"], 0);
    assert_eq!(phase(&db), "write_switch");
    assert_eq!(db.target_next_id().await, source);

    // The guard moved to the target: a write that bypasses the proxies
    // now lands there and is queued, and the repair copies it back to
    // the source (the table a rollback would return to).
    db.exec(&["UPDATE t_sys_api_endpoints SET endpoint_path = '/after-switch' WHERE id = 9"])
        .await;
    // One row differs: counted once each way.
    assert_eq!(db.differences().await, 2);
    expect(&db, &["repair", "api", "--queue"], 0);
    assert_eq!(db.differences().await, 0);
    assert_eq!(
        db.int("SELECT count(*) FROM api WHERE path = '/after-switch'")
            .await,
        1
    );

    expect(&db, &["advance", "api"], 0);
    assert_eq!(phase(&db), "complete");
    // Complete: the source is archived and follows nothing any more.
    let late = expect(&db, &["repair", "api", "--queue"], 2);
    assert!(err(&late).contains("is complete"), "{}", err(&late));
    assert!(!db.has_table("api").await);
    assert!(db.has_table("api_archived").await);
    assert_eq!(
        db.int("SELECT count(*) FROM api_archived").await,
        ROWS - DELETED
    );
    // Nothing moves a complete migration.
    let done = expect(&db, &["advance", "api"], 1);
    assert!(err(&done).contains("complete"), "{}", err(&done));

    let report = expect(&db, &["report", "api"], 0);
    let md = out(&report);
    for expected in [
        "## Timeline",
        "planned",
        "dual_write",
        "gate_failed",
        "complete",
    ] {
        assert!(md.contains(expected), "report lacks {expected}: {md}");
    }
    let report = json(&expect(&db, &["--json", "report", "api"], 0));
    assert_eq!(report["phase"], "complete");
    assert!(report["timeline"].as_array().unwrap().len() >= 8);

    expect(&db, &["drop-archive", "api"], 1);
    expect(&db, &["drop-archive", "api", "--yes"], 0);
    assert!(!db.has_table("api_archived").await);
    db.drop().await;
}

async fn rollback_from_read_ramp(engine: Engine) {
    let db = Db::create(engine, "rollback").await;
    expect(&db, &["init"], 0);
    for _ in 0..2 {
        expect(&db, &["advance", "api"], 0);
    }
    expect(&db, &["advance", "api", "--to", "read_ramp"], 0);
    assert_eq!(phase(&db), "read_ramp");
    // Entering the ramp took its first step.
    assert_eq!(
        json(&expect(&db, &["--json", "status", "api"], 0))["migrations"][0]["share"],
        50.0
    );
    expect(&db, &["ramp", "api", "25"], 0);
    let back = json(&expect(
        &db,
        &["--json", "rollback", "api", "--reason", "target too slow"],
        0,
    ));
    assert_eq!(back["phase"], "rolled_back");
    assert_eq!(back["share"], 0.0);
    let status = json(&expect(&db, &["--json", "status", "api"], 0));
    assert_eq!(
        status["migrations"][0]["rollback_reason"],
        "target too slow"
    );
    // A rolled-back migration moves no further.
    let refused = json(&expect(&db, &["--json", "advance", "api"], 1));
    assert!(refused["refused"].as_str().unwrap().contains("rolled back"));
    let report = out(&expect(&db, &["report", "api"], 0));
    assert!(report.contains("target too slow"), "{report}");
    // The source is untouched.
    assert!(db.has_table("api").await);
    db.drop().await;
}

async fn rollback_after_the_switch_says_what_the_source_lacks(engine: Engine) {
    let db = Db::create(engine, "rollback_late").await;
    expect(&db, &["init"], 0);
    for _ in 0..2 {
        expect(&db, &["advance", "api"], 0);
    }
    expect(&db, &["advance", "api"], 0);
    expect(&db, &["ramp", "api", "100"], 0);
    expect(&db, &["advance", "api"], 0);
    expect(&db, &["advance", "api", "--min-samples", "0"], 0);
    assert_eq!(phase(&db), "write_switch");
    // A write to the target the source does not have yet (the guard on
    // the target queued it).
    db.exec(&["UPDATE t_sys_api_endpoints SET endpoint_path = '/late' WHERE id = 3"])
        .await;
    let back = expect(&db, &["rollback", "api", "--reason", "drill"], 0);
    assert!(
        err(&back).contains("1 key(s) written to the target since the write switch"),
        "{}",
        err(&back)
    );
    assert_eq!(phase(&db), "rolled_back");
    let status = json(&expect(&db, &["--json", "status", "api"], 0));
    let reason = status["migrations"][0]["rollback_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("drill (not lossless: 1 key(s)"),
        "{reason}"
    );
    // The source lacks it, as the warning said.
    assert_eq!(
        db.int("SELECT count(*) FROM api WHERE path = '/late'")
            .await,
        0
    );
    db.drop().await;
}

async fn plan_check_against_the_servers(engine: Engine) {
    let db = Db::create(engine, "plan").await;
    let before = json(&expect(&db, &["--json", "plan", "check"], 1));
    let problems = before["migrations"][0]["problems"].to_string();
    assert!(problems.contains("switchyard init"), "{problems}");
    expect(&db, &["init"], 0);
    expect(&db, &["plan", "check"], 0);
    db.exec(&[
        "CREATE TABLE calls (id bigint PRIMARY KEY, api_id bigint REFERENCES api (id) ON DELETE CASCADE)",
    ])
    .await;
    let warned = json(&expect(&db, &["--json", "plan", "check"], 0));
    let warnings = warned["migrations"][0]["warnings"].to_string();
    assert!(
        warnings.contains("foreign key") && warnings.contains("calls"),
        "{warnings}"
    );
    assert!(!warnings.contains("without a default"), "{warnings}");
    // A column the source fills by default and the target refuses empty:
    // an INSERT that leaves it out would fail after the write switch.
    db.exec(&[
        "ALTER TABLE api ADD COLUMN hits int NOT NULL DEFAULT 0",
        "ALTER TABLE t_sys_api_endpoints ADD COLUMN hits int NOT NULL",
    ])
    .await;
    let warned = json(&expect(&db, &["--json", "plan", "check"], 0));
    let warnings = warned["migrations"][0]["warnings"].to_string();
    assert!(
        warnings.contains("t_sys_api_endpoints.hits` is NOT NULL without a default"),
        "{warnings}"
    );
    db.drop().await;
}

async fn status_json_shape(engine: Engine) {
    let db = Db::create(engine, "status").await;
    // Before init: an error naming the fix.
    let missing = expect(&db, &["status"], 2);
    assert!(
        err(&missing).contains("switchyard init"),
        "{}",
        err(&missing)
    );
    expect(&db, &["init"], 0);
    let status = json(&expect(&db, &["--json", "status"], 0));
    let line = &status["migrations"][0];
    assert_eq!(status["ok"], true);
    assert_eq!(line["migration"], "api");
    assert_eq!(line["phase"], "planned");
    assert_eq!(line["stored"], false);
    assert_eq!(line["epoch"], 0);
    assert_eq!(line["repair_queue"], 0);
    assert_eq!(line["outbox"], 0);
    assert_eq!(line["outbox_lag_seconds"], serde_json::Value::Null);
    assert_eq!(line["target_reads"], 0);
    assert_eq!(line["target_error_rate"], serde_json::Value::Null);
    assert_eq!(line["shadow_mismatches"], 0);
    assert_eq!(line["backfill_percent"], serde_json::Value::Null);
    assert_eq!(line["proxies"], serde_json::json!([]));
    // Illegal commands are refused, exit 1, in JSON too.
    let refused = json(&expect(&db, &["--json", "approve", "api"], 1));
    assert_eq!(refused["ok"], false);
    expect(&db, &["advance", "api", "--to", "validate"], 1);
    expect(&db, &["resume", "api"], 1);
    expect(&db, &["pause", "api"], 0);
    assert_eq!(
        json(&expect(&db, &["--json", "status", "api"], 0))["migrations"][0]["paused"],
        true
    );
    expect(&db, &["advance", "api"], 1);
    expect(&db, &["resume", "api"], 0);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_planned_to_complete() {
    planned_to_complete(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_planned_to_complete() {
    planned_to_complete(Engine::My).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_rollback_after_the_switch_says_what_the_source_lacks() {
    rollback_after_the_switch_says_what_the_source_lacks(Engine::Pg).await;
}

#[tokio::test]
async fn mysql_rollback_after_the_switch_says_what_the_source_lacks() {
    rollback_after_the_switch_says_what_the_source_lacks(Engine::My).await;
}

#[tokio::test]
async fn pg_rollback_from_read_ramp() {
    rollback_from_read_ramp(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_rollback_from_read_ramp() {
    rollback_from_read_ramp(Engine::My).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_status_json_shape() {
    status_json_shape(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_status_json_shape() {
    status_json_shape(Engine::My).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_plan_check_against_the_servers() {
    plan_check_against_the_servers(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_plan_check_against_the_servers() {
    plan_check_against_the_servers(Engine::My).await;
}
