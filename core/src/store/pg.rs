//! The control store on PostgreSQL: its tables in one schema (normally
//! the source table's), and each migration's guard: one plpgsql function
//! and three row triggers on the source table that call it.
//!
//! The guard function is `SECURITY DEFINER` with a fixed `search_path`:
//! every role that writes the source table can then queue keys without a
//! grant on the queue, and no role can redirect the function's names.

use super::{
    phase_values, source_values, Guard, CONTROLLER_LEASE, EVENTS, OUTBOX, PROXY_STATS,
    REPAIR_QUEUE, STATE, STORE_VERSION, VERSION_TABLE,
};
use crate::sql::pg::{ident, literal, qualified};

#[path = "pg_control.rs"]
mod control;
pub use control::{
    acquire_lease, append_event, heartbeat, init_state, lease_holder, live_proxies, notify_state,
    read_state, release_lease, write_state, STATE_CHANNEL,
};

/// The session setting that marks the proxy's own mirrored statement:
/// set, transaction-locally, to the migration id it mirrors.
pub const MIRRORED_SETTING: &str = "switchyard.mirrored";
/// The session setting the proxy turns `on` on its backend connections,
/// so the guard can tell an unmirrored write through the proxy from one
/// that bypassed it.
pub const PROXY_SETTING: &str = "switchyard.proxy";

/// Creates the store's tables and indexes in `schema` and records
/// [`STORE_VERSION`], upgrading an older store in place: every table is
/// created if it is missing, and the version is raised (never lowered)
/// last, so an install that stops half way is finished by running it
/// again.
pub fn install(schema: &str) -> Vec<String> {
    let version = qualified(schema, VERSION_TABLE);
    let queue = qualified(schema, REPAIR_QUEUE);
    let outbox = qualified(schema, OUTBOX);
    let index = |table: &str, columns: &str| {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({columns})",
            ident(&format!("{table}_migration_id")),
            qualified(schema, table)
        )
    };
    let mut statements = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {version} (\n\
             \x20   singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),\n\
             \x20   version integer NOT NULL\n\
             )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {queue} (\n\
             \x20   id bigserial PRIMARY KEY,\n\
             \x20   migration text NOT NULL,\n\
             \x20   key jsonb NOT NULL CHECK (jsonb_typeof(key) = 'array'),\n\
             \x20   source text NOT NULL CHECK (source IN ({})),\n\
             \x20   reason text,\n\
             \x20   queued_at timestamptz NOT NULL DEFAULT now()\n\
             )",
            source_values()
        ),
        index(REPAIR_QUEUE, "migration, id"),
        format!(
            "CREATE TABLE IF NOT EXISTS {outbox} (\n\
             \x20   id bigserial PRIMARY KEY,\n\
             \x20   migration text NOT NULL,\n\
             \x20   key jsonb NOT NULL CHECK (jsonb_typeof(key) = 'array'),\n\
             \x20   queued_at timestamptz NOT NULL DEFAULT now()\n\
             )"
        ),
        index(OUTBOX, "migration, id"),
    ];
    statements.extend(control_tables(schema));
    statements.push(index(EVENTS, "migration, id"));
    statements.push(format!(
        "INSERT INTO {version} AS v (version) VALUES ({STORE_VERSION}) \
         ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version \
         WHERE v.version < EXCLUDED.version"
    ));
    statements
}

/// The tables version 2 added: state, events, proxy stats, lease.
fn control_tables(schema: &str) -> Vec<String> {
    let phases = phase_values();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   migration text PRIMARY KEY,\n\
             \x20   phase text NOT NULL CHECK (phase IN ({phases})),\n\
             \x20   epoch bigint NOT NULL CHECK (epoch >= 0),\n\
             \x20   read_rule jsonb CHECK (jsonb_typeof(read_rule) = 'object'),\n\
             \x20   share_bp integer NOT NULL DEFAULT 0 CHECK (share_bp BETWEEN 0 AND 10000),\n\
             \x20   paused boolean NOT NULL DEFAULT false,\n\
             \x20   pending_approval_bp integer CHECK (pending_approval_bp BETWEEN 0 AND 10000),\n\
             \x20   holding_writes boolean NOT NULL DEFAULT false,\n\
             \x20   rollback_reason text,\n\
             \x20   updated_at timestamptz NOT NULL DEFAULT now()\n\
             )",
            qualified(schema, STATE)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   id bigserial PRIMARY KEY,\n\
             \x20   migration text NOT NULL,\n\
             \x20   at timestamptz NOT NULL DEFAULT now(),\n\
             \x20   actor text NOT NULL,\n\
             \x20   action text NOT NULL,\n\
             \x20   from_phase text CHECK (from_phase IN ({phases})),\n\
             \x20   to_phase text CHECK (to_phase IN ({phases})),\n\
             \x20   reason text,\n\
             \x20   detail jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(detail) = 'object')\n\
             )",
            qualified(schema, EVENTS)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   migration text NOT NULL,\n\
             \x20   proxy text NOT NULL,\n\
             \x20   epoch bigint NOT NULL CHECK (epoch >= 0),\n\
             \x20   enforced_since timestamptz NOT NULL DEFAULT now(),\n\
             \x20   heartbeat_at timestamptz NOT NULL DEFAULT now(),\n\
             \x20   target_reads bigint NOT NULL DEFAULT 0,\n\
             \x20   source_reads bigint NOT NULL DEFAULT 0,\n\
             \x20   target_errors bigint NOT NULL DEFAULT 0,\n\
             \x20   source_errors bigint NOT NULL DEFAULT 0,\n\
             \x20   PRIMARY KEY (migration, proxy)\n\
             )",
            qualified(schema, PROXY_STATS)
        ),
        // Version 3: a version-2 table gains the shadow's counts.
        format!(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS shadow_compared bigint NOT NULL DEFAULT 0, \
             ADD COLUMN IF NOT EXISTS shadow_mismatches bigint NOT NULL DEFAULT 0",
            qualified(schema, PROXY_STATS)
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \x20   singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),\n\
             \x20   holder text NOT NULL,\n\
             \x20   expires_at timestamptz NOT NULL\n\
             )",
            qualified(schema, CONTROLLER_LEASE)
        ),
    ]
}

/// Reads the recorded schema version (one row, one `integer` column).
pub fn version_query(schema: &str) -> String {
    format!("SELECT version FROM {}", qualified(schema, VERSION_TABLE))
}

/// The guard's triggers: name suffix, timing and events, and whether it
/// fires only for an update that changed the key's text (a `WHEN`, so
/// other updates queue no AFTER event at all).
const TRIGGERS: [(&str, &str, bool); 3] = [
    ("_before", "BEFORE UPDATE OR DELETE", false),
    ("_insert", "AFTER INSERT", false),
    ("_rekey", "AFTER UPDATE", true),
];

/// Creates or replaces the guard of one migration: the function, then
/// each trigger dropped and created again. Run them in one transaction:
/// PostgreSQL's DDL is transactional, so no write slips between a drop
/// and its create.
///
/// The guard queues the key a row had before an update or a delete
/// (BEFORE: the old row cannot change any more) and the key it has after
/// an insert or an update that changed the key's text (AFTER: earlier
/// BEFORE triggers may still set the new key). Old keys are read in a
/// BEFORE trigger also because only there does a foreign-key cascade run
/// one trigger level down: PostgreSQL runs a cascade's statement without
/// firing its AFTER triggers, which then fire with the outer statement's,
/// at depth 1, indistinguishable from the statement's own rows. So a row
/// a cascade deletes is queued as `cascade_or_function`; the new key of a
/// row whose key a cascade changes (`ON UPDATE CASCADE` into key columns)
/// is queued as its session's write.
///
/// Nothing is queued for the rows of a statement the proxy marked as its
/// own mirrored write for this migration ([`mark_mirrored`]), except what
/// runs one trigger level deeper (cascades, other triggers), which the
/// proxy did not see. Key values are their text output in the writer's
/// session.
pub fn install_guard(guard: &Guard) -> Vec<String> {
    let function = qualified(guard.store, &guard.object(""));
    let table = qualified(guard.schema, guard.table);
    let mut statements = vec![guard_function(guard, &function)];
    // The proxy's own mirrored rows are let through by the trigger's WHEN,
    // so its function is never called for them (a plpgsql call per row is
    // most of what the guard costs a mirrored write). A WHEN sees one
    // trigger level less than the function: 0 for the statement's rows.
    let mirrored = format!(
        "pg_trigger_depth() = 0 AND (coalesce(current_setting('{MIRRORED_SETTING}', true), '') = {} \
         OR strpos(coalesce(current_query(), ''), {}) > 0)",
        literal(guard.migration),
        literal(&mirrored_comment(guard.migration)),
    );
    for (suffix, timing, rekeys_only) in TRIGGERS {
        let name = ident(&guard.object(suffix));
        let when = if rekeys_only {
            format!(
                " WHEN (({}) IS DISTINCT FROM ({}) AND NOT ({mirrored}))",
                key_text(guard, "OLD"),
                key_text(guard, "NEW")
            )
        } else {
            format!(" WHEN (NOT ({mirrored}))")
        };
        statements.push(format!("DROP TRIGGER IF EXISTS {name} ON {table}"));
        statements.push(format!(
            "CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW{when} \
             EXECUTE FUNCTION {function}()"
        ));
    }
    statements
}

/// Removes one migration's guard: its triggers, then their function.
pub fn drop_guard(guard: &Guard) -> Vec<String> {
    let table = qualified(guard.schema, guard.table);
    let mut statements: Vec<String> = TRIGGERS
        .iter()
        .map(|(suffix, _, _)| {
            format!(
                "DROP TRIGGER IF EXISTS {} ON {table}",
                ident(&guard.object(suffix))
            )
        })
        .collect();
    statements.push(format!(
        "DROP FUNCTION IF EXISTS {}()",
        qualified(guard.store, &guard.object(""))
    ));
    statements
}

/// Marks what follows in this transaction as the proxy's own mirrored
/// write for `migration`, so the guard does not queue its rows. The
/// setting is transaction-local: outside a transaction block it ends
/// with its own statement, so the proxy sends it inside the transaction
/// that holds the mirrored write, and [`unmark_mirrored`] after it.
pub fn mark_mirrored(migration: &str) -> String {
    format!(
        "SELECT set_config('{MIRRORED_SETTING}', {}, true)",
        literal(migration)
    )
}

/// The comment the proxy puts at the head of a mirrored statement: the
/// guard lets a row written by a statement whose text holds it pass
/// (`current_query()`), without a statement of the proxy's own before and
/// after it. A client that writes the comment itself opts out of the
/// guard; nothing the proxy relays unmirrored gets it from the proxy.
pub fn mirrored_comment(migration: &str) -> String {
    format!(
        "/* switchyard mirrored {} */",
        migration.replace("*/", "*_/")
    )
}

/// Ends [`mark_mirrored`] before the transaction does, so a later write
/// of the client in the same transaction is guarded again.
pub fn unmark_mirrored() -> String {
    format!("SELECT set_config('{MIRRORED_SETTING}', '', true)")
}

/// Marks a backend connection as the proxy's for the whole session, so
/// a write it relays without mirroring is queued as `proxy_unparsed`.
pub fn mark_proxy_session() -> String {
    format!("SET {PROXY_SETTING} = 'on'")
}

/// The key's values of `row` (`OLD`, `NEW`) as text, in key order: what
/// is queued, and what tells whether an update moved the row to another
/// key.
fn key_text(guard: &Guard, row: &str) -> String {
    let values: Vec<String> = guard
        .key
        .iter()
        .map(|k| format!("{row}.{}::text", ident(k)))
        .collect();
    values.join(", ")
}

/// The guard's trigger function for `guard`, named `function`: a BEFORE
/// trigger queues the old key, an AFTER trigger the new one.
fn guard_function(guard: &Guard, function: &str) -> String {
    let id = literal(guard.migration);
    let queue = qualified(guard.store, REPAIR_QUEUE);
    let enqueue = |row: &str| {
        format!(
            "INSERT INTO {queue} (migration, key, source) \
             VALUES ({id}, jsonb_build_array({}), origin);",
            key_text(guard, row)
        )
    };
    let body = format!(
        "
DECLARE
    origin text;
BEGIN
    IF pg_trigger_depth() > 1
        OR (coalesce(current_setting('{MIRRORED_SETTING}', true), '') <> {id}
            AND strpos(coalesce(current_query(), ''), {comment}) = 0) THEN
        origin := CASE
            WHEN pg_trigger_depth() > 1 THEN 'cascade_or_function'
            WHEN current_setting('{PROXY_SETTING}', true) = 'on' THEN 'proxy_unparsed'
            ELSE 'direct_client'
        END;
        IF TG_WHEN = 'BEFORE' THEN
            {insert_old}
        ELSE
            {insert_new}
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
",
        insert_new = enqueue("NEW"),
        insert_old = enqueue("OLD"),
        comment = literal(&mirrored_comment(guard.migration)),
    );
    let tag = dollar_tag(&body);
    format!(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n\
         LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n\
         AS {tag}{body}{tag}"
    )
}

/// A dollar-quote tag that does not occur in `body` (which holds names
/// from the catalog, so could hold the usual tag).
fn dollar_tag(body: &str) -> String {
    let mut tag = "$switchyard$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$switchyard{n}$");
    }
    tag
}

#[cfg(test)]
#[path = "pg_tests.rs"]
mod tests;
