//! The backfill as the executor runs it: the runner of `crate::backfill`,
//! stopped after its chunk in flight when the stored state says so (an
//! operator paused the migration or rolled it back from another
//! process), with a progress line on stderr now and then.

use std::time::{Duration, Instant};

use switchyard_core::config::Phase;
use tokio::sync::watch;

use super::store::Store;
use super::ExecError;
use crate::backfill::{self, Outcome, Progress, Settings};
use crate::live::{Live, Site};

/// How often the stored state is read while the backfill runs.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How often a progress line is printed.
const PRINT_EVERY: Duration = Duration::from_secs(5);

/// Runs the backfill to its end; true when every chunk is copied, false
/// when it stopped because the stored state changed.
pub async fn run(live: &Live, site: &Site, settings: &Settings) -> Result<bool, ExecError> {
    let (stop, stopped) = watch::channel(false);
    let mut watcher_store = Store::open(site).await?;
    let watcher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            match watcher_store.read().await {
                Ok(Some(s)) if s.paused || s.phase != Phase::Backfill => {
                    let _ = stop.send(true);
                    return;
                }
                _ => {}
            }
        }
    });
    let mut last: Option<Instant> = None;
    let mut print = |p: &Progress| {
        if last.is_none_or(|t| t.elapsed() >= PRINT_EVERY) {
            last = Some(Instant::now());
            eprintln!("{p}");
        }
    };
    let outcome = backfill::run(live, settings, stopped, &mut print).await;
    watcher.abort();
    match outcome? {
        Outcome::Done { .. } => Ok(true),
        Outcome::Paused { .. } => Ok(false),
    }
}
