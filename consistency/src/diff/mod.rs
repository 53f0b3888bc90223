//! The table diff: whether a migration's target holds exactly the
//! source's rows, mapped, and if not, which keys and columns differ.
//!
//! The source's key space is cut into ranges of about `chunk_rows` rows
//! (the next bound is read from the source's key order, and the size
//! follows a target time per chunk). Each range is hashed inside the
//! servers on both sides ([`compared`]); only ranges whose hashes differ
//! have their rows read and compared ([`rows`]). The first range is open
//! below and the last open above, so a target row outside the source's
//! keys is still seen.
//!
//! Exactness under live writes: where both tables are on one connection,
//! each range's two sides are read by one statement, in one snapshot, so
//! a write committed in between cannot show as a difference (and no
//! snapshot outlives its chunk). Across servers there is no common
//! snapshot: differing ranges are checked again until they agree or the
//! settle time (long enough for the outbox to drain) has passed, and only
//! what persists is reported.
//!
//! A diff only reads. It must never call a differing range equal; when a
//! server fails, the diff fails rather than reporting what it could.

pub mod compared;
pub mod conn;
pub mod report;
pub mod rows;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use compared::{Compared, Range};
use conn::{Cell, Conn, DbError};
use report::{Counts, Kind, Level, Report, RowDiff};

/// Smallest and largest chunk, in rows: small enough to drill into and
/// to stay within the target time, large enough that a round trip is
/// not the cost.
const MIN_CHUNK_ROWS: u64 = 500;
const MAX_CHUNK_ROWS: u64 = 2_000_000;

/// How a diff runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// How deep it looks.
    pub level: Level,
    /// The time one chunk's checksum should take; chunk sizes follow it.
    pub chunk_time: Duration,
    /// The first chunk's size in rows.
    pub first_chunk_rows: u64,
    /// Connections hashing chunks at once.
    pub workers: usize,
    /// At most this many source rows per second, so a diff can run
    /// against production.
    pub max_rows_per_second: Option<u64>,
    /// Differing keys listed in the report when not all are asked for.
    pub sample: usize,
    /// List every differing key.
    pub all_keys: bool,
    /// Pause before each chunk while the source's server is busier than
    /// this (see [`Compared::busy`]), so a diff yields to production.
    pub busy_limit: Option<u64>,
    /// Start after this key (a previous run's `resume_after`).
    pub resume_after: Option<Vec<String>>,
    /// Across servers: how long differing chunks are re-checked before a
    /// difference counts as real.
    pub settle: Duration,
    /// Across servers: a query on the source's server returning how many
    /// of the migration's writes wait in the outbox; differing chunks are
    /// checked again only once it returns 0.
    pub outbox_pending: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            level: Level::Standard,
            chunk_time: Duration::from_millis(250),
            first_chunk_rows: 20_000,
            workers: 2,
            max_rows_per_second: None,
            busy_limit: None,
            sample: 20,
            all_keys: false,
            resume_after: None,
            settle: Duration::from_secs(10),
            outbox_pending: None,
        }
    }
}

/// Where a running diff stands, for progress displays and resuming.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Source rows compared so far.
    pub rows: u64,
    /// The server's estimate of the source's rows, when it has one.
    pub estimate: Option<u64>,
    /// Chunks compared.
    pub chunks: u64,
    /// Chunks that differed.
    pub differing: u64,
    /// Every key up to this one is compared: a later run may start after
    /// it. `None` until the first chunk is done.
    pub resume_after: Option<Vec<String>>,
}

/// Opens connections to either side. The diff opens one per worker and
/// side, and one to read chunk bounds.
pub trait Connect: Sync {
    /// A connection to the source's server (`target` false) or the
    /// target's.
    fn open(&self, target: bool) -> impl Future<Output = Result<Conn, String>> + Send;
}

/// Why a diff could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A connection could not be opened.
    #[error("migration `{migration}`: cannot connect to the {side}: {error}")]
    Connect {
        migration: String,
        side: &'static str,
        error: String,
    },
    /// A statement failed.
    #[error("migration `{migration}`: {error}")]
    Query { migration: String, error: DbError },
    /// A server returned something the diff's own statement cannot
    /// return.
    #[error("migration `{migration}`: unexpected answer from the server: {what}")]
    Unexpected { migration: String, what: String },
}

/// What a diff needs to know besides its options.
pub struct Job<'a, C: Connect> {
    /// The migration's id, for messages.
    pub migration: &'a str,
    /// The two tables as compared.
    pub compared: &'a Compared,
    /// Opens connections.
    pub connect: &'a C,
    /// Both tables are readable on one connection (same server and
    /// database): each chunk is then read in one snapshot.
    pub one_connection: bool,
}

/// The connections one worker reads through.
struct Reader {
    /// The source's server (and the target's, on one connection).
    source: Conn,
    /// The target's server, when it is another connection.
    target: Option<Conn>,
}

/// What the workers tally as they go.
#[derive(Default)]
struct Tally {
    /// Source and target rows counted.
    source_rows: u64,
    target_rows: u64,
    /// Chunks done.
    chunks: u64,
    /// Chunks found differing, by sequence number.
    suspects: BTreeMap<u64, (Range, u64)>,
    /// Row differences (full level), by chunk.
    found: BTreeMap<u64, Vec<RowDiff>>,
    /// Chunk sequence numbers done, to find the resume point.
    done: BTreeMap<u64, Option<Vec<String>>>,
    /// The first sequence number not yet known done.
    next_done: u64,
    /// The resume point so far.
    resume_after: Option<Vec<String>>,
}

impl<C: Connect> Job<'_, C> {
    /// Runs the diff.
    pub async fn run(
        &self,
        options: &Options,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Report, DiffError> {
        let started = Instant::now();
        if options.level == Level::Basic {
            return self.basic(started).await;
        }
        let mut bounds = self.open(false).await?;
        let estimate = bounds
            .row(&self.compared.estimate())
            .await
            .ok()
            .flatten()
            .and_then(|row| text(row.first()?).parse::<i64>().ok())
            .and_then(|n| u64::try_from(n).ok());
        let mut readers = Vec::with_capacity(options.workers.max(1));
        for _ in 0..options.workers.max(1) {
            readers.push(self.reader().await?);
        }
        let chunk_rows = AtomicU64::new(
            options
                .first_chunk_rows
                .clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS),
        );
        let tally = Mutex::new(Tally {
            resume_after: options.resume_after.clone(),
            ..Tally::default()
        });
        let (sender, receiver) = tokio::sync::mpsc::channel::<(u64, Range)>(readers.len() * 2);
        let receiver = tokio::sync::Mutex::new(receiver);
        let producer = self.produce(&mut bounds, options, &chunk_rows, sender);
        let workers = readers.iter_mut().map(|reader| {
            self.work(
                reader,
                &receiver,
                options,
                &chunk_rows,
                &tally,
                started,
                estimate,
                progress,
            )
        });
        let (produced, worked) =
            tokio::join!(producer, futures_util::future::try_join_all(workers));
        produced?;
        worked?;
        let mut tally = tally.into_inner().unwrap_or_else(|e| e.into_inner());
        if !self.one_connection && !tally.suspects.is_empty() {
            self.settle(&mut readers[0], &mut tally, options).await?;
        }
        let mut differences = Vec::new();
        match options.level {
            Level::Detailed if !self.one_connection => {
                for (range, _) in tally.suspects.values() {
                    differences.extend(self.examine(&mut readers[0], range).await?);
                }
            }
            Level::Detailed | Level::Full => {
                for (seq, found) in std::mem::take(&mut tally.found) {
                    if tally.suspects.contains_key(&seq) {
                        differences.extend(found);
                    }
                }
            }
            _ => {}
        }
        Ok(self.report(options, tally, differences, started))
    }

    /// The producer: cuts the source's key space into ranges, one bound
    /// query at a time, at the size the workers last asked for.
    async fn produce(
        &self,
        conn: &mut Conn,
        options: &Options,
        chunk_rows: &AtomicU64,
        sender: tokio::sync::mpsc::Sender<(u64, Range)>,
    ) -> Result<(), DiffError> {
        let mut after = options.resume_after.clone();
        let mut seq = 0;
        loop {
            let rows = chunk_rows.load(Ordering::Relaxed);
            let bound = self
                .query_row(conn, &self.compared.next_bound(after.as_deref(), rows))
                .await?;
            let through = bound.map(|row| row.iter().map(text).collect::<Vec<_>>());
            let last = through.is_none();
            let range = Range {
                after: after.clone(),
                through: through.clone(),
            };
            if sender.send((seq, range)).await.is_err() {
                // Every worker stopped: one failed, and its error is the
                // diff's answer.
                return Ok(());
            }
            if last {
                return Ok(());
            }
            seq += 1;
            after = through;
        }
    }

    /// One worker: hashes (or, at the full level, compares) chunks until
    /// the producer is done.
    #[allow(clippy::too_many_arguments)]
    async fn work(
        &self,
        reader: &mut Reader,
        receiver: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(u64, Range)>>,
        options: &Options,
        chunk_rows: &AtomicU64,
        tally: &Mutex<Tally>,
        started: Instant,
        estimate: Option<u64>,
        progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<(), DiffError> {
        loop {
            let next = receiver.lock().await.recv().await;
            let Some((seq, range)) = next else {
                return Ok(());
            };
            if let Some(limit) = options.busy_limit {
                self.wait_while_busy(&mut reader.source, limit).await?;
            }
            let t0 = Instant::now();
            let (source_rows, target_rows, differs, found) = if options.level == Level::Full {
                let rows = self.read_rows(reader, &range).await?;
                let source_rows = rows.iter().filter(|r| is_source(r)).count() as u64;
                let target_rows = rows.len() as u64 - source_rows;
                let found = self.differences(rows);
                (source_rows, target_rows, !found.is_empty(), found)
            } else {
                let (source, target) = self.checksum(reader, &range).await?;
                let (source_rows, target_rows) = (count(&source), count(&target));
                if source == target {
                    (source_rows, target_rows, false, Vec::new())
                } else if options.level == Level::Detailed && self.one_connection {
                    // Drilled down at once, by this worker, while the
                    // others hash on: a write since the checksum that made
                    // the rows equal leaves nothing to report.
                    let found = self.examine(reader, &range).await?;
                    (source_rows, target_rows, !found.is_empty(), found)
                } else {
                    (source_rows, target_rows, true, Vec::new())
                }
            };
            let elapsed = t0.elapsed();
            adapt(chunk_rows, source_rows, elapsed, options.chunk_time);
            let (snapshot, pause) = {
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                t.source_rows += source_rows;
                t.target_rows += target_rows;
                t.chunks += 1;
                if differs {
                    t.suspects
                        .insert(seq, (range.clone(), source_rows.max(target_rows)));
                    t.found.insert(seq, found);
                }
                t.done.insert(seq, range.through.clone());
                loop {
                    let next = t.next_done;
                    let Some(through) = t.done.remove(&next) else {
                        break;
                    };
                    t.next_done += 1;
                    t.resume_after = through;
                }
                let pause = options.max_rows_per_second.and_then(|max| {
                    let due = Duration::from_secs_f64(t.source_rows as f64 / max.max(1) as f64);
                    due.checked_sub(started.elapsed())
                });
                (
                    Progress {
                        rows: t.source_rows,
                        estimate,
                        chunks: t.chunks,
                        differing: t.suspects.len() as u64,
                        resume_after: t.resume_after.clone(),
                    },
                    pause,
                )
            };
            progress(&snapshot);
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Waits while the server's busy figure is above `limit`, checking
    /// every half second, for at most a minute: a diff that never
    /// finished would help no one either.
    async fn wait_while_busy(&self, conn: &mut Conn, limit: u64) -> Result<(), DiffError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let row = self.query_row(conn, &self.compared.busy()).await?;
            let busy = row
                .and_then(|r| r.first().map(text))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if busy <= limit {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// Across servers: re-checks the differing chunks until they agree or
    /// the settle time is up; what still differs is real.
    async fn settle(
        &self,
        reader: &mut Reader,
        tally: &mut Tally,
        options: &Options,
    ) -> Result<(), DiffError> {
        let deadline = Instant::now() + options.settle;
        while !tally.suspects.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if let Some(pending) = &options.outbox_pending {
                // Writes still in the outbox explain a difference; check
                // again once they are applied (or the time is up).
                let row = self.query_row(&mut reader.source, pending).await?;
                let waiting = row
                    .and_then(|r| r.first().map(text))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if waiting > 0 {
                    continue;
                }
            }
            let mut still = BTreeMap::new();
            for (seq, (range, rows)) in std::mem::take(&mut tally.suspects) {
                let differs = if options.level == Level::Full {
                    let rows = self.read_rows(reader, &range).await?;
                    let found = self.differences(rows);
                    let differs = !found.is_empty();
                    tally.found.insert(seq, found);
                    differs
                } else {
                    let (source, target) = self.checksum(reader, &range).await?;
                    source != target
                };
                if differs {
                    still.insert(seq, (range, rows));
                }
            }
            tally.suspects = still;
        }
        Ok(())
    }

    /// The basic level: row counts and key bounds of both tables.
    async fn basic(&self, started: Instant) -> Result<Report, DiffError> {
        let mut reader = self.reader().await?;
        let source_sql = self.compared.basic_one(false);
        let target_sql = self.compared.basic_one(true);
        let source = self.query_row(&mut reader.source, &source_sql).await?;
        let conn = reader.target.as_mut().unwrap_or(&mut reader.source);
        let target = self.query_row(conn, &target_sql).await?;
        let cells = |row: Option<Vec<Cell>>| -> Vec<Option<String>> {
            row.unwrap_or_default()
                .iter()
                .map(|c| c.as_ref().map(|_| text(c)))
                .collect()
        };
        let (source, target) = (cells(source), cells(target));
        let number = |row: &[Option<String>]| {
            row.first()
                .cloned()
                .flatten()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (source_rows, target_rows) = (number(&source), number(&target));
        let clean = source == target;
        let mut notes = vec!["basic compares row counts and key bounds only".to_string()];
        if source.get(1..) != target.get(1..) {
            let show = |row: &[Option<String>], i: usize| {
                row.get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "(empty)".to_string())
            };
            notes.push(format!(
                "key bounds differ: source [{}, {}], target [{}, {}]",
                show(&source, 1),
                show(&source, 2),
                show(&target, 1),
                show(&target, 2)
            ));
        }
        let seconds = started.elapsed().as_secs_f64();
        let differing = source_rows.abs_diff(target_rows);
        let total = source_rows.max(target_rows);
        Ok(Report {
            migration: self.migration.to_string(),
            level: Level::Basic,
            source: self.compared.source_name(),
            target: self.compared.target_name(),
            key: self.compared.key_names.clone(),
            clean,
            source_rows,
            target_rows,
            chunks: 0,
            differing_chunks: Vec::new(),
            counts: Counts::default(),
            differences: Vec::new(),
            all_keys: false,
            score: score(clean, differing, total),
            seconds,
            rows_per_second: source_rows as f64 / seconds.max(1e-9),
            notes,
        })
    }

    /// The report of a checksum or row-level run.
    fn report(
        &self,
        options: &Options,
        tally: Tally,
        mut differences: Vec<RowDiff>,
        started: Instant,
    ) -> Report {
        let mut counts = Counts::default();
        for d in &differences {
            match d.kind {
                Kind::MissingInTarget => counts.missing_in_target += 1,
                Kind::ExtraInTarget => counts.extra_in_target += 1,
                Kind::Changed => counts.changed += 1,
            }
        }
        let clean = tally.suspects.is_empty();
        let differing = match options.level {
            Level::Detailed | Level::Full => counts.total(),
            _ => tally.suspects.values().map(|(_, rows)| rows).sum(),
        };
        if !options.all_keys {
            differences.truncate(options.sample);
        }
        let seconds = started.elapsed().as_secs_f64();
        let total = tally.source_rows.max(tally.target_rows);
        Report {
            migration: self.migration.to_string(),
            level: options.level,
            source: self.compared.source_name(),
            target: self.compared.target_name(),
            key: self.compared.key_names.clone(),
            clean,
            source_rows: tally.source_rows,
            target_rows: tally.target_rows,
            chunks: tally.chunks,
            differing_chunks: tally.suspects.values().map(|(r, _)| r.clone()).collect(),
            counts,
            differences,
            all_keys: options.all_keys,
            score: score(clean, differing, total),
            seconds,
            rows_per_second: tally.source_rows as f64 / seconds.max(1e-9),
            notes: Vec::new(),
        }
    }

    /// Both sides' `count:sum` for `range`.
    async fn checksum(
        &self,
        reader: &mut Reader,
        range: &Range,
    ) -> Result<(String, String), DiffError> {
        match &mut reader.target {
            None => {
                let row = self
                    .query_row(&mut reader.source, &self.compared.checksum(range))
                    .await?
                    .unwrap_or_default();
                match (row.first(), row.get(1)) {
                    (Some(s), Some(t)) => Ok((text(s), text(t))),
                    _ => Err(self.unexpected("a checksum query returned no row")),
                }
            }
            Some(target) => {
                let (source_sql, target_sql) = (
                    self.compared.checksum_one(range, false),
                    self.compared.checksum_one(range, true),
                );
                let (s, t) = tokio::join!(
                    self.query_row(&mut reader.source, &source_sql),
                    self.query_row(target, &target_sql)
                );
                let first = |row: Option<Vec<Cell>>| row.and_then(|r| r.first().map(text));
                match (first(s?), first(t?)) {
                    (Some(s), Some(t)) => Ok((s, t)),
                    _ => Err(self.unexpected("a checksum query returned no row")),
                }
            }
        }
    }

    /// Both sides' rows in `range`, each marked with its side.
    async fn read_rows(
        &self,
        reader: &mut Reader,
        range: &Range,
    ) -> Result<Vec<Vec<Cell>>, DiffError> {
        let c = self.compared;
        self.read_both(reader, |target| c.rows_one(range, target))
            .await
    }

    /// The row differences in `range`: its keys and row hashes read from
    /// both sides first, then only the rows whose hashes differ read whole
    /// and compared column by column (in one statement per batch, so in
    /// one snapshot). A row changed back meanwhile drops out.
    async fn examine(&self, reader: &mut Reader, range: &Range) -> Result<Vec<RowDiff>, DiffError> {
        let c = self.compared;
        let listing = self
            .read_both(reader, |target| c.row_hashes_one(range, target))
            .await?;
        let (mut found, candidates) = rows::narrow(listing, c.key_names.len());
        for batch in candidates.chunks(crate::repair::BATCH) {
            let rows = self
                .read_both(reader, |target| c.rows_for_one(batch, target))
                .await?;
            found.extend(self.differences(rows));
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    /// Runs one side's statement (`side(false)` the source's, `side(true)`
    /// the target's) on each: as one `UNION ALL` statement, so in one
    /// snapshot, when both tables are on one connection; at once on each
    /// side's otherwise.
    async fn read_both(
        &self,
        reader: &mut Reader,
        side: impl Fn(bool) -> String,
    ) -> Result<Vec<Vec<Cell>>, DiffError> {
        let (source_sql, target_sql) = (side(false), side(true));
        match &mut reader.target {
            None => {
                let both = format!("{source_sql} UNION ALL {target_sql}");
                self.query(&mut reader.source, &both).await
            }
            Some(target) => {
                let (s, t) = tokio::join!(
                    self.query(&mut reader.source, &source_sql),
                    self.query(target, &target_sql)
                );
                let mut rows = s?;
                rows.extend(t?);
                Ok(rows)
            }
        }
    }

    fn differences(&self, rows: Vec<Vec<Cell>>) -> Vec<RowDiff> {
        let columns: Vec<(String, String)> = self
            .compared
            .columns
            .iter()
            .map(|c| (c.source.clone(), c.target.clone()))
            .collect();
        rows::differences(rows, self.compared.key_names.len(), &columns)
    }

    /// A worker's connections, with the session pinned.
    async fn reader(&self) -> Result<Reader, DiffError> {
        let source = self.open(false).await?;
        let target = if self.one_connection {
            None
        } else {
            Some(self.open(true).await?)
        };
        Ok(Reader { source, target })
    }

    /// A connection to one side, with the session pinned.
    async fn open(&self, target: bool) -> Result<Conn, DiffError> {
        let side = if target { "target" } else { "source" };
        let mut conn = self
            .connect
            .open(target)
            .await
            .map_err(|error| DiffError::Connect {
                migration: self.migration.to_string(),
                side,
                error,
            })?;
        for statement in self.compared.session() {
            conn.execute(&statement).await.map_err(|e| self.failed(e))?;
        }
        Ok(conn)
    }

    async fn query(&self, conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Cell>>, DiffError> {
        conn.rows(sql).await.map_err(|e| self.failed(e))
    }

    async fn query_row(&self, conn: &mut Conn, sql: &str) -> Result<Option<Vec<Cell>>, DiffError> {
        conn.row(sql).await.map_err(|e| self.failed(e))
    }

    fn failed(&self, error: DbError) -> DiffError {
        DiffError::Query {
            migration: self.migration.to_string(),
            error,
        }
    }

    fn unexpected(&self, what: &str) -> DiffError {
        DiffError::Unexpected {
            migration: self.migration.to_string(),
            what: what.to_string(),
        }
    }
}

/// Moves the chunk size toward the target time: the next chunks take as
/// many rows as this one's pace allows, at most doubling at a time.
fn adapt(chunk_rows: &AtomicU64, rows: u64, elapsed: Duration, target: Duration) {
    if rows < MIN_CHUNK_ROWS || elapsed.is_zero() {
        return;
    }
    let current = chunk_rows.load(Ordering::Relaxed);
    let paced = (rows as f64 * target.as_secs_f64() / elapsed.as_secs_f64()) as u64;
    let next = paced.clamp(current / 2, current.saturating_mul(2));
    chunk_rows.store(
        next.clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS),
        Ordering::Relaxed,
    );
}

/// 1 − differing ÷ total; a clean diff of empty tables scores 1.
fn score(clean: bool, differing: u64, total: u64) -> f64 {
    if total == 0 {
        return if clean { 1.0 } else { 0.0 };
    }
    1.0 - differing.min(total) as f64 / total as f64
}

/// The row count of a `count:sum` checksum.
fn count(checksum: &str) -> u64 {
    checksum
        .split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether a listed row is the source's.
fn is_source(row: &[Cell]) -> bool {
    matches!(row.first(), Some(Some(mark)) if mark == b"s")
}

/// A cell as text (NULL as empty).
fn text(cell: &Cell) -> String {
    conn::show(cell).unwrap_or_default()
}
