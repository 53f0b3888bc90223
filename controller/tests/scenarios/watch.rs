//! `switchyard status --watch`: frame after frame, each read from the
//! store again (a pause shows in the next one), no terminal escapes when
//! stdout is a pipe, exit 0 on Ctrl-C, and exit once the reader closes
//! the pipe rather than querying the store for nobody.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use super::{expect, Db, Engine};

/// How long a frame may take to come: the interval (1 s) and a margin for
/// a loaded machine.
const FRAME: Duration = Duration::from_secs(5);

pub async fn status_watch_refreshes_and_stops_when_told(engine: Engine) {
    let db = Db::create(engine, "watch").await;
    expect(&db, &["init"], 0);

    let mut watch = db.spawn(&["status", "api", "--watch", "--interval", "1"]);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let first = frame(&mut lines).await;
    assert!(first.contains("planned"), "{first}");
    assert!(
        !first.contains('\x1b'),
        "terminal escapes in a pipe: {first:?}"
    );
    expect(&db, &["pause", "api"], 0);
    // The next frames read the store again and show the pause.
    let mut frames = 1;
    loop {
        let next = frame(&mut lines).await;
        frames += 1;
        if paused(&next) {
            break;
        }
        assert!(frames < 4, "the pause never showed: {next}");
    }
    assert!(started.elapsed() < FRAME * 2, "{:?}", started.elapsed());

    // Ctrl-C ends it, with exit 0.
    interrupt(&watch);
    let ended = tokio::time::timeout(FRAME, watch.wait())
        .await
        .expect("the watch went on after Ctrl-C")
        .unwrap();
    assert!(ended.success(), "after Ctrl-C: {ended}");

    // JSON frames, one document a line; the watch ends once nobody reads.
    let mut watch = db.spawn(&["--json", "status", "api", "--watch", "--interval", "1"]);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let line = next_line(&mut lines).await;
        let doc: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(doc["migrations"][0]["paused"], true, "{doc}");
    }
    drop(lines);
    let ended = tokio::time::timeout(FRAME, watch.wait())
        .await
        .expect("the watch went on with its pipe closed")
        .unwrap();
    assert!(ended.success(), "with the pipe closed: {ended}");
    db.drop().await;
}

/// The next frame: the header line and the migration's line.
async fn frame(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    let header = next_line(lines).await;
    assert!(header.starts_with("MIGRATION"), "not a header: {header:?}");
    let line = next_line(lines).await;
    assert!(line.starts_with("api "), "not api's line: {line:?}");
    line
}

/// Whether the migration's line says it is paused (the PAUSED column).
fn paused(line: &str) -> bool {
    line.split_whitespace().nth(4) == Some("yes")
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(FRAME, lines.next_line())
        .await
        .expect("no frame within the interval")
        .unwrap()
        .expect("the watch ended by itself")
}

/// Sends SIGINT, as Ctrl-C in a terminal does.
fn interrupt(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
}
