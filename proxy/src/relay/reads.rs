//! Metrics of the read switch, shared by both protocols' sessions: each
//! routed read of a migrated table is counted by migration, path, arm and
//! outcome and timed by migration and path when its response ends; a read
//! the rule sent to the target that had to stay on the source is counted
//! by reason. Labels never carry SQL text, key values or user names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Histogram};

use switchyard_core::config::ReadPath;
use switchyard_core::names;

use crate::route::ReadRoute;
use crate::state::Shared;

/// How a routed read ended on its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The server answered.
    Ok,
    /// The path failed; when the read was re-run on the source, the source
    /// answered, so the failure is the path's.
    Failed,
    /// The path ran past `rollback.read_timeout`.
    TimedOut,
    /// Both paths gave an error: the client's own, not held against the
    /// target.
    ClientError,
}

impl ReadEnd {
    /// The `outcome` label value.
    fn label(self) -> &'static str {
        match self {
            ReadEnd::Ok => "ok",
            ReadEnd::Failed | ReadEnd::ClientError => "error",
            ReadEnd::TimedOut => "timeout",
        }
    }
}

/// A `switchyard_reads_total` label set: migration, path, arm, outcome.
type CounterKey = (Arc<str>, ReadPath, Option<String>, &'static str);

/// Reads in flight on one session, by the token their response carries,
/// and the session's metric handles (looked up once per label set rather
/// than per read). Every read that ends feeds its migration's guard.
pub struct ReadMeters {
    /// Where the guard's windows live.
    shared: Arc<Shared>,
    /// Token → the read and when it was sent.
    open: HashMap<u32, (ReadRoute, Instant)>,
    /// The next token.
    next: u32,
    /// `switchyard_reads_total` by migration, path, arm and outcome.
    counters: HashMap<CounterKey, Counter>,
    /// `switchyard_read_duration_seconds` by migration and path.
    durations: HashMap<(Arc<str>, ReadPath), Histogram>,
}

impl ReadMeters {
    /// Meters for one session.
    pub fn new(shared: Arc<Shared>) -> ReadMeters {
        ReadMeters {
            shared,
            open: HashMap::new(),
            next: 0,
            counters: HashMap::new(),
            durations: HashMap::new(),
        }
    }

    /// Starts timing a read; returns the token its response carries.
    /// Counts the read as unroutable first when it is.
    pub fn start(&mut self, read: &ReadRoute) -> u32 {
        if let Some(reason) = read.unroutable {
            metrics::counter!(names::UNROUTABLE_TOTAL, "migration" => read.migration.to_string(), "reason" => reason)
                .increment(1);
        }
        let token = self.next;
        self.next = self.next.wrapping_add(1);
        self.open.insert(token, (read.clone(), Instant::now()));
        token
    }

    /// Starts timing the source read that answers instead of target read
    /// `token` (still open: it ends when the source's answer tells how).
    pub fn on_source_instead(&mut self, token: u32) -> Option<u32> {
        let (read, _) = self.open.get(&token)?;
        let source = read.on_source(None);
        Some(self.start(&source))
    }

    /// The response of read `token` ended.
    pub fn finish(&mut self, token: u32, end: ReadEnd) {
        let Some((read, started)) = self.open.remove(&token) else {
            return;
        };
        let path = path_label(read.path);
        let elapsed = started.elapsed();
        self.shared
            .guards
            .record_read(&read.migration, read.path, end, elapsed);
        let ReadRoute { migration, arm, .. } = read;
        let key = (migration.clone(), read.path, arm, end.label());
        self.counters
            .entry(key)
            .or_insert_with_key(|(migration, _, arm, outcome)| {
                metrics::counter!(
                    names::READS_TOTAL,
                    "migration" => migration.to_string(),
                    "path" => path,
                    "arm" => arm.clone().unwrap_or_default(),
                    "outcome" => *outcome,
                )
            })
            .increment(1);
        self.durations
            .entry((migration, read.path))
            .or_insert_with_key(|(migration, _)| {
                metrics::histogram!(names::READ_DURATION_SECONDS, "migration" => migration.to_string(), "path" => path)
            })
            .record(elapsed.as_secs_f64());
    }
}

/// The `path` label value.
pub fn path_label(path: ReadPath) -> &'static str {
    match path {
        ReadPath::Source => "source",
        ReadPath::Target => "target",
    }
}

/// The migrations a session wrote through the outbox whose writes may not
/// be on the target yet: its reads of them stay on the source until the
/// applier has copied everything queued before the write.
#[derive(Debug, Default)]
pub struct OwnWrites {
    /// Migration, when this session's last write of it was committed (or
    /// sent, while its transaction is open), and whether that write's
    /// transaction is still open.
    pending: Vec<(std::sync::Arc<str>, std::time::Instant, bool)>,
}

impl OwnWrites {
    /// Notes a write of `migration` that went through the outbox.
    pub fn wrote(&mut self, migration: std::sync::Arc<str>) {
        let now = std::time::Instant::now();
        match self.pending.iter_mut().find(|(m, _, _)| *m == migration) {
            Some(entry) => {
                entry.1 = now;
                entry.2 = true;
            }
            None => self.pending.push((migration, now, true)),
        }
    }

    /// The session is outside a transaction now: the writes of the one
    /// that ended are committed, so they count from now (a write is seen as
    /// copied only once the applier found the outbox empty after its
    /// commit).
    pub fn committed(&mut self) {
        let now = std::time::Instant::now();
        for entry in self.pending.iter_mut().filter(|e| e.2) {
            entry.1 = now;
            entry.2 = false;
        }
    }

    /// The transaction's pinned paths, plus the source for every migration
    /// whose writes by this session are not all copied yet.
    pub fn pins<'a>(
        &mut self,
        shared: &Shared,
        pinned: &'a [(std::sync::Arc<str>, ReadPath)],
    ) -> std::borrow::Cow<'a, [(std::sync::Arc<str>, ReadPath)]> {
        if self.pending.is_empty() {
            return std::borrow::Cow::Borrowed(pinned);
        }
        self.pending.retain(|(migration, at, open)| {
            *open
                || shared
                    .outbox_applied
                    .get(&**migration)
                    .is_none_or(|applied| *applied <= *at)
        });
        if self.pending.is_empty() {
            return std::borrow::Cow::Borrowed(pinned);
        }
        let mut pins = pinned.to_vec();
        for (migration, _, _) in &self.pending {
            if !pins.iter().any(|(m, _)| m == migration) {
                pins.push((migration.clone(), ReadPath::Source));
            }
        }
        std::borrow::Cow::Owned(pins)
    }
}
