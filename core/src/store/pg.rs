//! The control store on PostgreSQL: its tables in one schema (normally
//! the source table's), and each migration's guard: one plpgsql function
//! and three row triggers on the source table that call it.
//!
//! The guard function is `SECURITY DEFINER` with a fixed `search_path`:
//! every role that writes the source table can then queue keys without a
//! grant on the queue, and no role can redirect the function's names.

use super::{guard_name, source_values, Guard, OUTBOX, REPAIR_QUEUE, STORE_VERSION, VERSION_TABLE};
use crate::sql::pg::{ident, literal, qualified};

/// The session setting that marks the proxy's own mirrored statement:
/// set, transaction-locally, to the migration id it mirrors.
pub const MIRRORED_SETTING: &str = "switchyard.mirrored";
/// The session setting the proxy turns `on` on its backend connections,
/// so the guard can tell an unmirrored write through the proxy from one
/// that bypassed it.
pub const PROXY_SETTING: &str = "switchyard.proxy";

/// Creates the store's tables and indexes in `schema` and records
/// [`STORE_VERSION`] unless a version is already recorded. Every
/// statement may run again.
pub fn install(schema: &str) -> Vec<String> {
    let version = qualified(schema, VERSION_TABLE);
    let queue = qualified(schema, REPAIR_QUEUE);
    let outbox = qualified(schema, OUTBOX);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {version} (\n\
             \x20   singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),\n\
             \x20   version integer NOT NULL\n\
             )"
        ),
        format!(
            "INSERT INTO {version} (version) VALUES ({STORE_VERSION}) \
             ON CONFLICT (singleton) DO NOTHING"
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
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {queue} (migration, id)",
            ident(&format!("{REPAIR_QUEUE}_migration_id"))
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {outbox} (\n\
             \x20   id bigserial PRIMARY KEY,\n\
             \x20   migration text NOT NULL,\n\
             \x20   key jsonb NOT NULL CHECK (jsonb_typeof(key) = 'array'),\n\
             \x20   queued_at timestamptz NOT NULL DEFAULT now()\n\
             )"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {outbox} (migration, id)",
            ident(&format!("{OUTBOX}_migration_id"))
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
    let function = qualified(guard.store, &guard_name(guard.migration, ""));
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
        let name = ident(&guard_name(guard.migration, suffix));
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
                ident(&guard_name(guard.migration, suffix))
            )
        })
        .collect();
    statements.push(format!(
        "DROP FUNCTION IF EXISTS {}()",
        qualified(guard.store, &guard_name(guard.migration, ""))
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
