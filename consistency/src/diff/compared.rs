//! What a diff compares, as SQL: each mapped column as one expression per
//! side whose text is equal exactly when the values are, the key ranges
//! chunks are cut by, and the statements that count, hash and list a
//! chunk's rows. Pure: it writes SQL and never runs it.
//!
//! The value a column is compared by:
//! - the source's value converted to the target's type where the mapping
//!   retypes the column (`int` → `bigint`, `numeric(10,2)` →
//!   `numeric(14,4)`). The catalog only accepts lossless retypes, so two
//!   values equal in the target's type were equal before; casting the
//!   target back instead would round `1.2345` to `1.23` and call it equal;
//! - JSON by value (PostgreSQL `jsonb`, MariaDB `JSON_NORMALIZE`), since
//!   key order and spacing are not part of a document;
//! - everything else as the server prints it: `1.50` is not `1.5`, `-0`
//!   is not `0`, `'a'` is not `'A'` whatever the collation, and a
//!   trailing space counts. The session's time zone and output styles are
//!   pinned (see [`Compared::session`]), so a timestamp prints as one
//!   instant on both sides.
//!
//! The row hash must never call different rows equal by construction: each
//! row is hashed to 64 bits without ambiguity and with a non-linear hash,
//! and a chunk's hashes are summed exactly (no XOR, which cancels pairs).
//! PostgreSQL: `hash_record_extended` over the row, which hashes each
//! value with its type's 64-bit hash (the text of those values whose type
//! hash would call different prints equal: `1.50` and `1.5`, `-0` and
//! `0`); a NULL hashes as 0, which a value does with a chance of 2⁻⁶⁴. MySQL: the first 64 bits of
//! MD5 over the values, each length-prefixed, NULL with its own mark.

use switchyard_core::schema::{Column, Mapping};
use switchyard_core::sql::{self, Dialect};

/// One key column on both sides.
#[derive(Clone, Debug)]
struct KeyColumn {
    /// The source's column, quoted.
    source: String,
    /// The target's column, quoted.
    target: String,
    /// Holds text, so ranges compare it in a binary collation: both sides
    /// then cut the key space at the same places whatever their
    /// collations.
    text: bool,
}

/// One mapped column, as compared.
#[derive(Clone, Debug)]
pub struct ComparedColumn {
    /// The source column's name, as reports show it.
    pub source: String,
    /// The target column's name.
    pub target: String,
    /// The source's value as compared (alias `s`).
    source_expr: String,
    /// The target's value as compared (alias `t`).
    target_expr: String,
    /// PostgreSQL: the type's own hash is equal exactly when the printed
    /// values are, so the row hash may hash the value rather than its
    /// text (three times faster); otherwise the hash takes its text.
    hashed_as_is: bool,
}

/// A migration's two tables as a diff reads them.
#[derive(Clone, Debug)]
pub struct Compared {
    /// How names and literals are quoted, and which functions exist.
    pub dialect: Dialect,
    /// The source table, qualified and quoted.
    source: String,
    /// The target table, qualified and quoted.
    target: String,
    /// The key columns, in key order.
    key: Vec<KeyColumn>,
    /// The key's source column names, for reports.
    pub key_names: Vec<String>,
    /// Every mapped column, in the source's order (keys included).
    pub columns: Vec<ComparedColumn>,
    /// The session time zone every read runs in.
    time_zone: String,
    /// The source's schema (MySQL: database) and table name, unquoted,
    /// for the statistics lookup.
    source_parts: (String, String),
    /// Both tables as messages name them.
    names: (String, String),
}

/// Where a chunk starts and ends in key order: after `after` (exclusive)
/// up to `through` (inclusive); `None` is open. Values are the key's
/// columns as text, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Range {
    /// The last key of the previous chunk.
    pub after: Option<Vec<String>>,
    /// The chunk's last key.
    pub through: Option<Vec<String>>,
}

/// Why a pair of tables cannot be compared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompareError {
    /// The key names no mapped source column.
    #[error("key column `{column}` is not a column of `{table}`; columns are: {columns}; correct `source.primary_key`")]
    KeyNotInSource {
        column: String,
        table: String,
        columns: String,
    },
    /// There is no key to chunk by.
    #[error("`{table}` has no key to compare by; set the migration's `source.primary_key`")]
    NoKey { table: String },
}

impl Compared {
    /// What to compare for `mapping`, chunked by `key` (the source's key
    /// column names, in key order), reading in `time_zone` (UTC when
    /// `None`).
    pub fn new(
        dialect: Dialect,
        mapping: &Mapping,
        key: &[String],
        time_zone: Option<&str>,
    ) -> Result<Compared, CompareError> {
        if key.is_empty() {
            return Err(CompareError::NoKey {
                table: mapping.source.name.clone(),
            });
        }
        let ident = |name: &str| match dialect {
            Dialect::Postgres => sql::pg::ident(name),
            Dialect::Mysql => sql::mysql::ident(name),
        };
        let qualified = |schema: &str, table: &str| match dialect {
            Dialect::Postgres => sql::pg::qualified(schema, table),
            Dialect::Mysql => sql::mysql::qualified(schema, table),
        };
        let mut columns = Vec::with_capacity(mapping.columns.len());
        for pair in &mapping.columns {
            let (Some(s), Some(t)) = (
                mapping.source.column(&pair.source),
                mapping.target.column(&pair.target),
            ) else {
                continue;
            };
            let (source_expr, target_expr) =
                value_exprs(dialect, s, t, &ident(&s.name), &ident(&t.name));
            columns.push(ComparedColumn {
                source: s.name.clone(),
                target: t.name.clone(),
                source_expr,
                target_expr,
                hashed_as_is: dialect == Dialect::Postgres && hash_is_print_faithful(t),
            });
        }
        let mut key_columns = Vec::with_capacity(key.len());
        let mut key_names = Vec::with_capacity(key.len());
        for name in key {
            let found = mapping.source.column(name).and_then(|c| {
                let pair = mapping.columns.iter().find(|p| p.source == c.name)?;
                Some((c, mapping.target.column(&pair.target)?))
            });
            let Some((s, t)) = found else {
                return Err(CompareError::KeyNotInSource {
                    column: name.clone(),
                    table: mapping.source.name.clone(),
                    columns: mapping.source.column_list(),
                });
            };
            key_columns.push(KeyColumn {
                source: ident(&s.name),
                target: ident(&t.name),
                text: is_text(&s.type_name),
            });
            key_names.push(s.name.clone());
        }
        Ok(Compared {
            dialect,
            source: qualified(&mapping.source.schema, &mapping.source.table),
            target: qualified(&mapping.target.schema, &mapping.target.table),
            key: key_columns,
            key_names,
            columns,
            time_zone: time_zone.unwrap_or("UTC").to_string(),
            source_parts: (mapping.source.schema.clone(), mapping.source.table.clone()),
            names: (mapping.source.name.clone(), mapping.target.name.clone()),
        })
    }

    /// The source table as messages name it.
    pub fn source_name(&self) -> String {
        self.names.0.clone()
    }

    /// The target table as messages name it.
    pub fn target_name(&self) -> String {
        self.names.1.clone()
    }

    /// The settings every connection of a diff runs first: one time zone
    /// and fixed output styles, so both sides print a value the same way,
    /// and a snapshot per statement (MySQL's repeatable read) so a chunk's
    /// two tables are read at one instant.
    pub fn session(&self) -> Vec<String> {
        match self.dialect {
            Dialect::Postgres => vec![format!(
                "SET TimeZone = {}; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
                 SET bytea_output = 'hex'; SET extra_float_digits = 1",
                sql::pg::literal(&self.time_zone)
            )],
            Dialect::Mysql => {
                let zone = if self.time_zone.eq_ignore_ascii_case("UTC") {
                    "+00:00"
                } else {
                    &self.time_zone
                };
                vec![
                    format!("SET time_zone = {}", sql::mysql::literal(zone)),
                    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
                ]
            }
        }
    }

    /// Both tables' row count and hash sum over `range`, in one statement
    /// (one snapshot): one row of two text values, `count:sum` each.
    pub fn checksum(&self, range: &Range) -> String {
        format!(
            "SELECT {} AS source, {} AS target",
            self.side_checksum(range, false),
            self.side_checksum(range, true)
        )
    }

    /// One table's row count and hash sum over `range` (`target` picks
    /// the table), for sides on different servers: one row, one value.
    pub fn checksum_one(&self, range: &Range, target: bool) -> String {
        format!("SELECT {}", self.side_checksum(range, target))
    }

    fn side_checksum(&self, range: &Range, target: bool) -> String {
        let (table, alias) = self.table(target);
        let filter = self.range_filter(range, alias, target);
        let hash = self.row_hash(target);
        match self.dialect {
            Dialect::Postgres => format!(
                "(SELECT count(*) || ':' || coalesce(sum({hash}), 0) FROM {table} {alias}{filter})"
            ),
            Dialect::Mysql => format!(
                "(SELECT CONCAT(COUNT(*), ':', IFNULL(SUM(CAST(CONV({hash}, 16, 10) AS UNSIGNED)), 0)) \
                 FROM {table} {alias}{filter})"
            ),
        }
    }

    /// One row's 64-bit hash: PostgreSQL a `bigint`, MySQL 16 hex digits.
    fn row_hash(&self, target: bool) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let values: Vec<String> = self
                    .columns
                    .iter()
                    .zip(self.exprs(target))
                    .map(|(c, e)| {
                        if c.hashed_as_is {
                            e
                        } else {
                            format!("({e})::text")
                        }
                    })
                    .collect();
                format!("hash_record_extended(ROW({}), 0)", values.join(", "))
            }
            Dialect::Mysql => {
                let values: Vec<String> = self
                    .exprs(target)
                    .iter()
                    .map(|e| format!("IFNULL(CONCAT(LENGTH({e}), ':', {e}), '~')"))
                    .collect();
                format!("LEFT(MD5(CONCAT({})), 16)", values.join(", "))
            }
        }
    }

    /// Both tables' keys in `range` with each row's hash, in one
    /// statement (one snapshot): a side mark, the key as text, the hash.
    /// What a differing chunk is narrowed by before any row crosses the
    /// network whole.
    pub fn row_hashes(&self, range: &Range) -> String {
        format!(
            "{} UNION ALL {}",
            self.row_hashes_one(range, false),
            self.row_hashes_one(range, true)
        )
    }

    /// One table's keys in `range` with each row's hash.
    pub fn row_hashes_one(&self, range: &Range, target: bool) -> String {
        let (table, alias) = self.table(target);
        let mark = match self.dialect {
            Dialect::Postgres => format!("'{alias}'::text"),
            Dialect::Mysql => format!("'{alias}'"),
        };
        let hash = match self.dialect {
            Dialect::Postgres => format!("{}::text", self.row_hash(target)),
            Dialect::Mysql => self.row_hash(target),
        };
        format!(
            "SELECT {mark}, {}, {hash} FROM {table} {alias}{}",
            self.key_text(alias, target).join(", "),
            self.range_filter(range, alias, target)
        )
    }

    /// One side's table, quoted, and the alias its expressions use.
    fn table(&self, target: bool) -> (&str, &'static str) {
        if target {
            (&self.target, "t")
        } else {
            (&self.source, "s")
        }
    }

    /// The key `rows` rows after `after` in the source's key order (the
    /// last key of a chunk of that many rows), or no row when fewer are
    /// left. Key columns come as text, in key order.
    pub fn next_bound(&self, after: Option<&[String]>, rows: u64) -> String {
        let range = Range {
            after: after.map(<[String]>::to_vec),
            through: None,
        };
        format!(
            "SELECT {} FROM {} s{} ORDER BY {} LIMIT 1 OFFSET {}",
            self.key_text("s", false).join(", "),
            self.source,
            self.range_filter(&range, "s", false),
            self.key_order("s", false),
            rows.saturating_sub(1)
        )
    }

    /// Every row of both tables in `range`, in one statement (one
    /// snapshot): a side mark (`s` or `t`), the key as text, then every
    /// compared column as text.
    pub fn rows(&self, range: &Range) -> String {
        format!(
            "{} UNION ALL {}",
            self.rows_one(range, false),
            self.rows_one(range, true)
        )
    }

    /// One table's rows in `range`, as [`Compared::rows`] lists them.
    pub fn rows_one(&self, range: &Range, target: bool) -> String {
        let (table, alias) = self.table(target);
        let mut items = vec![match self.dialect {
            Dialect::Postgres => format!("'{alias}'::text"),
            Dialect::Mysql => format!("'{alias}'"),
        }];
        items.extend(self.key_text(alias, target));
        items.extend(self.exprs(target).into_iter().map(|e| self.as_text(&e)));
        format!(
            "SELECT {} FROM {table} {alias}{}",
            items.join(", "),
            self.range_filter(range, alias, target)
        )
    }

    /// Both tables' rows with one of `keys` (each the key's values as
    /// text, in key order), listed as [`Compared::rows`] lists a range:
    /// what a repair checks again.
    pub fn rows_for(&self, keys: &[Vec<String>]) -> String {
        format!(
            "{} UNION ALL {}",
            self.rows_for_one(keys, false),
            self.rows_for_one(keys, true)
        )
    }

    /// One table's rows with one of `keys`.
    pub fn rows_for_one(&self, keys: &[Vec<String>], target: bool) -> String {
        let all = self.rows_one(&Range::default(), target);
        let (_, alias) = self.table(target);
        let left: Vec<String> = self
            .key
            .iter()
            .map(|k| self.key_expr(alias, k, target))
            .collect();
        let tuples: Vec<String> = keys
            .iter()
            .map(|key| {
                let values: Vec<String> = key
                    .iter()
                    .zip(&self.key)
                    .map(|(v, k)| self.key_literal(v, k))
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        if tuples.is_empty() {
            return format!("{all} WHERE 1 = 0");
        }
        format!(
            "{all} WHERE ({}) IN ({})",
            left.join(", "),
            tuples.join(", ")
        )
    }

    /// One table's row count and key bounds (the `basic` level): one row
    /// of count, lowest key and highest key, as text (key columns joined
    /// by `, `).
    pub fn basic_one(&self, target: bool) -> String {
        let (table, alias) = self.table(target);
        let keys = self.key_text(alias, target).join(", ");
        let order = self.key_order(alias, target);
        let desc: Vec<String> = self
            .key
            .iter()
            .map(|k| format!("{} DESC", self.key_expr(alias, k, target)))
            .collect();
        let desc = desc.join(", ");
        let count = match self.dialect {
            Dialect::Postgres => format!("(SELECT count(*) FROM {table})::text"),
            Dialect::Mysql => format!("CAST((SELECT COUNT(*) FROM {table}) AS CHAR)"),
        };
        let key = self.concat_key();
        format!(
            "SELECT {count}, \
             (SELECT {key} FROM (SELECT {keys} FROM {table} {alias} ORDER BY {order} LIMIT 1) lo), \
             (SELECT {key} FROM (SELECT {keys} FROM {table} {alias} ORDER BY {desc} LIMIT 1) hi)"
        )
    }

    /// An estimate of the source's row count from the server's statistics,
    /// for progress: one row, one value (possibly NULL or negative before
    /// the table was ever analysed).
    pub fn estimate(&self) -> String {
        let (schema, table) = &self.source_parts;
        match self.dialect {
            Dialect::Postgres => format!(
                "SELECT reltuples::bigint::text FROM pg_class WHERE oid = {}::regclass",
                sql::pg::literal(&sql::pg::qualified(schema, table))
            ),
            Dialect::Mysql => format!(
                "SELECT CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
                sql::mysql::literal(schema),
                sql::mysql::literal(table)
            ),
        }
    }

    /// How busy the server is, as one number a limit is set on:
    /// PostgreSQL's sessions waiting for a lock (writers queueing behind
    /// each other), MySQL's `Threads_running` (statements executing now).
    pub fn busy(&self) -> String {
        match self.dialect {
            Dialect::Postgres => "SELECT count(*)::text FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock'"
                .to_string(),
            Dialect::Mysql => "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                 WHERE VARIABLE_NAME = 'THREADS_RUNNING'"
                .to_string(),
        }
    }

    /// A key's columns joined as one text for [`Compared::basic`]: the
    /// subquery's columns are named by position.
    fn concat_key(&self) -> String {
        let names: Vec<String> = (0..self.key.len()).map(|i| format!("k{i}")).collect();
        match self.dialect {
            Dialect::Postgres => names.join(" || ', ' || "),
            Dialect::Mysql => format!("CONCAT_WS(', ', {})", names.join(", ")),
        }
    }

    /// The compared values of one side, in column order.
    fn exprs(&self, target: bool) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                if target {
                    c.target_expr.clone()
                } else {
                    c.source_expr.clone()
                }
            })
            .collect()
    }

    /// `expr` as text for a row listing.
    fn as_text(&self, expr: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("({expr})::text"),
            Dialect::Mysql => expr.to_string(),
        }
    }

    /// A key column of one side as compared in ranges and ordering.
    fn key_expr(&self, alias: &str, column: &KeyColumn, target: bool) -> String {
        let name = if target {
            &column.target
        } else {
            &column.source
        };
        match (self.dialect, column.text) {
            (Dialect::Postgres, true) => format!("{alias}.{name} COLLATE \"C\""),
            (Dialect::Mysql, true) => format!("CAST({alias}.{name} AS BINARY)"),
            (_, false) => format!("{alias}.{name}"),
        }
    }

    /// The key columns as text, aliased `k0`, `k1`, ...
    fn key_text(&self, alias: &str, target: bool) -> Vec<String> {
        self.key
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let name = if target { &k.target } else { &k.source };
                match self.dialect {
                    Dialect::Postgres => format!("{alias}.{name}::text AS k{i}"),
                    Dialect::Mysql => format!("{alias}.{name} AS k{i}"),
                }
            })
            .collect()
    }

    /// `ORDER BY` items for the key.
    fn key_order(&self, alias: &str, target: bool) -> String {
        let items: Vec<String> = self
            .key
            .iter()
            .map(|k| self.key_expr(alias, k, target))
            .collect();
        items.join(", ")
    }

    /// ` WHERE ...` selecting `range`, or nothing for an open range.
    fn range_filter(&self, range: &Range, alias: &str, target: bool) -> String {
        let mut conditions = Vec::new();
        if let Some(after) = &range.after {
            conditions.push(self.compare(alias, target, ">", after));
        }
        if let Some(through) = &range.through {
            conditions.push(self.compare(alias, target, "<=", through));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The key compared with `values` as a row value.
    fn compare(&self, alias: &str, target: bool, op: &str, values: &[String]) -> String {
        let left: Vec<String> = self
            .key
            .iter()
            .map(|k| self.key_expr(alias, k, target))
            .collect();
        let right: Vec<String> = values
            .iter()
            .zip(&self.key)
            .map(|(v, k)| self.key_literal(v, k))
            .collect();
        if left.len() == 1 {
            format!("{} {op} {}", left[0], right[0])
        } else {
            format!("({}) {op} ({})", left.join(", "), right.join(", "))
        }
    }
}

impl Compared {
    /// A key value as a literal compared as [`Compared::key_expr`]
    /// compares the column.
    fn key_literal(&self, value: &str, column: &KeyColumn) -> String {
        let quoted = match self.dialect {
            Dialect::Postgres => sql::pg::literal(value),
            Dialect::Mysql => sql::mysql::literal(value),
        };
        match (self.dialect, column.text) {
            (Dialect::Postgres, true) => format!("{quoted} COLLATE \"C\""),
            (Dialect::Mysql, true) => format!("CAST({quoted} AS BINARY)"),
            _ => quoted,
        }
    }
}

/// PostgreSQL: whether a column's values, in its type's own hash, are
/// equal exactly when their printed text is. Numbers that print their
/// scale or a sign of zero (`numeric`, floats), `json` (no hash),
/// `citext` (hashes ignoring case) and every type not listed are hashed
/// as text instead. Text is assumed in a deterministic collation (the
/// default), whose hash is over the bytes.
fn hash_is_print_faithful(column: &Column) -> bool {
    let t = column
        .base_type
        .as_deref()
        .unwrap_or(&column.type_name)
        .to_ascii_lowercase();
    let base = t.split('(').next().unwrap_or(&t).trim();
    matches!(
        base,
        "smallint"
            | "integer"
            | "bigint"
            | "boolean"
            | "text"
            | "character varying"
            | "character"
            | "bytea"
            | "uuid"
            | "date"
            | "jsonb"
    ) || base.starts_with("timestamp")
        || base.starts_with("time ")
        || base == "time"
}

/// Whether a column holds JSON documents (MariaDB's JSON is LONGTEXT
/// with a check, which the catalog reports as its base type).
fn is_json(column: &Column) -> bool {
    let json = |t: &str| t.eq_ignore_ascii_case("json");
    json(&column.type_name) || column.base_type.as_deref().is_some_and(json)
}

/// Whether a type holds character strings.
fn is_text(type_name: &str) -> bool {
    let t = type_name.to_ascii_lowercase();
    t.contains("char") || t.contains("text") || t == "name" || t == "citext"
}

/// The source's and the target's value expressions for one column pair.
fn value_exprs(
    dialect: Dialect,
    source: &Column,
    target: &Column,
    source_name: &str,
    target_name: &str,
) -> (String, String) {
    let s = format!("s.{source_name}");
    let t = format!("t.{target_name}");
    let retyped = !source.type_name.eq_ignore_ascii_case(&target.type_name);
    let target_type = target.type_name.to_ascii_lowercase();
    match dialect {
        Dialect::Postgres => {
            let s = if retyped {
                format!("{s}::{}", target.type_name)
            } else {
                s
            };
            if target_type == "json" {
                (format!("({s})::jsonb"), format!("{t}::jsonb"))
            } else {
                (s, t)
            }
        }
        Dialect::Mysql => {
            let s = match mysql_cast(&target_type).filter(|_| retyped) {
                Some(to) => format!("CAST({s} AS {to})"),
                None => s,
            };
            if is_json(source) || is_json(target) {
                (
                    format!("JSON_NORMALIZE({s})"),
                    format!("JSON_NORMALIZE({t})"),
                )
            } else {
                (s, t)
            }
        }
    }
}

/// What a MySQL source value is cast to so it prints as the target's type
/// would hold it; `None` where the text is the same without a cast
/// (integers widened, strings lengthened).
fn mysql_cast(target_type: &str) -> Option<String> {
    let base = target_type.split('(').next().unwrap_or(target_type).trim();
    let args = target_type
        .find('(')
        .and_then(|i| target_type[i..].split(')').next())
        .map(|a| format!("{a})"));
    match base {
        "decimal" | "numeric" => Some(format!("DECIMAL{}", args.unwrap_or_default())),
        "double" | "float" | "real" => Some("DOUBLE".to_string()),
        "datetime" | "timestamp" => Some(format!("DATETIME{}", args.unwrap_or_default())),
        "date" => Some("DATE".to_string()),
        "time" => Some(format!("TIME{}", args.unwrap_or_default())),
        _ => None,
    }
}

#[cfg(test)]
#[path = "compared_tests.rs"]
mod tests;
