//! The shape path against the exact-text rewrite: for a text and for
//! variants of it with other literal values, the cache gives what
//! `rewrite::read_form` gives the text itself (the rewrite case tables of
//! `route::rewrite` run every case through [`differences`] too).

use proptest::prelude::*;

use super::cache::{FormCache, FormInputs, TextForm};
use super::literals::{Class, Literals};
use super::value;
use crate::route::fingerprint::Dialect;
use crate::route::rewrite::{ColumnMap, KeyValue, ReadForm, Relation, Scope, TableMap};

/// Every way the shape path's answer for `text`, and for variants of it
/// with other literal values, differs from the exact-text rewrite of the
/// same text. One cache serves the text and its variants, so the variants
/// are answered from the template the text built.
pub(crate) fn differences(
    dialect: Dialect,
    map: &TableMap,
    schema: Option<&str>,
    sticky_column: Option<&str>,
    text: &str,
) -> Vec<String> {
    let inputs = FormInputs {
        dialect,
        map,
        scope: Scope {
            default_schema: schema,
        },
        sticky_column,
    };
    let cache = FormCache::default();
    let mut failures = Vec::new();
    for variant in std::iter::once(text.to_string()).chain(variants(dialect, text)) {
        let form = cache.form(1, 0, &inputs, &variant);
        failures.extend(difference(&inputs, &variant, &form));
    }
    failures
}

/// How the cache's answer for `text` differs from the exact-text rewrite.
fn difference(inputs: &FormInputs<'_>, text: &str, form: &TextForm<'_>) -> Option<String> {
    let exact = inputs.read_form(text);
    // With literals as sqlparser prints them: what read_form gives.
    let printed = form.to_printed_read_form(inputs);
    if printed != exact {
        return Some(format!(
            "  text:   {text}\n  exact:  {exact:?}\n  shaped: {printed:?}"
        ));
    }
    // As sent (literals as written): the same wherever sqlparser prints
    // every literal as written.
    let sent = form.to_read_form();
    if prints_as_written(inputs.dialect, text) && sent != exact {
        return Some(format!(
            "  text:   {text}\n  exact:  {exact:?}\n  sent:   {sent:?}"
        ));
    }
    None
}

/// Whether sqlparser prints every literal of `text` back as written.
fn prints_as_written(dialect: Dialect, text: &str) -> bool {
    let Some(literals) = Literals::scan(dialect, None, text) else {
        return true;
    };
    literals.spans().iter().all(|span| {
        let literal = &text[span.range()];
        value::printed(dialect, span.class, literal).is_none_or(|p| p == literal)
    })
}

/// Other literal values for each class, cycled through by [`variants`].
fn values(dialect: Dialect, class: Class) -> &'static [&'static str] {
    match (dialect, class) {
        (_, Class::Integer) => &["7", "0", "123456789012345678", "00042"],
        (_, Class::Decimal) => &["1.5", ".25", "2e10", "3.5E-3", "1."],
        (Dialect::Postgres, Class::Single) => &[
            "'x'",
            "''",
            "'it''s'",
            r"'a\b'",
            "'a\"b'",
            "'-- /* ?'",
            "'é ü'",
            "'api'",
            "'42'",
        ],
        (Dialect::Mysql, Class::Single) => &[
            "'x'",
            "''",
            "'it''s'",
            r"'it\'s'",
            r"'a\\b'",
            r"'a\nb'",
            r"'50\%'",
            "'\"'",
            "'app.api'",
            "'42'",
        ],
        (_, Class::Double) => &["\"x\"", "\"a\"\"b\"", "\"it's\"", r#""a\"b""#, "\"7\""],
        (_, Class::Other) => &[],
    }
}

/// Variants of `text` with other literal values: the `n`th variant gives
/// each literal the `n`th value of its class (literals of a class without
/// values keep theirs).
fn variants(dialect: Dialect, text: &str) -> Vec<String> {
    let Some(literals) = Literals::scan(dialect, None, text) else {
        return Vec::new();
    };
    let most = literals
        .spans()
        .iter()
        .map(|s| values(dialect, s.class).len())
        .max()
        .unwrap_or(0);
    (0..most)
        .map(|n| {
            let mut out = String::new();
            let mut last = 0;
            for (i, span) in literals.spans().iter().enumerate() {
                let range = span.range();
                out.push_str(&text[last..range.start]);
                let choices = values(dialect, span.class);
                match choices.get((n + i) % choices.len().max(1)) {
                    Some(value) => out.push_str(value),
                    None => out.push_str(&text[range.clone()]),
                }
                last = range.end;
            }
            out.push_str(&text[last..]);
            out
        })
        .collect()
}

/// `api (id, path, method, created_at)` → `t_sys_api_endpoints`, `path`
/// and `method` renamed, `id` cast back on PostgreSQL.
fn api_map(schema: &str) -> TableMap {
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
            column("id", "id", Some("integer")),
            column("path", "endpoint_path", None),
            column("method", "http_method", None),
            column("created_at", "created_at", None),
        ],
    }
}

fn schema_of(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "public",
        Dialect::Mysql => "app",
    }
}

fn assert_no_differences(dialect: Dialect, texts: &[&str]) {
    let map = api_map(schema_of(dialect));
    let mut failures = Vec::new();
    for text in texts {
        for sticky in [None, Some("id"), Some("path")] {
            failures.extend(differences(
                dialect,
                &map,
                Some(schema_of(dialect)),
                sticky,
                text,
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn literal_variations_postgres() {
    assert_no_differences(
        Dialect::Postgres,
        &[
            "SELECT path FROM api WHERE id = 48213",
            "SELECT path FROM api WHERE id = -5 AND method = 'GET'",
            "SELECT path FROM api WHERE id = - 5",
            "SELECT path FROM api WHERE id = -'5'",
            "SELECT path FROM api WHERE path = 'it''s' AND id = 1.5e3",
            "SELECT * FROM api WHERE id > 10 ORDER BY id LIMIT 10 OFFSET 5",
            "SELECT id FROM api WHERE id IN (1, 2, 3) AND method IN ('GET', 'POST')",
            "SELECT id FROM api WHERE id IN (7)",
            "SELECT path FROM api WHERE created_at > DATE '2024-01-01' + INTERVAL '1 day'",
            "SELECT path FROM api WHERE created_at > TIMESTAMP '2024-01-01 10:00' AND id = '42'::int",
            "SELECT path FROM api /* it's a 'comment' */ WHERE id = 3 -- and 'this'\n",
            "SELECT path FROM api WHERE path = $$it's$$ AND id = 4",
            "SELECT path FROM api WHERE path = $t$x$t$",
            "SELECT path FROM api WHERE path = E'a\\'b' AND id = 4",
            "SELECT path FROM api WHERE path = U&'d\\0061t' AND id = 4",
            "SELECT path FROM api WHERE method = X'1F' OR method = B'101' OR method = N'x'",
            "SELECT path FROM api WHERE id = 0x1F OR id = 1_000",
            "SELECT path::varchar(20), CAST(id AS numeric(10, 2)) FROM api WHERE id = 9",
            "SELECT 'api' AS t, path FROM api WHERE id = 1",
            "SELECT to_regclass('api'), id FROM api WHERE id = 2",
            "SELECT path FROM api WHERE id = $1 AND method = 'GET'",
            "SELECT path FROM api WHERE id = 1; SELECT path FROM api WHERE id = 2",
            "SELECT path, 'x' || method FROM api WHERE id BETWEEN 1 AND 100",
            "SELECT count(*) FROM api WHERE created_at > now() - interval '5 minutes'",
            "SELECT a.path FROM api a JOIN calls c ON c.api_id = a.id WHERE c.n > 3",
            "SELECT path FROM api WHERE id = 1 FOR UPDATE",
            "SELECT path FROM api WHERE id = 'open",
            "SELECT path FROM api WHERE id = 5 AND id = 6",
            "SELECT 1.5.6, path FROM api",
            "SELECT path FROM api WHERE id = 1.e5 OR id = .5",
            "SELECT id FROM other WHERE id = 5",
        ],
    );
}

#[test]
fn literal_variations_mysql() {
    assert_no_differences(
        Dialect::Mysql,
        &[
            "SELECT path FROM api WHERE id = 50123",
            "SELECT path FROM api WHERE id=50123",
            "SELECT path FROM api WHERE id BETWEEN 5 AND 104 ORDER BY path",
            "SELECT DISTINCT path FROM api WHERE id BETWEEN 5 AND 104 ORDER BY path",
            "SELECT SUM(id) FROM api WHERE id BETWEEN 5 AND 104",
            "SELECT path FROM api WHERE id = -5 AND method = 'GET'",
            "SELECT path FROM api WHERE method = \"GET\" AND id = 7",
            "SELECT path FROM api WHERE path = 'it\\'s' OR path = 'a\\\\b'",
            "SELECT path FROM api WHERE path LIKE '50\\% off' ESCAPE '\\\\'",
            "SELECT path FROM api ORDER BY id LIMIT 10 OFFSET 5",
            "SELECT path FROM api ORDER BY id LIMIT 5, 10",
            "SELECT id FROM api WHERE id IN (1, 2, 3) AND method IN ('GET', \"POST\")",
            "SELECT path FROM api WHERE created_at > DATE '2024-01-01' + INTERVAL 1 DAY",
            "SELECT path FROM api /* it's a \"comment\" */ WHERE id = 3 # and 'this'\n",
            "SELECT path FROM api WHERE id = 3 -- it's\n",
            "SELECT path FROM api WHERE method = _utf8mb4'GET' AND id = 1",
            "SELECT path FROM api WHERE method = N'GET' OR method = X'1F' OR id = 0x1F",
            "SELECT path FROM api WHERE method = 'a' 'b'",
            "SELECT 'api' AS t, path FROM api WHERE id = 1",
            "SELECT path FROM api WHERE id = ? AND method = 'GET'",
            "SELECT path FROM api WHERE id = 1 LOCK IN SHARE MODE",
            "SELECT path FROM api WHERE id = 1 FOR UPDATE",
            "SELECT path FROM api WHERE id = 1e3 OR id = .5",
            "SELECT path FROM api WHERE id = 'open",
            "SELECT path FROM api WHERE id = 'x\\'",
            "SELECT CAST(id AS CHAR(10)), CONCAT(method, ' ', path) FROM api WHERE id = 4",
            "SELECT c FROM sbtest1 WHERE id = 5",
        ],
    );
}

/// The texts benchmarks and drivers send take the shape path; the literal
/// forms it refuses take the exact-text path.
#[test]
fn which_texts_take_the_shape_path() {
    let cases: &[(Dialect, &str, bool)] = &[
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE id = 48213",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE id = $1",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = 'a''b'",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE created_at > DATE '2024-01-01'",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE id IN (1, 2) LIMIT 10 OFFSET 5",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = E'a'",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = $$a$$",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = U&'a'",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE id = 0x1F",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = 'api'",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path FROM api WHERE path = '\u{1}sy'",
            true,
        ),
        (
            Dialect::Postgres,
            "SELECT \"\u{1}\" FROM api WHERE id = 1",
            false,
        ),
        (
            Dialect::Postgres,
            "SELECT path AS \"27182818281\" FROM api WHERE id = 1",
            false,
        ),
        (Dialect::Mysql, "SELECT path FROM api WHERE id=50123", true),
        (
            Dialect::Mysql,
            "SELECT path FROM api WHERE path = 'a\\'b' AND method = \"x\"",
            true,
        ),
        (
            Dialect::Mysql,
            "SELECT path FROM api WHERE path = _utf8'a'",
            false,
        ),
        (
            Dialect::Mysql,
            "SELECT path FROM api WHERE path = N'a'",
            false,
        ),
        (
            Dialect::Mysql,
            "SELECT path FROM api WHERE path = 'a' 'b'",
            false,
        ),
        (
            Dialect::Mysql,
            "SELECT path FROM api WHERE path = 'app.api'",
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (dialect, text, shaped) in cases {
        let map = api_map(schema_of(*dialect));
        let inputs = FormInputs {
            dialect: *dialect,
            map: &map,
            scope: Scope {
                default_schema: Some(schema_of(*dialect)),
            },
            sticky_column: Some("id"),
        };
        let form = FormCache::default().form(1, 0, &inputs, text);
        if form.is_shaped() != *shaped {
            failures.push(format!("{dialect:?}: {text}: shaped {}", form.is_shaped()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn texts_of_one_shape_share_one_entry() {
    let map = api_map("public");
    let inputs = FormInputs {
        dialect: Dialect::Postgres,
        map: &map,
        scope: Scope {
            default_schema: Some("public"),
        },
        sticky_column: Some("id"),
    };
    let cache = FormCache::default();
    let texts = [
        "SELECT path FROM api WHERE id = 48213 AND method = 'GET'",
        "SELECT path FROM api WHERE id = 7 AND method = 'it''s'",
        "SELECT path FROM api WHERE id = 123456 AND method = ''",
    ];
    let mut sent = Vec::new();
    for text in texts {
        let form = cache.form(1, 0, &inputs, text);
        assert!(form.is_shaped(), "{text}");
        sent.push((form.target(), form.key().map(|k| format!("{k:?}"))));
    }
    assert_eq!(cache.shape_count(), 1);
    assert_eq!(cache.template_count(), 1);
    let expected = [("48213", "'GET'"), ("7", "'it''s'"), ("123456", "''")];
    for ((target, key), (id, method)) in sent.iter().zip(expected) {
        let sql = format!(
            "SELECT endpoint_path AS path FROM t_sys_api_endpoints AS api WHERE id = {id} AND http_method = {method}"
        );
        assert_eq!(target.clone(), Some(Ok(sql)));
        assert_eq!(key.as_deref(), Some(format!("Literal({id:?})").as_str()));
    }
    // Another schema, another generation, another migration: other shapes.
    let other = FormInputs {
        scope: Scope {
            default_schema: Some("audit"),
        },
        ..inputs
    };
    cache.form(1, 0, &other, texts[0]);
    cache.form(2, 0, &inputs, texts[0]);
    cache.form(1, 1, &inputs, texts[0]);
    assert_eq!(cache.shape_count(), 4);
    // Whitespace is part of the skeleton: another shape.
    cache.form(
        1,
        0,
        &inputs,
        "SELECT path FROM api WHERE id = 5  AND method = 'x'",
    );
    assert_eq!(cache.shape_count(), 5);
}

#[test]
fn literals_reach_the_target_as_written() {
    // sqlparser would print `'a\\b'` as `'a\b'`, which MySQL reads as
    // `a<backspace>`; the shape path sends the client's literal.
    let map = api_map("app");
    let inputs = FormInputs {
        dialect: Dialect::Mysql,
        map: &map,
        scope: Scope {
            default_schema: Some("app"),
        },
        sticky_column: Some("path"),
    };
    let cache = FormCache::default();
    cache.form(1, 0, &inputs, "SELECT id FROM api WHERE path = 'x'");
    let form = cache.form(1, 0, &inputs, r"SELECT id FROM api WHERE path = 'a\\b'");
    assert!(form.is_shaped());
    assert_eq!(
        form.target(),
        Some(Ok(
            r"SELECT id FROM t_sys_api_endpoints AS api WHERE endpoint_path = 'a\\b'".into()
        ))
    );
    assert_eq!(
        form.to_read_form(),
        ReadForm::Source {
            target: Ok(
                r"SELECT id FROM t_sys_api_endpoints AS api WHERE endpoint_path = 'a\\b'".into()
            ),
            key: Some(KeyValue::Literal(r"a\b".into())),
        }
    );
}

#[test]
fn spans_cover_each_literal() {
    let text = "SELECT 'a''b', \"q\", -1.5e3, x1, $1, $$d$$, E'e' FROM t -- 'c'\n";
    let literals = Literals::scan(Dialect::Postgres, None, text).expect("scans");
    let spans: Vec<(&str, Class)> = literals
        .spans()
        .iter()
        .map(|s| (&text[s.range()], s.class))
        .collect();
    assert_eq!(
        spans,
        [
            ("'a''b'", Class::Single),
            ("1.5e3", Class::Decimal),
            ("$$d$$", Class::Other),
            ("E'e'", Class::Other),
        ]
    );
    let skeleton = literals.skeleton(text);
    assert!(literals.skeleton_is(text, &skeleton));
    let other = "SELECT 'zz', \"q\", -7.0e1, x1, $1, $$other$$, E'f' FROM t -- 'c'\n";
    let theirs = Literals::scan(Dialect::Postgres, None, other).expect("scans");
    assert_eq!(theirs.hash(), literals.hash());
    assert!(theirs.skeleton_is(other, &skeleton));
    let shifted = "SELECT 'zz', \"q\", -7.0e1, x2, $1, $$other$$, E'f' FROM t -- 'c'\n";
    let theirs = Literals::scan(Dialect::Postgres, None, shifted).expect("scans");
    assert!(!theirs.skeleton_is(shifted, &skeleton));
    // An integer and a decimal are different shapes.
    let decimal = Literals::scan(Dialect::Postgres, None, "SELECT 1.0").expect("scans");
    let integer = Literals::scan(Dialect::Postgres, None, "SELECT 1").expect("scans");
    assert_ne!(decimal.hash(), integer.hash());
}

#[test]
fn too_many_literals_take_the_exact_path() {
    let list: Vec<String> = (0..=super::MAX_LITERALS).map(|i| i.to_string()).collect();
    let text = format!("SELECT path FROM api WHERE id IN ({})", list.join(", "));
    assert!(Literals::scan(Dialect::Postgres, None, &text).is_none());
    assert_no_differences(Dialect::Postgres, &[&text]);
}

/// A PostgreSQL string literal's body (standard conforming: `''` is a
/// quote, a backslash is itself).
fn pg_string() -> impl Strategy<Value = String> {
    "([a-z0-9 %_\"\\\\é?;-]|'')*".prop_map(|body| format!("'{body}'"))
}

/// A MySQL string literal in single or double quotes, with backslash
/// escapes and doubled quotes.
fn mysql_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "([a-z0-9 %_\"é?;-]|''|\\\\[a-zA-Z0-9'\"\\\\%_])*".prop_map(|b| format!("'{b}'")),
        "([a-z0-9 %_'é?;-]|\"\"|\\\\[a-zA-Z0-9'\"\\\\%_])*".prop_map(|b| format!("\"{b}\"")),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "0|[1-9][0-9]{0,17}",
        "0[0-9]{1,4}",
        "[0-9]{1,5}\\.[0-9]{0,4}",
        "\\.[0-9]{1,4}",
        "[0-9]{1,3}[eE][+-]?[0-9]{1,2}",
    ]
}

/// Runs `text` after a first text of the same skeleton built the
/// template, and compares with the exact-text rewrite.
fn check_after_first(dialect: Dialect, first: &str, text: &str) -> Result<(), TestCaseError> {
    let map = api_map(schema_of(dialect));
    let inputs = FormInputs {
        dialect,
        map: &map,
        scope: Scope {
            default_schema: Some(schema_of(dialect)),
        },
        sticky_column: Some("id"),
    };
    let cache = FormCache::default();
    cache.form(1, 0, &inputs, first);
    let form = cache.form(1, 0, &inputs, text);
    prop_assert_eq!(difference(&inputs, text, &form), None);
    Ok(())
}

proptest! {
    #[test]
    fn any_literals_postgres(a in number(), b in pg_string(), c in number(), d in pg_string()) {
        let text = format!(
            "SELECT path FROM api WHERE id = -{a} AND method = {b} OR path IN ({d}, 'x') LIMIT {c}"
        );
        check_after_first(
            Dialect::Postgres,
            "SELECT path FROM api WHERE id = -1 AND method = 'a' OR path IN ('b', 'x') LIMIT 1",
            &text,
        )?;
    }

    #[test]
    fn any_literals_mysql(a in number(), b in mysql_string(), c in "[0-9]{1,6}", d in mysql_string()) {
        let text = format!(
            "SELECT path FROM api WHERE id = {a} AND method = {b} OR path IN ({d}, 'x') LIMIT {c}, 5"
        );
        check_after_first(
            Dialect::Mysql,
            "SELECT path FROM api WHERE id = 1 AND method = 'a' OR path IN ('b', 'x') LIMIT 1, 5",
            &text,
        )?;
    }

    #[test]
    fn never_panics(s in "[-a-z0-9 '\"`$./*#\\\\?;:E_()\u{1}\n]{0,40}") {
        let map = api_map("public");
        for dialect in [Dialect::Postgres, Dialect::Mysql] {
            let inputs = FormInputs {
                dialect,
                map: &map,
                scope: Scope { default_schema: Some("public") },
                sticky_column: Some("id"),
            };
            let cache = FormCache::default();
            let text = format!("SELECT path FROM api WHERE {s}");
            let form = cache.form(1, 0, &inputs, &text);
            let _ = (form.target(), form.key());
        }
    }
}
