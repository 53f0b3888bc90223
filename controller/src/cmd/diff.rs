//! `switchyard diff MIGRATION`: compares the source and target tables
//! and reports what differs; exit 0 clean, 1 different, 2 error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::report::{Level, Report};
use switchyard_consistency::diff::{Job, Options, Progress};
use switchyard_core::config::Config;
use switchyard_core::sql::{self, Dialect};
use switchyard_core::store::OUTBOX;

use crate::live::Live;

/// What `switchyard diff` was asked.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The migration to compare.
    pub migration: String,
    /// How deep to look.
    #[arg(long, value_enum, default_value = "standard")]
    pub level: LevelArg,
    /// List every differing key instead of a sample.
    #[arg(long)]
    pub all_keys: bool,
    /// Differing keys listed when not all are.
    #[arg(long, default_value_t = 20)]
    pub sample: usize,
    /// Read at most this many source rows per second.
    #[arg(long)]
    pub max_rows_per_sec: Option<u64>,
    /// Pause while the server is busier than this: PostgreSQL sessions
    /// waiting for a lock, MySQL's `Threads_running`.
    #[arg(long)]
    pub pause_when_busy: Option<u64>,
    /// Connections hashing chunks at once.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Target time per chunk, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub chunk_ms: u64,
    /// Across servers: seconds to re-check differing chunks (the outbox
    /// draining) before a difference counts.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
    /// When the tables differ, set this migration's reads to the source on
    /// every proxy named by `--proxy-admin`: a diff run during a read ramp
    /// then takes the target out of service by itself. Off by default.
    #[arg(long)]
    pub roll_back_reads: bool,
    /// A proxy's admin address (`http://host:9187`); repeat, or separate
    /// with commas, for each replica.
    #[arg(
        long = "proxy-admin",
        env = "SWITCHYARD_PROXY_ADMINS",
        value_delimiter = ','
    )]
    pub proxy_admins: Vec<String>,
    /// The bearer token of the proxies' admin API.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A file that records how far the diff got; a later run with the
    /// same file starts after that point.
    #[arg(long)]
    pub resume_file: Option<PathBuf>,
}

/// `--level`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LevelArg {
    Basic,
    Standard,
    Detailed,
    Full,
}

impl From<LevelArg> for Level {
    fn from(level: LevelArg) -> Level {
        match level {
            LevelArg::Basic => Level::Basic,
            LevelArg::Standard => Level::Standard,
            LevelArg::Detailed => Level::Detailed,
            LevelArg::Full => Level::Full,
        }
    }
}

/// Runs the diff and prints its report.
pub async fn run(config: &Config, args: &DiffArgs, json: bool) -> ExitCode {
    if args.roll_back_reads && args.proxy_admins.is_empty() {
        let e =
            "--roll-back-reads needs the proxies: name each with --proxy-admin http://HOST:PORT";
        return super::fail(json, &e);
    }
    match diff(config, args).await {
        Ok(report) => {
            if args.roll_back_reads && !report.clean {
                let answers = crate::proxies::roll_back_reads(
                    &args.proxy_admins,
                    args.admin_token.as_deref(),
                    &args.migration,
                )
                .await;
                for a in &answers {
                    let done = if a.ok {
                        "reads rolled back to the source"
                    } else {
                        "roll-back FAILED"
                    };
                    eprintln!("diff: proxy {}: {done}: {}", a.proxy, a.detail);
                }
            }
            let text = if json {
                serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
            } else {
                report.to_string()
            };
            super::print(&text);
            ExitCode::from(if report.clean {
                super::OK
            } else {
                super::NOT_OK
            })
        }
        Err(e) => super::fail(json, &e),
    }
}

/// Resolves the migration and runs the diff, showing progress on stderr.
pub async fn diff(config: &Config, args: &DiffArgs) -> anyhow::Result<Report> {
    let live = Live::resolve(config, &args.migration).await?;
    let compared = Compared::new(
        live.dialect,
        &live.mapping,
        &live.migration.source.primary_key,
        live.migration.time_zone.as_deref(),
    )?;
    let resume_after = match &args.resume_file {
        Some(path) if path.exists() => Some(serde_json::from_str::<Vec<String>>(
            &std::fs::read_to_string(path)?,
        )?),
        _ => None,
    };
    let options = Options {
        level: args.level.into(),
        chunk_time: Duration::from_millis(args.chunk_ms.max(1)),
        workers: args.workers.max(1),
        max_rows_per_second: args.max_rows_per_sec,
        busy_limit: args.pause_when_busy,
        sample: args.sample,
        all_keys: args.all_keys,
        resume_after,
        settle: Duration::from_secs(args.settle_secs),
        outbox_pending: live
            .migration
            .is_cross_server()
            .then(|| outbox_pending(&live)),
        ..Options::default()
    };
    let job = Job {
        migration: &live.migration.id,
        compared: &compared,
        connect: &live,
        one_connection: live.same_database(),
    };
    let show = Shown::new();
    let report = job.run(&options, &|p| show.progress(p, args)).await?;
    show.finish();
    if let Some(path) = &args.resume_file {
        // A finished diff leaves nothing to resume.
        let _ = std::fs::remove_file(path);
    }
    Ok(report)
}

/// How many of the migration's writes wait in the source's outbox (the
/// control store lives in the source table's schema or database).
fn outbox_pending(live: &Live) -> String {
    let schema = &live.mapping.source.schema;
    match live.dialect {
        Dialect::Postgres => format!(
            "SELECT count(*)::text FROM {} WHERE migration = {}",
            sql::pg::qualified(schema, OUTBOX),
            sql::pg::literal(&live.migration.id)
        ),
        Dialect::Mysql => format!(
            "SELECT COUNT(*) FROM {} WHERE migration = {}",
            sql::mysql::qualified(schema, OUTBOX),
            sql::mysql::literal(&live.migration.id)
        ),
    }
}

/// Progress on stderr: a bar on a terminal (rows against the server's
/// estimate), a plain line every few seconds otherwise, so a log stays
/// readable.
struct Shown {
    /// The bar, on a terminal.
    bar: Option<ProgressBar>,
    /// When the last plain line was printed.
    last: std::sync::Mutex<Instant>,
}

impl Shown {
    fn new() -> Shown {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} diff [{bar:30}] {pos}/{len} rows {per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Shown {
            bar,
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn progress(&self, p: &Progress, args: &DiffArgs) {
        if let (Some(path), Some(after)) = (&args.resume_file, &p.resume_after) {
            let _ = std::fs::write(path, serde_json::to_string(after).unwrap_or_default());
        }
        let message = format!("{} chunks, {} differing", p.chunks, p.differing);
        if let Some(bar) = &self.bar {
            bar.set_length(p.estimate.unwrap_or(0).max(p.rows));
            bar.set_position(p.rows);
            bar.set_message(message);
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(5) {
            let share = p
                .estimate
                .filter(|e| *e > 0)
                .map(|e| format!(" ({:.0}%)", (p.rows as f64 * 100.0 / e as f64).min(100.0)))
                .unwrap_or_default();
            eprintln!("diff: {} rows{share}, {message}", p.rows);
            *last = Instant::now();
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
