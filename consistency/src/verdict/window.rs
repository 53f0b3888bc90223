//! The sliding window of one migration's reads: what the proxy records as
//! reads finish, summed on demand over the last `window`.
//!
//! Time is cut into 30 buckets of `window / 30` each, kept in a ring, so
//! memory does not depend on traffic and the window slides a bucket at a
//! time: the totals cover between `window - window / 30` and `window` of
//! the most recent events. Every method takes `now`; nothing here reads a
//! clock.

use std::time::{Duration, Instant};

use switchyard_core::config::ReadPath;

use super::histogram::LatencyHistogram;
use super::{Thresholds, Verdict};

/// Buckets per window: the window slides in steps of 1/30 of its length
/// (1s for the default 30s), fine enough that a burst leaves the window
/// within a step of `window` after it happened.
const BUCKETS: u64 = 30;

/// How a read on one path ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The server answered, after this long. Only these reads feed the
    /// latency rule: a fast failure must not make a path look quick.
    Ok(Duration),
    /// The server answered with an error, or the connection failed.
    Error,
    /// The proxy gave up after `rollback.read_timeout`.
    Timeout,
}

/// How one shadow comparison ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// Both paths returned the same rows.
    Match,
    /// The rows differ.
    Mismatch,
    /// Not compared: the result was over the shadow caps, or the shadow
    /// pool was busy.
    Skipped,
    /// Not compared: the shadow read failed (its own outcome is recorded as
    /// a read of its path).
    Error,
}

/// Reads of one path, summed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathTotals {
    /// Reads the server answered.
    pub ok: u64,
    /// Reads that failed.
    pub errors: u64,
    /// Reads the proxy gave up on.
    pub timeouts: u64,
    /// Latencies of the reads that were answered.
    pub latency: LatencyHistogram,
}

impl PathTotals {
    /// Every read, however it ended.
    pub fn reads(&self) -> u64 {
        self.ok + self.errors + self.timeouts
    }

    /// Reads that count against the path's error rate: errors and timeouts.
    pub fn failed(&self) -> u64 {
        self.errors + self.timeouts
    }

    fn record(&mut self, outcome: ReadOutcome) {
        match outcome {
            ReadOutcome::Ok(latency) => {
                self.ok += 1;
                self.latency.record(latency);
            }
            ReadOutcome::Error => self.errors += 1,
            ReadOutcome::Timeout => self.timeouts += 1,
        }
    }

    fn merge(&mut self, other: &PathTotals) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.latency.merge(&other.latency);
    }

    fn clear(&mut self) {
        self.ok = 0;
        self.errors = 0;
        self.timeouts = 0;
        self.latency.clear();
    }
}

/// Shadow comparisons, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShadowTotals {
    /// Comparisons that found the same rows.
    pub matches: u64,
    /// Comparisons that found different rows.
    pub mismatches: u64,
    /// Shadow reads not compared (over the caps, or no free connection).
    pub skipped: u64,
    /// Shadow reads that failed.
    pub errors: u64,
}

impl ShadowTotals {
    /// Comparisons that ran to a result: the mismatch rate's denominator.
    pub fn compared(&self) -> u64 {
        self.matches + self.mismatches
    }

    fn record(&mut self, outcome: ShadowOutcome) {
        match outcome {
            ShadowOutcome::Match => self.matches += 1,
            ShadowOutcome::Mismatch => self.mismatches += 1,
            ShadowOutcome::Skipped => self.skipped += 1,
            ShadowOutcome::Error => self.errors += 1,
        }
    }

    fn merge(&mut self, other: &ShadowTotals) {
        self.matches += other.matches;
        self.mismatches += other.mismatches;
        self.skipped += other.skipped;
        self.errors += other.errors;
    }
}

/// Everything recorded over one window: what a verdict is computed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowTotals {
    /// The span the totals cover, for the verdict's text.
    pub window: Duration,
    /// Reads that ran on the target, served or shadow.
    pub target: PathTotals,
    /// Reads that ran on the source, served or shadow.
    pub source: PathTotals,
    /// Shadow comparisons.
    pub shadow: ShadowTotals,
}

/// What happened during one bucket of time.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Which bucket of time since the origin this is (`elapsed / step`);
    /// a ring slot whose number is too old holds nothing that counts.
    slot: u64,
    /// Target reads that ended in this bucket.
    target: PathTotals,
    /// Source reads that ended in this bucket.
    source: PathTotals,
    /// Comparisons that ended in this bucket.
    shadow: ShadowTotals,
}

impl Bucket {
    fn reset(&mut self, slot: u64) {
        self.slot = slot;
        self.target.clear();
        self.source.clear();
        self.shadow = ShadowTotals::default();
    }
}

/// One migration's recent reads and comparisons, in a ring of time buckets.
#[derive(Clone, Debug)]
pub struct ReadWindow {
    /// The configured window (`rollback.window`).
    window: Duration,
    /// Length of one bucket: `window / 30`, at least a nanosecond.
    step: Duration,
    /// The instant bucket numbers count from.
    origin: Instant,
    /// The newest bucket number recorded into; events older than the
    /// window before it are dropped.
    newest: u64,
    /// The ring: bucket number `n` lives at index `n % 30`.
    buckets: Vec<Bucket>,
}

impl ReadWindow {
    /// An empty window of length `window` (the migration's
    /// `rollback.window`), counting time from `now`. A changed window
    /// length needs a new `ReadWindow`.
    pub fn new(window: Duration, now: Instant) -> ReadWindow {
        let step = (window / BUCKETS as u32).max(Duration::from_nanos(1));
        ReadWindow {
            window,
            step,
            origin: now,
            newest: 0,
            buckets: vec![Bucket::default(); BUCKETS as usize],
        }
    }

    /// The window's length, as configured.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records a read that ran on `path` and ended at `now`. Every read
    /// counts, whether its rows went to the client or were only compared.
    pub fn record_read(&mut self, now: Instant, path: ReadPath, outcome: ReadOutcome) {
        if let Some(bucket) = self.bucket_at(now) {
            match path {
                ReadPath::Target => bucket.target.record(outcome),
                ReadPath::Source => bucket.source.record(outcome),
            }
        }
    }

    /// Records a shadow comparison that ended at `now`.
    pub fn record_shadow(&mut self, now: Instant, outcome: ShadowOutcome) {
        if let Some(bucket) = self.bucket_at(now) {
            bucket.shadow.record(outcome);
        }
    }

    /// The sums over the window that ends at `now`, for a verdict or for
    /// status pages.
    pub fn totals(&self, now: Instant) -> WindowTotals {
        let current = self.slot(now);
        let mut totals = WindowTotals {
            window: self.window,
            ..WindowTotals::default()
        };
        // A bucket newer than `now` (an event stamped just after the
        // caller read its clock) is recent, so it counts.
        for bucket in self
            .buckets
            .iter()
            .filter(|b| b.slot.saturating_add(BUCKETS) > current)
        {
            totals.target.merge(&bucket.target);
            totals.source.merge(&bucket.source);
            totals.shadow.merge(&bucket.shadow);
        }
        totals
    }

    /// The verdict over the window that ends at `now`. It sums every
    /// bucket (tens of microseconds at most), so call it on a tick or every
    /// so many reads, not after each one.
    pub fn evaluate(&self, now: Instant, thresholds: &Thresholds) -> Verdict {
        self.totals(now).verdict(thresholds)
    }

    /// The bucket for an event at `now`, emptied first if its ring slot
    /// still holds an older bucket; `None` for an event already older than
    /// the window (a late report).
    fn bucket_at(&mut self, now: Instant) -> Option<&mut Bucket> {
        let slot = self.slot(now);
        if slot.saturating_add(BUCKETS) <= self.newest {
            return None;
        }
        self.newest = self.newest.max(slot);
        let bucket = &mut self.buckets[(slot % BUCKETS) as usize];
        if bucket.slot != slot {
            bucket.reset(slot);
        }
        Some(bucket)
    }

    /// The bucket number of `now`; instants before the origin count as 0.
    fn slot(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_nanos() / self.step.as_nanos()).unwrap_or(u64::MAX)
    }
}
