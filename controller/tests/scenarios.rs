//! The controller in the situations an operator fears, against real
//! servers, each on PostgreSQL and on MariaDB: a backfill killed half way
//! resumes from its checkpoint; a target that fails during the read ramp
//! sends every proxy's reads back to the source, audited and announced; a
//! write switch that runs out of budget aborts with nothing lost; a
//! transaction older than `switch.max_transaction_age` keeps it closed; a
//! writer that bypasses the proxies keeps the write switch closed with a
//! message naming it; a proxy cut off from the store refuses writes once
//! its lease lapses and holds the backfill back until its heartbeat is
//! stale; the shadow's mismatches reach `status`; `status --watch`
//! refreshes and stops when told;
//! commands out of order are refused with what must happen first.
//!
//! The proof is the data and what a person sees: tables are compared with
//! the test's own SQL (`EXCEPT` both ways), never with Switchyard's diff.

#[path = "exec/harness.rs"]
mod harness;
#[path = "support/proxy.rs"]
mod proxies;
#[path = "support/stall.rs"]
mod stall;
// The proxy's end-to-end tests' webhook receiver, shared rather than
// copied: the controller's alerts and the proxies' go to the same kind of
// endpoint.
#[path = "../../proxy/tests/support/webhook.rs"]
mod webhook;
// The proxy's tests' relay that a test cuts, to cut a proxy off its store.
#[allow(dead_code)]
#[path = "../../proxy/tests/support/forwarder.rs"]
mod forwarder;

#[path = "scenarios/backfill_crash.rs"]
mod backfill_crash;
#[path = "scenarios/bypassing_writer.rs"]
mod bypassing_writer;
#[path = "scenarios/cut_off_proxy.rs"]
mod cut_off_proxy;
#[path = "scenarios/old_transaction.rs"]
mod old_transaction;
#[path = "scenarios/read_fault.rs"]
mod read_fault;
#[path = "scenarios/refusals.rs"]
mod refusals;
#[path = "scenarios/shadow_mismatch.rs"]
mod shadow_mismatch;
#[path = "scenarios/switch_budget.rs"]
mod switch_budget;
#[path = "scenarios/watch.rs"]
mod watch;

use harness::{code, err, out, Db, Engine};

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

/// `status --json` of the migration `api`.
fn status(db: &Db) -> serde_json::Value {
    let o = expect(db, &["--json", "status", "api"], 0);
    let doc: serde_json::Value =
        serde_json::from_str(&out(&o)).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    doc["migrations"][0].clone()
}

/// Takes `api` from planned to reads_on_target with the CLI: the guard,
/// the backfill, the clean-diff gate, the ramp to 100%.
fn to_reads_on_target(db: &Db) {
    to_read_ramp(db);
    expect(db, &["ramp", "api", "100"], 0);
    expect(db, &["advance", "api"], 0);
    assert_eq!(status(db)["phase"], "reads_on_target");
}

/// Takes `api` from planned to read_ramp (its first step, 50%).
fn to_read_ramp(db: &Db) {
    expect(db, &["init"], 0);
    expect(db, &["advance", "api"], 0);
    expect(db, &["advance", "api"], 0);
    expect(db, &["advance", "api", "--to", "read_ramp"], 0);
    assert_eq!(status(db)["phase"], "read_ramp");
}

/// One `#[tokio::test]` per engine for each scenario.
macro_rules! on_both {
    ($($module:ident::$scenario:ident),* $(,)?) => {
        mod pg {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $scenario() { super::$module::$scenario(super::Engine::Pg).await })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $scenario() { super::$module::$scenario(super::Engine::My).await })*
        }
    };
}

on_both!(
    backfill_crash::a_killed_backfill_resumes_from_its_checkpoint,
    read_fault::a_failing_target_sends_every_proxy_back_to_the_source,
    switch_budget::a_switch_past_its_budget_aborts_and_loses_nothing,
    old_transaction::an_old_transaction_keeps_the_switch_closed_by_name,
    bypassing_writer::a_writer_bypassing_the_proxies_blocks_the_switch_by_name,
    cut_off_proxy::a_proxy_cut_off_from_the_store_holds_the_backfill_until_it_is_gone,
    cut_off_proxy::a_proxy_whose_store_goes_silent_refuses_writes_before_it_stops_counting,
    shadow_mismatch::status_shows_the_shadows_mismatches,
    watch::status_watch_refreshes_and_stops_when_told,
    refusals::commands_out_of_order_say_what_comes_first,
);
