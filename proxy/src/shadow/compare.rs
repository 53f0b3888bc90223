//! Comparing the source's and the target's answer to one read, and
//! describing the first difference in a bounded sample an operator can act
//! on (which row, which column, both values).
//!
//! Pure: no IO, no clock. Values arrive normalised ([`Value`]), so equality
//! here is equality by meaning.

use std::collections::HashMap;

use serde::Serialize;

use super::eligibility::RowOrder;
use super::value::Value;

/// Differing columns kept in one sample, so a wide row cannot make a large
/// sample.
const MAX_COLUMNS: usize = 16;
/// Characters kept of one value in a sample.
const MAX_TEXT: usize = 256;

/// One side's answer: column names and rows of normalised values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    /// Column names as the server reported them.
    pub columns: Vec<String>,
    /// The rows, in the order the server sent them.
    pub rows: Vec<Vec<Value>>,
}

/// What kind of difference a sample shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A row with the same key (or at the same position, when ordered) has
    /// other values.
    Values,
    /// A row the source returned and the target did not.
    OnlyInSource,
    /// A row the target returned and the source did not.
    OnlyInTarget,
    /// The two results have other columns (names or count).
    Columns,
}

/// One column of a sample: its name and each side's value as text.
/// `None` is SQL NULL (or, for a row on one side only, the side without it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ColumnDifference {
    /// The column's name in the source's result.
    pub column: String,
    /// The source's value.
    pub source: Option<String>,
    /// The target's value.
    pub target: Option<String>,
}

/// The first difference found between two answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What differs.
    pub kind: DifferenceKind,
    /// The row's key, column by column, when the result has every key
    /// column (by name); empty otherwise.
    pub key: Vec<(String, Option<String>)>,
    /// The differing columns (every column for a row on one side only), at
    /// most `MAX_COLUMNS`.
    pub columns: Vec<ColumnDifference>,
    /// Rows the source returned.
    pub source_rows: usize,
    /// Rows the target returned.
    pub target_rows: usize,
}

/// Compares two answers; `None` when they agree. `order` says whether row
/// order counts; `key_columns` name the columns that identify a row in a
/// sample.
pub fn compare(
    source: &Rows,
    target: &Rows,
    order: RowOrder,
    key_columns: &[String],
) -> Option<Difference> {
    let sample = Sample {
        source,
        target,
        key: key_positions(&source.columns, key_columns),
    };
    if !same_columns(&source.columns, &target.columns) {
        return Some(sample.columns());
    }
    match order {
        RowOrder::InOrder => compare_in_order(&sample),
        RowOrder::Multiset => compare_multisets(&sample),
    }
}

/// Column names compare without case: MySQL and PostgreSQL report an
/// alias as written or folded, and the rewriter aliases target columns
/// back to the source's names.
fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Where each key column is in the result, if all of them are.
fn key_positions(columns: &[String], key_columns: &[String]) -> Option<Vec<usize>> {
    if key_columns.is_empty() {
        return None;
    }
    key_columns
        .iter()
        .map(|k| columns.iter().position(|c| c.eq_ignore_ascii_case(k)))
        .collect()
}

fn compare_in_order(sample: &Sample) -> Option<Difference> {
    let (source, target) = (&sample.source.rows, &sample.target.rows);
    if let Some((s, t)) = source.iter().zip(target).find(|(s, t)| s != t) {
        return Some(sample.values(s, t));
    }
    match source.len().cmp(&target.len()) {
        std::cmp::Ordering::Greater => Some(sample.only_in_source(&source[target.len()])),
        std::cmp::Ordering::Less => Some(sample.only_in_target(&target[source.len()])),
        std::cmp::Ordering::Equal => None,
    }
}

/// Rows as multisets: each distinct row counted on both sides. A row
/// surplus on both sides with the same key is one changed row; otherwise
/// the first surplus row is reported as present on one side only.
fn compare_multisets(sample: &Sample) -> Option<Difference> {
    let (source, target) = (&sample.source.rows, &sample.target.rows);
    let mut counts: HashMap<&[Value], i64> = HashMap::new();
    for row in source {
        *counts.entry(row).or_default() += 1;
    }
    for row in target {
        *counts.entry(row).or_default() -= 1;
    }
    let surplus = |rows: &'_ [Vec<Value>], sign: i64| -> Vec<usize> {
        let mut left = counts.clone();
        let mut found = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let n = left.get_mut(row.as_slice()).expect("every row was counted");
            if *n * sign > 0 {
                *n -= sign;
                found.push(i);
            }
        }
        found
    };
    let in_source = surplus(source, 1);
    let in_target = surplus(target, -1);
    let first_source = in_source.first().map(|&i| &source[i]);
    if let (Some(s), Some(positions)) = (first_source, &sample.key) {
        let same_key = |t: &&usize| positions.iter().all(|&k| target[**t][k] == s[k]);
        if let Some(&t) = in_target.iter().find(same_key) {
            return Some(sample.values(s, &target[t]));
        }
    }
    match (first_source, in_target.first()) {
        (Some(s), _) => Some(sample.only_in_source(s)),
        (None, Some(&t)) => Some(sample.only_in_target(&target[t])),
        (None, None) => None,
    }
}

/// Builds the sample of a difference between two answers.
struct Sample<'a> {
    /// The source's answer.
    source: &'a Rows,
    /// The target's answer.
    target: &'a Rows,
    /// Where the key columns are in both results, if they all are.
    key: Option<Vec<usize>>,
}

impl Sample<'_> {
    fn difference(
        &self,
        kind: DifferenceKind,
        key_row: Option<&[Value]>,
        columns: Vec<ColumnDifference>,
    ) -> Difference {
        let key = match (&self.key, key_row) {
            (Some(positions), Some(row)) => positions
                .iter()
                .map(|&i| (self.source.columns[i].clone(), text(&row[i])))
                .collect(),
            _ => Vec::new(),
        };
        Difference {
            kind,
            key,
            columns: columns.into_iter().take(MAX_COLUMNS).collect(),
            source_rows: self.source.rows.len(),
            target_rows: self.target.rows.len(),
        }
    }

    fn values(&self, source: &[Value], target: &[Value]) -> Difference {
        let columns = (0..source.len())
            .filter(|&i| source[i] != target[i])
            .map(|i| ColumnDifference {
                column: self.source.columns[i].clone(),
                source: text(&source[i]),
                target: text(&target[i]),
            })
            .collect();
        self.difference(DifferenceKind::Values, Some(source), columns)
    }

    fn only_in_source(&self, row: &[Value]) -> Difference {
        let columns = self.whole_row(row, |value| ColumnDifference {
            column: String::new(),
            source: value,
            target: None,
        });
        self.difference(DifferenceKind::OnlyInSource, Some(row), columns)
    }

    fn only_in_target(&self, row: &[Value]) -> Difference {
        let columns = self.whole_row(row, |value| ColumnDifference {
            column: String::new(),
            source: None,
            target: value,
        });
        self.difference(DifferenceKind::OnlyInTarget, Some(row), columns)
    }

    fn whole_row(
        &self,
        row: &[Value],
        side: impl Fn(Option<String>) -> ColumnDifference,
    ) -> Vec<ColumnDifference> {
        row.iter()
            .zip(&self.source.columns)
            .map(|(value, name)| ColumnDifference {
                column: name.clone(),
                ..side(text(value))
            })
            .collect()
    }

    fn columns(&self) -> Difference {
        let width = self.source.columns.len().max(self.target.columns.len());
        let columns = (0..width)
            .map(|i| ColumnDifference {
                column: format!("#{}", i + 1),
                source: self.source.columns.get(i).cloned(),
                target: self.target.columns.get(i).cloned(),
            })
            .collect();
        self.difference(DifferenceKind::Columns, None, columns)
    }
}

/// A value as sample text, `None` for NULL, cut to `MAX_TEXT` characters.
fn text(value: &Value) -> Option<String> {
    if *value == Value::Null {
        return None;
    }
    let full = value.to_string();
    Some(match full.char_indices().nth(MAX_TEXT) {
        Some((cut, _)) => format!("{}…", &full[..cut]),
        None => full,
    })
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
