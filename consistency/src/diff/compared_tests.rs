//! The statements a diff runs, per dialect, for a mapping with a renamed,
//! a retyped and a JSON column and a composite key.

use expect_test::expect;
use switchyard_core::schema::{Column, ColumnPair, Mapping, TableSchema};
use switchyard_core::sql::Dialect;

use super::*;

fn column(name: &str, type_name: &str, key: bool) -> Column {
    Column {
        name: name.to_string(),
        type_name: type_name.to_string(),
        base_type: None,
        type_oid: 0,
        typmod: -1,
        nullable: !key,
        position: 0,
        key,
    }
}

fn table(schema: &str, name: &str, columns: Vec<Column>) -> TableSchema {
    TableSchema {
        name: format!("{schema}.{name}"),
        schema: schema.to_string(),
        table: name.to_string(),
        oid: 0,
        columns,
        triggers: Vec::new(),
    }
}

fn mapping(dialect: Dialect) -> Mapping {
    let (amount, wide, doc) = match dialect {
        Dialect::Postgres => ("numeric(10,2)", "numeric(14,4)", "json"),
        Dialect::Mysql => ("decimal(10,2)", "decimal(14,4)", "json"),
    };
    Mapping {
        source: table(
            "app",
            "api",
            vec![
                column("tenant", "text", true),
                column("id", "integer", true),
                column("path", "text", false),
                column("amount", amount, false),
                column("doc", doc, false),
            ],
        ),
        target: table(
            "app",
            "endpoints",
            vec![
                column("tenant", "text", true),
                column("id", "integer", true),
                column("endpoint_path", "text", false),
                column("amount", wide, false),
                column("doc", doc, false),
            ],
        ),
        columns: vec![
            ColumnPair {
                source: "tenant".into(),
                target: "tenant".into(),
                cast: None,
            },
            ColumnPair {
                source: "id".into(),
                target: "id".into(),
                cast: None,
            },
            ColumnPair {
                source: "path".into(),
                target: "endpoint_path".into(),
                cast: None,
            },
            ColumnPair {
                source: "amount".into(),
                target: "amount".into(),
                cast: Some(amount.into()),
            },
            ColumnPair {
                source: "doc".into(),
                target: "doc".into(),
                cast: None,
            },
        ],
    }
}

fn compared(dialect: Dialect) -> Compared {
    Compared::new(
        dialect,
        &mapping(dialect),
        &["tenant".into(), "id".into()],
        None,
    )
    .unwrap()
}

fn range() -> Range {
    Range {
        after: Some(vec!["acme".into(), "10".into()]),
        through: Some(vec!["acme".into(), "2'0".into()]),
    }
}

#[test]
fn postgres_statements() {
    let c = compared(Dialect::Postgres);
    expect![[r#"SELECT (SELECT count(*) || ':' || coalesce(sum(hash_record_extended(ROW(s."tenant", s."id", s."path", (s."amount"::numeric(14,4))::text, ((s."doc")::jsonb)::text), 0)), 0) FROM "app"."api" s WHERE (s."tenant" COLLATE "C", s."id") > (E'acme' COLLATE "C", E'10') AND (s."tenant" COLLATE "C", s."id") <= (E'acme' COLLATE "C", E'2''0')) AS source, (SELECT count(*) || ':' || coalesce(sum(hash_record_extended(ROW(t."tenant", t."id", t."endpoint_path", (t."amount")::text, (t."doc"::jsonb)::text), 0)), 0) FROM "app"."endpoints" t WHERE (t."tenant" COLLATE "C", t."id") > (E'acme' COLLATE "C", E'10') AND (t."tenant" COLLATE "C", t."id") <= (E'acme' COLLATE "C", E'2''0')) AS target"#]]
    .assert_eq(&c.checksum(&range()));
    expect![[r#"SELECT s."tenant"::text AS k0, s."id"::text AS k1 FROM "app"."api" s ORDER BY s."tenant" COLLATE "C", s."id" LIMIT 1 OFFSET 999"#]]
        .assert_eq(&c.next_bound(None, 1000));
    expect![[r#"SELECT 's'::text, s."tenant"::text AS k0, s."id"::text AS k1, (s."tenant")::text, (s."id")::text, (s."path")::text, (s."amount"::numeric(14,4))::text, ((s."doc")::jsonb)::text FROM "app"."api" s WHERE (s."tenant" COLLATE "C", s."id") > (E'acme' COLLATE "C", E'10') UNION ALL SELECT 't'::text, t."tenant"::text AS k0, t."id"::text AS k1, (t."tenant")::text, (t."id")::text, (t."endpoint_path")::text, (t."amount")::text, (t."doc"::jsonb)::text FROM "app"."endpoints" t WHERE (t."tenant" COLLATE "C", t."id") > (E'acme' COLLATE "C", E'10')"#]]
        .assert_eq(&c.rows(&Range { after: Some(vec!["acme".into(), "10".into()]), through: None }));
}

#[test]
fn mysql_statements() {
    let c = compared(Dialect::Mysql);
    expect!["SELECT (SELECT CONCAT(COUNT(*), ':', IFNULL(SUM(CAST(CONV(LEFT(MD5(CONCAT(IFNULL(CONCAT(LENGTH(s.`tenant`), ':', s.`tenant`), '~'), IFNULL(CONCAT(LENGTH(s.`id`), ':', s.`id`), '~'), IFNULL(CONCAT(LENGTH(s.`path`), ':', s.`path`), '~'), IFNULL(CONCAT(LENGTH(CAST(s.`amount` AS DECIMAL(14,4))), ':', CAST(s.`amount` AS DECIMAL(14,4))), '~'), IFNULL(CONCAT(LENGTH(JSON_NORMALIZE(s.`doc`)), ':', JSON_NORMALIZE(s.`doc`)), '~'))), 16), 16, 10) AS UNSIGNED)), 0)) FROM `app`.`api` s WHERE (CAST(s.`tenant` AS BINARY), s.`id`) > (CAST('acme' AS BINARY), '10') AND (CAST(s.`tenant` AS BINARY), s.`id`) <= (CAST('acme' AS BINARY), '2''0')) AS source, (SELECT CONCAT(COUNT(*), ':', IFNULL(SUM(CAST(CONV(LEFT(MD5(CONCAT(IFNULL(CONCAT(LENGTH(t.`tenant`), ':', t.`tenant`), '~'), IFNULL(CONCAT(LENGTH(t.`id`), ':', t.`id`), '~'), IFNULL(CONCAT(LENGTH(t.`endpoint_path`), ':', t.`endpoint_path`), '~'), IFNULL(CONCAT(LENGTH(t.`amount`), ':', t.`amount`), '~'), IFNULL(CONCAT(LENGTH(JSON_NORMALIZE(t.`doc`)), ':', JSON_NORMALIZE(t.`doc`)), '~'))), 16), 16, 10) AS UNSIGNED)), 0)) FROM `app`.`endpoints` t WHERE (CAST(t.`tenant` AS BINARY), t.`id`) > (CAST('acme' AS BINARY), '10') AND (CAST(t.`tenant` AS BINARY), t.`id`) <= (CAST('acme' AS BINARY), '2''0')) AS target"]
        .assert_eq(&c.checksum(&range()));
}
