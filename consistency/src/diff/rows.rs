//! Row-level comparison of one chunk: both tables' rows, as
//! [`Compared::rows`](super::compared::Compared::rows) lists them, paired
//! by key and compared column by column. Pure.
//!
//! Values are compared as the bytes the server printed for the compared
//! expressions, the same expressions the chunk hash covers, so the two
//! levels never disagree about what "equal" means. A difference that
//! only a case-insensitive collation or trailing-space padding would hide
//! is still a difference, and is noted as such.

use std::collections::BTreeMap;

use super::conn::{show, Cell};
use super::report::{ColumnDiff, Kind, RowDiff};

/// One key's values on the source and on the target, where it has any.
type Sides = (Option<Vec<Cell>>, Option<Vec<Cell>>);

/// The differences among `rows` (each: side mark `s`/`t`, `key_len` key
/// cells, then one cell per column of `columns`, as (source, target)
/// names), in key order.
pub fn differences(
    rows: Vec<Vec<Cell>>,
    key_len: usize,
    columns: &[(String, String)],
) -> Vec<RowDiff> {
    let mut pairs: BTreeMap<Vec<Cell>, Sides> = BTreeMap::new();
    for mut row in rows {
        if row.len() < 1 + key_len {
            continue;
        }
        let values = row.split_off(1 + key_len);
        let key = row.split_off(1);
        let entry = pairs.entry(key).or_default();
        match row[0].as_deref() {
            Some(b"s") => entry.0 = Some(values),
            _ => entry.1 = Some(values),
        }
    }
    pairs
        .into_iter()
        .filter_map(|(key, sides)| {
            let key: Vec<String> = key.iter().map(|c| show(c).unwrap_or_default()).collect();
            match sides {
                (Some(_), None) => Some(RowDiff {
                    key,
                    kind: Kind::MissingInTarget,
                    columns: Vec::new(),
                }),
                (None, Some(_)) => Some(RowDiff {
                    key,
                    kind: Kind::ExtraInTarget,
                    columns: Vec::new(),
                }),
                (Some(source), Some(target)) => {
                    let changed: Vec<ColumnDiff> = columns
                        .iter()
                        .zip(source.iter().zip(&target))
                        .filter(|(_, (s, t))| s != t)
                        .map(|((source_name, target_name), (s, t))| ColumnDiff {
                            column: source_name.clone(),
                            target_column: target_name.clone(),
                            source: show(s),
                            target: show(t),
                            note: note(s, t),
                        })
                        .collect();
                    (!changed.is_empty()).then_some(RowDiff {
                        key,
                        kind: Kind::Changed,
                        columns: changed,
                    })
                }
                (None, None) => None,
            }
        })
        .collect()
}

/// Narrows a differing chunk by its keys and row hashes (each listed
/// row: side mark, `key_len` key cells, the hash): the keys only one side
/// has are differences as they stand; the keys whose hashes differ are
/// returned to be read whole and compared column by column.
pub fn narrow(listing: Vec<Vec<Cell>>, key_len: usize) -> (Vec<RowDiff>, Vec<Vec<String>>) {
    let mut pairs: BTreeMap<Vec<Cell>, (Option<Cell>, Option<Cell>)> = BTreeMap::new();
    for mut row in listing {
        if row.len() != 2 + key_len {
            continue;
        }
        let hash = row.pop().flatten();
        let key = row.split_off(1);
        let entry = pairs.entry(key).or_default();
        match row[0].as_deref() {
            Some(b"s") => entry.0 = Some(hash),
            _ => entry.1 = Some(hash),
        }
    }
    let mut found = Vec::new();
    let mut candidates = Vec::new();
    for (key, sides) in pairs {
        let text: Vec<String> = key.iter().map(|c| show(c).unwrap_or_default()).collect();
        match sides {
            (Some(_), None) => found.push(RowDiff {
                key: text,
                kind: Kind::MissingInTarget,
                columns: Vec::new(),
            }),
            (None, Some(_)) => found.push(RowDiff {
                key: text,
                kind: Kind::ExtraInTarget,
                columns: Vec::new(),
            }),
            (Some(s), Some(t)) if s != t => candidates.push(text),
            _ => {}
        }
    }
    (found, candidates)
}

/// What makes two unequal values easy to mistake for equal, if anything.
fn note(source: &Cell, target: &Cell) -> Option<String> {
    match (source, target) {
        (None, Some(t)) if t.is_empty() => Some("NULL in the source, empty in the target".into()),
        (Some(s), None) if s.is_empty() => Some("empty in the source, NULL in the target".into()),
        (Some(s), Some(t)) => {
            let (s, t) = (String::from_utf8_lossy(s), String::from_utf8_lossy(t));
            if s.to_lowercase() == t.to_lowercase() {
                Some("differs only in letter case (equal under a case-insensitive collation; compared as stored)".into())
            } else if s.trim_end() == t.trim_end() {
                Some("differs only in trailing spaces".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str) -> Cell {
        Some(v.as_bytes().to_vec())
    }

    fn row(side: &str, key: &str, values: &[Option<&str>]) -> Vec<Cell> {
        let mut row = vec![cell(side), cell(key)];
        row.extend(values.iter().map(|v| v.map(|v| v.as_bytes().to_vec())));
        row
    }

    #[test]
    fn pairs_rows_by_key_and_names_each_difference() {
        let columns = vec![
            ("id".to_string(), "id".to_string()),
            ("path".to_string(), "endpoint_path".to_string()),
            ("note".to_string(), "note".to_string()),
        ];
        let rows = vec![
            row("s", "1", &[Some("1"), Some("/a"), None]),
            row("t", "1", &[Some("1"), Some("/a"), None]),
            row("s", "2", &[Some("2"), Some("/b"), None]),
            row("t", "2", &[Some("2"), Some("/B"), Some("")]),
            row("s", "3", &[Some("3"), Some("/c"), None]),
            row("t", "4", &[Some("4"), Some("/d"), None]),
            row("s", "5", &[Some("5"), Some("/e "), None]),
            row("t", "5", &[Some("5"), Some("/e"), None]),
        ];
        let found = differences(rows, 1, &columns);
        let summary: Vec<String> = found
            .iter()
            .map(|d| {
                let cols: Vec<String> = d
                    .columns
                    .iter()
                    .map(|c| {
                        format!(
                            "{}->{} {:?}/{:?} {:?}",
                            c.column, c.target_column, c.source, c.target, c.note
                        )
                    })
                    .collect();
                format!("{} {:?} [{}]", d.key.join(","), d.kind, cols.join("; "))
            })
            .collect();
        expect_test::expect![[r#"
            [
                "2 Changed [path->endpoint_path Some(\"/b\")/Some(\"/B\") Some(\"differs only in letter case (equal under a case-insensitive collation; compared as stored)\"); note->note None/Some(\"\") Some(\"NULL in the source, empty in the target\")]",
                "3 MissingInTarget []",
                "4 ExtraInTarget []",
                "5 Changed [path->endpoint_path Some(\"/e \")/Some(\"/e\") Some(\"differs only in trailing spaces\")]",
            ]
        "#]]
        .assert_debug_eq(&summary);
    }
}
