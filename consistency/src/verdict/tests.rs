//! Table-driven tests of the rules (over totals), of the window sliding in
//! time (over recorded events), and of the thresholds taken from the file.

use std::time::{Duration, Instant};

use switchyard_core::config::{ReadPath, Rollback};

use super::*;

const WINDOW: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What one case records into a window's totals.
#[derive(Clone, Copy, Default)]
struct Reads {
    /// Answered target reads, each taking `target_latency`.
    target_ok: u64,
    target_errors: u64,
    target_timeouts: u64,
    target_latency: Duration,
    /// Answered source reads, each taking `source_latency`.
    source_ok: u64,
    source_latency: Duration,
    matches: u64,
    mismatches: u64,
}

impl Reads {
    fn totals(self) -> WindowTotals {
        let mut totals = WindowTotals {
            window: WINDOW,
            ..WindowTotals::default()
        };
        let target = &mut totals.target;
        (target.ok, target.errors, target.timeouts) =
            (self.target_ok, self.target_errors, self.target_timeouts);
        for _ in 0..self.target_ok {
            target.latency.record(self.target_latency);
        }
        totals.source.ok = self.source_ok;
        for _ in 0..self.source_ok {
            totals.source.latency.record(self.source_latency);
        }
        totals.shadow.matches = self.matches;
        totals.shadow.mismatches = self.mismatches;
        totals
    }
}

/// `n` target reads, all answered in 10ms.
fn ok(n: u64) -> Reads {
    Reads {
        target_ok: n,
        target_latency: ms(10),
        ..Reads::default()
    }
}

#[test]
fn rules() {
    let th = Thresholds::default();
    let many_timeouts_allowed = Thresholds {
        max_timeouts: 100,
        ..Thresholds::default()
    };
    let zero_mismatch = Thresholds {
        max_mismatch_rate: 0.0,
        ..Thresholds::default()
    };
    let slow = |target_ok, source_ok, target_ms, source_ms| Reads {
        target_ok,
        target_latency: ms(target_ms),
        source_ok,
        source_latency: ms(source_ms),
        ..Reads::default()
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Reads, &Thresholds, &str)> = vec![
        // Samples.
        ("empty window", Reads::default(), &th,
         "not enough target reads to judge: 0 of 200"),
        ("one fewer than min_samples", ok(199), &th,
         "not enough target reads to judge: 199 of 200"),
        ("exactly min_samples", ok(200), &th, "healthy"),
        ("failures below min_samples never breach", Reads { target_errors: 150, ..ok(49) }, &th,
         "not enough target reads to judge: 199 of 200"),
        ("mismatches below min_samples never breach", Reads { mismatches: 5, ..ok(100) }, &th,
         "not enough target reads to judge: 100 of 200"),
        ("exactly min_samples is judged", Reads { target_errors: 10, ..ok(190) }, &th,
         "breach: target error rate 5% over 30s (10 of 200 reads) ≥ 5%"),
        // Timeouts.
        ("timeouts trip below min_samples", Reads { target_timeouts: 3, ..ok(7) }, &th,
         "breach: target timeouts 3 over 30s (of 10 reads) ≥ 3"),
        ("one timeout fewer holds", Reads { target_timeouts: 2, ..ok(8) }, &th,
         "not enough target reads to judge: 10 of 200"),
        ("timeouts come before the error rate", Reads { target_errors: 600, target_timeouts: 3, ..ok(2400) }, &th,
         "breach: target timeouts 3 over 30s (of 3003 reads) ≥ 3"),
        ("timeouts count as errors", Reads { target_errors: 140, target_timeouts: 10, ..ok(2850) }, &many_timeouts_allowed,
         "breach: target error rate 5% over 30s (150 of 3000 reads, 10 of them timeouts) ≥ 5%"),
        // Error rate and its warning band.
        ("error rate over the limit", Reads { target_errors: 213, ..ok(2787) }, &th,
         "breach: target error rate 7.1% over 30s (213 of 3000 reads) ≥ 5%"),
        ("error rate at the limit", Reads { target_errors: 150, ..ok(2850) }, &th,
         "breach: target error rate 5% over 30s (150 of 3000 reads) ≥ 5%"),
        ("error rate just under the limit warns", Reads { target_errors: 149, ..ok(2851) }, &th,
         "warning: target error rate 4.97% over 30s (149 of 3000 reads) ≥ 1%"),
        ("error rate at the warning level", Reads { target_errors: 30, ..ok(2970) }, &th,
         "warning: target error rate 1% over 30s (30 of 3000 reads) ≥ 1%"),
        ("error rate under the warning level", Reads { target_errors: 29, ..ok(2971) }, &th,
         "healthy"),
        // Mismatch rate.
        ("mismatches over compared reads", Reads { matches: 398, mismatches: 2, ..ok(3000) }, &th,
         "breach: shadow mismatch rate 0.5% over 30s (2 of 400 compared reads) ≥ 0.1%"),
        ("few compares count as min_samples", Reads { matches: 36, mismatches: 1, ..ok(3000) }, &th,
         "breach: shadow mismatch rate 0.5% over 30s (1 of 37 compared reads, counted over the minimum of 200) ≥ 0.1%"),
        ("mismatch rate under the limit", Reads { matches: 1999, mismatches: 1, ..ok(3000) }, &th,
         "healthy"),
        ("mismatch rate at the limit", Reads { matches: 999, mismatches: 1, ..ok(3000) }, &th,
         "breach: shadow mismatch rate 0.1% over 30s (1 of 1000 compared reads) ≥ 0.1%"),
        ("a zero limit breaches on any mismatch", Reads { matches: 100_000, mismatches: 1, ..ok(3000) }, &zero_mismatch,
         "breach: shadow mismatch rate 0.001% over 30s (1 of 100001 compared reads) ≥ 0%"),
        ("a zero limit holds without mismatches", Reads { matches: 500, ..ok(3000) }, &zero_mismatch,
         "healthy"),
        ("the error rate comes before mismatches", Reads { target_errors: 300, matches: 10, mismatches: 10, ..ok(2700) }, &th,
         "breach: target error rate 10% over 30s (300 of 3000 reads) ≥ 5%"),
        ("a mismatch breach outranks a warning", Reads { target_errors: 60, matches: 399, mismatches: 1, ..ok(2940) }, &th,
         "breach: shadow mismatch rate 0.25% over 30s (1 of 400 compared reads) ≥ 0.1%"),
        // Latency.
        ("target p99 over the ratio", slow(1500, 3000, 84, 20), &th,
         "breach: target p99 latency 4.2x the source's over 30s (84.2ms against 20ms, 1500 and 3000 reads) ≥ 3x"),
        ("target p99 under the ratio", slow(1500, 3000, 50, 20), &th,
         "healthy"),
        ("a target p99 under the floor never breaches", slow(1500, 3000, 4, 1), &th,
         "healthy"),
        ("a target p99 over the floor does", slow(1500, 3000, 6, 1), &th,
         "breach: target p99 latency 6.1x the source's over 30s (6ms against 993µs, 1500 and 3000 reads) ≥ 3x"),
        ("no source reads, no latency verdict", slow(1500, 0, 84, 20), &th,
         "healthy"),
        ("source one read short of min_samples", slow(1500, 199, 84, 20), &th,
         "healthy"),
        ("source at exactly min_samples", slow(1500, 200, 84, 20), &th,
         "breach: target p99 latency 4.2x the source's over 30s (84.2ms against 20ms, 1500 and 200 reads) ≥ 3x"),
        ("failed reads are no latency samples", Reads { target_errors: 1, ..slow(199, 3000, 84, 20) }, &th,
         "healthy"),
        ("the mismatch rate comes before latency", Reads { mismatches: 1, ..slow(1500, 3000, 84, 20) }, &th,
         "breach: shadow mismatch rate 0.5% over 30s (1 of 1 compared reads, counted over the minimum of 200) ≥ 0.1%"),
    ];
    for (name, reads, thresholds, expected) in cases {
        let verdict = reads.totals().verdict(thresholds);
        assert_eq!(verdict.to_string(), expected, "case: {name}");
    }
}

#[test]
fn findings_carry_their_figures() {
    let reads = Reads {
        target_errors: 213,
        target_timeouts: 2,
        ..ok(2785)
    };
    let th = Thresholds {
        max_timeouts: 10,
        ..Thresholds::default()
    };
    let verdict = reads.totals().verdict(&th);
    let finding = verdict.finding().unwrap();
    assert_eq!(verdict.reason(), Some(Reason::ErrorRate));
    assert_eq!(finding.reason().label(), "error_rate");
    assert_eq!(finding.window, WINDOW);
    assert_eq!(
        finding.figures,
        Figures::ErrorRate {
            failed: 215,
            timeouts: 2,
            reads: 3000,
            threshold: 0.05
        }
    );
    assert!((finding.figures.measured() - 215.0 / 3000.0).abs() < 1e-12);
    assert_eq!(finding.figures.threshold(), 0.05);
    assert_eq!(Verdict::Healthy.reason(), None);
}

#[test]
fn thresholds_come_from_the_rollback_settings() {
    let rollback = Rollback {
        min_samples: 50,
        warn_error_rate: 0.02,
        max_error_rate: 0.1,
        max_mismatch_rate: 0.005,
        max_latency_ratio: 2.0,
        max_timeouts: 7,
        ..Rollback::default()
    };
    assert_eq!(
        Thresholds::from(&rollback),
        Thresholds {
            min_samples: 50,
            warn_error_rate: 0.02,
            max_error_rate: 0.1,
            max_mismatch_rate: 0.005,
            max_latency_ratio: 2.0,
            latency_floor: Duration::from_millis(5),
            max_timeouts: 7,
        }
    );
    let defaults = Thresholds::default();
    assert_eq!(
        (
            defaults.min_samples,
            defaults.warn_error_rate,
            defaults.max_error_rate,
            defaults.max_timeouts
        ),
        (200, 0.01, 0.05, 3)
    );
}

/// A window starting at `t0`, and a helper to record `n` equal reads.
struct Clock {
    t0: Instant,
    window: ReadWindow,
}

impl Clock {
    fn new(window: Duration) -> Clock {
        let t0 = Instant::now();
        Clock {
            t0,
            window: ReadWindow::new(window, t0),
        }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    fn reads(&mut self, offset: Duration, path: ReadPath, outcome: ReadOutcome, n: u64) {
        let now = self.at(offset);
        for _ in 0..n {
            self.window.record_read(now, path, outcome);
        }
    }

    fn verdict(&self, offset: Duration) -> String {
        self.window
            .evaluate(self.at(offset), &Thresholds::default())
            .to_string()
    }
}

const TARGET: ReadPath = ReadPath::Target;
const SOURCE: ReadPath = ReadPath::Source;
const FAST: ReadOutcome = ReadOutcome::Ok(Duration::from_millis(5));

#[test]
fn a_burst_slides_out_of_the_window() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(secs(10), TARGET, ReadOutcome::Error, 300);
    clock.reads(secs(10), TARGET, FAST, 2700);
    assert_eq!(
        clock.verdict(secs(20)),
        "breach: target error rate 10% over 30s (300 of 3000 reads) ≥ 5%"
    );
    // 40s after the burst only the reads since count.
    clock.reads(secs(45), TARGET, FAST, 3000);
    assert_eq!(clock.verdict(secs(50)), "healthy");
    assert_eq!(clock.window.totals(clock.at(secs(50))).target.errors, 0);
}

#[test]
fn an_event_counts_until_one_window_after_its_bucket() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(ms(10_500), TARGET, ReadOutcome::Error, 1);
    let errors = |clock: &Clock, offset| clock.window.totals(clock.at(offset)).target.errors;
    assert_eq!(errors(&clock, ms(10_500)), 1);
    assert_eq!(errors(&clock, ms(39_999)), 1);
    // Its bucket began at 10s: it leaves 30s later, within one step (1s)
    // of a window after it happened.
    assert_eq!(errors(&clock, secs(40)), 0);
}

#[test]
fn timeouts_count_within_the_window_only() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(secs(0), TARGET, ReadOutcome::Timeout, 1);
    clock.reads(secs(35), TARGET, ReadOutcome::Timeout, 2);
    assert_eq!(
        clock.verdict(secs(35)),
        "not enough target reads to judge: 2 of 200"
    );
    clock.reads(secs(36), TARGET, ReadOutcome::Timeout, 1);
    assert_eq!(
        clock.verdict(secs(36)),
        "breach: target timeouts 3 over 30s (of 3 reads) ≥ 3"
    );
}

#[test]
fn latency_needs_both_paths_in_the_window() {
    let mut clock = Clock::new(WINDOW);
    let slow = ReadOutcome::Ok(ms(60));
    clock.reads(secs(1), SOURCE, FAST, 500);
    clock.reads(secs(40), TARGET, slow, 500);
    // The source's reads have left the window: nothing to compare with.
    assert_eq!(clock.verdict(secs(40)), "healthy");
    clock.reads(secs(41), SOURCE, FAST, 200);
    assert_eq!(
        clock.verdict(secs(41)),
        "breach: target p99 latency 12.4x the source's over 30s (61.2ms against 4.9ms, 500 and 200 reads) ≥ 3x"
    );
}

#[test]
fn shadow_outcomes_are_counted_but_only_compares_are_judged() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(secs(1), TARGET, FAST, 300);
    let now = clock.at(secs(1));
    for outcome in [
        ShadowOutcome::Match,
        ShadowOutcome::Match,
        ShadowOutcome::Skipped,
        ShadowOutcome::Error,
    ] {
        clock.window.record_shadow(now, outcome);
    }
    let shadow = clock.window.totals(now).shadow;
    assert_eq!(
        shadow,
        ShadowTotals {
            matches: 2,
            mismatches: 0,
            skipped: 1,
            errors: 1
        }
    );
    assert_eq!(shadow.compared(), 2);
    assert_eq!(clock.verdict(secs(1)), "healthy");
}

#[test]
fn late_and_early_reports() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(secs(100), TARGET, FAST, 1);
    // Stamped before the newest event but inside the window: counted.
    clock.reads(secs(80), TARGET, ReadOutcome::Error, 1);
    // Older than the window before the newest event: dropped, and it does
    // not disturb the bucket that now holds its ring slot.
    clock.reads(secs(70), TARGET, ReadOutcome::Error, 1);
    clock.reads(secs(40), TARGET, ReadOutcome::Error, 1);
    let totals = clock.window.totals(clock.at(secs(100)));
    assert_eq!((totals.target.ok, totals.target.errors), (1, 1));
    // An event stamped after the caller's `now` is recent: counted.
    let earlier = clock.window.totals(clock.at(secs(99)));
    assert_eq!(earlier.target.reads(), 2);
    // Before the origin counts as the first bucket.
    let mut window = ReadWindow::new(WINDOW, clock.at(secs(10)));
    window.record_read(clock.t0, TARGET, FAST);
    assert_eq!(window.totals(clock.at(secs(10))).target.ok, 1);
}

#[test]
fn a_reused_bucket_starts_empty() {
    let mut clock = Clock::new(WINDOW);
    clock.reads(secs(5), TARGET, ReadOutcome::Error, 10);
    // 35s is the same ring slot as 5s, one window later.
    clock.reads(secs(35), TARGET, FAST, 4);
    let totals = clock.window.totals(clock.at(secs(35)));
    assert_eq!((totals.target.ok, totals.target.errors), (4, 0));
    assert_eq!(totals.target.latency.count(), 4);
}

#[test]
fn other_window_lengths_slide_in_thirtieths() {
    let mut clock = Clock::new(secs(90));
    assert_eq!(clock.window.window(), secs(90));
    clock.reads(secs(0), TARGET, ReadOutcome::Timeout, 3);
    assert_eq!(
        clock.verdict(secs(89)),
        "breach: target timeouts 3 over 1m30s (of 3 reads) ≥ 3"
    );
    // Steps are 3s: the bucket of 0s leaves at 90s.
    assert_eq!(
        clock.verdict(secs(90)),
        "not enough target reads to judge: 0 of 200"
    );
}
