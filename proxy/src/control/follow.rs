//! The follower task: polls every migration's stored state, publishes
//! changes into the routing, heartbeats, watches the lease, and stores the
//! changes the admin API and the guard hand it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use switchyard_core::config::{Migration, Phase};
use switchyard_core::names;
use switchyard_core::store::{AuditEvent, Heartbeat};
use tokio::sync::mpsc;

use super::link::{Failure, Key, Link, Place};
use super::row::{self, Row};
use super::{Change, ControlError, Outcome, Want, LEASE, POLL};
use crate::route::routing::{RolledBack, Stored};
use crate::state::Shared;

/// The `reason` of a read rollback this proxy follows from the store (the
/// stored text says what tripped it, on which proxy).
const STORED_ROLLBACK: &str = "control_store";

/// Times a change is tried against a state others keep moving.
const TRIES: usize = 3;

/// What the follower knows of one migration.
#[derive(Default)]
struct Followed {
    /// When its store last answered; the lease runs from here.
    last_read: Option<Instant>,
    /// When the last heartbeat the store took was sent: the controller
    /// counts this proxy as live for as long as the lease from it, so the
    /// lease must not outlast it (see [`Followed::lease_end`]).
    last_beat: Option<Instant>,
    /// The stored state published into the routing (`None`: the file's).
    published: Option<Arc<Stored>>,
    /// The failure last logged, so a failing store logs once, not per poll.
    failing: Option<String>,
    /// The stored rule's problem last logged.
    rule_problem: Option<String>,
}

impl Followed {
    /// When this proxy must refuse writes under the stored phase unless
    /// the store answers first: [`LEASE`] after the store last answered,
    /// or after the last heartbeat the store took if that is earlier (a
    /// read whose heartbeat failed). A fence stops waiting for a proxy
    /// whose heartbeat is older than the lease, so the proxy stops
    /// writing under the old phase no later. `None` while nothing stored
    /// is followed, or once the lease has lapsed.
    fn lease_end(&self) -> Option<Instant> {
        let published = self.published.as_ref()?;
        if published.lapsed.is_some() {
            return None;
        }
        let since = match (self.last_read, self.last_beat) {
            (Some(read), Some(beat)) => read.min(beat),
            (read, beat) => read.or(beat)?,
        };
        Some(since + LEASE)
    }
}

/// The follower's state between polls.
struct Follower {
    /// Where states are published and read counts come from.
    shared: Arc<Shared>,
    /// This proxy's id.
    proxy: String,
    /// Open connections, by backend and database.
    links: HashMap<Key, Link>,
    /// Per migration id.
    followed: HashMap<String, Followed>,
    /// Handed to each PostgreSQL connection: its notifications wake the task.
    wake: mpsc::UnboundedSender<String>,
}

/// Runs the follower until the proxy drains.
pub(super) async fn run(shared: Arc<Shared>, proxy: String, mut changes: mpsc::Receiver<Change>) {
    let mut draining = shared.draining.subscribe();
    let (wake, mut woken) = mpsc::unbounded_channel();
    let mut follower = Follower {
        shared,
        proxy,
        links: HashMap::new(),
        followed: HashMap::new(),
        wake,
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A lease runs out between polls: wake for it, so a lapse is not
        // a poll late.
        let lease_end = follower.lease_end();
        let lapse = async {
            match lease_end {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            _ = lapse => {}
            Some(_) = woken.recv() => {
                while woken.try_recv().is_ok() {}
            }
            Some(change) = changes.recv() => follower.apply(change).await,
            _ = draining.changed() => {}
        }
        if *draining.borrow() {
            return;
        }
        follower.poll().await;
    }
}

impl Follower {
    /// The open connection for `place`, opened first when needed.
    async fn link(&mut self, place: &Place) -> Result<&mut Link, Failure> {
        if !self.links.contains_key(&place.key) {
            let link = Link::open(place, self.wake.clone()).await?;
            self.links.insert(place.key.clone(), link);
        }
        Ok(self.links.get_mut(&place.key).expect("inserted above"))
    }

    /// The earliest end of a lease this proxy holds.
    fn lease_end(&self) -> Option<Instant> {
        self.followed.values().filter_map(Followed::lease_end).min()
    }

    /// Reads `id`'s state, giving up at `by`; a connection that failed or
    /// gave up is dropped.
    async fn read(
        &mut self,
        place: &Place,
        id: &str,
        by: Option<Instant>,
    ) -> Result<Option<Row>, Failure> {
        let work = async {
            match self.link(place).await {
                Ok(link) => link.read(place, id).await,
                Err(e) => Err(e),
            }
        };
        let result = within_lease(by, work).await;
        if matches!(result, Err(Failure::Unreachable(_))) {
            self.links.remove(&place.key);
        }
        result
    }

    /// One poll of every migration in the configuration in force.
    async fn poll(&mut self) {
        let snapshot = self.shared.snapshot_full();
        let config = &snapshot.config;
        self.followed.retain(|id, _| config.migration(id).is_some());
        // A store that failed this round is not tried again for the next
        // migration on it: one connect timeout per round, not one each.
        let mut down: HashMap<Key, String> = HashMap::new();
        for m in &config.migrations {
            let Some(place) = Place::of(&snapshot, m) else {
                continue;
            };
            // No read outlasts a lease: a store that stops answering
            // lapses it on time, not a statement timeout later.
            let by = self.lease_end();
            let result = match down.get(&place.key) {
                Some(why) => Err(Failure::Unreachable(why.clone())),
                None => self.read(&place, &m.id, by).await,
            };
            match result {
                Ok(row) => {
                    self.follow(m, row);
                    // A lease that ended before this read (the store back
                    // after a lapse, or a heartbeat that failed) does not
                    // cut the heartbeat that renews it short.
                    let now = Instant::now();
                    let by = self.lease_end().filter(|end| *end > now);
                    self.beat(&place, m, by.unwrap_or(now + LEASE)).await;
                }
                Err(Failure::NoStore) => self.follow(m, None),
                Err(Failure::Unreachable(why)) => {
                    down.insert(place.key.clone(), why.clone());
                    self.failed(m, why);
                }
            }
        }
    }

    /// The store answered with `row` for `m`: publish it if it differs from
    /// what the routing enforces.
    fn follow(&mut self, m: &Migration, row: Option<Row>) {
        let entry = self.followed.entry(m.id.clone()).or_default();
        entry.last_read = Some(Instant::now());
        if entry.failing.take().is_some() {
            tracing::info!(migration = %m.id, "the control store answers again");
        }
        let stored = row.map(|row| {
            let (stored, problem) = row.stored(m);
            if problem.is_some() && problem != entry.rule_problem {
                tracing::warn!(migration = %m.id, "{}", problem.as_deref().unwrap_or_default());
            }
            entry.rule_problem = problem;
            Arc::new(stored)
        });
        if entry.published != stored {
            let old = std::mem::replace(&mut entry.published, stored.clone());
            self.publish(m, old, stored);
        }
    }

    /// The store could not be read for `m`: count it, and once the lease
    /// has run out, refuse writes under the stale phase.
    fn failed(&mut self, m: &Migration, why: String) {
        metrics::counter!(names::STORE_READ_FAILURES_TOTAL, "migration" => m.id.clone())
            .increment(1);
        let entry = self.followed.entry(m.id.clone()).or_default();
        if entry.failing.as_deref() != Some(&why) {
            tracing::warn!(migration = %m.id, error = %why, "cannot read the control store");
            entry.failing = Some(why.clone());
        }
        let Some(published) = entry.published.clone() else {
            // Following the file: there is no stored phase to go stale.
            return;
        };
        let expired = entry.lease_end().is_some_and(|end| Instant::now() >= end);
        if published.lapsed.is_some() || !expired {
            return;
        }
        tracing::error!(migration = %m.id, error = %why, "control store lease lapsed: writes to the migrated tables are refused until the store answers");
        let lapsed = Arc::new(Stored {
            lapsed: Some(format!(
                "the store has not answered for more than {}s: {why}",
                LEASE.as_secs()
            )),
            ..(*published).clone()
        });
        entry.published = Some(lapsed.clone());
        self.publish(m, Some(published), Some(lapsed));
    }

    /// Publishes `m`'s new stored state into the routing, with the read
    /// rollback it stores (another proxy's guard decided it) or lifts.
    fn publish(&self, m: &Migration, old: Option<Arc<Stored>>, new: Option<Arc<Stored>>) {
        let id = m.id.as_str();
        let rule = |s: &Option<Arc<Stored>>| s.as_ref().and_then(|s| s.reads.clone());
        let new_rule = rule(&new).filter(|r| Some(r) != rule(&old).as_ref());
        // A phase rolled back needs no read rollback: its reads are on the
        // source already.
        let reason = |s: &Option<Arc<Stored>>| {
            s.as_ref()
                .filter(|s| s.phase != Phase::RolledBack)
                .and_then(|s| s.rollback_reason.clone())
        };
        let (was, now) = (reason(&old), reason(&new));
        self.shared.publish_routing(|runtime| {
            match &new {
                Some(stored) => runtime.stored.insert(id.to_string(), stored.clone()),
                None => runtime.stored.remove(id),
            };
            // A new rule lifts this proxy's automatic rollback, as a rule
            // set through its own admin API does; so does a stored
            // rollback that was cleared. A rule that changes along with a
            // stored rollback (the ramp's share set to 0 by it) lifts
            // nothing.
            if now.is_none() && (new_rule.is_some() || was.is_some()) {
                runtime.rollbacks.remove(id);
            }
            if let Some(text) = now {
                runtime.rollbacks.entry(id.to_string()).or_insert_with(|| {
                    Arc::new(RolledBack {
                        reason: STORED_ROLLBACK,
                        text,
                        at: SystemTime::now(),
                        file: m.reads.clone(),
                    })
                });
            }
        });
        let epoch = new.as_ref().map_or(0, |s| s.epoch);
        metrics::gauge!(names::STORE_EPOCH, "migration" => id.to_string()).set(epoch as f64);
        match &new {
            Some(s) => {
                tracing::info!(migration = id, phase = %s.phase, epoch = s.epoch, holding_writes = s.holding_writes, lapsed = s.lapsed.is_some(), "following the control store")
            }
            None => tracing::info!(migration = id, "no stored state: following the file"),
        }
    }

    /// Heartbeats the epoch `m`'s routing enforces now, with read counts,
    /// giving up at `by`.
    async fn beat(&mut self, place: &Place, m: &Migration, by: Instant) {
        let epoch = self
            .followed
            .get(&m.id)
            .and_then(|f| f.published.as_ref())
            .map_or(0, |s| s.epoch);
        let [target_reads, source_reads, target_errors, source_errors, shadow_compared, shadow_mismatches] =
            self.shared.guards.reads(&m.id);
        let beat = Heartbeat {
            proxy: &self.proxy,
            migration: &m.id,
            epoch,
            target_reads,
            source_reads,
            target_errors,
            source_errors,
            shadow_compared,
            shadow_mismatches,
        };
        let Some(link) = self.links.get_mut(&place.key) else {
            return;
        };
        let sent = Instant::now();
        match within_lease(Some(by), link.heartbeat(place, &beat)).await {
            Ok(()) => {
                if let Some(entry) = self.followed.get_mut(&m.id) {
                    entry.last_beat = Some(sent);
                }
            }
            Err(e) => {
                tracing::debug!(migration = %m.id, error = %e, "heartbeat failed");
                self.links.remove(&place.key);
            }
        }
    }

    /// Stores one change and answers whoever asked.
    async fn apply(&mut self, change: Change) {
        let result = self.store(&change).await;
        match (&result, &change.want) {
            (Ok(Outcome::Stored { epoch }), Want::Rollback(_)) => {
                tracing::warn!(migration = %change.migration, epoch, "rollback stored: every proxy follows");
            }
            (Err(e), Want::Rollback(_)) => {
                tracing::warn!(migration = %change.migration, error = %e, "the rollback holds on this proxy only");
            }
            _ => {}
        }
        if let Some(reply) = change.reply {
            let _ = reply.send(result);
        }
    }

    /// Compare-and-set of the change over the state read just before.
    async fn store(&mut self, change: &Change) -> Result<Outcome, ControlError> {
        let id = change.migration.as_str();
        let snapshot = self.shared.snapshot_full();
        let unknown = || ControlError::Unknown {
            migration: id.to_string(),
        };
        let m = snapshot.config.migration(id).ok_or_else(unknown)?;
        let place = Place::of(&snapshot, m).ok_or_else(unknown)?;
        let proxy = self.proxy.clone();
        let unreachable = |why: String| ControlError::Unreachable {
            migration: id.to_string(),
            why,
        };
        for _ in 0..TRIES {
            let current = match self.read(&place, id, None).await {
                Ok(current) => current,
                Err(Failure::NoStore) => return Ok(Outcome::NoStore),
                Err(Failure::Unreachable(why)) => return Err(unreachable(why)),
            };
            let from = current.as_ref().map_or(m.phase, |c| c.phase);
            let (row, action, reason, detail) = match &change.want {
                Want::Rule(reads) => (
                    row::with_rule(current.as_ref(), m.phase, reads),
                    "read_rule",
                    None,
                    serde_json::json!({ "reads": reads }).to_string(),
                ),
                Want::Rollback(reason) => match row::rolled_back(current.as_ref(), m.phase, reason)
                {
                    Some(row) => (
                        row,
                        "rollback",
                        Some(reason.as_str()),
                        r#"{"by": "read_guard"}"#.to_string(),
                    ),
                    None => {
                        return Err(ControlError::NotHere {
                            migration: id.to_string(),
                            phase: from,
                        })
                    }
                },
            };
            let event = AuditEvent {
                migration: id,
                actor: &proxy,
                action,
                from: Some(from),
                to: Some(row.phase),
                reason,
                detail: &detail,
            };
            let expected = current.as_ref().map(|c| c.epoch);
            let written = match self.link(&place).await {
                Ok(link) => link.write(&place, expected, &row, &event).await,
                Err(e) => Err(e),
            };
            match written {
                Ok(true) => {
                    let epoch = row.epoch;
                    self.follow(m, Some(row));
                    return Ok(Outcome::Stored { epoch });
                }
                Ok(false) => continue,
                Err(e) => {
                    self.links.remove(&place.key);
                    return Err(unreachable(e.to_string()));
                }
            }
        }
        Err(ControlError::Contended {
            migration: id.to_string(),
        })
    }
}

/// Runs `work`, giving up at `by` (a lease's end) with the store deemed
/// unreachable.
async fn within_lease<T>(
    by: Option<Instant>,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let Some(by) = by else {
        return work.await;
    };
    tokio::time::timeout_at(by.into(), work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unreachable(
                "the store did not answer before this proxy's lease ran out".into(),
            ))
        })
}
