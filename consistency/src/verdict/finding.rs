//! What a warning or a breach found: the rule that tripped, the figures
//! behind it, and the sentence an operator reads in an alert or a log.

use std::fmt;
use std::time::Duration;

/// Which rule tripped. The label is the `reason` of
/// `switchyard_rollbacks_total{migration,reason}` and of alerts, so it
/// never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `max_timeouts` target reads timed out in the window.
    Timeouts,
    /// Failed target reads over target reads reached the limit.
    ErrorRate,
    /// Shadow mismatches over compared reads reached the limit.
    MismatchRate,
    /// The target's p99 latency over the source's reached the limit.
    Latency,
}

impl Reason {
    /// Every reason, in the order the rules are checked.
    pub const ALL: [Reason; 4] = [
        Reason::Timeouts,
        Reason::ErrorRate,
        Reason::MismatchRate,
        Reason::Latency,
    ];

    /// The metric and alert label.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Timeouts => "timeouts",
            Reason::ErrorRate => "error_rate",
            Reason::MismatchRate => "mismatch_rate",
            Reason::Latency => "latency",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The numbers one rule judged, each variant with what its sentence needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Figures {
    /// Timed-out target reads against `max_timeouts`.
    Timeouts {
        /// Target reads that timed out in the window.
        timeouts: u64,
        /// Target reads in the window, however they ended.
        reads: u64,
        /// The limit (`rollback.max_timeouts`).
        max_timeouts: u64,
    },
    /// Failed target reads (errors and timeouts) over target reads.
    ErrorRate {
        /// Target reads that failed or timed out.
        failed: u64,
        /// Of which timed out.
        timeouts: u64,
        /// Target reads in the window.
        reads: u64,
        /// The rate reached: `max_error_rate` for a breach,
        /// `warn_error_rate` for a warning.
        threshold: f64,
    },
    /// Shadow mismatches over compared reads.
    MismatchRate {
        /// Comparisons that found different rows.
        mismatches: u64,
        /// Comparisons that ran to a result.
        compared: u64,
        /// The denominator used: `compared`, or `min_samples` when fewer
        /// were compared, so a few comparisons cannot make a large rate.
        judged_over: u64,
        /// `max_mismatch_rate`.
        threshold: f64,
    },
    /// The target's p99 latency over the source's.
    Latency {
        /// p99 of the target's answered reads.
        target_p99: Duration,
        /// p99 of the source's answered reads.
        source_p99: Duration,
        /// Answered target reads in the window.
        target_reads: u64,
        /// Answered source reads in the window.
        source_reads: u64,
        /// `max_latency_ratio`.
        threshold: f64,
    },
}

impl Figures {
    /// The rule these figures belong to.
    pub fn reason(&self) -> Reason {
        match self {
            Figures::Timeouts { .. } => Reason::Timeouts,
            Figures::ErrorRate { .. } => Reason::ErrorRate,
            Figures::MismatchRate { .. } => Reason::MismatchRate,
            Figures::Latency { .. } => Reason::Latency,
        }
    }

    /// The measured value: a count of timeouts, a rate from 0 to 1, or a
    /// ratio of latencies.
    pub fn measured(&self) -> f64 {
        match self {
            Figures::Timeouts { timeouts, .. } => *timeouts as f64,
            Figures::ErrorRate { failed, reads, .. } => *failed as f64 / *reads as f64,
            Figures::MismatchRate {
                mismatches,
                judged_over,
                ..
            } => *mismatches as f64 / *judged_over as f64,
            Figures::Latency {
                target_p99,
                source_p99,
                ..
            } => target_p99.as_secs_f64() / source_p99.as_secs_f64(),
        }
    }

    /// The reads behind the figures: target reads, or compared shadow reads.
    pub fn samples(&self) -> u64 {
        match self {
            Figures::Timeouts { reads, .. }
            | Figures::ErrorRate { reads, .. }
            | Figures::Latency {
                target_reads: reads,
                ..
            } => *reads,
            Figures::MismatchRate { compared, .. } => *compared,
        }
    }

    /// The limit the measured value reached, in the same unit.
    pub fn threshold(&self) -> f64 {
        match self {
            Figures::Timeouts { max_timeouts, .. } => *max_timeouts as f64,
            Figures::ErrorRate { threshold, .. }
            | Figures::MismatchRate { threshold, .. }
            | Figures::Latency { threshold, .. } => *threshold,
        }
    }
}

/// A rule that tripped, over which window, with its figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The window the figures cover (`rollback.window`).
    pub window: Duration,
    /// What was measured.
    pub figures: Figures,
}

impl Finding {
    /// The rule that tripped.
    pub fn reason(&self) -> Reason {
        self.figures.reason()
    }
}

/// One sentence for alerts and logs, e.g. `target error rate 7.1% over 30s
/// (213 of 3000 reads) ≥ 5%`.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = span(self.window);
        let measured = self.figures.measured();
        match &self.figures {
            Figures::Timeouts {
                timeouts,
                reads,
                max_timeouts,
            } => write!(
                f,
                "target timeouts {timeouts} over {window} (of {reads} reads) ≥ {max_timeouts}"
            ),
            Figures::ErrorRate {
                failed,
                timeouts,
                reads,
                threshold,
            } => {
                let rate = percent(measured);
                write!(f, "target error rate {rate} over {window} ({failed} of {reads} reads")?;
                if *timeouts > 0 {
                    write!(f, ", {timeouts} of them timeouts")?;
                }
                write!(f, ") ≥ {}", percent(*threshold))
            }
            Figures::MismatchRate {
                mismatches,
                compared,
                judged_over,
                threshold,
            } => {
                let rate = percent(measured);
                write!(f, "shadow mismatch rate {rate} over {window} ({mismatches} of {compared} compared reads")?;
                if judged_over > compared {
                    write!(f, ", counted over the minimum of {judged_over}")?;
                }
                write!(f, ") ≥ {}", percent(*threshold))
            }
            Figures::Latency {
                target_p99,
                source_p99,
                target_reads,
                source_reads,
                threshold,
            } => write!(
                f,
                "target p99 latency {} the source's over {window} ({} against {}, {target_reads} and {source_reads} reads) ≥ {}",
                times(measured),
                latency(*target_p99),
                latency(*source_p99),
                times(*threshold)
            ),
        }
    }
}

/// A rate as a percentage with the decimals that matter: `7.1%`, `5%`,
/// `4.97%`, `0.005%`. Two decimals keep a rate just under a threshold from
/// printing as the threshold itself.
fn percent(rate: f64) -> String {
    let value = rate * 100.0;
    let decimals = if value >= 0.1 { 2 } else { 3 };
    format!("{}%", trim(format!("{value:.decimals$}")))
}

/// A ratio: `4.2x`, `3x`.
fn times(ratio: f64) -> String {
    format!("{}x", trim(format!("{ratio:.1}")))
}

/// A window, written as the file writes durations: `30s`, `1m30s`, `500ms`.
fn span(window: Duration) -> String {
    if window.subsec_millis() != 0 || window.is_zero() {
        return format!("{}ms", window.as_millis());
    }
    let secs = window.as_secs();
    let parts = [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// A latency with three significant digits at most: `84ms`, `1.2ms`,
/// `350µs`, `2.5s`.
fn latency(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    match micros {
        m if m >= 1e6 => format!("{}s", trim(format!("{:.2}", m / 1e6))),
        m if m >= 1e3 => format!("{}ms", trim(format!("{:.1}", m / 1e3))),
        m => format!("{m:.0}µs"),
    }
}

/// Drops trailing zeros after a decimal point, and the point if bare.
fn trim(mut number: String) -> String {
    if number.contains('.') {
        let kept = number.trim_end_matches('0').trim_end_matches('.').len();
        number.truncate(kept);
    }
    number
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_written() {
        let percents: &[(f64, &str)] = &[
            (0.071, "7.1%"),
            (0.05, "5%"),
            (149.0 / 3000.0, "4.97%"),
            (0.001, "0.1%"),
            (0.0025, "0.25%"),
            (0.00005, "0.005%"),
            (0.0, "0%"),
            (1.0, "100%"),
        ];
        for (rate, text) in percents {
            assert_eq!(percent(*rate), *text, "{rate}");
        }
        let spans: &[(u64, &str)] = &[
            (30_000, "30s"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (1_500, "1500ms"),
            (0, "0ms"),
        ];
        for (ms, text) in spans {
            assert_eq!(span(Duration::from_millis(*ms)), *text, "{ms}");
        }
        let latencies: &[(u64, &str)] = &[
            (84_000, "84ms"),
            (1_234, "1.2ms"),
            (350, "350µs"),
            (2_500_000, "2.5s"),
        ];
        for (micros, text) in latencies {
            assert_eq!(latency(Duration::from_micros(*micros)), *text, "{micros}");
        }
        assert_eq!((times(4.2), times(3.0)), ("4.2x".into(), "3x".into()));
    }

    #[test]
    fn labels_are_stable() {
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            ["timeouts", "error_rate", "mismatch_rate", "latency"]
        );
    }
}
