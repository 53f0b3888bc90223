//! The proof that the dual write loses nothing under load, on MariaDB.
//! Eight clients write the source through the proxy at once, from a
//! seeded random plan (`SWITCHYARD_LOAD_SEED` replays one): generated and
//! explicit keys, one row or several, `ON DUPLICATE KEY UPDATE`, `INSERT
//! IGNORE` and `REPLACE` colliding on the key and on the secondary unique
//! key, updates by key and by range, key changes, deletes by key, by range
//! and by age, transactions that commit, roll back, or roll back to a
//! savepoint, by the text protocol and as prepared statements.
//!
//! A first phase of mirrored writes alone must leave the two tables equal
//! and the repair queue empty. A second adds a client connected straight
//! to the server, whose every write must be queued. The test then drains
//! the queue with SQL of its own and compares the tables row by row
//! (NULL-safe joins both ways); every key a client saw committed, and
//! nobody removed since, must be in both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use mysql_async::prelude::*;
use mysql_async::{Conn, Params, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{self, Proxy};
use crate::mirror::setup_tables;

#[path = "../support/load.rs"]
mod load;
use load::{
    Ending, Hot, Report, Written, CLIENTS, MOVABLE, OPS, POOL_KEYS, POOL_SKUS, REKEY, STALL,
};

/// The source (`name` becomes `title` and widens, `qty` widens to
/// BIGINT; defaults from `NOW(6)`, `RAND()` and `UUID()`; `sku` unique),
/// the target, and two things of the test's own: `gone`, every key that
/// left the source, whoever removed it, and `bump`, a procedure that
/// writes the source.
const TABLES: [&str; 6] = [
    "CREATE TABLE items (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        sku VARCHAR(32) NOT NULL UNIQUE,
        name VARCHAR(64),
        qty INT NOT NULL DEFAULT 0,
        score DOUBLE NOT NULL DEFAULT (RAND()),
        made DATETIME(6) NOT NULL DEFAULT NOW(6),
        token CHAR(36) NOT NULL DEFAULT (UUID())
    ) ENGINE=InnoDB",
    "CREATE TABLE items_v2 (
        id BIGINT PRIMARY KEY,
        sku VARCHAR(32),
        title VARCHAR(128),
        qty BIGINT,
        score DOUBLE,
        made DATETIME(6),
        token CHAR(36)
    ) ENGINE=InnoDB",
    "CREATE TABLE gone (id BIGINT NOT NULL) ENGINE=InnoDB",
    "CREATE TRIGGER note_delete AFTER DELETE ON items FOR EACH ROW INSERT INTO gone VALUES (OLD.id)",
    "CREATE TRIGGER note_rekey AFTER UPDATE ON items FOR EACH ROW
        BEGIN IF OLD.id <> NEW.id THEN INSERT INTO gone VALUES (OLD.id); END IF; END",
    "CREATE PROCEDURE bump(k BIGINT) UPDATE items SET qty = qty + 1 WHERE id = k",
];

/// The source's columns and the target's, in the same order.
const COLUMNS: [(&str, &str); 7] = [
    ("id", "id"),
    ("sku", "sku"),
    ("name", "title"),
    ("qty", "qty"),
    ("score", "score"),
    ("made", "made"),
    ("token", "token"),
];

/// Errors a client can get from concurrency alone: duplicate keys,
/// deadlocks, lock wait timeouts, a row changed since it was read.
const TOLERATED: [u16; 4] = [1062, 1213, 1205, 1020];
/// The deadlock's error: InnoDB rolled the whole transaction back.
const DEADLOCK: u16 = 1213;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_writes_lose_nothing() {
    let seed = load::seed();
    let started = Instant::now();
    let (proxy, db, mut direct) = setup_tables("mirror_load", &TABLES, "repair").await;
    let mut report = Report::default();

    // Mirrored writes alone: equal tables, nothing queued.
    report.merge(workload(&proxy, &db, seed, 1).await);
    let queued = queue(&mut direct).await;
    assert!(
        queued.is_empty(),
        "seed {seed}: mirrored writes alone queued {} key(s): {:?}",
        queued.len(),
        queued.iter().take(20).collect::<Vec<_>>()
    );
    assert_no_differences(&mut direct, seed, "after mirrored writes alone").await;
    let first = started.elapsed();

    // A client that bypasses the proxy, while the clients go on.
    let bypass = tokio::spawn(bypass(common::direct(Some(&db)).await));
    report.merge(workload(&proxy, &db, seed, 2).await);
    let bypassed = bypass.await.unwrap();
    let queued = queue(&mut direct).await;
    for k in &bypassed {
        let sources = queued.get(k).cloned().unwrap_or_default();
        assert!(
            sources.contains("direct_client"),
            "seed {seed}: key {k} written directly is queued as {sources:?}"
        );
    }
    // And nothing the mirror wrote is queued as a bypass.
    for (k, sources) in &queued {
        assert!(
            bypassed.contains(k) || sources.iter().all(|s| s == "mirror_failed"),
            "seed {seed}: key {k}, which only the proxy's clients wrote, is queued as {sources:?}"
        );
    }

    drain(&mut direct).await;
    assert_no_differences(&mut direct, seed, "after the drain").await;
    assert_kept(&mut direct, seed, &report).await;
    println!(
        "seed {seed}: {} operations, {} committed keys, {} rolled back, tolerated {:?}, bypass {} keys; {:.1?} + {:.1?}",
        report.ops,
        report.committed.len(),
        report.rolled_back.len(),
        report.tolerated,
        bypassed.len(),
        first,
        started.elapsed() - first,
    );
    common::drop_db(&db).await;
}

/// Runs one phase: every client's operations, at once.
async fn workload(proxy: &Proxy, db: &str, seed: u64, phase: u64) -> Report {
    let hot = Hot::default();
    let mut tasks = Vec::new();
    for n in 0..CLIENTS {
        let mut worker = Worker {
            seed,
            n,
            phase,
            conn: proxy.connect(db).await,
            rng: StdRng::seed_from_u64(seed ^ (phase << 32) ^ n as u64),
            made: 0,
            high: 1,
            hot: hot.clone(),
            report: Report::default(),
        };
        tasks.push(tokio::spawn(async move {
            for _ in 0..OPS {
                worker.operation().await;
            }
            worker.report
        }));
    }
    let mut report = Report::default();
    for task in tasks {
        report.merge(task.await.unwrap());
    }
    report
}

/// A write that failed for a reason concurrency explains (its number).
struct Tolerated(u16);

/// One client through the proxy.
struct Worker {
    /// The run's seed, for every failure message.
    seed: u64,
    /// The client's number.
    n: usize,
    /// The phase, so that generated skus stay unique across phases.
    phase: u64,
    conn: Conn,
    rng: StdRng,
    /// Skus generated so far.
    made: u64,
    /// The highest generated key seen, to aim updates and deletes.
    high: i64,
    /// Keys the clients wrote last, shared, so that they meet on rows.
    hot: Hot,
    report: Report,
}

impl Worker {
    /// One autocommit write or one transaction.
    async fn operation(&mut self) {
        self.report.ops += 1;
        if self.rng.random_bool(0.3) {
            return self.transaction().await;
        }
        match self.write().await {
            Ok(written) => self.committed(written),
            Err(Tolerated(code)) => self.report.tolerate(code.to_string()),
        }
    }

    /// A transaction of a few writes, ended at random.
    async fn transaction(&mut self) {
        let ending = Ending::pick(&mut self.rng);
        let begin = ["BEGIN", "START TRANSACTION"][self.rng.random_range(0..2)];
        self.control(begin).await;
        let mut written = Written::default();
        let mut undone = Written::default();
        for _ in 0..self.rng.random_range(1..=4) {
            match self.write().await {
                Ok(w) => written.extend(w),
                Err(Tolerated(code)) => return self.abandon(code, written, undone).await,
            }
        }
        if ending == Ending::Savepoint {
            self.control("SAVEPOINT s").await;
            match self.write().await {
                Ok(w) => undone.extend(w),
                // A deadlock took the savepoint with the transaction.
                Err(Tolerated(DEADLOCK)) => return self.abandon(DEADLOCK, written, undone).await,
                // Any other failure is undone by the rollback to it.
                Err(Tolerated(code)) => self.report.tolerate(code.to_string()),
            }
            self.control("ROLLBACK TO SAVEPOINT s").await;
            match self.write().await {
                Ok(w) => written.extend(w),
                Err(Tolerated(code)) => return self.abandon(code, written, undone).await,
            }
        }
        if ending == Ending::Rollback {
            self.control("ROLLBACK").await;
            self.report.rolled_back.extend(written.fresh);
            return;
        }
        self.control("COMMIT").await;
        self.committed(written);
        self.report.rolled_back.extend(undone.fresh);
    }

    fn committed(&mut self, written: Written) {
        self.hot.add(&written.present);
        self.report.committed.extend(written.present);
    }

    /// Rolls back a transaction a tolerated error broke (a deadlock has
    /// rolled it back already; the client says so all the same).
    async fn abandon(&mut self, code: u16, written: Written, undone: Written) {
        self.report.tolerate(code.to_string());
        self.control("ROLLBACK").await;
        self.report.rolled_back.extend(written.fresh);
        self.report.rolled_back.extend(undone.fresh);
    }

    /// One write of the source, chosen at random.
    async fn write(&mut self) -> Result<Written, Tolerated> {
        let name = Value::from(format!("n{}", self.rng.random_range(0..1000)));
        Ok(match self.rng.random_range(0..14) {
            0 | 1 => {
                let rows = self.rng.random_range(1..=4);
                let mut args = Vec::new();
                for _ in 0..rows {
                    args.push(self.fresh_sku());
                    args.push(name.clone());
                }
                let values = vec!["(?, ?)"; rows].join(", ");
                let sql = format!("INSERT INTO items (sku, name) VALUES {values}");
                // A simple insert's keys are consecutive
                // (innodb_autoinc_lock_mode 1), from the first one.
                let (affected, first) = self.run(&sql, &args).await?;
                Written::fresh((first..first + affected as i64).collect())
            }
            2 => {
                let key = self.pool_key();
                let args = [Value::from(key), self.fresh_sku(), name];
                self.run("INSERT INTO items (id, sku, name) VALUES (?, ?, ?)", &args)
                    .await?;
                Written::present(vec![key])
            }
            3 => {
                let args = [self.pool_sku(), name];
                let sql = "INSERT IGNORE INTO items (sku, name) VALUES (?, ?)";
                let (affected, id) = self.run(sql, &args).await?;
                Written::fresh(if affected == 1 { vec![id] } else { vec![] })
            }
            4 => {
                let args = [self.pool_sku(), name];
                let sql = "INSERT INTO items (sku, name, qty) VALUES (?, ?, 1) \
                           ON DUPLICATE KEY UPDATE qty = qty + 1, name = VALUES(name), made = NOW(6)";
                let (affected, id) = self.run(sql, &args).await?;
                Written::fresh(if affected == 1 { vec![id] } else { vec![] })
            }
            5 => {
                // Deletes the rows holding the key or the sku.
                let key = self.pool_key();
                let args = [Value::from(key), self.pool_sku(), name];
                self.run("REPLACE INTO items (id, sku, name) VALUES (?, ?, ?)", &args)
                    .await?;
                Written::present(vec![key])
            }
            6 => {
                // On the sku's row, the update moves it to the key.
                let key = self.pool_key();
                let args = [Value::from(key), self.pool_sku(), name];
                let sql = "INSERT INTO items (id, sku, name) VALUES (?, ?, ?) \
                           ON DUPLICATE KEY UPDATE id = VALUES(id), name = VALUES(name), score = RAND()";
                self.run(sql, &args).await?;
                Written::present(vec![key])
            }
            7 | 8 => {
                let key = self.any_key();
                let args = [name, Value::from(key)];
                let sql = "UPDATE items SET name = ?, qty = qty + 1, score = RAND() WHERE id = ?";
                let (affected, _) = self.run(sql, &args).await?;
                Written::present(if affected == 1 { vec![key] } else { vec![] })
            }
            9 => {
                let key = self.any_key();
                let args = [Value::from(key), Value::from(key + 5)];
                let sql = if self.rng.random_bool(0.5) {
                    "UPDATE items SET qty = qty + 1, made = NOW(6) WHERE id BETWEEN ? AND ?"
                } else {
                    "UPDATE items SET qty = qty + 1 WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT 3"
                };
                self.run(sql, &args).await?;
                Written::default()
            }
            10 => {
                let key = self.any_key();
                let sql =
                    format!("UPDATE items SET id = id - {REKEY} WHERE id = ? AND id > {MOVABLE}");
                let (affected, _) = self.run(&sql, &[Value::from(key)]).await?;
                Written::present(if affected == 1 {
                    vec![key - REKEY]
                } else {
                    vec![]
                })
            }
            11 => {
                let key = self.any_key();
                self.run("DELETE FROM items WHERE id = ?", &[Value::from(key)])
                    .await?;
                Written::default()
            }
            12 => {
                let key = self.any_key();
                let args = [Value::from(key), Value::from(key + 2)];
                self.run("DELETE FROM items WHERE id BETWEEN ? AND ?", &args)
                    .await?;
                Written::default()
            }
            _ => {
                let sql = "DELETE FROM items WHERE made < NOW(6) - INTERVAL 200000 MICROSECOND AND score < 0.01";
                self.run(sql, &[]).await?;
                Written::default()
            }
        })
    }

    /// Runs a write by the text protocol (values written into it) or as a
    /// prepared statement (which the driver keeps and reuses), and returns
    /// its affected rows and last insert id.
    async fn run(&mut self, sql: &str, args: &[Value]) -> Result<(u64, i64), Tolerated> {
        let context = self.context(sql);
        let result = if self.rng.random_bool(0.5) {
            stall(&context, self.conn.query_drop(inline(sql, args))).await
        } else {
            let params = Params::Positional(args.to_vec());
            stall(&context, self.conn.exec_drop(sql, params)).await
        };
        match result {
            Ok(()) => {
                let id = self.conn.last_insert_id().unwrap_or(0) as i64;
                self.high = self.high.max(id);
                Ok((self.conn.affected_rows(), id))
            }
            Err(mysql_async::Error::Server(e)) if TOLERATED.contains(&e.code) => {
                Err(Tolerated(e.code))
            }
            Err(e) => panic!("{context} {args:?}: {e:?}"),
        }
    }

    /// A transaction's own statement, which must succeed.
    async fn control(&mut self, sql: &str) {
        let context = self.context(sql);
        stall(&context, self.conn.query_drop(sql))
            .await
            .unwrap_or_else(|e| panic!("{context}: {e:?}"));
    }

    fn context(&self, sql: &str) -> String {
        format!(
            "seed {} phase {} client {} op {}: {sql}",
            self.seed, self.phase, self.n, self.report.ops
        )
    }

    fn fresh_sku(&mut self) -> Value {
        self.made += 1;
        Value::from(format!("c{}.{}-{}", self.phase, self.n, self.made))
    }

    fn pool_sku(&mut self) -> Value {
        Value::from(format!("p{}", self.rng.random_range(0..POOL_SKUS)))
    }

    fn pool_key(&mut self) -> i64 {
        -self.rng.random_range(1..=POOL_KEYS)
    }

    /// A key that may exist: one just written, generated, explicit, or
    /// moved.
    fn any_key(&mut self) -> i64 {
        match self.rng.random_range(0..10) {
            0..4 => self.hot.pick(&mut self.rng).unwrap_or(self.high),
            4 => self.rng.random_range(1..=self.high + 2),
            5..8 => self.pool_key(),
            _ => self.rng.random_range(1..=self.high) - REKEY,
        }
    }
}

/// Awaits a client call, failing the test if it hangs.
async fn stall<T>(context: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STALL, call)
        .await
        .unwrap_or_else(|_| panic!("{context}: no answer within {STALL:?}"))
}

/// `sql` with each `?` replaced by its value, for the text protocol.
fn inline(sql: &str, args: &[Value]) -> String {
    let mut parts = sql.split('?');
    let mut text = parts.next().unwrap_or_default().to_string();
    for (part, arg) in parts.zip(args) {
        text.push_str(&arg.as_sql(false));
        text.push_str(part);
    }
    text
}

/// Writes the source straight, alongside the clients: inserts, updates,
/// key changes and deletes. Returns every key it wrote (old and new).
async fn bypass(mut direct: Conn) -> BTreeSet<i64> {
    let mut keys = BTreeSet::new();
    for round in 0..8 {
        let sql = format!(
            "INSERT INTO items (sku, name) VALUES ('b{round}a', 'bypass'), ('b{round}b', 'bypass')"
        );
        retry(&mut direct, &sql).await;
        let first = direct.last_insert_id().unwrap() as i64;
        keys.extend([first, first + 1]);
        let picked: Vec<i64> = direct
            .query("SELECT id FROM items ORDER BY RAND() LIMIT 3")
            .await
            .unwrap();
        let statements = [
            "UPDATE items SET name = 'bypassed', qty = qty + 1 WHERE id = {}".to_string(),
            format!("UPDATE items SET id = id - {REKEY} WHERE id = {{}} AND id > {MOVABLE}"),
            "DELETE FROM items WHERE id = {}".to_string(),
        ];
        for (k, sql) in picked.into_iter().zip(statements) {
            if retry(&mut direct, &sql.replace("{}", &k.to_string())).await == 1 {
                keys.insert(k);
                if sql.contains("SET id") {
                    keys.insert(k - REKEY);
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    keys
}

/// Runs a direct write again until no deadlock stops it; its affected
/// rows.
async fn retry(direct: &mut Conn, sql: &str) -> u64 {
    loop {
        match direct.query_drop(sql).await {
            Ok(()) => return direct.affected_rows(),
            Err(mysql_async::Error::Server(e)) if TOLERATED.contains(&e.code) => continue,
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }
}

/// The repair queue: each queued key with the sources it was queued by.
async fn queue(direct: &mut Conn) -> BTreeMap<i64, BTreeSet<String>> {
    let rows: Vec<(i64, String)> = direct
        .query(
            "SELECT CAST(JSON_VALUE(`key`, '$[0]') AS SIGNED), source
             FROM switchyard_repair_queue WHERE migration = 'items_v2'",
        )
        .await
        .unwrap();
    let mut queued: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (k, source) in rows {
        queued.entry(k).or_default().insert(source);
    }
    queued
}

/// Repairs every queued key the plain way: its target row deleted, then
/// copied again from the source if the source still has it.
async fn drain(direct: &mut Conn) {
    let target: Vec<&str> = COLUMNS.iter().map(|(_, t)| *t).collect();
    let source: Vec<String> = COLUMNS.iter().map(|(s, _)| format!("s.{s}")).collect();
    for sql in [
        "START TRANSACTION".to_string(),
        "CREATE TEMPORARY TABLE drained (id BIGINT PRIMARY KEY)".to_string(),
        "INSERT IGNORE INTO drained SELECT CAST(JSON_VALUE(`key`, '$[0]') AS SIGNED)
         FROM switchyard_repair_queue WHERE migration = 'items_v2'"
            .to_string(),
        "DELETE t FROM items_v2 t JOIN drained d ON t.id = d.id".to_string(),
        format!(
            "INSERT INTO items_v2 ({}) SELECT {} FROM items s JOIN drained d ON s.id = d.id",
            target.join(", "),
            source.join(", ")
        ),
        "DELETE FROM switchyard_repair_queue WHERE migration = 'items_v2'".to_string(),
        "COMMIT".to_string(),
        "DROP TEMPORARY TABLE drained".to_string(),
    ] {
        direct
            .query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

/// The rows that differ between the two tables, both ways, as text:
/// NULL-safe joins on every mapped column.
async fn differences(direct: &mut Conn) -> Vec<String> {
    let on = COLUMNS
        .iter()
        .map(|(s, t)| format!("s.{s} <=> t.{t}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let row = |alias: &str, side: usize| {
        COLUMNS
            .iter()
            .map(|c| format!("IFNULL({alias}.{}, 'NULL')", [c.0, c.1][side]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    direct
        .query(format!(
            "SELECT CONCAT('only in items: ', CONCAT_WS(', ', {})) FROM items s
                 LEFT JOIN items_v2 t ON {on} WHERE t.id IS NULL
             UNION ALL
             SELECT CONCAT('only in items_v2: ', CONCAT_WS(', ', {})) FROM items_v2 t
                 LEFT JOIN items s ON {on} WHERE s.id IS NULL
             ORDER BY 1",
            row("s", 0),
            row("t", 1)
        ))
        .await
        .unwrap()
}

async fn assert_no_differences(direct: &mut Conn, seed: u64, when: &str) {
    let differences = differences(direct).await;
    assert!(
        differences.is_empty(),
        "seed {seed}: {} difference(s) {when}:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Every key a client saw committed that nobody removed since is in both
/// tables; no generated key of rolled-back work is in either.
async fn assert_kept(direct: &mut Conn, seed: u64, report: &Report) {
    for (table, keys) in [("seen", &report.committed), ("undone", &report.rolled_back)] {
        direct
            .query_drop(format!(
                "CREATE TEMPORARY TABLE {table} (id BIGINT PRIMARY KEY)"
            ))
            .await
            .unwrap();
        let keys: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
        for chunk in keys.chunks(1000) {
            direct
                .query_drop(format!("INSERT INTO {table} VALUES {}", chunk.join(", ")))
                .await
                .unwrap();
        }
    }
    let missing: Vec<(i64, bool)> = direct
        .query(
            "SELECT k.id, EXISTS (SELECT 1 FROM items WHERE id = k.id) FROM seen k
             WHERE k.id NOT IN (SELECT id FROM gone)
               AND NOT (EXISTS (SELECT 1 FROM items WHERE id = k.id)
                        AND EXISTS (SELECT 1 FROM items_v2 WHERE id = k.id))",
        )
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "seed {seed}: committed keys nobody removed are missing (key, in items): {missing:?}"
    );
    let kept: Vec<i64> = direct
        .query(
            "SELECT k.id FROM undone k
             WHERE EXISTS (SELECT 1 FROM items WHERE id = k.id)
                OR EXISTS (SELECT 1 FROM items_v2 WHERE id = k.id)",
        )
        .await
        .unwrap();
    assert!(
        kept.is_empty(),
        "seed {seed}: keys of rolled-back inserts are present: {kept:?}"
    );
    direct
        .query_drop("DROP TEMPORARY TABLE seen, undone")
        .await
        .unwrap();
}

// What the load can only meet by chance, made deterministic.

/// Waits until a statement of `db` has run for a while: under these
/// tests, one waiting for a row lock. (INNODB_TRX's `trx_state` lags
/// behind a wait that began inside a multi-table statement.)
async fn until_a_lock_wait(direct: &mut Conn, db: &str) {
    let deadline = Instant::now() + STALL;
    loop {
        let waiting: Option<i64> = direct
            .exec_first(
                "SELECT count(*) FROM information_schema.PROCESSLIST
                 WHERE DB = ? AND COMMAND = 'Query' AND TIME_MS > 200 AND ID <> CONNECTION_ID()",
                (db,),
            )
            .await
            .unwrap();
        if waiting > Some(0) {
            return;
        }
        assert!(Instant::now() < deadline, "no statement of {db} waits");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The error number of a result, `None` for success.
fn code_of(result: &mysql_async::Result<()>) -> Option<u16> {
    result.as_ref().err().map(|e| common::server_error(e).0)
}

#[tokio::test]
async fn a_mirrored_write_locks_only_the_rows_it_wrote() {
    let (proxy, db, _direct) = setup_tables("mirror_load_locks", &TABLES, "repair").await;
    let mut client = proxy.connect(&db).await;
    client
        .query_drop("INSERT INTO items (id, sku) VALUES (1, 'a'), (2, 'b'), (4, 'd')")
        .await
        .unwrap();
    client.query_drop("BEGIN").await.unwrap();
    client
        .query_drop("UPDATE items SET qty = qty + 1 WHERE id = 1")
        .await
        .unwrap();
    // Other rows of the source, and the gaps between them, stay free for
    // other writers while the client's transaction is open.
    let mut other = common::direct(Some(&db)).await;
    other
        .query_drop("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let mut blocked = Vec::new();
    for sql in [
        "UPDATE items SET qty = qty + 1 WHERE id = 2",
        "INSERT INTO items (id, sku) VALUES (3, 'c')",
        "DELETE FROM items WHERE id = 4",
    ] {
        if let Err(e) = other.query_drop(sql).await {
            blocked.push(format!("{sql}: {}", common::server_error(&e).2));
        }
    }
    client.query_drop("COMMIT").await.unwrap();
    assert_eq!(blocked, Vec::<String>::new());
    common::drop_db(&db).await;
}

#[tokio::test]
async fn a_transaction_whose_mirror_loses_a_deadlock_is_answered_with_it() {
    let (proxy, db, mut direct) = setup_tables("mirror_load_deadlock", &TABLES, "repair").await;
    let mut client = proxy.connect(&db).await;
    client
        .query_drop("INSERT INTO items (id, sku) VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    client.query_drop("BEGIN").await.unwrap();
    client
        .query_drop("UPDATE items SET qty = qty + 1 WHERE id = 1")
        .await
        .unwrap();
    // Another writer holds the target's row 2, and has written enough
    // that InnoDB picks the client's transaction as the deadlock's victim.
    let mut other = common::direct(Some(&db)).await;
    other.query_drop("BEGIN").await.unwrap();
    other
        .query_drop("INSERT INTO gone SELECT seq FROM seq_1_to_1000")
        .await
        .unwrap();
    other
        .query_drop("UPDATE items_v2 SET qty = 5 WHERE id = 2")
        .await
        .unwrap();
    // The client's write of row 2 runs; its mirror waits for the target's
    // row 2; the other writer then asks for the source's row 1, which the
    // client holds: InnoDB rolls the client's whole transaction back.
    let write = tokio::spawn(async move {
        let result = client
            .query_drop("UPDATE items SET qty = qty + 1 WHERE id = 2")
            .await;
        (client, result)
    });
    until_a_lock_wait(&mut direct, &db).await;
    let closing = stall(
        "the other writer",
        other.query_drop("UPDATE items SET name = 'other' WHERE id = 1"),
    )
    .await;
    assert_eq!(code_of(&closing), None, "{closing:?}");
    other.query_drop("COMMIT").await.unwrap();
    let (mut client, written) = stall("the client's write", write).await.unwrap();
    assert_eq!(code_of(&written), Some(DEADLOCK), "{written:?}");
    // The session goes on.
    stall("the rollback", client.query_drop("ROLLBACK"))
        .await
        .unwrap();
    let one: Option<i64> = stall("a query", client.query_first("SELECT 1"))
        .await
        .unwrap();
    assert_eq!(one, Some(1));
    common::drop_db(&db).await;
}

#[tokio::test]
async fn the_queue_says_who_wrote_what_the_mirror_did_not_see() {
    let (proxy, db, mut direct) = setup_tables("mirror_load_sources", &TABLES, "repair").await;
    let mut client = proxy.connect(&db).await;
    client
        .query_drop("INSERT INTO items (id, sku) VALUES (1, 'a'), (2, 'b')")
        .await
        .unwrap();
    assert!(queue(&mut direct).await.is_empty());
    direct
        .query_drop("UPDATE items SET name = 'direct' WHERE id = 1")
        .await
        .unwrap();
    client.query_drop("CALL bump(2)").await.unwrap();
    let queued: Vec<(i64, BTreeSet<String>)> = queue(&mut direct).await.into_iter().collect();
    let want = |s: &str| BTreeSet::from([s.to_string()]);
    assert_eq!(
        queued,
        vec![(1, want("direct_client")), (2, want("proxy_unparsed"))]
    );
    // A reset (as pools send between borrowers) or a change of user
    // clears the session's variables; the proxy marks the session again,
    // so the next unmirrored write through it is still the proxy's.
    direct
        .query_drop("DELETE FROM switchyard_repair_queue")
        .await
        .unwrap();
    client.reset().await.unwrap();
    client.query_drop("CALL bump(1)").await.unwrap();
    client
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some("app".into()))
                .with_pass(Some("app".into()))
                .with_db_name(Some(db.clone())),
        )
        .await
        .unwrap();
    client.query_drop("CALL bump(2)").await.unwrap();
    let queued: Vec<(i64, BTreeSet<String>)> = queue(&mut direct).await.into_iter().collect();
    assert_eq!(
        queued,
        vec![(1, want("proxy_unparsed")), (2, want("proxy_unparsed"))]
    );
    common::drop_db(&db).await;
}
