//! Commands out of order are refused (exit 1) with a message that says
//! what must happen first, and change nothing: a ramp before the
//! migration reaches read_ramp, and an advance to complete (or to
//! reads_on_target) while reads are not all on the target.

use super::harness::err;
use super::{expect, status, to_read_ramp, Db, Engine};

/// Runs `args`, expects a refusal, returns its message (stderr).
fn refused(db: &Db, args: &[&str]) -> String {
    let before = status(db);
    let message = err(&expect(db, args, 1));
    let after = status(db);
    for field in ["phase", "epoch", "share"] {
        assert_eq!(before[field], after[field], "{args:?} changed {field}");
    }
    message
}

fn says(message: &str, what: &str) {
    assert!(message.contains(what), "{what:?} not in: {message}");
}

pub async fn commands_out_of_order_say_what_comes_first(engine: Engine) {
    let db = Db::create(engine, "order").await;
    expect(&db, &["init"], 0);
    let ramp = refused(&db, &["ramp", "api", "10"]);
    says(&ramp, "migration `api` is at planned");
    says(
        &ramp,
        "advance it there first (dual_write → backfill → validate → read_ramp)",
    );

    to_read_ramp(&db);
    assert_eq!(status(&db)["share"], 50.0);
    let complete = refused(&db, &["advance", "api", "--to", "complete"]);
    says(
        &complete,
        "is at read_ramp; it reaches complete only through reads_on_target → write_switch → complete",
    );
    let next = refused(&db, &["advance", "api"]);
    says(&next, "sends 50% of reads to the target");
    says(&next, "ramp to 100% first (`switchyard ramp api 100`)");
    // The same in JSON, for scripts.
    let json = expect(&db, &["--json", "advance", "api", "--to", "complete"], 1);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    says(
        doc["refused"].as_str().unwrap(),
        "reads_on_target → write_switch",
    );
    db.drop().await;
}
