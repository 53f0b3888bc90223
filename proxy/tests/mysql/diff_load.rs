//! The table diff under live writes on MariaDB: while clients write the
//! source through the proxy with the dual write on, a diff of the
//! same-server migration reads each chunk's two tables in one consistent
//! snapshot and must call them equal every time. The data confirms it
//! with the test's own SQL, and a change made to the target behind the
//! proxy's back is then found, exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mysql_async::prelude::*;
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
        Ok(Conn::Mysql(common::direct(Some(&self.0)).await))
    }
}

async fn diff(db: &str, mapping: &Mapping, level: Level) -> Report {
    let compared = Compared::new(Dialect::Mysql, mapping, &["id".to_string()], None).unwrap();
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
    let (proxy, db, mut direct) = setup_tables("diff_load", &TABLES, "repair").await;
    let mut seeder = proxy.connect(&db).await;
    seeder
        .query_drop(
            "INSERT INTO items (sku, name, price) SELECT CONCAT('s', seq), CONCAT('n', seq), seq % 900 FROM seq_1_to_3000",
        )
        .await
        .unwrap();
    let mapping = common::catalog::ready(&proxy.running, "items_v2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for worker in 0..4u64 {
        let mut conn = proxy.connect(&db).await;
        let stop = stop.clone();
        let written = written.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id: i64 = rng.random_range(1..3200);
                let sku = format!("w{worker}-{writes}");
                let sql = match rng.random_range(0..4) {
                    0 => format!(
                        "UPDATE items SET price = {} WHERE id = {id}",
                        rng.random_range(0..900)
                    ),
                    1 => format!("UPDATE items SET name = CONCAT(name, 'x') WHERE id = {id}"),
                    2 => format!("DELETE FROM items WHERE id = {id}"),
                    _ => format!("INSERT INTO items (sku, name, price) VALUES ('{sku}', 'new', 1)"),
                };
                match conn.query_drop(&sql).await {
                    Ok(()) => {
                        writes += 1;
                        written.fetch_add(1, Ordering::Relaxed);
                    }
                    // A deadlock between two writers is the server's
                    // answer, not a lost write: the client sees it.
                    Err(e) if common::server_error(&e).0 == 1213 => {}
                    Err(e) => panic!("{sql}: {e}"),
                }
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
    let counts: (i64, i64, i64) = direct
        .query_first(
            "SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM items_v2),
                    (SELECT COUNT(*) FROM items i JOIN items_v2 t ON t.id = i.id AND BINARY t.sku <=> BINARY i.sku
                       AND BINARY t.title <=> BINARY i.name AND t.price <=> i.price AND t.made <=> i.made)",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((counts.1, counts.2), (counts.0, counts.0));
    let id: i64 = direct
        .query_first("SELECT MIN(id) FROM items_v2")
        .await
        .unwrap()
        .unwrap();
    direct
        .query_drop(format!(
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
