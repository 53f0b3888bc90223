//! The row-image sync: for a set of primary keys, the statements that
//! upsert the secondary's rows the primary has and delete those it has
//! not, keyed by the primary key alone. Pure: names are resolved and
//! quoted once per migration, and each call only fills in keys.
//!
//! The statements carry no casts. The mapping's `cast` is the source's
//! type for reads of the target; a write into the secondary relies on
//! the server's assignment conversion instead, which refuses a value the
//! column cannot hold where an explicit cast (`::varchar(64)`) would cut
//! it silently, and MySQL cannot `CAST` to most column types anyway. A
//! retype that depends on the time zone converts in the session's zone:
//! the caller pins the migration's `time_zone` on the connection first.

use crate::sql::{self, Dialect};

use crate::schema::{types, ColumnPair, Mapping, TableSchema};

/// Which of the migration's tables is primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Before the write switch: the source is written, the target follows.
    SourceToTarget,
    /// After the write switch: the target is written, and the source
    /// follows through the mapping reversed, so a rollback finds it whole.
    TargetToSource,
}

/// Why a sync cannot be built or keys cannot be synced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// No key columns were given.
    #[error("`{table}`: a row-image sync needs the primary-key columns; pass the plan's `source.primary_key`")]
    NoKey { table: String },
    /// A key column is not one of the source's mapped columns.
    #[error("key column `{column}` is not in `{table}`; columns are: {columns}; correct `source.primary_key`")]
    KeyNotInSource {
        column: String,
        table: String,
        columns: String,
    },
    /// A key has another number of values than the key has columns.
    #[error("`{table}`: a key has {got} value(s) but the key has {want} column(s) ({columns}); give one value per key column, in that order")]
    KeyArity {
        table: String,
        columns: String,
        got: usize,
        want: usize,
    },
}

/// The alias of the primary table in the statements: a name no table of
/// the migration plausibly has, so it never shadows one.
const PRIMARY: &str = "switchyard_primary";

/// One key column on both sides, quoted.
#[derive(Clone, Debug)]
struct KeyColumn {
    /// The column on the primary, quoted.
    primary: String,
    /// The column on the secondary, quoted.
    secondary: String,
    /// The primary's column holds exact numbers, so a key value that is
    /// an integer is written bare; any other value is a string literal.
    number: bool,
}

/// The statements of one migration's row-image sync in one direction.
#[derive(Clone, Debug)]
pub struct RowSync {
    /// How names and literals are quoted, and which statement forms exist.
    dialect: Dialect,
    /// The primary table, qualified and quoted.
    primary: String,
    /// The secondary table, qualified and quoted.
    secondary: String,
    /// Every mapped column as (primary, secondary), quoted, in the
    /// source's column order.
    columns: Vec<(String, String)>,
    /// The key columns, in the order key values are given.
    key: Vec<KeyColumn>,
    /// The primary table as messages name it.
    primary_name: String,
    /// The key's column names on the primary, unquoted, for messages.
    key_names: String,
}

impl RowSync {
    /// Resolves `mapping` for `direction`. `key` names the source's key
    /// columns in the order every key's values come (the plan's
    /// `source.primary_key`, the order the guard queues them in); a name
    /// matches as [`TableSchema::column`] matches.
    pub fn new(
        dialect: Dialect,
        mapping: &Mapping,
        key: &[String],
        direction: Direction,
    ) -> Result<RowSync, SyncError> {
        if key.is_empty() {
            return Err(SyncError::NoKey {
                table: mapping.source.name.clone(),
            });
        }
        let (primary, secondary) = match direction {
            Direction::SourceToTarget => (&mapping.source, &mapping.target),
            Direction::TargetToSource => (&mapping.target, &mapping.source),
        };
        let mut key_columns = Vec::with_capacity(key.len());
        let mut key_names = Vec::with_capacity(key.len());
        for name in key {
            let pair = mapping
                .source
                .column(name)
                .and_then(|c| mapping.columns.iter().find(|p| p.source == c.name))
                .ok_or_else(|| SyncError::KeyNotInSource {
                    column: name.clone(),
                    table: mapping.source.name.clone(),
                    columns: mapping.source.column_list(),
                })?;
            let (on_primary, on_secondary) = direction.orient(pair);
            key_columns.push(KeyColumn {
                primary: ident(dialect, on_primary),
                secondary: ident(dialect, on_secondary),
                number: primary.column(on_primary).is_some_and(|c| {
                    types::is_exact_number(c.base_type.as_deref().unwrap_or(&c.type_name))
                }),
            });
            key_names.push(on_primary);
        }
        let columns = mapping.columns.iter().map(|pair| {
            let (p, s) = direction.orient(pair);
            (ident(dialect, p), ident(dialect, s))
        });
        Ok(RowSync {
            dialect,
            primary: qualified(dialect, primary),
            secondary: qualified(dialect, secondary),
            columns: columns.collect(),
            key: key_columns,
            primary_name: primary.name.clone(),
            key_names: key_names.join(", "),
        })
    }

    /// The statements that make the secondary's rows for `keys` equal to
    /// the primary's mapped rows, to run in order in one transaction:
    /// first the delete of rows the primary no longer has (so a unique
    /// value they hold is free for the upsert), then the upsert of the
    /// rows it has, read under a share lock in key order, so a concurrent
    /// writer of the same key is waited for and never overwritten with an
    /// older image. Each key lists its values in key order, as text. No
    /// keys, no statements.
    pub fn statements(&self, keys: &[Vec<String>]) -> Result<Vec<String>, SyncError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.check_arity(keys)?;
        Ok(vec![self.delete_absent(keys), self.upsert_present(keys)])
    }

    /// Across servers, first half (run on the primary's server): the
    /// primary's rows among `keys`, every mapped column as text in the
    /// mapping's order, read under a share lock in key order, so a writer
    /// of the same key waits until the caller's transaction ends.
    pub fn read_images(&self, keys: &[Vec<String>]) -> Result<String, SyncError> {
        self.check_arity(keys)?;
        let primary = self.alias();
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|(p, _)| match self.dialect {
                Dialect::Postgres => format!("{primary}.{p}::text"),
                Dialect::Mysql => format!("{primary}.{p}"),
            })
            .collect();
        let key: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{primary}.{}", k.primary))
            .collect();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let lock = match self.dialect {
            Dialect::Postgres => "FOR SHARE",
            Dialect::Mysql => "LOCK IN SHARE MODE",
        };
        Ok(format!(
            "SELECT {} FROM {} AS {primary} WHERE {} ORDER BY {} {lock}",
            select.join(", "),
            self.primary,
            self.in_keys(&key, keys),
            key.join(", ")
        ))
    }

    /// Across servers, second half (run on the secondary's server, in one
    /// transaction): the statements that make the secondary's rows for
    /// `keys` equal to `images`, the rows [`RowSync::read_images`]
    /// returned, each value already written as an SQL literal (or `NULL`)
    /// by the caller, which knows its driver's values. The rows the
    /// primary no longer has are deleted; the others are upserted by the
    /// primary key, never deleted and inserted again (a delete would fire
    /// the cascades of the secondary's referencing tables).
    pub fn write_images(
        &self,
        keys: &[Vec<String>],
        images: &[Vec<String>],
    ) -> Result<Vec<String>, SyncError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.check_arity(keys)?;
        let secondary_key: Vec<&str> = self.key.iter().map(|k| k.secondary.as_str()).collect();
        let positions: Vec<usize> = self
            .key
            .iter()
            .filter_map(|k| self.columns.iter().position(|(p, _)| *p == k.primary))
            .collect();
        let mut delete = format!(
            "DELETE FROM {} WHERE {}",
            self.secondary,
            self.in_keys(&secondary_key, keys)
        );
        if !images.is_empty() {
            let present: Vec<String> = images
                .iter()
                .map(|row| {
                    let values: Vec<&str> = positions
                        .iter()
                        .filter_map(|&i| row.get(i).map(String::as_str))
                        .collect();
                    format!("({})", values.join(", "))
                })
                .collect();
            delete.push_str(&format!(
                " AND ({}) NOT IN ({})",
                secondary_key.join(", "),
                present.join(", ")
            ));
        }
        let mut statements = vec![delete];
        if !images.is_empty() {
            let rows: Vec<String> = images
                .iter()
                .map(|row| format!("({})", row.join(", ")))
                .collect();
            let conflict = match self.dialect {
                Dialect::Postgres => self.pg_on_conflict(),
                Dialect::Mysql => self.mysql_on_duplicate(),
            };
            statements.push(format!(
                "{} VALUES {} {conflict}",
                self.insert_head(),
                rows.join(", ")
            ));
        }
        Ok(statements)
    }

    /// Refuses a key with another number of values than the key has
    /// columns.
    fn check_arity(&self, keys: &[Vec<String>]) -> Result<(), SyncError> {
        match keys.iter().find(|k| k.len() != self.key.len()) {
            Some(bad) => Err(SyncError::KeyArity {
                table: self.primary_name.clone(),
                columns: self.key_names.clone(),
                got: bad.len(),
                want: self.key.len(),
            }),
            None => Ok(()),
        }
    }

    /// PostgreSQL's inline mirror: the upsert of the row images held by
    /// the CTE `cte`, whose columns are named as the primary's. `None` on
    /// MySQL, which has no writable CTEs.
    pub fn upsert_from(&self, cte: &str) -> Option<String> {
        let Dialect::Postgres = self.dialect else {
            return None;
        };
        let select: Vec<&str> = self.columns.iter().map(|(p, _)| p.as_str()).collect();
        Some(format!(
            "{} SELECT {} FROM {} {}",
            self.insert_head(),
            select.join(", "),
            ident(self.dialect, cte),
            self.pg_on_conflict()
        ))
    }

    /// PostgreSQL's inline mirror: the delete of the secondary's rows
    /// whose keys the CTE `cte` holds (its columns named as the primary's
    /// key columns). `None` on MySQL, which has no writable CTEs.
    pub fn delete_using(&self, cte: &str) -> Option<String> {
        let Dialect::Postgres = self.dialect else {
            return None;
        };
        let cte = ident(self.dialect, cte);
        let equal: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{}.{} = {cte}.{}", self.secondary, k.secondary, k.primary))
            .collect();
        Some(format!(
            "DELETE FROM {} USING {cte} WHERE {}",
            self.secondary,
            equal.join(" AND ")
        ))
    }

    /// `DELETE` of the secondary's rows among `keys` that the primary has
    /// not. The primary is another table, so MySQL allows it in the
    /// subquery.
    fn delete_absent(&self, keys: &[Vec<String>]) -> String {
        let primary = self.alias();
        let matched: Vec<String> = self
            .key
            .iter()
            .map(|k| {
                format!(
                    "{primary}.{} = {}.{}",
                    k.primary, self.secondary, k.secondary
                )
            })
            .collect();
        let secondary_key: Vec<&str> = self.key.iter().map(|k| k.secondary.as_str()).collect();
        format!(
            "DELETE FROM {} WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS {primary} WHERE {})",
            self.secondary,
            self.in_keys(&secondary_key, keys),
            self.primary,
            matched.join(" AND ")
        )
    }

    /// The upsert of the primary's rows among `keys`, mapped.
    fn upsert_present(&self, keys: &[Vec<String>]) -> String {
        let primary = self.alias();
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|(p, _)| format!("{primary}.{p}"))
            .collect();
        let key: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{primary}.{}", k.primary))
            .collect();
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let (lock, conflict) = match self.dialect {
            Dialect::Postgres => ("FOR SHARE", self.pg_on_conflict()),
            Dialect::Mysql => ("LOCK IN SHARE MODE", self.mysql_on_duplicate()),
        };
        format!(
            "{} SELECT {} FROM {} AS {primary} WHERE {} ORDER BY {} {lock} {conflict}",
            self.insert_head(),
            select.join(", "),
            self.primary,
            self.in_keys(&key, keys),
            key.join(", ")
        )
    }

    /// `INSERT INTO secondary (columns)`; on PostgreSQL with `OVERRIDING
    /// SYSTEM VALUE`, so a `GENERATED ALWAYS` identity column takes the
    /// primary's value like any other (the clause is allowed, and does
    /// nothing, on a table without one).
    fn insert_head(&self) -> String {
        let columns: Vec<&str> = self.columns.iter().map(|(_, s)| s.as_str()).collect();
        let overriding = match self.dialect {
            Dialect::Postgres => " OVERRIDING SYSTEM VALUE",
            Dialect::Mysql => "",
        };
        format!(
            "INSERT INTO {} ({}){overriding}",
            self.secondary,
            columns.join(", ")
        )
    }

    /// `ON CONFLICT (key) DO UPDATE SET` every other column, or `DO
    /// NOTHING` when every column is a key column (the row is then
    /// already equal).
    fn pg_on_conflict(&self) -> String {
        let key: Vec<&str> = self.key.iter().map(|k| k.secondary.as_str()).collect();
        let set: Vec<String> = self
            .columns
            .iter()
            .filter(|(_, s)| !key.contains(&s.as_str()))
            .map(|(_, s)| format!("{s} = EXCLUDED.{s}"))
            .collect();
        let action = if set.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", set.join(", "))
        };
        format!("ON CONFLICT ({}) {action}", key.join(", "))
    }

    /// `ON DUPLICATE KEY UPDATE` every column, key columns included: a key
    /// the primary re-spelled in a way the column's collation calls equal
    /// (case, trailing spaces) takes the primary's spelling. MySQL cannot
    /// name the key a duplicate is judged on: a row that clashes on
    /// another unique key of the secondary is the one updated. The delete
    /// running first frees the values of rows the primary no longer has,
    /// which makes that rare; the diff finds what remains.
    fn mysql_on_duplicate(&self) -> String {
        let set: Vec<String> = self
            .columns
            .iter()
            .map(|(_, s)| format!("{s} = VALUES({s})"))
            .collect();
        format!("ON DUPLICATE KEY UPDATE {}", set.join(", "))
    }

    /// `column IN (v, ...)` for a one-column key, `(a, b) IN ((v, w),
    /// ...)` otherwise; `columns` are the key's columns as written here.
    fn in_keys(&self, columns: &[&str], keys: &[Vec<String>]) -> String {
        let tuples: Vec<String> = keys
            .iter()
            .map(|key| {
                let values: Vec<String> = self
                    .key
                    .iter()
                    .zip(key)
                    .map(|(column, value)| self.value(column, value))
                    .collect();
                match values.len() {
                    1 => values.join(""),
                    _ => format!("({})", values.join(", ")),
                }
            })
            .collect();
        match columns.len() {
            1 => format!("{} IN ({})", columns[0], tuples.join(", ")),
            _ => format!("({}) IN ({})", columns.join(", "), tuples.join(", ")),
        }
    }

    /// One key value: bare when the column holds exact numbers and the
    /// value is an integer, else a string literal, which both servers
    /// convert to the column's type.
    fn value(&self, column: &KeyColumn, value: &str) -> String {
        let digits = value.strip_prefix('-').unwrap_or(value);
        if column.number && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return value.to_string();
        }
        match self.dialect {
            Dialect::Postgres => sql::pg::literal(value),
            Dialect::Mysql => sql::mysql::literal(value),
        }
    }

    /// The primary's alias, quoted.
    fn alias(&self) -> String {
        ident(self.dialect, PRIMARY)
    }
}

impl Direction {
    /// A mapped column's (primary, secondary) names.
    fn orient(self, pair: &ColumnPair) -> (&str, &str) {
        match self {
            Direction::SourceToTarget => (&pair.source, &pair.target),
            Direction::TargetToSource => (&pair.target, &pair.source),
        }
    }
}

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
#[path = "sync_tests.rs"]
mod tests;
