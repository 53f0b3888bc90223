//! `switchyard report <id>`: the migration's story from the audit log
//! (`switchyard_events`): a timeline of who did what and why, the
//! rollbacks and closed gates, and figures (phase changes, time from the
//! first entry to the last). Markdown on stdout, JSON with `--json`;
//! `--out DIR` writes both (`<id>.md`, `<id>.json`).

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use switchyard_core::config::Config;
use switchyard_core::sql::Dialect;
use switchyard_core::store::EVENTS;

use crate::executor::store::{text, Store};
use crate::executor::ExecError;
use crate::live::Site;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The migration.
    pub migration: String,
    /// A directory to write `<id>.md` and `<id>.json` into.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// When, as the server printed it.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The phase before.
    pub from: String,
    /// The phase after.
    pub to: String,
    /// Why, when given.
    pub reason: Option<String>,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The migration.
    pub migration: String,
    /// Where it stands now.
    pub phase: String,
    /// Every audit entry, oldest first.
    pub timeline: Vec<Entry>,
    /// The rollbacks, with their reasons.
    pub rollbacks: Vec<String>,
    /// The gates found closed, with why.
    pub gates_closed: Vec<String>,
    /// Phase changes in the log.
    pub phase_changes: usize,
    /// Seconds from the first entry to the last.
    pub seconds: f64,
}

/// Writes the report.
pub async fn run(config: &Config, args: &ReportArgs, json: bool) -> ExitCode {
    let report = match build(config, &args.migration).await {
        Ok(r) => r,
        Err(e) => return super::fail(json, &e),
    };
    let doc = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    let md = markdown(&report);
    if let Some(dir) = &args.out {
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(format!("{}.md", report.migration)), &md))
            .and_then(|()| std::fs::write(dir.join(format!("{}.json", report.migration)), &doc));
        if let Err(e) = written {
            return super::fail(
                json,
                &format!("writing the report into {}: {e}", dir.display()),
            );
        }
    }
    super::print(if json { &doc } else { &md });
    ExitCode::from(super::OK)
}

/// Reads the audit log and the state.
pub async fn build(config: &Config, id: &str) -> Result<Report, ExecError> {
    let site = Site::resolve(config, id)?;
    let mut store = Store::open(&site).await?;
    let at = match site.dialect {
        Dialect::Postgres => "at::text",
        Dialect::Mysql => "`at`",
    };
    let span = match site.dialect {
        Dialect::Postgres => "extract(epoch FROM max(at) - min(at))::text",
        Dialect::Mysql => "TIMESTAMPDIFF(MICROSECOND, MIN(`at`), MAX(`at`)) / 1000000",
    };
    let query = format!(
        "SELECT {at}, actor, action, from_phase, to_phase, reason FROM {} WHERE migration = {} ORDER BY id",
        store.table(EVENTS),
        store.literal(id)
    );
    let rows = store.rows("reading the audit log", &query).await?;
    let timeline: Vec<Entry> = rows
        .iter()
        .map(|r| Entry {
            at: text(r.first()),
            actor: text(r.get(1)),
            action: text(r.get(2)),
            from: text(r.get(3)),
            to: text(r.get(4)),
            reason: r.get(5).and_then(|c| c.as_ref()).map(|_| text(r.get(5))),
        })
        .collect();
    let spans = format!(
        "SELECT {span} FROM {} WHERE migration = {}",
        store.table(EVENTS),
        store.literal(id)
    );
    let seconds = store.rows("timing the audit log", &spans).await?;
    let seconds = text(seconds.first().and_then(|r| r.first()))
        .parse()
        .unwrap_or(0.0);
    let phase = store
        .read()
        .await?
        .map_or(site.migration.phase, |s| s.phase);
    Ok(Report {
        migration: id.to_string(),
        phase: phase.to_string(),
        rollbacks: timeline
            .iter()
            .filter(|e| e.action == "rollback")
            .map(|e| {
                format!(
                    "{} from {} by {}: {}",
                    e.at,
                    e.from,
                    e.actor,
                    e.reason.clone().unwrap_or_default()
                )
            })
            .collect(),
        gates_closed: timeline
            .iter()
            .filter(|e| e.action == "gate_failed")
            .map(|e| {
                format!(
                    "{} at {}: {}",
                    e.at,
                    e.from,
                    e.reason.clone().unwrap_or_default()
                )
            })
            .collect(),
        phase_changes: timeline.iter().filter(|e| e.from != e.to).count(),
        seconds,
        timeline,
    })
}

/// The report as Markdown.
fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Migration `{}`\n\nPhase: **{}**. {} phase change(s) over {:.1} s.\n\n## Timeline\n\n\
         | at | who | what | from | to | why |\n|---|---|---|---|---|---|\n",
        r.migration, r.phase, r.phase_changes, r.seconds
    );
    for e in &r.timeline {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            e.at,
            e.actor,
            e.action,
            e.from,
            e.to,
            e.reason.as_deref().unwrap_or("").replace('|', "\\|")
        ));
    }
    md.push_str("\n## Rollbacks\n\n");
    if r.rollbacks.is_empty() {
        md.push_str("None.\n");
    }
    for line in &r.rollbacks {
        md.push_str(&format!("- {line}\n"));
    }
    md.push_str("\n## Gates found closed\n\n");
    if r.gates_closed.is_empty() {
        md.push_str("None.\n");
    }
    for line in &r.gates_closed {
        md.push_str(&format!("- {line}\n"));
    }
    md
}
