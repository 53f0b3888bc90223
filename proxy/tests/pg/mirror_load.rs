//! The proof that the dual write loses nothing under load. Eight clients
//! write the source through the proxy at once, from a seeded random plan
//! (`SWITCHYARD_LOAD_SEED` replays one): generated and explicit keys, one
//! row or several, upserts colliding on the key and on the secondary
//! unique key, updates by key and by range, key changes, deletes by key,
//! by range and by age, transactions that commit, roll back, or roll back
//! to a savepoint, by the simple and the extended protocol (unnamed and
//! named statements).
//!
//! A first phase of mirrored writes alone must leave the two tables equal
//! and the repair queue empty. A second adds writes the mirror cannot see
//! (a direct client, a foreign-key cascade, a function called through the
//! proxy), each of which must be queued. The test then drains the queue
//! with SQL of its own and compares the tables row by row; every key a
//! client saw committed, and nobody removed since, must be in both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use crate::common::{self, Proxy};
use crate::mirror::setup_tables;

#[path = "../support/load.rs"]
mod load;
use load::{
    Ending, Hot, Report, Written, CLIENTS, MOVABLE, OPS, POOL_KEYS, POOL_SKUS, REKEY, STALL,
};

/// The source (`name` becomes `title`, `qty` widens to bigint; defaults
/// from `now()`, `random()` and `gen_random_uuid()`; `sku` unique; a
/// parent whose deletion cascades), the target, and two things of the
/// test's own: `gone`, every key that left the source, whoever removed
/// it, and `bump`, a function that writes the source.
const TABLES: &str = "
    CREATE EXTENSION IF NOT EXISTS pgcrypto;
    CREATE TABLE parents (id bigint PRIMARY KEY);
    CREATE TABLE items (
        id bigserial PRIMARY KEY,
        sku text NOT NULL UNIQUE,
        name text,
        qty integer NOT NULL DEFAULT 0,
        score double precision NOT NULL DEFAULT random(),
        made timestamptz NOT NULL DEFAULT now(),
        token uuid NOT NULL DEFAULT gen_random_uuid(),
        parent bigint REFERENCES parents ON DELETE CASCADE
    );
    CREATE TABLE items_v2 (
        id bigint PRIMARY KEY,
        sku text,
        title text,
        qty bigint,
        score double precision,
        made timestamptz,
        token uuid,
        parent bigint
    );
    CREATE TABLE gone (id bigint NOT NULL);
    CREATE FUNCTION note_gone() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO gone VALUES (OLD.id); RETURN NULL; END $$;
    CREATE TRIGGER note_delete AFTER DELETE ON items
        FOR EACH ROW EXECUTE FUNCTION note_gone();
    CREATE TRIGGER note_rekey AFTER UPDATE ON items
        FOR EACH ROW WHEN (OLD.id <> NEW.id) EXECUTE FUNCTION note_gone();
    CREATE FUNCTION bump(k bigint) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN UPDATE items SET qty = qty + 1 WHERE id = k; RETURN FOUND; END $$;
";

const SOURCE_COLUMNS: &str = "id, sku, name, qty::bigint, score, made, token, parent";
const TARGET_COLUMNS: &str = "id, sku, title, qty, score, made, token, parent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_writes_lose_nothing() {
    let seed = load::seed();
    let started = Instant::now();
    let (proxy, db, direct) = setup_tables("mirror_load", TABLES, "repair").await;
    let mut report = Report::default();

    // Mirrored writes alone: what the mirror could not settle in the
    // statement (the old keys of a key change, a delete that found no
    // target row) is queued as the proxy's, never as a bypass; once the
    // queue is drained, the tables are equal.
    report.merge(workload(&proxy, &db, seed, 1).await);
    let queued = queue(&direct).await;
    for (k, sources) in &queued {
        assert!(
            sources
                .iter()
                .all(|s| s == "mirror_failed" || s == "proxy_unparsed"),
            "seed {seed}: key {k}, which only the proxy's clients wrote, is queued as {sources:?}"
        );
    }
    drain(&direct).await;
    assert_no_differences(&direct, seed, "after mirrored writes alone").await;
    let first = started.elapsed();

    // Writes the mirror does not see, while the clients go on.
    let bypass = tokio::spawn(bypass(proxy.connect(&db).await, common::direct(&db).await));
    report.merge(workload(&proxy, &db, seed, 2).await);
    let bypassed = bypass.await.unwrap();
    let queued = queue(&direct).await;
    let sources = |k: &i64| queued.get(k).cloned().unwrap_or_default();
    for k in &bypassed.direct {
        assert!(
            sources(k).contains("direct_client"),
            "seed {seed}: key {k} written directly is queued as {:?}",
            sources(k)
        );
    }
    for k in &bypassed.cascade {
        assert!(
            sources(k).contains("cascade_or_function"),
            "seed {seed}: key {k} deleted by a cascade is queued as {:?}",
            sources(k)
        );
    }
    for k in &bypassed.function {
        assert!(
            !sources(k).is_empty(),
            "seed {seed}: key {k} updated by a function is not queued"
        );
    }
    // And nothing the mirror wrote is queued as a bypass.
    for (k, sources) in &queued {
        let bypassed_k = bypassed.direct.contains(k)
            || bypassed.cascade.contains(k)
            || bypassed.function.contains(k);
        assert!(
            bypassed_k
                || sources
                    .iter()
                    .all(|s| s == "mirror_failed" || s == "proxy_unparsed"),
            "seed {seed}: key {k}, which only the proxy's clients wrote, is queued as {sources:?}"
        );
    }

    drain(&direct).await;
    assert_no_differences(&direct, seed, "after the drain").await;
    assert_kept(&direct, seed, &report).await;
    println!(
        "seed {seed}: {} operations, {} committed keys, {} rolled back, tolerated {:?}, bypass {}+{}+{} keys; {:.1?} + {:.1?}",
        report.ops,
        report.committed.len(),
        report.rolled_back.len(),
        report.tolerated,
        bypassed.direct.len(),
        bypassed.cascade.len(),
        bypassed.function.len(),
        first,
        started.elapsed() - first,
    );
    common::drop_db(&db).await;
}

/// The same clients and plan with the target in another database: the
/// proxy puts written keys in the outbox in the client's transaction, the
/// applier copies them, and nothing is lost. The test waits for the
/// outbox to drain, re-copies what the queue holds with SQL of its own,
/// and compares both databases' rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_writes_through_the_outbox_lose_nothing() {
    let seed = load::seed();
    let db = common::create_db("mirror_load_outbox").await;
    let target_db = common::create_db("mirror_load_outbox_t").await;
    let direct = common::direct(&db).await;
    let target = common::direct(&target_db).await;
    direct.batch_execute(TABLES).await.unwrap();
    target.batch_execute(TABLES).await.unwrap();
    let key = vec!["id".to_string()];
    let guard = switchyard_core::store::Guard {
        migration: "items_v2",
        store: "public",
        schema: "public",
        table: "items",
        key: &key,
        on_target: false,
    };
    let mut install = switchyard_core::store::pg::install("public");
    install.extend(switchyard_core::store::pg::install_guard(&guard));
    direct
        .batch_execute(&format!("BEGIN; {}; COMMIT", install.join(";\n")))
        .await
        .unwrap();
    let yaml = format!(
        "{}
migrations:
  - id: items_v2
    backend: pg
    source: {{ database: {db}, schema: public, table: items, primary_key: [id] }}
    target: {{ database: {target_db}, table: items_v2 }}
    columns: {{ name: title }}
    phase: dual_write
",
        common::base_yaml()
    );
    let proxy = common::start(
        &yaml,
        std::sync::Arc::new(switchyard_proxy::route::MigrationRouter::default()),
    )
    .await;
    common::catalog::ready(&proxy.running, "items_v2").await;
    let report = workload(&proxy, &db, seed, 1).await;
    common::eventually(
        std::time::Duration::from_secs(60),
        "the outbox drains",
        || async {
            let left: i64 = direct
                .query_one("SELECT count(*) FROM switchyard_outbox", &[])
                .await
                .unwrap()
                .get(0);
            (left == 0).then_some(())
        },
    )
    .await;
    // Only what the proxy itself could not put in the outbox may be queued.
    let queued = queue(&direct).await;
    for (k, sources) in &queued {
        assert!(
            sources
                .iter()
                .all(|s| s == "mirror_failed" || s == "proxy_unparsed"),
            "seed {seed}: key {k}, which only the proxy's clients wrote, is queued as {sources:?}"
        );
    }
    for k in queued.keys() {
        target
            .execute("DELETE FROM items_v2 WHERE id = $1", &[k])
            .await
            .unwrap();
        // The source's row, as the text of the target's row type (the
        // columns line up), inserted by that type's input.
        let rows = direct
            .query(
                &format!("SELECT ROW({SOURCE_COLUMNS})::text FROM items WHERE id = $1"),
                &[k],
            )
            .await
            .unwrap();
        for row in rows {
            target
                .execute(
                    "INSERT INTO items_v2 SELECT (($1::text)::items_v2).*",
                    &[&row.get::<_, String>(0)],
                )
                .await
                .unwrap();
        }
    }
    let text = |columns: &str, table: &str| {
        format!("SELECT ROW({columns})::text FROM {table} ORDER BY id")
    };
    let source_rows: Vec<String> = direct
        .query(&text(SOURCE_COLUMNS, "items"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let target_rows: Vec<String> = target
        .query(&text(TARGET_COLUMNS, "items_v2"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let only_source: Vec<&String> = source_rows
        .iter()
        .filter(|r| !target_rows.contains(r))
        .collect();
    let only_target: Vec<&String> = target_rows
        .iter()
        .filter(|r| !source_rows.contains(r))
        .collect();
    assert!(
        only_source.is_empty() && only_target.is_empty(),
        "seed {seed}: only in the source {only_source:?}; only in the target {only_target:?}"
    );
    assert!(
        report.committed.len() > 100,
        "seed {seed}: too little committed work"
    );
    println!(
        "seed {seed}: outbox: {} operations, {} committed keys, {} queued, {} rows",
        report.ops,
        report.committed.len(),
        queued.len(),
        source_rows.len()
    );
    common::drop_db(&db).await;
    common::drop_db(&target_db).await;
}

/// Runs one phase: every client's operations, at once.
async fn workload(proxy: &Proxy, db: &str, seed: u64, phase: u64) -> Report {
    let mut tasks = Vec::new();
    let hot = Hot::default();
    for n in 0..CLIENTS {
        let mut worker = Worker {
            seed,
            n,
            phase,
            client: proxy.connect(db).await,
            rng: StdRng::seed_from_u64(seed ^ (phase << 32) ^ n as u64),
            made: 0,
            high: 1,
            hot: hot.clone(),
            prepared: HashMap::new(),
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

/// A value bound to a statement, or written into its text.
#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Text(String),
}

/// A write that failed for a reason concurrency explains (its SQLSTATE).
struct Tolerated(&'static str);

/// One client through the proxy.
struct Worker {
    /// The run's seed, for every failure message.
    seed: u64,
    /// The client's number.
    n: usize,
    /// The phase, so that generated skus stay unique across phases.
    phase: u64,
    client: Client,
    rng: StdRng,
    /// Skus generated so far.
    made: u64,
    /// The highest generated key seen, to aim updates and deletes.
    high: i64,
    /// Keys the clients wrote last, shared, so that they meet on rows.
    hot: Hot,
    /// Statements prepared by name, by text.
    prepared: HashMap<String, Statement>,
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
            Err(Tolerated(code)) => self.report.tolerate(code),
        }
    }

    /// A transaction of a few writes, ended at random.
    async fn transaction(&mut self) {
        let ending = Ending::pick(&mut self.rng);
        self.control("BEGIN").await;
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
            // A failure after the savepoint is undone by the rollback to it.
            match self.write().await {
                Ok(w) => undone.extend(w),
                Err(Tolerated(code)) => self.report.tolerate(code),
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

    /// Rolls back a transaction a tolerated error broke.
    async fn abandon(&mut self, code: &'static str, written: Written, undone: Written) {
        self.report.tolerate(code);
        self.control("ROLLBACK").await;
        self.report.rolled_back.extend(written.fresh);
        self.report.rolled_back.extend(undone.fresh);
    }

    /// One write of the source, chosen at random.
    async fn write(&mut self) -> Result<Written, Tolerated> {
        let name = Val::Text(format!("n{}", self.rng.random_range(0..1000)));
        Ok(match self.rng.random_range(0..13) {
            0 | 1 => {
                let rows = self.rng.random_range(1..=4);
                let mut values = Vec::new();
                let mut args = Vec::new();
                for i in 0..rows {
                    values.push(format!("(${}, ${}, 0)", 2 * i + 1, 2 * i + 2));
                    args.push(self.fresh_sku());
                    args.push(name.clone());
                }
                let sql = format!(
                    "INSERT INTO items (sku, name, qty) VALUES {} RETURNING id",
                    values.join(", ")
                );
                Written::fresh(self.rows(&sql, &args).await?)
            }
            2 => {
                let args = [self.pool_key(), self.fresh_sku(), name];
                let sql = "INSERT INTO items (id, sku, name) VALUES ($1, $2, $3) RETURNING id";
                Written::present(self.rows(sql, &args).await?)
            }
            3 => {
                let args = [self.pool_sku(), name];
                let sql = "INSERT INTO items (sku, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id";
                Written::fresh(self.rows(sql, &args).await?)
            }
            4 => {
                let args = [self.pool_sku(), name];
                let sql = "INSERT INTO items AS i (sku, name, qty) VALUES ($1, $2, 1) \
                           ON CONFLICT (sku) DO UPDATE SET qty = i.qty + 1, name = EXCLUDED.name, made = now() \
                           RETURNING id";
                Written::present(self.rows(sql, &args).await?)
            }
            5 => {
                // Collides on the key (an update) or on the sku (an error).
                let args = [self.pool_key(), self.pool_sku(), name];
                let sql = "INSERT INTO items AS i (id, sku, name) VALUES ($1, $2, $3) \
                           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, score = random() \
                           RETURNING id";
                Written::present(self.rows(sql, &args).await?)
            }
            6 | 7 => {
                let args = [self.any_key(), name];
                let sql = "UPDATE items SET name = $2, qty = qty + 1, score = random() WHERE id = $1 RETURNING id";
                Written::present(self.rows(sql, &args).await?)
            }
            8 => {
                let args = [self.any_key()];
                let sql = "UPDATE items SET qty = qty + 1, made = now() \
                           WHERE id BETWEEN $1::bigint AND $1::bigint + 5 RETURNING id";
                Written::present(self.rows(sql, &args).await?)
            }
            9 => {
                let args = [self.any_key()];
                let sql = format!(
                    "UPDATE items SET id = id - {REKEY} WHERE id = $1 AND id > {MOVABLE} RETURNING id"
                );
                Written::present(self.rows(&sql, &args).await?)
            }
            10 => {
                let args = [self.any_key()];
                self.rows("DELETE FROM items WHERE id = $1", &args).await?;
                Written::default()
            }
            11 => {
                let args = [self.any_key()];
                let sql = "DELETE FROM items WHERE id BETWEEN $1::bigint AND $1::bigint + 2";
                self.rows(sql, &args).await?;
                Written::default()
            }
            _ => {
                let sql = "DELETE FROM items WHERE made < now() - interval '200 milliseconds' AND score < 0.01";
                self.rows(sql, &[]).await?;
                Written::default()
            }
        })
    }

    /// Runs a statement by the simple protocol (values written into its
    /// text), the extended one (unnamed), or a named prepared statement,
    /// and returns the first column of its rows.
    async fn rows(&mut self, sql: &str, args: &[Val]) -> Result<Vec<i64>, Tolerated> {
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| match a {
                Val::Int(i) => i as &(dyn ToSql + Sync),
                Val::Text(s) => s as &(dyn ToSql + Sync),
            })
            .collect();
        let context = self.context(sql);
        let result: Result<Vec<i64>, _> = match self.rng.random_range(0..3) {
            0 => {
                let text = inline(sql, args);
                let answer = stall(&context, self.client.simple_query(&text)).await;
                answer.map(|messages| {
                    messages
                        .iter()
                        .filter_map(|m| match m {
                            SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().unwrap()),
                            _ => None,
                        })
                        .collect()
                })
            }
            1 => stall(&context, self.client.query(sql, &params))
                .await
                .map(|rows| rows.iter().map(|r| r.get(0)).collect()),
            _ => {
                let statement = self.prepare(sql).await;
                stall(&context, self.client.query(&statement, &params))
                    .await
                    .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            }
        };
        match result {
            Ok(keys) => {
                self.high = keys.iter().copied().fold(self.high, i64::max);
                Ok(keys)
            }
            Err(e) => match tolerated(&e) {
                Some(code) => Err(Tolerated(code)),
                None => panic!("{context} {args:?}: {e:?}"),
            },
        }
    }

    async fn prepare(&mut self, sql: &str) -> Statement {
        if let Some(statement) = self.prepared.get(sql) {
            return statement.clone();
        }
        let context = self.context(sql);
        let statement = stall(&context, self.client.prepare(sql))
            .await
            .unwrap_or_else(|e| panic!("{context}: prepare: {e:?}"));
        self.prepared.insert(sql.to_string(), statement.clone());
        statement
    }

    /// A transaction's own statement, which must succeed.
    async fn control(&mut self, sql: &str) {
        let context = self.context(sql);
        stall(&context, self.client.batch_execute(sql))
            .await
            .unwrap_or_else(|e| panic!("{context}: {e:?}"));
    }

    fn context(&self, sql: &str) -> String {
        format!(
            "seed {} phase {} client {} op {}: {sql}",
            self.seed, self.phase, self.n, self.report.ops
        )
    }

    fn fresh_sku(&mut self) -> Val {
        self.made += 1;
        Val::Text(format!("c{}.{}-{}", self.phase, self.n, self.made))
    }

    fn pool_sku(&mut self) -> Val {
        Val::Text(format!("p{}", self.rng.random_range(0..POOL_SKUS)))
    }

    fn pool_key(&mut self) -> Val {
        Val::Int(-self.rng.random_range(1..=POOL_KEYS))
    }

    /// A key that may exist: generated, explicit, or moved.
    fn any_key(&mut self) -> Val {
        match self.rng.random_range(0..10) {
            // Mostly keys just written, so that clients meet on rows.
            0..4 => Val::Int(self.hot.pick(&mut self.rng).unwrap_or(self.high)),
            4 => Val::Int(self.rng.random_range(1..=self.high + 2)),
            5..8 => self.pool_key(),
            _ => Val::Int(self.rng.random_range(1..=self.high) - REKEY),
        }
    }
}

/// Awaits a client call, failing the test if it hangs.
async fn stall<T>(context: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STALL, call)
        .await
        .unwrap_or_else(|_| panic!("{context}: no answer within {STALL:?}"))
}

/// The SQLSTATE of an error a client can get from concurrency alone:
/// unique violations, deadlocks, serialization failures, lock timeouts.
fn tolerated(e: &tokio_postgres::Error) -> Option<&'static str> {
    let code = e.code()?.code();
    ["23505", "40P01", "40001", "55P03"]
        .into_iter()
        .find(|c| *c == code)
}

/// `sql` with `$n` replaced by the values, for the simple protocol.
fn inline(sql: &str, args: &[Val]) -> String {
    let mut text = sql.to_string();
    for (i, arg) in args.iter().enumerate().rev() {
        let value = match arg {
            Val::Int(n) => n.to_string(),
            Val::Text(s) => format!("'{}'", s.replace('\'', "''")),
        };
        text = text.replace(&format!("${}", i + 1), &value);
    }
    text
}

/// Keys the bypass wrote, by how the guard should have seen them.
#[derive(Debug, Default)]
struct Bypassed {
    /// Written by a client connected straight to the server.
    direct: BTreeSet<i64>,
    /// Deleted by a cascade from a parent deleted directly.
    cascade: BTreeSet<i64>,
    /// Updated by a function called through the proxy.
    function: BTreeSet<i64>,
}

/// Writes the source without the mirror, alongside the clients: inserts,
/// updates, key changes and deletes by a direct client, children deleted
/// by a cascade, and a function called through the proxy.
async fn bypass(through: Client, direct: Client) -> Bypassed {
    let mut bypassed = Bypassed::default();
    for round in 0..8i64 {
        let statements = [
            format!("INSERT INTO items (sku, name) VALUES ('b{round}a', 'bypass'), ('b{round}b', 'bypass') RETURNING id"),
            "UPDATE items SET name = 'bypassed', qty = qty + 1 WHERE id IN \
             (SELECT id FROM items ORDER BY random() LIMIT 2) RETURNING id"
                .to_string(),
            "DELETE FROM items WHERE id IN (SELECT id FROM items WHERE parent IS NULL ORDER BY random() LIMIT 1) RETURNING id"
                .to_string(),
            format!(
                "UPDATE items SET id = id - {REKEY} WHERE id IN \
                 (SELECT id FROM items WHERE id > {MOVABLE} ORDER BY random() LIMIT 1) RETURNING id + {REKEY}, id"
            ),
        ];
        for sql in &statements {
            for row in retry(&direct, sql).await {
                for i in 0..row.len() {
                    bypassed.direct.insert(row.get(i));
                }
            }
        }

        // Children the mirror wrote, deleted by a cascade it never sees.
        let parent = round + 1;
        direct
            .execute("INSERT INTO parents VALUES ($1)", &[&parent])
            .await
            .unwrap();
        through
            .simple_query(&format!(
                "INSERT INTO items (sku, name, parent) VALUES ('k{round}a', 'child', {parent}), ('k{round}b', 'child', {parent})"
            ))
            .await
            .unwrap();
        loop {
            direct.batch_execute("BEGIN").await.unwrap();
            let locked = direct
                .query(
                    "SELECT id FROM items WHERE parent = $1 FOR UPDATE",
                    &[&parent],
                )
                .await;
            let deleted = match locked {
                Ok(rows) => direct
                    .execute("DELETE FROM parents WHERE id = $1", &[&parent])
                    .await
                    .map(|_| rows),
                Err(e) => Err(e),
            };
            match deleted {
                Ok(rows) => {
                    direct.batch_execute("COMMIT").await.unwrap();
                    bypassed
                        .cascade
                        .extend(rows.iter().map(|r| r.get::<_, i64>(0)));
                    break;
                }
                Err(e) if tolerated(&e).is_some() => {
                    direct.batch_execute("ROLLBACK").await.unwrap()
                }
                Err(e) => panic!("cascade: {e:?}"),
            }
        }

        // A function called through the proxy: a read to the proxy.
        let k: Option<i64> = direct
            .query_opt("SELECT id FROM items ORDER BY random() LIMIT 1", &[])
            .await
            .unwrap()
            .map(|r| r.get(0));
        if let Some(k) = k {
            let bumped = if round % 2 == 0 {
                through
                    .query_one("SELECT bump($1)", &[&k])
                    .await
                    .map(|r| r.get::<_, bool>(0))
            } else {
                through
                    .simple_query(&format!("SELECT bump({k})"))
                    .await
                    .map(|m| matches!(&m[..], [SimpleQueryMessage::RowDescription(_), SimpleQueryMessage::Row(r), ..] if r.get(0) == Some("t")))
            };
            match bumped {
                Ok(true) => {
                    bypassed.function.insert(k);
                }
                Ok(false) => {}
                Err(e) if tolerated(&e).is_some() => {}
                Err(e) => panic!("bump({k}) through the proxy: {e:?}"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    bypassed
}

/// Runs a direct write again until no deadlock stops it.
async fn retry(direct: &Client, sql: &str) -> Vec<tokio_postgres::Row> {
    loop {
        match direct.query(sql, &[]).await {
            Ok(rows) => return rows,
            Err(e) if tolerated(&e).is_some() => continue,
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }
}

/// The repair queue: each queued key with the sources it was queued by.
async fn queue(direct: &Client) -> BTreeMap<i64, BTreeSet<String>> {
    let mut queued: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for row in direct
        .query(
            "SELECT (key->>0)::bigint, source FROM switchyard_repair_queue WHERE migration = 'items_v2'",
            &[],
        )
        .await
        .unwrap()
    {
        queued.entry(row.get(0)).or_default().insert(row.get(1));
    }
    queued
}

/// Repairs every queued key the plain way: its target row deleted, then
/// copied again from the source if the source still has it.
async fn drain(direct: &Client) {
    direct
        .batch_execute(&format!(
            "BEGIN;
             CREATE TEMP TABLE drained ON COMMIT DROP AS
                 SELECT DISTINCT (key->>0)::bigint AS id FROM switchyard_repair_queue
                 WHERE migration = 'items_v2';
             DELETE FROM items_v2 WHERE id IN (SELECT id FROM drained);
             INSERT INTO items_v2 ({TARGET_COLUMNS})
                 SELECT {SOURCE_COLUMNS} FROM items WHERE id IN (SELECT id FROM drained);
             DELETE FROM switchyard_repair_queue WHERE migration = 'items_v2';
             COMMIT"
        ))
        .await
        .unwrap();
}

/// The rows that differ between the two tables, both ways, as text.
async fn differences(direct: &Client) -> Vec<String> {
    direct
        .query(
            &format!(
                "SELECT 'only in items: ' || d::text FROM
                     (SELECT {SOURCE_COLUMNS} FROM items EXCEPT SELECT {TARGET_COLUMNS} FROM items_v2) d
                 UNION ALL
                 SELECT 'only in items_v2: ' || d::text FROM
                     (SELECT {TARGET_COLUMNS} FROM items_v2 EXCEPT SELECT {SOURCE_COLUMNS} FROM items) d
                 ORDER BY 1"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn assert_no_differences(direct: &Client, seed: u64, when: &str) {
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
async fn assert_kept(direct: &Client, seed: u64, report: &Report) {
    let committed: Vec<i64> = report.committed.iter().copied().collect();
    let missing: Vec<String> = direct
        .query(
            "SELECT k::text || CASE WHEN EXISTS (SELECT 1 FROM items WHERE id = k)
                                    THEN ' (in items)' ELSE '' END
             FROM unnest($1::bigint[]) k
             WHERE k NOT IN (SELECT id FROM gone)
               AND NOT (EXISTS (SELECT 1 FROM items WHERE id = k)
                        AND EXISTS (SELECT 1 FROM items_v2 WHERE id = k))",
            &[&committed],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        missing.is_empty(),
        "seed {seed}: committed keys nobody removed are missing: {missing:?}"
    );
    let undone: Vec<i64> = report.rolled_back.iter().copied().collect();
    let kept: Vec<i64> = direct
        .query(
            "SELECT k FROM unnest($1::bigint[]) k
             WHERE EXISTS (SELECT 1 FROM items WHERE id = k)
                OR EXISTS (SELECT 1 FROM items_v2 WHERE id = k)",
            &[&undone],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        kept.is_empty(),
        "seed {seed}: keys of rolled-back inserts are present: {kept:?}"
    );
}

// What the load can only meet by chance, made deterministic.

/// Waits until a session of `db` waits for a row lock.
async fn until_a_lock_wait(direct: &Client, db: &str) {
    common::eventually(STALL, "a session waiting for a lock", || async {
        let waiting: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&db],
            )
            .await
            .unwrap()
            .get(0);
        (waiting > 0).then_some(())
    })
    .await;
}

/// Runs `sql`, a write of the row with sku `x`, while another client
/// holds that row in a transaction that moves it from key 7 to another
/// key; the write waits, and then (as PostgreSQL does in READ COMMITTED)
/// finds the row at its new key. Returns the write's row counts and the
/// differences between the tables.
async fn after_a_key_change(sql: &'static str) -> (Vec<u64>, Vec<String>) {
    let (proxy, db, direct) = setup_tables("mirror_load_rekey", TABLES, "repair").await;
    let mover = proxy.connect(&db).await;
    let writer = proxy.connect(&db).await;
    mover
        .batch_execute("INSERT INTO items (id, sku, name) VALUES (7, 'x', 'n')")
        .await
        .unwrap();
    mover.batch_execute("BEGIN").await.unwrap();
    mover
        .batch_execute(&format!("UPDATE items SET id = id - {REKEY} WHERE id = 7"))
        .await
        .unwrap();
    let write = tokio::spawn(async move {
        writer.simple_query(sql).await.map(|m| {
            m.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::CommandComplete(n) => Some(*n),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
    });
    until_a_lock_wait(&direct, &db).await;
    mover.batch_execute("COMMIT").await.unwrap();
    let counts = stall("the write", write).await.unwrap().unwrap();
    // What the statement could not settle is in the queue: drained the
    // plain way, the tables agree.
    drain(&direct).await;
    let outcome = (counts, differences(&direct).await);
    common::drop_db(&db).await;
    outcome
}

#[tokio::test]
async fn a_delete_that_waited_for_a_key_change_removes_the_moved_row_from_the_target() {
    assert_eq!(
        after_a_key_change("DELETE FROM items WHERE sku = 'x'").await,
        (vec![1], vec![])
    );
}

#[tokio::test]
async fn a_key_change_that_waited_for_another_moves_the_row_again() {
    assert_eq!(
        after_a_key_change("UPDATE items SET id = id + 5 WHERE sku = 'x'").await,
        (vec![1], vec![])
    );
}

#[tokio::test]
async fn an_upsert_that_changes_the_key_leaves_nothing_at_the_old_key() {
    let (proxy, db, direct) = setup_tables("mirror_load_upsert", TABLES, "repair").await;
    let client = proxy.connect(&db).await;
    client
        .batch_execute("INSERT INTO items (id, sku, name) VALUES (7, 'x', 'n')")
        .await
        .unwrap();
    // The sku's row moves from key 7 to key 8.
    let n = client
        .execute(
            "INSERT INTO items AS i (id, sku, name) VALUES (8, 'x', 'm') \
             ON CONFLICT (sku) DO UPDATE SET id = EXCLUDED.id, name = EXCLUDED.name",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The old key is queued (by the guard) and the new row mirrored.
    assert!(queue(&direct).await.contains_key(&7));
    drain(&direct).await;
    assert_eq!(differences(&direct).await, Vec::<String>::new());
    common::drop_db(&db).await;
}

#[tokio::test]
async fn the_queue_says_who_wrote_what_the_mirror_did_not_see() {
    let (proxy, db, direct) = setup_tables("mirror_load_sources", TABLES, "repair").await;
    let client = proxy.connect(&db).await;
    direct
        .batch_execute("INSERT INTO parents VALUES (1)")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO items (id, sku, parent) VALUES (1, 'a', NULL), (2, 'b', 1), (3, 'c', NULL)")
        .await
        .unwrap();
    assert!(queue(&direct).await.is_empty());
    direct
        .batch_execute("UPDATE items SET name = 'direct' WHERE id = 1")
        .await
        .unwrap();
    direct
        .batch_execute("DELETE FROM parents WHERE id = 1")
        .await
        .unwrap();
    client.query_one("SELECT bump(3)", &[]).await.unwrap();
    let queued: Vec<(i64, BTreeSet<String>)> = queue(&direct).await.into_iter().collect();
    let want = |s: &str| BTreeSet::from([s.to_string()]);
    assert_eq!(
        queued,
        vec![
            (1, want("direct_client")),
            (2, want("cascade_or_function")),
            (3, want("proxy_unparsed")),
        ]
    );
    common::drop_db(&db).await;
}

/// Makes a write through the proxy, outside a transaction, fail on its
/// own: its row is held past its `lock_timeout`. A proxy that runs the
/// write again (without its mirror) is seen waiting again, and the holder
/// then lets it through. Returns the write's answer, the queue, and the
/// differences between the tables.
async fn time_out_a_write(
    on_error: &str,
) -> (
    Result<(), tokio_postgres::Error>,
    BTreeMap<i64, BTreeSet<String>>,
    Vec<String>,
) {
    let (proxy, db, direct) = setup_tables("mirror_load_timeout", TABLES, on_error).await;
    let client = proxy.connect(&db).await;
    client
        .batch_execute("INSERT INTO items (id, sku) VALUES (1, 'a')")
        .await
        .unwrap();
    client
        .batch_execute("SET lock_timeout = '300ms'")
        .await
        .unwrap();
    // A lock writes nothing, so the guard queues nothing for it.
    let holder = common::direct(&db).await;
    holder
        .batch_execute("BEGIN; SELECT 1 FROM items WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let write = tokio::spawn(async move {
        client
            .simple_query("UPDATE items SET qty = qty + 10 WHERE id = 1")
            .await
            .map(|_| ())
    });
    let (write_ref, direct_ref, db_ref) = (&write, &direct, &db);
    common::eventually(
        STALL,
        "the write's answer, or the write run again",
        move || async move {
            if write_ref.is_finished() {
                return Some(());
            }
            let again: i64 = direct_ref
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE 'ROLLBACK%'",
                    &[db_ref],
                )
                .await
                .unwrap()
                .get(0);
            (again > 0).then_some(())
        },
    )
    .await;
    holder.batch_execute("COMMIT").await.unwrap();
    let answer = stall("the write", write).await.unwrap();
    let outcome = (answer, queue(&direct).await, differences(&direct).await);
    common::drop_db(&db).await;
    outcome
}

fn sqlstate(answer: &Result<(), tokio_postgres::Error>) -> Option<&str> {
    answer
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(|c| c.code())
}

#[tokio::test]
async fn a_write_that_fails_on_its_own_is_answered_so_and_queues_nothing() {
    let (answer, queued, differences) = time_out_a_write("repair").await;
    assert_eq!(
        (sqlstate(&answer), queued, differences),
        (Some("55P03"), BTreeMap::new(), Vec::new()),
        "the write was answered {answer:?}"
    );
}

#[tokio::test]
async fn a_write_that_fails_on_its_own_is_answered_so_under_fail_write() {
    let (answer, _, differences) = time_out_a_write("fail_write").await;
    assert_eq!(
        (sqlstate(&answer), differences),
        (Some("55P03"), Vec::new()),
        "the write was answered {answer:?}"
    );
}
