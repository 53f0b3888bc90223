//! Switchyard's consistency engine: whether the target agrees with the
//! source. It judges in two ways: by the target's live reads, and (to come)
//! by diffing the tables.
//!
//! - `verdict`: the read verdict. A sliding window of one migration's reads
//!   on both paths and of shadow comparisons, judged against the
//!   migration's `rollback` thresholds as healthy, a warning, a breach
//!   (roll back) or not enough samples. Pure: the proxy records events and
//!   passes the time; nothing here reads a clock or does IO.
//! - `diff`: the table diff: both tables hashed chunk by chunk inside the
//!   servers, differing chunks drilled down to keys and columns, and a
//!   report.
//! - `repair`: differing or queued keys re-synced from the primary with the
//!   row-image sync the mirror runs (`switchyard_core::sync`), then
//!   checked again.
//!
//! It never writes except through repair.

pub mod diff;
pub mod repair;
pub mod verdict;

pub use verdict::{
    Figures, Finding, LatencyHistogram, PathTotals, ReadOutcome, ReadWindow, Reason, ShadowOutcome,
    ShadowTotals, Thresholds, Verdict, WindowTotals,
};
