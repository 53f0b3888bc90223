//! MySQL and MariaDB: the client's write runs exactly as it came, and the
//! guard trigger on the source tells the mirror which keys it wrote.
//!
//! Neither server can return a statement's rows and its OK packet at once,
//! and an UPDATE has no `RETURNING` at all; re-deriving keys from the
//! statement (a locking read of its predicate, `LAST_INSERT_ID()` and row
//! counts) misses rows that REPLACE deletes or an upsert updates through a
//! secondary unique key. The guard trigger sees every row instead: while
//! the session is marked as the proxy's mirrored write for the migration,
//! it appends each written row's key (old and new) to the session variable
//! `@switchyard_keys` rather than queueing it for repair. The program then
//! syncs exactly those keys from the source's current rows:
//!
//! ```sql
//! SET @switchyard_mirrored = 'm', @switchyard_keys = NULL
//! <the client's statement, as it came: its OK packet is the client's>
//! INSERT INTO target (...) SELECT STRAIGHT_JOIN s.... FROM JSON_TABLE(keys) k
//!     JOIN source s ON s.id = k.k0 ON DUPLICATE KEY UPDATE ...
//! DELETE t FROM JSON_TABLE(keys) k LEFT JOIN source s ON s.id = k.k0
//!     STRAIGHT_JOIN target t ON t.id = k.k0 WHERE s.id IS NULL
//! SET @switchyard_mirrored = NULL, @switchyard_keys = NULL
//! ```
//!
//! The sync statements are strict: a warning (a value the target clips)
//! fails them like an error.

use switchyard_core::config::OnMirrorError;
use switchyard_core::sql::mysql::{ident, qualified};
use switchyard_core::store::mysql as store;

use super::{MirrorFacts, MirroredWrite};
use crate::route::program::{OnError, Program, Step};
use crate::route::rewrite::TableMap;
use crate::wire::pg::message::Trim;

/// The MySQL error number a write failed by its mirror gets, with SQLSTATE
/// 45000 (ER_OPTION_PREVENTS_STATEMENT's number: the configuration, here
/// the migration's `on_mirror_error`, prevents it).
pub const MIRROR_ERRNO: u16 = 1290;

/// The program that runs a client's write of the source and mirrors it.
/// `key_types` are the source's key columns' SQL types, in key order.
pub fn mirror(map: &TableMap, facts: &MirrorFacts<'_>, key_types: &[String]) -> MirroredWrite {
    let key: Vec<usize> = facts
        .key
        .iter()
        .filter_map(|k| map.columns.iter().position(|c| c.source == *k))
        .collect();
    let keys = keys_table(&key, key_types);
    let source = qualified(&map.source.schema, &map.source.name);
    let target = qualified(&map.target.schema, &map.target.name);
    let on = |left: &str, right: &str, left_target: bool| {
        key.iter()
            .enumerate()
            .map(|(n, &i)| {
                let column = if left_target {
                    &map.columns[i].target
                } else {
                    &map.columns[i].source
                };
                let right_column = match right {
                    "k" => format!("k{n}"),
                    _ => ident(&map.columns[i].source),
                };
                format!("{left}.{} = {right}.{right_column}", ident(column))
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let targets = map
        .columns
        .iter()
        .map(|c| ident(&c.target))
        .collect::<Vec<_>>()
        .join(", ");
    let values = map
        .columns
        .iter()
        .map(|c| format!("s.{}", ident(&c.source)))
        .collect::<Vec<_>>()
        .join(", ");
    let updates: Vec<String> = (0..map.columns.len())
        .filter(|i| !key.contains(i))
        .map(|i| {
            let t = ident(&map.columns[i].target);
            format!("{t} = VALUES({t})")
        })
        .collect();
    // With only key columns there is nothing to update: setting the key
    // to itself keeps the statement one form.
    let updates = if updates.is_empty() {
        let t = ident(&map.columns[key[0]].target);
        format!("{t} = {t}")
    } else {
        updates.join(", ")
    };
    let upsert = format!(
        "INSERT INTO {target} ({targets}) SELECT STRAIGHT_JOIN {values} FROM {keys} JOIN {source} AS s FORCE INDEX (PRIMARY) ON {} ON DUPLICATE KEY UPDATE {updates}",
        on("s", "k", false)
    );
    let first = ident(&map.columns[key[0]].source);
    // Keys the source still has are dropped before the target is read:
    // looking a missing key up in the target would lock the gap it falls
    // in (the end of the table, for a new key) until the client's
    // transaction ends, and every other insert of a new key would wait.
    let delete = format!(
        "DELETE t FROM {keys} LEFT JOIN {source} AS s FORCE INDEX (PRIMARY) ON {} STRAIGHT_JOIN {target} AS t FORCE INDEX (PRIMARY) ON {} WHERE s.{first} IS NULL",
        on("s", "k", false),
        on("t", "k", true),
    );
    let repair = format!(
        "INSERT INTO {} (migration, `key`, source) SELECT {}, k.j, 'mirror_failed' FROM JSON_TABLE(CONCAT('[', COALESCE(@switchyard_keys, ''), ']'), '$[*]' COLUMNS (j JSON PATH '$')) AS k",
        qualified(&map.source.schema, "switchyard_repair_queue"),
        literal(facts.migration),
    );
    let fail = format!(
        "SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {MIRROR_ERRNO}, MESSAGE_TEXT = {}",
        literal(&format!(
            "switchyard: migration `{}` could not mirror this write to {}.{}, and its on_mirror_error is fail_write, so the write was not made",
            facts.migration, map.target.schema, map.target.name
        ))
    );
    if facts.outbox {
        // Another server: the collected keys go to the outbox in the
        // client's transaction; the applier copies their rows. A failure
        // here fails the client's statement, so no write goes unrecorded.
        let outbox = format!(
            "INSERT INTO {} (migration, `key`) SELECT {}, k.j FROM JSON_TABLE(CONCAT('[', COALESCE(@switchyard_keys, ''), ']'), '$[*]' COLUMNS (j JSON PATH '$')) AS k",
            qualified(&map.source.schema, "switchyard_outbox"),
            literal(facts.migration),
        );
        return MirroredWrite {
            program: Program {
                steps: vec![
                    Step::proxy(store::mark_mirrored(facts.migration)),
                    Step::as_sent(),
                    Step::proxy(outbox),
                    Step {
                        on_error: OnError::Ignore,
                        ..Step::proxy(store::unmark_mirrored())
                    },
                ],
            },
            tag: String::new(),
            trim: Trim {
                extra: 0,
                rows: true,
            },
        };
    }
    let sync = |sql: String| {
        let mut step = Step::proxy(sql);
        step.strict = true;
        step.on_error = OnError::Instead(match facts.on_error {
            OnMirrorError::Repair => vec![Step::proxy(repair.clone())],
            OnMirrorError::FailWrite => vec![Step::proxy(fail.clone())],
        });
        step
    };
    MirroredWrite {
        program: Program {
            steps: vec![
                Step::proxy(store::mark_mirrored(facts.migration)),
                Step::as_sent(),
                sync(delete),
                sync(upsert),
                Step {
                    // Failing (the connection is going), it changes no data.
                    on_error: OnError::Ignore,
                    ..Step::proxy(store::unmark_mirrored())
                },
            ],
        },
        tag: String::new(),
        trim: Trim {
            extra: 0,
            rows: true,
        },
    }
}

/// The collected keys as a table `k` with columns `k0, k1, ...`.
fn keys_table(key: &[usize], key_types: &[String]) -> String {
    let columns = key
        .iter()
        .enumerate()
        .map(|(n, _)| {
            let ty = key_types.get(n).map_or("TEXT", |t| t.as_str());
            format!("k{n} {ty} PATH '$[{n}]'")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "JSON_TABLE(CONCAT('[', COALESCE(@switchyard_keys, ''), ']'), '$[*]' COLUMNS ({columns})) AS k"
    )
}

/// Text as a string literal, always quoted (an id of digits is text).
fn literal(text: &str) -> String {
    switchyard_core::sql::mysql::literal(text)
}
