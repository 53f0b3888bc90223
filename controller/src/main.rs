//! `switchyard`: the operator CLI. Each command lives in `cmd`; this file
//! only parses the arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_controller::cmd;
use switchyard_core::config::Config;

/// Operate Switchyard migrations.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The YAML configuration file shared with the proxies.
    #[arg(long, short, env = "SWITCHYARD_CONFIG")]
    config: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compare a migration's source and target tables: exit 0 when they
    /// agree, 1 when they differ, 2 on an error.
    Diff(cmd::diff::DiffArgs),
    /// Re-sync the keys that differ (or that the dual write queued, with
    /// `--queue`) from the source, then compare them again.
    Repair(cmd::repair::RepairArgs),
    /// Copy a migration's existing rows into its target, resumably: exit
    /// 0 when done, 1 when paused (Ctrl-C), 2 on an error.
    Backfill(cmd::backfill::BackfillArgs),
    /// Install the control store (and the guards of mirroring migrations);
    /// running it again changes nothing.
    Init,
    /// Each migration at a glance: phase, share, queues, backfill, proxies.
    Status(cmd::status::StatusArgs),
    /// Take a migration one phase further and carry out what that needs.
    Advance(cmd::advance::AdvanceArgs),
    /// Set the target's read share during read_ramp.
    Ramp(cmd::ramp::RampArgs),
    /// Send reads and writes back to the source.
    Rollback(cmd::rollback::RollbackArgs),
    /// Hold a migration where it is.
    Pause {
        /// The migration.
        migration: String,
    },
    /// Carry on after a pause.
    Resume {
        /// The migration.
        migration: String,
    },
    /// Take the ramp step that waits for an operator.
    Approve {
        /// The migration.
        migration: String,
    },
    /// Drive a migration to complete: phases, backfill, ramp, gates.
    Run(cmd::run::RunArgs),
    /// The migration's report from the audit log (Markdown, or JSON).
    Report(cmd::report::ReportArgs),
    /// Drop a complete migration's archived source.
    DropArchive(cmd::drop_archive::DropArchiveArgs),
    /// Plans: `plan check` validates the file and lists its migrations.
    Plan {
        #[command(subcommand)]
        action: PlanAction,
    },
}

#[derive(Subcommand, Debug)]
enum PlanAction {
    /// Validate the configuration and its migrations.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::Plan {
        action: PlanAction::Check,
    } = args.command
    {
        return cmd::plan::check(&args.config, args.json).await;
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return cmd::fail(args.json, &e),
    };
    match &args.command {
        Command::Diff(diff) => cmd::diff::run(&config, diff, args.json).await,
        Command::Repair(repair) => cmd::repair::run(&config, repair, args.json).await,
        Command::Backfill(backfill) => cmd::backfill::run(&config, backfill, args.json).await,
        Command::Init => cmd::init::run(&config, args.json).await,
        Command::Status(status) => cmd::status::run(&config, status, args.json).await,
        Command::Advance(advance) => cmd::advance::run(&config, advance, args.json).await,
        Command::Ramp(ramp) => cmd::ramp::run(&config, ramp, args.json).await,
        Command::Rollback(rollback) => cmd::rollback::run(&config, rollback, args.json).await,
        Command::Pause { migration } => cmd::pause::run(&config, migration, args.json).await,
        Command::Resume { migration } => cmd::resume::run(&config, migration, args.json).await,
        Command::Approve { migration } => cmd::approve::run(&config, migration, args.json).await,
        Command::Run(run) => cmd::run::run(&config, run, args.json).await,
        Command::Report(report) => cmd::report::run(&config, report, args.json).await,
        Command::DropArchive(drop) => cmd::drop_archive::run(&config, drop, args.json).await,
        Command::Plan { .. } => unreachable!("handled above"),
    }
}
