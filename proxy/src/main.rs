//! `switchyard-proxy --config FILE`: the data plane binary.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use switchyard_core::config::Config;
use switchyard_proxy::route::MigrationRouter;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Switchyard's wire-level proxy for PostgreSQL and MySQL/MariaDB.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The YAML configuration file (reloaded on change and on SIGHUP).
    #[arg(long, short, env = "SWITCHYARD_CONFIG")]
    config: PathBuf,
    /// Log format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "SWITCHYARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `switchyard_proxy=debug`.
    #[arg(long, default_value = "info", env = "SWITCHYARD_LOG")]
    log: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchyard-proxy: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Accepting, admin and reload are light; sessions run on the worker
    // threads (limits.worker_threads).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(config, args.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-proxy: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let running =
        switchyard_proxy::server::start(config, Some(path), Arc::new(MigrationRouter::default()))
            .await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    let left = running.drain().await;
    if left > 0 {
        tracing::warn!(sessions = left, "drain timeout reached; closing the remaining sessions (their open transactions roll back)");
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(())
}
