//! `switchyard rollback <id> [--reason TEXT]`: reads and writes go back to
//! the source, the mirror stops. It takes no lease, so it never waits
//! behind a running controller; after the write switch it first moves the
//! source's counters past the target's.

use std::process::ExitCode;

use switchyard_core::config::Config;

use crate::phase::Event;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The migration.
    pub migration: String,
    /// Why, for the audit log, the alert and the report.
    #[arg(long, default_value = "operator request")]
    pub reason: String,
}

/// Rolls the migration back.
pub async fn run(config: &Config, args: &RollbackArgs, json: bool) -> ExitCode {
    let event = Event::Rollback {
        reason: args.reason.clone(),
    };
    super::operate::one_event(config, &args.migration, event, json).await
}
