//! The mirrored forms of client writes, as text: what the server runs.

use switchyard_core::config::OnMirrorError;

use super::*;
use crate::route::program::{Part, Role};
use crate::route::rewrite::{ColumnMap, Relation};

fn map() -> TableMap {
    let column = |source: &str, target: &str| ColumnMap {
        source: source.into(),
        target: target.into(),
        cast: None,
    };
    TableMap {
        source: Relation {
            schema: "public".into(),
            name: "items".into(),
        },
        target: Relation {
            schema: "public".into(),
            name: "items_v2".into(),
        },
        columns: vec![
            column("id", "id"),
            column("name", "title"),
            column("price", "price"),
        ],
    }
}

fn facts(on_error: OnMirrorError) -> MirrorFacts<'static> {
    static KEY: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec!["id".into()]);
    MirrorFacts {
        migration: "items_v2",
        on_error,
        key: &KEY,
        default_schema: Some("public"),
        key_types: &[],
        allowed: &[],
        outbox: false,
    }
}

/// The program's statements, one per line, then the replacement's.
fn show(sql: &str, on_error: OnMirrorError) -> String {
    let Some(result) = mirror(Dialect::Postgres, &map(), &facts(on_error), sql, true) else {
        return "not a write of the source\n".into();
    };
    let write = match result {
        Ok(write) => write,
        Err(refusal) => return format!("refused: {refusal}\n"),
    };
    let mut out = format!("tag {} trim {:?}\n", write.tag, write.trim);
    for step in &write.program.steps {
        let text = |s: &Step| match &s.sql.0[..] {
            [Part::Text(t)] => t.clone(),
            other => format!("{other:?}"),
        };
        let mark = if step.role == Role::Client { ">" } else { " " };
        out.push_str(&format!("{mark} {}\n", text(step)));
        if let OnError::Instead(steps) = &step.on_error {
            for s in steps {
                out.push_str(&format!("  instead: {}\n", text(s)));
            }
        }
    }
    out
}

use crate::route::program::{OnError, Step};

#[test]
fn insert_returns_images_and_upserts_the_target() {
    expect_test::expect![[r#"
        tag INSERT 0 {rows} trim Trim { extra: 3, rows: false }
        > /* switchyard mirrored items_v2 */ WITH switchyard_w AS (INSERT INTO items (name, price) VALUES ('a', 1.5) RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_m AS (INSERT INTO "public"."items_v2" ("id", "title", "price") OVERRIDING SYSTEM VALUE SELECT switchyard_0, switchyard_1, switchyard_2 FROM switchyard_w ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title", "price" = EXCLUDED."price") SELECT * FROM switchyard_w
          instead: /* switchyard mirrored items_v2 */ WITH switchyard_w AS (INSERT INTO items (name, price) VALUES ('a', 1.5) RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_q AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'mirror_failed' FROM (SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
    "#]]
    .assert_eq(&show("INSERT INTO items (name, price) VALUES ('a', 1.5)", OnMirrorError::Repair));
}

#[test]
fn the_clients_returning_items_come_first() {
    expect_test::expect![[r#"
        tag INSERT 0 {rows} trim Trim { extra: 3, rows: true }
        > /* switchyard mirrored items_v2 */ WITH switchyard_w AS (INSERT INTO public.items AS i (name) VALUES ($1) ON CONFLICT(id) DO NOTHING RETURNING i.id, now() AS at, i."id" AS switchyard_0, i."name" AS switchyard_1, i."price" AS switchyard_2), switchyard_m AS (INSERT INTO "public"."items_v2" ("id", "title", "price") OVERRIDING SYSTEM VALUE SELECT switchyard_0, switchyard_1, switchyard_2 FROM switchyard_w ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title", "price" = EXCLUDED."price") SELECT * FROM switchyard_w
          instead: /* switchyard mirrored items_v2 */ WITH switchyard_w AS (INSERT INTO public.items AS i (name) VALUES ($1) ON CONFLICT(id) DO NOTHING RETURNING i.id, now() AS at, i."id" AS switchyard_0, i."name" AS switchyard_1, i."price" AS switchyard_2) SELECT * FROM switchyard_w
          instead: DO $switchyard$ BEGIN RAISE EXCEPTION USING ERRCODE = 'SYM01', MESSAGE = E'migration `items_v2` could not mirror this write to public.items_v2, and its on_mirror_error is fail_write, so the write was not made'; END $switchyard$
    "#]]
    .assert_eq(&show(
        "INSERT INTO public.items AS i (name) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING i.id, now() AS at",
        OnMirrorError::FailWrite,
    ));
}

#[test]
fn delete_deletes_the_same_keys_from_the_target() {
    expect_test::expect![[r#"
        tag DELETE {rows} trim Trim { extra: 3, rows: false }
        > /* switchyard mirrored items_v2 */ WITH old AS (SELECT 1), switchyard_w AS (DELETE FROM items WHERE price < (SELECT 1 FROM old) RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_m AS (DELETE FROM "public"."items_v2" AS switchyard_t USING switchyard_w WHERE switchyard_t."id" = switchyard_w.switchyard_0 RETURNING switchyard_t."id" AS switchyard_0), switchyard_u AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'mirror_failed' FROM (SELECT switchyard_0 FROM switchyard_w EXCEPT SELECT switchyard_0 FROM switchyard_m) AS switchyard_k) SELECT * FROM switchyard_w
          instead: /* switchyard mirrored items_v2 */ WITH old AS (SELECT 1), switchyard_w AS (DELETE FROM items WHERE price < (SELECT 1 FROM old) RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_q AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'mirror_failed' FROM (SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
    "#]]
    .assert_eq(&show(
        "WITH old AS (SELECT 1) DELETE FROM items WHERE price < (SELECT 1 FROM old)",
        OnMirrorError::Repair,
    ));
}

#[test]
fn an_update_of_the_key_captures_and_deletes_the_old_keys() {
    expect_test::expect![[r#"
        tag UPDATE {rows} trim Trim { extra: 3, rows: false }
        > WITH switchyard_o AS (SELECT t."id" AS switchyard_0 FROM items AS t WHERE t.price > 2 FOR UPDATE OF t), switchyard_w AS (UPDATE items AS t SET id = id + 100 WHERE (t.price > 2) AND (SELECT count(*) FROM switchyard_o) IS NOT NULL RETURNING t."id" AS switchyard_0, t."name" AS switchyard_1, t."price" AS switchyard_2), switchyard_m AS (INSERT INTO "public"."items_v2" ("id", "title", "price") OVERRIDING SYSTEM VALUE SELECT switchyard_0, switchyard_1, switchyard_2 FROM switchyard_w ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title", "price" = EXCLUDED."price"), switchyard_d AS (DELETE FROM "public"."items_v2" AS switchyard_t WHERE (switchyard_t."id") IN (SELECT switchyard_0 FROM switchyard_o EXCEPT SELECT switchyard_0 FROM switchyard_w)), switchyard_e AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'proxy_unparsed' FROM (SELECT switchyard_0 FROM switchyard_o EXCEPT SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
          instead: WITH switchyard_o AS (SELECT t."id" AS switchyard_0 FROM items AS t WHERE t.price > 2 FOR UPDATE OF t), switchyard_w AS (UPDATE items AS t SET id = id + 100 WHERE (t.price > 2) AND (SELECT count(*) FROM switchyard_o) IS NOT NULL RETURNING t."id" AS switchyard_0, t."name" AS switchyard_1, t."price" AS switchyard_2), switchyard_q AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'mirror_failed' FROM (SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
    "#]]
    .assert_eq(&show("UPDATE items AS t SET id = id + 100 WHERE t.price > 2", OnMirrorError::Repair));
}

#[test]
fn other_tables_and_reads_are_not_mirrored_and_doubtful_writes_are_refused() {
    for sql in [
        "INSERT INTO other VALUES (1)",
        "INSERT INTO other SELECT * FROM items",
        "SELECT * FROM items",
        "UPDATE audit.items SET name = 'x'",
    ] {
        assert_eq!(
            show(sql, OnMirrorError::Repair),
            "not a write of the source\n",
            "{sql}"
        );
    }
    // Several statements run as they came; the guard queues what they wrote.
    assert_eq!(
        show("BEGIN; INSERT INTO items VALUES (1)", OnMirrorError::Repair),
        "not a write of the source\n"
    );
    expect_test::expect![[r#"
        tag UPDATE {rows} trim Trim { extra: 3, rows: false }
        > WITH switchyard_o AS (SELECT items."id" AS switchyard_0 FROM items AS items, other o WHERE o.name = items.name FOR UPDATE OF items), switchyard_w AS (UPDATE items SET id = o.id FROM other o WHERE (o.name = items.name) AND (SELECT count(*) FROM switchyard_o) IS NOT NULL RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_m AS (INSERT INTO "public"."items_v2" ("id", "title", "price") OVERRIDING SYSTEM VALUE SELECT switchyard_0, switchyard_1, switchyard_2 FROM switchyard_w ON CONFLICT ("id") DO UPDATE SET "title" = EXCLUDED."title", "price" = EXCLUDED."price"), switchyard_d AS (DELETE FROM "public"."items_v2" AS switchyard_t WHERE (switchyard_t."id") IN (SELECT switchyard_0 FROM switchyard_o EXCEPT SELECT switchyard_0 FROM switchyard_w)), switchyard_e AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'proxy_unparsed' FROM (SELECT switchyard_0 FROM switchyard_o EXCEPT SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
          instead: WITH switchyard_o AS (SELECT items."id" AS switchyard_0 FROM items AS items, other o WHERE o.name = items.name FOR UPDATE OF items), switchyard_w AS (UPDATE items SET id = o.id FROM other o WHERE (o.name = items.name) AND (SELECT count(*) FROM switchyard_o) IS NOT NULL RETURNING items."id" AS switchyard_0, items."name" AS switchyard_1, items."price" AS switchyard_2), switchyard_q AS (INSERT INTO "public"."switchyard_repair_queue" (migration, key, source) SELECT E'items_v2', jsonb_build_array(switchyard_0::text), 'mirror_failed' FROM (SELECT switchyard_0 FROM switchyard_w) AS switchyard_k) SELECT * FROM switchyard_w
    "#]]
    .assert_eq(&show(
        "UPDATE items SET id = o.id FROM other o WHERE o.name = items.name",
        OnMirrorError::Repair,
    ));
}

#[test]
fn writes_no_trigger_sees_and_ddl_are_refused_unless_allowed() {
    for (sql, label) in [
        ("TRUNCATE items", "truncate"),
        ("TRUNCATE TABLE public.items_v2", "truncate"),
        ("COPY items FROM STDIN", "copy"),
        ("ALTER TABLE items ADD COLUMN x int", "ddl"),
        ("DROP TABLE items_v2", "ddl"),
        ("CREATE INDEX ON items (name)", "ddl"),
        ("INSERT INTO items_v2 (id) VALUES (1)", "target_write"),
        ("UPDATE public.items_v2 SET title = 'x'", "target_write"),
    ] {
        let statements = crate::route::classify::parse(Dialect::Postgres, sql).unwrap();
        let got = refused(
            Dialect::Postgres,
            &statements,
            &map(),
            &facts(OnMirrorError::Repair),
        );
        assert_eq!(got.map(|r| r.label), Some(label), "{sql}");
        let allowed = [
            switchyard_core::config::Unmirrored::Truncate,
            switchyard_core::config::Unmirrored::Copy,
            switchyard_core::config::Unmirrored::Ddl,
            switchyard_core::config::Unmirrored::TargetWrite,
        ];
        let facts = MirrorFacts {
            allowed: &allowed,
            ..facts(OnMirrorError::Repair)
        };
        assert_eq!(
            refused(Dialect::Postgres, &statements, &map(), &facts),
            None,
            "{sql}"
        );
    }
    for sql in [
        "COPY items TO STDOUT",
        "TRUNCATE other",
        "ALTER TABLE other ADD x int",
        "INSERT INTO other SELECT * FROM items_v2",
    ] {
        let statements = crate::route::classify::parse(Dialect::Postgres, sql).unwrap();
        assert_eq!(
            refused(
                Dialect::Postgres,
                &statements,
                &map(),
                &facts(OnMirrorError::Repair)
            ),
            None,
            "{sql}"
        );
    }
    let mysql = crate::route::classify::parse(Dialect::Mysql, "TRUNCATE TABLE ITEMS").unwrap();
    let got = refused(
        Dialect::Mysql,
        &mysql,
        &map(),
        &facts(OnMirrorError::Repair),
    );
    assert_eq!(got.map(|r| r.label), Some("truncate"));
}
