//! `switchyard status [ID]`: each migration at a glance: phase, epoch,
//! read share, paused, repair queue and outbox depth, backfill progress
//! and the proxies reporting with the epoch each enforces. `--json` for
//! scripts (one document per line), `--watch` refreshes every
//! `--interval` seconds until interrupted or until its reader closes the
//! pipe. Reads the store only: it takes no lease and changes nothing.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use switchyard_core::backfill::CHECKPOINT_TABLE;
use switchyard_core::config::Config;
use switchyard_core::sql::Dialect;

use crate::executor::store::{number, text, ProxyBeat, Store};
use crate::executor::ExecError;
use crate::live::Site;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// One migration; all when omitted.
    pub migration: Option<String>,
    /// Refresh every `--interval` seconds until interrupted (Ctrl-C).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two refreshes of `--watch`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
}

/// One migration's line.
#[derive(Debug, Serialize)]
pub struct Line {
    /// The migration's id.
    pub migration: String,
    /// Its phase (the config's starting phase when nothing is stored).
    pub phase: String,
    /// Whether a state is stored (`false`: not started by a controller).
    pub stored: bool,
    /// The epoch proxies must enforce.
    pub epoch: u64,
    /// The target's read share, in percent.
    pub share: f64,
    /// Paused by an operator.
    pub paused: bool,
    /// A ramp step waiting for approval, in percent.
    pub pending_approval: Option<f64>,
    /// Proxies hold writes (the write switch runs).
    pub holding_writes: bool,
    /// Why it was rolled back.
    pub rollback_reason: Option<String>,
    /// Keys waiting in the repair queue.
    pub repair_queue: u64,
    /// Keys waiting in the outbox.
    pub outbox: u64,
    /// Seconds the oldest key in the outbox has waited; `None` when empty.
    pub outbox_lag_seconds: Option<f64>,
    /// Target reads the live proxies reported (since each started).
    pub target_reads: u64,
    /// Of those, the ones that failed, as a fraction; `None` before any.
    pub target_error_rate: Option<f64>,
    /// Target reads the proxies' shadow compared with the source's answer.
    pub shadow_compared: u64,
    /// Of those, the ones whose answers differed.
    pub shadow_mismatches: u64,
    /// Rows the backfill copied, and its percent of the source's estimate.
    pub backfill_rows: u64,
    /// Percent done (100 once the backfill finished); `None` before it ran.
    pub backfill_percent: Option<f64>,
    /// Proxies heartbeating within 5 s, with their epochs.
    pub proxies: Vec<ProxyBeat>,
}

/// Prints the status, once or every `--interval` seconds. A watch ends
/// with exit 0 on Ctrl-C or once stdout is closed (`| head`); it would
/// otherwise go on querying the store for nobody.
pub async fn run(config: &Config, args: &StatusArgs, json: bool) -> ExitCode {
    // Only a terminal is cleared between frames; a pipe or a file gets
    // one frame after the other.
    let clear = args.watch && !json && std::io::stdout().is_terminal();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let lines = match collect(config, args.migration.as_deref()).await {
            Ok(lines) => lines,
            Err(e) => return super::fail(json, &e),
        };
        let text = if json {
            serde_json::json!({ "ok": true, "migrations": lines }).to_string() + "\n"
        } else {
            table(&lines)
        };
        let frame = if clear {
            format!("\x1b[2J\x1b[H{text}")
        } else {
            text
        };
        if !super::written(&frame) || !args.watch {
            return ExitCode::from(super::OK);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = &mut interrupted => return ExitCode::from(super::OK),
        }
    }
}

/// The lines of `only`, or of every migration.
pub async fn collect(config: &Config, only: Option<&str>) -> Result<Vec<Line>, ExecError> {
    let ids: Vec<String> = match only {
        Some(id) => vec![id.to_string()],
        None => config.migrations.iter().map(|m| m.id.clone()).collect(),
    };
    let mut lines = Vec::new();
    for id in ids {
        lines.push(line(config, &id).await?);
    }
    Ok(lines)
}

async fn line(config: &Config, id: &str) -> Result<Line, ExecError> {
    let site = Site::resolve(config, id)?;
    let mut store = Store::open(&site).await?;
    if !store.installed().await? {
        return Err(ExecError::NoStore {
            migration: id.to_string(),
            store: site.schema.clone(),
        });
    }
    let stored = store.read().await?;
    let (rows, percent) = backfill(&mut store, &site).await?;
    let reads = store.read_figures().await?;
    Ok(Line {
        migration: id.to_string(),
        phase: stored
            .as_ref()
            .map_or(site.migration.phase, |s| s.phase)
            .to_string(),
        stored: stored.is_some(),
        epoch: stored.as_ref().map_or(0, |s| s.epoch),
        share: stored.as_ref().map_or(0.0, |s| s.share.as_percent()),
        paused: stored.as_ref().is_some_and(|s| s.paused),
        pending_approval: stored
            .as_ref()
            .and_then(|s| s.pending_approval)
            .map(|p| p.as_percent()),
        holding_writes: stored.as_ref().is_some_and(|s| s.holding_writes),
        rollback_reason: stored.as_ref().and_then(|s| s.rollback_reason.clone()),
        repair_queue: store.repair_queue().await?,
        outbox: store.outbox().await?,
        outbox_lag_seconds: store.outbox_lag().await?,
        target_reads: reads.target_reads,
        target_error_rate: (reads.target_reads > 0)
            .then(|| reads.target_errors as f64 / reads.target_reads as f64),
        shadow_compared: reads.shadow_compared,
        shadow_mismatches: reads.shadow_mismatches,
        backfill_rows: rows,
        backfill_percent: percent,
        proxies: store.live_proxies().await?,
    })
}

/// The backfill's rows copied and percent done, from its checkpoint and
/// the server's estimate of the source's rows.
async fn backfill(store: &mut Store, site: &Site) -> Result<(u64, Option<f64>), ExecError> {
    let checkpoint = format!(
        "SELECT rows_copied, done FROM {} WHERE migration = {}",
        store.table(CHECKPOINT_TABLE),
        store.literal(&site.migration.id)
    );
    // No checkpoint table yet: the backfill never ran.
    let Ok(rows) = store.conn.rows(&checkpoint).await else {
        return Ok((0, None));
    };
    let Some(row) = rows.first() else {
        return Ok((0, None));
    };
    let copied = number(row.first());
    if matches!(text(row.get(1)).as_str(), "t" | "1") {
        return Ok((copied, Some(100.0)));
    }
    let table = &site.migration.source.table;
    let estimate = match site.dialect {
        Dialect::Postgres => format!(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass({})",
            store.literal(&switchyard_core::sql::pg::qualified(&site.schema, table))
        ),
        Dialect::Mysql => format!(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            store.literal(&site.schema),
            store.literal(table)
        ),
    };
    let rows = store
        .rows("estimating the source's rows", &estimate)
        .await?;
    let total = number(rows.first().and_then(|r| r.first()))
        .max(copied)
        .max(1);
    Ok((copied, Some(100.0 * copied as f64 / total as f64)))
}

/// The lines as a table.
fn table(lines: &[Line]) -> String {
    let mut out = format!(
        "{:<24} {:<16} {:>5} {:>7} {:<7} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9}  {}\n",
        "MIGRATION",
        "PHASE",
        "EPOCH",
        "SHARE",
        "PAUSED",
        "TGT ERR",
        "MISMATCH",
        "REPAIR",
        "OUTBOX",
        "LAG",
        "BACKFILL",
        "PROXIES"
    );
    for l in lines {
        let proxies: Vec<String> = l
            .proxies
            .iter()
            .map(|p| format!("{}@{}", p.proxy, p.epoch))
            .collect();
        out.push_str(&format!(
            "{:<24} {:<16} {:>5} {:>6.2}% {:<7} {:>8} {:>9} {:>7} {:>7} {:>7} {:>9}  {}\n",
            l.migration,
            l.phase,
            l.epoch,
            l.share,
            if l.paused { "yes" } else { "no" },
            l.target_error_rate
                .map_or("-".to_string(), |r| format!("{:.2}%", 100.0 * r)),
            match l.shadow_compared {
                0 => "-".to_string(),
                n => format!("{}/{n}", l.shadow_mismatches),
            },
            l.repair_queue,
            l.outbox,
            l.outbox_lag_seconds
                .map_or("-".to_string(), |s| format!("{s:.1}s")),
            l.backfill_percent
                .map_or("-".to_string(), |p| format!("{p:.1}%")),
            if proxies.is_empty() {
                "none reporting".to_string()
            } else {
                proxies.join(" ")
            }
        ));
        if let Some(why) = &l.rollback_reason {
            out.push_str(&format!("  rolled back: {why}\n"));
        }
        if let Some(p) = l.pending_approval {
            out.push_str(&format!(
                "  step to {p}% awaits `switchyard approve {}`\n",
                l.migration
            ));
        }
    }
    out
}
