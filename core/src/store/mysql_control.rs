//! The MySQL / MariaDB statements of the control tables: a migration's
//! state (read, created, written with a compare-and-set on its epoch), the
//! audit log, proxies' heartbeats and the controller's lease.
//!
//! Times that decide who may act (heartbeats, the lease) are the server's
//! `NOW(6)`, so controllers and proxies on different hosts agree.
//!
//! `ON DUPLICATE KEY UPDATE` assigns left to right, and a later assignment
//! sees the earlier ones' new values: each upsert here orders its
//! assignments so that every condition reads what it means to.

use std::time::Duration;

use crate::config::Phase;
use crate::sql::mysql::{literal, qualified};
use crate::store::{
    basis_points, micros, AuditEvent, Heartbeat, StateRow, CONTROLLER_LEASE, EVENTS, PROXY_STATS,
    STATE,
};

/// `NULL` or the quoted text.
fn text(value: Option<&str>) -> String {
    value.map_or("NULL".into(), literal)
}

fn phase(value: Option<Phase>) -> String {
    text(value.map(Phase::as_str))
}

fn boolean(value: bool) -> &'static str {
    if value {
        "TRUE"
    } else {
        "FALSE"
    }
}

/// One migration's state. Columns: phase, epoch (unsigned), read_rule
/// (JSON text or NULL), share_bp, paused (0/1), pending_approval_bp (or
/// NULL), holding_writes (0/1), rollback_reason (or NULL), updated_at. No
/// row: the migration has no stored state yet, and starts from its config.
pub fn read_state(database: &str, migration: &str) -> String {
    format!(
        "SELECT `phase`, `epoch`, `read_rule`, `share_bp`, `paused`, `pending_approval_bp`, \
         `holding_writes`, `rollback_reason`, `updated_at` FROM {} WHERE `migration` = {}",
        qualified(database, STATE),
        literal(migration)
    )
}

/// The names [`values`] are written to.
const COLUMNS: [&str; 8] = [
    "`phase`",
    "`epoch`",
    "`read_rule`",
    "`share_bp`",
    "`paused`",
    "`pending_approval_bp`",
    "`holding_writes`",
    "`rollback_reason`",
];

/// The values of `row` in the order of [`COLUMNS`].
fn values(row: &StateRow) -> [String; 8] {
    [
        literal(row.phase.as_str()),
        row.epoch.to_string(),
        text(row.read_rule),
        basis_points(Some(row.share)),
        boolean(row.paused).into(),
        basis_points(row.pending_approval),
        boolean(row.holding_writes).into(),
        text(row.rollback_reason),
    ]
}

/// Stores `row` unless the migration has a state already (one row
/// affected: created; none: someone stored one first, read it).
pub fn init_state(database: &str, row: &StateRow) -> String {
    format!(
        "INSERT INTO {} (`migration`, {}) VALUES ({}, {}) \
         ON DUPLICATE KEY UPDATE `migration` = `migration`",
        qualified(database, STATE),
        COLUMNS.join(", "),
        literal(row.migration),
        values(row).join(", ")
    )
}

/// Writes `row` over the stored state if its epoch is still `expected`
/// (the one the writer read): one row affected means written, none means
/// another writer moved it first, so the writer must read again.
///
/// MySQL counts changed rows, not matched ones, unless the client sets
/// `CLIENT_FOUND_ROWS`; `updated_at` changes with every write (to the
/// microsecond), so a write that matched is counted either way.
pub fn write_state(database: &str, row: &StateRow, expected: u64) -> String {
    let sets: Vec<String> = COLUMNS
        .iter()
        .zip(values(row))
        .map(|(column, value)| format!("{column} = {value}"))
        .collect();
    format!(
        "UPDATE {} SET {}, `updated_at` = NOW(6) WHERE `migration` = {} AND `epoch` = {expected}",
        qualified(database, STATE),
        sets.join(", "),
        literal(row.migration)
    )
}

/// Appends one entry to the audit log (stamped with the statement's time).
pub fn append_event(database: &str, event: &AuditEvent) -> String {
    format!(
        "INSERT INTO {} (`migration`, `actor`, `action`, `from_phase`, `to_phase`, `reason`, \
         `detail`) VALUES ({}, {}, {}, {}, {}, {}, {})",
        qualified(database, EVENTS),
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
/// waits for every transaction older than that. It is assigned before
/// `epoch`, whose old value it compares with.
pub fn heartbeat(database: &str, beat: &Heartbeat) -> String {
    format!(
        "INSERT INTO {} (`migration`, `proxy`, `epoch`, `enforced_since`, `heartbeat_at`, \
         `target_reads`, `source_reads`, `target_errors`, `source_errors`, `shadow_compared`, \
         `shadow_mismatches`) \
         VALUES ({}, {}, {}, NOW(6), NOW(6), {}, {}, {}, {}, {}, {}) \
         ON DUPLICATE KEY UPDATE \
         `enforced_since` = IF(`epoch` = VALUES(`epoch`), `enforced_since`, VALUES(`enforced_since`)), \
         `epoch` = VALUES(`epoch`), `heartbeat_at` = VALUES(`heartbeat_at`), \
         `target_reads` = VALUES(`target_reads`), `source_reads` = VALUES(`source_reads`), \
         `target_errors` = VALUES(`target_errors`), `source_errors` = VALUES(`source_errors`), \
         `shadow_compared` = VALUES(`shadow_compared`), \
         `shadow_mismatches` = VALUES(`shadow_mismatches`)",
        qualified(database, PROXY_STATS),
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
pub fn live_proxies(database: &str, migration: &str, within: Duration) -> String {
    format!(
        "SELECT `proxy`, `epoch`, `enforced_since`, `heartbeat_at` FROM {} \
         WHERE `migration` = {} AND `heartbeat_at` > NOW(6) - INTERVAL {} MICROSECOND \
         ORDER BY `proxy`",
        qualified(database, PROXY_STATS),
        literal(migration),
        micros(within)
    )
}

/// Takes the lease for `holder` for `ttl`, or renews it: it succeeds when
/// no one holds the lease, `holder` does, or the holder's lease expired.
/// MySQL has no `RETURNING` here: read [`lease_holder`] after it to learn
/// whether `holder` has the lease.
///
/// `holder` is assigned first, to `holder` exactly when the lease may be
/// taken; `expires_at` then moves exactly when `holder` is the holder.
pub fn acquire_lease(database: &str, holder: &str, ttl: Duration) -> String {
    format!(
        "INSERT INTO {} (`singleton`, `holder`, `expires_at`) \
         VALUES (1, {}, TIMESTAMPADD(MICROSECOND, {}, NOW(6))) \
         ON DUPLICATE KEY UPDATE \
         `holder` = IF(`holder` = VALUES(`holder`) OR `expires_at` < NOW(6), VALUES(`holder`), `holder`), \
         `expires_at` = IF(`holder` = VALUES(`holder`), VALUES(`expires_at`), `expires_at`)",
        qualified(database, CONTROLLER_LEASE),
        literal(holder),
        micros(ttl)
    )
}

/// Who holds an unexpired lease: one row (holder, expires_at) or none.
pub fn lease_holder(database: &str) -> String {
    format!(
        "SELECT `holder`, `expires_at` FROM {} WHERE `expires_at` > NOW(6)",
        qualified(database, CONTROLLER_LEASE)
    )
}

/// Gives the lease up, if `holder` has it, so the next controller need
/// not wait for it to expire.
pub fn release_lease(database: &str, holder: &str) -> String {
    format!(
        "DELETE FROM {} WHERE `holder` = {}",
        qualified(database, CONTROLLER_LEASE),
        literal(holder)
    )
}
