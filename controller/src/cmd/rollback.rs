//! `switchyard rollback <id> [--reason TEXT]`: reads and writes go back to
//! the source, the mirror stops. It takes no lease, so it never waits
//! behind a running controller; after the write switch it first moves the
//! source's counters past the target's, and says so (on stderr, in the
//! audit's reason) when the rollback is not lossless: keys written to the
//! target since the switch wait in the repair queue, not yet on the source.

use std::process::ExitCode;

use switchyard_core::config::{Config, Phase};

use crate::executor::store::Store;
use crate::live::Site;
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
    let mut reason = args.reason.clone();
    if let Some(lost) = not_lossless(config, &args.migration).await {
        eprintln!(
            "switchyard: warning: migration `{}`: {lost}; `switchyard repair {} --queue` before \
             the rollback copies what the source can hold",
            args.migration, args.migration
        );
        reason = format!("{reason} (not lossless: {lost})");
    }
    let event = Event::Rollback { reason };
    super::operate::one_event(config, &args.migration, event, json).await
}

/// In the write switch, what the source lacks: the keys the repair queue
/// holds (a value the source's type cannot hold, a write that bypassed the
/// proxies). `None` when nothing is known to be lacking.
async fn not_lossless(config: &Config, id: &str) -> Option<String> {
    let site = Site::resolve(config, id).ok()?;
    let mut store = Store::open(&site).await.ok()?;
    let stored = store.read().await.ok()??;
    if stored.phase != Phase::WriteSwitch {
        return None;
    }
    let queued = store.repair_queue().await.ok()?;
    (queued > 0).then(|| {
        format!(
            "{queued} key(s) written to the target since the write switch wait in the repair \
             queue and are not on the source, which the rollback makes primary again"
        )
    })
}
