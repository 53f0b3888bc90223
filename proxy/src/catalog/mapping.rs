//! A migration's column mapping checked against the live schemas of its
//! two tables: pure types and checks, no IO.

/// One table's columns as the server describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// PostgreSQL: the table's OID (RowDescription names it); MySQL: 0.
    pub oid: u32,
    /// Every column, in the table's column order.
    pub columns: Vec<Column>,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Name as stored in the catalog.
    pub name: String,
    /// The type as SQL writes it (`integer`, `character varying(64)`,
    /// `bigint unsigned`), used in casts and messages.
    pub type_name: String,
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
