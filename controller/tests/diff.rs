//! The table diff against real PostgreSQL and MariaDB: known differences
//! injected into copies of a table are each found exactly (the right
//! keys, kinds and columns), and equal copies, including retyped columns
//! and JSON written differently, are reported clean. Every test creates
//! its own database.

use std::path::Path;
use std::time::Duration;

use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::report::{Kind, Level, Report};
use switchyard_consistency::diff::{Job, Options};
use switchyard_controller::cmd::repair::{repair, RepairArgs};
use switchyard_controller::live::Live;
use switchyard_core::config::Config;

/// A fresh database on the local server of `kind`, named for the test.
async fn database(kind: &str, test: &str) -> String {
    // A fixed name per test: each run starts by dropping the last one.
    let name = format!("sy_diff_{test}");
    run(kind, "", &format!("DROP DATABASE IF EXISTS {name}")).await;
    run(kind, "", &format!("CREATE DATABASE {name}")).await;
    name
}

/// Runs `sql` (one or more statements) on the local server of `kind`, in
/// `db` (the server's default when empty).
async fn run(kind: &str, db: &str, sql: &str) {
    match kind {
        "postgres" => {
            let db = if db.is_empty() { "postgres" } else { db };
            let (client, conn) = tokio_postgres::connect(
                &format!("host=127.0.0.1 user=postgres dbname={db}"),
                tokio_postgres::NoTls,
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
        _ => {
            use mysql_async::prelude::Queryable;
            let url = format!("mysql://root@127.0.0.1:3306/{db}");
            let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
            conn.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
            conn.disconnect().await.unwrap();
        }
    }
}

/// A configuration with one migration `m` from `source` to `target` in
/// `db`, `path` renamed to `endpoint_path` when `renamed`.
fn config(kind: &str, db: &str, source: &str, target: &str, key: &str, renamed: bool) -> Config {
    let (backend, port, user) = match kind {
        "postgres" => ("postgres", 5432, "postgres"),
        _ => ("mariadb", 3306, "root"),
    };
    let listen = if kind == "postgres" {
        "postgres"
    } else {
        "mysql"
    };
    let columns = if renamed {
        "columns: { path: endpoint_path }"
    } else {
        "columns: {}"
    };
    let yaml = format!(
        "listen: {{ {listen}: 127.0.0.1:0 }}\n\
         users: [{{ name: app, password: app }}]\n\
         backends:\n  db: {{ kind: {backend}, host: 127.0.0.1, port: {port}, user: {user}, password: \"\", database: {db} }}\n\
         routes: {{ {listen}: db }}\n\
         migrations:\n  - id: m\n    backend: db\n    source: {{ table: {source}, primary_key: [{key}] }}\n    target: {{ table: {target} }}\n    {columns}\n"
    );
    Config::from_yaml(&yaml, Path::new("."), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a diff of migration `m` at `level`, with small chunks so even a
/// small table has several.
async fn diff(config: &Config, level: Level) -> Report {
    let live = Live::resolve(config, "m")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let compared = Compared::new(
        live.dialect,
        &live.mapping,
        &live.migration.source.primary_key,
        live.migration.time_zone.as_deref(),
    )
    .unwrap();
    let options = Options {
        level,
        first_chunk_rows: 500,
        chunk_time: Duration::from_millis(1),
        all_keys: true,
        settle: Duration::from_secs(1),
        ..Options::default()
    };
    let job = Job {
        migration: "m",
        compared: &compared,
        connect: &live,
        one_connection: live.same_database(),
    };
    job.run(&options, &|_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The differences as `key kind [columns]` lines, sorted by key as
/// numbers where they are.
fn found(report: &Report) -> Vec<String> {
    let mut rows: Vec<(Vec<String>, String)> = report
        .differences
        .iter()
        .map(|d| {
            let kind = match d.kind {
                Kind::MissingInTarget => "missing",
                Kind::ExtraInTarget => "extra",
                Kind::Changed => "changed",
            };
            let columns: Vec<&str> = d.columns.iter().map(|c| c.column.as_str()).collect();
            (
                d.key.clone(),
                format!("{} {kind} [{}]", d.key.join(","), columns.join(",")),
            )
        })
        .collect();
    // Key columns compare as numbers where both are, else as text.
    rows.sort_by(|a, b| {
        let ordering =
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| match (x.parse::<i64>(), y.parse::<i64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                });
        ordering
            .into_iter()
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows.into_iter().map(|(_, line)| line).collect()
}

/// Asserts that standard, detailed and full diffs all agree on `expected`
/// (empty: clean).
async fn assert_diff(config: &Config, expected: &[&str]) {
    let standard = diff(config, Level::Standard).await;
    assert_eq!(standard.clean, expected.is_empty(), "standard: {standard}");
    for level in [Level::Detailed, Level::Full] {
        let report = diff(config, level).await;
        assert_eq!(found(&report), expected, "{level:?}: {report}");
        assert_eq!(report.clean, expected.is_empty(), "{level:?}: {report}");
        let counted = report.counts.total() as usize;
        assert_eq!(counted, expected.len(), "{level:?}: {report}");
    }
}

const PG_TYPES: &str = "
CREATE TABLE api (id int PRIMARY KEY, path text, name varchar(20), amount numeric(10,2),
    price numeric, f float8, at timestamptz, bin bytea, doc json, note text, pad char(4));
CREATE TABLE t_sys (id bigint PRIMARY KEY, endpoint_path text, name varchar(40), amount numeric(14,4),
    price numeric, f float8, at timestamptz, bin bytea, doc json, note text, pad char(4));
INSERT INTO api SELECT g, '/p/' || g, 'Name' || g, g / 7.0, 1.50, g / 3.0,
    '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', decode(md5(g::text), 'hex'),
    ('{\"b\": ' || g || ', \"a\": [1, 2]}')::json, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END, 'x'
  FROM generate_series(1, 3000) g;
INSERT INTO t_sys SELECT id, path, name, amount, price, f, at, bin,
    ('{\"a\":[1,2],\"b\":' || id || '}')::json, note, pad FROM api;";

#[tokio::test]
async fn postgres_finds_each_injected_difference_exactly() {
    let db = database("postgres", "pg_kinds").await;
    run("postgres", &db, PG_TYPES).await;
    let config = config("postgres", &db, "api", "t_sys", "id", true);
    // Equal copies (a retyped id and amount, JSON with other key order and
    // spacing, a session in another time zone writing) are clean.
    assert_diff(&config, &[]).await;
    run(
        "postgres",
        &db,
        "SET TimeZone = 'Asia/Tokyo';
         DELETE FROM t_sys WHERE id = 10;
         INSERT INTO t_sys (id, endpoint_path) VALUES (5000, '/extra');
         UPDATE t_sys SET endpoint_path = '/other' WHERE id = 20;
         UPDATE t_sys SET note = '' WHERE id = 30;
         UPDATE t_sys SET price = 1.5 WHERE id = 40;
         UPDATE t_sys SET amount = amount + 0.0001 WHERE id = 50;
         UPDATE t_sys SET at = at + interval '1 hour' WHERE id = 60;
         UPDATE t_sys SET name = upper(name) WHERE id = 70;
         UPDATE t_sys SET endpoint_path = endpoint_path || ' ' WHERE id = 80;
         UPDATE t_sys SET bin = bin || '\\x00'::bytea WHERE id = 90;
         UPDATE t_sys SET doc = '{\"a\":[2,1],\"b\":100}' WHERE id = 100;
         UPDATE t_sys SET f = '-0' WHERE id = 110;
         UPDATE api SET f = 0 WHERE id = 110;
         UPDATE t_sys SET pad = 'x  y' WHERE id = 120;
         UPDATE t_sys SET note = NULL, name = NULL WHERE id = 131;",
    )
    .await;
    assert_diff(
        &config,
        &[
            "10 missing []",
            "20 changed [path]",
            "30 changed [note]",
            "40 changed [price]",
            "50 changed [amount]",
            "60 changed [at]",
            "70 changed [name]",
            "80 changed [path]",
            "90 changed [bin]",
            "100 changed [doc]",
            "110 changed [f]",
            "120 changed [pad]",
            "131 changed [name,note]",
            "5000 extra []",
        ],
    )
    .await;
    // Both values are shown side by side, in the target's type where the
    // column is retyped.
    let report = diff(&config, Level::Detailed).await;
    let amount = report
        .differences
        .iter()
        .find(|d| d.key == ["50"])
        .map(|d| &d.columns[0])
        .unwrap();
    assert_eq!(
        (amount.source.as_deref(), amount.target.as_deref()),
        (Some("7.1400"), Some("7.1401"))
    );
    let note = report.differences.iter().find(|d| d.key == ["30"]).unwrap();
    assert_eq!(
        (
            note.columns[0].source.as_deref(),
            note.columns[0].target.as_deref()
        ),
        (None, Some(""))
    );
    // `repair` syncs every differing key from the source; plain SQL then
    // finds the tables equal both ways.
    let args = RepairArgs {
        migration: "m".into(),
        queue: false,
    };
    let done = repair(&config, &args).await.unwrap();
    assert_eq!((done.keys, done.still_differing.len()), (14, 0));
    let differing = pg_value(
        &db,
        "SELECT count(*)::text FROM (
           (SELECT id, path, name, amount::numeric(14,4), price::text, f::text, at, bin, doc::jsonb, note, pad FROM api
            EXCEPT SELECT id, endpoint_path, name, amount, price::text, f::text, at, bin, doc::jsonb, note, pad FROM t_sys)
           UNION ALL
           (SELECT id, endpoint_path, name, amount, price::text, f::text, at, bin, doc::jsonb, note, pad FROM t_sys
            EXCEPT SELECT id, path, name, amount::numeric(14,4), price::text, f::text, at, bin, doc::jsonb, note, pad FROM api)) d",
    )
    .await;
    assert_eq!(differing, "0");
    assert_diff(&config, &[]).await;
}

#[tokio::test]
async fn postgres_composite_uuid_and_text_keys() {
    let db = database("postgres", "pg_keys").await;
    run(
        "postgres",
        &db,
        "CREATE TABLE c (tenant text, n int, v text, PRIMARY KEY (tenant, n));
         CREATE TABLE c2 (LIKE c INCLUDING ALL);
         INSERT INTO c SELECT 't' || (g % 7), g, 'v' || g FROM generate_series(1, 2000) g;
         INSERT INTO c2 SELECT * FROM c;
         CREATE TABLE u (id uuid PRIMARY KEY, v int);
         CREATE TABLE u2 (LIKE u INCLUDING ALL);
         INSERT INTO u SELECT md5(g::text)::uuid, g FROM generate_series(1, 2000) g;
         INSERT INTO u2 SELECT * FROM u;
         CREATE TABLE s (k text PRIMARY KEY, v int);
         CREATE TABLE s2 (LIKE s INCLUDING ALL);
         INSERT INTO s SELECT 'key-' || g || CASE WHEN g % 2 = 0 THEN 'Ä' ELSE 'a' END, g FROM generate_series(1, 2000) g;
         INSERT INTO s2 SELECT * FROM s;",
    )
    .await;
    let composite = config("postgres", &db, "c", "c2", "tenant, n", false);
    let uuid = config("postgres", &db, "u", "u2", "id", false);
    let text = config("postgres", &db, "s", "s2", "k", false);
    for config in [&composite, &uuid, &text] {
        assert_diff(config, &[]).await;
    }
    run(
        "postgres",
        &db,
        "DELETE FROM c2 WHERE tenant = 't3' AND n = 1004;
         UPDATE c2 SET v = 'changed' WHERE tenant = 't0' AND n = 7;
         INSERT INTO c2 VALUES ('t9', 1, 'extra');
         DELETE FROM u2 WHERE v = 17;
         UPDATE u2 SET v = -v WHERE v = 1999;
         DELETE FROM s2 WHERE v = 1000;
         UPDATE s2 SET v = 0 WHERE v = 1;
         INSERT INTO s2 VALUES ('zzz', 1);",
    )
    .await;
    assert_diff(
        &composite,
        &["t0,7 changed [v]", "t3,1004 missing []", "t9,1 extra []"],
    )
    .await;
    let uuid17 = pg_value(&db, "SELECT md5('17')::uuid::text").await;
    let uuid1999 = pg_value(&db, "SELECT md5('1999')::uuid::text").await;
    let mut expected = vec![
        format!("{uuid17} missing []"),
        format!("{uuid1999} changed [v]"),
    ];
    expected.sort();
    let report = diff(&uuid, Level::Detailed).await;
    let mut got = found(&report);
    got.sort();
    assert_eq!(got, expected, "{report}");
    assert_diff(
        &text,
        &["key-1000Ä missing []", "key-1a changed [v]", "zzz extra []"],
    )
    .await;
}

/// One text value `sql` returns on PostgreSQL.
async fn pg_value(db: &str, sql: &str) -> String {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 user=postgres dbname={db}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn postgres_empty_and_single_row_tables() {
    let db = database("postgres", "pg_small").await;
    run(
        "postgres",
        &db,
        "CREATE TABLE e (id int PRIMARY KEY, v text); CREATE TABLE e2 (LIKE e);",
    )
    .await;
    let config = config("postgres", &db, "e", "e2", "id", false);
    assert_diff(&config, &[]).await;
    run(
        "postgres",
        &db,
        "INSERT INTO e VALUES (1, 'a'); INSERT INTO e2 VALUES (1, 'a');",
    )
    .await;
    assert_diff(&config, &[]).await;
    run("postgres", &db, "UPDATE e2 SET v = 'b'").await;
    assert_diff(&config, &["1 changed [v]"]).await;
    run("postgres", &db, "DELETE FROM e2").await;
    assert_diff(&config, &["1 missing []"]).await;
}

const MY_TYPES: &str = "
CREATE TABLE api (id int PRIMARY KEY, path varchar(64), name varchar(20), amount decimal(10,2),
    f double, at timestamp(3) NULL, dt datetime, bin varbinary(32), doc json, note varchar(20), pad char(4))
    COLLATE utf8mb4_general_ci;
CREATE TABLE t_sys (id bigint PRIMARY KEY, endpoint_path varchar(64), name varchar(40), amount decimal(14,4),
    f double, at timestamp(3) NULL, dt datetime, bin varbinary(32), doc json, note varchar(20), pad char(4))
    COLLATE utf8mb4_general_ci;
SET time_zone = '+00:00';
INSERT INTO api SELECT seq, CONCAT('/p/', seq), CONCAT('Name', seq), seq / 7, seq / 3,
    TIMESTAMP('2026-01-01') + INTERVAL seq MINUTE, TIMESTAMP('2026-01-01') + INTERVAL seq SECOND,
    UNHEX(MD5(seq)), CONCAT('{\"b\": ', seq, ', \"a\": [1, 2]}'), IF(seq % 3 = 0, NULL, CONCAT('n', seq)), 'x'
  FROM seq_1_to_3000;
INSERT INTO t_sys SELECT id, path, name, amount, f, at, dt, bin,
    CONCAT('{\"a\":[1,2],\"b\":', id, '}'), note, pad FROM api;";

#[tokio::test]
async fn mariadb_finds_each_injected_difference_exactly() {
    let db = database("mariadb", "my_kinds").await;
    run("mariadb", &db, MY_TYPES).await;
    let config = config("mariadb", &db, "api", "t_sys", "id", true);
    assert_diff(&config, &[]).await;
    run(
        "mariadb",
        &db,
        "SET time_zone = '+09:00';
         DELETE FROM t_sys WHERE id = 10;
         INSERT INTO t_sys (id, endpoint_path) VALUES (5000, '/extra');
         UPDATE t_sys SET endpoint_path = '/other' WHERE id = 20;
         UPDATE t_sys SET note = '' WHERE id = 31;
         UPDATE t_sys SET amount = amount + 0.0001 WHERE id = 50;
         UPDATE t_sys SET at = at + INTERVAL 1 HOUR WHERE id = 60;
         UPDATE t_sys SET dt = dt + INTERVAL 1 SECOND WHERE id = 61;
         UPDATE t_sys SET name = UPPER(name) WHERE id = 70;
         UPDATE t_sys SET endpoint_path = CONCAT(endpoint_path, ' ') WHERE id = 80;
         UPDATE t_sys SET bin = CONCAT(bin, X'00') WHERE id = 90;
         UPDATE t_sys SET doc = '{\"a\":[2,1],\"b\":100}' WHERE id = 100;
         UPDATE t_sys SET note = NULL, name = NULL WHERE id = 131;",
    )
    .await;
    assert_diff(
        &config,
        &[
            "10 missing []",
            "20 changed [path]",
            "31 changed [note]",
            "50 changed [amount]",
            "60 changed [at]",
            "61 changed [dt]",
            "70 changed [name]",
            "80 changed [path]",
            "90 changed [bin]",
            "100 changed [doc]",
            "131 changed [name,note]",
            "5000 extra []",
        ],
    )
    .await;
    // The dual write's repair queue: queued keys are synced and removed.
    let mut store = switchyard_core::store::mysql::install(&db).join(";\n");
    store.push_str(
        ";\nINSERT INTO switchyard_repair_queue (migration, `key`, source) VALUES
           ('m', '[\"10\"]', 'direct_client'), ('m', '[\"20\"]', 'direct_client'),
           ('m', '[\"5000\"]', 'direct_client'), ('other', '[\"30\"]', 'direct_client')",
    );
    run("mariadb", &db, &store).await;
    let args = RepairArgs {
        migration: "m".into(),
        queue: true,
    };
    let done = repair(&config, &args).await.unwrap();
    assert_eq!((done.keys, done.still_differing.len()), (3, 0));
    assert_eq!(
        my_value(
            &db,
            "SELECT GROUP_CONCAT(migration) FROM switchyard_repair_queue"
        )
        .await,
        "other"
    );
    assert_eq!(
        my_value(&db, "SELECT CONCAT((SELECT COUNT(*) FROM t_sys WHERE id IN (10, 5000)), ',', (SELECT endpoint_path FROM t_sys WHERE id = 20))").await,
        "1,/p/20"
    );
    // A plain repair does the rest; then every row matches byte for byte.
    let args = RepairArgs {
        migration: "m".into(),
        queue: false,
    };
    let done = repair(&config, &args).await.unwrap();
    assert_eq!((done.keys, done.still_differing.len()), (9, 0));
    let unmatched = my_value(
        &db,
        "SELECT CONCAT((SELECT COUNT(*) FROM t_sys), ',', (SELECT COUNT(*) FROM api a JOIN t_sys t ON t.id = a.id
           AND BINARY t.endpoint_path <=> BINARY a.path AND BINARY t.name <=> BINARY a.name
           AND t.amount <=> a.amount AND t.f <=> a.f AND t.at <=> a.at AND t.dt <=> a.dt AND t.bin <=> a.bin
           AND JSON_NORMALIZE(t.doc) <=> JSON_NORMALIZE(a.doc) AND BINARY t.note <=> BINARY a.note AND BINARY t.pad <=> BINARY a.pad))",
    )
    .await;
    assert_eq!(unmatched, "3000,3000");
    assert_diff(&config, &[]).await;
}

/// One value `sql` returns on MariaDB, as text.
async fn my_value(db: &str, sql: &str) -> String {
    use mysql_async::prelude::Queryable;
    let mut conn = mysql_async::Conn::from_url(format!("mysql://root@127.0.0.1:3306/{db}"))
        .await
        .unwrap();
    let value: Option<String> = conn.query_first(sql).await.unwrap();
    conn.disconnect().await.unwrap();
    value.unwrap_or_default()
}

#[tokio::test]
async fn mariadb_composite_and_text_keys_under_a_case_insensitive_collation() {
    let db = database("mariadb", "my_keys").await;
    run(
        "mariadb",
        &db,
        "CREATE TABLE c (tenant varchar(10), n int, v varchar(20), PRIMARY KEY (tenant, n)) COLLATE utf8mb4_general_ci;
         CREATE TABLE c2 LIKE c;
         INSERT INTO c SELECT CONCAT('t', seq % 7), seq, CONCAT('v', seq) FROM seq_1_to_2000;
         INSERT INTO c2 SELECT * FROM c;
         CREATE TABLE s (k varchar(20) PRIMARY KEY, v int) COLLATE utf8mb4_general_ci;
         CREATE TABLE s2 (k varchar(20) PRIMARY KEY, v int) COLLATE utf8mb4_bin;
         INSERT INTO s SELECT CONCAT('key-', seq, IF(seq % 2 = 0, 'B', 'a')), seq FROM seq_1_to_2000;
         INSERT INTO s2 SELECT * FROM s;",
    )
    .await;
    let composite = config("mariadb", &db, "c", "c2", "tenant, n", false);
    let text = config("mariadb", &db, "s", "s2", "k", false);
    assert_diff(&composite, &[]).await;
    assert_diff(&text, &[]).await;
    run(
        "mariadb",
        &db,
        "DELETE FROM c2 WHERE tenant = 't3' AND n = 1004;
         UPDATE c2 SET v = 'V7' WHERE tenant = 't0' AND n = 7;
         INSERT INTO c2 VALUES ('t9', 1, 'extra');
         DELETE FROM s2 WHERE v = 1000;
         UPDATE s2 SET k = 'key-1A' WHERE v = 1;
         INSERT INTO s2 VALUES ('zzz', 1);",
    )
    .await;
    assert_diff(
        &composite,
        &["t0,7 changed [v]", "t3,1004 missing []", "t9,1 extra []"],
    )
    .await;
    // A key changed only in case is another key, compared as stored.
    assert_diff(
        &text,
        &[
            "key-1000B missing []",
            "key-1A extra []",
            "key-1a missing []",
            "zzz extra []",
        ],
    )
    .await;
}

#[tokio::test]
async fn the_cli_exits_0_when_clean_1_when_different_2_on_error() {
    let db = database("postgres", "pg_cli").await;
    run(
        "postgres",
        &db,
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (LIKE a);
         INSERT INTO a SELECT g, 'v' FROM generate_series(1, 100) g; INSERT INTO b SELECT * FROM a;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sy.yaml");
    let yaml = format!(
        "listen: {{ postgres: 127.0.0.1:0 }}\nusers: [{{ name: app, password: app }}]\n\
         backends:\n  db: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\", database: {db} }}\n\
         routes: {{ postgres: db }}\n\
         migrations:\n  - id: m\n    backend: db\n    source: {{ table: a, primary_key: [id] }}\n    target: {{ table: b }}\n"
    );
    std::fs::write(&path, yaml).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .unwrap()
    };
    let clean = cli(&["diff", "m"]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    assert!(String::from_utf8_lossy(&clean.stdout).contains("CLEAN"));
    run("postgres", &db, "UPDATE b SET v = 'w' WHERE id = 42").await;
    let differs = cli(&["diff", "m", "--level", "detailed", "--json"]);
    assert_eq!(differs.status.code(), Some(1), "{differs:?}");
    let report: serde_json::Value = serde_json::from_slice(&differs.stdout).unwrap();
    assert_eq!(report["differences"][0]["key"], serde_json::json!(["42"]));
    assert_eq!(report["counts"]["changed"], 1);
    // A resume file starts the diff after the key it holds, and a
    // finished diff removes it.
    let resume = dir.path().join("resume.json");
    std::fs::write(&resume, r#"["60"]"#).unwrap();
    let resumed = cli(&[
        "diff",
        "m",
        "--json",
        "--resume-file",
        resume.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(report["source_rows"], 40, "{report}");
    assert_eq!(
        report["clean"], true,
        "the difference at 42 is before the resume point"
    );
    assert!(!resume.exists());
    // The rate limit holds the diff to it: 100 rows at 50 rows/s.
    let started = std::time::Instant::now();
    let throttled = cli(&[
        "diff",
        "m",
        "--max-rows-per-sec",
        "50",
        "--pause-when-busy",
        "1000",
    ]);
    assert_eq!(throttled.status.code(), Some(1), "{throttled:?}");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    let unknown = cli(&["diff", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no migration `nope`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_that_finds_differences_rolls_reads_back_when_asked() {
    use std::sync::Arc;
    use switchyard_proxy::route::MigrationRouter;
    let db = database("postgres", "pg_hook").await;
    run(
        "postgres",
        &db,
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (LIKE a);
         INSERT INTO a SELECT g, 'v' FROM generate_series(1, 100) g; INSERT INTO b SELECT * FROM a;",
    )
    .await;
    let yaml = format!(
        "listen: {{ postgres: 127.0.0.1:0 }}\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         users: [{{ name: app, password: app }}]\n\
         backends:\n  db: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\", database: {db} }}\n\
         routes: {{ postgres: db }}\n\
         migrations:\n  - id: m\n    backend: db\n    source: {{ table: a, primary_key: [id] }}\n    target: {{ table: b }}\n    \
         phase: read_ramp\n    reads: {{ strategy: percentage, percent: 50 }}\n"
    );
    let config = Config::from_yaml(&yaml, Path::new("."), &|_| None).unwrap();
    let proxy = switchyard_proxy::server::start(config, None, Arc::new(MigrationRouter::default()))
        .await
        .unwrap();
    let admin = format!("http://{}", proxy.admin.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sy.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let reads = || async {
        let list: serde_json::Value = reqwest::get(format!("{admin}/migrations"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .or_else(|| list["migrations"].as_array())
            .and_then(|a| a.first().cloned())
            .map(|m| m["reads"].clone())
            .unwrap_or_default()
    };
    assert_eq!(reads().await["strategy"], "percentage");
    let diff = |extra: &'static [&'static str]| {
        let path = path.clone();
        let admin = admin.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                    .arg("--config")
                    .arg(&path)
                    .args(["diff", "m", "--proxy-admin", &admin])
                    .args(extra)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    // Clean: nothing happens, even when asked.
    assert_eq!(diff(&["--roll-back-reads"]).await.status.code(), Some(0));
    assert_eq!(reads().await["strategy"], "percentage");
    run("postgres", &db, "DELETE FROM b WHERE id = 7").await;
    // Different, but not asked: nothing happens (the hook is off by default).
    assert_eq!(diff(&[]).await.status.code(), Some(1));
    assert_eq!(reads().await["strategy"], "percentage");
    // Different and asked: every named proxy reads the source.
    let out = diff(&["--roll-back-reads"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reads = reads().await;
    assert_eq!(
        (reads["strategy"].as_str(), reads["path"].as_str()),
        (Some("immediate"), Some("source")),
        "{reads}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("reads rolled back to the source"));
}

#[tokio::test]
async fn across_databases_each_side_is_read_on_its_own_connection() {
    let source = database("postgres", "pg_cross_s").await;
    let target = database("postgres", "pg_cross_t").await;
    run(
        "postgres",
        &source,
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 2000) g;",
    )
    .await;
    run(
        "postgres",
        &target,
        "CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'v' || g FROM generate_series(1, 2000) g;",
    )
    .await;
    let yaml = format!(
        "listen: {{ postgres: 127.0.0.1:0 }}\nusers: [{{ name: app, password: app }}]\n\
         backends:\n  db: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\", database: {source} }}\n\
         routes: {{ postgres: db }}\n\
         migrations:\n  - id: m\n    backend: db\n    source: {{ table: a, primary_key: [id] }}\n    target: {{ database: {target}, table: b }}\n"
    );
    let config = Config::from_yaml(&yaml, Path::new("."), &|_| None).unwrap();
    assert!(!Live::resolve(&config, "m").await.unwrap().same_database());
    assert_diff(&config, &[]).await;
    run(
        "postgres",
        &target,
        "UPDATE b SET v = 'x' WHERE id = 1500; DELETE FROM b WHERE id = 3",
    )
    .await;
    // The differences persist through the settle time, so they count.
    assert_diff(&config, &["3 missing []", "1500 changed [v]"]).await;
    // Repair carries the source's rows across; both databases then hold
    // the same rows, by the test's own reading of each.
    let args = RepairArgs {
        migration: "m".into(),
        queue: false,
    };
    let done = repair(&config, &args).await.unwrap();
    assert_eq!((done.keys, done.still_differing.len()), (2, 0));
    let all = |db: String, table: &'static str| async move {
        pg_value(
            &db,
            &format!("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM {table}"),
        )
        .await
    };
    assert_eq!(
        all(source.clone(), "a").await,
        all(target.clone(), "b").await
    );
    assert_diff(&config, &[]).await;
}
