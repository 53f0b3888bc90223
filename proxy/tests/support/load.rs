//! What both randomized dual-write workloads share: the seed that replays
//! a run, the bound on a silent server or proxy, and each client's record
//! of what it saw committed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

/// How many clients write through the proxy at once.
pub const CLIENTS: usize = 8;

/// Operations each client makes in each phase (a transaction counts as
/// one).
pub const OPS: usize = 300;

/// How long one statement may go unanswered before the test calls it a
/// hang: lock waits under this load last milliseconds, and PostgreSQL
/// finds a deadlock within a second.
pub const STALL: Duration = Duration::from_secs(10);

/// Explicit keys are negative, `-POOL_KEYS..=-1`, so clients collide on
/// them, no sequence ever hands them out, and they stay below MariaDB's
/// AUTO_INCREMENT counter, which a higher explicit key would move.
pub const POOL_KEYS: i64 = 100;
/// How many shared values of the secondary unique key there are.
pub const POOL_SKUS: u32 = 20;
/// What a key change subtracts from a key. Only keys above [`MOVABLE`]
/// change, so a key moves once, and never onto a generated or explicit
/// key.
pub const REKEY: i64 = 1_000_000;
/// The lowest key that may still change (exclusive).
pub const MOVABLE: i64 = -1_000;

/// The run's seed: `SWITCHYARD_LOAD_SEED` replays one, otherwise a fresh
/// one, printed so that a failure can be replayed.
pub fn seed() -> u64 {
    let seed = std::env::var("SWITCHYARD_LOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("seed {seed}: replay with SWITCHYARD_LOAD_SEED={seed}");
    seed
}

/// What one client saw: its keys committed or rolled back, and the
/// errors it met that concurrency explains.
#[derive(Debug, Default)]
pub struct Report {
    /// Operations made.
    pub ops: usize,
    /// Keys a committed write left in the source (inserted, updated, or
    /// moved to).
    pub committed: BTreeSet<i64>,
    /// Generated keys inserted by work that was rolled back: no one can
    /// insert them again, so neither table may hold them.
    pub rolled_back: BTreeSet<i64>,
    /// Tolerated errors, by SQLSTATE or error number.
    pub tolerated: BTreeMap<String, usize>,
}

impl Report {
    /// Adds another client's report to this one.
    pub fn merge(&mut self, other: Report) {
        self.ops += other.ops;
        self.committed.extend(other.committed);
        self.rolled_back.extend(other.rolled_back);
        for (code, n) in other.tolerated {
            *self.tolerated.entry(code).or_default() += n;
        }
    }

    /// Counts one tolerated error.
    pub fn tolerate(&mut self, code: impl Into<String>) {
        *self.tolerated.entry(code.into()).or_default() += 1;
    }
}

/// What one write left behind, for the client's record.
#[derive(Debug, Default)]
pub struct Written {
    /// Keys the write left in the source.
    pub present: Vec<i64>,
    /// Of those, keys it generated (so no one else can ever hold them).
    pub fresh: Vec<i64>,
}

impl Written {
    /// Keys the write left in the source.
    pub fn present(keys: Vec<i64>) -> Written {
        Written {
            present: keys,
            fresh: Vec::new(),
        }
    }

    /// Keys the write generated.
    pub fn fresh(keys: Vec<i64>) -> Written {
        Written {
            present: keys.clone(),
            fresh: keys,
        }
    }

    /// Adds a later write of the same transaction.
    pub fn extend(&mut self, other: Written) {
        self.present.extend(other.present);
        self.fresh.extend(other.fresh);
    }
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Commits.
    Commit,
    /// Rolls back.
    Rollback,
    /// Commits, after rolling back to a savepoint the write that followed
    /// it.
    Savepoint,
}

impl Ending {
    /// One of the three, at random.
    pub fn pick(rng: &mut impl Rng) -> Ending {
        [Ending::Commit, Ending::Rollback, Ending::Savepoint][rng.random_range(0..3)]
    }
}

/// The keys the clients committed last, shared among them.
#[derive(Clone, Default)]
pub struct Hot(Arc<Mutex<VecDeque<i64>>>);

impl Hot {
    /// How many keys it keeps.
    const SIZE: usize = 16;

    /// Remembers keys just committed.
    pub fn add(&self, keys: &[i64]) {
        let mut hot = self.0.lock().unwrap();
        for k in keys {
            hot.push_back(*k);
        }
        while hot.len() > Self::SIZE {
            hot.pop_front();
        }
    }

    /// One of the keys, if any.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<i64> {
        let hot = self.0.lock().unwrap();
        (!hot.is_empty()).then(|| hot[rng.random_range(0..hot.len())])
    }
}
