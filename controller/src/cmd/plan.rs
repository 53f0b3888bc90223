//! `switchyard plan check`: the configuration is valid, and each
//! migration fits its live servers (see `plan_live`). Exit 0 when nothing
//! is wrong, 1 with problems (warnings alone pass), 2 when the file
//! cannot be loaded.

use std::path::Path;
use std::process::ExitCode;

use switchyard_core::config::Config;

use super::plan_live::{self, Findings};

/// Validates the file at `path` and checks each migration live.
pub async fn check(path: &Path, json: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return super::fail(json, &e),
    };
    let mut found: Vec<(String, &'static str, Findings)> = Vec::new();
    for m in &config.migrations {
        found.push((
            m.id.clone(),
            m.phase.as_str(),
            plan_live::check(&config, &m.id).await,
        ));
    }
    let ok = found.iter().all(|(_, _, f)| f.problems.is_empty());
    if json {
        let migrations: Vec<_> = found
            .iter()
            .map(|(id, phase, f)| {
                serde_json::json!({
                    "id": id, "phase": phase, "problems": f.problems, "warnings": f.warnings,
                })
            })
            .collect();
        super::print(&format!(
            "{}\n",
            serde_json::json!({ "ok": ok, "migrations": migrations })
        ));
    } else {
        let mut text = format!(
            "{}: valid, {} migration(s)\n",
            path.display(),
            config.migrations.len()
        );
        for (id, phase, f) in &found {
            let verdict = if f.problems.is_empty() {
                "ok"
            } else {
                "NOT READY"
            };
            text.push_str(&format!("  {id} (phase {phase}): {verdict}\n"));
            for p in &f.problems {
                text.push_str(&format!("    problem: {p}\n"));
            }
            for w in &f.warnings {
                text.push_str(&format!("    warning: {w}\n"));
            }
        }
        super::print(&text);
    }
    ExitCode::from(if ok { super::OK } else { super::NOT_OK })
}
