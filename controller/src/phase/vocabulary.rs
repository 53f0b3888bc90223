//! What goes into the phase machine ([`Event`]) and what comes out
//! ([`Action`]), with the waits ([`Wait`]) and gates ([`Gate`]) they name.
//! Each prints as one short line, the form the table tests and the audit
//! log read.

use std::fmt;

use switchyard_core::config::{Percent, Phase};

/// An operator's command or a fact the executor reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `switchyard advance [--to PHASE]`: the next phase (`to` must be it).
    Advance {
        /// The phase the operator expects to reach; `None` is the next one.
        to: Option<Phase>,
    },
    /// `switchyard ramp <id> <percent>`: set the target's read share.
    Ramp {
        /// The new share of reads sent to the target.
        percent: Percent,
    },
    /// `switchyard rollback <id> [--reason]`: back to the source.
    Rollback {
        /// Why, for the audit log, the alert and the report.
        reason: String,
    },
    /// `switchyard pause`: hold everything where it is.
    Pause,
    /// `switchyard resume`: carry on after a pause.
    Resume,
    /// `switchyard approve`: take the ramp step that waits for approval.
    Approve,
    /// Every live proxy enforces `epoch`, and every transaction that began
    /// before their acknowledgements has ended.
    ProxiesAcknowledged {
        /// The epoch they all enforce.
        epoch: u64,
    },
    /// The backfill copied its last chunk.
    BackfillDone,
    /// A gate the machine asked for is open.
    GatePassed {
        /// Which gate.
        gate: Gate,
    },
    /// A gate the machine asked for is closed.
    GateFailed {
        /// Which gate.
        gate: Gate,
        /// What closes it, for the operator (e.g. "3 keys in the repair queue").
        why: String,
    },
    /// The current read share held for the bake time with enough target
    /// reads and no breach.
    BakeElapsed,
    /// The write switch's budget ran out before every proxy held writes.
    SwitchAborted {
        /// What it was still waiting for.
        why: String,
    },
    /// The phase has not moved for a long time (the executor's clock).
    Stalled {
        /// How long, in minutes.
        minutes: u64,
    },
    /// This controller took the lease and loaded the stored state.
    TookOver,
}

impl Event {
    /// The event's name in the audit log and the table tests.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Advance { .. } => "advance",
            Event::Ramp { .. } => "ramp",
            Event::Rollback { .. } => "rollback",
            Event::Pause => "pause",
            Event::Resume => "resume",
            Event::Approve => "approve",
            Event::ProxiesAcknowledged { .. } => "proxies_acknowledged",
            Event::BackfillDone => "backfill_done",
            Event::GatePassed { .. } => "gate_passed",
            Event::GateFailed { .. } => "gate_failed",
            Event::BakeElapsed => "bake_elapsed",
            Event::SwitchAborted { .. } => "switch_aborted",
            Event::Stalled { .. } => "stalled",
            Event::TookOver => "took_over",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Event::Advance { to: Some(to) } => write!(f, " --to {to}"),
            Event::Ramp { percent } => write!(f, " {percent}"),
            Event::ProxiesAcknowledged { epoch } => write!(f, " {epoch}"),
            Event::GatePassed { gate } | Event::GateFailed { gate, .. } => write!(f, " {gate}"),
            Event::Stalled { minutes } => write!(f, " {minutes}min"),
            _ => Ok(()),
        }
    }
}

/// What the executor must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the new state to `switchyard_state`, compare-and-set on the
    /// epoch it was read with (a stale controller's write fails). The
    /// `Audit` that follows goes in the same transaction.
    Persist,
    /// Append to `switchyard_events` (the executor adds who and when).
    Audit {
        /// What happened: `advance`, `ramp`, `rollback`, `gate_failed`...
        action: &'static str,
        /// The phase before.
        from: Phase,
        /// The phase after (the same when the phase did not change).
        to: Phase,
        /// Why, when someone or something gave a reason.
        reason: Option<String>,
    },
    /// Install the migration's guard triggers on the source table, so
    /// writes the proxies do not mirror are queued for repair.
    InstallGuard,
    /// Wait until every live proxy heartbeats `epoch` and every transaction
    /// older than their acknowledgements has ended, then report
    /// [`Event::ProxiesAcknowledged`].
    AwaitAcks {
        /// The epoch to wait for.
        epoch: u64,
    },
    /// Start the backfill, or resume it from its last checkpoint.
    StartBackfill,
    /// Stop the backfill after its current chunk (it keeps its checkpoint).
    StopBackfill,
    /// Judge a gate and report [`Event::GatePassed`] or [`Event::GateFailed`].
    CheckGate(Gate),
    /// The write switch starts: proxies enforcing `epoch` hold writes to
    /// the migrated table while in-flight transactions end; report
    /// [`Event::SwitchAborted`] if the switch budget runs out first.
    HoldWrites {
        /// The epoch whose proxies hold writes.
        epoch: u64,
    },
    /// Move the sequences / AUTO_INCREMENT counters of `primary` past the
    /// other side's (from their counters, never MAX(id)).
    MoveSequences {
        /// The side about to become primary.
        primary: Side,
    },
    /// Move the migration's guard to `primary`, the side about to take the
    /// writes: installed there and removed from the other side, so a write
    /// the proxies do not mirror is queued wherever the writes go (and the
    /// mirror's own writes to the other side are not seen twice).
    MoveGuard {
        /// The side about to become primary.
        primary: Side,
    },
    /// Remove the guard from both tables: at `complete` nothing follows
    /// the target any more, so a write there is nothing to repair.
    RetireGuard,
    /// Rename the source table to its archive name (never drop it).
    ArchiveSource,
    /// Post to the migration's webhooks.
    Alert {
        /// What kind of news, for the webhook's document and repeat window.
        kind: AlertKind,
        /// The sentence people read.
        message: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Persist => f.write_str("persist"),
            Action::Audit {
                action, from, to, ..
            } if from == to => write!(f, "audit({action})"),
            Action::Audit {
                action, from, to, ..
            } => write!(f, "audit({action} {from}→{to})"),
            Action::InstallGuard => f.write_str("install_guard"),
            Action::AwaitAcks { epoch } => write!(f, "await_acks({epoch})"),
            Action::StartBackfill => f.write_str("start_backfill"),
            Action::StopBackfill => f.write_str("stop_backfill"),
            Action::CheckGate(gate) => write!(f, "check({gate})"),
            Action::HoldWrites { epoch } => write!(f, "hold_writes({epoch})"),
            Action::MoveSequences { primary } => write!(f, "move_sequences({primary})"),
            Action::MoveGuard { primary } => write!(f, "move_guard({primary})"),
            Action::RetireGuard => f.write_str("retire_guard"),
            Action::ArchiveSource => f.write_str("archive_source"),
            Action::Alert { kind, .. } => write!(f, "alert({kind})"),
        }
    }
}

/// A condition a move needs, judged by the executor against the servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The diff of source and target found no difference.
    CleanDiff,
    /// No key waits in the repair queue.
    RepairQueueEmpty,
    /// The source is ready to stop being primary: no old transaction or
    /// lock queue on it, no writer bypassing the proxies, no unparsed
    /// statement on it during the bake time.
    Readiness,
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gate::CleanDiff => "clean_diff",
            Gate::RepairQueueEmpty => "repair_queue_empty",
            Gate::Readiness => "readiness",
        })
    }
}

/// One of the migration's two tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The old table.
    Source,
    /// The new table.
    Target,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Work a fence holds back until every proxy enforces the new epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Copy existing rows: only once every writer mirrors, or a write
    /// between the copy of its chunk and the mirror's start is lost.
    Backfill,
    /// Make the target primary: only once every proxy holds writes.
    SwitchWrites,
    /// Rename the source: only once no proxy writes it any more.
    Archive,
}

/// What the controller waits for before it can go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A fence: `work` starts once every proxy acknowledged `epoch`.
    Acks {
        /// The epoch every live proxy must enforce.
        epoch: u64,
        /// What starts then.
        work: Work,
    },
    /// An advance to `to` waits for the verdicts of `pending`.
    Gates {
        /// Where the migration goes when every gate is open.
        to: Phase,
        /// The gates without a verdict yet.
        pending: Vec<Gate>,
    },
    /// A fence passed while the migration was paused: `work` starts on
    /// resume.
    Resume {
        /// What starts then.
        work: Work,
    },
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let work = |w: &Work| match w {
            Work::Backfill => "the backfill starts",
            Work::SwitchWrites => "writes switch to the target",
            Work::Archive => "the source is archived",
        };
        match self {
            Wait::Acks { epoch, work: w } => write!(
                f,
                "every live proxy must acknowledge epoch {epoch}, and older transactions end, before {}",
                work(w)
            ),
            Wait::Gates { to, pending } => {
                let names: Vec<String> = pending.iter().map(Gate::to_string).collect();
                write!(f, "gates {} must pass before {to}", names.join(", "))
            }
            Wait::Resume { work: w } => write!(f, "resume, and then {}", work(w)),
        }
    }
}

/// Why an alert is posted (the webhook's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// The migration entered a new phase.
    PhaseChanged,
    /// The migration went back to the source.
    RolledBack,
    /// A gate kept an advance from happening.
    GateFailed,
    /// A ramp step waits for an operator.
    AwaitingApproval,
    /// The write switch ran out of budget and writes stayed on the source.
    SwitchAborted,
    /// The phase has not moved for a long time.
    Stalled,
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlertKind::PhaseChanged => "phase_changed",
            AlertKind::RolledBack => "rolled_back",
            AlertKind::GateFailed => "gate_failed",
            AlertKind::AwaitingApproval => "awaiting_approval",
            AlertKind::SwitchAborted => "switch_aborted",
            AlertKind::Stalled => "stalled",
        })
    }
}
