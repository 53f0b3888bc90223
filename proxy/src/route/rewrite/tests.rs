//! Shared fixtures and the table-driven checker for the rewrite tests, plus
//! property-style checks that hold for every dialect.

use super::*;
use crate::route::shape::tests::differences;

/// `api (id, path, method, created_at)` → `t_sys_api_endpoints` with
/// `path → endpoint_path`, `method → http_method`; `id` cast back to
/// `integer` when `cast_id`.
pub(super) fn api_map(schema: &str, cast_id: bool) -> TableMap {
    let column = |source: &str, target: &str, cast: Option<&str>| ColumnMap {
        source: source.into(),
        target: target.into(),
        cast: cast.map(Into::into),
    };
    TableMap {
        source: Relation {
            schema: schema.into(),
            name: "api".into(),
        },
        target: Relation {
            schema: schema.into(),
            name: "t_sys_api_endpoints".into(),
        },
        columns: vec![
            column("id", "id", cast_id.then_some("integer")),
            column("path", "endpoint_path", None),
            column("method", "http_method", None),
            column("created_at", "created_at", None),
        ],
    }
}

/// Same columns, nothing renamed, target in another schema / database.
pub(super) fn moved_map(schema: &str, target_schema: &str) -> TableMap {
    let mut map = api_map(schema, false);
    map.target.schema = target_schema.into();
    for c in &mut map.columns {
        c.target = c.source.clone();
    }
    map
}

/// Columns named by reserved words: `api (id, order, user)` with `order →
/// sort_order`.
pub(super) fn reserved_map(schema: &str) -> TableMap {
    let mut map = api_map(schema, false);
    map.columns = vec![
        ColumnMap {
            source: "id".into(),
            target: "id".into(),
            cast: None,
        },
        ColumnMap {
            source: "order".into(),
            target: "sort_order".into(),
            cast: None,
        },
        ColumnMap {
            source: "user".into(),
            target: "user".into(),
            cast: None,
        },
    ];
    map
}

/// The expected form of one case: `untouched`, `error:<label>`, or the
/// rewritten SQL.
fn describe(form: &ReadForm) -> String {
    match form {
        ReadForm::Untouched => "untouched".into(),
        ReadForm::Source {
            target: Ok(sql), ..
        } => sql.clone(),
        ReadForm::Source {
            target: Err(reason),
            ..
        } => format!("error:{}", reason.label()),
    }
}

/// Runs a table of `input → expected` cases and reports every mismatch at
/// once. Every rewritten text must parse again, and the statement-shape
/// cache must give every case (and variants with other literal values)
/// what the exact-text rewrite gives.
pub(super) fn check(
    dialect: Dialect,
    map: &TableMap,
    default_schema: Option<&str>,
    cases: &[(&str, &str)],
) {
    let scope = Scope { default_schema };
    let mut failures = Vec::new();
    for (input, _) in cases {
        failures.extend(differences(dialect, map, default_schema, None, input));
    }
    failures.extend(mismatches(dialect, cases, |input| {
        read_form(dialect, input, map, &scope, None)
    }));
    report(cases.len(), failures);
}

/// Runs a table of write cases (`input → expected`, as [`check`]) through
/// [`write_form`]; every rewritten text must parse again.
pub(super) fn check_writes(
    dialect: Dialect,
    map: &TableMap,
    default_schema: Option<&str>,
    cases: &[(&str, &str)],
) {
    let scope = Scope { default_schema };
    let failures = mismatches(dialect, cases, |input| {
        write_form(dialect, input, map, &scope)
    });
    report(cases.len(), failures);
}

/// The cases whose form is not the expected one, or whose rewritten text
/// does not parse again.
fn mismatches(
    dialect: Dialect,
    cases: &[(&str, &str)],
    form_of: impl Fn(&str) -> ReadForm,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let form = form_of(input);
        let got = describe(&form);
        if got != *expected {
            failures.push(format!(
                "  input:    {input}\n  expected: {expected}\n  got:      {got}"
            ));
        } else if let ReadForm::Source {
            target: Ok(sql), ..
        } = &form
        {
            if parse(dialect, sql).is_err() {
                failures.push(format!("  input: {input}\n  output does not parse: {sql}"));
            }
        }
    }
    failures
}

fn report(cases: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Runs a table of sticky-key cases: `input → key`, and checks the
/// statement-shape cache against them as [`check`] does.
pub(super) fn check_keys(dialect: Dialect, column: &str, cases: &[(&str, Option<KeyValue>)]) {
    let map = api_map(
        if dialect == Dialect::Postgres {
            "public"
        } else {
            "app"
        },
        false,
    );
    let schema = if dialect == Dialect::Postgres {
        "public"
    } else {
        "app"
    };
    let scope = Scope {
        default_schema: Some(schema),
    };
    let mut failures = Vec::new();
    for (input, _) in cases {
        failures.extend(differences(
            dialect,
            &map,
            Some(schema),
            Some(column),
            input,
        ));
    }
    for (input, expected) in cases {
        let got = match read_form(dialect, input, &map, &scope, Some(column)) {
            ReadForm::Source { key, .. } => key,
            ReadForm::Untouched => {
                failures.push(format!("  {input}: untouched"));
                continue;
            }
        };
        if got != *expected {
            failures.push(format!(
                "  {input}\n    expected {expected:?}\n    got      {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "key cases failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn labels_are_the_metric_values() {
    let all = [
        Unroutable::AmbiguousColumn,
        Unroutable::Expression,
        Unroutable::Writes,
        Unroutable::View,
        Unroutable::UnknownSchema,
    ];
    let labels: Vec<&str> = all.iter().map(|u| u.label()).collect();
    assert_eq!(
        labels,
        [
            "ambiguous_column",
            "expression",
            "writes",
            "view",
            "unknown_schema"
        ]
    );
}

#[test]
fn texts_without_the_source_are_untouched() {
    let texts = [
        "SELECT 1",
        "SELECT * FROM calls WHERE api_id = 3",
        "SELECT x FROM apis",
        "SELECT 'api' AS name",
        "WITH api AS (SELECT 1 AS id) SELECT id FROM api",
        "BEGIN",
        "",
        "SELEC garbage ((",
    ];
    for dialect in [Dialect::Postgres, Dialect::Mysql] {
        let schema = if dialect == Dialect::Postgres {
            "public"
        } else {
            "app"
        };
        let map = api_map(schema, true);
        let scope = Scope {
            default_schema: Some(schema),
        };
        for text in texts {
            assert_eq!(
                read_form(dialect, text, &map, &scope, Some("id")),
                ReadForm::Untouched,
                "{dialect:?}: {text}"
            );
        }
    }
}

#[test]
fn rewriting_never_panics_on_odd_text() {
    let texts = [
        "SELECT",
        "SELECT * FROM api WHERE",
        "SELECT * FROM api; SELECT",
        "SELECT (((((path))))) FROM api",
        "SELECT * FROM api a, api b, api",
        "SELECT api.api FROM api",
        "SELECT * FROM api AS api(x, y)",
        "SELECT 1 FROM api WHERE path = ANY($1) AND id = ALL(ARRAY[1, 2])",
        "SELECT * FROM (api) AS j",
        "SELECT * FROM (api JOIN calls ON true) AS j",
    ];
    for dialect in [Dialect::Postgres, Dialect::Mysql] {
        let schema = if dialect == Dialect::Postgres {
            "public"
        } else {
            "app"
        };
        let map = api_map(schema, true);
        let scope = Scope {
            default_schema: Some(schema),
        };
        for text in texts {
            if let ReadForm::Source {
                target: Ok(sql), ..
            } = read_form(dialect, text, &map, &scope, Some("id"))
            {
                assert!(parse(dialect, &sql).is_ok(), "{dialect:?}: {text} → {sql}");
            }
        }
    }
}

#[test]
fn deep_operator_chains_do_not_overflow_a_worker_stack() {
    // A tokio worker's stack is 2 MiB; the classifier admits texts up to
    // its operator-depth limit (4000 operators on one path; here two per
    // step), and the rewrite must survive those.
    let mut sql = String::from("SELECT path FROM api WHERE id = 0");
    for i in 1..1990 {
        sql.push_str(&format!(" OR id = {i}"));
    }
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let map = api_map("public", false);
            let scope = Scope {
                default_schema: Some("public"),
            };
            read_form(Dialect::Postgres, &sql, &map, &scope, None)
        })
        .expect("spawn");
    let form = handle.join().expect("no overflow");
    assert!(
        matches!(&form, ReadForm::Source { target: Ok(sql), .. } if sql.contains("endpoint_path")),
        "{form:?}"
    );
}
