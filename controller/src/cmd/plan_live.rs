//! `plan check`'s look at the live servers, per migration: the keys (the
//! source's primary key is `source.primary_key`; the target's is the
//! mapped key, which the sync's `ON CONFLICT (pk)` relies on), the
//! mapping, whether the target is empty, the control store and its
//! version, the guard, what reaches the source without the proxy seeing
//! the keys (foreign keys with actions, triggers naming it: warnings, the
//! guard queues their writes), and on PostgreSQL the table grants the
//! proxy's backend roles need.

use std::collections::BTreeSet;

use serde::Serialize;
use switchyard_consistency::diff::conn::Conn;
use switchyard_core::config::{Config, Phase};
use switchyard_core::schema::TableSchema;
use switchyard_core::sql::{self, Dialect};
use switchyard_core::store::{REPAIR_QUEUE, STATE};

use crate::executor::archive;
use crate::executor::store::{number, text, Store};
use crate::live::{Live, Site};

/// What the check found for one migration.
#[derive(Debug, Default, Serialize)]
pub struct Findings {
    /// The migration's id.
    pub migration: String,
    /// What must be fixed before the migration starts.
    pub problems: Vec<String>,
    /// What an operator should know (and may accept).
    pub warnings: Vec<String>,
}

/// Checks migration `id` against its servers.
pub async fn check(config: &Config, id: &str) -> Findings {
    let mut f = Findings {
        migration: id.to_string(),
        ..Findings::default()
    };
    let site = match Site::resolve(config, id) {
        Ok(site) => site,
        Err(e) => {
            f.problems.push(e.to_string());
            return f;
        }
    };
    store_checks(&site, &mut f).await;
    match Live::resolve(config, id).await {
        Ok(live) => {
            if let Err(e) = table_checks(config, &live, &mut f).await {
                f.problems.push(format!("checking the tables failed: {e}"));
            }
        }
        Err(e) => f.problems.push(e.to_string()),
    }
    f
}

/// The store, its version, the guard.
async fn store_checks(site: &Site, f: &mut Findings) {
    let id = &site.migration.id;
    let mut store = match Store::open(site).await {
        Ok(store) => store,
        Err(e) => return f.problems.push(e.to_string()),
    };
    match store.version().await {
        Ok(Some(v)) if v >= switchyard_core::store::STORE_VERSION => {}
        Ok(Some(v)) => f.problems.push(format!(
            "the control store in `{}` is version {v}; run `switchyard init` to upgrade it",
            site.schema
        )),
        _ => f.problems.push(format!(
            "no control store in `{}`; run `switchyard init`",
            site.schema
        )),
    }
    let phase = match store.read().await {
        Ok(Some(s)) => s.phase,
        _ => site.migration.phase,
    };
    let triggers = guard_triggers(&mut store, site).await.unwrap_or(0);
    let mirrors = !matches!(phase, Phase::Planned | Phase::Complete | Phase::RolledBack);
    if mirrors && triggers == 0 {
        f.problems.push(format!(
            "migration `{id}` is at {phase} but its guard is not on `{}`; run `switchyard init`",
            site.migration.source.table
        ));
    }
}

/// How many of the migration's guard triggers are on the source.
async fn guard_triggers(store: &mut Store, site: &Site) -> Result<u64, crate::executor::ExecError> {
    let table = &site.migration.source.table;
    let query = match site.dialect {
        Dialect::Postgres => format!(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass({}) AND tgname LIKE 'switchyard\\_guard\\_%'",
            sql::pg::literal(&sql::pg::qualified(&site.schema, table))
        ),
        Dialect::Mysql => format!(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {} \
             AND EVENT_OBJECT_TABLE = {} AND TRIGGER_NAME LIKE 'switchyard\\_guard\\_%'",
            sql::mysql::literal(&site.schema),
            sql::mysql::literal(table)
        ),
    };
    let rows = store.rows("looking for the guard", &query).await?;
    Ok(number(rows.first().and_then(|r| r.first())))
}

/// Keys, target rows, dependents, grants.
async fn table_checks(config: &Config, live: &Live, f: &mut Findings) -> Result<(), String> {
    let m = &live.migration;
    let mut source = live.source_conn().await.map_err(|e| e.to_string())?;
    let mut target = live.target_conn().await.map_err(|e| e.to_string())?;
    let source_key = primary_key(&mut source, live.dialect, &live.mapping.source).await?;
    if source_key != m.source.primary_key {
        f.problems.push(format!(
            "`{}`'s primary key is ({}) but `source.primary_key` says ({}); make them agree",
            live.mapping.source.name,
            source_key.join(", "),
            m.source.primary_key.join(", ")
        ));
    }
    let mapped: Vec<String> = m
        .source
        .primary_key
        .iter()
        .map(|k| m.target_column(k).to_string())
        .collect();
    let target_key = primary_key(&mut target, live.dialect, &live.mapping.target).await?;
    if target_key != mapped {
        f.problems.push(format!(
            "`{}`'s primary key is ({}) but the mapped key is ({}); the sync's upsert conflicts on it, so give the target that primary key",
            live.mapping.target.name,
            target_key.join(", "),
            mapped.join(", ")
        ));
    }
    let count = format!(
        "SELECT COUNT(*) FROM {}",
        quoted(live.dialect, &live.mapping.target)
    );
    let rows = target.row(&count).await.map_err(|e| e.to_string())?;
    let n = number(rows.as_ref().and_then(|r| r.first()));
    if n > 0 && m.phase == Phase::Planned {
        f.warnings.push(format!(
            "`{}` already holds {n} row(s); the backfill keeps them as they are, and the diff reports any that differ",
            live.mapping.target.name
        ));
    }
    // From the write switch on, a client's INSERT lands in the target as
    // the client wrote it: a column it leaves out must get a value there
    // as it did on the source.
    let source_defaults = defaulted(&mut source, live.dialect, &live.mapping.source).await?;
    let target_defaults = defaulted(&mut target, live.dialect, &live.mapping.target).await?;
    for column in &live.mapping.source.columns {
        let on_target = m.target_column(&column.name);
        let target_column = live.mapping.target.column(on_target);
        let fills = source_defaults.contains(&column.name) || column.nullable;
        let refuses = target_column.is_some_and(|c| !c.nullable)
            && !target_defaults.iter().any(|d| d == on_target);
        if fills && refuses {
            f.warnings.push(format!(
                "`{}.{}` is NOT NULL without a default, while an INSERT that leaves `{}` out \
                 succeeds on the source; after the write switch such an INSERT fails. Give the \
                 target's column the source's default (or an identity / AUTO_INCREMENT)",
                live.mapping.target.name, on_target, column.name
            ));
        }
    }
    let (schema, table) = (&live.mapping.source.schema, &live.mapping.source.table);
    for d in archive::dependents(&mut source, live.dialect, schema, table).await? {
        let why = match d.kind {
            "foreign_key" if d.cascades => "its ON DELETE/UPDATE action writes the source without the proxy seeing the keys (the guard queues them for repair)",
            "foreign_key" => "it would follow the source to its archive at complete; move it to the target first",
            "trigger" => "its writes reach the source without the proxy seeing the keys (the guard queues them); move it before complete",
            _ => "it would follow the source to its archive at complete; move it to the target first",
        };
        f.warnings.push(format!(
            "{} {} names the source: {why}",
            d.kind.replace('_', " "),
            d.name
        ));
    }
    if live.dialect == Dialect::Postgres {
        grants(config, live, &mut source, f).await?;
    }
    Ok(())
}

/// The table's primary-key columns in key order.
async fn primary_key(
    conn: &mut Conn,
    dialect: Dialect,
    t: &TableSchema,
) -> Result<Vec<String>, String> {
    let query = match dialect {
        Dialect::Postgres => format!(
            "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = {}::regclass AND i.indisprimary ORDER BY k.n",
            sql::pg::literal(&sql::pg::qualified(&t.schema, &t.table))
        ),
        Dialect::Mysql => format!(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = {} \
             AND TABLE_NAME = {} AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            sql::mysql::literal(&t.schema),
            sql::mysql::literal(&t.table)
        ),
    };
    let rows = conn.rows(&query).await.map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| text(r.first())).collect())
}

/// The columns that get a value when an INSERT leaves them out: a
/// default, an identity, a serial or AUTO_INCREMENT, a generated column.
async fn defaulted(
    conn: &mut Conn,
    dialect: Dialect,
    t: &TableSchema,
) -> Result<Vec<String>, String> {
    let query = match dialect {
        Dialect::Postgres => format!(
            "SELECT attname FROM pg_attribute WHERE attrelid = {}::regclass AND attnum > 0 \
             AND NOT attisdropped AND (atthasdef OR attidentity <> '' OR attgenerated <> '')",
            sql::pg::literal(&sql::pg::qualified(&t.schema, &t.table))
        ),
        Dialect::Mysql => format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} \
             AND TABLE_NAME = {} AND (COLUMN_DEFAULT IS NOT NULL OR EXTRA <> '')",
            sql::mysql::literal(&t.schema),
            sql::mysql::literal(&t.table)
        ),
    };
    let rows = conn.rows(&query).await.map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| text(r.first())).collect())
}

fn quoted(dialect: Dialect, t: &TableSchema) -> String {
    match dialect {
        Dialect::Postgres => sql::pg::qualified(&t.schema, &t.table),
        Dialect::Mysql => sql::mysql::qualified(&t.schema, &t.table),
    }
}

/// PostgreSQL: the privileges each role the proxies log in as needs.
async fn grants(
    config: &Config,
    live: &Live,
    conn: &mut Conn,
    f: &mut Findings,
) -> Result<(), String> {
    let mut roles = BTreeSet::new();
    roles.insert(live.source.backend.user.clone());
    roles.extend(config.users.iter().filter_map(|u| u.backend_user.clone()));
    let store = &live.mapping.source.schema;
    let needs = [
        (
            quoted(live.dialect, &live.mapping.source),
            "SELECT, INSERT, UPDATE, DELETE",
        ),
        (
            quoted(live.dialect, &live.mapping.target),
            "SELECT, INSERT, UPDATE, DELETE",
        ),
        (sql::pg::qualified(store, STATE), "SELECT"),
        (sql::pg::qualified(store, REPAIR_QUEUE), "INSERT"),
    ];
    for role in roles {
        for (table, privileges) in &needs {
            let query = format!(
                "SELECT CASE WHEN to_regclass({t}) IS NULL THEN true ELSE has_table_privilege({r}, {t}, {p}) END",
                t = sql::pg::literal(table),
                r = sql::pg::literal(&role),
                p = sql::pg::literal(privileges)
            );
            let row = conn.row(&query).await.map_err(|e| e.to_string())?;
            if text(row.as_ref().and_then(|r| r.first())) != "t" {
                f.problems.push(format!(
                    "role `{role}` (the proxies' backend login) lacks {privileges} on {table}; GRANT {privileges} ON {table} TO {}",
                    sql::pg::ident(&role)
                ));
            }
        }
    }
    Ok(())
}
