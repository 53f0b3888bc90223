//! `switchyard run <id>`: drives the migration to `complete` as the
//! controller (`controller@host`): advances through each phase, runs the
//! backfill, follows the ramp schedule (each step bakes for `ramp.bake`
//! with at least `rollback.min_samples` target reads across the proxies,
//! and holds while there are fewer), waits for `approve` when the ramp
//! asks for it, and passes the gates. It stops at `complete` (exit 0), or
//! on a rollback, a refusal or a closed gate (exit 1, with the message).
//! Operators' pause, resume, ramp and rollback take effect at its next
//! look at the store (every second).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use switchyard_core::config::{Config, Phase};
use switchyard_core::store::PROXY_STATS;

use super::operate::{report, Ended};
use crate::executor::store::number;
use crate::executor::{self, ExecError, Executor, Settings};
use crate::phase::Event;

/// How often the loop looks at the store.
const TICK: Duration = Duration::from_secs(1);

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The migration.
    pub migration: String,
    /// Seconds to wait for proxies to acknowledge a new epoch.
    #[arg(long, default_value_t = 60)]
    pub ack_timeout: u64,
    /// Target reads each bake needs, instead of the config's
    /// `rollback.min_samples` (0 for a rehearsal without traffic).
    #[arg(long)]
    pub min_samples: Option<u64>,
}

/// Drives the migration.
pub async fn run(config: &Config, args: &RunArgs, json: bool) -> ExitCode {
    let settings = Settings {
        ack_timeout: Duration::from_secs(args.ack_timeout),
        lease_wait: Some(Duration::from_secs(24 * 3600)),
        ..Settings::default()
    };
    let opened = Executor::open(config, &args.migration, &executor::controller(), settings).await;
    let mut exec = match opened {
        Ok(exec) => exec,
        Err(e) => return super::fail(json, &e),
    };
    let code = match drive(&mut exec, args.min_samples).await {
        Ok(ended) => report(&exec, &ended, json),
        Err(e) => super::fail(json, &e),
    };
    exec.close().await;
    code
}

/// The loop: one decision per look at the store.
async fn drive(exec: &mut Executor, min_samples: Option<u64>) -> Result<Ended, ExecError> {
    exec.take_over(true).await?;
    let mut said_waiting = false;
    loop {
        exec.reload().await?;
        let s = exec.state.clone();
        let printed = exec.happened.len();
        match s.phase {
            Phase::Complete => {
                // The archive of a controller that stopped is redone.
                exec.take_over(true).await?;
                return Ok(Ended::Applied);
            }
            Phase::RolledBack => {
                let why = s.rollback_reason.unwrap_or_default();
                return Ok(Ended::Declined(format!(
                    "migration `{}` was rolled back: {why}",
                    s.migration
                )));
            }
            _ if s.paused => tokio::time::sleep(TICK).await,
            Phase::Backfill => exec.take_over(true).await?,
            Phase::ReadRamp if s.pending_approval.is_some() => {
                if !said_waiting {
                    eprintln!(
                        "switchyard: the ramp's next step awaits `switchyard approve {}`",
                        s.migration
                    );
                    said_waiting = true;
                }
                tokio::time::sleep(TICK).await;
            }
            Phase::ReadRamp | Phase::ReadsOnTarget if !s.baked => {
                said_waiting = false;
                if bake(exec, min_samples).await? {
                    if let Err(refusal) = exec.apply(Event::BakeElapsed).await? {
                        return Ok(Ended::Refused(refusal));
                    }
                }
            }
            _ => {
                if let Err(refusal) = exec.apply(Event::Advance { to: None }).await? {
                    return Ok(Ended::Refused(refusal));
                }
                if !exec.closed.is_empty() {
                    return Ok(Ended::Applied);
                }
            }
        }
        for line in &exec.happened[printed..] {
            eprintln!("{}: {line}", s.migration);
        }
    }
}

/// Waits out one bake: `ramp.bake` with at least `rollback.min_samples`
/// target reads since it began (or `min_samples` when given). False when the state changed meanwhile
/// (a ramp, a pause, a rollback), so the loop looks again.
pub(crate) async fn bake(exec: &mut Executor, min_samples: Option<u64>) -> Result<bool, ExecError> {
    let m = exec.site.migration.clone();
    let needed = min_samples.unwrap_or(m.rollback.min_samples);
    let (phase, share, epoch) = (exec.state.phase, exec.state.share, exec.state.epoch);
    let started = Instant::now();
    let first = target_reads(exec).await?;
    let mut said = false;
    loop {
        tokio::time::sleep(TICK.min(m.ramp.bake)).await;
        exec.reload().await?;
        let s = &exec.state;
        if s.phase != phase || s.share != share || s.epoch != epoch || s.paused {
            return Ok(false);
        }
        if started.elapsed() < m.ramp.bake {
            continue;
        }
        let samples = target_reads(exec).await?.saturating_sub(first);
        if samples >= needed {
            return Ok(true);
        }
        if !said {
            eprintln!(
                "switchyard: `{}` holds at {share}: {samples} of {} target reads so far",
                m.id, needed
            );
            said = true;
        }
    }
}

/// Target reads every proxy reported, summed.
async fn target_reads(exec: &mut Executor) -> Result<u64, ExecError> {
    let store = exec.store_mut();
    let query = format!(
        "SELECT COALESCE(SUM(target_reads), 0) FROM {} WHERE migration = {}",
        store.table(PROXY_STATS),
        store.literal(&store.migration)
    );
    let rows = store
        .rows("reading the proxies' read counts", &query)
        .await?;
    Ok(number(rows.first().and_then(|r| r.first())))
}
