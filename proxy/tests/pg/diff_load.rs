//! The table diff under live writes: while clients write the source
//! through the proxy with the dual write on, a diff of the same-server
//! migration reads each chunk's two tables in one snapshot and must call
//! them equal every time. The data confirms it with the test's own SQL
//! afterwards, and a change made to the target behind the proxy's back is
//! then found, exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::conn::Conn;
use switchyard_consistency::diff::report::{Kind, Level, Report};
use switchyard_consistency::diff::{Connect, Job, Options};
use switchyard_core::schema::Mapping;
use switchyard_core::sql::Dialect;

use crate::common;
use crate::mirror::{setup_tables, TABLES};

/// Opens direct connections to the test's database.
struct Direct(String);

impl Connect for Direct {
    async fn open(&self, _target: bool) -> Result<Conn, String> {
        Ok(Conn::Postgres(common::direct(&self.0).await))
    }
}

async fn diff(db: &str, mapping: &Mapping, level: Level) -> Report {
    let compared = Compared::new(Dialect::Postgres, mapping, &["id".to_string()], None).unwrap();
    let options = Options {
        level,
        first_chunk_rows: 500,
        all_keys: true,
        ..Options::default()
    };
    let job = Job {
        migration: "items_v2",
        compared: &compared,
        connect: &Direct(db.to_string()),
        one_connection: true,
    };
    job.run(&options, &|_| {}).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_under_mirrored_writes_is_clean_and_then_finds_a_change_behind_the_proxy() {
    let (proxy, db, direct) = setup_tables("diff_load", TABLES, "repair").await;
    let seeder = proxy.connect(&db).await;
    seeder
        .batch_execute(
            "INSERT INTO items (name, price) SELECT 'n' || g, g % 900 FROM generate_series(1, 3000) g",
        )
        .await
        .unwrap();
    let mapping = common::catalog::ready(&proxy.running, "items_v2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for worker in 0..4u64 {
        let client = proxy.connect(&db).await;
        let stop = stop.clone();
        let written = written.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id: i64 = rng.random_range(1..3200);
                let sql = match rng.random_range(0..5) {
                    0 => format!(
                        "UPDATE items SET price = {} WHERE id = {id}",
                        rng.random_range(0..900)
                    ),
                    1 => format!(
                        "UPDATE items SET name = name || 'x' WHERE id BETWEEN {id} AND {}",
                        id + 3
                    ),
                    2 => format!("DELETE FROM items WHERE id = {id}"),
                    3 => "INSERT INTO items (name, price) VALUES ('new', 1)".to_string(),
                    // A transaction of two writes, one statement per
                    // query as drivers send them (several statements in
                    // one query are queued for repair, not mirrored).
                    _ => format!(
                        "BEGIN\nUPDATE items SET price = 5 WHERE id = {id}\n\
                         INSERT INTO items (name) VALUES ('tx')\nCOMMIT"
                    ),
                };
                for statement in sql.lines() {
                    client
                        .batch_execute(statement)
                        .await
                        .unwrap_or_else(|e| panic!("{statement}: {e}"));
                }
                writes += 1;
                written.fetch_add(1, Ordering::Relaxed);
            }
            writes
        }));
    }
    // At least four diffs, and as many as it takes for a few hundred
    // writes to land while they run.
    let mut round = 0;
    while round < 4 || (written.load(Ordering::Relaxed) < 300 && round < 400) {
        let level = if round % 2 == 0 {
            Level::Standard
        } else {
            Level::Detailed
        };
        let report = diff(&db, &mapping, level).await;
        if !report.clean {
            let detail = diff(&db, &mapping, Level::Full).await;
            panic!("round {round} under load: {report}\n{detail}");
        }
        assert!(report.chunks > 1, "{report}");
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for writer in writers {
        writes += writer.await.unwrap();
    }
    assert!(writes >= 300, "only {writes} writes ran during the diffs");
    let differing: i64 = direct
        .query_one(
            "SELECT count(*) FROM (
                (SELECT id, name, price, made, token FROM items
                 EXCEPT SELECT id, title, price, made, token FROM items_v2)
                UNION ALL
                (SELECT id, title, price, made, token FROM items_v2
                 EXCEPT SELECT id, name, price, made, token FROM items)) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(differing, 0);
    let id: i64 = direct
        .query_one("SELECT min(id) FROM items_v2", &[])
        .await
        .unwrap()
        .get(0);
    direct
        .batch_execute(&format!(
            "UPDATE items_v2 SET title = 'behind' WHERE id = {id}"
        ))
        .await
        .unwrap();
    let report = diff(&db, &mapping, Level::Detailed).await;
    let found: Vec<(Vec<String>, Kind, Vec<String>)> = report
        .differences
        .iter()
        .map(|d| {
            (
                d.key.clone(),
                d.kind,
                d.columns.iter().map(|c| c.column.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![(
            vec![id.to_string()],
            Kind::Changed,
            vec!["name".to_string()]
        )]
    );
}
