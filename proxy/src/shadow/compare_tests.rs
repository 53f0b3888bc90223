//! Comparison by meaning, and the samples it gives.

use super::*;
use crate::shadow::value::{parse_timestamp, Value};

fn int(n: i128) -> Value {
    Value::Int(n)
}

fn text(s: &str) -> Value {
    Value::Text(s.as_bytes().to_vec())
}

fn dec(s: &str) -> Value {
    Value::decimal(s).expect("a decimal")
}

fn rows(columns: &[&str], rows: Vec<Vec<Value>>) -> Rows {
    Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

fn keys() -> Vec<String> {
    vec!["id".to_string()]
}

/// `None` when equal, else the kind of the difference.
fn outcome(
    source: Vec<Vec<Value>>,
    target: Vec<Vec<Value>>,
    order: RowOrder,
) -> Option<DifferenceKind> {
    let columns = ["id", "v"];
    compare(
        &rows(&columns, source),
        &rows(&columns, target),
        order,
        &keys(),
    )
    .map(|d| d.kind)
}

#[test]
#[rustfmt::skip]
fn values_compare_by_meaning() {
    use DifferenceKind::*;
    use RowOrder::*;
    let cases: Vec<(&str, Value, Value, Option<DifferenceKind>)> = vec![
        ("same text", text("a"), text("a"), None),
        ("text by bytes", text("a"), text("A"), Some(Values)),
        ("trailing space counts", text("a"), text("a "), Some(Values)),
        ("NULL equals NULL", Value::Null, Value::Null, None),
        ("NULL is not the empty string", Value::Null, text(""), Some(Values)),
        ("numeric scale", dec("1.50"), dec("1.5"), None),
        ("numeric zeros", dec("-0.000"), int(0), None),
        ("int, bigint and numeric 7", int(7), dec("7.00"), None),
        ("numeric exponent", dec("1.2e3"), int(1200), None),
        ("numeric value differs", dec("1.51"), dec("1.5"), Some(Values)),
        ("negative zero float", Value::float(-0.0), Value::float(0.0), None),
        ("one NaN", Value::float(f64::NAN), Value::float(-f64::NAN), None),
        ("float differs", Value::float(0.1 + 0.2), Value::float(0.3), Some(Values)),
        ("instants across zones",
            parse_timestamp("2024-03-01 12:00:00+02").unwrap(),
            parse_timestamp("2024-03-01T10:00:00Z").unwrap(), None),
        ("instants with half-hour zones",
            parse_timestamp("2024-03-01 15:30:00.5+05:30").unwrap(),
            parse_timestamp("2024-03-01 10:00:00.500000-00").unwrap(), None),
        ("an hour apart", parse_timestamp("2024-03-01 12:00:00+02").unwrap(),
            parse_timestamp("2024-03-01 12:00:00+01").unwrap(), Some(Values)),
        ("json by value",
            Value::json(br#"{"b": [1, 2], "a": null}"#).unwrap(),
            Value::json(br#"{"a":null,"b":[1,2]}"#).unwrap(), None),
        ("json array order counts",
            Value::json(b"[1,2]").unwrap(), Value::json(b"[2,1]").unwrap(), Some(Values)),
        ("text is not bytes", text("a"), Value::Bytes(b"a".to_vec()), Some(Values)),
    ];
    for (name, source, target, want) in cases {
        let got = outcome(vec![vec![int(1), source]], vec![vec![int(1), target]], Multiset);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
#[rustfmt::skip]
fn rows_compare_as_multisets_or_in_order() {
    use DifferenceKind::*;
    use RowOrder::*;
    let r = |id: i128, v: &str| vec![int(id), text(v)];
    type Case = (&'static str, RowOrder, Vec<Vec<Value>>, Vec<Vec<Value>>, Option<DifferenceKind>);
    let cases: Vec<Case> = vec![
        ("empty", Multiset, vec![], vec![], None),
        ("order ignored", Multiset, vec![r(1, "a"), r(2, "b")], vec![r(2, "b"), r(1, "a")], None),
        ("order counts", InOrder, vec![r(1, "a"), r(2, "b")], vec![r(2, "b"), r(1, "a")], Some(Values)),
        ("same order", InOrder, vec![r(1, "a"), r(2, "b")], vec![r(1, "a"), r(2, "b")], None),
        ("duplicates count", Multiset, vec![r(1, "a"), r(1, "a")], vec![r(1, "a")], Some(OnlyInSource)),
        ("duplicates balance", Multiset, vec![r(1, "a"), r(2, "b"), r(1, "a")], vec![r(1, "a"), r(1, "a"), r(2, "b")], None),
        ("duplicates swapped", Multiset, vec![r(1, "a"), r(1, "a"), r(2, "b")], vec![r(1, "a"), r(2, "b"), r(2, "b")], Some(OnlyInSource)),
        ("extra target row", Multiset, vec![r(1, "a")], vec![r(1, "a"), r(2, "b")], Some(OnlyInTarget)),
        ("extra target row in order", InOrder, vec![r(1, "a")], vec![r(1, "a"), r(2, "b")], Some(OnlyInTarget)),
        ("missing target row in order", InOrder, vec![r(1, "a"), r(2, "b")], vec![r(1, "a")], Some(OnlyInSource)),
        ("changed row by key", Multiset, vec![r(1, "a"), r(2, "b")], vec![r(2, "B"), r(1, "a")], Some(Values)),
        ("changed key", Multiset, vec![r(1, "a")], vec![r(3, "a")], Some(OnlyInSource)),
    ];
    for (name, order, source, target, want) in cases {
        assert_eq!(outcome(source, target, order), want, "{name}");
    }
}

#[test]
fn a_changed_row_is_sampled_with_its_key_and_columns() {
    let source = rows(
        &["ID", "path", "method"],
        vec![
            vec![int(1), text("/a"), text("GET")],
            vec![int(2), text("/b"), Value::Null],
        ],
    );
    let target = rows(
        &["id", "path", "method"],
        vec![
            vec![int(2), text("/B"), text("")],
            vec![int(1), text("/a"), text("GET")],
        ],
    );
    let difference = compare(&source, &target, RowOrder::Multiset, &keys()).unwrap();
    expect_test::expect![[r#"{"kind":"values","key":[["ID","2"]],"columns":[{"column":"path","source":"/b","target":"/B"},{"column":"method","source":null,"target":""}],"source_rows":2,"target_rows":2}"#]]
    .assert_eq(&serde_json::to_string(&difference).unwrap());
}

#[test]
fn a_row_on_one_side_is_sampled_whole() {
    let source = rows(&["id", "v"], vec![vec![int(1), dec("2.50")]]);
    let target = rows(&["id", "v"], vec![]);
    let difference = compare(&source, &target, RowOrder::InOrder, &keys()).unwrap();
    expect_test::expect![[r#"{"kind":"only_in_source","key":[["id","1"]],"columns":[{"column":"id","source":"1","target":null},{"column":"v","source":"2.5","target":null}],"source_rows":1,"target_rows":0}"#]]
    .assert_eq(&serde_json::to_string(&difference).unwrap());
}

#[test]
fn without_key_columns_a_sample_has_no_key() {
    let source = rows(&["v"], vec![vec![int(1)]]);
    let target = rows(&["v"], vec![vec![int(2)]]);
    let difference = compare(&source, &target, RowOrder::Multiset, &keys()).unwrap();
    assert_eq!(difference.kind, DifferenceKind::OnlyInSource);
    assert!(difference.key.is_empty());
}

#[test]
fn other_columns_are_a_difference() {
    let source = rows(&["id", "path"], vec![]);
    let target = rows(&["id", "endpoint_path"], vec![]);
    let difference = compare(&source, &target, RowOrder::Multiset, &keys()).unwrap();
    assert_eq!(difference.kind, DifferenceKind::Columns);
    assert_eq!(difference.columns[1].source.as_deref(), Some("path"));
    assert_eq!(
        difference.columns[1].target.as_deref(),
        Some("endpoint_path")
    );
}

#[test]
fn samples_are_bounded() {
    let wide = |v: &str| {
        vec![vec![int(1)]
            .into_iter()
            .chain((0..40).map(|_| text(v)))
            .collect()]
    };
    let columns: Vec<String> = std::iter::once("id".to_string())
        .chain((0..40).map(|i| format!("c{i}")))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let long = "x".repeat(10_000);
    let difference = compare(
        &rows(&columns, wide(&long)),
        &rows(&columns, wide("y")),
        RowOrder::Multiset,
        &keys(),
    )
    .unwrap();
    assert_eq!(difference.columns.len(), MAX_COLUMNS);
    let shown = difference.columns[0].source.as_ref().unwrap();
    assert_eq!(shown.chars().count(), MAX_TEXT + 1, "cut, with an ellipsis");
}

#[test]
#[rustfmt::skip]
fn texts_parse_to_values() {
    let cases: Vec<(Option<Value>, Value)> = vec![
        (Value::decimal("0012.3400"), Value::Decimal("12.34".into())),
        (Value::decimal("-0.0010"), Value::Decimal("-0.001".into())),
        (Value::decimal("+5"), int(5)),
        (Value::decimal(".5"), Value::Decimal("0.5".into())),
        (Value::decimal("1e-2"), Value::Decimal("0.01".into())),
        (Value::decimal("NaN"), Value::Decimal("nan".into())),
        (crate::shadow::value::parse_date("1970-01-02").map(Value::Date), Value::Date(1)),
        (crate::shadow::value::parse_time("-838:59:59").map(Value::Time), Value::Time(-3_020_399_000_000)),
        (crate::shadow::value::parse_time("00:00:01.25").map(Value::Time), Value::Time(1_250_000)),
        (parse_timestamp("1970-01-01 00:00:01"), Value::LocalTimestamp(1_000_000)),
        (parse_timestamp("1970-01-01 01:00:00+01"), Value::Timestamp(0)),
    ];
    for (got, want) in cases {
        assert_eq!(got.as_ref(), Some(&want));
    }
    assert_eq!(Value::decimal("1.2.3"), None);
    assert_eq!(Value::decimal(""), None);
    assert_eq!(Value::Timestamp(0).to_string(), "1970-01-01 00:00:00+00");
    assert_eq!(Value::Time(-1_500_000).to_string(), "-00:00:01.500000");
}
