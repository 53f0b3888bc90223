//! The control store on MySQL and MariaDB: its tables in one database
//! (normally the source table's), and each migration's guard: three row
//! triggers on the source table, one per event, since a MariaDB trigger
//! fires for one event only.
//!
//! InnoDB fires no trigger for a row that a foreign-key cascade changes,
//! so on MySQL and MariaDB cascades are invisible to the guard: `plan
//! check` must list every cascade into a migrated table instead. Triggers
//! run with their definer's rights (the installer's), so writers need no
//! grant on the queue.

use super::{
    guard_name, phase_values, source_values, Guard, CONTROLLER_LEASE, EVENTS, OUTBOX, PROXY_STATS,
    REPAIR_QUEUE, STATE, STORE_VERSION, VERSION_TABLE,
};
use crate::sql::mysql::{ident, literal, qualified};

#[path = "mysql_control.rs"]
mod control;
pub use control::{
    acquire_lease, append_event, heartbeat, init_state, lease_holder, live_proxies, read_state,
    release_lease, write_state,
};

/// The user variable that marks the proxy's own mirrored statement: set
/// to the migration id it mirrors.
pub const MIRRORED_VARIABLE: &str = "@switchyard_mirrored";
/// The user variable the proxy sets to 1 on its backend connections, so
/// the guard can tell an unmirrored write through the proxy from one that
/// bypassed it.
pub const PROXY_VARIABLE: &str = "@switchyard_proxy";
/// The user variable the guard appends each key to (a JSON array's
/// elements, comma-separated) while the session is marked: the keys the
/// proxy's mirrored statement wrote, which its mirror then syncs.
pub const KEYS_VARIABLE: &str = "@switchyard_keys";

/// Creates the store's tables (InnoDB, so a queued key commits or rolls
/// back with the write that queued it) in `database`, and records
/// [`STORE_VERSION`], upgrading an older store in place: every table is
/// created if it is missing, and the version is raised (never lowered)
/// last, so an install that stops half way is finished by running it
/// again. Every `TIMESTAMP` column has an explicit default, so no server
/// setting gives one an `ON UPDATE` of its own.
pub fn install(database: &str) -> Vec<String> {
    let version = qualified(database, VERSION_TABLE);
    let queue = qualified(database, REPAIR_QUEUE);
    let outbox = qualified(database, OUTBOX);
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {version} (\n\
             \x20   `singleton` TINYINT NOT NULL DEFAULT 1 PRIMARY KEY CHECK (`singleton` = 1),\n\
             \x20   `version` INT UNSIGNED NOT NULL\n\
             ) {OPTIONS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {queue} (\n\
             \x20   `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n\
             \x20   `migration` VARCHAR(255) NOT NULL,\n\
             \x20   `key` LONGTEXT NOT NULL CHECK (JSON_VALID(`key`)),\n\
             \x20   `source` VARCHAR(32) NOT NULL CHECK (`source` IN ({})),\n\
             \x20   `reason` TEXT NULL,\n\
             \x20   `queued_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n\
             \x20   KEY {} (`migration`, `id`)\n\
             ) {OPTIONS}",
            source_values(),
            ident(&format!("{REPAIR_QUEUE}_migration_id"))
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {outbox} (\n\
             \x20   `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n\
             \x20   `migration` VARCHAR(255) NOT NULL,\n\
             \x20   `key` LONGTEXT NOT NULL CHECK (JSON_VALID(`key`)),\n\
             \x20   `queued_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n\
             \x20   KEY {} (`migration`, `id`)\n\
             ) {OPTIONS}",
            ident(&format!("{OUTBOX}_migration_id"))
        ),
    ];
    statements.extend(control_tables(database));
    statements.push(format!(
        "INSERT INTO {version} (`singleton`, `version`) VALUES (1, {STORE_VERSION}) \
         ON DUPLICATE KEY UPDATE `version` = GREATEST(`version`, VALUES(`version`))"
    ));
    statements
}

/// Every store table's engine and character set.
const OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// The tables version 2 added: state, events, proxy stats, lease.
fn control_tables(database: &str) -> Vec<String> {
    let phases = phase_values();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   `migration` VARCHAR(255) NOT NULL PRIMARY KEY,\n\
             \x20   `phase` VARCHAR(32) NOT NULL CHECK (`phase` IN ({phases})),\n\
             \x20   `epoch` BIGINT UNSIGNED NOT NULL,\n\
             \x20   `read_rule` LONGTEXT NULL CHECK (JSON_VALID(`read_rule`)),\n\
             \x20   `share_bp` SMALLINT UNSIGNED NOT NULL DEFAULT 0 CHECK (`share_bp` <= 10000),\n\
             \x20   `paused` BOOLEAN NOT NULL DEFAULT FALSE,\n\
             \x20   `pending_approval_bp` SMALLINT UNSIGNED NULL CHECK (`pending_approval_bp` <= 10000),\n\
             \x20   `holding_writes` BOOLEAN NOT NULL DEFAULT FALSE,\n\
             \x20   `rollback_reason` TEXT NULL,\n\
             \x20   `updated_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n\
             ) {OPTIONS}",
            qualified(database, STATE)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n\
             \x20   `migration` VARCHAR(255) NOT NULL,\n\
             \x20   `at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n\
             \x20   `actor` VARCHAR(255) NOT NULL,\n\
             \x20   `action` VARCHAR(64) NOT NULL,\n\
             \x20   `from_phase` VARCHAR(32) NULL CHECK (`from_phase` IN ({phases})),\n\
             \x20   `to_phase` VARCHAR(32) NULL CHECK (`to_phase` IN ({phases})),\n\
             \x20   `reason` TEXT NULL,\n\
             \x20   `detail` LONGTEXT NOT NULL CHECK (JSON_VALID(`detail`)),\n\
             \x20   KEY {} (`migration`, `id`)\n\
             ) {OPTIONS}",
            qualified(database, EVENTS),
            ident(&format!("{EVENTS}_migration_id"))
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   `migration` VARCHAR(255) NOT NULL,\n\
             \x20   `proxy` VARCHAR(255) NOT NULL,\n\
             \x20   `epoch` BIGINT UNSIGNED NOT NULL,\n\
             \x20   `enforced_since` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n\
             \x20   `heartbeat_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),\n\
             \x20   `target_reads` BIGINT UNSIGNED NOT NULL DEFAULT 0,\n\
             \x20   `source_reads` BIGINT UNSIGNED NOT NULL DEFAULT 0,\n\
             \x20   `target_errors` BIGINT UNSIGNED NOT NULL DEFAULT 0,\n\
             \x20   `source_errors` BIGINT UNSIGNED NOT NULL DEFAULT 0,\n\
             \x20   PRIMARY KEY (`migration`, `proxy`)\n\
             ) {OPTIONS}",
            qualified(database, PROXY_STATS)
        ),
        // Version 3: a version-2 table gains the shadow's counts.
        format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS `shadow_compared` BIGINT UNSIGNED NOT NULL DEFAULT 0, \
             ADD COLUMN IF NOT EXISTS `shadow_mismatches` BIGINT UNSIGNED NOT NULL DEFAULT 0",
            qualified(database, PROXY_STATS)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   `singleton` TINYINT NOT NULL DEFAULT 1 PRIMARY KEY CHECK (`singleton` = 1),\n\
             \x20   `holder` VARCHAR(255) NOT NULL,\n\
             \x20   `expires_at` TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n\
             ) {OPTIONS}",
            qualified(database, CONTROLLER_LEASE)
        ),
    ]
}

/// Reads the recorded schema version (one row, one unsigned column).
pub fn version_query(database: &str) -> String {
    format!(
        "SELECT `version` FROM {}",
        qualified(database, VERSION_TABLE)
    )
}

/// The three triggers' events, with the suffix of each trigger's name.
const TRIGGER_EVENTS: [(&str, &str); 3] = [
    ("INSERT", "_insert"),
    ("UPDATE", "_update"),
    ("DELETE", "_delete"),
];

/// Creates or replaces the guard of one migration: each trigger dropped
/// if it exists, then created, one statement each (a trigger's
/// `BEGIN ... END` body must be a statement of its own). DDL is not
/// transactional here: while a guard is replaced, a write between a drop
/// and its create is not queued, so replace a guard only when the diff
/// will run after it.
///
/// A trigger queues the written row's key: the new key of an insert, the
/// old key of a delete, the old key of an update and also the new one
/// when its text differs. While the session marks its statement as the
/// proxy's mirrored write for this migration ([`mark_mirrored`]) it
/// queues nothing and appends the same keys to [`KEYS_VARIABLE`] instead,
/// for the mirror to sync. Key values are stored as their text in utf8mb4.
pub fn install_guard(guard: &Guard) -> Vec<String> {
    let table = qualified(guard.schema, guard.table);
    let mut statements = drop_guard(guard);
    for (event, suffix) in TRIGGER_EVENTS {
        let name = qualified(guard.schema, &guard.object(suffix));
        statements.push(format!(
            "CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW\n{}",
            trigger_body(guard, event)
        ));
    }
    statements
}

/// The names of one migration's guard triggers, so whoever loads the
/// source's catalog can tell whether the guard is installed.
pub fn guard_triggers(migration: &str, on_target: bool) -> Vec<String> {
    let side = if on_target { "_target" } else { "" };
    TRIGGER_EVENTS
        .iter()
        .map(|(_, suffix)| guard_name(migration, &format!("{side}{suffix}")))
        .collect()
}

/// Removes one migration's guard: its three triggers.
pub fn drop_guard(guard: &Guard) -> Vec<String> {
    TRIGGER_EVENTS
        .iter()
        .map(|(_, suffix)| {
            format!(
                "DROP TRIGGER IF EXISTS {}",
                qualified(guard.schema, &guard.object(suffix))
            )
        })
        .collect()
}

/// Marks what this session writes next as the proxy's own mirrored write
/// for `migration`, so the guard collects its keys instead of queueing
/// them, and starts an empty collection. A user variable outlives
/// transactions: the proxy sends [`unmark_mirrored`] after the mirrored
/// statement, whether it succeeded or not.
pub fn mark_mirrored(migration: &str) -> String {
    format!(
        "SET {MIRRORED_VARIABLE} = {}, {KEYS_VARIABLE} = NULL",
        literal(migration)
    )
}

/// Ends [`mark_mirrored`], so the session's next write is guarded again.
pub fn unmark_mirrored() -> String {
    format!("SET {MIRRORED_VARIABLE} = NULL, {KEYS_VARIABLE} = NULL")
}

/// Marks a backend connection as the proxy's for the whole session, so
/// a write it relays without mirroring is queued as `proxy_unparsed`.
pub fn mark_proxy_session() -> String {
    format!("SET {PROXY_VARIABLE} = 1")
}

/// One trigger's `BEGIN ... END` for `event`.
fn trigger_body(guard: &Guard, event: &str) -> String {
    let id = literal(guard.migration);
    let queue = qualified(guard.store, REPAIR_QUEUE);
    // The key's values as a JSON array of text, in key order.
    let key = |row: &str| {
        let values: Vec<String> = guard
            .key
            .iter()
            .map(|k| format!("CAST({row}.{} AS CHAR CHARACTER SET utf8mb4)", ident(k)))
            .collect();
        format!("JSON_ARRAY({})", values.join(", "))
    };
    let enqueue = |row: &str| {
        format!(
            "INSERT INTO {queue} (`migration`, `key`, `source`) VALUES ({id}, {}, \
             IF({PROXY_VARIABLE} <=> 1, 'proxy_unparsed', 'direct_client'));",
            key(row)
        )
    };
    let collect = |row: &str| {
        format!(
            "SET {KEYS_VARIABLE} = CONCAT_WS(',', {KEYS_VARIABLE}, {});",
            key(row)
        )
    };
    let each = |act: &dyn Fn(&str) -> String| {
        match event {
        "INSERT" => format!("        {}", act("NEW")),
        "DELETE" => format!("        {}", act("OLD")),
        // Compared as bytes: a key whose text changed only in case is
        // another key to the queue, whatever the column's collation says.
        _ => format!(
            "        {}\n        IF CAST({} AS BINARY) <> CAST({} AS BINARY) THEN\n            {}\n        END IF;",
            act("OLD"),
            key("OLD"),
            key("NEW"),
            act("NEW")
        ),
    }
    };
    format!(
        "BEGIN\n    IF {MIRRORED_VARIABLE} <=> {id} THEN\n{}\n    ELSE\n{}\n    END IF;\nEND",
        each(&collect),
        each(&enqueue)
    )
}

#[cfg(test)]
#[path = "mysql_tests.rs"]
mod tests;
