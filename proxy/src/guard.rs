//! The read switch's guard: every routed read's outcome feeds its
//! migration's sliding window (`switchyard_consistency::ReadWindow`), and a
//! task judges the windows against the migration's `rollback` thresholds.
//! A breach takes the target's reads away at once — the routing snapshot
//! is republished with the migration rolled back, so the next statement of
//! every session reads the source — and announces it; a warning is only
//! announced.
//!
//! A rollback holds until an operator gives a new rule (the file's `reads`
//! changes, or `PUT /migrations/{id}/reads`); it has no timer. Where a
//! control store is installed the rollback is also stored (see
//! `control`), so every replica follows and a restart keeps it; without
//! one it is this proxy's alone.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use switchyard_consistency::{
    Finding, ReadOutcome, ReadWindow, ShadowOutcome, Thresholds, Verdict,
};
use switchyard_core::config::ReadPath;
use switchyard_core::names;
use tokio::sync::Notify;

use crate::alerts::{self, AlertKind, Alerter};
use crate::relay::reads::ReadEnd;
use crate::route::routing::{MigrationRoute, RolledBack};
use crate::route::{ReadRoute, ShadowRoute};
use crate::shadow::{self, Backends, Shadow, ShadowLimits};
use crate::state::Shared;

/// How often the windows are judged when no failure wakes the task early.
const TICK: Duration = Duration::from_millis(100);

/// The windows of every migration's reads, fed by sessions.
#[derive(Default)]
pub struct Guards {
    /// Migration id → its window. Created on a migration's first read with
    /// the default length; the judging task corrects the length.
    windows: DashMap<Arc<str>, ReadWindow>,
    /// Woken by a target failure, so a breach is judged at once rather
    /// than at the next tick.
    failed: Notify,
    /// Reads per migration and path since start, which the heartbeat
    /// reports to the control store for the ramp's figures.
    tallies: DashMap<Arc<str>, Arc<ReadTally>>,
}

/// Reads counted since start: `[target, source, target errors, source
/// errors, shadow comparisons, shadow mismatches]`, in the heartbeat's
/// order.
#[derive(Debug, Default)]
pub struct ReadTally(pub [std::sync::atomic::AtomicU64; 6]);

impl ReadTally {
    /// The counts now, in the heartbeat's order.
    pub fn load(&self) -> [u64; 6] {
        self.0
            .each_ref()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Guards {
    /// Records how a read on `path` ended after `latency`.
    pub fn record_read(
        &self,
        migration: &Arc<str>,
        path: ReadPath,
        end: ReadEnd,
        latency: Duration,
    ) {
        self.tally(
            migration,
            path,
            matches!(end, ReadEnd::Failed | ReadEnd::TimedOut),
        );
        let outcome = match end {
            ReadEnd::Ok => ReadOutcome::Ok(latency),
            ReadEnd::Failed => ReadOutcome::Error,
            ReadEnd::TimedOut => ReadOutcome::Timeout,
            // Both paths failed: the client's own error, not the target's.
            ReadEnd::ClientError => return,
        };
        let now = Instant::now();
        self.window(migration, now).record_read(now, path, outcome);
        if path == ReadPath::Target && !matches!(outcome, ReadOutcome::Ok(_)) {
            self.failed.notify_one();
        }
    }

    /// Records how a shadow comparison ended.
    pub fn record_shadow(&self, migration: &Arc<str>, outcome: ShadowOutcome) {
        if matches!(outcome, ShadowOutcome::Match | ShadowOutcome::Mismatch) {
            let tally = self.tally_of(migration);
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            tally.0[4].fetch_add(1, relaxed);
            if outcome == ShadowOutcome::Mismatch {
                tally.0[5].fetch_add(1, relaxed);
            }
        }
        let now = Instant::now();
        self.window(migration, now).record_shadow(now, outcome);
        if outcome == ShadowOutcome::Mismatch {
            self.failed.notify_one();
        }
    }

    /// Counts one read on `path` (and its failure) for the heartbeat.
    fn tally(&self, migration: &Arc<str>, path: ReadPath, failed: bool) {
        let tally = self.tally_of(migration);
        let base = usize::from(path == ReadPath::Source);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        tally.0[base].fetch_add(1, relaxed);
        if failed {
            tally.0[base + 2].fetch_add(1, relaxed);
        }
    }

    fn tally_of(&self, migration: &Arc<str>) -> Arc<ReadTally> {
        match self.tallies.get(migration) {
            Some(tally) => tally.clone(),
            None => self.tallies.entry(migration.clone()).or_default().clone(),
        }
    }

    /// Reads of `migration` since start: `[target, source, target errors,
    /// source errors, shadow comparisons, shadow mismatches]`.
    pub fn reads(&self, migration: &str) -> [u64; 6] {
        self.tallies
            .get(migration)
            .map_or([0; 6], |tally| tally.load())
    }

    /// Forgets a migration's reads: a new rule starts a new window.
    pub fn reset(&self, migration: &str) {
        self.windows.remove(migration);
    }

    /// The migration's verdict now.
    pub fn verdict(&self, m: &MigrationRoute) -> Verdict {
        let thresholds = Thresholds::from(&m.plan.rollback);
        let now = Instant::now();
        match self.windows.get_mut(m.plan.id.as_str()) {
            Some(mut window) => {
                if window.window() != m.plan.rollback.window {
                    *window = ReadWindow::new(m.plan.rollback.window, now);
                }
                window.evaluate(now, &thresholds)
            }
            None => Verdict::NotEnoughSamples {
                have: 0,
                need: thresholds.min_samples,
            },
        }
    }

    fn window(
        &self,
        migration: &Arc<str>,
        now: Instant,
    ) -> dashmap::mapref::one::RefMut<'_, Arc<str>, ReadWindow> {
        self.windows
            .entry(migration.clone())
            .or_insert_with(|| ReadWindow::new(Duration::from_secs(30), now))
    }
}

/// Starts the task that judges every migration's window.
pub fn spawn(shared: Arc<Shared>) {
    let alerter = match Alerter::spawn() {
        Ok(alerter) => Some(alerter),
        Err(e) => {
            tracing::error!(error = %e, "alert webhooks are off: the HTTP client could not be built");
            None
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = shared.guards.failed.notified() => {}
            }
            judge(&shared, alerter.as_ref());
        }
    });
}

/// Starts shadow compare, its outcomes feeding the windows. Its bounds
/// are the configuration's at start: the largest `shadow_pool` of any
/// backend and the largest `shadow.max_rows` / `max_bytes` of any
/// migration.
pub fn start_shadow(shared: &Arc<Shared>) {
    let snapshot = shared.snapshot_full();
    let config = &snapshot.config;
    let defaults = ShadowLimits::default();
    let shadows = || {
        config
            .migrations
            .iter()
            .filter_map(|m| m.reads.shadow.as_ref())
    };
    let limits = ShadowLimits {
        pool_per_backend: config
            .backends
            .values()
            .map(|b| b.shadow_pool)
            .max()
            .unwrap_or(defaults.pool_per_backend),
        max_rows: shadows()
            .map(|s| usize::try_from(s.max_rows).unwrap_or(usize::MAX))
            .max()
            .unwrap_or(defaults.max_rows),
        max_bytes: shadows()
            .map(|s| s.max_bytes)
            .max()
            .unwrap_or(defaults.max_bytes),
        ..defaults
    };
    let weak = Arc::downgrade(shared);
    let report: shadow::Report = Arc::new(move |outcome: shadow::ShadowOutcome| {
        let Some(shared) = weak.upgrade() else { return };
        let migration = outcome.migration;
        let outcome = match outcome.result {
            shadow::ShadowResult::Match => ShadowOutcome::Match,
            shadow::ShadowResult::Mismatch(_) => ShadowOutcome::Mismatch,
            shadow::ShadowResult::Skipped(_) => ShadowOutcome::Skipped,
            shadow::ShadowResult::Error(_) => ShadowOutcome::Error,
        };
        shared.guards.record_shadow(&migration, outcome);
    });
    let backends = Arc::new(Followed(Arc::downgrade(shared)));
    let _ = shared.shadow.set(Shadow::new(backends, limits, report));
}

/// The backends of the configuration in force, for the shadow, without
/// keeping the shared state alive.
struct Followed(std::sync::Weak<Shared>);

impl Backends for Followed {
    fn backend(
        &self,
        name: &str,
    ) -> Option<(
        switchyard_core::config::Backend,
        crate::relay::backend_tls::BackendTls,
    )> {
        self.0.upgrade()?.backend(name)
    }
}

/// Hands a routed read to the shadow when its migration shadows a share
/// of reads and this one is drawn; `job` builds what the session knows.
/// Never waits: a full queue skips the read.
pub fn offer_shadow(
    shared: &Shared,
    read: &ReadRoute,
    job: impl FnOnce(&ShadowRoute) -> shadow::ShadowJob,
) {
    let Some(route) = &read.shadow else { return };
    if rand::random::<u32>() % 10_000 >= route.basis_points {
        return;
    }
    if let Some(shadow) = shared.shadow.get() {
        shadow.submit(job(route));
    }
}

/// Judges every migration once.
fn judge(shared: &Shared, alerter: Option<&Alerter>) {
    let routing = shared.routing();
    for m in &routing.migrations {
        let verdict = shared.guards.verdict(m);
        metrics::gauge!(names::READ_VERDICT, "migration" => m.plan.id.clone())
            .set(verdict_code(&verdict));
        // Nothing to take away: the rule sends no reads to the target, or
        // they were taken away already.
        if m.target_share() == 0 {
            continue;
        }
        match &verdict {
            Verdict::Breach(finding) => {
                roll_back(
                    shared,
                    &m.plan.id,
                    finding.reason().label(),
                    &finding.to_string(),
                );
                announce(alerter, m, AlertKind::Rollback, finding);
            }
            Verdict::Warn(finding) => announce(alerter, m, AlertKind::Warn, finding),
            Verdict::Healthy | Verdict::NotEnoughSamples { .. } => {}
        }
    }
}

/// Takes migration `id`'s reads off the target at once, until an operator
/// gives a new rule. Idempotent: a migration rolled back already keeps its
/// first reason.
pub fn roll_back(shared: &Shared, id: &str, reason: &'static str, text: &str) {
    let mut first = false;
    shared.publish_routing(|runtime| {
        let Some(m) = shared
            .snapshot()
            .config
            .migrations
            .iter()
            .find(|m| m.id == id)
            .cloned()
        else {
            return;
        };
        runtime.rollbacks.entry(id.to_string()).or_insert_with(|| {
            first = true;
            Arc::new(RolledBack {
                reason,
                text: text.to_string(),
                at: SystemTime::now(),
                file: m.reads,
            })
        });
    });
    if first {
        metrics::counter!(names::ROLLBACKS_TOTAL, "migration" => id.to_string(), "reason" => reason)
            .increment(1);
        tracing::warn!(migration = %id, reason, "reads rolled back to the source: {text}");
        // Stored, so every replica and the controller follow and a restart
        // keeps it; this proxy has acted already, with no round trip.
        if let Some(control) = shared.control.get() {
            control.store_rollback(id, format!("{reason}: {text}"));
        }
    }
}

fn announce(alerter: Option<&Alerter>, m: &MigrationRoute, kind: AlertKind, finding: &Finding) {
    let Some(alerter) = alerter else { return };
    let figures = &finding.figures;
    alerter.send(alerts::Alert {
        migration: m.plan.id.clone(),
        kind,
        reason: finding.reason().label(),
        text: finding.to_string(),
        figures: alerts::Figures {
            observed: figures.measured(),
            threshold: figures.threshold(),
            samples: figures.samples(),
            window: finding.window,
        },
        at: SystemTime::now(),
        webhooks: m.plan.alerts.webhooks.clone(),
        repeat_window: m.plan.alerts.repeat_window,
    });
}

/// `switchyard_read_verdict`: 0 healthy, 1 warn, 2 breach, 3 not enough samples.
fn verdict_code(verdict: &Verdict) -> f64 {
    match verdict {
        Verdict::Healthy => 0.0,
        Verdict::Warn(_) => 1.0,
        Verdict::Breach(_) => 2.0,
        Verdict::NotEnoughSamples { .. } => 3.0,
    }
}
