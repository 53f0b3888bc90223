//! `switchyard ramp <id> <percent>`: sets the target's read share during
//! `read_ramp`; refused in any other phase with what must happen first.

use std::process::ExitCode;

use switchyard_core::config::{Config, Percent};

use crate::phase::Event;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct RampArgs {
    /// The migration.
    pub migration: String,
    /// The share of reads to send to the target (0 to 100, two decimals).
    pub percent: Percent,
}

/// Sets the share.
pub async fn run(config: &Config, args: &RampArgs, json: bool) -> ExitCode {
    let event = Event::Ramp {
        percent: args.percent,
    };
    super::operate::one_event(config, &args.migration, event, json).await
}
