//! The read verdict: whether a migration's target serves reads well enough
//! to keep them, judged over a sliding window of its recent reads against
//! the migration's `rollback` thresholds (DESIGN.md, "Automatic read
//! rollback").
//!
//! The proxy keeps one [`ReadWindow`] per migration, records every read
//! that ran on either path (served to the client or run as a shadow) and
//! every shadow comparison, and calls [`ReadWindow::evaluate`]. On
//! [`Verdict::Breach`] it rolls the target's reads back; on
//! [`Verdict::Warn`] it alerts; only [`Verdict::Healthy`] lets a ramp go on.
//!
//! The rules, checked in this order; the first that holds is the verdict:
//!
//! 1. **timeouts**: `max_timeouts` target timeouts in the window breach,
//!    however few reads there are. A hung target produces few samples, and
//!    waiting for `min_samples` of them would hold clients for minutes.
//! 2. Fewer than `min_samples` target reads: [`Verdict::NotEnoughSamples`].
//!    Too little data is never a breach and never healthy: hold.
//! 3. **error_rate**: (errors + timeouts) / target reads ≥ `max_error_rate`.
//! 4. **mismatch_rate**: mismatches / compared reads ≥ `max_mismatch_rate`,
//!    where fewer comparisons than `min_samples` count as `min_samples`.
//!    Shadow reads are a small share of reads, so waiting for
//!    `min_samples` comparisons could take many windows; counting over the
//!    minimum instead means a handful of comparisons can only breach with
//!    as many mismatches as would breach over `min_samples` of them.
//! 5. **latency**: the target's p99 over the source's p99 ≥
//!    `max_latency_ratio`, judged only when both paths have `min_samples`
//!    answered reads in the window; without source reads there is nothing
//!    to compare with, and no latency verdict.
//! 6. A warning when the error rate ≥ `warn_error_rate`.
//! 7. Otherwise healthy.
//!
//! Every rate rule needs at least one failure or mismatch, so a threshold
//! of 0 means "any" rather than "always". Breaches come in the order above
//! because it runs from the most urgent (a hung target) to the slowest to
//! establish (a latency quantile).
//!
//! This module never reads a clock, sleeps or does IO: every method that
//! depends on time takes `now`, so the verdict is a pure function of what
//! was recorded and when.

mod finding;
mod histogram;
mod window;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use switchyard_core::config::Rollback;

pub use finding::{Figures, Finding, Reason};
pub use histogram::{LatencyHistogram, RELATIVE_ERROR};
pub use window::{PathTotals, ReadOutcome, ReadWindow, ShadowOutcome, ShadowTotals, WindowTotals};

/// The limits a window is judged against: a migration's `rollback`
/// settings, less the window length, which the [`ReadWindow`] holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    /// Target reads needed before any verdict but a timeout breach.
    pub min_samples: u64,
    /// Error rate (0..=1) that warns.
    pub warn_error_rate: f64,
    /// Error rate (0..=1) that breaches.
    pub max_error_rate: f64,
    /// Shadow mismatch rate (0..=1) that breaches.
    pub max_mismatch_rate: f64,
    /// Target p99 over source p99 that breaches.
    pub max_latency_ratio: f64,
    /// A target p99 below this never breaches for latency.
    pub latency_floor: Duration,
    /// Target timeouts in the window that breach, whatever the samples.
    pub max_timeouts: u64,
}

impl From<&Rollback> for Thresholds {
    fn from(rollback: &Rollback) -> Thresholds {
        Thresholds {
            min_samples: rollback.min_samples,
            warn_error_rate: rollback.warn_error_rate,
            max_error_rate: rollback.max_error_rate,
            max_mismatch_rate: rollback.max_mismatch_rate,
            max_latency_ratio: rollback.max_latency_ratio,
            latency_floor: rollback.latency_floor,
            max_timeouts: rollback.max_timeouts,
        }
    }
}

impl Default for Thresholds {
    /// The `rollback` defaults.
    fn default() -> Thresholds {
        Thresholds::from(&Rollback::default())
    }
}

/// How the target's reads stand over the window.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Enough reads, and no rule tripped: a ramp may go on.
    Healthy,
    /// The error rate is at the warning level but below the rollback's.
    Warn(Finding),
    /// A rule tripped: roll the target's reads back.
    Breach(Finding),
    /// Too few target reads to judge: hold, neither ramp nor roll back.
    NotEnoughSamples {
        /// Target reads in the window.
        have: u64,
        /// `min_samples`.
        need: u64,
    },
}

impl Verdict {
    /// What a warning or a breach found.
    pub fn finding(&self) -> Option<&Finding> {
        match self {
            Verdict::Warn(finding) | Verdict::Breach(finding) => Some(finding),
            Verdict::Healthy | Verdict::NotEnoughSamples { .. } => None,
        }
    }

    /// The rule behind a warning or a breach.
    pub fn reason(&self) -> Option<Reason> {
        self.finding().map(Finding::reason)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Healthy => f.write_str("healthy"),
            Verdict::Warn(finding) => write!(f, "warning: {finding}"),
            Verdict::Breach(finding) => write!(f, "breach: {finding}"),
            Verdict::NotEnoughSamples { have, need } => {
                write!(f, "not enough target reads to judge: {have} of {need}")
            }
        }
    }
}

impl WindowTotals {
    /// Judges these totals (the module docs give the rules and their order).
    pub fn verdict(&self, thresholds: &Thresholds) -> Verdict {
        let finding = |figures| Finding {
            window: self.window,
            figures,
        };
        if let Some(figures) = self.timeouts(thresholds) {
            return Verdict::Breach(finding(figures));
        }
        let reads = self.target.reads();
        if reads < thresholds.min_samples {
            return Verdict::NotEnoughSamples {
                have: reads,
                need: thresholds.min_samples,
            };
        }
        let breach = self
            .error_rate(thresholds.max_error_rate)
            .or_else(|| self.mismatch_rate(thresholds))
            .or_else(|| self.latency(thresholds));
        if let Some(figures) = breach {
            return Verdict::Breach(finding(figures));
        }
        match self.error_rate(thresholds.warn_error_rate) {
            Some(figures) => Verdict::Warn(finding(figures)),
            None => Verdict::Healthy,
        }
    }

    fn timeouts(&self, thresholds: &Thresholds) -> Option<Figures> {
        let timeouts = self.target.timeouts;
        (timeouts > 0 && timeouts >= thresholds.max_timeouts).then(|| Figures::Timeouts {
            timeouts,
            reads: self.target.reads(),
            max_timeouts: thresholds.max_timeouts,
        })
    }

    fn error_rate(&self, threshold: f64) -> Option<Figures> {
        let (failed, reads) = (self.target.failed(), self.target.reads());
        // A rate by division, so an exact boundary (150 of 3000 at 5%)
        // compares equal to the threshold as written.
        (failed > 0 && failed as f64 / reads as f64 >= threshold).then_some(Figures::ErrorRate {
            failed,
            timeouts: self.target.timeouts,
            reads,
            threshold,
        })
    }

    fn mismatch_rate(&self, thresholds: &Thresholds) -> Option<Figures> {
        let mismatches = self.shadow.mismatches;
        let compared = self.shadow.compared();
        let judged_over = compared.max(thresholds.min_samples);
        let rate = mismatches as f64 / judged_over as f64;
        (mismatches > 0 && rate >= thresholds.max_mismatch_rate).then_some(Figures::MismatchRate {
            mismatches,
            compared,
            judged_over,
            threshold: thresholds.max_mismatch_rate,
        })
    }

    fn latency(&self, thresholds: &Thresholds) -> Option<Figures> {
        let (target, source) = (&self.target.latency, &self.source.latency);
        let enough = |h: &LatencyHistogram| h.count() >= thresholds.min_samples;
        if !enough(target) || !enough(source) {
            return None;
        }
        let figures = Figures::Latency {
            target_p99: target.p99()?,
            source_p99: source.p99()?,
            target_reads: target.count(),
            source_reads: source.count(),
            threshold: thresholds.max_latency_ratio,
        };
        let slow = target.p99()? >= thresholds.latency_floor;
        (slow && figures.measured() >= thresholds.max_latency_ratio).then_some(figures)
    }
}
