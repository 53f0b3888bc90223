//! `switchyard init`: installs the control store beside each migration's
//! source table (its tables, the backfill's checkpoint table) and the
//! guard of each migration that already mirrors. Running it again
//! changes nothing. A migration still at `planned` gets its guard from
//! `advance` to dual_write instead: before the proxies mirror, the guard
//! would queue every write of the application.

use std::process::ExitCode;

use switchyard_core::config::{Config, Phase};

use crate::executor::store::{self, Store};
use crate::executor::{guard_statements, install_all, ExecError};
use crate::live::Site;

/// Installs every migration's store; exit 0 when all are installed.
pub async fn run(config: &Config, json: bool) -> ExitCode {
    let mut done = Vec::new();
    for m in &config.migrations {
        match init(config, &m.id).await {
            Ok(entry) => done.push(entry),
            Err(e) => return super::fail(json, &e),
        }
    }
    if json {
        let doc = serde_json::json!({ "ok": true, "migrations": done });
        super::print(&format!("{doc}\n"));
    } else {
        let mut text = String::new();
        for d in &done {
            text.push_str(&format!(
                "{}: control store version {} in `{}`{}\n",
                d["migration"].as_str().unwrap_or_default(),
                d["store_version"],
                d["store"].as_str().unwrap_or_default(),
                if d["guard"] == true {
                    ", guard installed"
                } else {
                    ""
                }
            ));
        }
        super::print(&text);
    }
    ExitCode::from(super::OK)
}

/// Installs one migration's store (and guard when it mirrors).
async fn init(config: &Config, id: &str) -> Result<serde_json::Value, ExecError> {
    let site = Site::resolve(config, id)?;
    let mut store = Store::open(&site).await?;
    let mut statements = store::install(site.dialect, &site.schema);
    statements.push(switchyard_core::backfill::create_table(
        site.dialect,
        &site.schema,
    ));
    install_all(&mut store, site.dialect, &statements).await?;
    let phase = match store.read().await? {
        Some(stored) => stored.phase,
        None => site.migration.phase,
    };
    let mirrors = !matches!(phase, Phase::Planned | Phase::Complete | Phase::RolledBack);
    if mirrors {
        install_all(&mut store, site.dialect, &guard_statements(&site)).await?;
    }
    let version = store.version().await?.unwrap_or(0);
    Ok(serde_json::json!({
        "migration": id,
        "store": site.schema,
        "store_version": version,
        "guard": mirrors,
    }))
}
