//! The control store's schema as SQL text: the tables Switchyard keeps in
//! the source table's database (its version, the repair queue, the
//! outbox, each migration's state, the audit log, the proxies'
//! heartbeats, the controller's lease), each migration's guard trigger,
//! and the statements the controller and the proxies read and write the
//! control tables with, per engine ([`pg`], [`mysql`]).
//!
//! This module only writes SQL; the controller and the proxy run it on
//! connections of their own. It must never do IO, and every statement it
//! returns must be safe to run again (`IF NOT EXISTS`, `OR REPLACE`, drop
//! then create), so installing twice is the same as installing once.
//!
//! The guard records into `switchyard_repair_queue` the key of every row
//! written to a migration's source table that the proxy did not mirror
//! itself. The proxy marks its own mirrored statements (see
//! `mark_mirrored` per engine); the marker is a convention between
//! cooperating sessions, not a security boundary.

pub mod mysql;
pub mod pg;

use std::time::Duration;

use crate::config::{Percent, Phase};

/// The version of the schema these functions create. Stored in
/// `switchyard_store_version`, so a later release can see what it finds
/// and migrate it. Version 1 had the version, repair-queue and outbox
/// tables; version 2 adds the state, events, proxy-stats and lease
/// tables; version 3 adds the shadow comparisons and mismatches to the
/// proxies' heartbeats. Installing over an older store upgrades it.
pub const STORE_VERSION: u32 = 3;

/// One row: the store's schema version.
pub const VERSION_TABLE: &str = "switchyard_store_version";
/// Keys whose secondary rows must be re-synced from the primary.
pub const REPAIR_QUEUE: &str = "switchyard_repair_queue";
/// Keys written on the primary, waiting for the applier to copy them to a
/// secondary on another server.
pub const OUTBOX: &str = "switchyard_outbox";

/// One row per migration: its phase, epoch and read state, which every
/// proxy polls and the controller writes.
pub const STATE: &str = "switchyard_state";
/// The append-only audit log: who did what to a migration, when and why.
pub const EVENTS: &str = "switchyard_events";
/// One row per proxy and migration: the epoch the proxy enforces, when it
/// last said so, and its read counts.
pub const PROXY_STATS: &str = "switchyard_proxy_stats";
/// One row: which controller may act, and until when.
pub const CONTROLLER_LEASE: &str = "switchyard_controller_lease";

/// A migration's stored state, as the controller writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRow<'a> {
    /// The migration id: the row's key.
    pub migration: &'a str,
    /// Where the migration stands; proxies derive mirroring and reads from it.
    pub phase: Phase,
    /// Bumped on every phase change; proxies heartbeat the one they enforce,
    /// and writes compare-and-set on it.
    pub epoch: u64,
    /// A read rule set at runtime (JSON, the config's `reads` shape), which
    /// replaces the file's; `None` keeps the file's.
    pub read_rule: Option<&'a str>,
    /// The share of reads sent to the target during the ramp.
    pub share: Percent,
    /// Whether an operator paused the migration.
    pub paused: bool,
    /// A ramp step waiting for `switchyard approve`.
    pub pending_approval: Option<Percent>,
    /// Proxies hold writes to the migrated table while the write switch runs.
    pub holding_writes: bool,
    /// Why the migration was rolled back.
    pub rollback_reason: Option<&'a str>,
}

/// One entry of the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditEvent<'a> {
    /// The migration it concerns.
    pub migration: &'a str,
    /// Who: an operator's name, `controller@host`, a proxy's id.
    pub actor: &'a str,
    /// What: `advance`, `ramp`, `rollback`, `gate_failed`...
    pub action: &'a str,
    /// The phase before, when the event concerns a phase.
    pub from: Option<Phase>,
    /// The phase after.
    pub to: Option<Phase>,
    /// Why, in the actor's words.
    pub reason: Option<&'a str>,
    /// Anything else worth keeping (gate figures, shares), as a JSON object.
    pub detail: &'a str,
}

/// A proxy's periodic report for one migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    /// The proxy's stable id (host and port, or the pod's name).
    pub proxy: &'a str,
    /// The migration reported on.
    pub migration: &'a str,
    /// The epoch whose phase the proxy enforces: what fences wait for.
    pub epoch: u64,
    /// Reads the proxy sent to the target since it started.
    pub target_reads: u64,
    /// Reads the proxy sent to the source since it started.
    pub source_reads: u64,
    /// Target reads that failed, for the ramp's error rate.
    pub target_errors: u64,
    /// Source reads that failed, the baseline the target's are judged by.
    pub source_errors: u64,
    /// Shadow comparisons of a target read with the source's answer.
    pub shadow_compared: u64,
    /// Of those, the ones whose answers differed.
    pub shadow_mismatches: u64,
}

/// The `phase` check's list: `'planned', 'dual_write', ...`.
pub(crate) fn phase_values() -> String {
    Phase::ALL
        .iter()
        .map(|p| format!("'{}'", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration in whole microseconds, the unit both engines' interval
/// arithmetic takes exactly.
pub(crate) fn micros(d: Duration) -> u128 {
    d.as_micros()
}

/// Shares are stored as basis points (0..=10000), exact integers.
pub(crate) fn basis_points(share: Option<Percent>) -> String {
    share.map_or("NULL".into(), |p| p.basis_points().to_string())
}

/// Why a key is in the repair queue: the `source` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepairSource {
    /// A statement the proxy relayed but could not analyse, so it did not
    /// mirror it.
    ProxyUnparsed,
    /// A write made by a trigger or a foreign-key cascade (PostgreSQL
    /// only: InnoDB fires no trigger for a cascade).
    CascadeOrFunction,
    /// A client connected to the server without the proxy.
    DirectClient,
    /// The proxy's inline mirror failed behind its savepoint.
    MirrorFailed,
}

impl RepairSource {
    /// Every source, in the order the column's check lists them.
    pub const ALL: [RepairSource; 4] = [
        RepairSource::ProxyUnparsed,
        RepairSource::CascadeOrFunction,
        RepairSource::DirectClient,
        RepairSource::MirrorFailed,
    ];

    /// The value stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairSource::ProxyUnparsed => "proxy_unparsed",
            RepairSource::CascadeOrFunction => "cascade_or_function",
            RepairSource::DirectClient => "direct_client",
            RepairSource::MirrorFailed => "mirror_failed",
        }
    }
}

/// One migration's guard: which table it watches and where it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard<'a> {
    /// The migration id: stored with every queued key, compared with the
    /// proxy's mirrored marker, and part of the trigger's name.
    pub migration: &'a str,
    /// Where the store's tables live: a PostgreSQL schema, a MariaDB
    /// database (normally the source table's own).
    pub store: &'a str,
    /// The source table's PostgreSQL schema or MariaDB database.
    pub schema: &'a str,
    /// The source table's name.
    pub table: &'a str,
    /// The primary-key columns, in the order every queued key lists its
    /// values (the plan's `source.primary_key`; the mirror reads keys in
    /// the same order).
    pub key: &'a [String],
    /// The guard watches the target table: from the write switch on the
    /// target takes the writes, and its guard's objects are named apart
    /// from the source's (`switchyard_guard_<id>_target...`).
    pub on_target: bool,
}

impl Guard<'_> {
    /// The name of one of this guard's objects.
    pub(crate) fn object(&self, suffix: &str) -> String {
        let side = if self.on_target { "_target" } else { "" };
        guard_name(self.migration, &format!("{side}{suffix}"))
    }
}

/// How recent a proxy's heartbeat must be for the controller to count the
/// proxy as live: its fences wait for every such proxy.
pub const HEARTBEAT_LIVE: Duration = Duration::from_secs(5);

/// How long a proxy goes on writing under the phase it last read without
/// hearing from the store: a second less than [`HEARTBEAT_LIVE`], so a
/// proxy a fence stops waiting for has already stopped writing, however
/// late its clock, its scheduler or the store's commit of its last
/// heartbeat.
pub const PROXY_LEASE: Duration = Duration::from_secs(4);

/// The longest name either engine keeps whole: PostgreSQL truncates
/// identifiers to 63 bytes, MariaDB refuses names over 64 characters.
const MAX_NAME: usize = 63;

/// What the source table is renamed to at `complete` (never dropped): the
/// controller renames it so, and a proxy that finds the source gone reads
/// its columns there.
pub fn archive_name(table: &str) -> String {
    const SUFFIX: &str = "_archived";
    let mut cut = table.len().min(MAX_NAME - SUFFIX.len());
    while !table.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{SUFFIX}", &table[..cut])
}

/// The name of one of a migration's guard objects: `switchyard_guard_`,
/// the id and `suffix`. An id too long for that is cut and followed by a
/// hash of the whole id, so two long ids never share a name and the name
/// stays the same from one release to the next.
pub(crate) fn guard_name(migration: &str, suffix: &str) -> String {
    const PREFIX: &str = "switchyard_guard_";
    let whole = format!("{PREFIX}{migration}{suffix}");
    if whole.len() <= MAX_NAME {
        return whole;
    }
    let hash = format!("_{:08x}", fnv1a(migration.as_bytes()) as u32);
    let room = MAX_NAME - PREFIX.len() - hash.len() - suffix.len();
    // Ids are ASCII (the config refuses others), but cut on a character
    // boundary all the same.
    let mut cut = room.min(migration.len());
    while !migration.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{PREFIX}{}{hash}{suffix}", &migration[..cut])
}

/// FNV-1a, 64 bits: a hash fixed by its definition, unlike std's, so
/// object names do not change with the compiler.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `source` check's list: `'a', 'b', ...`.
pub(crate) fn source_values() -> String {
    RepairSource::ALL
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod control_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_names_fit_and_stay_distinct() {
        assert_eq!(guard_name("api_v2", ""), "switchyard_guard_api_v2");
        assert_eq!(
            guard_name("api_v2", "_update"),
            "switchyard_guard_api_v2_update"
        );
        let long = "a".repeat(60);
        let a = guard_name(&long, "_insert");
        let b = guard_name(&format!("{long}b"), "_insert");
        assert_eq!(a.len(), MAX_NAME);
        assert_eq!(b.len(), MAX_NAME);
        assert_ne!(a, b);
        assert!(a.ends_with("_insert"), "{a}");
    }
}
