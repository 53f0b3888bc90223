//! PostgreSQL: the client's write and its mirror in one statement.
//!
//! The client's INSERT, UPDATE or DELETE becomes the first CTE of a
//! writable-CTE statement; its `RETURNING` gives the new row images (every
//! source column, after the client's own returning items), and a second
//! CTE writes them to the target keyed by the primary key alone:
//!
//! ```sql
//! WITH switchyard_w AS (<client's statement> RETURNING <client's items>,
//!          t."id" AS switchyard_0, t."path" AS switchyard_1),
//!      switchyard_m AS (INSERT INTO "public"."t2" ("id", "route")
//!          SELECT switchyard_0, switchyard_1 FROM switchyard_w
//!          ON CONFLICT ("id") DO UPDATE SET "route" = EXCLUDED."route")
//! SELECT * FROM switchyard_w
//! ```
//!
//! The session drops the trailing `switchyard_*` columns (all of them, and
//! the rows too, when the client asked for no `RETURNING`) and gives the
//! client its own command tag with the row count. One statement cannot
//! modify a row twice, so an UPDATE that may change the key first locks
//! and captures the old keys (`switchyard_o`), runs on exactly those rows,
//! and deletes from the target the old keys that no new row took.

use sqlparser::ast::{self, AssignmentTarget, FromTable, ObjectName, SetExpr, TableFactor};

use super::{MirrorFacts, MirroredWrite, Refusal};
use crate::route::classify::{parse, Dialect};
use crate::route::program::{OnError, Part, Program, Role, Sql, Step};
use crate::route::rewrite::TableMap;
use crate::wire::pg::message::Trim;
use switchyard_core::config::OnMirrorError;
use switchyard_core::store::pg as store;

/// The SQLSTATE of a write refused or failed by the mirror.
pub const MIRROR_SQLSTATE: &str = "SYM01";

/// The mirror of `sql` when it writes the source table.
pub fn mirror(
    map: &TableMap,
    facts: &MirrorFacts<'_>,
    sql: &str,
) -> Option<Result<MirroredWrite, Refusal>> {
    let statements = parse(Dialect::Postgres, sql).ok()?;
    if let Some(refusal) = super::refused(Dialect::Postgres, &statements, map, facts) {
        return Some(Err(refusal));
    }
    let writes: Vec<&ast::Statement> = statements
        .iter()
        .filter(|s| Write::of(s).is_some_and(|w| w.names(map, facts)))
        .collect();
    let first = *writes.first()?;
    if statements.len() > 1 {
        // Framing one statement of several in the run's transaction would
        // change what the others mean (a `BEGIN` or `COMMIT` among them):
        // the text runs as it came and the guard queues what it wrote.
        return None;
    }
    let write = Write::of(first)?;
    Some(write.build(map, facts))
}

fn refusal(
    map: &TableMap,
    facts: &MirrorFacts<'_>,
    reason: &str,
    fix: &str,
    label: &'static str,
) -> Refusal {
    Refusal {
        migration: facts.migration.to_string(),
        table: format!("{}.{}", map.source.schema, map.source.name),
        reason: reason.to_string(),
        fix: fix.to_string(),
        label,
    }
}

/// The parts of one client write the mirror needs.
struct Write<'a> {
    /// The client's CTEs (`WITH ...` before its write), hoisted.
    with: Option<&'a ast::With>,
    /// The write itself.
    statement: &'a ast::Statement,
}

/// Which write, for the command tag.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Insert,
    Update,
    Delete,
}

impl<'a> Write<'a> {
    fn of(statement: &'a ast::Statement) -> Option<Write<'a>> {
        match statement {
            ast::Statement::Insert(_) | ast::Statement::Update(_) | ast::Statement::Delete(_) => {
                Some(Write {
                    with: None,
                    statement,
                })
            }
            ast::Statement::Query(query) => match &*query.body {
                SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => Some(Write {
                    with: query.with.as_ref(),
                    statement: s,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match self.statement {
            ast::Statement::Insert(_) => Kind::Insert,
            ast::Statement::Update(_) => Kind::Update,
            _ => Kind::Delete,
        }
    }

    /// The written table and the name the statement refers to it by.
    fn relation(&self) -> Option<(&'a ObjectName, String)> {
        match self.statement {
            ast::Statement::Insert(insert) => {
                let ast::TableObject::TableName(name) = &insert.table else {
                    return None;
                };
                let by = match &insert.table_alias {
                    Some(alias) => alias.alias.to_string(),
                    None => name.0.last()?.to_string(),
                };
                Some((name, by))
            }
            ast::Statement::Update(update) => table_factor(&update.table.relation),
            ast::Statement::Delete(delete) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                    &delete.from;
                if !delete.tables.is_empty() || from.len() != 1 {
                    return None;
                }
                table_factor(&from[0].relation)
            }
            _ => None,
        }
    }

    /// Whether it writes the migration's source table.
    fn names(&self, map: &TableMap, facts: &MirrorFacts<'_>) -> bool {
        self.relation().is_some_and(|(name, _)| {
            super::names_relation(Dialect::Postgres, name, &map.source, facts.default_schema)
        })
    }

    fn build(&self, map: &TableMap, facts: &MirrorFacts<'_>) -> Result<MirroredWrite, Refusal> {
        let refused = |reason: &str, fix: &str, label| refusal(map, facts, reason, fix, label);
        let (name, by) = self.relation().expect("checked by names()");
        let mut statement = self.statement.clone();
        let mut key_change = None;
        let client_returning = match &mut statement {
            ast::Statement::Insert(insert) => insert.returning.take(),
            ast::Statement::Delete(delete) => {
                if !delete.order_by.is_empty() || delete.limit.is_some() {
                    return Err(refused(
                        "PostgreSQL has no DELETE ... LIMIT",
                        "remove it",
                        "unsupported",
                    ));
                }
                delete.returning.take()
            }
            ast::Statement::Update(update) => {
                if changes_key(&update.assignments, map, facts.key) {
                    if update.from.is_some() {
                        return Err(refused(
                            "an UPDATE with FROM that may change the primary key cannot be mirrored with certainty",
                            "change the key in an UPDATE without FROM",
                            "key_change_with_from",
                        ));
                    }
                    let predicate = update.selection.take();
                    if is_current_of(predicate.as_ref()) {
                        return Err(refused(
                            "WHERE CURRENT OF cannot be mirrored",
                            "update by key",
                            "cursor",
                        ));
                    }
                    key_change = Some(predicate);
                }
                update.returning.take()
            }
            _ => unreachable!("Write::of admits only writes"),
        };
        let columns: Vec<usize> = (0..map.columns.len()).collect();
        let key_positions: Vec<usize> = facts
            .key
            .iter()
            .filter_map(|k| map.columns.iter().position(|c| c.source == *k))
            .collect();
        if key_positions.len() != facts.key.len() || key_positions.is_empty() {
            return Err(refused(
                "its primary key is not among the mapped columns",
                "check the migration's primary_key",
                "no_key",
            ));
        }
        let extras: Vec<String> = columns
            .iter()
            .map(|&i| format!("{by}.{} AS {}", quote(&map.columns[i].source), slot(i)))
            .collect();
        let mut returning: Vec<String> = client_returning
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        returning.extend(extras);
        let mut written = statement.to_string();
        let mut ctes: Vec<String> = self
            .with
            .iter()
            .flat_map(|w| w.cte_tables.iter().map(ToString::to_string))
            .collect();
        if let Some(predicate) = &key_change {
            let keys = key_positions
                .iter()
                .map(|&i| format!("{by}.{} AS {}", quote(&map.columns[i].source), slot(i)))
                .collect::<Vec<_>>()
                .join(", ");
            let filter = predicate
                .as_ref()
                .map(|p| format!(" WHERE {p}"))
                .unwrap_or_default();
            ctes.push(format!(
                "switchyard_o AS (SELECT {keys} FROM {} FOR UPDATE OF {by})",
                table_with_alias(name, &by, filter)
            ));
            let own = key_list(map, &key_positions, Some(&by));
            let slots = slot_list(&key_positions);
            written.push_str(&format!(
                " WHERE ({own}) IN (SELECT {slots} FROM switchyard_o)"
            ));
        }
        written.push_str(" RETURNING ");
        written.push_str(&returning.join(", "));
        ctes.push(format!("switchyard_w AS ({written})"));
        let recursive = self.with.is_some_and(|w| w.recursive);

        // The written keys (and, for a key change, the old ones), as the
        // text values a queue stores.
        let slots = slot_list(&key_positions);
        let key_texts = key_positions
            .iter()
            .map(|&i| format!("{}::text", slot(i)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut written_keys = format!("SELECT {slots} FROM switchyard_w");
        if key_change.is_some() {
            written_keys.push_str(&format!(" UNION SELECT {slots} FROM switchyard_o"));
        }
        let enqueue = |table: &str, name: &str, extra: &str, value: &str| {
            format!(
                "{name} AS (INSERT INTO {} (migration, key{extra}) SELECT {}, jsonb_build_array({key_texts}){value} FROM ({written_keys}) AS switchyard_k)",
                relation(&map.source.schema, table),
                literal(facts.migration),
            )
        };
        let client = if facts.outbox {
            // Another server (or database): the keys go to the outbox in
            // the client's statement, and the applier copies their rows.
            let mut outbox_ctes = ctes.clone();
            outbox_ctes.push(enqueue("switchyard_outbox", "switchyard_x", "", ""));
            Step::client(Sql::text(with_select(recursive, &outbox_ctes)))
        } else {
            let mut mirror_ctes = ctes.clone();
            mirror_ctes.extend(target_ctes(
                map,
                &key_positions,
                self.kind(),
                key_change.is_some(),
            ));
            let instead = match facts.on_error {
                OnMirrorError::Repair => {
                    let mut repair_ctes = ctes.clone();
                    repair_ctes.push(enqueue(
                        "switchyard_repair_queue",
                        "switchyard_q",
                        ", source",
                        ", 'mirror_failed'",
                    ));
                    vec![Step::client(Sql::text(with_select(recursive, &repair_ctes)))]
                }
                OnMirrorError::FailWrite => vec![
                    Step::client(Sql::text(with_select(recursive, &ctes))),
                    Step::proxy(format!(
                        "DO $switchyard$ BEGIN RAISE EXCEPTION USING ERRCODE = '{MIRROR_SQLSTATE}', MESSAGE = {}; END $switchyard$",
                        literal(&format!(
                            "migration `{}` could not mirror this write to {}.{}, and its on_mirror_error is fail_write, so the write was not made",
                            facts.migration, map.target.schema, map.target.name
                        ))
                    )),
                ],
            };
            let mut client = Step::client(Sql::text(with_select(recursive, &mirror_ctes)));
            client.on_error = OnError::Instead(instead);
            client
        };
        // The guard knows the statement by the comment at its head: no
        // statement of the proxy's own is needed around it.
        let mut client = client;
        mark(&mut client, facts.migration);
        let program = Program {
            steps: vec![client],
        };
        let tag = match self.kind() {
            Kind::Insert => "INSERT 0 {rows}",
            Kind::Update => "UPDATE {rows}",
            Kind::Delete => "DELETE {rows}",
        };
        Ok(MirroredWrite {
            program,
            tag: tag.to_string(),
            trim: Trim {
                extra: map.columns.len(),
                rows: client_returning.is_some(),
            },
        })
    }
}

/// Puts the guard's comment at the head of a step's text and of its
/// replacements'.
fn mark(step: &mut Step, migration: &str) {
    let comment = store::mirrored_comment(migration);
    if let [Part::Text(sql)] = &mut step.sql.0[..] {
        *sql = format!("{comment} {sql}");
    }
    if let OnError::Instead(steps) = &mut step.on_error {
        for step in steps.iter_mut().filter(|s| s.role == Role::Client) {
            mark(step, migration);
        }
    }
}

/// The CTEs that write the images of `switchyard_w` to the target: an
/// upsert (or, for a DELETE, a delete by key), and for a key change the
/// delete of the old keys no new row took.
fn target_ctes(map: &TableMap, key: &[usize], kind: Kind, key_change: bool) -> Vec<String> {
    let target = relation(&map.target.schema, &map.target.name);
    let mut ctes = vec![match kind {
        Kind::Delete => format!(
            "switchyard_m AS (DELETE FROM {target} AS switchyard_t USING switchyard_w WHERE {})",
            key_match(map, key, "switchyard_t", "switchyard_w"),
        ),
        Kind::Insert | Kind::Update => {
            format!("switchyard_m AS ({})", upsert(map, key, "switchyard_w"))
        }
    }];
    if key_change {
        ctes.push(format!(
            "switchyard_d AS (DELETE FROM {target} AS switchyard_t WHERE ({}) IN (SELECT {slots} FROM switchyard_o EXCEPT SELECT {slots} FROM switchyard_w))",
            key_list_target(map, key, "switchyard_t"),
            slots = slot_list(key),
        ));
    }
    ctes
}

fn with_select(recursive: bool, ctes: &[String]) -> String {
    format!(
        "WITH {}{} SELECT * FROM switchyard_w",
        if recursive { "RECURSIVE " } else { "" },
        ctes.join(", ")
    )
}

/// `INSERT INTO target (...) SELECT ... FROM images ON CONFLICT (key) DO
/// UPDATE`: the target's rows for the images' keys made equal to them.
fn upsert(map: &TableMap, key: &[usize], images: &str) -> String {
    let targets = map
        .columns
        .iter()
        .map(|c| quote(&c.target))
        .collect::<Vec<_>>()
        .join(", ");
    let values = (0..map.columns.len())
        .map(slot)
        .collect::<Vec<_>>()
        .join(", ");
    let conflict = key_list_target(map, key, "");
    let updates: Vec<String> = (0..map.columns.len())
        .filter(|i| !key.contains(i))
        .map(|i| {
            let t = quote(&map.columns[i].target);
            format!("{t} = EXCLUDED.{t}")
        })
        .collect();
    let action = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    format!(
        "INSERT INTO {} ({targets}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {images} ON CONFLICT ({conflict}) {action}",
        relation(&map.target.schema, &map.target.name)
    )
}

fn key_match(map: &TableMap, key: &[usize], target: &str, images: &str) -> String {
    key.iter()
        .map(|&i| {
            format!(
                "{target}.{} = {images}.{}",
                quote(&map.columns[i].target),
                slot(i)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn key_list(map: &TableMap, key: &[usize], by: Option<&str>) -> String {
    key.iter()
        .map(|&i| match by {
            Some(by) => format!("{by}.{}", quote(&map.columns[i].source)),
            None => quote(&map.columns[i].source),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_list_target(map: &TableMap, key: &[usize], by: &str) -> String {
    key.iter()
        .map(|&i| {
            let column = quote(&map.columns[i].target);
            if by.is_empty() {
                column
            } else {
                format!("{by}.{column}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn slot_list(key: &[usize]) -> String {
    key.iter().map(|&i| slot(i)).collect::<Vec<_>>().join(", ")
}

/// The name of source column `i`'s image among the returned columns.
fn slot(i: usize) -> String {
    format!("switchyard_{i}")
}

fn table_factor(factor: &TableFactor) -> Option<(&ObjectName, String)> {
    let TableFactor::Table { name, alias, .. } = factor else {
        return None;
    };
    let by = match alias {
        Some(alias) => alias.name.to_string(),
        None => name.0.last()?.to_string(),
    };
    Some((name, by))
}

fn table_with_alias(name: &ObjectName, by: &str, filter: String) -> String {
    format!("{name} AS {by}{filter}")
}

/// Whether an UPDATE's SET may change a primary-key column.
fn changes_key(assignments: &[ast::Assignment], map: &TableMap, key: &[String]) -> bool {
    let _ = map;
    let sets_key = |name: &ObjectName| {
        name.0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|ident| key.iter().any(|k| *k == fold(ident)))
    };
    assignments.iter().any(|a| match &a.target {
        AssignmentTarget::ColumnName(name) => sets_key(name),
        AssignmentTarget::Tuple(names) => names.iter().any(sets_key),
    })
}

fn is_current_of(predicate: Option<&ast::Expr>) -> bool {
    predicate.is_some_and(|p| p.to_string().to_ascii_uppercase().starts_with("CURRENT OF"))
}

/// An identifier as PostgreSQL folds it.
fn fold(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// A folded name as a quoted identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn relation(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

/// Text as a string constant, always quoted (an id of digits is text).
fn literal(text: &str) -> String {
    switchyard_core::sql::pg::literal(text)
}
