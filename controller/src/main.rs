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
        return cmd::plan::check(&args.config, args.json);
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return cmd::fail(args.json, &e),
    };
    match &args.command {
        Command::Diff(diff) => cmd::diff::run(&config, diff, args.json).await,
        Command::Repair(repair) => cmd::repair::run(&config, repair, args.json).await,
        Command::Backfill(backfill) => cmd::backfill::run(&config, backfill, args.json).await,
        Command::Plan { .. } => unreachable!("handled above"),
    }
}
