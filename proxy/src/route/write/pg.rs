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
//! client its own command tag with the row count. A write that may change
//! a key (an UPDATE or an upsert that assigns a key column) is mirrored for
//! its new rows and left unmarked, so the guard queues the old keys: no
//! CTE of the statement can see a key as a concurrent mover left it.

use sqlparser::ast::{self, AssignmentTarget, FromTable, ObjectName, SetExpr, TableFactor};

use super::{MirrorFacts, MirroredWrite, Refusal};
use crate::route::classify::{parse, Dialect};
use crate::route::program::{OnError, Part, Program, Role, Sql, Step};
use crate::route::rewrite::TableMap;
use crate::wire::pg::message::Trim;
use switchyard_core::config::OnMirrorError;
use switchyard_core::sql::pg::{ident, qualified};
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
    fn qualified(&self) -> Option<(&'a ObjectName, String)> {
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
        self.qualified().is_some_and(|(name, _)| {
            super::names_relation(Dialect::Postgres, name, &map.source, facts.default_schema)
        })
    }

    fn build(&self, map: &TableMap, facts: &MirrorFacts<'_>) -> Result<MirroredWrite, Refusal> {
        let refused = |reason: &str, fix: &str, label| refusal(map, facts, reason, fix, label);
        let (_, by) = self.qualified().expect("checked by names()");
        let mut statement = self.statement.clone();
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
            ast::Statement::Update(update) => update.returning.take(),
            _ => unreachable!("Write::of admits only writes"),
        };
        // A write that may move a row to another key leaves its old key
        // to the guard: nothing in one statement can see that key as the
        // write left it (a concurrent mover's commit is invisible to the
        // statement's snapshot), while the guard's row trigger sees every
        // old key exactly. Its new rows are mirrored as any.
        let key_change = match &statement {
            ast::Statement::Update(update) => changes_key(&update.assignments, facts.key),
            ast::Statement::Insert(insert) => match &insert.on {
                Some(ast::OnInsert::OnConflict(conflict)) => match &conflict.action {
                    ast::OnConflictAction::DoUpdate(update) => {
                        changes_key(&update.assignments, facts.key)
                    }
                    ast::OnConflictAction::DoNothing => false,
                },
                _ => false,
            },
            _ => false,
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
            .map(|&i| format!("{by}.{} AS {}", ident(&map.columns[i].source), slot(i)))
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
        // An UPDATE that may change keys: its old keys, locked, so the
        // common case leaves the target exact at once (the write itself is
        // not narrowed to them: a row a concurrent mover moved must still
        // be found, as PostgreSQL finds it).
        let (name, _) = self.qualified().expect("checked by names()");
        let old_keys = match (&statement, key_change) {
            (ast::Statement::Update(update), true) => {
                let keys = key_positions
                    .iter()
                    .map(|&i| format!("{by}.{} AS {}", ident(&map.columns[i].source), slot(i)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let from = match &update.from {
                    Some(
                        ast::UpdateTableFromKind::AfterSet(from)
                        | ast::UpdateTableFromKind::BeforeSet(from),
                    ) => {
                        format!(
                            ", {}",
                            from.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                    None => String::new(),
                };
                let filter = update
                    .selection
                    .as_ref()
                    .map(|p| format!(" WHERE {p}"))
                    .unwrap_or_default();
                ctes.push(format!(
                    "switchyard_o AS (SELECT {keys} FROM {name} AS {by}{from}{filter} FOR UPDATE OF {by})"
                ));
                true
            }
            _ => false,
        };
        if old_keys {
            // The old keys are read (and locked) before the write runs: a
            // row it already changed would be invisible to them.
            if let ast::Statement::Update(update) = &mut statement {
                let first = old_keys_first();
                update.selection = Some(match update.selection.take() {
                    Some(predicate) => ast::Expr::BinaryOp {
                        left: Box::new(ast::Expr::Nested(Box::new(predicate))),
                        op: ast::BinaryOperator::And,
                        right: Box::new(first),
                    },
                    None => first,
                });
            }
            written = statement.to_string();
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
        let written_keys = format!("SELECT {slots} FROM switchyard_w");
        let enqueue = |table: &str, name: &str, extra: &str, value: &str| {
            format!(
                "{name} AS (INSERT INTO {} (migration, key{extra}) SELECT {}, jsonb_build_array({key_texts}){value} FROM ({written_keys}) AS switchyard_k)",
                qualified(&map.source.schema, table),
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
                facts.migration,
            ));
            if old_keys {
                // Old keys no new row took leave the target, and are queued
                // as the guard queues the write's (it is unmarked): should
                // the write have skipped one the lock took (a volatile
                // predicate), repair puts back what the source has.
                let slots = slot_list(&key_positions);
                mirror_ctes.push(format!(
                    "switchyard_d AS (DELETE FROM {} AS switchyard_t WHERE ({}) IN (SELECT {slots} FROM switchyard_o EXCEPT SELECT {slots} FROM switchyard_w))",
                    qualified(&map.target.schema, &map.target.name),
                    key_list_target(map, &key_positions, "switchyard_t"),
                ));
                mirror_ctes.push(format!(
                    "switchyard_e AS (INSERT INTO {} (migration, key, source) SELECT {}, jsonb_build_array({key_texts}), 'proxy_unparsed' FROM (SELECT {slots} FROM switchyard_o EXCEPT SELECT {slots} FROM switchyard_w) AS switchyard_k)",
                    qualified(&map.source.schema, "switchyard_repair_queue"),
                    literal(facts.migration),
                ));
            }
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
        // statement of the proxy's own is needed around it. A write that may
        // change keys goes unmarked: the guard queues its old keys.
        let mut client = client;
        if !key_change {
            mark(&mut client, facts.migration);
        }
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

/// `(SELECT count(*) FROM switchyard_o) IS NOT NULL`: always true, and an
/// uncorrelated subquery, so the server reads `switchyard_o` once, before
/// the write it is added to scans anything.
fn old_keys_first() -> ast::Expr {
    let count = ast::Expr::Subquery(
        parse(Dialect::Postgres, "SELECT count(*) FROM switchyard_o")
            .ok()
            .and_then(|mut s| match s.pop() {
                Some(ast::Statement::Query(q)) => Some(q),
                _ => None,
            })
            .expect("a fixed query parses"),
    );
    ast::Expr::IsNotNull(Box::new(count))
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
/// upsert, or for a DELETE a delete by key whose misses (a row the
/// statement's snapshot cannot see, moved there by a concurrent writer, or
/// one not copied yet) are queued for repair in the same statement.
fn target_ctes(map: &TableMap, key: &[usize], kind: Kind, migration: &str) -> Vec<String> {
    let target = qualified(&map.target.schema, &map.target.name);
    match kind {
        Kind::Delete => {
            let slots = slot_list(key);
            let deleted = key
                .iter()
                .map(|&i| {
                    format!(
                        "switchyard_t.{} AS {}",
                        ident(&map.columns[i].target),
                        slot(i)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let key_texts = key
                .iter()
                .map(|&i| format!("{}::text", slot(i)))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                format!(
                    "switchyard_m AS (DELETE FROM {target} AS switchyard_t USING switchyard_w WHERE {} RETURNING {deleted})",
                    key_match(map, key, "switchyard_t", "switchyard_w"),
                ),
                format!(
                    "switchyard_u AS (INSERT INTO {} (migration, key, source) SELECT {}, jsonb_build_array({key_texts}), 'mirror_failed' FROM (SELECT {slots} FROM switchyard_w EXCEPT SELECT {slots} FROM switchyard_m) AS switchyard_k)",
                    qualified(&map.source.schema, "switchyard_repair_queue"),
                    literal(migration),
                ),
            ]
        }
        Kind::Insert | Kind::Update => {
            vec![format!(
                "switchyard_m AS ({})",
                upsert(map, key, "switchyard_w")
            )]
        }
    }
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
        .map(|c| ident(&c.target))
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
            let t = ident(&map.columns[i].target);
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
        qualified(&map.target.schema, &map.target.name)
    )
}

fn key_match(map: &TableMap, key: &[usize], target: &str, images: &str) -> String {
    key.iter()
        .map(|&i| {
            format!(
                "{target}.{} = {images}.{}",
                ident(&map.columns[i].target),
                slot(i)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn key_list_target(map: &TableMap, key: &[usize], by: &str) -> String {
    key.iter()
        .map(|&i| {
            let column = ident(&map.columns[i].target);
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

/// Whether an UPDATE's SET may change a primary-key column.
fn changes_key(assignments: &[ast::Assignment], key: &[String]) -> bool {
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

/// An identifier as PostgreSQL folds it.
fn fold(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// Text as a string constant, always quoted (an id of digits is text).
fn literal(text: &str) -> String {
    switchyard_core::sql::pg::literal(text)
}
