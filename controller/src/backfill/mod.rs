//! The backfill runner: copies a migration's existing source rows into
//! the target in key-range chunks, in key order, while the dual write
//! mirrors every new write. The statements and the promises they keep are
//! `switchyard_core::backfill`'s; this module decides how big each chunk
//! is, when to wait, and where to resume.
//!
//! - Chunk size adapts so a chunk takes about [`Settings::chunk_time`]:
//!   short enough that the share locks it holds delay writers little.
//! - Throttles: at most [`Settings::max_rows_per_sec`], and no chunk while
//!   the server is busy (see [`Settings::max_load`] for the figure each
//!   engine reads).
//! - Every chunk commits its checkpoint in its own transaction (the
//!   checkpoint table lives beside the source), so after a crash, a
//!   failure or a pause the next run resumes after the last committed
//!   chunk, and re-copying a chunk is harmless anyway.
//!
//! The runner never writes a row of the target but through the chunk copy,
//! and never holds a lock between chunks.

mod error;
mod mysql;
mod pg;
mod side;

use std::time::{Duration, Instant};

use switchyard_core::backfill::{self as statements, BackfillSql, Checkpoint};
use switchyard_core::config::Phase;
use switchyard_core::sql::Dialect;
use tokio::sync::watch;

pub use error::BackfillError;
use error::{ChunkFailure, Failed};
use side::Side;

use crate::live::{Conn, Live};

mod progress;
pub use progress::{Progress, State};

/// How a backfill runs; [`Settings::default`] suits most tables.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The time one chunk should take; the chunk size follows the measured
    /// copy rate towards it. Short (100 ms by default): a chunk's share
    /// locks make the application's writers of its rows wait, and under
    /// load 0.5 s chunks kept a quarter of them waiting, while 100 ms
    /// chunks copy as fast idle (benches/RESULTS.md).
    pub chunk_time: Duration,
    /// The first chunk's size when no checkpoint holds one.
    pub initial_chunk: u64,
    /// The smallest chunk, so a slow chunk does not shrink the size to a
    /// crawl of round trips.
    pub min_chunk: u64,
    /// The largest chunk, so one chunk never locks more rows than this.
    pub max_chunk: u64,
    /// A ceiling on rows copied per second, for servers that must keep
    /// headroom; `None` copies as fast as the chunk time allows.
    pub max_rows_per_sec: Option<u64>,
    /// The server is busy, and no chunk starts, while this figure is above
    /// the limit: on PostgreSQL the sessions of the source's database
    /// waiting for a lock (`pg_stat_activity.wait_event_type = 'Lock'`,
    /// default 10); on MySQL `Threads_running` (default 25, as
    /// pt-online-schema-change's `--max-load`). Read between chunks, when
    /// the backfill itself holds no lock. `None` takes the default.
    pub max_load: Option<u64>,
    /// How long to wait before reading the load again while busy.
    pub busy_poll: Duration,
    /// How long a chunk waits for a row lock before it gives up and is
    /// retried, so it never holds its own locks behind a long transaction.
    pub lock_wait_secs: u32,
    /// How many times a chunk that hit a deadlock or a lock timeout is
    /// retried before the backfill stops with an error.
    pub retries: u32,
    /// Start from the first key even if a checkpoint exists.
    pub restart: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            chunk_time: Duration::from_millis(100),
            initial_chunk: 1_000,
            min_chunk: 100,
            max_chunk: 50_000,
            max_rows_per_sec: None,
            max_load: None,
            busy_poll: Duration::from_secs(1),
            lock_wait_secs: 2,
            retries: 10,
            restart: false,
        }
    }
}

/// How a run ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every chunk is copied; `rows` in all runs.
    Done { rows: u64 },
    /// Stopped by request after a committed chunk; a rerun resumes.
    Paused { rows: u64 },
}

/// Copies migration `live`'s rows until every chunk is copied, `stop`
/// turns true (checked between chunks), or an error. `progress` hears of
/// every chunk and every wait.
pub async fn run(
    live: &Live,
    settings: &Settings,
    mut stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, BackfillError> {
    let id = live.migration.id.clone();
    let phase = live.migration.phase;
    if !matches!(
        phase,
        Phase::DualWrite
            | Phase::Backfill
            | Phase::Validate
            | Phase::ReadRamp
            | Phase::ReadsOnTarget
    ) {
        return Err(BackfillError::Phase {
            migration: id,
            phase: phase.as_str(),
        });
    }
    if live.migration.is_cross_server()
        || (live.dialect == Dialect::Postgres && !live.same_database())
    {
        return Err(BackfillError::CrossDatabase { migration: id });
    }
    let sql = BackfillSql::new(
        live.dialect,
        &id,
        &live.mapping,
        &live.migration.source.primary_key,
    )
    .map_err(|error| BackfillError::Key {
        migration: id.clone(),
        error,
    })?;
    let query = |what: &'static str| {
        let id = id.clone();
        move |error: String| BackfillError::Query {
            migration: id,
            what,
            error,
        }
    };
    let mut side = match live.source_conn().await? {
        Conn::Postgres(client) => Side::Pg(pg::Side::new(client)),
        Conn::Mysql(conn) => Side::Mysql(mysql::Side::new(conn)),
    };
    let mut setup = statements::session(
        live.dialect,
        settings.lock_wait_secs,
        live.migration.time_zone.as_deref(),
    );
    setup.push(statements::create_table(
        live.dialect,
        &live.mapping.source.schema,
    ));
    side.execute(&setup)
        .await
        .map_err(query("setting up the backfill session"))?;

    let mut checkpoint = match settings.restart {
        true => None,
        false => side
            .checkpoint(&sql.load_checkpoint())
            .await
            .map_err(query("reading the checkpoint"))?,
    }
    .unwrap_or(Checkpoint {
        chunk_size: settings.initial_chunk,
        ..Checkpoint::default()
    });
    let estimate = side
        .estimate(&sql.estimate(), &sql.count())
        .await
        .map_err(query("estimating the source's rows"))?;
    let mut report = Progress::start(&id, estimate, &checkpoint);
    if checkpoint.done {
        report.state = State::Done;
        progress(&report);
        return Ok(Outcome::Done {
            rows: checkpoint.rows_copied,
        });
    }
    // Where this run starts: the operator sees a resume as such.
    progress(&report);
    let max_load = settings.max_load.unwrap_or(match live.dialect {
        Dialect::Postgres => 10,
        Dialect::Mysql => 25,
    });
    let mut size = clamp_size(checkpoint.chunk_size, settings);
    let started = Instant::now();
    let mut rows_this_run = 0u64;
    loop {
        if *stop.borrow() {
            report.state = State::Paused;
            progress(&report);
            return Ok(Outcome::Paused {
                rows: checkpoint.rows_copied,
            });
        }
        // Wait out a busy server; a stop request ends the wait.
        loop {
            let load = side
                .load()
                .await
                .map_err(query("reading the server's load"))?;
            if load <= max_load {
                break;
            }
            report.state = State::Throttled {
                load,
                limit: max_load,
            };
            progress(&report);
            if wait(&mut stop, settings.busy_poll).await {
                break;
            }
        }
        if *stop.borrow() {
            continue;
        }
        let lo = checkpoint.last_key.clone();
        let bound = sql
            .upper_bound(lo.as_deref(), size)
            .map_err(|error| BackfillError::Key {
                migration: id.clone(),
                error,
            })?;
        let Some((hi, rows)) = side
            .bound(&bound, sql.key_len())
            .await
            .map_err(query("finding the next chunk"))?
        else {
            checkpoint.done = true;
            let save = sql
                .save_checkpoint(&checkpoint)
                .map_err(|error| BackfillError::Key {
                    migration: id.clone(),
                    error,
                })?;
            side.execute(&[save])
                .await
                .map_err(query("writing the final checkpoint"))?;
            report.state = State::Done;
            report.update(&checkpoint, started.elapsed(), rows_this_run);
            progress(&report);
            return Ok(Outcome::Done {
                rows: checkpoint.rows_copied,
            });
        };
        let next = Checkpoint {
            last_key: Some(hi.clone()),
            rows_copied: checkpoint.rows_copied + rows,
            chunk_size: size,
            done: false,
        };
        let (copy, save) = sql
            .copy(lo.as_deref(), &hi)
            .and_then(|copy| Ok((copy, sql.save_checkpoint(&next)?)))
            .map_err(|error| BackfillError::Key {
                migration: id.clone(),
                error,
            })?;
        let began = Instant::now();
        copy_chunk(&mut side, &copy, &save, settings.retries, |e| match e {
            Failed::Fatal(error) => BackfillError::Chunk {
                migration: id.clone(),
                range: range(lo.as_deref(), &hi),
                error,
            },
            Failed::Warnings(warnings) => BackfillError::Warnings {
                migration: id.clone(),
                range: range(lo.as_deref(), &hi),
                warnings,
            },
            Failed::Contended { attempts, error } => BackfillError::Contended {
                migration: id.clone(),
                range: range(lo.as_deref(), &hi),
                attempts,
                error,
            },
        })
        .await?;
        let took = began.elapsed();
        checkpoint = next;
        rows_this_run += rows;
        size = next_size(size, rows, took, settings);
        report.state = State::Copying;
        report.update(&checkpoint, started.elapsed(), rows_this_run);
        progress(&report);
        if let Some(pause) = rate_pause(rows_this_run, started.elapsed(), settings.max_rows_per_sec)
        {
            wait(&mut stop, pause).await;
        }
    }
}

/// Runs one chunk's transaction, retrying a deadlock or lock timeout
/// after a growing pause.
async fn copy_chunk(
    side: &mut Side,
    copy: &str,
    save: &str,
    retries: u32,
    fail: impl Fn(Failed) -> BackfillError,
) -> Result<u64, BackfillError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match side.chunk(copy, save).await {
            Ok(inserted) => return Ok(inserted),
            Err(ChunkFailure::Fatal(error)) => return Err(fail(Failed::Fatal(error))),
            Err(ChunkFailure::Warnings(list)) => return Err(fail(Failed::Warnings(list))),
            Err(ChunkFailure::Retry(error)) if attempt > retries => {
                return Err(fail(Failed::Contended {
                    attempts: attempt,
                    error,
                }))
            }
            Err(ChunkFailure::Retry(_)) => {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
        }
    }
}

/// Sleeps `pause`, or less if `stop` turns true; returns whether stopped.
async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + pause;
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return false,
            changed = stop.changed() => if changed.is_err() {
                // The sender is gone: nobody can ask to stop any more.
                tokio::time::sleep_until(deadline).await;
                return false;
            },
        }
    }
    true
}

/// `(lo, hi]` for messages, keys as JSON arrays.
fn range(lo: Option<&[String]>, hi: &[String]) -> String {
    let json = |k: &[String]| serde_json::Value::from(k.to_vec()).to_string();
    match lo {
        Some(lo) => format!("({}, {}]", json(lo), json(hi)),
        None => format!("(start, {}]", json(hi)),
    }
}

/// A size within the settings' bounds, and within what the rate ceiling
/// allows in one chunk time.
fn clamp_size(size: u64, settings: &Settings) -> u64 {
    let mut max = settings.max_chunk;
    if let Some(rate) = settings.max_rows_per_sec {
        let per_chunk = (rate as f64 * settings.chunk_time.as_secs_f64()) as u64;
        max = max.min(per_chunk.max(settings.min_chunk));
    }
    size.clamp(settings.min_chunk.min(max), max)
}

/// The next chunk's size: `size` scaled by how far the chunk of `rows`
/// that took `took` was from the chunk time, by at most a factor of two
/// either way, so one slow or fast chunk does not swing it wildly.
fn next_size(size: u64, rows: u64, took: Duration, settings: &Settings) -> u64 {
    let took = took.as_secs_f64().max(0.001);
    let rate = rows.max(1) as f64 / took;
    let wanted = rate * settings.chunk_time.as_secs_f64();
    let bounded = wanted.clamp(size as f64 / 2.0, size as f64 * 2.0);
    clamp_size(bounded as u64, settings)
}

/// How long to pause so that `rows` in `elapsed` stays within `max` rows
/// per second; `None` when it already does.
fn rate_pause(rows: u64, elapsed: Duration, max: Option<u64>) -> Option<Duration> {
    let max = max.filter(|m| *m > 0)?;
    let due = Duration::from_secs_f64(rows as f64 / max as f64);
    due.checked_sub(elapsed).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests;
