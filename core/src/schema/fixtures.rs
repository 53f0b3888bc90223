//! Test fixtures shared by the crate's table-driven tests: tables and
//! column pairs written as short literals.

use super::{Column, ColumnPair, TableSchema};

/// A table from (name, type, key) triples.
pub(crate) fn table(schema: &str, name: &str, columns: &[(&str, &str, bool)]) -> TableSchema {
    TableSchema {
        name: format!("{schema}.{name}"),
        schema: schema.to_string(),
        table: name.to_string(),
        oid: 0,
        triggers: Vec::new(),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, (name, type_name, key))| Column {
                name: name.to_string(),
                type_name: type_name.to_string(),
                base_type: None,
                type_oid: 0,
                typmod: -1,
                nullable: !key,
                position: i as i16 + 1,
                key: *key,
            })
            .collect(),
    }
}

/// A source column and the target column it maps to, same type.
pub(crate) fn pair(source: &str, target: &str) -> ColumnPair {
    ColumnPair {
        source: source.to_string(),
        target: target.to_string(),
        cast: None,
    }
}
