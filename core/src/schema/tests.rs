//! Table-driven tests of [`check`]: the happy paths and every refusal,
//! with the whole message a user reads.

use std::path::Path;

use crate::config::{Config, Migration};

use super::*;

/// A migration `api_v2` from `public.api` keyed by `id`, with `extra`
/// lines (`columns:`, `time_zone:`) added to its plan.
fn migration(extra: &str) -> Migration {
    let yaml = format!(
        "backends:\n  pg: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres }}\n\
         migrations:\n  - id: api_v2\n    backend: pg\n\
         \x20   source: {{ table: api, primary_key: [id] }}\n\
         \x20   target: {{ table: t_sys_api_endpoints }}\n{}",
        extra
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let config = Config::from_yaml(&yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("test config: {e}"));
    config.migrations[0].clone()
}

/// A table from (name, type) pairs; the first column is the key.
fn table(name: &str, columns: &[(&str, &str)]) -> TableSchema {
    let (schema, table) = name.split_once('.').unwrap_or(("public", name));
    TableSchema {
        name: name.to_string(),
        schema: schema.to_string(),
        table: table.to_string(),
        oid: 0,
        triggers: Vec::new(),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (name, type_name))| Column {
                name: name.to_string(),
                type_name: type_name.to_string(),
                base_type: None,
                type_oid: 0,
                typmod: -1,
                nullable: i != 0,
                position: i as i16 + 1,
                key: i == 0,
            })
            .collect(),
    }
}

fn api() -> TableSchema {
    table(
        "public.api",
        &[("id", "integer"), ("path", "text"), ("method", "text")],
    )
}

fn endpoints() -> TableSchema {
    table(
        "public.t_sys_api_endpoints",
        &[
            ("id", "bigint"),
            ("endpoint_path", "character varying(64)"),
            ("http_method", "text"),
        ],
    )
}

fn pairs(mapping: &Mapping) -> Vec<(&str, &str, Option<&str>)> {
    mapping
        .columns
        .iter()
        .map(|p| (p.source.as_str(), p.target.as_str(), p.cast.as_deref()))
        .collect()
}

#[test]
fn renames_widens_and_keeps_names() {
    let plan = migration("columns: { path: endpoint_path, method: http_method }");
    let mapping = check(&plan, api(), endpoints()).unwrap();
    assert_eq!(
        pairs(&mapping),
        [
            ("id", "id", Some("integer")),
            ("path", "endpoint_path", Some("text")),
            ("method", "http_method", None),
        ]
    );
    assert_eq!(mapping.source, api());
    assert_eq!(mapping.target, endpoints());
}

#[test]
fn same_types_need_no_cast() {
    let same = table(
        "public.api_copy",
        &[("id", "integer"), ("path", "text"), ("method", "text")],
    );
    let mapping = check(&migration(""), api(), same).unwrap();
    assert_eq!(
        pairs(&mapping),
        [
            ("id", "id", None),
            ("path", "path", None),
            ("method", "method", None)
        ]
    );
}

#[test]
fn names_match_ignoring_case_when_unambiguous() {
    let upper = table("app.api", &[("ID", "int(11)"), ("Path", "text")]);
    let target = table("app.t", &[("id", "bigint(20)"), ("path", "varchar(200)")]);
    let mapping = check(&migration(""), upper, target).unwrap();
    assert_eq!(
        pairs(&mapping),
        [
            ("ID", "id", Some("int(11)")),
            ("Path", "path", Some("text"))
        ]
    );
}

#[test]
fn domains_compare_their_base_type() {
    let mut target = table(
        "public.t",
        &[
            ("id", "integer"),
            ("path", "short_text"),
            ("method", "text"),
        ],
    );
    target.columns[1].base_type = Some("character varying(64)".into());
    let mapping = check(&migration(""), api(), target.clone()).unwrap();
    assert_eq!(mapping.columns[1].cast.as_deref(), Some("text"));

    target.columns[1].base_type = Some("integer".into());
    let refused = check(&migration(""), api(), target).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "migration `api_v2`: column `path` is `text` but target column `path` is `short_text`: `text` values do not convert to `integer` without loss; give the target column a type that holds every source value"
    );
}

#[test]
fn time_zone_retypes_need_a_pinned_zone() {
    let source = table(
        "public.api",
        &[("id", "integer"), ("at", "timestamp with time zone")],
    );
    let target = table(
        "public.t",
        &[("id", "integer"), ("at", "timestamp without time zone")],
    );
    let refused = check(&migration(""), source.clone(), target.clone()).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "migration `api_v2`: column `at` is `timestamp with time zone` but target column `at` is `timestamp without time zone`, a conversion that depends on each session's time zone; pin one with `time_zone: UTC` (or your zone) in the migration, or give both columns the same type"
    );
    let mapping = check(&migration("time_zone: UTC"), source, target).unwrap();
    assert_eq!(
        mapping.columns[1].cast.as_deref(),
        Some("timestamp with time zone")
    );

    let mysql = |t: &str| table("app.t", &[("id", "int(11)"), ("at", t)]);
    assert!(matches!(
        check(&migration(""), mysql("timestamp"), mysql("datetime")),
        Err(MappingError::NeedsTimeZone { .. })
    ));
    assert!(check(
        &migration("time_zone: '+00:00'"),
        mysql("timestamp"),
        mysql("datetime")
    )
    .is_ok());
}

#[test]
fn refusals_name_the_column_and_list_what_exists() {
    let cases = [
        (
            "key missing on the source",
            migration(""),
            table("public.api", &[("uid", "integer"), ("path", "text")]),
            endpoints(),
            "migration `api_v2`: primary-key column `id` is not in `public.api`; columns are: uid, path; correct `source.primary_key`",
        ),
        (
            "a mapped column missing on the source",
            migration("columns: { pth: endpoint_path }"),
            api(),
            endpoints(),
            "migration `api_v2`: `columns` maps `pth`, which is not in `public.api`; columns are: id, path, method; correct or remove that entry",
        ),
        (
            "key not on the target",
            migration("columns: { path: endpoint_path, method: http_method }"),
            api(),
            table(
                "public.t_sys_api_endpoints",
                &[("api_id", "bigint"), ("endpoint_path", "text"), ("http_method", "text")],
            ),
            "migration `api_v2`: primary-key column `id` maps to `id`, which is not in `public.t_sys_api_endpoints`; columns are: api_id, endpoint_path, http_method; add it to the target or map the key in `columns`",
        ),
        (
            "a mapped column missing on the target",
            migration("columns: { path: endpoint, method: http_method }"),
            api(),
            endpoints(),
            "migration `api_v2`: `columns` maps `path` to `endpoint`, which is not in `public.t_sys_api_endpoints`; columns are: id, endpoint_path, http_method; correct the entry or add the column to the target",
        ),
        (
            "an unmapped column missing on the target",
            migration("columns: { path: endpoint_path }"),
            api(),
            endpoints(),
            "migration `api_v2`: column `method` of `public.api` is not in `public.t_sys_api_endpoints` and `columns` does not map it; columns are: id, endpoint_path, http_method; add it to the target or map it with `method: <target column>`",
        ),
        (
            "integer to text",
            migration(""),
            api(),
            table(
                "public.t",
                &[("id", "text"), ("path", "text"), ("method", "text")],
            ),
            "migration `api_v2`: column `id` is `integer` but target column `id` is `text`: `integer` values do not convert to `text` without loss; give the target column a type that holds every source value",
        ),
        (
            "text to integer",
            migration(""),
            api(),
            table(
                "public.t",
                &[("id", "integer"), ("path", "integer"), ("method", "text")],
            ),
            "migration `api_v2`: column `path` is `text` but target column `path` is `integer`: `text` values do not convert to `integer` without loss; give the target column a type that holds every source value",
        ),
        (
            "narrowing",
            migration(""),
            table("public.api", &[("id", "bigint")]),
            table("public.t", &[("id", "integer")]),
            "migration `api_v2`: column `id` is `bigint` but target column `id` is `integer`: not every `bigint` value fits in `integer`; give the target column a type that holds every source value",
        ),
    ];
    for (what, plan, source, target, want) in cases {
        let got = check(&plan, source, target)
            .map(|m| format!("{:?}", pairs(&m)))
            .unwrap_err();
        assert_eq!(got.to_string(), want, "{what}");
    }
}
