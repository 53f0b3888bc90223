//! The backfill's SQL text: the checkpoint table, the next chunk's upper
//! bound, the chunk copy and the checkpoint write, per engine. Pure: the
//! controller's runner (`controller::backfill`) runs these on its own
//! connections.
//!
//! A chunk is a key range `(lo, hi]` in key order (composite keys compared
//! as row values). Its copy runs while the dual write mirrors every write
//! of the source, and keeps three promises:
//! - a row the mirror already wrote is never overwritten by an older
//!   image: a conflict on the target's key does nothing;
//! - a row written while the chunk is copied is never missed: the source's
//!   rows are read with a share lock, so a writer still in flight is waited
//!   for and its committed image is the one read (PostgreSQL's READ
//!   COMMITTED re-reads a row it waited for; InnoDB's locking read is a
//!   current read), and a writer that comes later waits for the chunk and
//!   is mirrored over the copied row;
//! - a row deleted meanwhile is not resurrected: a locking read skips a
//!   row whose delete committed, and a delete that comes later waits for
//!   the chunk and is mirrored.
//!
//! On MySQL the copy is `INSERT ... SELECT ... LOCK IN SHARE MODE ON
//! DUPLICATE KEY UPDATE k = k` (a no-op on a duplicate) rather than
//! `INSERT IGNORE`: IGNORE turns truncation, NOT NULL and foreign-key
//! errors into warnings, and a chunk full of rows the mirror already wrote
//! would bury such a warning among thousands of duplicate-key ones, past
//! what `SHOW WARNINGS` lists (`max_error_count`). With the no-op update a
//! duplicate raises nothing, so the runner fails the chunk on any warning
//! at all, and a strict `sql_mode` ([`session`]) makes most of them errors.
//!
//! Key values travel as text (the checkpoint stores them as a JSON array
//! of strings) and are written bare only for exact-number columns, like
//! the row-image sync's.

use crate::schema::{types, Mapping, TableSchema};
use crate::sql::{self, Dialect};
use crate::sync::SyncError;

/// The checkpoint table, one row per migration, in the control store's
/// schema (PostgreSQL) or database (MySQL): the source table's own.
pub const CHECKPOINT_TABLE: &str = "switchyard_backfill";

/// The alias of the source table in the statements, a name no table of
/// the migration plausibly has.
const SOURCE: &str = "switchyard_source";

/// The alias of the bound query's derived table.
const CHUNK: &str = "switchyard_chunk";

/// One key column on both sides, quoted.
#[derive(Clone, Debug)]
struct KeyColumn {
    /// The column on the source, quoted.
    source: String,
    /// The column on the target, quoted: the conflict the copy skips is
    /// judged on it.
    target: String,
    /// The source column holds exact numbers, so an integer value is
    /// written bare; any other value is a string literal.
    number: bool,
}

/// Where a backfill stands: one row of [`CHECKPOINT_TABLE`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last key the committed chunks covered, one text value per key
    /// column; `None` before the first chunk. The next chunk starts after
    /// it.
    pub last_key: Option<Vec<String>>,
    /// Source rows the committed chunks covered (rows the mirror had
    /// already written included), for progress.
    pub rows_copied: u64,
    /// The chunk size in force, so a resumed run starts at the size the
    /// last one had adapted to.
    pub chunk_size: u64,
    /// Every chunk is copied: a rerun has nothing to do.
    pub done: bool,
}

/// One migration's backfill statements.
#[derive(Clone, Debug)]
pub struct BackfillSql {
    /// How names and literals are quoted, and which forms exist.
    dialect: Dialect,
    /// The migration id, the checkpoint row's key.
    migration: String,
    /// The source table, qualified and quoted.
    source: String,
    /// The target table, qualified and quoted.
    target: String,
    /// The checkpoint table, qualified and quoted.
    checkpoint: String,
    /// Every mapped column as (source, target), quoted, in the source's
    /// column order.
    columns: Vec<(String, String)>,
    /// The key columns, in the order key values are given.
    key: Vec<KeyColumn>,
    /// The source's schema (PostgreSQL) or database (MySQL) and table
    /// name, unquoted, for the catalog's row estimate.
    source_parts: (String, String),
    /// The source table as messages name it.
    source_name: String,
    /// The key's column names on the source, unquoted, for messages.
    key_names: String,
}

/// The checkpoint table's DDL in `store` (a PostgreSQL schema or a MySQL
/// database); safe to run again.
pub fn create_table(dialect: Dialect, store: &str) -> String {
    match dialect {
        Dialect::Postgres => format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             migration text PRIMARY KEY, \
             last_key jsonb, \
             rows_copied bigint NOT NULL DEFAULT 0, \
             chunk_size bigint NOT NULL, \
             done boolean NOT NULL DEFAULT false, \
             updated_at timestamptz NOT NULL DEFAULT now())",
            sql::pg::qualified(store, CHECKPOINT_TABLE)
        ),
        Dialect::Mysql => format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             migration VARCHAR(191) NOT NULL PRIMARY KEY, \
             last_key JSON NULL, \
             rows_copied BIGINT UNSIGNED NOT NULL DEFAULT 0, \
             chunk_size BIGINT UNSIGNED NOT NULL, \
             done BOOLEAN NOT NULL DEFAULT FALSE, \
             updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\
             ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            sql::mysql::qualified(store, CHECKPOINT_TABLE)
        ),
    }
}

/// The statements that set up the backfill's session: a lock wait that
/// gives up after `lock_wait_secs` (the chunk is retried, rather than
/// holding its share locks while writers queue behind it), the
/// migration's `time_zone` if it pins one (retypes that depend on the
/// zone convert in it), and on MySQL a strict `sql_mode`, so a value the
/// target cannot hold is an error rather than a silent truncation.
pub fn session(dialect: Dialect, lock_wait_secs: u32, time_zone: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    match dialect {
        Dialect::Postgres => {
            out.push(format!("SET lock_timeout = '{lock_wait_secs}s'"));
            if let Some(zone) = time_zone {
                out.push(format!("SET TIME ZONE {}", sql::pg::literal(zone)));
            }
        }
        Dialect::Mysql => {
            out.push(format!(
                "SET SESSION innodb_lock_wait_timeout = {lock_wait_secs}"
            ));
            out.push("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')".into());
            if let Some(zone) = time_zone {
                out.push(format!("SET time_zone = {}", sql::mysql::literal(zone)));
            }
        }
    }
    out
}

impl BackfillSql {
    /// Resolves `mapping` for migration `migration`, keyed by `key` (the
    /// plan's `source.primary_key`, in the order key values come).
    pub fn new(
        dialect: Dialect,
        migration: &str,
        mapping: &Mapping,
        key: &[String],
    ) -> Result<BackfillSql, SyncError> {
        if key.is_empty() {
            return Err(SyncError::NoKey {
                table: mapping.source.name.clone(),
            });
        }
        let mut key_columns = Vec::with_capacity(key.len());
        let mut key_names = Vec::with_capacity(key.len());
        for name in key {
            let (column, pair) = mapping
                .source
                .column(name)
                .and_then(|c| Some((c, mapping.columns.iter().find(|p| p.source == c.name)?)))
                .ok_or_else(|| SyncError::KeyNotInSource {
                    column: name.clone(),
                    table: mapping.source.name.clone(),
                    columns: mapping.source.column_list(),
                })?;
            key_columns.push(KeyColumn {
                source: ident(dialect, &pair.source),
                target: ident(dialect, &pair.target),
                number: types::is_exact_number(
                    column.base_type.as_deref().unwrap_or(&column.type_name),
                ),
            });
            key_names.push(pair.source.as_str());
        }
        let columns = mapping
            .columns
            .iter()
            .map(|p| (ident(dialect, &p.source), ident(dialect, &p.target)));
        Ok(BackfillSql {
            dialect,
            migration: migration.to_string(),
            source: qualified(dialect, &mapping.source),
            target: qualified(dialect, &mapping.target),
            checkpoint: match dialect {
                Dialect::Postgres => sql::pg::qualified(&mapping.source.schema, CHECKPOINT_TABLE),
                Dialect::Mysql => sql::mysql::qualified(&mapping.source.schema, CHECKPOINT_TABLE),
            },
            columns: columns.collect(),
            key: key_columns,
            source_parts: (mapping.source.schema.clone(), mapping.source.table.clone()),
            source_name: mapping.source.name.clone(),
            key_names: key_names.join(", "),
        })
    }

    /// How many columns the key has.
    pub fn key_len(&self) -> usize {
        self.key.len()
    }

    /// The query for the next chunk: one row holding the key (as text, one
    /// column per key column) of the last of the `size` rows after `lo` in
    /// key order, then how many rows that is (fewer than `size` near the
    /// end). No row: nothing is left after `lo`.
    pub fn upper_bound(&self, lo: Option<&[String]>, size: u64) -> Result<String, SyncError> {
        let key: Vec<&str> = self.key.iter().map(|k| k.source.as_str()).collect();
        let text: Vec<String> = key
            .iter()
            .map(|k| match self.dialect {
                Dialect::Postgres => format!("{k}::text"),
                // The text protocol returns every value as its text.
                Dialect::Mysql => k.to_string(),
            })
            .collect();
        // Qualified, so PostgreSQL orders by the derived table's column and
        // not by the output column of the same name (the key as text).
        let chunk = ident(self.dialect, CHUNK);
        let desc: Vec<String> = key.iter().map(|k| format!("{chunk}.{k} DESC")).collect();
        let filter = match lo {
            Some(lo) => format!(" WHERE {}", self.compare("", lo, After)?),
            None => String::new(),
        };
        Ok(format!(
            "SELECT {}, count(*) OVER () FROM (SELECT {} FROM {}{filter} ORDER BY {} LIMIT {size}) AS {chunk} ORDER BY {} LIMIT 1",
            text.join(", "),
            key.join(", "),
            self.source,
            key.join(", "),
            desc.join(", ")
        ))
    }

    /// The copy of the chunk `(lo, hi]` (from the first row when `lo` is
    /// `None`) into the target, keeping the module's three promises.
    pub fn copy(&self, lo: Option<&[String]>, hi: &[String]) -> Result<String, SyncError> {
        let alias = ident(self.dialect, SOURCE);
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|(s, _)| format!("{alias}.{s}"))
            .collect();
        let targets: Vec<&str> = self.columns.iter().map(|(_, t)| t.as_str()).collect();
        let order: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{alias}.{}", k.source))
            .collect();
        let mut range = Vec::with_capacity(2);
        if let Some(lo) = lo {
            range.push(self.compare(&alias, lo, After)?);
        }
        range.push(self.compare(&alias, hi, UpTo)?);
        let head = format!(
            "INSERT INTO {} ({}){} SELECT {} FROM {} AS {alias} WHERE {} ORDER BY {}",
            self.target,
            targets.join(", "),
            match self.dialect {
                Dialect::Postgres => " OVERRIDING SYSTEM VALUE",
                Dialect::Mysql => "",
            },
            select.join(", "),
            self.source,
            range.join(" AND "),
            order.join(", ")
        );
        Ok(match self.dialect {
            Dialect::Postgres => {
                let key: Vec<&str> = self.key.iter().map(|k| k.target.as_str()).collect();
                format!(
                    "{head} FOR SHARE ON CONFLICT ({}) DO NOTHING",
                    key.join(", ")
                )
            }
            Dialect::Mysql => {
                // Qualified by the target's name: an unqualified column of
                // the SELECT's table would be ambiguous.
                let k = format!("{}.{}", self.target, self.key[0].target);
                format!("{head} LOCK IN SHARE MODE ON DUPLICATE KEY UPDATE {k} = {k}")
            }
        })
    }

    /// Reads the migration's checkpoint: one row (`last_key` as JSON text
    /// or NULL, `rows_copied`, `chunk_size`, `done` as 0/1 or a boolean),
    /// or none before the first run.
    pub fn load_checkpoint(&self) -> String {
        let (last_key, done) = match self.dialect {
            Dialect::Postgres => ("last_key::text", "done"),
            Dialect::Mysql => ("last_key", "done"),
        };
        format!(
            "SELECT {last_key}, rows_copied, chunk_size, {done} FROM {} WHERE migration = {}",
            self.checkpoint,
            self.literal(&self.migration)
        )
    }

    /// Writes `checkpoint` as the migration's row (inserted or replaced).
    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<String, SyncError> {
        let last_key = match &checkpoint.last_key {
            Some(key) => {
                self.arity(key)?;
                self.literal(&serde_json::Value::from(key.clone()).to_string())
            }
            None => "NULL".to_string(),
        };
        let (rows, size) = (checkpoint.rows_copied, checkpoint.chunk_size);
        let migration = self.literal(&self.migration);
        Ok(match self.dialect {
            Dialect::Postgres => format!(
                "INSERT INTO {} (migration, last_key, rows_copied, chunk_size, done, updated_at) \
                 VALUES ({migration}, {last_key}::jsonb, {rows}, {size}, {}, now()) \
                 ON CONFLICT (migration) DO UPDATE SET last_key = EXCLUDED.last_key, \
                 rows_copied = EXCLUDED.rows_copied, chunk_size = EXCLUDED.chunk_size, \
                 done = EXCLUDED.done, updated_at = EXCLUDED.updated_at",
                self.checkpoint, checkpoint.done
            ),
            Dialect::Mysql => format!(
                "INSERT INTO {} (migration, last_key, rows_copied, chunk_size, done, updated_at) \
                 VALUES ({migration}, {last_key}, {rows}, {size}, {}, CURRENT_TIMESTAMP(6)) \
                 ON DUPLICATE KEY UPDATE last_key = VALUES(last_key), \
                 rows_copied = VALUES(rows_copied), chunk_size = VALUES(chunk_size), \
                 done = VALUES(done), updated_at = VALUES(updated_at)",
                self.checkpoint,
                u8::from(checkpoint.done)
            ),
        })
    }

    /// The server's estimate of the source's row count (one row, one
    /// integer; -1 or NULL when the server has none), for progress only.
    pub fn estimate(&self) -> String {
        match self.dialect {
            Dialect::Postgres => format!(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = {}::regclass",
                sql::pg::literal(&self.source)
            ),
            Dialect::Mysql => format!(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
                sql::mysql::literal(&self.source_parts.0),
                sql::mysql::literal(&self.source_parts.1)
            ),
        }
    }

    /// The exact row count, when the server has no estimate (a table never
    /// analysed).
    pub fn count(&self) -> String {
        format!("SELECT count(*) FROM {}", self.source)
    }

    /// `key > lo` or `key <= hi` as a condition on the source's key
    /// columns (qualified by `alias` when it is not empty), with row-value
    /// semantics for composite keys.
    fn compare(&self, alias: &str, values: &[String], op: Bound) -> Result<String, SyncError> {
        self.arity(values)?;
        let pairs: Vec<(String, String)> = self
            .key
            .iter()
            .zip(values)
            .map(|(k, v)| match alias {
                "" => (k.source.clone(), self.value(k, v)),
                _ => (format!("{alias}.{}", k.source), self.value(k, v)),
            })
            .collect();
        let strict = match op {
            After => ">",
            UpTo => "<",
        };
        if let [(column, value)] = pairs.as_slice() {
            return Ok(match op {
                After => format!("{column} > {value}"),
                UpTo => format!("{column} <= {value}"),
            });
        }
        Ok(match self.dialect {
            // PostgreSQL compares row values natively and plans a range
            // scan of the key's index from them.
            Dialect::Postgres => {
                let columns: Vec<&str> = pairs.iter().map(|(c, _)| c.as_str()).collect();
                let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
                let op = match op {
                    After => ">",
                    UpTo => "<=",
                };
                format!("({}) {op} ({})", columns.join(", "), values.join(", "))
            }
            // MySQL plans no range scan from a row-value comparison, so it
            // is spelled out: `a > x OR (a = x AND (b > y ...))`, behind a
            // bound on the first column the optimiser can use.
            Dialect::Mysql => {
                let last = pairs.len() - 1;
                let mut expr = match op {
                    After => format!("{} > {}", pairs[last].0, pairs[last].1),
                    UpTo => format!("{} <= {}", pairs[last].0, pairs[last].1),
                };
                for (column, value) in pairs[..last].iter().rev() {
                    expr =
                        format!("{column} {strict} {value} OR ({column} = {value} AND ({expr}))");
                }
                let (first, value) = &pairs[0];
                let wide = match op {
                    After => ">=",
                    UpTo => "<=",
                };
                format!("{first} {wide} {value} AND ({expr})")
            }
        })
    }

    /// Refuses a key with another number of values than key columns.
    fn arity(&self, key: &[String]) -> Result<(), SyncError> {
        if key.len() == self.key.len() {
            return Ok(());
        }
        Err(SyncError::KeyArity {
            table: self.source_name.clone(),
            columns: self.key_names.clone(),
            got: key.len(),
            want: self.key.len(),
        })
    }

    /// One key value: bare when the column holds exact numbers and the
    /// value is an integer, else a string literal, which both servers
    /// convert to the column's type.
    fn value(&self, column: &KeyColumn, value: &str) -> String {
        let digits = value.strip_prefix('-').unwrap_or(value);
        if column.number && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return value.to_string();
        }
        self.literal(value)
    }

    /// A string literal of the dialect.
    fn literal(&self, value: &str) -> String {
        match self.dialect {
            Dialect::Postgres => sql::pg::literal(value),
            Dialect::Mysql => sql::mysql::literal(value),
        }
    }
}

impl Checkpoint {
    /// Parses a stored `last_key` (a JSON array of strings).
    pub fn parse_key(text: &str) -> Result<Vec<String>, String> {
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("`last_key` {text} is not a JSON array of strings: {e}"))
    }
}

/// Which side of a chunk a key bounds.
#[derive(Clone, Copy)]
enum Bound {
    /// The rows after the key (exclusive): the chunk's lower bound.
    After,
    /// The rows up to the key (inclusive): the chunk's upper bound.
    UpTo,
}
use Bound::{After, UpTo};

/// `name` as an identifier of `dialect`.
fn ident(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Postgres => sql::pg::ident(name),
        Dialect::Mysql => sql::mysql::ident(name),
    }
}

/// `table` qualified by its schema (PostgreSQL) or database (MySQL).
fn qualified(dialect: Dialect, table: &TableSchema) -> String {
    match dialect {
        Dialect::Postgres => sql::pg::qualified(&table.schema, &table.table),
        Dialect::Mysql => sql::mysql::qualified(&table.schema, &table.table),
    }
}

#[cfg(test)]
#[path = "backfill_tests.rs"]
mod tests;
