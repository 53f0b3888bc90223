//! The local servers as the controller's tests reach them: which engine,
//! a direct connection to each, and plain SQL of the test's own (run
//! statements, read one integer), so every harness checks data the same
//! way.

#![allow(dead_code)]

use mysql_async::prelude::Queryable;

/// Which server a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL 15 on 127.0.0.1:5432.
    Pg,
    /// MariaDB 10.11 on 127.0.0.1:3306.
    My,
}

/// A direct PostgreSQL connection to `db`.
pub async fn pg(db: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-databases.sh)");
    tokio::spawn(conn);
    client
}

/// A direct MariaDB connection, in `db` when given.
pub async fn my(db: Option<&str>) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(3306)
        .user(Some("root"))
        .pass(Some(""))
        .db_name(db)
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .expect("MariaDB on 127.0.0.1:3306 (run scripts/ensure-databases.sh)")
}

/// Runs statements in order, each on its own, in database `db` (the
/// server's default when `None`).
pub async fn exec(engine: Engine, db: Option<&str>, statements: &[&str]) {
    match engine {
        Engine::Pg => {
            let client = pg(db.unwrap_or("postgres")).await;
            for sql in statements {
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            }
        }
        Engine::My => {
            let mut conn = my(db).await;
            for sql in statements {
                conn.query_drop(*sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            conn.disconnect().await.unwrap();
        }
    }
}

/// The one integer `sql` returns in database `db`.
pub async fn int(engine: Engine, db: &str, sql: &str) -> i64 {
    match engine {
        Engine::Pg => pg(db).await.query_one(sql, &[]).await.unwrap().get(0),
        Engine::My => {
            let mut conn = my(Some(db)).await;
            let n: Option<i64> = conn.query_first(sql).await.unwrap();
            conn.disconnect().await.unwrap();
            n.unwrap()
        }
    }
}
