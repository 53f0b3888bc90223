//! Real client programs through the proxy: the `mariadb` CLI (scripts and
//! Ctrl-C), PyMySQL and sysbench. A missing program fails its test with
//! the command that installs it (`scripts/ensure-databases.sh`,
//! `scripts/ensure-tools.sh sysbench python`); PyMySQL comes from the
//! repository's `.venv`, or the interpreter named by `SWITCHYARD_PYTHON`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::common::{self, Proxy};

/// Asserts that `program` runs at all.
async fn installed(program: &str, arg: &str) -> bool {
    let status = Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    assert!(
        status.is_ok_and(|s| s.success()),
        "`{program}` is not installed; run scripts/ensure-databases.sh and scripts/ensure-tools.sh sysbench"
    );
    true
}

fn cli(proxy: &Proxy, db: &str) -> Command {
    let mut cmd = Command::new("mariadb");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-P",
        &proxy.addr.port().to_string(),
        "-u",
        "app",
        "-papp",
        "--batch",
        db,
    ]);
    cmd
}

async fn run(mut cmd: Command) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the client finishes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_runs_scripts() {
    if !installed("mariadb", "--version").await {
        return;
    }
    let proxy = common::start_default().await;
    let db = common::create_db("cli").await;
    let script = "CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(20));\n\
                  INSERT INTO c VALUES (1, 'one'), (2, 'two');\n\
                  BEGIN; UPDATE c SET v = 'uno' WHERE id = 1; COMMIT;\n\
                  SELECT id, v FROM c ORDER BY id;\n\
                  SELECT 'a' AS x UNION ALL SELECT 'b';\n\
                  USE mysql; SELECT DATABASE();\n";
    let mut cmd = cli(&proxy, &db);
    cmd.arg("-e").arg(script);
    let (ok, out) = run(cmd).await;
    assert!(ok, "{out}");
    assert_eq!(out, "id\tv\n1\tuno\n2\ttwo\nx\na\nb\nDATABASE()\nmysql\n");
    let mut cmd = cli(&proxy, &db);
    cmd.arg("-e").arg("SELECT * FROM missing");
    let (ok, out) = run(cmd).await;
    assert!(!ok && out.contains("ERROR 1146"), "{out}");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_ctrl_c_kills_the_running_query() {
    if !installed("mariadb", "--version").await {
        return;
    }
    let proxy = common::start_default().await;
    let mut cmd = cli(&proxy, "mysql");
    cmd.arg("-e")
        .arg("SELECT SLEEP(30)")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id().expect("running");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Ctrl-C: the CLI opens a new connection and sends KILL QUERY <id>.
    let killed = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("the CLI returns at once")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Query execution was interrupted") || text.contains("query killed"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymysql_works_through_the_proxy() {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| venv.to_string());
    let probe = Command::new(&python)
        .args(["-c", "import pymysql"])
        .stderr(Stdio::null())
        .status()
        .await;
    assert!(
        probe.is_ok_and(|s| s.success()),
        "`{python}` cannot import pymysql; run scripts/ensure-tools.sh python (or set SWITCHYARD_PYTHON)"
    );
    let proxy = common::start_default().await;
    let db = common::create_db("pymysql").await;
    let script = r#"
import sys, pymysql
from pymysql.constants import CLIENT
port, db = int(sys.argv[1]), sys.argv[2]
for user, pw in [("app", "app"), ("app_native", "native")]:
    c = pymysql.connect(host="127.0.0.1", port=port, user=user, password=pw, database=db, client_flag=CLIENT.MULTI_STATEMENTS)
    cur = c.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS py (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(50), d DECIMAL(10,2), b BLOB, j JSON)")
    cur.execute("INSERT INTO py (v, d, b, j) VALUES (%s, %s, %s, %s)", ("héllo", "12.34", b"\x00\xff" * 1000, '{"k": 1}'))
    assert cur.rowcount == 1 and cur.lastrowid > 0
    c.commit()
    cur.execute("SELECT v, d, LENGTH(b), j FROM py ORDER BY id DESC LIMIT 1")
    assert cur.fetchone() == ("héllo", __import__("decimal").Decimal("12.34"), 2000, '{"k": 1}')
    cur.execute("SELECT 1; SELECT 2")
    assert cur.fetchall() == ((1,),) and cur.nextset() and cur.fetchall() == ((2,),)
    c.ping()
    c.select_db("mysql")
    cur.execute("SELECT DATABASE()")
    assert cur.fetchone() == ("mysql",)
    c.close()
try:
    pymysql.connect(host="127.0.0.1", port=port, user="app", password="bad")
    raise SystemExit("a wrong password was accepted")
except pymysql.err.OperationalError as e:
    assert e.args[0] == 1045, e.args
print("ok")
"#;
    let mut cmd = Command::new(&python);
    cmd.args(["-c", script, &proxy.addr.port().to_string(), &db]);
    let (ok, out) = run(cmd).await;
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_runs_without_errors() {
    if !installed("sysbench", "--version").await {
        return;
    }
    let proxy = common::start_default().await;
    let db = common::create_db("sysbench").await;
    let common_args = |port: u16, user: &str, password: &str| {
        vec![
            "--db-driver=mysql".to_string(),
            "--mysql-host=127.0.0.1".into(),
            format!("--mysql-port={port}"),
            format!("--mysql-user={user}"),
            format!("--mysql-password={password}"),
            format!("--mysql-db={db}"),
            "--tables=2".into(),
            "--table-size=2000".into(),
        ]
    };
    let mut prepare = Command::new("sysbench");
    prepare
        .arg("oltp_read_write")
        .args(common_args(3306, "root", ""))
        .arg("prepare");
    let (ok, out) = run(prepare).await;
    assert!(ok, "{out}");
    for test in ["oltp_read_write", "oltp_point_select"] {
        for mode in ["auto", "disable"] {
            let mut cmd = Command::new("sysbench");
            cmd.arg(test)
                .args(common_args(proxy.addr.port(), "app", "app"))
                .args([
                    "--threads=4",
                    "--time=3",
                    &format!("--db-ps-mode={mode}"),
                    "run",
                ]);
            let (ok, out) = run(cmd).await;
            assert!(ok && !out.contains("FATAL"), "{test} {mode}: {out}");
            let transactions = out
                .lines()
                .find(|l| l.trim_start().starts_with("transactions:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            assert!(transactions > 0, "{test} {mode}: {out}");
        }
    }
    common::drop_db(&db).await;
}
