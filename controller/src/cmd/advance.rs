//! `switchyard advance <id> [--to PHASE]`: takes the migration one phase
//! further and carries out what that needs, in this process: the guard
//! at dual_write; the fence and the whole backfill after it (ending in
//! validate); the gates before read_ramp and write_switch; the counters
//! and the held writes of the switch (after the reads baked on the
//! target for `ramp.bake`); the archive at complete. A
//! controller that stopped half way is resumed first (a fence, the
//! backfill, the archive), and then nothing more is done in that run.

use std::process::ExitCode;
use std::time::Duration;

use switchyard_core::config::{Config, Phase};

use super::operate::{report, Ended};
use crate::executor::{self, archive, ExecError, Executor, Settings};
use crate::phase::Event;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct AdvanceArgs {
    /// The migration.
    pub migration: String,
    /// The phase expected next; refused when it is not the next one.
    #[arg(long, value_parser = |s: &str| s.parse::<Phase>())]
    pub to: Option<Phase>,
    /// Seconds to wait for proxies to acknowledge a new epoch.
    #[arg(long, default_value_t = 60)]
    pub ack_timeout: u64,
    /// Target reads the bake before the write switch needs, instead of the
    /// config's `rollback.min_samples` (0 for a rehearsal without traffic).
    #[arg(long)]
    pub min_samples: Option<u64>,
    /// Seconds to wait for another controller's lease.
    #[arg(long, default_value_t = 60)]
    pub lease_wait: u64,
}

/// Advances the migration.
pub async fn run(config: &Config, args: &AdvanceArgs, json: bool) -> ExitCode {
    let settings = Settings {
        ack_timeout: Duration::from_secs(args.ack_timeout),
        lease_wait: Some(Duration::from_secs(args.lease_wait)),
        ..Settings::default()
    };
    let opened = Executor::open(config, &args.migration, &executor::operator(), settings).await;
    let mut exec = match opened {
        Ok(exec) => exec,
        Err(e) => return super::fail(json, &e),
    };
    let result = advance(&mut exec, args).await;
    let code = match result {
        Ok(ended) => report(&exec, &ended, json),
        Err(e) => {
            if !json {
                let _ = report(&exec, &Ended::Applied, false);
            }
            super::fail(json, &e)
        }
    };
    exec.close().await;
    code
}

/// Resumes what was in flight, or else applies the advance.
async fn advance(exec: &mut Executor, args: &AdvanceArgs) -> Result<Ended, ExecError> {
    let to = args.to;
    let before = exec.phase();
    exec.take_over(true).await?;
    if exec.phase() != before {
        exec.happened.push(format!(
            "resumed the work in flight at {before}; run advance again to go on"
        ));
        return Ok(Ended::Applied);
    }
    if before == Phase::ReadsOnTarget && !exec.state.paused {
        // The write switch needs the reads baked on the target first.
        eprintln!(
            "switchyard: baking reads on the target for {:?} before the write switch",
            exec.site.migration.ramp.bake
        );
        if !super::run::bake(exec, args.min_samples).await? {
            exec.happened
                .push("the state changed while baking; look at it and advance again".into());
            return Ok(Ended::Applied);
        }
        if let Err(refusal) = exec.apply(Event::BakeElapsed).await? {
            return Ok(Ended::Refused(refusal));
        }
    }
    if before == Phase::WriteSwitch && to.is_none_or(|t| t == Phase::Complete) {
        if let Some(why) = blocks_archive(exec).await? {
            return Ok(Ended::Declined(why));
        }
    }
    Ok(match exec.apply(Event::Advance { to }).await? {
        Ok(()) => Ended::Applied,
        Err(refusal) => Ended::Refused(refusal),
    })
}

/// Why the source cannot be archived yet, checked before `complete` so
/// the phase does not move while a view or a foreign key still needs it.
async fn blocks_archive(exec: &Executor) -> Result<Option<String>, ExecError> {
    let site = &exec.site;
    let mut conn = site.conn().await?;
    let found = archive::dependents(
        &mut conn,
        site.dialect,
        &site.schema,
        &site.migration.source.table,
    )
    .await
    .map_err(|error| ExecError::Gate {
        migration: site.migration.id.clone(),
        gate: "archive".into(),
        error,
    })?;
    if found.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        ExecError::Dependents {
            migration: site.migration.id.clone(),
            list: archive::list(&found),
        }
        .to_string(),
    ))
}
