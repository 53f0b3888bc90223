//! A writer that bypasses the proxies: while the reads bake on the target
//! before the write switch, a session connected straight to the source
//! writes the source table. The readiness gate refuses the switch with a
//! message that names the session; `switchyard repair --queue` repairs
//! what it wrote, and the switch then goes through. No proxy runs: the
//! bypassing session is the only writer.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::harness::servers::my;
use super::harness::{code, err, out};
use super::{expect, status, to_reads_on_target, Db, Engine};

/// How the direct session names itself on PostgreSQL.
const APPLICATION: &str = "nightly-import";

/// What the direct session writes: an update, an insert and a delete.
const WRITES: [&str; 3] = [
    "UPDATE api SET method = 'PATCH' WHERE id = 42",
    "INSERT INTO api (path, method) VALUES ('/direct', 'PUT')",
    "DELETE FROM api WHERE id = 43",
];

pub async fn a_writer_bypassing_the_proxies_blocks_the_switch_by_name(engine: Engine) {
    let db = Db::create(engine, "bypass").await;
    // Long enough a bake to write during it.
    db.write_config(&db.yaml().replace("bake: 1s", "bake: 3s"));
    to_reads_on_target(&db);
    let mut writer = Writer::connect(&db).await;

    let mut switch = db.spawn(&["advance", "api", "--min-samples", "0"]);
    let mut stderr = BufReader::new(switch.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
            .await
            .expect("the advance never started baking")
            .unwrap()
            .expect("the advance ended before baking");
        if line.contains("baking reads on the target") {
            break;
        }
    }
    for sql in WRITES {
        writer.write(sql).await;
    }
    let mut rest = Vec::new();
    while let Some(line) = stderr.next_line().await.unwrap() {
        rest.push(line);
    }
    let refused = switch.wait_with_output().await.unwrap();
    let message = out(&refused);
    assert_eq!(code(&refused), 1, "{message}\nstderr: {rest:?}");
    assert_eq!(status(&db)["phase"], "reads_on_target");
    let readiness = message
        .lines()
        .find(|l| l.contains("gate readiness is closed"))
        .unwrap_or_else(|| panic!("no readiness verdict: {message}"));
    assert!(readiness.contains("without a proxy"), "{readiness}");
    for name in writer.names() {
        assert!(readiness.contains(&name), "{name:?} not in: {readiness}");
    }

    // The repair queue holds what it wrote; repairing it makes the tables
    // equal, by the test's own comparison.
    assert!(
        db.differences().await > 0,
        "the direct writes were mirrored?"
    );
    expect(&db, &["repair", "api", "--queue"], 0);
    assert_eq!(db.differences().await, 0);
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints WHERE endpoint_path = '/direct' OR (id = 42 AND http_method = 'PATCH')")
            .await,
        2
    );
    assert_eq!(
        db.int("SELECT count(*) FROM t_sys_api_endpoints WHERE id = 43")
            .await,
        0
    );
    let again = db.cli(&["advance", "api", "--min-samples", "0"]);
    assert_eq!(code(&again), 0, "{}\n{}", out(&again), err(&again));
    assert_eq!(status(&db)["phase"], "write_switch");
    writer.close().await;
    db.drop().await;
}

/// A session connected to the source's server directly, not through a
/// proxy, and how the server lists it.
enum Writer {
    Pg {
        client: tokio_postgres::Client,
        pid: i32,
    },
    My {
        conn: mysql_async::Conn,
        id: u32,
    },
}

impl Writer {
    async fn connect(db: &Db) -> Writer {
        match db.engine {
            Engine::Pg => {
                let dsn = format!(
                    "host=127.0.0.1 port=5432 user=postgres dbname={} application_name={APPLICATION}",
                    db.name
                );
                let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let pid = client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .unwrap()
                    .get(0);
                Writer::Pg { client, pid }
            }
            Engine::My => {
                let conn = my(Some(&db.name)).await;
                let id = conn.id();
                Writer::My { conn, id }
            }
        }
    }

    /// What a message naming this session must contain.
    fn names(&self) -> Vec<String> {
        match self {
            Writer::Pg { pid, .. } => vec![pid.to_string(), APPLICATION.to_string()],
            Writer::My { id, .. } => vec![format!("{id} root@")],
        }
    }

    async fn write(&mut self, sql: &str) {
        match self {
            Writer::Pg { client, .. } => client.batch_execute(sql).await.unwrap(),
            Writer::My { conn, .. } => conn.query_drop(sql).await.unwrap(),
        }
    }

    async fn close(self) {
        if let Writer::My { conn, .. } = self {
            conn.disconnect().await.unwrap();
        }
    }
}
