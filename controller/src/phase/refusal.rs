//! Why the phase machine refuses an event. Every message names the
//! migration and says what must happen first, so the CLI prints it as it
//! is and exits 1.

use switchyard_core::config::{Percent, Phase};

/// An event the machine refuses; the state stays as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Nothing changes a complete migration.
    #[error(
        "migration `{migration}` is complete: its source is archived and the target is primary; nothing about it changes any more"
    )]
    Complete {
        /// The migration's id.
        migration: String,
    },
    /// Nothing moves a rolled-back migration forward again.
    #[error(
        "migration `{migration}` was rolled back ({reason}); it moves no further: fix the cause and start a new migration with an empty target"
    )]
    RolledBack {
        /// The migration's id.
        migration: String,
        /// Why it was rolled back.
        reason: String,
    },
    /// A paused migration must be resumed before it moves.
    #[error("migration `{migration}` is paused; run `switchyard resume {migration}` first")]
    Paused {
        /// The migration's id.
        migration: String,
    },
    /// The controller waits for proxies or gates.
    #[error("migration `{migration}` is waiting: {what}; try again when that is done")]
    Waiting {
        /// The migration's id.
        migration: String,
        /// What it waits for.
        what: String,
    },
    /// `advance --to rolled_back` is spelled `rollback`.
    #[error("migration `{migration}`: to go back to the source, run `switchyard rollback {migration} --reason ...`, not advance")]
    AdvanceToRollback {
        /// The migration's id.
        migration: String,
    },
    /// Phases are taken one at a time.
    #[error(
        "migration `{migration}` is at {at}; it reaches {asked} only through {path}, one `switchyard advance {migration}` at a time"
    )]
    NotNext {
        /// The migration's id.
        migration: String,
        /// Where it stands.
        at: Phase,
        /// Where the operator asked to go.
        asked: Phase,
        /// The phases on the way, `a → b → asked`.
        path: String,
    },
    /// Phases never go back except by rollback.
    #[error(
        "migration `{migration}` is at {at}, past {asked}; phases never go back: `switchyard rollback {migration}` returns reads and writes to the source"
    )]
    Backward {
        /// The migration's id.
        migration: String,
        /// Where it stands.
        at: Phase,
        /// Where the operator asked to go.
        asked: Phase,
    },
    /// `validate` begins when the backfill ends, not on command.
    #[error(
        "migration `{migration}` is still backfilling; it moves to validate by itself when the last chunk is copied (`switchyard status {migration}` shows how far it is)"
    )]
    BackfillRunning {
        /// The migration's id.
        migration: String,
    },
    /// `reads_on_target` needs every read on the target.
    #[error(
        "migration `{migration}` sends {share} of reads to the target; ramp to 100% first (`switchyard ramp {migration} 100`)"
    )]
    ReadsNotOnTarget {
        /// The migration's id.
        migration: String,
        /// The share now.
        share: Percent,
    },
    /// The write switch needs reads baked on the target.
    #[error(
        "migration `{migration}`: every read must stay on the target for the bake time before the write switch; let `switchyard run {migration}` bake it first"
    )]
    NotBaked {
        /// The migration's id.
        migration: String,
    },
    /// Reads ramp only in `read_ramp`.
    #[error(
        "migration `{migration}` is at {at}; reads ramp only in read_ramp: advance it there first ({path})"
    )]
    RampTooEarly {
        /// The migration's id.
        migration: String,
        /// Where it stands.
        at: Phase,
        /// The phases on the way to read_ramp.
        path: String,
    },
    /// After the ramp every read is on the target.
    #[error(
        "migration `{migration}` is at {at}: every read is on the target; to send reads back to the source, run `switchyard rollback {migration}`"
    )]
    RampTooLate {
        /// The migration's id.
        migration: String,
        /// Where it stands.
        at: Phase,
    },
    /// `approve` without a step waiting for it.
    #[error(
        "migration `{migration}` has no ramp step waiting for approval ({share} of reads on the target); `switchyard run {migration}` asks when a step has baked"
    )]
    NothingToApprove {
        /// The migration's id.
        migration: String,
        /// The share now.
        share: Percent,
    },
    /// The ramp's next step waits for a person.
    #[error("migration `{migration}`: the ramp step to {share} waits for `switchyard approve {migration}`")]
    AwaitingApproval {
        /// The migration's id.
        migration: String,
        /// The step waiting.
        share: Percent,
    },
    /// The configured ramp stops short of 100%.
    #[error(
        "migration `{migration}`: the ramp schedule (`ramp.steps`) ends at {share}; ramp to 100% by hand (`switchyard ramp {migration} 100`)"
    )]
    ScheduleEnds {
        /// The migration's id.
        migration: String,
        /// The share the schedule ends at.
        share: Percent,
    },
    /// `pause` twice.
    #[error(
        "migration `{migration}` is already paused; `switchyard resume {migration}` carries on"
    )]
    AlreadyPaused {
        /// The migration's id.
        migration: String,
    },
    /// `resume` without a pause.
    #[error("migration `{migration}` is not paused; nothing to resume")]
    NotPaused {
        /// The migration's id.
        migration: String,
    },
    /// `rollback` twice.
    #[error("migration `{migration}` is already rolled back ({reason})")]
    AlreadyRolledBack {
        /// The migration's id.
        migration: String,
        /// Why it was rolled back.
        reason: String,
    },
    /// An acknowledgement of an epoch nothing waits for.
    #[error(
        "migration `{migration}`: proxies acknowledged epoch {got}, but {}",
        if *waiting { format!("the fence waits for epoch {current}") } else { format!("nothing waits for acknowledgements (the current epoch is {current})") }
    )]
    StaleAck {
        /// The migration's id.
        migration: String,
        /// The epoch acknowledged.
        got: u64,
        /// The epoch the fence waits for, or the current one.
        current: u64,
        /// Whether a fence waits at all.
        waiting: bool,
    },
    /// A fact that does not fit the state (late, doubled, or wrong).
    #[error("migration `{migration}`: {event} does not apply at {at}; the report is ignored")]
    Unexpected {
        /// The migration's id.
        migration: String,
        /// The event's name.
        event: &'static str,
        /// Where the migration stands.
        at: Phase,
    },
}
