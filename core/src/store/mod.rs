//! The control store's schema as SQL text: the tables Switchyard keeps in
//! the source table's database (its version, the repair queue, the
//! outbox) and each migration's guard trigger, per engine ([`pg`],
//! [`mysql`]).
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

/// The version of the schema these functions create. Stored in
/// `switchyard_store_version`, so a later release can see what it finds
/// and migrate it.
pub const STORE_VERSION: u32 = 1;

/// One row: the store's schema version.
pub const VERSION_TABLE: &str = "switchyard_store_version";
/// Keys whose secondary rows must be re-synced from the primary.
pub const REPAIR_QUEUE: &str = "switchyard_repair_queue";
/// Keys written on the primary, waiting for the applier to copy them to a
/// secondary on another server.
pub const OUTBOX: &str = "switchyard_outbox";

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
}

/// The longest name either engine keeps whole: PostgreSQL truncates
/// identifiers to 63 bytes, MariaDB refuses names over 64 characters.
const MAX_NAME: usize = 63;

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
