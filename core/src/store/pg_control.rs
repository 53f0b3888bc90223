//! The PostgreSQL statements of the control tables: a migration's state
//! (read, created, written with a compare-and-set on its epoch), the audit
//! log, proxies' heartbeats and the controller's lease.
//!
//! Times that decide who may act (heartbeats, the lease) are the server's
//! `clock_timestamp()`, not the callers' clocks, so controllers and proxies
//! on different hosts agree, and a statement inside a long transaction is
//! not judged by the transaction's start.

use std::time::Duration;

use crate::config::Phase;
use crate::sql::pg::{literal, qualified};
use crate::store::{
    basis_points, micros, AuditEvent, Heartbeat, StateRow, CONTROLLER_LEASE, EVENTS, PROXY_STATS,
    STATE,
};

/// The channel [`notify_state`] wakes proxies on, so they read the state
/// before their next poll.
pub const STATE_CHANNEL: &str = "switchyard_state";

/// `NULL` or the quoted text.
fn text(value: Option<&str>) -> String {
    value.map_or("NULL".into(), literal)
}

fn phase(value: Option<Phase>) -> String {
    text(value.map(Phase::as_str))
}

/// `microseconds` as an interval.
fn interval(d: Duration) -> String {
    format!("({} * interval '1 microsecond')", micros(d))
}

/// One migration's state. Columns: phase, epoch (bigint), read_rule (JSON
/// text or NULL), share_bp, paused, pending_approval_bp (or NULL),
/// holding_writes, rollback_reason (or NULL), updated_at. No row: the
/// migration has no stored state yet, and starts from its config.
pub fn read_state(schema: &str, migration: &str) -> String {
    format!(
        "SELECT phase, epoch, read_rule::text, share_bp, paused, pending_approval_bp, \
         holding_writes, rollback_reason, updated_at FROM {} WHERE migration = {}",
        qualified(schema, STATE),
        literal(migration)
    )
}

/// The values of `row` in the order [`init_state`] lists its columns.
fn values(row: &StateRow) -> [String; 8] {
    [
        literal(row.phase.as_str()),
        row.epoch.to_string(),
        row.read_rule
            .map_or("NULL".into(), |json| format!("{}::jsonb", literal(json))),
        basis_points(Some(row.share)),
        row.paused.to_string(),
        basis_points(row.pending_approval),
        row.holding_writes.to_string(),
        text(row.rollback_reason),
    ]
}

/// The names [`values`] are written to.
const COLUMNS: [&str; 8] = [
    "phase",
    "epoch",
    "read_rule",
    "share_bp",
    "paused",
    "pending_approval_bp",
    "holding_writes",
    "rollback_reason",
];

/// Stores `row` unless the migration has a state already (one row
/// affected: created; none: someone stored one first, read it).
pub fn init_state(schema: &str, row: &StateRow) -> String {
    format!(
        "INSERT INTO {} (migration, {}) VALUES ({}, {}) ON CONFLICT (migration) DO NOTHING",
        qualified(schema, STATE),
        COLUMNS.join(", "),
        literal(row.migration),
        values(row).join(", ")
    )
}

/// Writes `row` over the stored state if its epoch is still `expected`
/// (the one the writer read): one row affected means written, none means
/// another writer moved it first, so the writer must read again.
pub fn write_state(schema: &str, row: &StateRow, expected: u64) -> String {
    let sets: Vec<String> = COLUMNS
        .iter()
        .zip(values(row))
        .map(|(column, value)| format!("{column} = {value}"))
        .collect();
    format!(
        "UPDATE {} SET {}, updated_at = now() WHERE migration = {} AND epoch = {expected}",
        qualified(schema, STATE),
        sets.join(", "),
        literal(row.migration)
    )
}

/// Wakes every proxy that LISTENs on [`STATE_CHANNEL`]; the payload is the
/// migration id. Sent in the transaction that writes the state, it is
/// delivered when that commits.
pub fn notify_state(migration: &str) -> String {
    format!(
        "SELECT pg_notify({}, {})",
        literal(STATE_CHANNEL),
        literal(migration)
    )
}

/// Appends one entry to the audit log (stamped with the transaction's time).
pub fn append_event(schema: &str, event: &AuditEvent) -> String {
    format!(
        "INSERT INTO {} (migration, actor, action, from_phase, to_phase, reason, detail) \
         VALUES ({}, {}, {}, {}, {}, {}, {}::jsonb)",
        qualified(schema, EVENTS),
        literal(event.migration),
        literal(event.actor),
        literal(event.action),
        phase(event.from),
        phase(event.to),
        text(event.reason),
        literal(event.detail)
    )
}

/// Records a proxy's heartbeat. `enforced_since` moves only when the epoch
/// changes: it is when the proxy began enforcing its epoch, so a fence
/// waits for every transaction older than that.
pub fn heartbeat(schema: &str, beat: &Heartbeat) -> String {
    let table = qualified(schema, PROXY_STATS);
    format!(
        "INSERT INTO {table} AS s (migration, proxy, epoch, enforced_since, heartbeat_at, \
         target_reads, source_reads, target_errors, source_errors, shadow_compared, \
         shadow_mismatches) \
         VALUES ({}, {}, {}, clock_timestamp(), clock_timestamp(), {}, {}, {}, {}, {}, {}) \
         ON CONFLICT (migration, proxy) DO UPDATE SET \
         enforced_since = CASE WHEN s.epoch = EXCLUDED.epoch THEN s.enforced_since \
         ELSE EXCLUDED.enforced_since END, \
         epoch = EXCLUDED.epoch, heartbeat_at = EXCLUDED.heartbeat_at, \
         target_reads = EXCLUDED.target_reads, source_reads = EXCLUDED.source_reads, \
         target_errors = EXCLUDED.target_errors, source_errors = EXCLUDED.source_errors, \
         shadow_compared = EXCLUDED.shadow_compared, \
         shadow_mismatches = EXCLUDED.shadow_mismatches",
        literal(beat.migration),
        literal(beat.proxy),
        beat.epoch,
        beat.target_reads,
        beat.source_reads,
        beat.target_errors,
        beat.source_errors,
        beat.shadow_compared,
        beat.shadow_mismatches
    )
}

/// The proxies that heartbeat `migration` within `within`, by id.
/// Columns: proxy, epoch, enforced_since, heartbeat_at.
pub fn live_proxies(schema: &str, migration: &str, within: Duration) -> String {
    format!(
        "SELECT proxy, epoch, enforced_since, heartbeat_at FROM {} \
         WHERE migration = {} AND heartbeat_at > clock_timestamp() - {} ORDER BY proxy",
        qualified(schema, PROXY_STATS),
        literal(migration),
        interval(within)
    )
}

/// Takes the lease for `holder` for `ttl`, or renews it: it succeeds when
/// no one holds the lease, `holder` does, or the holder's lease expired.
/// Returns one row (the holder) when `holder` has the lease, none when
/// another controller does.
pub fn acquire_lease(schema: &str, holder: &str, ttl: Duration) -> String {
    format!(
        "INSERT INTO {} AS l (holder, expires_at) VALUES ({}, clock_timestamp() + {}) \
         ON CONFLICT (singleton) DO UPDATE SET holder = EXCLUDED.holder, \
         expires_at = EXCLUDED.expires_at \
         WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp() \
         RETURNING holder",
        qualified(schema, CONTROLLER_LEASE),
        literal(holder),
        interval(ttl)
    )
}

/// Who holds an unexpired lease: one row (holder, expires_at) or none.
pub fn lease_holder(schema: &str) -> String {
    format!(
        "SELECT holder, expires_at FROM {} WHERE expires_at > clock_timestamp()",
        qualified(schema, CONTROLLER_LEASE)
    )
}

/// Gives the lease up, if `holder` has it, so the next controller need
/// not wait for it to expire.
pub fn release_lease(schema: &str, holder: &str) -> String {
    format!(
        "DELETE FROM {} WHERE holder = {}",
        qualified(schema, CONTROLLER_LEASE),
        literal(holder)
    )
}
