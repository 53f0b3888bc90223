//! The read switch end to end: reads of a migrated table through the proxy
//! follow the rule, the target's rows are marked so the test can tell which
//! path answered, and the client always gets the source's result shape.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use switchyard_proxy::route::MigrationRouter;
use tokio_postgres::Client;

use crate::common::{self, catalog, Proxy};

const KEYS: i32 = 2_000;

/// A database with the source `api` and the target `t_sys_api_endpoints`
/// (id widened to bigint, two columns renamed, path retyped to varchar),
/// both holding every key; the target's rows are marked `tgt`.
pub async fn tables(prefix: &str) -> String {
    let db = common::create_db(prefix).await;
    common::direct(&db)
        .await
        .batch_execute(&format!(
            "CREATE TABLE api (id int PRIMARY KEY, path text NOT NULL, method text);
             CREATE TABLE t_sys_api_endpoints (id bigint PRIMARY KEY, endpoint_path varchar(200) NOT NULL, http_method text);
             INSERT INTO api SELECT g, '/p/' || g, 'src' FROM generate_series(1, {KEYS}) g;
             INSERT INTO t_sys_api_endpoints SELECT g, '/p/' || g, 'tgt' FROM generate_series(1, {KEYS}) g;
             {};",
            // The control store, as `switchyard init` leaves it: the
            // repair queue takes the keys of a write whose mirror fails.
            switchyard_core::store::pg::install("public").join(";\n")
        ))
        .await
        .unwrap();
    db
}

/// The test config: `base` (users, backend) plus the migration of `api` in
/// `db` with these column renames and read rule.
pub fn config(base: &str, db: &str, columns: &str, reads: &str) -> String {
    format!(
        "{base}
migrations:
  - id: api_move
    backend: pg
    source: {{ database: {db}, schema: public, table: api, primary_key: [id] }}
    target: {{ table: t_sys_api_endpoints }}
    columns: {columns}
    phase: read_ramp
    reads: {reads}
"
    )
}

pub const RENAMES: &str = "{ path: endpoint_path, method: http_method }";

async fn proxy(db: &str, reads: &str) -> Proxy {
    // Routing is under test here, not the guard: latency noise on a
    // shared machine must not roll reads back.
    let yaml = format!(
        "{}    rollback: {{ max_latency_ratio: 1000 }}\n",
        config(&common::base_yaml(), db, RENAMES, reads)
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    proxy
}

/// Sets the rule through the admin API.
async fn put_reads(proxy: &Proxy, body: serde_json::Value) {
    let (code, text) = common::http_put(
        proxy.admin(),
        "/migrations/api_move/reads",
        &body.to_string(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
}

/// Which keys the target answered, reading each key once with one prepared
/// statement (prepared before any ramp, never re-prepared).
async fn on_target(client: &Client, stmt: &tokio_postgres::Statement) -> BTreeSet<i32> {
    let mut keys = BTreeSet::new();
    for id in 1..=KEYS {
        let row = client.query_one(stmt, &[&id]).await.unwrap();
        let method: &str = row.get("method");
        if method == "tgt" {
            keys.insert(id);
        }
        // The source's shape whichever path answered.
        let got: i32 = row.get("id");
        assert_eq!(got, id);
        assert_eq!(row.get::<_, &str>("path"), format!("/p/{id}"));
    }
    keys
}

fn assert_share(keys: &BTreeSet<i32>, percent: f64) {
    let share = keys.len() as f64 * 100.0 / f64::from(KEYS);
    assert!(
        (share - percent).abs() <= 3.0,
        "{percent}% rule sent {share:.1}% of keys to the target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percentage_by_column_ramps_monotonically_and_flips() {
    let db = tables("reads_pct").await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 30, sticky_by: \"column:id\" }",
    )
    .await;
    let client = proxy.connect(&db).await;
    let stmt = client
        .prepare("SELECT id, path, method FROM api WHERE id = $1")
        .await
        .unwrap();
    // The client described the source form: the source's types.
    let types: Vec<_> = stmt
        .columns()
        .iter()
        .map(|c| c.type_().name().to_string())
        .collect();
    assert_eq!(types, ["int4", "text", "text"]);

    let at30 = on_target(&client, &stmt).await;
    assert_share(&at30, 30.0);

    let mut previous = BTreeSet::new();
    for percent in [5, 25, 50] {
        put_reads(
            &proxy,
            json!({"strategy": "percentage", "percent": percent, "sticky_by": "column:id"}),
        )
        .await;
        let now = on_target(&client, &stmt).await;
        assert_share(&now, f64::from(percent));
        assert!(
            previous.is_subset(&now),
            "a key left the target at {percent}%"
        );
        previous = now;
    }

    // Blue-green: all or nothing, and back.
    put_reads(&proxy, json!({"strategy": "blue_green", "path": "target"})).await;
    assert_eq!(on_target(&client, &stmt).await.len(), KEYS as usize);
    put_reads(&proxy, json!({"strategy": "blue_green", "path": "source"})).await;
    assert!(on_target(&client, &stmt).await.is_empty());

    // Simple queries with literals follow the same buckets.
    put_reads(
        &proxy,
        json!({"strategy": "percentage", "percent": 50, "sticky_by": "column:id"}),
    )
    .await;
    for id in [1, 2, 3, 4, 5, 6, 7, 8] {
        let rows = client
            .simple_query(&format!("SELECT method FROM api WHERE id = {id}"))
            .await
            .unwrap();
        let method = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_string()),
                _ => None,
            })
            .expect("a row");
        let expected = if previous.contains(&id) { "tgt" } else { "src" };
        assert_eq!(method, expected, "key {id}");
    }
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_cohorts_and_ab_arms() {
    let db = tables("reads_canary").await;
    let proxy = proxy(
        &db,
        "{ strategy: canary, percent: 0, canary: { users: [app_md5], applications: [canary-app], comment_tag: \"switchyard:target\", clients: [] } }",
    )
    .await;
    let read = "SELECT method FROM api WHERE id = 1";
    let method = |client: Client, sql: &'static str| async move {
        let row = client.query_one(sql, &[]).await.unwrap();
        row.get::<_, String>(0)
    };
    // Not in a cohort: the source.
    assert_eq!(method(proxy.connect(&db).await, read).await, "src");
    // By user.
    let by_user = proxy.try_connect("app_md5", "app", &db).await.unwrap();
    assert_eq!(method(by_user, read).await, "tgt");
    // By application name.
    let (by_app, conn) = tokio_postgres::connect(
        &format!(
            "{} application_name=canary-app",
            proxy.dsn("app", "app", &db)
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    assert_eq!(method(by_app, read).await, "tgt");
    // By comment tag.
    let tagged = "/* switchyard:target */ SELECT method FROM api WHERE id = 1";
    assert_eq!(method(proxy.connect(&db).await, tagged).await, "tgt");
    // By client network: loopback.
    put_reads(
        &proxy,
        json!({"strategy": "canary", "percent": 0, "canary": {"clients": ["127.0.0.0/8"]}}),
    )
    .await;
    assert_eq!(method(proxy.connect(&db).await, read).await, "tgt");

    // A/B: 70/30 by key, every key on its arm's path.
    put_reads(
        &proxy,
        json!({"strategy": "ab", "sticky_by": "column:id", "arms": [
            {"name": "control", "path": "source", "weight": 70},
            {"name": "candidate", "path": "target", "weight": 30}]}),
    )
    .await;
    let client = proxy.connect(&db).await;
    let stmt = client
        .prepare("SELECT id, path, method FROM api WHERE id = $1")
        .await
        .unwrap();
    assert_share(&on_target(&client, &stmt).await, 30.0);
    let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
    assert!(
        metrics.contains("arm=\"candidate\"") && metrics.contains("arm=\"control\""),
        "per-arm read metrics: {metrics}"
    );
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_never_mixes_the_two_tables() {
    let db = tables("reads_txn").await;
    let proxy = proxy(
        &db,
        "{ strategy: percentage, percent: 50, sticky_by: \"column:id\" }",
    )
    .await;
    let mut client = proxy.connect(&db).await;
    // Keys 1..40 split between the paths outside a transaction ...
    let mut paths = BTreeSet::new();
    for id in 1..=40 {
        let row = client
            .query_one("SELECT method FROM api WHERE id = $1", &[&id])
            .await
            .unwrap();
        paths.insert(row.get::<_, String>(0));
    }
    assert_eq!(paths.len(), 2, "keys 1..40 should use both paths");
    // ... but inside one, the first read's path holds for all of them.
    let tx = client.transaction().await.unwrap();
    let mut inside = BTreeSet::new();
    for id in 1..=40 {
        let row = tx
            .query_one("SELECT method FROM api WHERE id = $1", &[&id])
            .await
            .unwrap();
        inside.insert(row.get::<_, String>(0));
    }
    tx.commit().await.unwrap();
    assert_eq!(
        inside.len(),
        1,
        "one transaction read both tables: {inside:?}"
    );

    // A write pins the rest of the transaction to the source (primary).
    let tx = client.transaction().await.unwrap();
    tx.execute("UPDATE api SET path = path WHERE id = 1", &[])
        .await
        .unwrap();
    for id in 1..=40 {
        let row = tx
            .query_one("SELECT method FROM api WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "src", "key {id} after a write");
    }
    tx.commit().await.unwrap();
    // A locking read goes to the source whatever the rule says.
    put_reads(&proxy, json!({"strategy": "immediate", "path": "target"})).await;
    let row = client
        .query_one("SELECT method FROM api WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "src");
    // (Key 1 was written in a mirroring phase: both tables hold 'src'.)
    let row = client
        .query_one("SELECT method FROM api WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "tgt");
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retyped_columns_keep_the_source_names_and_types() {
    let db = tables("reads_shape").await;
    let proxy = proxy(&db, "{ strategy: immediate, path: target }").await;
    let client = proxy.connect(&db).await;
    for sql in [
        "SELECT * FROM api WHERE id = 7",
        "SELECT a.* FROM api a WHERE a.id = 7",
        "SELECT id, path, method FROM public.api WHERE id = 7 ORDER BY path",
    ] {
        let rows = client.query(sql, &[]).await.unwrap();
        let names: Vec<_> = rows[0]
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let types: Vec<_> = rows[0]
            .columns()
            .iter()
            .map(|c| c.type_().name().to_string())
            .collect();
        assert_eq!(names, ["id", "path", "method"], "{sql}");
        assert_eq!(types, ["int4", "text", "text"], "{sql}");
        assert_eq!(rows[0].get::<_, i32>("id"), 7);
        assert_eq!(rows[0].get::<_, String>("method"), "tgt", "{sql}");
        // Simple protocol: the same names, and the values as text.
        let simple = client.simple_query(sql).await.unwrap();
        let row = simple
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{sql}: no row"));
        let names: Vec<_> = row.columns().iter().map(|c| c.name().to_string()).collect();
        assert_eq!(names, ["id", "path", "method"], "{sql}");
        assert_eq!(row.get("method"), Some("tgt"));
    }
    // What cannot be rewritten with certainty stays on the source and is
    // counted: an unqualified column with another table in scope.
    client
        .batch_execute("CREATE TABLE other (id int, note text); INSERT INTO other VALUES (7, 'x')")
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT method, note FROM api JOIN other USING (id) WHERE id = 7",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "src");
    let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
    assert!(
        metrics.contains("switchyard_unroutable_total{migration=\"api_move\""),
        "{metrics}"
    );
    drop(client);
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_does_not_fit_keeps_reads_on_the_source() {
    let db = tables("reads_refused").await;
    let yaml = config(
        &common::base_yaml(),
        &db,
        "{ path: no_such_column }",
        "{ strategy: immediate, path: target }",
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    let reason = catalog::refused(&proxy.running, "api_move").await;
    assert!(reason.contains("no_such_column"), "{reason}");
    let client = proxy.connect(&db).await;
    let row = client
        .query_one("SELECT method FROM api WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "src");
    let (code, body) = common::http_get(proxy.admin(), "/migrations").await;
    assert_eq!(code, 200);
    assert!(body.contains("\"catalog\":\"refused\""), "{body}");
    drop(client);
    common::drop_db(&db).await;
}

/// The RowDescription a raw client receives for `sql`, by simple Query and
/// by Parse/Bind/Describe portal/Execute, and whether the target answered.
async fn row_descriptions(proxy: &Proxy, db: &str, sql: &str) -> (Vec<Vec<u8>>, bool) {
    use common::fe as msg;
    let mut raw = common::RawPg::login_trust(proxy.addr, "app_trust", db).await;
    raw.send(&msg::query(sql)).await;
    let simple = raw.until_ready().await;
    let mut batch = msg::parse("", sql);
    batch.extend(msg::bind("", ""));
    batch.extend(msg::describe_portal(""));
    batch.extend(msg::execute(""));
    batch.extend(msg::sync());
    raw.send(&batch).await;
    let extended = raw.until_ready().await;
    let mut found = Vec::new();
    let mut target = true;
    for frames in [simple, extended] {
        target &= frames
            .iter()
            .any(|(tag, body)| *tag == b'D' && body.windows(3).any(|w| w == b"tgt"));
        let (_, body) = frames
            .into_iter()
            .find(|(tag, _)| *tag == b'T')
            .unwrap_or_else(|| panic!("no RowDescription for {sql}"));
        found.push(body);
    }
    (found, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_answers_with_the_sources_row_description() {
    let db = tables("reads_rowdesc").await;
    let proxy = proxy(&db, "{ strategy: immediate, path: source }").await;
    for sql in [
        "SELECT * FROM api WHERE id = 3",
        "SELECT id, path, method FROM api a WHERE a.id = 3",
        "SELECT method, id FROM public.api WHERE id < 5 ORDER BY id",
    ] {
        put_reads(&proxy, json!({"strategy": "immediate", "path": "source"})).await;
        let (source, on_target) = row_descriptions(&proxy, &db, sql).await;
        assert!(!on_target, "{sql}");
        put_reads(&proxy, json!({"strategy": "immediate", "path": "target"})).await;
        let (target, on_target) = row_descriptions(&proxy, &db, sql).await;
        assert!(
            on_target || !sql.contains("method"),
            "{sql}: the target did not answer"
        );
        // Every field: name, table OID, column number, type OID, type
        // length, typmod and format.
        assert_eq!(source, target, "{sql}");
    }
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_need_the_admin_token_and_show_in_migrations() {
    let db = tables("reads_admin").await;
    let base = common::base_yaml().replace(
        "admin: { listen: 127.0.0.1:0 }",
        "admin: { listen: 127.0.0.1:0, token: s3cret }",
    );
    let yaml = config(
        &base,
        &db,
        RENAMES,
        "{ strategy: percentage, percent: 12.5 }",
    );
    let proxy = common::start(&yaml, Arc::new(MigrationRouter::default())).await;
    catalog::ready(&proxy.running, "api_move").await;
    let body = json!({"strategy": "percentage", "percent": 40}).to_string();
    let (code, text) = common::http_put(proxy.admin(), "/migrations/api_move/reads", &body).await;
    assert_eq!(code, 401, "{text}");
    let (code, text) = common::http_request(
        proxy.admin(),
        "PUT",
        "/migrations/api_move/reads",
        &[("Authorization", "Bearer s3cret")],
        &body,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    // A rule the file's checks would refuse is refused here too.
    let (code, text) = common::http_request(
        proxy.admin(),
        "PUT",
        "/migrations/api_move/reads",
        &[("Authorization", "Bearer s3cret")],
        r#"{"strategy": "ab", "arms": [{"name": "a", "path": "target", "weight": 1}]}"#,
    )
    .await;
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("at least two arms"), "{text}");
    let (code, text) = common::http_request(
        proxy.admin(),
        "PUT",
        "/migrations/nope/reads",
        &[("Authorization", "Bearer s3cret")],
        &body,
    )
    .await;
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("api_move"), "{text}");

    let (_, listing) = common::http_get(proxy.admin(), "/migrations").await;
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let m = &listing["migrations"][0];
    // The database has a control store, so the rule was stored there.
    assert_eq!(m["rule_from"], "store", "{listing}");
    assert_eq!(m["target_share_basis_points"], 4000, "{listing}");
    assert_eq!(m["phase"], "read_ramp", "{listing}");
    let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
    assert!(
        metrics.contains("switchyard_target_share{migration=\"api_move\"} 4000"),
        "{metrics}"
    );
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_values_bind_on_the_target_without_a_describe() {
    use common::fe as msg;
    let db = tables("reads_nodescribe").await;
    let proxy = proxy(&db, "{ strategy: immediate, path: source }").await;
    let mut raw = common::RawPg::login_trust(proxy.addr, "app_trust", &db).await;
    // Parse without parameter types and without a Describe, as a driver
    // that sends binary values it encodes from its own types.
    let mut batch = msg::parse("s1", "SELECT method FROM api WHERE id = $1");
    batch.extend(msg::sync());
    raw.send(&batch).await;
    raw.until_ready().await;
    put_reads(&proxy, json!({"strategy": "immediate", "path": "target"})).await;
    // Bind one binary int4 (the source's type; the target's id is bigint).
    let mut batch = bind_one("s1", 1, &42i32.to_be_bytes());
    batch.extend(msg::execute(""));
    batch.extend(msg::sync());
    raw.send(&batch).await;
    let frames = raw.until_ready().await;
    for (tag, body) in &frames {
        assert_ne!(*tag, b'E', "{:?}", common::error_fields(body));
    }
    let row = frames.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    assert!(row.1.windows(3).any(|w| w == b"tgt"), "{row:?}");
    common::drop_db(&db).await;
}

/// A Bind of one value in `format` (0 text, 1 binary) to `statement`.
fn bind_one(statement: &str, format: i16, value: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(statement.as_bytes());
    body.push(0);
    for n in [1, format, 1] {
        body.extend_from_slice(&n.to_be_bytes());
    }
    body.extend_from_slice(&(value.len() as i32).to_be_bytes());
    body.extend_from_slice(value);
    body.extend_from_slice(&0i16.to_be_bytes());
    let mut bind = vec![b'B'];
    bind.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    bind.extend_from_slice(&body);
    bind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unnamed_statement_with_untyped_binary_values_reads_the_source() {
    use common::fe as msg;
    let db = tables("reads_untyped").await;
    let proxy = proxy(&db, "{ strategy: immediate, path: target }").await;
    let mut raw = common::RawPg::login_trust(proxy.addr, "app_trust", &db).await;
    // Parse, Bind, Execute and Sync in one batch: the binary int4 is sized
    // for the source's id, and no Describe told the proxy its type, so the
    // client's own form answers rather than a target form whose server
    // would read the value as bigint.
    for round in 0..2 {
        let mut batch = msg::parse("", "SELECT method FROM api WHERE id = $1");
        batch.extend(bind_one("", 1, &42i32.to_be_bytes()));
        batch.extend(msg::execute(""));
        batch.extend(msg::sync());
        raw.send(&batch).await;
        let frames = raw.until_ready().await;
        for (tag, body) in &frames {
            assert_ne!(
                *tag,
                b'E',
                "round {round}: {:?}",
                common::error_fields(body)
            );
        }
        let row = frames.iter().find(|(tag, _)| *tag == b'D').expect("a row");
        assert!(row.1.windows(3).any(|w| w == b"src"), "{row:?}");
    }
    let (_, metrics) = common::http_get(proxy.admin(), "/metrics").await;
    assert!(metrics.contains("reason=\"param_types\""), "{metrics}");
    // Text values carry no size: the same batch reads the target.
    let mut batch = msg::parse("", "SELECT method FROM api WHERE id = $1");
    batch.extend(bind_one("", 0, b"42"));
    batch.extend(msg::execute(""));
    batch.extend(msg::sync());
    raw.send(&batch).await;
    let frames = raw.until_ready().await;
    let row = frames.iter().find(|(tag, _)| *tag == b'D').expect("a row");
    assert!(row.1.windows(3).any(|w| w == b"tgt"), "{row:?}");
    common::drop_db(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unqualified_name_follows_the_search_path() {
    let db = tables("reads_path").await;
    common::direct(&db)
        .await
        .batch_execute(
            "CREATE SCHEMA other;
             CREATE TABLE other.api (id int PRIMARY KEY, path text, method text);
             INSERT INTO other.api VALUES (1, '/o/1', 'oth');",
        )
        .await
        .unwrap();
    let proxy = proxy(&db, "{ strategy: immediate, path: target }").await;
    let client = proxy.connect(&db).await;
    let read = "SELECT method FROM api WHERE id = 1";
    let got: String = client.query_one(read, &[]).await.unwrap().get(0);
    assert_eq!(got, "tgt");
    // Another schema first in the path: `api` is not the source there.
    client
        .batch_execute("SET search_path TO other, public")
        .await
        .unwrap();
    let got: String = client.query_one(read, &[]).await.unwrap().get(0);
    assert_eq!(got, "oth");
    // A qualified name is the source whatever the path says.
    let got: String = client
        .query_one("SELECT method FROM public.api WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(got, "tgt");
    client
        .batch_execute("SET search_path TO DEFAULT")
        .await
        .unwrap();
    let got: String = client.query_one(read, &[]).await.unwrap().get(0);
    assert_eq!(got, "tgt");
    drop(client);
    common::drop_db(&db).await;
}
