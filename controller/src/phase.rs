//! The phase machine: where a migration stands and what the controller must
//! do next, as one pure function, [`step`]. An operator's command or a fact
//! the executor observed goes in; the new state and the [`Action`]s that
//! carry it out come back, or a [`Refusal`] that says what must happen
//! first.
//!
//! This module never does IO and reads no clock: time enters only as
//! events (`BakeElapsed`, `Stalled`), so every transition is a table test.
//! The executor runs the actions in order; an action before
//! [`Action::Persist`] is a prerequisite of the new state (if it fails, the
//! executor drops the new state), an action after it is a consequence.
//!
//! Phase changes are fenced where a step depends on every writer having
//! changed behaviour (starting the backfill, switching writes, archiving
//! the source): the step's work waits in [`Wait::Acks`] until the executor
//! reports that every live proxy enforces the new epoch and every
//! transaction older than their acknowledgements has ended.

use switchyard_core::config::{Percent, Phase};

mod commands;
mod facts;
mod refusal;
mod vocabulary;

pub use refusal::Refusal;
pub use vocabulary::{Action, AlertKind, Event, Gate, Side, Wait, Work};

/// The read ramp the machine follows when a step has baked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Target read shares in ascending order (the config's `ramp.steps`):
    /// after a bake the share moves to the first step above it.
    pub steps: Vec<Percent>,
    /// Whether each step waits for `switchyard approve` (the config's
    /// `ramp.approval`), so a person signs off every increase.
    pub approval: bool,
}

/// Where one migration stands. The stored part (phase, epoch, share,
/// paused, pending approval, holding, rollback reason) lives in
/// `switchyard_state`; the rest is the controller's own and is rebuilt by
/// [`Event::TookOver`] after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The migration's id, so every refusal names it.
    pub migration: String,
    /// Where the migration stands; proxies derive mirroring and reads from it.
    pub phase: Phase,
    /// Bumped on every phase change (and when writes start or stop being
    /// held), so a proxy's heartbeat says which decision it enforces.
    pub epoch: u64,
    /// The share of reads sent to the target during `read_ramp`.
    pub share: Percent,
    /// Set by `switchyard pause`: nothing advances and the backfill stops
    /// until `resume`.
    pub paused: bool,
    /// A ramp step the schedule reached that waits for `switchyard approve`.
    pub pending_approval: Option<Percent>,
    /// Proxies hold writes to the migrated table while the write switch
    /// runs (bounded by the switch budget); stored, so every proxy sees it.
    pub holding_writes: bool,
    /// Why the migration was rolled back, for status and the report.
    pub rollback_reason: Option<String>,
    /// What the controller waits for before it can go on, if anything.
    pub waiting: Option<Wait>,
    /// Reads have stayed 100% on the target for the bake time: the write
    /// switch may start. Not stored: a new controller bakes again.
    pub baked: bool,
    /// The ramp to follow in `read_ramp`, from the config.
    pub schedule: Schedule,
}

impl State {
    /// A migration that has not started: `planned`, epoch 0.
    pub fn new(migration: &str, schedule: Schedule) -> State {
        State {
            migration: migration.to_string(),
            phase: Phase::Planned,
            epoch: 0,
            share: Percent::ZERO,
            paused: false,
            pending_approval: None,
            holding_writes: false,
            rollback_reason: None,
            waiting: None,
            baked: false,
            schedule,
        }
    }
}

/// Applies one event to `state`: the next state and what the executor must
/// do, or why the event is refused (the state is then unchanged).
pub fn step(state: &State, event: Event) -> Result<(State, Vec<Action>), Refusal> {
    let mut s = Step {
        state: state.clone(),
        actions: Vec::new(),
    };
    match event {
        Event::Advance { to } => s.advance(to)?,
        Event::Ramp { percent } => s.ramp(percent)?,
        Event::Rollback { reason } => s.rollback(reason)?,
        Event::Pause => s.pause()?,
        Event::Resume => s.resume()?,
        Event::Approve => s.approve()?,
        Event::ProxiesAcknowledged { epoch } => s.acknowledged(epoch)?,
        Event::BackfillDone => s.backfill_done()?,
        Event::GatePassed { gate } => s.gate_passed(gate)?,
        Event::GateFailed { gate, why } => s.gate_failed(gate, why)?,
        Event::BakeElapsed => s.bake_elapsed()?,
        Event::SwitchAborted { why } => s.switch_aborted(why)?,
        Event::Stalled { minutes } => s.stalled(minutes)?,
        Event::TookOver => s.took_over(),
    }
    Ok((s.state, s.actions))
}

/// The phase after `phase` on the way to `complete`.
fn forward(phase: Phase) -> Option<Phase> {
    match phase {
        Phase::Planned => Some(Phase::DualWrite),
        Phase::DualWrite => Some(Phase::Backfill),
        Phase::Backfill => Some(Phase::Validate),
        Phase::Validate => Some(Phase::ReadRamp),
        Phase::ReadRamp => Some(Phase::ReadsOnTarget),
        Phase::ReadsOnTarget => Some(Phase::WriteSwitch),
        Phase::WriteSwitch => Some(Phase::Complete),
        Phase::Complete | Phase::RolledBack => None,
    }
}

/// The phases from after `from` up to and including `to`, `a → b → c`:
/// what must happen before `to`.
fn path(from: Phase, to: Phase) -> String {
    let mut names = Vec::new();
    let mut at = from;
    while let Some(next) = forward(at) {
        names.push(next.as_str());
        if next == to {
            break;
        }
        at = next;
    }
    names.join(" → ")
}

/// A transition being built: the state so far and the actions it needs.
struct Step {
    /// The state after the event, changed in place.
    state: State,
    /// What the executor must do, in order.
    actions: Vec<Action>,
}

impl Step {
    fn migration(&self) -> String {
        self.state.migration.clone()
    }

    /// Refuses any operator command on a finished migration.
    fn still_running(&self) -> Result<(), Refusal> {
        let migration = self.migration();
        match self.state.phase {
            Phase::Complete => Err(Refusal::Complete { migration }),
            Phase::RolledBack => Err(Refusal::RolledBack {
                migration,
                reason: self.state.rollback_reason.clone().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses a command that would move a paused migration.
    fn not_paused(&self) -> Result<(), Refusal> {
        if self.state.paused {
            return Err(Refusal::Paused {
                migration: self.migration(),
            });
        }
        Ok(())
    }

    /// Refuses a command while the controller waits for proxies or gates.
    fn not_waiting(&self) -> Result<(), Refusal> {
        match &self.state.waiting {
            Some(wait) => Err(Refusal::Waiting {
                migration: self.migration(),
                what: wait.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Stores the new state, once per step: the compare-and-set is on the
    /// epoch the step started from, so a second write would fail it.
    fn persist(&mut self) {
        if !self.actions.contains(&Action::Persist) {
            self.actions.push(Action::Persist);
        }
    }

    /// Moves to `phase` under a new epoch: stored, audited, announced.
    fn enter(&mut self, phase: Phase, action: &'static str, reason: Option<String>) {
        let from = self.state.phase;
        self.state.phase = phase;
        self.state.epoch += 1;
        self.state.baked = false;
        self.persist();
        self.actions.push(Action::Audit {
            action,
            from,
            to: phase,
            reason,
        });
        let kind = if phase == Phase::RolledBack {
            AlertKind::RolledBack
        } else {
            AlertKind::PhaseChanged
        };
        self.actions.push(Action::Alert {
            kind,
            message: format!(
                "migration `{}`: {from} → {phase} (epoch {})",
                self.state.migration, self.state.epoch
            ),
        });
    }

    /// A change stored without a new phase (share, pause, approval).
    fn record(&mut self, action: &'static str, reason: Option<String>) {
        let phase = self.state.phase;
        self.persist();
        self.actions.push(Action::Audit {
            action,
            from: phase,
            to: phase,
            reason,
        });
    }

    /// Waits for every proxy to enforce the current epoch before `work`.
    fn fence(&mut self, work: Work) {
        let epoch = self.state.epoch;
        self.state.waiting = Some(Wait::Acks { epoch, work });
        self.actions.push(Action::AwaitAcks { epoch });
    }

    /// Asks the executor for gate verdicts before moving to `to`.
    fn check_gates(&mut self, to: Phase, gates: &[Gate]) {
        self.state.waiting = Some(Wait::Gates {
            to,
            pending: gates.to_vec(),
        });
        self.actions
            .extend(gates.iter().map(|&g| Action::CheckGate(g)));
    }

    /// All gates before `to` passed: make the move they guarded.
    fn gates_open(&mut self, to: Phase) {
        self.state.waiting = None;
        match to {
            Phase::ReadRamp => {
                self.state.share = Percent::ZERO;
                self.enter(Phase::ReadRamp, "advance", None);
                self.next_ramp_step();
            }
            Phase::WriteSwitch => {
                // Writes are held first; the phase changes once every proxy
                // holds them, so no write lands on either side mid-switch.
                self.state.holding_writes = true;
                self.state.epoch += 1;
                self.record("hold_writes", None);
                self.actions.push(Action::HoldWrites {
                    epoch: self.state.epoch,
                });
                self.fence(Work::SwitchWrites);
            }
            other => self.enter(other, "advance", None),
        }
    }

    /// Moves the share to the schedule's next step (or asks for approval
    /// of it). Returns false when the schedule has no step above the share.
    fn next_ramp_step(&mut self) -> bool {
        let share = self.state.share;
        let Some(&next) = self.state.schedule.steps.iter().find(|&&p| p > share) else {
            return false;
        };
        if self.state.schedule.approval {
            self.state.pending_approval = Some(next);
            self.record("await_approval", Some(format!("step to {next}")));
            self.actions.push(Action::Alert {
                kind: AlertKind::AwaitingApproval,
                message: format!(
                    "migration `{}`: the read ramp's step to {next} awaits `switchyard approve {}`",
                    self.state.migration, self.state.migration
                ),
            });
        } else {
            self.state.share = next;
            self.record("ramp", Some(format!("{share} → {next} on schedule")));
        }
        true
    }
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod tests;
