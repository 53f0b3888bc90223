//! `switchyard drop-archive <id> --yes`: drops the archived source of a
//! complete migration, the one step that deletes data. Refused before
//! `complete`, and without `--yes`.

use std::process::ExitCode;

use switchyard_core::config::{Config, Phase};

use crate::executor::archive;
use crate::executor::store::Store;
use crate::live::Site;

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub struct DropArchiveArgs {
    /// The migration.
    pub migration: String,
    /// Confirms that the archive's rows may be deleted for good.
    #[arg(long)]
    pub yes: bool,
}

/// Drops the archive.
pub async fn run(config: &Config, args: &DropArchiveArgs, json: bool) -> ExitCode {
    let id = &args.migration;
    let site = match Site::resolve(config, id) {
        Ok(site) => site,
        Err(e) => return super::fail(json, &e),
    };
    let stored = match Store::open(&site).await {
        Ok(mut store) => store.read().await,
        Err(e) => Err(e),
    };
    let phase = match stored {
        Ok(s) => s.map_or(site.migration.phase, |s| s.phase),
        Err(e) => return super::fail(json, &e),
    };
    let name = archive::archive_name(&site.migration.source.table);
    let refused = if phase != Phase::Complete {
        Some(format!(
            "migration `{id}` is at {phase}; its source is archived only at complete, so there is nothing to drop yet"
        ))
    } else if !args.yes {
        Some(format!(
            "migration `{id}`: dropping `{name}` deletes its rows for good; run `switchyard drop-archive {id} --yes` to confirm"
        ))
    } else {
        None
    };
    if let Some(why) = refused {
        if json {
            super::print(&format!(
                "{}\n",
                serde_json::json!({ "ok": false, "refused": why })
            ));
        } else {
            eprintln!("switchyard: {why}");
        }
        return ExitCode::from(super::NOT_OK);
    }
    match archive::drop_archive(&site).await {
        Ok(name) => {
            if json {
                super::print(&format!(
                    "{}\n",
                    serde_json::json!({ "ok": true, "dropped": name })
                ));
            } else {
                super::print(&format!("{id}: dropped the archive `{name}`\n"));
            }
            ExitCode::from(super::OK)
        }
        Err(e) => super::fail(json, &e),
    }
}
