//! The executor as a library against real servers: a second controller
//! waits for the lease until the first lets go, and `run` drives a
//! migration from planned to complete by itself.

#[path = "exec/harness.rs"]
mod harness;

use std::time::Duration;

use harness::{code, err, out, Db, Engine};
use switchyard_controller::executor::{Executor, Settings};

async fn a_second_controller_waits_for_the_lease(engine: Engine) {
    let db = Db::create(engine, "lease").await;
    assert_eq!(code(&db.cli(&["init"])), 0);
    let config = db.config();
    let first = Executor::open(&config, "api", "ops@a", Settings::default())
        .await
        .unwrap();
    let second = tokio::spawn(async move {
        let settings = Settings {
            lease_wait: Some(Duration::from_secs(30)),
            ..Settings::default()
        };
        Executor::open(&config, "api", "ops@b", settings).await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!second.is_finished(), "the second controller did not wait");
    first.close().await;
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second controller took the lease once released")
        .unwrap()
        .unwrap();
    second.close().await;
    // A controller that does not wait long enough is told who holds it.
    let config = db.config();
    let holder = Executor::open(&config, "api", "ops@a", Settings::default())
        .await
        .unwrap();
    let settings = Settings {
        lease_wait: Some(Duration::from_millis(600)),
        ..Settings::default()
    };
    let refused = Executor::open(&config, "api", "ops@c", settings).await;
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("ops@a"), "{message}");
    holder.close().await;
    db.drop().await;
}

async fn run_drives_to_complete(engine: Engine) {
    let db = Db::create(engine, "run").await;
    assert_eq!(code(&db.cli(&["init"])), 0);
    let run = db.cli(&["run", "api", "--min-samples", "0"]);
    assert_eq!(
        code(&run),
        0,
        "stdout: {}\nstderr: {}",
        out(&run),
        err(&run)
    );
    assert!(!db.has_table("api").await);
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints").await,
        harness::ROWS - harness::DELETED
    );
    assert!(db.target_next_id().await > harness::ROWS);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_a_second_controller_waits_for_the_lease() {
    a_second_controller_waits_for_the_lease(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_a_second_controller_waits_for_the_lease() {
    a_second_controller_waits_for_the_lease(Engine::My).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_run_drives_to_complete() {
    run_drives_to_complete(Engine::Pg).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_run_drives_to_complete() {
    run_drives_to_complete(Engine::My).await;
}
