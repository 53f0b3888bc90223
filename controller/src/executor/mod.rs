//! The executor: carries out what the phase machine decides. It loads a
//! migration's state from the control store (creating it from the
//! config's `phase` when absent), holds the controller lease, feeds
//! events to [`phase::step`] and runs the actions in order: an action
//! before `Persist` is a prerequisite (if it fails, the new state is
//! dropped), one after it a consequence. Facts it observes (acks, gate
//! verdicts, the backfill's end) go back into the machine as events.
//!
//! Every IO of the control plane's decisions lives here; the machine
//! itself stays pure. With no proxy heartbeating, fences are open at
//! once: nothing writes through a proxy that could lag behind.

mod acks;
pub mod alerts;
pub mod archive;
mod error;
pub mod gates;
pub mod lease;
mod run_backfill;
pub mod sequences;
pub mod store;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use switchyard_core::config::{Config, Phase};
use switchyard_core::sql::Dialect;
use switchyard_core::store::{AuditEvent, Guard, StateRow};

pub use error::ExecError;

use crate::live::{Live, Site};
use crate::phase::{self, Action, Event, Gate, Refusal, Schedule, Side, State};
use alerts::Alerter;
use lease::Lease;
use store::{Store, Stored};

/// How the executor waits and how long.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a fence waits for proxies before the command gives up
    /// (the state stays stored; the next command waits again).
    pub ack_timeout: Duration,
    /// How long to wait for another controller's lease; `None` takes no
    /// lease (a rollback never waits behind a controller: its
    /// compare-and-set still keeps it from overwriting a newer state).
    pub lease_wait: Option<Duration>,
    /// The backfill's own settings.
    pub backfill: crate::backfill::Settings,
    /// Only record the decision (store, audit, alert, counters): the work
    /// it starts (fences, the backfill, gates, the archive) is left to
    /// the controller driving the migration (`run` or `advance`). For
    /// pause, resume, ramp, approve and rollback, which must not wait
    /// behind the driver's lease.
    pub record_only: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            ack_timeout: Duration::from_secs(60),
            lease_wait: Some(Duration::from_secs(60)),
            backfill: crate::backfill::Settings::default(),
            record_only: false,
        }
    }
}

/// `$USER@host`: who an operator's command acts as.
pub fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("{user}@{}", host())
}

/// `controller@host`: who `switchyard run` acts as.
pub fn controller() -> String {
    format!("controller@{}", host())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The schedule the machine follows, from the config's `ramp`.
pub fn schedule(config: &switchyard_core::config::Migration) -> Schedule {
    Schedule {
        steps: config.ramp.steps.clone(),
        approval: config.ramp.approval,
    }
}

/// One migration under this controller.
pub struct Executor {
    /// The file, to resolve the migration's tables when work needs them.
    config: Config,
    /// The source's server and the store's schema.
    pub site: Site,
    /// Both tables, resolved on first need (not at all once archived).
    live: Option<Live>,
    /// The store connection states and audits are written on.
    store: Store,
    /// Where the migration stands, as this controller knows it.
    pub state: State,
    /// The stored read rule, written back unchanged.
    read_rule: Option<String>,
    /// Who the audit log names.
    actor: String,
    /// The lease, while held.
    lease: Option<Lease>,
    /// Webhooks and their repeat suppression.
    alerter: Alerter,
    /// Timeouts (the switch's budget is the migration's `switch.budget`).
    settings: Settings,
    /// What happened, one line each, for the command's report.
    pub happened: Vec<String>,
    /// What kept a step from happening, with why: gates found closed,
    /// a write switch that ran out of its budget.
    pub closed: Vec<String>,
}

/// A unique lease holder per executor: `actor#pid.n`.
fn holder(actor: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{actor}#{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Executor {
    /// Opens migration `id`: takes the lease (per `settings`), then loads
    /// its state, storing the config's starting phase if there is none.
    pub async fn open(
        config: &Config,
        id: &str,
        actor: &str,
        settings: Settings,
    ) -> Result<Executor, ExecError> {
        let site = Site::resolve(config, id)?;
        let mut store = Store::open(&site).await?;
        if !store.installed().await? {
            return Err(ExecError::NoStore {
                migration: id.to_string(),
                store: site.schema.clone(),
            });
        }
        let lease = match settings.lease_wait {
            Some(wait) => Some(Lease::take(&site, &holder(actor), wait).await?),
            None => None,
        };
        let stored = load(&mut store, &site).await?;
        let mut state = State::new(id, schedule(&site.migration));
        state.phase = stored.phase;
        state.epoch = stored.epoch;
        state.share = stored.share;
        state.paused = stored.paused;
        state.pending_approval = stored.pending_approval;
        state.holding_writes = stored.holding_writes;
        state.rollback_reason = stored.rollback_reason.clone();
        Ok(Executor {
            config: config.clone(),
            alerter: Alerter::new(site.migration.alerts.clone()),
            site,
            live: None,
            store,
            state,
            read_rule: stored.read_rule,
            actor: actor.to_string(),
            lease,
            settings,
            happened: Vec::new(),
            closed: Vec::new(),
        })
    }

    /// Gives the lease up.
    pub async fn close(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
    }

    /// Rebuilds the controller's own part of the state after loading it
    /// ([`Event::TookOver`]). `drive` runs the work a crashed controller
    /// had in flight (a fence, the backfill, the archive); otherwise the
    /// fence is only noted, for commands that must not wait on it.
    pub async fn take_over(&mut self, drive: bool) -> Result<(), ExecError> {
        let (next, actions) = match phase::step(&self.state, Event::TookOver) {
            Ok(done) => done,
            Err(_) => return Ok(()),
        };
        if drive {
            let follow = self.carry_out(next, actions).await?;
            self.settle(follow).await?;
        } else {
            let quick = actions
                .into_iter()
                .filter(|a| !matches!(a, Action::AwaitAcks { .. }))
                .collect();
            self.carry_out(next, quick).await?;
        }
        Ok(())
    }

    /// Applies `event` and everything it leads to. A refusal of `event`
    /// itself comes back as `Ok(Err(..))`; refusals of the facts that
    /// follow (a verdict after a gate already closed) are only noted.
    pub async fn apply(&mut self, event: Event) -> Result<Result<(), Refusal>, ExecError> {
        let (next, actions) = match phase::step(&self.state, event) {
            Ok(done) => done,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let follow = self.carry_out(next, actions).await?;
        self.settle(follow).await?;
        Ok(Ok(()))
    }

    /// Feeds observed facts back into the machine until none is left.
    async fn settle(&mut self, follow: Vec<Event>) -> Result<(), ExecError> {
        let mut queue: VecDeque<Event> = follow.into();
        while let Some(event) = queue.pop_front() {
            match phase::step(&self.state, event.clone()) {
                Ok((next, actions)) => queue.extend(self.carry_out(next, actions).await?),
                Err(refusal) => tracing::debug!(%event, %refusal, "fact ignored"),
            }
        }
        Ok(())
    }

    /// Reads the stored state again and takes what others changed (an
    /// operator's pause, ramp or rollback while `run` works).
    pub async fn reload(&mut self) -> Result<(), ExecError> {
        let stored = load(&mut self.store, &self.site).await?;
        if stored.epoch != self.state.epoch || stored.phase != self.state.phase {
            self.state.waiting = None;
            self.state.baked = false;
        }
        self.state.phase = stored.phase;
        self.state.epoch = stored.epoch;
        self.state.share = stored.share;
        self.state.paused = stored.paused;
        self.state.pending_approval = stored.pending_approval;
        self.state.holding_writes = stored.holding_writes;
        self.state.rollback_reason = stored.rollback_reason;
        self.read_rule = stored.read_rule;
        Ok(())
    }

    /// The migration's tables, loaded on first use.
    async fn live(&mut self) -> Result<&Live, ExecError> {
        if self.live.is_none() {
            let mut live = Live::resolve(&self.config, &self.site.migration.id).await?;
            live.migration.phase = self.state.phase;
            self.live = Some(live);
        }
        let live = self.live.as_mut().expect("resolved above");
        live.migration.phase = self.state.phase;
        Ok(live)
    }

    /// Runs `actions` towards `next`; returns the facts observed.
    async fn carry_out(
        &mut self,
        next: State,
        actions: Vec<Action>,
    ) -> Result<Vec<Event>, ExecError> {
        let expected = self.state.epoch;
        let mut follow = Vec::new();
        let mut in_tx = false;
        for action in actions {
            if in_tx && !matches!(action, Action::Audit { .. }) {
                self.commit().await?;
                in_tx = false;
            }
            let result = self
                .one(&action, &next, expected, &mut follow, &mut in_tx)
                .await;
            if let Err(e) = result {
                if in_tx {
                    let _ = self.store.execute("rolling back", "ROLLBACK").await;
                }
                return Err(e);
            }
        }
        if in_tx {
            self.commit().await?;
        }
        self.state = next;
        Ok(follow)
    }

    /// Commits the state and its audit entries, waking the proxies.
    async fn commit(&mut self) -> Result<(), ExecError> {
        self.store.notify().await?;
        self.store.execute("committing the state", "COMMIT").await
    }

    /// Carries out one action.
    async fn one(
        &mut self,
        action: &Action,
        next: &State,
        expected: u64,
        follow: &mut Vec<Event>,
        in_tx: &mut bool,
    ) -> Result<(), ExecError> {
        let id = self.site.migration.id.clone();
        let work = matches!(
            action,
            Action::AwaitAcks { .. }
                | Action::StartBackfill
                | Action::CheckGate(_)
                | Action::ArchiveSource
        );
        if work && self.settings.record_only {
            return Ok(());
        }
        match action {
            Action::Persist => {
                let begin = match self.site.dialect {
                    Dialect::Postgres => "BEGIN",
                    Dialect::Mysql => "START TRANSACTION",
                };
                self.store.execute("starting a transaction", begin).await?;
                *in_tx = true;
                let row = StateRow {
                    migration: &id,
                    phase: next.phase,
                    epoch: next.epoch,
                    read_rule: self.read_rule.as_deref(),
                    share: next.share,
                    paused: next.paused,
                    pending_approval: next.pending_approval,
                    holding_writes: next.holding_writes,
                    rollback_reason: next.rollback_reason.as_deref(),
                };
                if !self.store.write(&row, expected).await? {
                    return Err(ExecError::Stale {
                        migration: id,
                        expected,
                    });
                }
            }
            Action::Audit {
                action,
                from,
                to,
                reason,
            } => {
                let detail = serde_json::json!({
                    "epoch": next.epoch,
                    "share": next.share.to_string(),
                })
                .to_string();
                let event = AuditEvent {
                    migration: &id,
                    actor: &self.actor,
                    action,
                    from: Some(*from),
                    to: Some(*to),
                    reason: reason.as_deref(),
                    detail: &detail,
                };
                self.store.audit(&event).await?;
                let line = match (from == to, reason) {
                    (true, Some(r)) => format!("{action}: {r}"),
                    (true, None) => action.to_string(),
                    (false, _) => format!("{action}: {from} → {to}"),
                };
                self.happened.push(line);
            }
            Action::InstallGuard => self.install_guard().await?,
            Action::AwaitAcks { epoch } => {
                let holding = next.holding_writes;
                let limit = if holding {
                    self.site.migration.switch.budget
                } else {
                    self.settings.ack_timeout
                };
                match acks::wait(&mut self.store, *epoch, limit).await? {
                    None => follow.push(Event::ProxiesAcknowledged { epoch: *epoch }),
                    Some(why) if holding => {
                        let why = format!("after {} ms: {why}", limit.as_millis());
                        // Like a closed gate, the switch did not happen:
                        // the command says so and exits 1, and `run`
                        // stops rather than hold writes again and again.
                        self.closed.push(format!(
                            "the write switch aborted, writes stay on the source: {why}"
                        ));
                        follow.push(Event::SwitchAborted { why });
                    }
                    Some(missing) => {
                        return Err(ExecError::Acks {
                            migration: id,
                            epoch: *epoch,
                            missing,
                            waited_secs: limit.as_secs(),
                        })
                    }
                }
            }
            Action::StartBackfill => {
                let settings = self.settings.backfill.clone();
                let site = self.site.clone();
                let live = self.live().await?;
                if run_backfill::run(live, &site, &settings).await? {
                    self.happened.push("backfill: every chunk copied".into());
                    follow.push(Event::BackfillDone);
                } else {
                    self.happened
                        .push("backfill: stopped (paused or phase changed)".into());
                }
            }
            // A backfill runs inside the controller that started it, which
            // watches the stored state and stops by itself.
            Action::StopBackfill => {}
            Action::CheckGate(gate) => {
                let verdict = self.check(*gate).await?;
                match verdict {
                    Ok(()) => follow.push(Event::GatePassed { gate: *gate }),
                    Err(why) => {
                        self.closed.push(format!("gate {gate} is closed: {why}"));
                        follow.push(Event::GateFailed { gate: *gate, why });
                    }
                }
            }
            Action::HoldWrites { epoch } => self.happened.push(format!(
                "holding writes (epoch {epoch}) for at most {} ms",
                self.site.migration.switch.budget.as_millis()
            )),
            Action::MoveSequences { primary } => {
                let primary = *primary;
                let moved = sequences::move_past(self.live().await?, primary).await?;
                self.happened
                    .extend(moved.into_iter().map(|m| format!("counter moved: {m}")));
            }
            Action::MoveGuard { primary } => {
                let primary = *primary;
                let statements = moved_guard_statements(&self.site, primary);
                install_all(&mut self.store, self.site.dialect, &statements).await?;
                self.happened
                    .push(format!("guard moved to the {primary} table"));
            }
            Action::RetireGuard => {
                let statements = retired_guard_statements(&self.site);
                install_all(&mut self.store, self.site.dialect, &statements).await?;
                self.happened.push("guard removed".into());
            }
            Action::ArchiveSource => {
                let name = archive::archive(&self.site).await?;
                self.happened.push(format!("source archived as {name}"));
            }
            Action::Alert { kind, message } => {
                self.alerter.post(&id, *kind, message, next.epoch).await;
            }
        }
        Ok(())
    }

    /// Judges one gate.
    async fn check(&mut self, gate: Gate) -> Result<gates::Verdict, ExecError> {
        match gate {
            Gate::CleanDiff => gates::clean_diff(self.live().await?).await,
            Gate::RepairQueueEmpty => {
                let live = Live::resolve(&self.config, &self.site.migration.id).await?;
                gates::repair_queue_empty(&live, &mut self.store).await
            }
            Gate::Readiness => {
                let live = Live::resolve(&self.config, &self.site.migration.id).await?;
                gates::readiness(&live, &mut self.store).await
            }
        }
    }

    /// Installs the migration's guard on the source table.
    async fn install_guard(&mut self) -> Result<(), ExecError> {
        let statements = guard_statements(&self.site);
        install_all(&mut self.store, self.site.dialect, &statements).await
    }

    /// The store connection, for the commands' own reads.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Where the migration stands.
    pub fn phase(&self) -> Phase {
        self.state.phase
    }
}

/// The statements that install `site`'s guard on the source.
pub fn guard_statements(site: &Site) -> Vec<String> {
    side_guard(site, Side::Source, true)
}

/// The statements that move `site`'s guard to `primary`: the other side's
/// dropped, then `primary`'s installed.
pub fn moved_guard_statements(site: &Site, primary: Side) -> Vec<String> {
    let other = match primary {
        Side::Source => Side::Target,
        Side::Target => Side::Source,
    };
    [
        side_guard(site, other, false),
        side_guard(site, primary, true),
    ]
    .concat()
}

/// The statements that drop `site`'s guard from both tables.
pub fn retired_guard_statements(site: &Site) -> Vec<String> {
    [
        side_guard(site, Side::Source, false),
        side_guard(site, Side::Target, false),
    ]
    .concat()
}

/// The statements that install (or drop) the guard of one side's table.
/// The target's guard lists its key in the target's column names.
pub fn side_guard(site: &Site, side: Side, install: bool) -> Vec<String> {
    let m = &site.migration;
    let target_key: Vec<String> = m
        .source
        .primary_key
        .iter()
        .map(|k| m.target_column(k).to_string())
        .collect();
    let target_schema = match site.dialect {
        Dialect::Postgres => m.target.schema.as_deref(),
        Dialect::Mysql => m.target.database.as_deref(),
    }
    .unwrap_or(&site.schema);
    let (schema, table, key) = match side {
        Side::Source => (site.schema.as_str(), &m.source.table, &m.source.primary_key),
        Side::Target => (target_schema, &m.target.table, &target_key),
    };
    let guard = Guard {
        migration: &m.id,
        store: &site.schema,
        schema,
        table,
        key,
        on_target: side == Side::Target,
    };
    use switchyard_core::store::{mysql, pg};
    match (site.dialect, install) {
        (Dialect::Postgres, true) => pg::install_guard(&guard),
        (Dialect::Postgres, false) => pg::drop_guard(&guard),
        (Dialect::Mysql, true) => mysql::install_guard(&guard),
        (Dialect::Mysql, false) => mysql::drop_guard(&guard),
    }
}

/// Runs DDL statements, in one transaction on PostgreSQL (its DDL is
/// transactional, so no write slips between a drop and a create).
pub async fn install_all(
    store: &mut Store,
    dialect: Dialect,
    statements: &[String],
) -> Result<(), ExecError> {
    if dialect == Dialect::Postgres {
        store.execute("starting a transaction", "BEGIN").await?;
        for statement in statements {
            if let Err(e) = store.execute("installing", statement).await {
                let _ = store.execute("rolling back", "ROLLBACK").await;
                return Err(e);
            }
        }
        return store.execute("committing", "COMMIT").await;
    }
    for statement in statements {
        store.execute("installing", statement).await?;
    }
    Ok(())
}

/// The stored state, created from the config's phase when absent.
async fn load(store: &mut Store, site: &Site) -> Result<Stored, ExecError> {
    if let Some(stored) = store.read().await? {
        return Ok(stored);
    }
    let fresh = State::new(&site.migration.id, Schedule::default());
    let row = StateRow {
        migration: &site.migration.id,
        phase: site.migration.phase,
        epoch: 0,
        read_rule: None,
        share: fresh.share,
        paused: false,
        pending_approval: None,
        holding_writes: false,
        rollback_reason: None,
    };
    store.init(&row).await?;
    store.read().await?.ok_or_else(|| ExecError::BadState {
        migration: site.migration.id.clone(),
        what: "no row after creating it".into(),
    })
}
