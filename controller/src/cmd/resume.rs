//! `switchyard resume <id>`: carries on after a pause; the controller
//! driving the migration (`run`, or the next `advance`) resumes the work.

use std::process::ExitCode;

use switchyard_core::config::Config;

use crate::phase::Event;

/// Resumes the migration.
pub async fn run(config: &Config, migration: &str, json: bool) -> ExitCode {
    super::operate::one_event(config, migration, Event::Resume, json).await
}
