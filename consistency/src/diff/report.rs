//! A diff's result: what was compared, what differs, and how fast, as
//! JSON (serde) and as a table an operator reads at a glance.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::compared::Range;

/// How deep a diff looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Row counts and key bounds of both tables.
    Basic,
    /// A checksum per chunk on both sides; names the chunks that differ.
    Standard,
    /// Standard, then every row of each differing chunk compared.
    Detailed,
    /// Every row and column of every chunk compared.
    Full,
}

impl Level {
    /// The level as the CLI and the JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Basic => "basic",
            Level::Standard => "standard",
            Level::Detailed => "detailed",
            Level::Full => "full",
        }
    }
}

/// What differs about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The source has the row, the target does not.
    MissingInTarget,
    /// The target has a row the source does not.
    ExtraInTarget,
    /// Both have the row, and some columns differ.
    Changed,
}

/// One differing column of a changed row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDiff {
    /// The source column.
    pub column: String,
    /// The target column it maps to.
    pub target_column: String,
    /// The source's value as compared (in the target's type where the
    /// column is retyped); `None` is NULL.
    pub source: Option<String>,
    /// The target's value; `None` is NULL.
    pub target: Option<String>,
    /// What makes the two easy to mistake for equal (case, trailing
    /// spaces, NULL against empty), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One differing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    /// The key's values as text, in key order.
    pub key: Vec<String>,
    /// What differs.
    pub kind: Kind,
    /// The differing columns of a changed row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
}

/// Differing keys by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Rows the target lacks.
    pub missing_in_target: u64,
    /// Rows only the target has.
    pub extra_in_target: u64,
    /// Rows with differing columns.
    pub changed: u64,
}

impl Counts {
    /// Every differing key.
    pub fn total(&self) -> u64 {
        self.missing_in_target + self.extra_in_target + self.changed
    }
}

/// A diff's whole result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The migration compared.
    pub migration: String,
    /// The level it ran at.
    pub level: Level,
    /// The source table.
    pub source: String,
    /// The target table.
    pub target: String,
    /// The key's columns, in key order.
    pub key: Vec<String>,
    /// Whether source and target agree (at this level).
    pub clean: bool,
    /// Rows the source holds (as counted by the diff).
    pub source_rows: u64,
    /// Rows the target holds.
    pub target_rows: u64,
    /// Chunks compared.
    pub chunks: u64,
    /// The key ranges whose checksums differed (standard and deeper).
    pub differing_chunks: Vec<Range>,
    /// Differing keys by kind (detailed and full; at basic and standard
    /// only what counts show).
    pub counts: Counts,
    /// Differing keys with their columns side by side: a sample, or all
    /// of them when asked.
    pub differences: Vec<RowDiff>,
    /// Whether `differences` holds every differing key.
    pub all_keys: bool,
    /// The share of rows known to agree: 1 − differing ÷ rows (at
    /// standard, every row of a differing chunk counts as differing).
    pub score: f64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Source rows compared per second.
    pub rows_per_second: f64,
    /// Set when a basic diff could only compare counts and bounds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.clean { "CLEAN" } else { "DIFFERENT" };
        writeln!(
            f,
            "diff {} ({}): {} → {}: {verdict}",
            self.migration,
            self.level.as_str(),
            self.source,
            self.target
        )?;
        writeln!(
            f,
            "  rows        source {}  target {}  chunks {}  differing chunks {}",
            self.source_rows,
            self.target_rows,
            self.chunks,
            self.differing_chunks.len()
        )?;
        writeln!(
            f,
            "  differences missing in target {}  extra in target {}  changed {}",
            self.counts.missing_in_target, self.counts.extra_in_target, self.counts.changed
        )?;
        writeln!(
            f,
            "  score       {:.6}   time {:.2}s   {:.0} rows/s",
            self.score, self.seconds, self.rows_per_second
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        if !self.differences.is_empty() {
            let shown = if self.all_keys { "all" } else { "sample" };
            writeln!(
                f,
                "  differing keys ({shown}; key {}):",
                self.key.join(", ")
            )?;
            for row in &self.differences {
                let key = row.key.join(", ");
                match row.kind {
                    Kind::MissingInTarget => writeln!(f, "    {key}: missing in target")?,
                    Kind::ExtraInTarget => writeln!(f, "    {key}: extra in target")?,
                    Kind::Changed => {
                        writeln!(f, "    {key}: changed")?;
                        for c in &row.columns {
                            let show = |v: &Option<String>| {
                                v.as_ref().map_or("NULL".to_string(), |v| format!("{v:?}"))
                            };
                            write!(
                                f,
                                "      {} → {}: source {}  target {}",
                                c.column,
                                c.target_column,
                                show(&c.source),
                                show(&c.target)
                            )?;
                            match &c.note {
                                Some(note) => writeln!(f, "  ({note})")?,
                                None => writeln!(f)?,
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
