//! Following the control store: every proxy replica reads each
//! migration's `switchyard_state` row once a second (on PostgreSQL a
//! NOTIFY wakes it sooner), publishes what it says into the routing (the
//! stored phase overrides the file's, a stored read rule replaces the
//! file's), and heartbeats the epoch it then enforces with its read
//! counts. A read rule set through this proxy's admin API and a rollback
//! its read guard decides are written to the store (compare-and-set on the
//! epoch, with an audit event naming the proxy), so every replica follows
//! and a restart keeps them.
//!
//! A migration with no stored state, or a store that is not installed,
//! follows its file as before. A proxy that cannot read a store whose
//! phase it follows for longer than [`LEASE`] refuses writes to the
//! migrated tables (the router's `write::fence`) rather than write under a
//! phase the others may have left; its reads keep their last state.
//!
//! The follower has its own connections and must never hold a client's
//! connection or delay a session, except a write that the write switch
//! holds (at most the migration's `switch.budget`, in [`hold`]).

mod follow;
mod link;
mod mysql;
mod pg;
pub mod row;

use std::sync::Arc;
use std::time::Duration;

use switchyard_core::config::{Phase, Reads};
use tokio::sync::{mpsc, oneshot};

use crate::route::classify::Dialect;
use crate::route::write::fence;
use crate::state::Shared;

/// How often each migration's state is read when nothing wakes the
/// follower sooner.
pub const POLL: Duration = Duration::from_secs(1);

/// How long a proxy may go without reading the store of a migration whose
/// stored phase decides where writes go (or since the last heartbeat the
/// store took, if that is earlier) before it refuses those writes.
/// Four polls: a store that misses a few polls (a failover, a slow
/// statement) does not stop writes. The controller's fences wait for
/// every proxy that heartbeated within a second longer, so the lease
/// lapses before that however the store fails (the follower wakes for it,
/// and no statement outlasts it): a proxy a fence stops waiting for no
/// longer writes under the phase it left.
pub const LEASE: Duration = switchyard_core::store::PROXY_LEASE;

/// How long the admin API waits for the follower to store a change.
const STORE_WAIT: Duration = Duration::from_secs(10);

/// The handle to the running follower, in `Shared::control`.
pub struct Control {
    /// This proxy's id in heartbeats and the audit log.
    pub proxy: String,
    /// Changes for the follower to store, in order.
    changes: mpsc::Sender<Change>,
}

/// A change to store for one migration.
struct Change {
    /// The migration it concerns.
    migration: String,
    /// What to store.
    want: Want,
    /// Where the admin API waits for the outcome; `None` for the guard,
    /// which never waits.
    reply: Option<oneshot::Sender<Result<Outcome, ControlError>>>,
}

/// What a change stores.
enum Want {
    /// A read rule set through the admin API.
    Rule(Reads),
    /// A rollback the read guard decided, with its reason.
    Rollback(String),
}

/// How a change was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In the store, under this epoch: every replica follows.
    Stored {
        /// The epoch the state has now.
        epoch: u64,
    },
    /// No store is installed: the change is this proxy's alone.
    NoStore,
}

/// Why a change could not be stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The store's server could not be reached or refused the write.
    #[error("migration `{migration}`: the control store could not be written ({why}); nothing changed on any proxy; retry once the store's server is reachable from this proxy")]
    Unreachable {
        /// The migration.
        migration: String,
        /// What failed.
        why: String,
    },
    /// Others kept changing the state between this proxy's read and write.
    #[error("migration `{migration}`: its stored state kept changing while this proxy wrote it; read `GET /migrations` and retry")]
    Contended {
        /// The migration.
        migration: String,
    },
    /// A proxy may not roll this phase back (the controller must).
    #[error("migration `{migration}`: a proxy cannot roll back phase `{phase}`; run `switchyard rollback {migration}`")]
    NotHere {
        /// The migration.
        migration: String,
        /// Its phase.
        phase: Phase,
    },
    /// The migration is not in the configuration in force.
    #[error("no migration `{migration}` in the configuration in force")]
    Unknown {
        /// The id asked for.
        migration: String,
    },
    /// The follower is gone (the proxy drains) or did not answer in time.
    #[error("migration `{migration}`: the control store follower did not answer; retry")]
    Stopped {
        /// The migration.
        migration: String,
    },
}

impl Control {
    /// Stores `reads` as `migration`'s read rule and waits for the outcome.
    pub async fn store_rule(&self, migration: &str, reads: Reads) -> Result<Outcome, ControlError> {
        let stopped = || ControlError::Stopped {
            migration: migration.to_string(),
        };
        let (reply, outcome) = oneshot::channel();
        let change = Change {
            migration: migration.to_string(),
            want: Want::Rule(reads),
            reply: Some(reply),
        };
        self.changes.send(change).await.map_err(|_| stopped())?;
        match tokio::time::timeout(STORE_WAIT, outcome).await {
            Ok(Ok(outcome)) => outcome,
            _ => Err(stopped()),
        }
    }

    /// Hands a rollback the guard decided to the follower to store. Never
    /// waits: with the queue full the rollback stays this proxy's.
    pub fn store_rollback(&self, migration: &str, reason: String) {
        let change = Change {
            migration: migration.to_string(),
            want: Want::Rollback(reason),
            reply: None,
        };
        if self.changes.try_send(change).is_err() {
            tracing::warn!(migration, "the rollback could not be queued for the control store; it holds on this proxy only");
        }
    }
}

/// Starts the follower under `proxy`'s id: it runs until the proxy drains.
pub fn spawn(shared: Arc<Shared>, proxy: String) {
    let (changes, queue) = mpsc::channel(64);
    let _ = shared.control.set(Control {
        proxy: proxy.clone(),
        changes,
    });
    tokio::spawn(follow::run(shared, proxy, queue));
}

/// This proxy's id: `SWITCHYARD_PROXY_ID` when set (a pod's name), else
/// the host's name and the port it serves on.
pub fn proxy_id(port: u16) -> String {
    match std::env::var("SWITCHYARD_PROXY_ID") {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => format!("{}:{port}", gethostname::gethostname().to_string_lossy()),
    }
}

/// Waits while a write in `sql` is held for its migration's write switch:
/// until the hold ends or the migration's `switch.budget` passes (the
/// router then refuses it) — the budget past which the controller aborts
/// the switch anyway, so a write never waits for a switch that is over.
/// Costs one load of a flag while nothing is held.
pub async fn hold(shared: &Shared, dialect: Dialect, sql: &str) {
    if !shared.routing().holds_writes {
        return;
    }
    let statement = shared.classifier.classify(dialect, sql);
    let mut changed = shared.routing_changed.subscribe();
    let started = tokio::time::Instant::now();
    loop {
        // The longest budget of the migrations that hold this write; a
        // reload that changes a budget counts from the write's start.
        let budget = shared
            .routing()
            .migrations
            .iter()
            .filter(|m| {
                m.dialect == dialect
                    && m.stored.as_ref().is_some_and(|s| s.holding_writes)
                    && fence::writes_migrated(m, &statement)
            })
            .map(|m| m.plan.switch.budget)
            .max();
        let Some(budget) = budget else {
            return;
        };
        match tokio::time::timeout_at(started + budget, changed.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}
