//! What the backfill scenarios share across engines: a fresh database per
//! test, the same tables on both engines, plain SQL of the test's own to
//! run and count, a configuration naming the migrations, and a proxy.

#[path = "../support/server.rs"]
mod servers;
use mysql_async::prelude::Queryable;
pub use servers::{my, pg, Engine};

use std::path::Path;
use std::sync::Arc;

use switchyard_controller::backfill::{self, Outcome, Progress, Settings};
use switchyard_controller::live::Live;
use switchyard_core::config::Config;
use switchyard_core::sql::Dialect;
use switchyard_core::store::{self, Guard};
use switchyard_core::sync::{Direction, RowSync};
use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::server::{self, Running};
use tokio::sync::watch;

/// A database of one test's own.
pub struct Db {
    /// The server.
    pub engine: Engine,
    /// The database's name, unique per test run.
    pub name: String,
}

/// How many rows the tables start with.
pub const ROWS: i64 = 3000;

impl Db {
    /// Creates a fresh database with `items` → `items_v2` (key `id`,
    /// `name` renamed `title`; `title` holds at most `title_len`
    /// characters) and `events` → `events_v2` (key `(region, id)`, `body`
    /// renamed `payload`), each source filled with [`ROWS`] rows.
    pub async fn create(engine: Engine, prefix: &str, title_len: u32) -> Db {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sy_bf_{prefix}_{}_{nanos}", std::process::id());
        let db = Db { engine, name };
        db.admin(&format!("CREATE DATABASE {}", db.name)).await;
        let (text, series, md5) = match engine {
            Engine::Pg => (
                "text",
                "generate_series(1, 3000) AS s(seq)",
                "md5(seq::text)",
            ),
            Engine::My => ("TEXT", "seq_1_to_3000", "md5(seq)"),
        };
        db.exec(&[
            &format!("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(64) NOT NULL, price decimal(10,2), note {text})"),
            &format!("CREATE TABLE items_v2 (id bigint PRIMARY KEY, title varchar({title_len}), price decimal(12,2), note {text})"),
            &format!("CREATE TABLE events (region varchar(16), id bigint, body {text}, PRIMARY KEY (region, id))"),
            &format!("CREATE TABLE events_v2 (region varchar(16), id bigint, payload {text}, PRIMARY KEY (region, id))"),
            &format!("INSERT INTO items SELECT seq, concat('name ', seq), seq * 1.5, CASE WHEN seq % 7 = 0 THEN NULL ELSE {md5} END FROM {series}"),
            &format!("INSERT INTO events SELECT concat('r', seq % 5), seq, {md5} FROM {series}"),
        ])
        .await;
        db
    }

    /// Runs statements in order, each on its own, in this database.
    pub async fn exec(&self, statements: &[&str]) {
        servers::exec(self.engine, Some(&self.name), statements).await
    }

    /// The one integer `sql` returns.
    pub async fn int(&self, sql: &str) -> i64 {
        servers::int(self.engine, &self.name, sql).await
    }

    /// Rows of `items` and `items_v2` (or the events) that differ, both
    /// ways, by plain `EXCEPT`.
    pub async fn differences(&self, table: &str) -> i64 {
        let (s, t) = match table {
            "items" => (
                "id, name, price, note FROM items",
                "id, title, price, note FROM items_v2",
            ),
            _ => (
                "region, id, body FROM events",
                "region, id, payload FROM events_v2",
            ),
        };
        self.int(&format!(
            "SELECT count(*) FROM ((SELECT {s} EXCEPT SELECT {t}) UNION ALL (SELECT {t} EXCEPT SELECT {s})) AS d"
        ))
        .await
    }

    /// The configuration: the server, and both migrations in `dual_write`.
    pub fn yaml(&self) -> String {
        let (backend, listen, schema) = match self.engine {
            Engine::Pg => (
                r#"kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: """#,
                "postgres",
                "schema: public, ",
            ),
            Engine::My => (
                r#"kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: """#,
                "mysql",
                "",
            ),
        };
        let db = &self.name;
        format!(
            "listen: {{ {listen}: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
users:
  - {{ name: app, password: app }}
backends:
  db: {{ {backend} }}
routes: {{ {listen}: db }}
migrations:
  - id: items_v2
    backend: db
    source: {{ database: {db}, {schema}table: items, primary_key: [id] }}
    target: {{ table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
  - id: events_v2
    backend: db
    source: {{ database: {db}, {schema}table: events, primary_key: [region, id] }}
    target: {{ table: events_v2 }}
    columns: {{ body: payload }}
    phase: dual_write
"
        )
    }

    /// The configuration, loaded.
    pub fn config(&self) -> Config {
        Config::from_yaml(&self.yaml(), Path::new("."), &|_| None)
            .unwrap_or_else(|e| panic!("test config: {e}"))
    }

    /// Runs migration `id`'s backfill with `settings`; `stop_after` chunks
    /// reported, asks it to pause. Returns the outcome and every report.
    pub async fn backfill(
        &self,
        id: &str,
        settings: &Settings,
        stop_after: Option<usize>,
    ) -> (Result<Outcome, backfill::BackfillError>, Vec<Progress>) {
        let live = Live::resolve(&self.config(), id).await.unwrap();
        let (pause, stop) = watch::channel(false);
        let mut reports = Vec::new();
        let outcome = backfill::run(&live, settings, stop, &mut |p: &Progress| {
            reports.push(p.clone());
            if stop_after.is_some_and(|n| reports.len() >= n) {
                let _ = pause.send(true);
            }
        })
        .await;
        (outcome, reports)
    }

    /// The store, the `items_v2` guard and a proxy with the migrations in
    /// `dual_write`.
    pub async fn proxy(&self) -> Running {
        let key = vec!["id".to_string()];
        let (store, schema) = match self.engine {
            Engine::Pg => ("public", "public"),
            Engine::My => (self.name.as_str(), self.name.as_str()),
        };
        let guard = Guard {
            migration: "items_v2",
            store,
            schema,
            table: "items",
            key: &key,
            on_target: false,
        };
        let install = match self.engine {
            Engine::Pg => [store::pg::install(store), store::pg::install_guard(&guard)].concat(),
            Engine::My => [
                store::mysql::install(store),
                store::mysql::install_guard(&guard),
            ]
            .concat(),
        };
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        self.exec(&install).await;
        server::start(self.config(), None, Arc::new(MigrationRouter::default()))
            .await
            .expect("proxy starts")
    }

    /// Keys of `items` whose target row differs and that the dual write
    /// did not queue for repair: rows nothing would ever fix.
    pub async fn unqueued_differences(&self) -> i64 {
        let (first_key, id_text) = match self.engine {
            Engine::Pg => ("q.key->>0", "d.id::text"),
            Engine::My => (
                "JSON_UNQUOTE(JSON_EXTRACT(q.`key`, '$[0]'))",
                "CAST(d.id AS CHAR)",
            ),
        };
        let (s, t) = (
            "id, name, price, note FROM items",
            "id, title, price, note FROM items_v2",
        );
        self.int(&format!(
            "SELECT count(*) FROM ((SELECT id FROM (SELECT {s} EXCEPT SELECT {t}) AS a) UNION (SELECT id FROM (SELECT {t} EXCEPT SELECT {s}) AS b)) AS d \
             WHERE NOT EXISTS (SELECT 1 FROM switchyard_repair_queue q WHERE q.migration = 'items_v2' AND {first_key} = {id_text})"
        ))
        .await
    }

    /// Re-syncs the keys in `items_v2`'s repair queue with the row-image
    /// sync, as the controller's repair does; returns how many keys.
    pub async fn drain_repair_queue(&self) -> usize {
        let live = Live::resolve(&self.config(), "items_v2").await.unwrap();
        let (dialect, query) = match self.engine {
            Engine::Pg => (Dialect::Postgres, "SELECT DISTINCT key->>0 FROM switchyard_repair_queue"),
            Engine::My => (Dialect::Mysql, "SELECT DISTINCT JSON_UNQUOTE(JSON_EXTRACT(`key`, '$[0]')) FROM switchyard_repair_queue"),
        };
        let keys: Vec<Vec<String>> = match self.engine {
            Engine::Pg => pg(&self.name)
                .await
                .simple_query(query)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(vec![r.get(0).unwrap().to_string()])
                    }
                    _ => None,
                })
                .collect(),
            Engine::My => {
                let mut conn = my(Some(&self.name)).await;
                let keys: Vec<String> = conn.query(query).await.unwrap();
                conn.disconnect().await.unwrap();
                keys.into_iter().map(|k| vec![k]).collect()
            }
        };
        let sync = RowSync::new(
            dialect,
            &live.mapping,
            &["id".to_string()],
            Direction::SourceToTarget,
        )
        .unwrap();
        let mut statements = vec!["BEGIN".to_string()];
        statements.extend(sync.statements(&keys).unwrap());
        statements.push("COMMIT".to_string());
        let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
        match self.engine {
            Engine::Pg => self.exec(&[&statements.join(";\n")]).await,
            Engine::My => self.exec(&statements).await,
        }
        keys.len()
    }

    /// Drops the database.
    pub async fn drop(self) {
        match self.engine {
            Engine::Pg => {
                self.admin(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await
            }
            Engine::My => {
                self.admin(&format!("DROP DATABASE IF EXISTS {}", self.name))
                    .await
            }
        }
    }

    /// Runs `sql` outside this database.
    async fn admin(&self, sql: &str) {
        servers::exec(self.engine, None, &[sql]).await
    }
}
