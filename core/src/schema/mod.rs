//! A migration's column mapping checked against the live schemas of its
//! two tables: pure types and checks, no IO.
//!
//! [`check`] must never accept a mapping that could route a read to a
//! target that cannot answer it as the source would: a missing column, a
//! lossy or session-dependent retype, an unmapped key. Refusing costs
//! nothing but keeping reads on the source.

use crate::config::Migration;

pub mod types;

use types::Fit;

/// One table's columns as the server describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The table as messages name it (`public.api`, `app.api`).
    pub name: String,
    /// PostgreSQL: the table's schema; MySQL: its database. Generated
    /// SQL quotes it apart from `table`, since `name` cannot be split back
    /// when either part holds a dot.
    pub schema: String,
    /// The table's own name, as the catalog stores it.
    pub table: String,
    /// PostgreSQL: the table's OID (RowDescription names it); MySQL: 0.
    pub oid: u32,
    /// Every column, in the table's column order.
    pub columns: Vec<Column>,
    /// MySQL: the names of the table's triggers, so the dual write can
    /// tell whether a migration's guard is installed (it learns written
    /// keys from it); empty on PostgreSQL, where it does not need to.
    pub triggers: Vec<String>,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name as stored in the catalog.
    pub name: String,
    /// The type as SQL writes it (`integer`, `character varying(64)`,
    /// `bigint unsigned`), used in casts and messages.
    pub type_name: String,
    /// PostgreSQL: the base type of a domain (`format_type` of
    /// `typbasetype`), compared instead of the domain's name, so a domain
    /// over `text` fits a `text` column; `None` for every other type.
    pub base_type: Option<String>,
    /// PostgreSQL: the type OID; MySQL: 0.
    pub type_oid: u32,
    /// PostgreSQL: the type modifier (`atttypmod`); MySQL: -1.
    pub typmod: i32,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// 1-based position (PostgreSQL `attnum`, MySQL `ORDINAL_POSITION`).
    pub position: i16,
    /// Part of the primary key.
    pub key: bool,
}

/// A migration's mapping, checked: every source column with its target
/// column, in the source's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The source table's schema.
    pub source: TableSchema,
    /// The target table's schema.
    pub target: TableSchema,
    /// Source column → target column, for every source column, in the
    /// source's order.
    pub columns: Vec<ColumnPair>,
}

/// One source column and the target column it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnPair {
    /// The source column's name.
    pub source: String,
    /// The target column's name.
    pub target: String,
    /// The source's type when the target's differs, so a read of the
    /// target can be cast back to what clients expect; `None` when equal.
    pub cast: Option<String>,
}

impl TableSchema {
    /// The column with this name: the exact name, else the only one equal
    /// ignoring ASCII case (MySQL column names are case-insensitive, and a
    /// file written `ID` still means `id`).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            let mut alike = self
                .columns
                .iter()
                .filter(|c| c.name.eq_ignore_ascii_case(name));
            match (alike.next(), alike.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
    }

    /// The column names, comma-separated, for messages.
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        names.join(", ")
    }
}

impl Column {
    /// The type compatibility is judged on: a domain's base type, else
    /// the column's own.
    fn compared_type(&self) -> &str {
        self.base_type.as_deref().unwrap_or(&self.type_name)
    }
}

/// Why a migration's mapping does not fit its live tables. Each message
/// names the migration, the column and the fix, and lists the columns
/// that exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A `source.primary_key` column is not in the source table.
    #[error("migration `{migration}`: primary-key column `{column}` is not in `{table}`; columns are: {columns}; correct `source.primary_key`")]
    KeyNotInSource {
        migration: String,
        column: String,
        table: String,
        columns: String,
    },
    /// A `columns:` entry names a source column that does not exist.
    #[error("migration `{migration}`: `columns` maps `{column}`, which is not in `{table}`; columns are: {columns}; correct or remove that entry")]
    MappedNotInSource {
        migration: String,
        column: String,
        table: String,
        columns: String,
    },
    /// A key column's target column does not exist.
    #[error("migration `{migration}`: primary-key column `{column}` maps to `{target}`, which is not in `{table}`; columns are: {columns}; add it to the target or map the key in `columns`")]
    KeyNotInTarget {
        migration: String,
        column: String,
        target: String,
        table: String,
        columns: String,
    },
    /// A `columns:` entry names a target column that does not exist.
    #[error("migration `{migration}`: `columns` maps `{column}` to `{target}`, which is not in `{table}`; columns are: {columns}; correct the entry or add the column to the target")]
    MappedNotInTarget {
        migration: String,
        column: String,
        target: String,
        table: String,
        columns: String,
    },
    /// A source column is not mapped and the target has no column of its
    /// name.
    #[error("migration `{migration}`: column `{column}` of `{source_table}` is not in `{table}` and `columns` does not map it; columns are: {columns}; add it to the target or map it with `{column}: <target column>`")]
    UnmappedNotInTarget {
        migration: String,
        column: String,
        source_table: String,
        table: String,
        columns: String,
    },
    /// The target column's type cannot hold the source column's values.
    #[error("migration `{migration}`: column `{}` is `{}` but target column `{}` is `{}`: {reason}; give the target column a type that holds every source value", .retype.column, .retype.source_type, .retype.target, .retype.target_type)]
    Incompatible {
        migration: String,
        retype: Box<Retype>,
        reason: String,
    },
    /// A timestamp retype whose result depends on each session's time
    /// zone, and the migration pins none.
    #[error("migration `{migration}`: column `{}` is `{}` but target column `{}` is `{}`, a conversion that depends on each session's time zone; pin one with `time_zone: UTC` (or your zone) in the migration, or give both columns the same type", .retype.column, .retype.source_type, .retype.target, .retype.target_type)]
    NeedsTimeZone {
        migration: String,
        retype: Box<Retype>,
    },
}

/// A source column and the target column of another type it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retype {
    /// The source column.
    pub column: String,
    /// Its type.
    pub source_type: String,
    /// The target column.
    pub target: String,
    /// Its type.
    pub target_type: String,
}

/// Checks a migration's mapping against the live source and target
/// tables and pairs every source column, in the source's order, with its
/// target column: the one `migration.columns` names, else the one of the
/// same name. Reports the first problem found: keys first, then the
/// `columns:` entries, then each source column in order.
pub fn check(
    migration: &Migration,
    source: TableSchema,
    target: TableSchema,
) -> Result<Mapping, MappingError> {
    let id = &migration.id;
    for key in &migration.source.primary_key {
        if source.column(key).is_none() {
            return Err(MappingError::KeyNotInSource {
                migration: id.clone(),
                column: key.clone(),
                table: source.name.clone(),
                columns: source.column_list(),
            });
        }
    }
    for mapped in migration.columns.keys() {
        if source.column(mapped).is_none() {
            return Err(MappingError::MappedNotInSource {
                migration: id.clone(),
                column: mapped.clone(),
                table: source.name.clone(),
                columns: source.column_list(),
            });
        }
    }
    let columns = source
        .columns
        .iter()
        .map(|column| pair(migration, &source, &target, column))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Mapping {
        source,
        target,
        columns,
    })
}

/// One source column's pair, or why it has none.
fn pair(
    migration: &Migration,
    source: &TableSchema,
    target: &TableSchema,
    column: &Column,
) -> Result<ColumnPair, MappingError> {
    let id = &migration.id;
    let mapped = mapped_name(migration, &column.name);
    let wanted = mapped.unwrap_or(&column.name);
    let is_key = migration
        .source
        .primary_key
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&column.name));
    let Some(to) = target.column(wanted) else {
        let (migration, table, columns) = (id.clone(), target.name.clone(), target.column_list());
        return Err(match (is_key, mapped) {
            (true, _) => MappingError::KeyNotInTarget {
                migration,
                column: column.name.clone(),
                target: wanted.to_string(),
                table,
                columns,
            },
            (false, Some(_)) => MappingError::MappedNotInTarget {
                migration,
                column: column.name.clone(),
                target: wanted.to_string(),
                table,
                columns,
            },
            (false, None) => MappingError::UnmappedNotInTarget {
                migration,
                column: column.name.clone(),
                source_table: source.name.clone(),
                table,
                columns,
            },
        });
    };
    let retype = || {
        Box::new(Retype {
            column: column.name.clone(),
            source_type: column.type_name.clone(),
            target: to.name.clone(),
            target_type: to.type_name.clone(),
        })
    };
    match types::fit(column.compared_type(), to.compared_type()) {
        Fit::Yes => {}
        Fit::NeedsTimeZone if migration.time_zone.is_some() => {}
        Fit::NeedsTimeZone => {
            return Err(MappingError::NeedsTimeZone {
                migration: id.clone(),
                retype: retype(),
            })
        }
        Fit::No(reason) => {
            return Err(MappingError::Incompatible {
                migration: id.clone(),
                retype: retype(),
                reason,
            })
        }
    }
    Ok(ColumnPair {
        source: column.name.clone(),
        target: to.name.clone(),
        cast: (to.type_name != column.type_name).then(|| column.type_name.clone()),
    })
}

/// The target name `columns:` gives a source column, matched the way
/// [`TableSchema::column`] matches (exact, else ignoring ASCII case).
fn mapped_name<'a>(migration: &'a Migration, column: &str) -> Option<&'a str> {
    migration
        .columns
        .get(column)
        .or_else(|| {
            migration
                .columns
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(column))
                .map(|(_, v)| v)
        })
        .map(String::as_str)
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
