//! Table-driven tests of [`BackfillSql`]: a mapping and keys in, the
//! exact statements out, per dialect.

use expect_test::{expect, Expect};

use super::*;
use crate::schema::fixtures::{pair, table};

/// `api(id int, path text)` → `t_sys_api_endpoints(id bigint,
/// endpoint_path varchar(64))`.
fn api(schema: &str) -> Mapping {
    Mapping {
        source: table(
            schema,
            "api",
            &[("id", "integer", true), ("path", "text", false)],
        ),
        target: table(
            schema,
            "t_sys_api_endpoints",
            &[
                ("id", "bigint", true),
                ("endpoint_path", "varchar(64)", false),
            ],
        ),
        columns: vec![pair("id", "id"), pair("path", "endpoint_path")],
    }
}

/// A composite key of a text and a number column: `events(tenant text,
/// seq bigint, body text)` → `events_v2(tenant_id, seq, payload)`.
fn events(schema: &str) -> Mapping {
    Mapping {
        source: table(
            schema,
            "events",
            &[
                ("tenant", "text", true),
                ("seq", "bigint", true),
                ("body", "text", false),
            ],
        ),
        target: table(
            schema,
            "events_v2",
            &[
                ("tenant_id", "text", true),
                ("seq", "bigint", true),
                ("payload", "text", false),
            ],
        ),
        columns: vec![
            pair("tenant", "tenant_id"),
            pair("seq", "seq"),
            pair("body", "payload"),
        ],
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every statement of one migration, labelled, one per line.
fn render(sql: &BackfillSql, lo: &[&str], hi: &[&str]) -> String {
    let (lo, hi) = (keys(lo), keys(hi));
    let checkpoint = Checkpoint {
        last_key: Some(hi.clone()),
        rows_copied: 2000,
        chunk_size: 1000,
        done: false,
    };
    let lines = [
        ("first bound", sql.upper_bound(None, 1000).unwrap()),
        ("next bound", sql.upper_bound(Some(&lo), 500).unwrap()),
        ("first copy", sql.copy(None, &hi).unwrap()),
        ("next copy", sql.copy(Some(&lo), &hi).unwrap()),
        ("load", sql.load_checkpoint()),
        ("save", sql.save_checkpoint(&checkpoint).unwrap()),
        (
            "save empty",
            sql.save_checkpoint(&Checkpoint::default()).unwrap(),
        ),
        ("estimate", sql.estimate()),
        ("count", sql.count()),
    ];
    lines
        .iter()
        .map(|(label, sql)| format!("{label}: {sql}\n"))
        .collect()
}

fn check(dialect: Dialect, mapping: Mapping, key: &[&str], lo: &[&str], hi: &[&str], want: Expect) {
    let sql = BackfillSql::new(dialect, "api_v2", &mapping, &keys(key)).unwrap();
    want.assert_eq(&render(&sql, lo, hi));
}

#[test]
fn postgres_one_column_key() {
    check(
        Dialect::Postgres,
        api("public"),
        &["id"],
        &["100"],
        &["1100"],
        expect![[r#"
            first bound: SELECT "id"::text, count(*) OVER () FROM (SELECT "id" FROM "public"."api" ORDER BY "id" LIMIT 1000) AS "switchyard_chunk" ORDER BY "switchyard_chunk"."id" DESC LIMIT 1
            next bound: SELECT "id"::text, count(*) OVER () FROM (SELECT "id" FROM "public"."api" WHERE "id" > 100 ORDER BY "id" LIMIT 500) AS "switchyard_chunk" ORDER BY "switchyard_chunk"."id" DESC LIMIT 1
            first copy: INSERT INTO "public"."t_sys_api_endpoints" ("id", "endpoint_path") OVERRIDING SYSTEM VALUE SELECT "switchyard_source"."id", "switchyard_source"."path" FROM "public"."api" AS "switchyard_source" WHERE "switchyard_source"."id" <= 1100 ORDER BY "switchyard_source"."id" FOR SHARE ON CONFLICT ("id") DO NOTHING
            next copy: INSERT INTO "public"."t_sys_api_endpoints" ("id", "endpoint_path") OVERRIDING SYSTEM VALUE SELECT "switchyard_source"."id", "switchyard_source"."path" FROM "public"."api" AS "switchyard_source" WHERE "switchyard_source"."id" > 100 AND "switchyard_source"."id" <= 1100 ORDER BY "switchyard_source"."id" FOR SHARE ON CONFLICT ("id") DO NOTHING
            load: SELECT last_key::text, rows_copied, chunk_size, done FROM "public"."switchyard_backfill" WHERE migration = E'api_v2'
            save: INSERT INTO "public"."switchyard_backfill" (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES (E'api_v2', E'["1100"]'::jsonb, 2000, 1000, false, now()) ON CONFLICT (migration) DO UPDATE SET last_key = EXCLUDED.last_key, rows_copied = EXCLUDED.rows_copied, chunk_size = EXCLUDED.chunk_size, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at
            save empty: INSERT INTO "public"."switchyard_backfill" (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES (E'api_v2', NULL::jsonb, 0, 0, false, now()) ON CONFLICT (migration) DO UPDATE SET last_key = EXCLUDED.last_key, rows_copied = EXCLUDED.rows_copied, chunk_size = EXCLUDED.chunk_size, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at
            estimate: SELECT reltuples::bigint FROM pg_class WHERE oid = E'"public"."api"'::regclass
            count: SELECT count(*) FROM "public"."api"
        "#]],
    );
}

#[test]
fn postgres_composite_key_compares_row_values() {
    check(
        Dialect::Postgres,
        events("app"),
        &["tenant", "seq"],
        &["acme", "7"],
        &["o'brien", "-3"],
        expect![[r#"
            first bound: SELECT "tenant"::text, "seq"::text, count(*) OVER () FROM (SELECT "tenant", "seq" FROM "app"."events" ORDER BY "tenant", "seq" LIMIT 1000) AS "switchyard_chunk" ORDER BY "switchyard_chunk"."tenant" DESC, "switchyard_chunk"."seq" DESC LIMIT 1
            next bound: SELECT "tenant"::text, "seq"::text, count(*) OVER () FROM (SELECT "tenant", "seq" FROM "app"."events" WHERE ("tenant", "seq") > (E'acme', 7) ORDER BY "tenant", "seq" LIMIT 500) AS "switchyard_chunk" ORDER BY "switchyard_chunk"."tenant" DESC, "switchyard_chunk"."seq" DESC LIMIT 1
            first copy: INSERT INTO "app"."events_v2" ("tenant_id", "seq", "payload") OVERRIDING SYSTEM VALUE SELECT "switchyard_source"."tenant", "switchyard_source"."seq", "switchyard_source"."body" FROM "app"."events" AS "switchyard_source" WHERE ("switchyard_source"."tenant", "switchyard_source"."seq") <= (E'o''brien', -3) ORDER BY "switchyard_source"."tenant", "switchyard_source"."seq" FOR SHARE ON CONFLICT ("tenant_id", "seq") DO NOTHING
            next copy: INSERT INTO "app"."events_v2" ("tenant_id", "seq", "payload") OVERRIDING SYSTEM VALUE SELECT "switchyard_source"."tenant", "switchyard_source"."seq", "switchyard_source"."body" FROM "app"."events" AS "switchyard_source" WHERE ("switchyard_source"."tenant", "switchyard_source"."seq") > (E'acme', 7) AND ("switchyard_source"."tenant", "switchyard_source"."seq") <= (E'o''brien', -3) ORDER BY "switchyard_source"."tenant", "switchyard_source"."seq" FOR SHARE ON CONFLICT ("tenant_id", "seq") DO NOTHING
            load: SELECT last_key::text, rows_copied, chunk_size, done FROM "app"."switchyard_backfill" WHERE migration = E'api_v2'
            save: INSERT INTO "app"."switchyard_backfill" (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES (E'api_v2', E'["o''brien","-3"]'::jsonb, 2000, 1000, false, now()) ON CONFLICT (migration) DO UPDATE SET last_key = EXCLUDED.last_key, rows_copied = EXCLUDED.rows_copied, chunk_size = EXCLUDED.chunk_size, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at
            save empty: INSERT INTO "app"."switchyard_backfill" (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES (E'api_v2', NULL::jsonb, 0, 0, false, now()) ON CONFLICT (migration) DO UPDATE SET last_key = EXCLUDED.last_key, rows_copied = EXCLUDED.rows_copied, chunk_size = EXCLUDED.chunk_size, done = EXCLUDED.done, updated_at = EXCLUDED.updated_at
            estimate: SELECT reltuples::bigint FROM pg_class WHERE oid = E'"app"."events"'::regclass
            count: SELECT count(*) FROM "app"."events"
        "#]],
    );
}

#[test]
fn mysql_one_column_key() {
    check(
        Dialect::Mysql,
        api("shop"),
        &["id"],
        &["100"],
        &["1100"],
        expect![[r#"
            first bound: SELECT `id`, count(*) OVER () FROM (SELECT `id` FROM `shop`.`api` ORDER BY `id` LIMIT 1000) AS `switchyard_chunk` ORDER BY `switchyard_chunk`.`id` DESC LIMIT 1
            next bound: SELECT `id`, count(*) OVER () FROM (SELECT `id` FROM `shop`.`api` WHERE `id` > 100 ORDER BY `id` LIMIT 500) AS `switchyard_chunk` ORDER BY `switchyard_chunk`.`id` DESC LIMIT 1
            first copy: INSERT INTO `shop`.`t_sys_api_endpoints` (`id`, `endpoint_path`) SELECT `switchyard_source`.`id`, `switchyard_source`.`path` FROM `shop`.`api` AS `switchyard_source` WHERE `switchyard_source`.`id` <= 1100 ORDER BY `switchyard_source`.`id` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `shop`.`t_sys_api_endpoints`.`id` = `shop`.`t_sys_api_endpoints`.`id`
            next copy: INSERT INTO `shop`.`t_sys_api_endpoints` (`id`, `endpoint_path`) SELECT `switchyard_source`.`id`, `switchyard_source`.`path` FROM `shop`.`api` AS `switchyard_source` WHERE `switchyard_source`.`id` > 100 AND `switchyard_source`.`id` <= 1100 ORDER BY `switchyard_source`.`id` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `shop`.`t_sys_api_endpoints`.`id` = `shop`.`t_sys_api_endpoints`.`id`
            load: SELECT last_key, rows_copied, chunk_size, done FROM `shop`.`switchyard_backfill` WHERE migration = 'api_v2'
            save: INSERT INTO `shop`.`switchyard_backfill` (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES ('api_v2', '["1100"]', 2000, 1000, 0, CURRENT_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), rows_copied = VALUES(rows_copied), chunk_size = VALUES(chunk_size), done = VALUES(done), updated_at = VALUES(updated_at)
            save empty: INSERT INTO `shop`.`switchyard_backfill` (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES ('api_v2', NULL, 0, 0, 0, CURRENT_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), rows_copied = VALUES(rows_copied), chunk_size = VALUES(chunk_size), done = VALUES(done), updated_at = VALUES(updated_at)
            estimate: SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'api'
            count: SELECT count(*) FROM `shop`.`api`
        "#]],
    );
}

#[test]
fn mysql_composite_key_is_spelled_out() {
    check(
        Dialect::Mysql,
        events("shop"),
        &["tenant", "seq"],
        &["acme", "7"],
        &["o\\brien", "-3"],
        expect![[r#"
            first bound: SELECT `tenant`, `seq`, count(*) OVER () FROM (SELECT `tenant`, `seq` FROM `shop`.`events` ORDER BY `tenant`, `seq` LIMIT 1000) AS `switchyard_chunk` ORDER BY `switchyard_chunk`.`tenant` DESC, `switchyard_chunk`.`seq` DESC LIMIT 1
            next bound: SELECT `tenant`, `seq`, count(*) OVER () FROM (SELECT `tenant`, `seq` FROM `shop`.`events` WHERE `tenant` >= 'acme' AND (`tenant` > 'acme' OR (`tenant` = 'acme' AND (`seq` > 7))) ORDER BY `tenant`, `seq` LIMIT 500) AS `switchyard_chunk` ORDER BY `switchyard_chunk`.`tenant` DESC, `switchyard_chunk`.`seq` DESC LIMIT 1
            first copy: INSERT INTO `shop`.`events_v2` (`tenant_id`, `seq`, `payload`) SELECT `switchyard_source`.`tenant`, `switchyard_source`.`seq`, `switchyard_source`.`body` FROM `shop`.`events` AS `switchyard_source` WHERE `switchyard_source`.`tenant` <= _utf8mb4 X'6F5C627269656E' AND (`switchyard_source`.`tenant` < _utf8mb4 X'6F5C627269656E' OR (`switchyard_source`.`tenant` = _utf8mb4 X'6F5C627269656E' AND (`switchyard_source`.`seq` <= -3))) ORDER BY `switchyard_source`.`tenant`, `switchyard_source`.`seq` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `shop`.`events_v2`.`tenant_id` = `shop`.`events_v2`.`tenant_id`
            next copy: INSERT INTO `shop`.`events_v2` (`tenant_id`, `seq`, `payload`) SELECT `switchyard_source`.`tenant`, `switchyard_source`.`seq`, `switchyard_source`.`body` FROM `shop`.`events` AS `switchyard_source` WHERE `switchyard_source`.`tenant` >= 'acme' AND (`switchyard_source`.`tenant` > 'acme' OR (`switchyard_source`.`tenant` = 'acme' AND (`switchyard_source`.`seq` > 7))) AND `switchyard_source`.`tenant` <= _utf8mb4 X'6F5C627269656E' AND (`switchyard_source`.`tenant` < _utf8mb4 X'6F5C627269656E' OR (`switchyard_source`.`tenant` = _utf8mb4 X'6F5C627269656E' AND (`switchyard_source`.`seq` <= -3))) ORDER BY `switchyard_source`.`tenant`, `switchyard_source`.`seq` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `shop`.`events_v2`.`tenant_id` = `shop`.`events_v2`.`tenant_id`
            load: SELECT last_key, rows_copied, chunk_size, done FROM `shop`.`switchyard_backfill` WHERE migration = 'api_v2'
            save: INSERT INTO `shop`.`switchyard_backfill` (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES ('api_v2', _utf8mb4 X'5B226F5C5C627269656E222C222D33225D', 2000, 1000, 0, CURRENT_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), rows_copied = VALUES(rows_copied), chunk_size = VALUES(chunk_size), done = VALUES(done), updated_at = VALUES(updated_at)
            save empty: INSERT INTO `shop`.`switchyard_backfill` (migration, last_key, rows_copied, chunk_size, done, updated_at) VALUES ('api_v2', NULL, 0, 0, 0, CURRENT_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), rows_copied = VALUES(rows_copied), chunk_size = VALUES(chunk_size), done = VALUES(done), updated_at = VALUES(updated_at)
            estimate: SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'events'
            count: SELECT count(*) FROM `shop`.`events`
        "#]],
    );
}

#[test]
fn a_number_key_that_is_not_an_integer_is_quoted() {
    let sql = BackfillSql::new(Dialect::Postgres, "m", &api("public"), &keys(&["id"])).unwrap();
    expect![[r#"INSERT INTO "public"."t_sys_api_endpoints" ("id", "endpoint_path") OVERRIDING SYSTEM VALUE SELECT "switchyard_source"."id", "switchyard_source"."path" FROM "public"."api" AS "switchyard_source" WHERE "switchyard_source"."id" <= E'1e3' ORDER BY "switchyard_source"."id" FOR SHARE ON CONFLICT ("id") DO NOTHING"#]].assert_eq(&sql.copy(None, &keys(&["1e3"])).unwrap());
}

#[test]
fn setup_statements() {
    let all = [
        create_table(Dialect::Postgres, "public"),
        create_table(Dialect::Mysql, "shop"),
        session(Dialect::Postgres, 2, None).join("; "),
        session(Dialect::Postgres, 2, Some("UTC")).join("; "),
        session(Dialect::Mysql, 3, Some("+00:00")).join("; "),
    ];
    expect![[r#"
        CREATE TABLE IF NOT EXISTS "public"."switchyard_backfill" (migration text PRIMARY KEY, last_key jsonb, rows_copied bigint NOT NULL DEFAULT 0, chunk_size bigint NOT NULL, done boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())
        CREATE TABLE IF NOT EXISTS `shop`.`switchyard_backfill` (migration VARCHAR(191) NOT NULL PRIMARY KEY, last_key JSON NULL, rows_copied BIGINT UNSIGNED NOT NULL DEFAULT 0, chunk_size BIGINT UNSIGNED NOT NULL, done BOOLEAN NOT NULL DEFAULT FALSE, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        SET lock_timeout = '2s'
        SET lock_timeout = '2s'; SET TIME ZONE E'UTC'
        SET SESSION innodb_lock_wait_timeout = 3; SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES'); SET time_zone = '+00:00'"#]].assert_eq(&all.join("\n"));
}

#[test]
fn refusals() {
    let no_key = BackfillSql::new(Dialect::Postgres, "m", &api("public"), &[]).unwrap_err();
    let unknown =
        BackfillSql::new(Dialect::Mysql, "m", &api("shop"), &keys(&["nope"])).unwrap_err();
    let sql = BackfillSql::new(
        Dialect::Mysql,
        "m",
        &events("shop"),
        &keys(&["tenant", "seq"]),
    )
    .unwrap();
    let arity = sql.copy(None, &keys(&["acme"])).unwrap_err();
    let all = [no_key, unknown, arity].map(|e| e.to_string());
    expect![[r#"
        `public.api`: a row-image sync needs the primary-key columns; pass the plan's `source.primary_key`
        key column `nope` is not in `shop.api`; columns are: id, path; correct `source.primary_key`
        `shop.events`: a key has 1 value(s) but the key has 2 column(s) (tenant, seq); give one value per key column, in that order"#]].assert_eq(&all.join("\n"));
}

#[test]
fn checkpoint_keys_round_trip() {
    let cases = [
        (r#"["1"]"#, Ok(keys(&["1"]))),
        (r#"["a\"b", "-2"]"#, Ok(keys(&["a\"b", "-2"]))),
        ("[1]", Err(())),
        ("nope", Err(())),
    ];
    for (text, want) in cases {
        assert_eq!(Checkpoint::parse_key(text).map_err(|_| ()), want, "{text}");
    }
}
