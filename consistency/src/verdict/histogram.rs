//! A latency histogram of fixed size whose quantiles are within 2% of the
//! true value, and which adds up exactly: the window keeps one per path per
//! time bucket and merges them to judge the whole window.
//!
//! Bins grow geometrically (the mapping of DDSketch): bin `i` holds the
//! latencies in `(1µs·γ^(i-1), 1µs·γ^i]` with `γ = 1.02 / 0.98`, and reports
//! `2·1µs·γ^i / (γ + 1)`, which is within 2% of every latency in the bin.
//! So the error is relative (2% of 1ms is 20µs, of 1s is 20ms), the layout
//! is the same for every histogram (merging is adding counts bin by bin),
//! and memory does not depend on traffic: 560 bins cover 1µs to about
//! 86 minutes.

use std::time::Duration;

/// The largest relative error of a reported quantile, for latencies from
/// 1µs up to the top bin.
pub const RELATIVE_ERROR: f64 = 0.02;

/// Growth factor from one bin to the next: the widest ratio whose midpoint
/// estimate stays within [`RELATIVE_ERROR`] of both ends.
const GAMMA: f64 = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR);

/// The bottom of the scale; shorter latencies are counted as this. A read
/// through a proxy takes tens of microseconds at least.
const FLOOR_NANOS: f64 = 1_000.0;

/// Bins from 1µs to 1µs·γ^559 ≈ 86 minutes; longer latencies are counted
/// in the top bin. A read timeout is seconds, so the top is never reached
/// by a read that counts.
const BINS: usize = 560;

/// Counts of latencies in geometric bins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Latencies per bin; empty until the first one is recorded, so a path
    /// or a time bucket without reads costs no memory. Counts saturate
    /// rather than wrap (4 billion reads in one bin is far beyond a window).
    counts: Vec<u32>,
    /// Latencies recorded, all bins together.
    total: u64,
}

impl LatencyHistogram {
    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        self.allocate();
        let bin = &mut self.counts[bin_of(latency)];
        *bin = bin.saturating_add(1);
        self.total += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.total == 0 {
            return;
        }
        self.allocate();
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total += other.total;
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which a share `q` (0..=1) of the recorded ones
    /// fall, within [`RELATIVE_ERROR`]; `None` when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        // The rank of the quantile among the sorted latencies, 1-based.
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bin, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                return Some(value_of(bin));
            }
        }
        // Only reached if counts saturated: the rank is in the top bins.
        Some(value_of(BINS - 1))
    }

    /// The 99th percentile, what the latency rule compares.
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// Forgets every latency, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.counts.clear();
        self.total = 0;
    }

    fn allocate(&mut self) {
        if self.counts.is_empty() {
            self.counts.resize(BINS, 0);
        }
    }
}

/// The bin holding `latency`.
fn bin_of(latency: Duration) -> usize {
    let nanos = latency.as_nanos() as f64;
    if nanos <= FLOOR_NANOS {
        return 0;
    }
    let bin = ((nanos / FLOOR_NANOS).ln() / GAMMA.ln()).ceil();
    (bin as usize).min(BINS - 1)
}

/// The latency a bin reports: the point equally far, relatively, from both
/// of its ends.
fn value_of(bin: usize) -> Duration {
    if bin == 0 {
        return Duration::from_nanos(FLOOR_NANOS as u64);
    }
    let nanos = 2.0 * FLOOR_NANOS * GAMMA.powi(bin as i32) / (GAMMA + 1.0);
    Duration::from_nanos(nanos.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact quantile of sorted latencies, with the same rank rule.
    fn exact(sorted: &[Duration], q: f64) -> Duration {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    fn relative_error(got: Duration, want: Duration) -> f64 {
        (got.as_secs_f64() - want.as_secs_f64()).abs() / want.as_secs_f64()
    }

    /// Latencies spread over six decades, from 5µs to 5s, in a fixed
    /// pseudo-random order (a linear congruential sequence).
    fn spread(n: usize) -> Vec<Duration> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                Duration::from_nanos((5_000.0 * 1e6f64.powf(unit)) as u64)
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_the_relative_error() {
        let latencies = spread(20_000);
        let mut histogram = LatencyHistogram::default();
        for l in &latencies {
            histogram.record(*l);
        }
        let mut sorted = latencies.clone();
        sorted.sort();
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let got = histogram.quantile(q).unwrap();
            let want = exact(&sorted, q);
            assert!(
                relative_error(got, want) <= RELATIVE_ERROR,
                "q={q}: got {got:?}, want {want:?}"
            );
        }
        assert_eq!(histogram.count(), 20_000);
    }

    #[test]
    fn every_bin_reports_within_the_error_of_its_ends() {
        for bin in 1..BINS {
            let low = FLOOR_NANOS * GAMMA.powi(bin as i32 - 1);
            let high = FLOOR_NANOS * GAMMA.powi(bin as i32);
            let value = value_of(bin).as_nanos() as f64;
            for end in [low, high] {
                // A nanosecond of rounding on top of the bound.
                assert!(
                    (value - end).abs() / end <= RELATIVE_ERROR + 1.0 / end,
                    "bin {bin}"
                );
            }
        }
    }

    #[test]
    fn a_latency_lands_in_the_bin_that_reports_it() {
        for micros in [2, 17, 999, 1_000, 1_001, 48_000, 2_000_000] {
            let latency = Duration::from_micros(micros);
            let reported = value_of(bin_of(latency));
            assert!(
                relative_error(reported, latency) <= RELATIVE_ERROR,
                "{latency:?} reported as {reported:?}"
            );
        }
    }

    #[test]
    fn merged_buckets_equal_one_histogram_of_everything() {
        let latencies = spread(3_000);
        let mut whole = LatencyHistogram::default();
        let mut merged = LatencyHistogram::default();
        for chunk in latencies.chunks(700) {
            let mut part = LatencyHistogram::default();
            for l in chunk {
                part.record(*l);
                whole.record(*l);
            }
            merged.merge(&part);
        }
        merged.merge(&LatencyHistogram::default());
        assert_eq!(merged, whole);
    }

    #[test]
    fn edges_of_the_scale() {
        let mut histogram = LatencyHistogram::default();
        assert_eq!(histogram.p99(), None);
        histogram.record(Duration::ZERO);
        assert_eq!(histogram.p99(), Some(Duration::from_micros(1)));
        // Beyond the top bin: counted, reported as the top.
        histogram.record(Duration::from_secs(365 * 86_400));
        assert_eq!(histogram.quantile(1.0), Some(value_of(BINS - 1)));
        assert!(value_of(BINS - 1) > Duration::from_secs(80 * 60));
        histogram.clear();
        assert_eq!((histogram.count(), histogram.p99()), (0, None));
    }
}
