//! Table-driven tests of [`RowSync`]: a mapping, a direction and keys in,
//! the exact statements out, per dialect.

use expect_test::{expect, Expect};

use super::*;
use crate::schema::fixtures::{pair, table};

/// `api(id int, path text, method text)` → `t_sys_api_endpoints(id
/// bigint, endpoint_path varchar(64), http_method text, created_at)`.
fn api(schema: &str) -> Mapping {
    Mapping {
        source: table(
            schema,
            "api",
            &[
                ("id", "integer", true),
                ("path", "text", false),
                ("method", "text", false),
            ],
        ),
        target: table(
            schema,
            "t_sys_api_endpoints",
            &[
                ("id", "bigint", true),
                ("endpoint_path", "character varying(64)", false),
                ("http_method", "text", false),
                ("created_at", "timestamp with time zone", false),
            ],
        ),
        columns: vec![
            pair("id", "id"),
            pair("path", "endpoint_path"),
            pair("method", "http_method"),
        ],
    }
}

/// `lines(line int, tenant text, note text)` keyed by (tenant, line),
/// key order unlike column order, → `lines_v2` with `note` renamed.
fn lines(schema: &str) -> Mapping {
    Mapping {
        source: table(
            schema,
            "lines",
            &[
                ("line", "int(11)", true),
                ("tenant", "varchar(32)", true),
                ("note", "text", false),
            ],
        ),
        target: table(
            schema,
            "lines_v2",
            &[
                ("line", "bigint(20)", true),
                ("tenant", "varchar(64)", true),
                ("remark", "text", false),
            ],
        ),
        columns: vec![
            pair("line", "line"),
            pair("tenant", "tenant"),
            pair("note", "remark"),
        ],
    }
}

/// `tags(tag text, item int)`: every column is a key column.
fn tags() -> Mapping {
    let columns = [("tag", "text", true), ("item", "integer", true)];
    Mapping {
        source: table("public", "tags", &columns),
        target: table("public", "tags_v2", &columns),
        columns: vec![pair("tag", "tag"), pair("item", "item")],
    }
}

fn keys(keys: &[&[&str]]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|k| k.iter().map(|v| v.to_string()).collect())
        .collect()
}

fn check(
    dialect: Dialect,
    mapping: &Mapping,
    key: &[&str],
    direction: Direction,
    values: &[&[&str]],
    want: Expect,
) {
    let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    let sync = RowSync::new(dialect, mapping, &key, direction).unwrap();
    want.assert_eq(&sync.statements(&keys(values)).unwrap().join(";\n"));
}

#[test]
fn postgres_source_to_target() {
    check(
        Dialect::Postgres,
        &api("public"),
        &["id"],
        Direction::SourceToTarget,
        &[&["1"], &["-2"], &["x'1"]],
        expect![[r#"
            DELETE FROM "public"."t_sys_api_endpoints" WHERE "id" IN (1, -2, E'x''1') AND NOT EXISTS (SELECT 1 FROM "public"."api" AS "switchyard_primary" WHERE "switchyard_primary"."id" = "public"."t_sys_api_endpoints"."id");
            INSERT INTO "public"."t_sys_api_endpoints" ("id", "endpoint_path", "http_method") OVERRIDING SYSTEM VALUE SELECT "switchyard_primary"."id", "switchyard_primary"."path", "switchyard_primary"."method" FROM "public"."api" AS "switchyard_primary" WHERE "switchyard_primary"."id" IN (1, -2, E'x''1') ORDER BY "switchyard_primary"."id" FOR SHARE ON CONFLICT ("id") DO UPDATE SET "endpoint_path" = EXCLUDED."endpoint_path", "http_method" = EXCLUDED."http_method""#]],
    );
}

#[test]
fn postgres_target_to_source() {
    check(
        Dialect::Postgres,
        &api("public"),
        &["id"],
        Direction::TargetToSource,
        &[&["1"]],
        expect![[r#"
            DELETE FROM "public"."api" WHERE "id" IN (1) AND NOT EXISTS (SELECT 1 FROM "public"."t_sys_api_endpoints" AS "switchyard_primary" WHERE "switchyard_primary"."id" = "public"."api"."id");
            INSERT INTO "public"."api" ("id", "path", "method") OVERRIDING SYSTEM VALUE SELECT "switchyard_primary"."id", "switchyard_primary"."endpoint_path", "switchyard_primary"."http_method" FROM "public"."t_sys_api_endpoints" AS "switchyard_primary" WHERE "switchyard_primary"."id" IN (1) ORDER BY "switchyard_primary"."id" FOR SHARE ON CONFLICT ("id") DO UPDATE SET "path" = EXCLUDED."path", "method" = EXCLUDED."method""#]],
    );
}

#[test]
fn postgres_composite_text_key() {
    check(
        Dialect::Postgres,
        &lines("app"),
        &["tenant", "line"],
        Direction::SourceToTarget,
        &[&["007", "1"], &[r"o'brien\", "2"]],
        expect![[r#"
            DELETE FROM "app"."lines_v2" WHERE ("tenant", "line") IN ((E'007', 1), (E'o''brien\\', 2)) AND NOT EXISTS (SELECT 1 FROM "app"."lines" AS "switchyard_primary" WHERE "switchyard_primary"."tenant" = "app"."lines_v2"."tenant" AND "switchyard_primary"."line" = "app"."lines_v2"."line");
            INSERT INTO "app"."lines_v2" ("line", "tenant", "remark") OVERRIDING SYSTEM VALUE SELECT "switchyard_primary"."line", "switchyard_primary"."tenant", "switchyard_primary"."note" FROM "app"."lines" AS "switchyard_primary" WHERE ("switchyard_primary"."tenant", "switchyard_primary"."line") IN ((E'007', 1), (E'o''brien\\', 2)) ORDER BY "switchyard_primary"."tenant", "switchyard_primary"."line" FOR SHARE ON CONFLICT ("tenant", "line") DO UPDATE SET "remark" = EXCLUDED."remark""#]],
    );
}

#[test]
fn postgres_every_column_a_key() {
    check(
        Dialect::Postgres,
        &tags(),
        &["tag", "item"],
        Direction::SourceToTarget,
        &[&["red", "1"]],
        expect![[r#"
            DELETE FROM "public"."tags_v2" WHERE ("tag", "item") IN ((E'red', 1)) AND NOT EXISTS (SELECT 1 FROM "public"."tags" AS "switchyard_primary" WHERE "switchyard_primary"."tag" = "public"."tags_v2"."tag" AND "switchyard_primary"."item" = "public"."tags_v2"."item");
            INSERT INTO "public"."tags_v2" ("tag", "item") OVERRIDING SYSTEM VALUE SELECT "switchyard_primary"."tag", "switchyard_primary"."item" FROM "public"."tags" AS "switchyard_primary" WHERE ("switchyard_primary"."tag", "switchyard_primary"."item") IN ((E'red', 1)) ORDER BY "switchyard_primary"."tag", "switchyard_primary"."item" FOR SHARE ON CONFLICT ("tag", "item") DO NOTHING"#]],
    );
}

#[test]
fn mysql_source_to_target() {
    check(
        Dialect::Mysql,
        &lines("app"),
        &["tenant", "line"],
        Direction::SourceToTarget,
        &[&["007", "1"], &["é\\", "2"], &["o'brien", "-3"]],
        expect![[r#"
            DELETE FROM `app`.`lines_v2` WHERE (`tenant`, `line`) IN (('007', 1), (_utf8mb4 X'C3A95C', 2), ('o''brien', -3)) AND NOT EXISTS (SELECT 1 FROM `app`.`lines` AS `switchyard_primary` WHERE `switchyard_primary`.`tenant` = `app`.`lines_v2`.`tenant` AND `switchyard_primary`.`line` = `app`.`lines_v2`.`line`);
            INSERT INTO `app`.`lines_v2` (`line`, `tenant`, `remark`) SELECT `switchyard_primary`.`line`, `switchyard_primary`.`tenant`, `switchyard_primary`.`note` FROM `app`.`lines` AS `switchyard_primary` WHERE (`switchyard_primary`.`tenant`, `switchyard_primary`.`line`) IN (('007', 1), (_utf8mb4 X'C3A95C', 2), ('o''brien', -3)) ORDER BY `switchyard_primary`.`tenant`, `switchyard_primary`.`line` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `line` = VALUES(`line`), `tenant` = VALUES(`tenant`), `remark` = VALUES(`remark`)"#]],
    );
}

#[test]
fn mysql_target_to_source() {
    check(
        Dialect::Mysql,
        &api("app"),
        &["ID"],
        Direction::TargetToSource,
        &[&["1"], &["2"]],
        expect![[r#"
            DELETE FROM `app`.`api` WHERE `id` IN (1, 2) AND NOT EXISTS (SELECT 1 FROM `app`.`t_sys_api_endpoints` AS `switchyard_primary` WHERE `switchyard_primary`.`id` = `app`.`api`.`id`);
            INSERT INTO `app`.`api` (`id`, `path`, `method`) SELECT `switchyard_primary`.`id`, `switchyard_primary`.`endpoint_path`, `switchyard_primary`.`http_method` FROM `app`.`t_sys_api_endpoints` AS `switchyard_primary` WHERE `switchyard_primary`.`id` IN (1, 2) ORDER BY `switchyard_primary`.`id` LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `path` = VALUES(`path`), `method` = VALUES(`method`)"#]],
    );
}

#[test]
fn postgres_cte_fragments() {
    let key = ["tenant".to_string(), "line".to_string()];
    let sync = RowSync::new(
        Dialect::Postgres,
        &lines("app"),
        &key,
        Direction::SourceToTarget,
    )
    .unwrap();
    expect![[r#"INSERT INTO "app"."lines_v2" ("line", "tenant", "remark") OVERRIDING SYSTEM VALUE SELECT "line", "tenant", "note" FROM "w" ON CONFLICT ("tenant", "line") DO UPDATE SET "remark" = EXCLUDED."remark""#]].assert_eq(&sync.upsert_from("w").unwrap());
    expect![[r#"DELETE FROM "app"."lines_v2" USING "d" WHERE "app"."lines_v2"."tenant" = "d"."tenant" AND "app"."lines_v2"."line" = "d"."line""#]].assert_eq(&sync.delete_using("d").unwrap());
    let sync = RowSync::new(
        Dialect::Mysql,
        &lines("app"),
        &key,
        Direction::SourceToTarget,
    )
    .unwrap();
    assert_eq!(sync.upsert_from("w"), None);
    assert_eq!(sync.delete_using("d"), None);
}

#[test]
fn no_keys_no_statements() {
    let key = ["id".to_string()];
    let sync = RowSync::new(Dialect::Mysql, &api("app"), &key, Direction::SourceToTarget).unwrap();
    assert_eq!(sync.statements(&[]), Ok(Vec::new()));
}

#[test]
fn refusals() {
    let mapping = lines("app");
    let new = |key: &[&str]| {
        let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
        RowSync::new(Dialect::Postgres, &mapping, &key, Direction::SourceToTarget)
    };
    expect!["`app.lines`: a row-image sync needs the primary-key columns; pass the plan's `source.primary_key`"].assert_eq(&new(&[]).unwrap_err().to_string());
    expect!["key column `lien` is not in `app.lines`; columns are: line, tenant, note; correct `source.primary_key`"].assert_eq(&new(&["tenant", "lien"]).unwrap_err().to_string());
    let sync = new(&["tenant", "line"]).unwrap();
    expect!["`app.lines`: a key has 1 value(s) but the key has 2 column(s) (tenant, line); give one value per key column, in that order"].assert_eq(
        &sync
            .statements(&keys(&[&["acme", "1"], &["acme"]]))
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn across_servers_reads_images_then_upserts_them_and_deletes_the_absent() {
    let key = vec!["id".to_string()];
    for (dialect, want_read, want_write) in [
        (
            Dialect::Postgres,
            expect![[r#"SELECT "switchyard_primary"."id"::text, "switchyard_primary"."path"::text, "switchyard_primary"."method"::text FROM "app"."api" AS "switchyard_primary" WHERE "switchyard_primary"."id" IN (1, 2) ORDER BY "switchyard_primary"."id" FOR SHARE"#]],
            expect![[r#"
                DELETE FROM "app"."t_sys_api_endpoints" WHERE "id" IN (1, 2) AND ("id") NOT IN ((1));
                INSERT INTO "app"."t_sys_api_endpoints" ("id", "endpoint_path", "http_method") OVERRIDING SYSTEM VALUE VALUES (1, '/a', NULL) ON CONFLICT ("id") DO UPDATE SET "endpoint_path" = EXCLUDED."endpoint_path", "http_method" = EXCLUDED."http_method""#]],
        ),
        (
            Dialect::Mysql,
            expect!["SELECT `switchyard_primary`.`id`, `switchyard_primary`.`path`, `switchyard_primary`.`method` FROM `app`.`api` AS `switchyard_primary` WHERE `switchyard_primary`.`id` IN (1, 2) ORDER BY `switchyard_primary`.`id` LOCK IN SHARE MODE"],
            expect![[r#"
                DELETE FROM `app`.`t_sys_api_endpoints` WHERE `id` IN (1, 2) AND (`id`) NOT IN ((1));
                INSERT INTO `app`.`t_sys_api_endpoints` (`id`, `endpoint_path`, `http_method`) VALUES (1, '/a', NULL) ON DUPLICATE KEY UPDATE `id` = VALUES(`id`), `endpoint_path` = VALUES(`endpoint_path`), `http_method` = VALUES(`http_method`)"#]],
        ),
    ] {
        let sync = RowSync::new(dialect, &api("app"), &key, Direction::SourceToTarget).unwrap();
        want_read.assert_eq(&sync.read_images(&keys(&[&["1"], &["2"]])).unwrap());
        let images = vec![vec!["1".to_string(), "'/a'".to_string(), "NULL".to_string()]];
        want_write.assert_eq(
            &sync
                .write_images(&keys(&[&["1"], &["2"]]), &images)
                .unwrap()
                .join(";\n"),
        );
        // Nothing left on the primary: only the delete.
        assert_eq!(sync.write_images(&keys(&[&["2"]]), &[]).unwrap().len(), 1);
    }
}
