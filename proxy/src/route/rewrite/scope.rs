//! Name resolution: which FROM entry a column reference belongs to.
//!
//! Each SELECT pushes a [`Frame`] holding its FROM entries; subqueries see
//! the frames of the queries around them (correlation). The rewrite knows
//! the source's columns but nobody else's, so an unqualified name that is a
//! source column and could also belong to another visible table is
//! ambiguous: it is refused rather than guessed.
//!
//! No IO, no panics.

use sqlparser::ast::Ident;

use super::names::{fold, is_pg_system_column, is_pg_value_keyword, same_column};
use super::walk::Rewriter;
use super::Unroutable;
use crate::route::fingerprint::Dialect;

/// One FROM entry of a SELECT.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// What columns are qualified with: the alias, or the table name as
    /// written. `None` for an unaliased subquery or function.
    pub(super) binding: Option<Ident>,
    /// For an unaliased table: its schema (as resolved) and name, folded,
    /// so `schema.table.column` finds it.
    pub(super) relation: Option<(Option<String>, String)>,
    /// Whether this entry is the migration's source table.
    pub(super) source: bool,
}

/// The FROM entries of one SELECT, in FROM order.
#[derive(Clone, Debug, Default)]
pub(super) struct Frame {
    /// Entries in FROM order: `*` expands in this order.
    pub(super) entries: Vec<Entry>,
    /// Folded column names merged by `USING (...)`: an unqualified
    /// reference to one names the merged column, not one side's.
    pub(super) using: Vec<String>,
    /// Set when a join merges columns (USING, NATURAL): `*` then yields the
    /// merged columns first, an order the expansion does not reproduce.
    pub(super) merged: bool,
}

impl Frame {
    /// Whether the source is among this SELECT's FROM entries.
    pub(super) fn has_source(&self) -> bool {
        self.entries.iter().any(|e| e.source)
    }
}

/// What a column reference resolves to.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Resolved {
    /// Not a source column (another table's, an outer alias, unknown).
    Other,
    /// A source column.
    Source {
        /// The source entry's binding, for writing a qualified reference.
        binding: Option<Ident>,
        /// Index into `TableMap::columns`.
        column: usize,
    },
}

impl Rewriter<'_> {
    /// The source column a written name means, if it is one.
    pub(super) fn source_column(&self, ident: &Ident) -> Option<usize> {
        let name = fold(self.dialect, ident);
        self.map
            .columns
            .iter()
            .position(|c| same_column(self.dialect, &c.source, &name))
    }

    /// Resolves a column reference written as `parts` (`col`, `t.col`,
    /// `schema.t.col`, `db.schema.t.col`).
    pub(super) fn resolve(&self, parts: &[Ident]) -> Result<Resolved, Unroutable> {
        match parts {
            [] => Ok(Resolved::Other),
            [column] => self.resolve_bare(column),
            [qualifier @ .., column] => {
                let Some(entry) = self.find_entry(qualifier) else {
                    return Ok(Resolved::Other);
                };
                if !entry.source {
                    return Ok(Resolved::Other);
                }
                match self.source_column(column) {
                    Some(index) => Ok(Resolved::Source {
                        binding: entry.binding.clone(),
                        column: index,
                    }),
                    None if self.is_system_column(column) => Err(Unroutable::Expression),
                    // Not a source column: the server rejects it on the
                    // source path; leave it for the target to judge too.
                    None => Ok(Resolved::Other),
                }
            }
        }
    }

    /// An unqualified name: the innermost SELECT with entries decides.
    fn resolve_bare(&self, column: &Ident) -> Result<Resolved, Unroutable> {
        if self.dialect == Dialect::Postgres && is_pg_value_keyword(column) {
            return Ok(Resolved::Other);
        }
        let name = fold(self.dialect, column);
        let index = self.source_column(column);
        for (depth, frame) in self.frames.iter().enumerate().rev() {
            if frame.entries.is_empty() {
                continue;
            }
            let sources: Vec<&Entry> = frame.entries.iter().filter(|e| e.source).collect();
            let others = frame.entries.len() - sources.len();
            let Some(index) = index else {
                // `SELECT api FROM api` is the whole row on PostgreSQL.
                if sources.iter().any(|e| self.binds(e, column)) {
                    return Err(Unroutable::Expression);
                }
                if !sources.is_empty() && self.is_system_column(column) {
                    return Err(Unroutable::Expression);
                }
                if others > 0 {
                    return Ok(Resolved::Other);
                }
                continue;
            };
            if frame
                .using
                .iter()
                .any(|u| same_column(self.dialect, u, &name))
            {
                // The merged USING column; the walk refused it if renamed.
                return Ok(Resolved::Other);
            }
            return match (sources.as_slice(), others) {
                ([entry], 0) => Ok(Resolved::Source {
                    binding: entry.binding.clone(),
                    column: index,
                }),
                ([], _) if !self.frames[..depth].iter().any(Frame::has_source) => {
                    Ok(Resolved::Other)
                }
                // Another table here may have this column, or shadow an
                // outer source's: we cannot tell without its columns.
                _ => Err(Unroutable::AmbiguousColumn),
            };
        }
        Ok(Resolved::Other)
    }

    /// The visible FROM entry a qualifier (`t`, `schema.t`, `db.schema.t`)
    /// names, innermost first.
    pub(super) fn find_entry(&self, qualifier: &[Ident]) -> Option<&Entry> {
        let frames = self.frames.iter().rev();
        match qualifier {
            [] => None,
            [name] => frames
                .flat_map(|f| f.entries.iter())
                .find(|e| self.binds(e, name)),
            [.., schema, table] => {
                let schema = fold(self.dialect, schema);
                let table = fold(self.dialect, table);
                frames.flat_map(|f| f.entries.iter()).find(
                    |e| matches!(&e.relation, Some((Some(s), t)) if *s == schema && *t == table),
                )
            }
        }
    }

    /// Whether `entry` is qualified by the written name `name`.
    pub(super) fn binds(&self, entry: &Entry, name: &Ident) -> bool {
        entry
            .binding
            .as_ref()
            .is_some_and(|b| fold(self.dialect, b) == fold(self.dialect, name))
    }

    fn is_system_column(&self, column: &Ident) -> bool {
        self.dialect == Dialect::Postgres && is_pg_system_column(&fold(self.dialect, column))
    }
}
