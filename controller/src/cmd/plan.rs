//! `switchyard plan check`: the configuration is valid and lists its
//! migrations.

use std::path::Path;
use std::process::ExitCode;

use switchyard_core::config::Config;

/// Validates the file at `path` and lists its migrations.
pub fn check(path: &Path, json: bool) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => return super::fail(json, &e),
    };
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
    ExitCode::from(super::OK)
}
