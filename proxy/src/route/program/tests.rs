//! The run's logic, step by step, without a server: each test plays the
//! server's part and checks every batch the session would send.

use super::*;

fn ok() -> StepResult {
    StepResult::default()
}

fn failed(message: &str) -> StepResult {
    StepResult {
        error: Some(message.into()),
        ..StepResult::default()
    }
}

fn rows(values: &[&[Option<&str>]]) -> StepResult {
    StepResult {
        rows: values
            .iter()
            .map(|row| {
                row.iter()
                    .map(|v| v.map(|s| s.as_bytes().to_vec()))
                    .collect()
            })
            .collect(),
        ..StepResult::default()
    }
}

/// The SQL of a batch, one statement per line, the client's marked `>`.
fn sent(action: &Action) -> String {
    match action {
        Action::Send(batch) => batch
            .statements
            .iter()
            .map(|s| {
                let mark = match (s.role, s.capture) {
                    (Role::Client, _) => "> ",
                    (Role::Proxy, true) => "* ",
                    (Role::Proxy, false) => "  ",
                };
                format!("{mark}{}\n", s.sql)
            })
            .collect(),
        Action::Finish(outcome) => format!("finish {outcome:?}\n"),
    }
}

/// Runs a program against scripted results: each batch's statements take
/// results from the script in order (a batch stops at its first failure).
fn play(program: Program, dialect: Dialect, in_tx: bool, script: Vec<StepResult>) -> String {
    let mut run = Run::new(program, dialect, in_tx);
    let mut script = script.into_iter();
    let mut log = String::new();
    loop {
        let action = run.advance();
        log.push_str(&sent(&action));
        let Action::Send(batch) = action else {
            return log;
        };
        for _ in &batch.statements {
            let result = script.next().unwrap_or_default();
            let stop = result.error.is_some();
            run.on_result(result);
            if stop {
                log.push_str("  -- failed\n");
                break;
            }
        }
        log.push_str("--\n");
    }
}

/// The MySQL UPDATE mirror's shape: capture keys, run the client's
/// statement on exactly them, sync them, with the repair queue instead.
fn capture_program() -> Program {
    let keys = Part::Rows { step: 0, width: 1 };
    let mut capture = Step::proxy("SELECT id FROM t WHERE v > 1 FOR UPDATE");
    capture.capture = true;
    let mut sync = Step {
        sql: Sql(vec![
            Part::Text("INSERT INTO t2 SELECT * FROM t WHERE id IN (".into()),
            keys.clone(),
            Part::Text(")".into()),
        ]),
        strict: true,
        ..Step::proxy("")
    };
    sync.on_error = OnError::Instead(vec![Step {
        sql: Sql(vec![
            Part::Text("INSERT INTO q (k) VALUES ".into()),
            keys.clone(),
        ]),
        ..Step::proxy("")
    }]);
    Program {
        steps: vec![
            capture,
            Step::client(Sql(vec![
                Part::Text("UPDATE t SET v = 0 WHERE v > 1 AND id IN (".into()),
                keys,
                Part::Text(")".into()),
            ])),
            sync,
        ],
    }
}

#[test]
fn captured_rows_feed_later_steps_and_one_transaction_frames_all() {
    let log = play(
        capture_program(),
        Dialect::Mysql,
        false,
        vec![
            ok(),
            ok(),
            rows(&[&[Some("1")], &[Some("-7")], &[Some("a'b")]]),
        ],
    );
    expect_test::expect![[r#"
          SET TRANSACTION ISOLATION LEVEL READ COMMITTED
          START TRANSACTION
        * SELECT id FROM t WHERE v > 1 FOR UPDATE
        --
        > UPDATE t SET v = 0 WHERE v > 1 AND id IN ((1), (-7), (_utf8mb4 X'612762'))
          INSERT INTO t2 SELECT * FROM t WHERE id IN ((1), (-7), (_utf8mb4 X'612762'))
          COMMIT
        --
        finish Done
    "#]]
    .assert_eq(&log);
}

#[test]
fn no_captured_rows_splice_a_row_of_nulls_that_matches_nothing() {
    let log = play(
        capture_program(),
        Dialect::Postgres,
        true,
        vec![ok(), rows(&[])],
    );
    expect_test::expect![[r#"
          SAVEPOINT switchyard_run
        * SELECT id FROM t WHERE v > 1 FOR UPDATE
        --
        > UPDATE t SET v = 0 WHERE v > 1 AND id IN ((NULL))
          INSERT INTO t2 SELECT * FROM t WHERE id IN ((NULL))
          RELEASE SAVEPOINT switchyard_run
        --
        finish Done
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_failed_step_with_a_replacement_starts_over_with_it_on_postgres() {
    let log = play(
        capture_program(),
        Dialect::Postgres,
        true,
        vec![
            ok(),
            rows(&[&[Some("5")]]),
            ok(),
            failed("CHECK constraint failed"),
            ok(),
            ok(),
            ok(),
            rows(&[&[Some("5")]]),
        ],
    );
    expect_test::expect![[r#"
          SAVEPOINT switchyard_run
        * SELECT id FROM t WHERE v > 1 FOR UPDATE
        --
        > UPDATE t SET v = 0 WHERE v > 1 AND id IN ((5))
          INSERT INTO t2 SELECT * FROM t WHERE id IN ((5))
          RELEASE SAVEPOINT switchyard_run
          -- failed
        --
          ROLLBACK TO SAVEPOINT switchyard_run
          RELEASE SAVEPOINT switchyard_run
          SAVEPOINT switchyard_run
        * SELECT id FROM t WHERE v > 1 FOR UPDATE
        --
        > UPDATE t SET v = 0 WHERE v > 1 AND id IN ((5))
          INSERT INTO q (k) VALUES (5)
          RELEASE SAVEPOINT switchyard_run
        --
        finish Done
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_strict_step_fails_on_a_warning() {
    let mut run = Run::new(capture_program(), Dialect::Mysql, false);
    run.advance();
    // SET TRANSACTION ISOLATION LEVEL READ COMMITTED, START TRANSACTION.
    run.on_result(ok());
    run.on_result(ok());
    run.on_result(rows(&[&[Some("5")]]));
    run.advance();
    run.on_result(ok());
    run.on_result(StepResult {
        warnings: 1,
        ..ok()
    });
    // The replacement runs in its place, and the transaction commits.
    let again = sent(&run.advance());
    assert_eq!(again, "  INSERT INTO q (k) VALUES (5)\n  COMMIT\n");
    assert_eq!(run.restarts(), 1);
}

#[test]
fn the_clients_own_failure_is_its_answer_and_undoes_the_proxys_work() {
    let program = Program {
        steps: vec![
            Step::proxy("SELECT set_config('switchyard.mirrored', 'm', true)"),
            Step::client(Sql::text("INSERT INTO t VALUES (1)")),
        ],
    };
    // Outside a transaction: rolled back.
    let log = play(
        program.clone(),
        Dialect::Postgres,
        false,
        vec![ok(), ok(), failed("duplicate key")],
    );
    expect_test::expect![[r#"
          BEGIN
          SELECT set_config('switchyard.mirrored', 'm', true)
        > INSERT INTO t VALUES (1)
          COMMIT
          -- failed
        --
          ROLLBACK
        --
        finish ClientFailed
    "#]]
    .assert_eq(&log);
    // Inside the client's PostgreSQL transaction: left broken, as the
    // failure alone would leave it.
    let log = play(
        program.clone(),
        Dialect::Postgres,
        true,
        vec![ok(), ok(), failed("duplicate key")],
    );
    expect_test::expect![[r#"
          SAVEPOINT switchyard_run
          SELECT set_config('switchyard.mirrored', 'm', true)
        > INSERT INTO t VALUES (1)
          RELEASE SAVEPOINT switchyard_run
          -- failed
        --
        finish ClientFailed
    "#]]
    .assert_eq(&log);
    // Inside a MySQL transaction, no savepoint: the failed statement undid
    // only itself, and the transaction goes on.
    let log = play(
        program,
        Dialect::Mysql,
        true,
        vec![ok(), failed("duplicate key")],
    );
    expect_test::expect![[r#"
          SELECT set_config('switchyard.mirrored', 'm', true)
        > INSERT INTO t VALUES (1)
          -- failed
        --
        finish ClientFailed
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_proxy_step_without_a_replacement_fails_the_client_with_its_message() {
    let program = Program {
        steps: vec![
            Step::client(Sql::text("DELETE FROM t")),
            Step::proxy("DELETE FROM t2"),
        ],
    };
    let log = play(
        program,
        Dialect::Mysql,
        false,
        vec![ok(), ok(), ok(), failed("t2 is gone")],
    );
    expect_test::expect![[r#"
          SET TRANSACTION ISOLATION LEVEL READ COMMITTED
          START TRANSACTION
        > DELETE FROM t
          DELETE FROM t2
          COMMIT
          -- failed
        --
          ROLLBACK
        --
        finish Failed("t2 is gone")
    "#]]
    .assert_eq(&log);
}

#[test]
fn literals_mean_the_same_under_any_session_setting() {
    let cases: &[(Dialect, Option<&[u8]>, &str)] = &[
        (Dialect::Postgres, Some(b"42"), "42"),
        (Dialect::Postgres, Some(b"-42"), "-42"),
        (Dialect::Postgres, Some(b"4.2"), "E'4.2'"),
        (
            Dialect::Postgres,
            Some(b"it's a \\ path"),
            "E'it''s a \\\\ path'",
        ),
        (Dialect::Postgres, None, "NULL"),
        (Dialect::Postgres, Some(b"-"), "E'-'"),
        (
            Dialect::Postgres,
            Some(b"123456789012345678901234"),
            "E'123456789012345678901234'",
        ),
        (Dialect::Mysql, Some(b"7"), "7"),
        (Dialect::Mysql, Some(b"a\\'"), "_utf8mb4 X'615C27'"),
        (Dialect::Mysql, Some(b""), "_utf8mb4 X''"),
    ];
    for (dialect, value, want) in cases {
        let mut out = String::new();
        literal(&mut out, *dialect, *value);
        assert_eq!(&out, want, "{dialect:?} {value:?}");
    }
}

#[test]
fn on_mysql_a_failed_step_is_replaced_in_place() {
    let log = play(
        capture_program(),
        Dialect::Mysql,
        true,
        vec![
            rows(&[&[Some("5")]]),
            ok(),
            failed("CHECK constraint failed"),
            ok(),
        ],
    );
    expect_test::expect![[r#"
        * SELECT id FROM t WHERE v > 1 FOR UPDATE
        --
        > UPDATE t SET v = 0 WHERE v > 1 AND id IN ((5))
          INSERT INTO t2 SELECT * FROM t WHERE id IN ((5))
          -- failed
        --
          INSERT INTO q (k) VALUES (5)
        --
        finish Done
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_failed_undo_ends_the_run_and_is_never_retried() {
    let program = Program {
        steps: vec![
            Step::client(Sql::text("DELETE FROM t")),
            Step::proxy("DELETE FROM t2"),
        ],
    };
    // The proxy's step fails; the undo (the savepoint is gone) fails too.
    let log = play(
        program,
        Dialect::Postgres,
        true,
        vec![
            ok(),
            ok(),
            failed("t2 is gone"),
            failed("no such savepoint"),
        ],
    );
    expect_test::expect![[r#"
          SAVEPOINT switchyard_run
        > DELETE FROM t
          DELETE FROM t2
          RELEASE SAVEPOINT switchyard_run
          -- failed
        --
          ROLLBACK TO SAVEPOINT switchyard_run
          RELEASE SAVEPOINT switchyard_run
          -- failed
        --
        finish Failed("t2 is gone")
    "#]]
    .assert_eq(&log);
}

#[test]
fn a_deadlock_that_rolled_the_transaction_back_is_the_clients_answer() {
    let mut run = Run::new(capture_program(), Dialect::Mysql, true);
    run.advance();
    run.on_result(rows(&[&[Some("5")]]));
    run.advance();
    run.on_result(ok());
    // The sync step is the deadlock's victim: no replacement runs, since
    // the client's statement went with the transaction.
    run.on_result(StepResult {
        error: Some("Deadlock found".into()),
        rolled_back: true,
        ..ok()
    });
    assert_eq!(
        run.advance(),
        Action::Finish(Outcome::Failed("Deadlock found".into()))
    );
    assert_eq!(run.restarts(), 0);
}

#[test]
fn a_deadlock_in_the_runs_own_transaction_begins_it_again() {
    // An autocommit write: the run opens the transaction, so a deadlock
    // that rolled it back took nothing of the client's.
    let mut run = Run::new(capture_program(), Dialect::Mysql, false);
    let mut action = run.advance();
    let first = sent(&action);
    let mut deadlocks = 0;
    loop {
        match action {
            Action::Finish(outcome) => {
                assert_eq!(outcome, Outcome::Failed("Deadlock found".into()));
                break;
            }
            Action::Send(_) => {
                deadlocks += 1;
                run.on_result(StepResult {
                    error: Some("Deadlock found".into()),
                    rolled_back: true,
                    ..ok()
                });
                action = run.advance();
            }
        }
    }
    // Three retries, each starting with the transaction again; the fourth
    // deadlock is the client's answer.
    assert_eq!(deadlocks, 4);
    assert!(first.contains("START TRANSACTION"), "{first}");
}
