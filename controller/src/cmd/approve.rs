//! `switchyard approve <id>`: takes the read ramp's step that waits for
//! an operator (`ramp.approval: true`).

use std::process::ExitCode;

use switchyard_core::config::Config;

use crate::phase::Event;

/// Approves the pending step.
pub async fn run(config: &Config, migration: &str, json: bool) -> ExitCode {
    super::operate::one_event(config, migration, Event::Approve, json).await
}
