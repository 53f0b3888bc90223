//! What the executor and CLI tests share: a fresh database per test with
//! `api` (ids from a counter, the last ones deleted, so the counter is
//! past MAX(id)) moving to `t_sys_api_endpoints` with renamed columns, a
//! configuration file naming it, the `switchyard` binary, and plain SQL
//! of the test's own to check the data.

#![allow(dead_code)]

#[path = "../support/server.rs"]
pub mod servers;
pub use servers::Engine;

use std::path::PathBuf;
use std::process::Output;

use switchyard_core::config::Config;

/// Rows inserted; the last [`DELETED`] are deleted again.
pub const ROWS: i64 = 500;
/// Rows deleted from the end, so MAX(id) + 1 is below the counter.
pub const DELETED: i64 = 20;

/// A database of one test's own, with its configuration file.
pub struct Db {
    /// The server.
    pub engine: Engine,
    /// The database's name, unique per test.
    pub name: String,
    /// The configuration file.
    pub config_path: PathBuf,
    /// Keeps the configuration's directory alive.
    _dir: tempfile::TempDir,
}

impl Db {
    /// A fresh database with the two tables and the configuration of
    /// [`Db::yaml`] in its file.
    pub async fn create(engine: Engine, prefix: &str) -> Db {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "sy_ex_{prefix}_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("switchyard.yaml");
        let db = Db {
            engine,
            name,
            config_path,
            _dir: dir,
        };
        db.admin(&format!("CREATE DATABASE {}", db.name)).await;
        let (serial, series) = match engine {
            Engine::Pg => ("serial PRIMARY KEY", "generate_series(1, 500) AS s(seq)"),
            Engine::My => ("bigint AUTO_INCREMENT PRIMARY KEY", "seq_1_to_500"),
        };
        db.exec(&[
            &format!("CREATE TABLE api (id {serial}, path varchar(200) NOT NULL, method varchar(10))"),
            &format!("CREATE TABLE t_sys_api_endpoints (id {serial}, endpoint_path varchar(200) NOT NULL, http_method varchar(10))"),
            &format!("INSERT INTO api (path, method) SELECT concat('/v1/r', seq), CASE WHEN seq % 3 = 0 THEN NULL ELSE 'GET' END FROM {series}"),
            &format!("DELETE FROM api WHERE id > {}", ROWS - DELETED),
        ])
        .await;
        std::fs::write(&db.config_path, db.yaml()).unwrap();
        db
    }

    /// The configuration: one migration from `planned`, a two-step ramp
    /// baking 1 s (tests pass `--min-samples 0`: no proxy runs).
    pub fn yaml(&self) -> String {
        let (backend, schema) = match self.engine {
            Engine::Pg => (
                r#"kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: """#,
                "schema: public, ",
            ),
            Engine::My => (
                r#"kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: """#,
                "",
            ),
        };
        let db = &self.name;
        format!(
            "backends:
  db: {{ {backend} }}
migrations:
  - id: api
    backend: db
    source: {{ database: {db}, {schema}table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {{ path: endpoint_path, method: http_method }}
    phase: planned
    ramp: {{ steps: [50, 100], bake: 1s }}
"
        )
    }

    /// The configuration for proxies as well: listeners and an admin port
    /// on free ports, the user `app` (password `app`), the route to the
    /// server, and `extra` (YAML lines indented as the migration's keys)
    /// added to the migration.
    pub fn proxied_yaml(&self, extra: &str) -> String {
        let listen = match self.engine {
            Engine::Pg => "postgres",
            Engine::My => "mysql",
        };
        format!(
            "listen: {{ {listen}: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
users:
  - {{ name: app, password: app }}
routes: {{ {listen}: db }}
{}{extra}",
            self.yaml()
        )
    }

    /// Replaces the configuration file (the CLI reads it on every run).
    pub fn write_config(&self, yaml: &str) {
        std::fs::write(&self.config_path, yaml).unwrap();
    }

    /// The configuration, loaded.
    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap_or_else(|e| panic!("test config: {e}"))
    }

    /// Runs `switchyard --config FILE args...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("the switchyard binary runs")
    }

    /// Starts `switchyard --config FILE args...` with stdout and stderr
    /// piped, killed if the test drops it.
    pub fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the switchyard binary starts")
    }

    /// Runs statements in order in this database.
    pub async fn exec(&self, statements: &[&str]) {
        servers::exec(self.engine, Some(&self.name), statements).await
    }

    /// The one integer `sql` returns.
    pub async fn int(&self, sql: &str) -> i64 {
        servers::int(self.engine, &self.name, sql).await
    }

    /// Rows that differ between source and target, both ways, by EXCEPT.
    pub async fn differences(&self) -> i64 {
        let s = "id, path, method FROM api";
        let t = "id, endpoint_path, http_method FROM t_sys_api_endpoints";
        self.int(&format!(
            "SELECT count(*) FROM ((SELECT {s} EXCEPT SELECT {t}) UNION ALL (SELECT {t} EXCEPT SELECT {s})) AS d"
        ))
        .await
    }

    /// Whether a table of this name exists in the database.
    pub async fn has_table(&self, table: &str) -> bool {
        let sql = match self.engine {
            Engine::Pg => format!(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = '{table}'"
            ),
            Engine::My => format!(
                "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}'",
                self.name
            ),
        };
        self.int(&sql).await == 1
    }

    /// The id the target's counter hands out next, read from the counter.
    pub async fn target_next_id(&self) -> i64 {
        self.next_id("t_sys_api_endpoints").await
    }

    /// The id `table`'s counter hands out next (its sequence, or its
    /// AUTO_INCREMENT, which MariaDB reserves in blocks for a bulk insert).
    pub async fn next_id(&self, table: &str) -> i64 {
        match self.engine {
            Engine::Pg => {
                self.int(&format!(
                    "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {table}_id_seq"
                ))
                .await
            }
            Engine::My => {
                self.int(&format!(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_NAME = '{table}'",
                    self.name
                ))
                .await
            }
        }
    }

    async fn admin(&self, sql: &str) {
        servers::exec(self.engine, None, &[sql]).await
    }

    /// Drops the database.
    pub async fn drop(self) {
        let sql = match self.engine {
            Engine::Pg => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Engine::My => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        self.admin(&sql).await;
    }
}

/// The process's stdout as text.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The process's stderr as text.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
