//! Archiving the source at `complete`: renamed to [`archive_name`],
//! never dropped (`switchyard drop-archive` is a separate, explicit
//! step). Views, inbound foreign keys and triggers that name the source
//! would follow the rename to the archive (or break), so the rename is
//! refused while any exists, with the list of what must move first.

use switchyard_consistency::diff::conn::Conn;
use switchyard_core::sql::{self, Dialect};

use super::store::text;
use super::ExecError;
use crate::live::Site;

pub use switchyard_core::store::archive_name;

/// One object that names the source table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Dependent {
    /// `view`, `foreign_key` or `trigger`.
    pub kind: &'static str,
    /// Its name, with the table it is on.
    pub name: String,
    /// For a foreign key: whether it has an ON DELETE / ON UPDATE action,
    /// whose writes reach the source without the proxy seeing the keys.
    pub cascades: bool,
}

/// The views, inbound foreign keys and triggers that name `schema.table`
/// (the guard's own triggers excepted).
pub async fn dependents(
    conn: &mut Conn,
    dialect: Dialect,
    schema: &str,
    table: &str,
) -> Result<Vec<Dependent>, String> {
    let queries: Vec<(&'static str, String)> = match dialect {
        Dialect::Postgres => {
            let rel = format!(
                "{}::regclass",
                sql::pg::literal(&sql::pg::qualified(schema, table))
            );
            let name = sql::pg::literal(table);
            vec![
                ("view", format!(
                    "SELECT DISTINCT v.oid::regclass::text, false FROM pg_depend d \
                     JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class \
                     WHERE d.refobjid = {rel} AND v.oid <> {rel}"
                )),
                ("foreign_key", format!(
                    "SELECT conname || ' on ' || conrelid::regclass::text, \
                     (confdeltype NOT IN ('a', 'r') OR confupdtype NOT IN ('a', 'r')) \
                     FROM pg_constraint WHERE contype = 'f' AND confrelid = {rel} AND conrelid <> {rel}"
                )),
                ("trigger", format!(
                    "SELECT t.tgname || ' on ' || t.tgrelid::regclass::text, false FROM pg_trigger t \
                     JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal \
                     AND t.tgname NOT LIKE 'switchyard\\_guard\\_%' \
                     AND (t.tgrelid = {rel} OR strpos(p.prosrc, {name}) > 0)"
                )),
            ]
        }
        Dialect::Mysql => {
            let db = sql::mysql::literal(schema);
            let name = sql::mysql::literal(table);
            let quoted = sql::mysql::literal(&format!("%`{table}`%"));
            vec![
                ("view", format!(
                    "SELECT TABLE_NAME, 0 FROM information_schema.VIEWS \
                     WHERE TABLE_SCHEMA = {db} AND VIEW_DEFINITION LIKE {quoted}"
                )),
                ("foreign_key", format!(
                    "SELECT CONCAT(CONSTRAINT_NAME, ' on ', TABLE_NAME), \
                     (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION')) \
                     FROM information_schema.REFERENTIAL_CONSTRAINTS \
                     WHERE UNIQUE_CONSTRAINT_SCHEMA = {db} AND REFERENCED_TABLE_NAME = {name} AND TABLE_NAME <> {name}"
                )),
                ("trigger", format!(
                    "SELECT CONCAT(TRIGGER_NAME, ' on ', EVENT_OBJECT_TABLE), 0 FROM information_schema.TRIGGERS \
                     WHERE TRIGGER_SCHEMA = {db} AND TRIGGER_NAME NOT LIKE 'switchyard\\_guard\\_%' \
                     AND (EVENT_OBJECT_TABLE = {name} OR LOCATE({name}, ACTION_STATEMENT) > 0)"
                )),
            ]
        }
    };
    let mut found = Vec::new();
    for (kind, query) in queries {
        let rows = conn.rows(&query).await.map_err(|e| e.to_string())?;
        found.extend(rows.iter().map(|r| Dependent {
            kind,
            name: text(r.first()),
            cascades: matches!(text(r.get(1)).as_str(), "t" | "1"),
        }));
    }
    Ok(found)
}

/// The dependents as one line: `view v_api, foreign_key fk on orders`.
pub fn list(dependents: &[Dependent]) -> String {
    dependents
        .iter()
        .map(|d| format!("{} {}", d.kind, d.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a table exists.
pub async fn exists(
    conn: &mut Conn,
    dialect: Dialect,
    schema: &str,
    table: &str,
) -> Result<bool, String> {
    let query = match dialect {
        Dialect::Postgres => format!(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = {} AND table_name = {}",
            sql::pg::literal(schema),
            sql::pg::literal(table)
        ),
        Dialect::Mysql => format!(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            sql::mysql::literal(schema),
            sql::mysql::literal(table)
        ),
    };
    Ok(!conn
        .rows(&query)
        .await
        .map_err(|e| e.to_string())?
        .is_empty())
}

/// Renames the source to its archive name, after dropping the guard that
/// would follow it. Refused while anything else names the source; done
/// already when the source is gone and the archive is there.
pub async fn archive(site: &Site) -> Result<String, ExecError> {
    let live = site;
    let id = &site.migration.id;
    let (schema, table) = (&site.schema, &site.migration.source.table);
    let archived = archive_name(table);
    let failed = |error: String| ExecError::Gate {
        migration: id.clone(),
        gate: "archive".into(),
        error,
    };
    let mut conn = live.conn().await?;
    if !exists(&mut conn, live.dialect, schema, table)
        .await
        .map_err(failed)?
    {
        return Ok(archived);
    }
    let found = dependents(&mut conn, live.dialect, schema, table)
        .await
        .map_err(failed)?;
    if !found.is_empty() {
        return Err(ExecError::Dependents {
            migration: id.clone(),
            list: list(&found),
        });
    }
    // The guard goes with the source's name, and the target's (installed
    // at the write switch) with the mirroring it served.
    let mut statements = super::retired_guard_statements(site);
    statements.push(match live.dialect {
        Dialect::Postgres => format!(
            "ALTER TABLE {} RENAME TO {}",
            sql::pg::qualified(schema, table),
            sql::pg::ident(&archived)
        ),
        Dialect::Mysql => format!(
            "RENAME TABLE {} TO {}",
            sql::mysql::qualified(schema, table),
            sql::mysql::qualified(schema, &archived)
        ),
    });
    if live.dialect == Dialect::Postgres {
        // One transaction: the guard and the name go together.
        let batch = format!("BEGIN; {}; COMMIT", statements.join("; "));
        conn.execute(&batch)
            .await
            .map_err(|e| failed(e.to_string()))?;
    } else {
        for statement in statements {
            conn.execute(&statement)
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
    }
    Ok(archived)
}

/// Drops the archive of a complete migration; returns its name.
pub async fn drop_archive(live: &Site) -> Result<String, ExecError> {
    let (schema, table) = (&live.schema, &live.migration.source.table);
    let archived = archive_name(table);
    let statement = match live.dialect {
        Dialect::Postgres => format!(
            "DROP TABLE IF EXISTS {}",
            sql::pg::qualified(schema, &archived)
        ),
        Dialect::Mysql => format!(
            "DROP TABLE IF EXISTS {}",
            sql::mysql::qualified(schema, &archived)
        ),
    };
    let mut conn = live.conn().await?;
    conn.execute(&statement)
        .await
        .map_err(|e| ExecError::Gate {
            migration: live.migration.id.clone(),
            gate: "drop_archive".into(),
            error: e.to_string(),
        })?;
    Ok(archived)
}
