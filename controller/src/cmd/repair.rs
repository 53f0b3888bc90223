//! `switchyard repair MIGRATION`: re-syncs the keys that differ (from a
//! detailed diff) or that the guard queued (`--queue`) from the table that
//! takes the writes — the source, and the target from the write switch on
//! — with the mirror's row-image sync, then compares them again; exit 0
//! when none still differs, 1 otherwise, 2 on an error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use switchyard_consistency::diff::compared::Compared;
use switchyard_consistency::diff::conn::{show, Conn};
use switchyard_consistency::diff::report::Level;
use switchyard_consistency::diff::{Job, Options};
use switchyard_consistency::repair::{self, Repaired};
use switchyard_core::config::{Config, Phase};
use switchyard_core::sql::{self, Dialect};
use switchyard_core::store::REPAIR_QUEUE;
use switchyard_core::sync::{Direction, RowSync};

use crate::executor::store::Store;
use crate::live::{Live, Site};

/// Queue entries taken per round.
const QUEUE_BATCH: usize = 5_000;

/// What `switchyard repair` was asked.
#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    /// The migration to repair.
    pub migration: String,
    /// Repair the keys in the dual write's repair queue (and remove them
    /// from it) instead of diffing first.
    #[arg(long)]
    pub queue: bool,
}

/// Runs the repair and prints what it did.
pub async fn run(config: &Config, args: &RepairArgs, json: bool) -> ExitCode {
    match repair(config, args).await {
        Ok(done) => {
            let text = if json {
                serde_json::to_string_pretty(&done).unwrap_or_default() + "\n"
            } else {
                let mut text = format!(
                    "repair {}: {} key(s) synced from the source, {} still differing\n",
                    args.migration,
                    done.keys,
                    done.still_differing.len()
                );
                for d in &done.still_differing {
                    text.push_str(&format!("  {}: {:?}\n", d.key.join(", "), d.kind));
                }
                text
            };
            super::print(&text);
            ExitCode::from(if done.still_differing.is_empty() {
                super::OK
            } else {
                super::NOT_OK
            })
        }
        Err(e) => super::fail(json, &format!("{e:#}")),
    }
}

/// Resolves the migration, finds the keys, syncs them and checks them.
pub async fn repair(config: &Config, args: &RepairArgs) -> anyhow::Result<Repaired> {
    let direction = match phase_in_force(config, &args.migration).await {
        Phase::Complete => anyhow::bail!(
            "migration `{}` is complete: its source is archived and nothing follows the target any \
             more, so there is nothing to repair",
            args.migration
        ),
        Phase::WriteSwitch => Direction::TargetToSource,
        _ => Direction::SourceToTarget,
    };
    let live = Live::resolve(config, &args.migration).await?;
    let key = &live.migration.source.primary_key;
    let compared = Compared::new(
        live.dialect,
        &live.mapping,
        key,
        live.migration.time_zone.as_deref(),
    )?;
    let sync = RowSync::new(live.dialect, &live.mapping, key, direction)?;
    let mut sides = Sides {
        source: session(&live, &compared, live.source_conn().await?).await?,
        target: if live.same_database() {
            None
        } else {
            Some(session(&live, &compared, live.target_conn().await?).await?)
        },
    };
    if args.queue {
        return drain_queue(&live, &sync, &compared, &mut sides).await;
    }
    let options = Options {
        level: Level::Detailed,
        all_keys: true,
        ..Options::default()
    };
    let job = Job {
        migration: &live.migration.id,
        compared: &compared,
        connect: &live,
        one_connection: live.same_database(),
    };
    let report = job.run(&options, &|_| {}).await?;
    let keys: Vec<Vec<String>> = report.differences.iter().map(|d| d.key.clone()).collect();
    sides.sync(&live, &sync, &compared, &keys).await
}

/// The phase the control store holds, else the file's: it says which
/// table takes the writes, and so which way a repair copies.
async fn phase_in_force(config: &Config, id: &str) -> Phase {
    let Ok(site) = Site::resolve(config, id) else {
        return Phase::Planned;
    };
    let stored = match Store::open(&site).await {
        Ok(mut store) => store.read().await.ok().flatten(),
        Err(_) => None,
    };
    stored.map_or(site.migration.phase, |s| s.phase)
}

/// The connections a repair writes through: the source's, and the
/// target's when the tables are in different databases.
struct Sides {
    /// The source's server and database (both tables, when they share it).
    source: Conn,
    /// The target's, when it is elsewhere.
    target: Option<Conn>,
}

impl Sides {
    /// Syncs `keys` by the route the tables' places allow.
    async fn sync(
        &mut self,
        live: &Live,
        sync: &RowSync,
        compared: &Compared,
        keys: &[Vec<String>],
    ) -> anyhow::Result<Repaired> {
        let id = &live.migration.id;
        Ok(match &mut self.target {
            None => repair::sync_keys(id, sync, compared, &mut self.source, keys).await?,
            Some(target) => {
                repair::sync_keys_across(id, sync, compared, &mut self.source, target, keys).await?
            }
        })
    }
}

/// `conn` with the diff's session pinned and, on MySQL, strict about
/// values: one the target cannot hold must fail the sync, not be cut.
async fn session(live: &Live, compared: &Compared, mut conn: Conn) -> anyhow::Result<Conn> {
    for statement in compared.session() {
        conn.execute(&statement).await?;
    }
    if live.dialect == Dialect::Mysql {
        conn.execute("SET sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')")
            .await?;
    }
    Ok(conn)
}

/// Syncs the repair queue's keys, round by round, removing each round's
/// entries once their keys are synced. A key queued again meanwhile has
/// a later entry and is synced in a later round.
async fn drain_queue(
    live: &Live,
    sync: &RowSync,
    compared: &Compared,
    sides: &mut Sides,
) -> anyhow::Result<Repaired> {
    let (queue, id) = match live.dialect {
        Dialect::Postgres => (
            sql::pg::qualified(&live.mapping.source.schema, REPAIR_QUEUE),
            sql::pg::literal(&live.migration.id),
        ),
        Dialect::Mysql => (
            sql::mysql::qualified(&live.mapping.source.schema, REPAIR_QUEUE),
            sql::mysql::literal(&live.migration.id),
        ),
    };
    let select = match live.dialect {
        Dialect::Postgres => format!(
            "SELECT id::text, key::text FROM {queue} WHERE migration = {id} ORDER BY id LIMIT {QUEUE_BATCH}"
        ),
        Dialect::Mysql => format!(
            "SELECT id, `key` FROM {queue} WHERE migration = {id} ORDER BY id LIMIT {QUEUE_BATCH}"
        ),
    };
    let width = live.migration.source.primary_key.len();
    let mut total = Repaired::default();
    loop {
        let rows = sides.source.rows(&select).await.with_context(|| {
            format!("reading `{queue}`; is the control store installed (`switchyard init`)?")
        })?;
        if rows.is_empty() {
            break;
        }
        let last = rows
            .last()
            .and_then(|r| r.first())
            .and_then(show)
            .unwrap_or_default();
        let mut keys: Vec<Vec<String>> = rows
            .iter()
            .filter_map(|r| r.get(1).and_then(show))
            .filter_map(|text| serde_json::from_str::<Vec<String>>(&text).ok())
            .filter(|k| k.len() == width)
            .collect();
        keys.sort();
        keys.dedup();
        let done = sides.sync(live, sync, compared, &keys).await?;
        sides
            .source
            .execute(&format!(
                "DELETE FROM {queue} WHERE migration = {id} AND id <= {}",
                last.parse::<u64>()
                    .context("a queue id that is not a number")?
            ))
            .await?;
        total.keys += done.keys;
        total.still_differing.extend(done.still_differing);
        if rows.len() < QUEUE_BATCH {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(total)
}
