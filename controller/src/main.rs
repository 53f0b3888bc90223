//! `switchyard`: the operator CLI. For now it checks plans; the phase
//! machine, gates and the other commands arrive with the control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
        } => plan_check(&args.config, args.json),
    }
}

fn plan_check(path: &std::path::Path, json: bool) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            if json {
                let migrations: Vec<_> = config
                    .migrations
                    .iter()
                    .map(|m| serde_json::json!({ "id": m.id, "phase": m.phase.as_str() }))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({ "ok": true, "migrations": migrations })
                );
            } else {
                println!(
                    "{}: valid, {} migration(s)",
                    path.display(),
                    config.migrations.len()
                );
                for m in &config.migrations {
                    println!("  {} (phase {})", m.id, m.phase.as_str());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": e.to_string() })
                );
            } else {
                eprintln!("switchyard: {e}");
            }
            ExitCode::from(2)
        }
    }
}
