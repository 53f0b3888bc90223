//! `switchyard backfill <migration>`: copies the migration's existing rows
//! into the target, printing progress, until done. Ctrl-C pauses after the
//! chunk in flight; running the command again resumes from the checkpoint.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use switchyard_core::config::Config;
use tokio::sync::watch;

use crate::backfill::{self, Outcome, Progress, Settings, State};
use crate::live::Live;

/// How often a progress line is printed while copying.
const PRINT_EVERY: Duration = Duration::from_secs(1);

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct BackfillArgs {
    /// The migration whose rows to copy.
    pub migration: String,
    /// Copy at most this many rows per second.
    #[arg(long)]
    pub max_rows_per_sec: Option<u64>,
    /// The time one chunk should take, in milliseconds; the chunk size
    /// adapts to it.
    #[arg(long, default_value_t = 100)]
    pub chunk_time_ms: u64,
    /// Pause while the server's load is above this: PostgreSQL, sessions
    /// waiting for a lock (default 10); MySQL, Threads_running (default 25).
    #[arg(long)]
    pub max_load: Option<u64>,
    /// Start again from the first key, ignoring the checkpoint.
    #[arg(long)]
    pub restart: bool,
}

/// Runs the backfill of `options.migration`. Exit code 0 when done, 1
/// when paused, 2 on an error.
pub async fn run(config: &Config, options: &BackfillArgs, json: bool) -> ExitCode {
    let live = match Live::resolve(config, &options.migration).await {
        Ok(live) => live,
        Err(e) => return super::fail(json, &e),
    };
    let settings = Settings {
        chunk_time: Duration::from_millis(options.chunk_time_ms.max(1)),
        max_rows_per_sec: options.max_rows_per_sec,
        max_load: options.max_load,
        restart: options.restart,
        ..Settings::default()
    };
    let (pause, stop) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("switchyard: pausing after the chunk in flight");
            let _ = pause.send(true);
        }
    });
    let mut last_print: Option<Instant> = None;
    let mut print = |p: &Progress| {
        let copying = matches!(p.state, State::Copying | State::Throttled { .. });
        if copying && last_print.is_some_and(|t| t.elapsed() < PRINT_EVERY) {
            return;
        }
        last_print = Some(Instant::now());
        match json {
            true => println!("{}", p.to_json()),
            false => println!("{p}"),
        }
    };
    match backfill::run(&live, &settings, stop, &mut print).await {
        Ok(Outcome::Done { .. }) => ExitCode::from(super::OK),
        Ok(Outcome::Paused { .. }) => ExitCode::from(super::NOT_OK),
        Err(e) => super::fail(json, &e),
    }
}
