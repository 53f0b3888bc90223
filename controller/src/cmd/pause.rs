//! `switchyard pause <id>`: holds the migration where it is; a running
//! backfill stops after its chunk in flight (its checkpoint kept).

use std::process::ExitCode;

use switchyard_core::config::Config;

use crate::phase::Event;

/// Pauses the migration.
pub async fn run(config: &Config, migration: &str, json: bool) -> ExitCode {
    super::operate::one_event(config, migration, Event::Pause, json).await
}
