//! `switchyard`: the operator CLI. Each command lives in `cmd`; this file
//! only parses the arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard_controller::cmd;

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

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Plan {
            action: PlanAction::Check,
        } => cmd::plan::check(&args.config, args.json),
    }
}
