//! A transaction that holds the source open past the migration's
//! `switch.max_transaction_age` (1 s here; with the default 30 s the same
//! switch would go through) keeps the write switch's readiness closed,
//! naming its session and the setting; once it ends the switch goes
//! through.

use mysql_async::prelude::Queryable;

use super::harness::servers::{my, pg};
use super::harness::{code, out};
use super::{expect, status, to_reads_on_target, Db, Engine};

pub async fn an_old_transaction_keeps_the_switch_closed_by_name(engine: Engine) {
    let db = Db::create(engine, "oldtx").await;
    db.write_config(&format!(
        "{}    switch: {{ max_transaction_age: 1s }}\n",
        db.yaml()
    ));
    to_reads_on_target(&db);

    let open = Open::begin(&db).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let refused = db.cli(&["advance", "api", "--min-samples", "0"]);
    let message = out(&refused);
    assert_eq!(code(&refused), 1, "{message}");
    let readiness = message
        .lines()
        .find(|l| l.contains("gate readiness is closed"))
        .unwrap_or_else(|| panic!("no readiness verdict: {message}"));
    assert!(
        readiness.contains("transactions open longer than 1 s")
            && readiness.contains(&format!("session {} (", open.session))
            && readiness.contains("switch.max_transaction_age"),
        "{readiness}"
    );
    assert_eq!(status(&db)["phase"], "reads_on_target");

    open.commit().await;
    expect(&db, &["advance", "api", "--min-samples", "0"], 0);
    assert_eq!(status(&db)["phase"], "write_switch");
    db.drop().await;
}

/// A transaction on a direct connection that read a row of the source
/// with a lock and is still open.
struct Open {
    /// The server's id of its session, as readiness names it.
    session: i64,
    /// The connection.
    conn: Conn,
}

enum Conn {
    Pg(tokio_postgres::Client),
    My(mysql_async::Conn),
}

impl Open {
    async fn begin(db: &Db) -> Open {
        let read = "SELECT path FROM api WHERE id = 1 FOR UPDATE";
        match db.engine {
            Engine::Pg => {
                let client = pg(&db.name).await;
                let pid: i32 = client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .unwrap()
                    .get(0);
                client
                    .batch_execute(&format!("BEGIN; {read}"))
                    .await
                    .unwrap();
                Open {
                    session: pid.into(),
                    conn: Conn::Pg(client),
                }
            }
            Engine::My => {
                let mut conn = my(Some(&db.name)).await;
                let id: Option<i64> = conn.query_first("SELECT CONNECTION_ID()").await.unwrap();
                conn.query_drop("START TRANSACTION").await.unwrap();
                conn.query_drop(read).await.unwrap();
                Open {
                    session: id.unwrap(),
                    conn: Conn::My(conn),
                }
            }
        }
    }

    async fn commit(self) {
        match self.conn {
            Conn::Pg(client) => client.batch_execute("COMMIT").await.unwrap(),
            Conn::My(mut conn) => {
                conn.query_drop("COMMIT").await.unwrap();
                conn.disconnect().await.unwrap();
            }
        }
    }
}
