//! The write switch's rewriter: from the write switch on the target takes
//! the writes, so a client's INSERT, UPDATE or DELETE of the source becomes
//! the same write of the target — the table renamed, every column the
//! statement names (its column list, SET targets, conflict target,
//! predicates, `RETURNING`) renamed through the mapping, and `RETURNING`
//! aliased (PostgreSQL: and cast) back, so the client gets the rows it
//! would have got from the source.
//!
//! What it cannot rewrite with certainty it refuses, and the caller refuses
//! the write: a write must never land in a table no one reads. Refused:
//! a conflict target named by constraint (the source's constraint names),
//! MySQL's multi-table UPDATE and DELETE, INSERT row aliases, a column
//! list left out where the number of values is not known, data-modifying
//! CTEs that write the source.
//!
//! No IO, no panics.

use sqlparser::ast::{
    self, AssignmentTarget, ConflictTarget, Delete, FromTable, Ident, Insert, ObjectName,
    ObjectNamePart, OnConflictAction, OnInsert, SelectItem, SetExpr, TableAliasWithoutColumns,
    TableFactor, TableObject, Update, UpdateTableFromKind,
};

use super::names::ident_for;
use super::scope::{Entry, Frame, Resolved};
use super::walk::{last_ident, RelationKind, Rewriter};
use super::Unroutable;
use crate::route::fingerprint::Dialect;

impl Rewriter<'_> {
    /// One statement of a write text.
    pub(super) fn write(&mut self, statement: &mut ast::Statement) {
        use ast::Statement as S;
        match statement {
            S::Insert(insert) => self.insert(insert),
            S::Update(update) => self.update(update),
            S::Delete(delete) => self.delete(delete),
            S::Query(_) => self.statement(statement),
            other => {
                if self.names_source(other) {
                    self.touched = true;
                    self.fail(Unroutable::Expression);
                }
            }
        }
    }

    fn insert(&mut self, insert: &mut Insert) {
        let TableObject::TableName(name) = &mut insert.table else {
            return self.other_write(insert);
        };
        match self.relation_kind(name, false) {
            RelationKind::Other => return self.reads_only(insert),
            RelationKind::Unknown => {
                self.touched = true;
                return self.fail(Unroutable::UnknownSchema);
            }
            RelationKind::Source => {}
        }
        self.touched = true;
        let written = last_ident(name);
        *name = self.target_name(name);
        // PostgreSQL names the written table by an alias, so references
        // written with the source's name keep working; MariaDB has none.
        if self.dialect == Dialect::Postgres && insert.table_alias.is_none() {
            insert.table_alias = Some(TableAliasWithoutColumns {
                explicit: true,
                alias: written.clone(),
            });
        }
        let bound = insert
            .table_alias
            .as_ref()
            .map_or(written, |a| a.alias.clone());
        if insert.insert_alias.is_some() || !insert.after_columns.is_empty() {
            self.fail(Unroutable::Expression);
        }
        if insert.columns.is_empty() && insert.assignments.is_empty() {
            self.implicit_columns(insert);
        }
        for column in &mut insert.columns {
            self.rename_column(column);
        }
        if let Some(source) = &mut insert.source {
            self.query(source, false);
        }
        let table = Frame {
            entries: vec![source_entry(bound)],
            ..Frame::default()
        };
        if !insert.assignments.is_empty() {
            self.frames.push(table.clone());
            self.assignments(&mut insert.assignments);
            self.frames.pop();
        }
        match &mut insert.on {
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                if self.dialect == Dialect::Mysql && qualifies(&*assignments) {
                    // Without an alias a qualified name would keep the
                    // source's table name.
                    self.fail(Unroutable::Expression);
                }
                self.frames.push(table.clone());
                self.assignments(assignments);
                self.frames.pop();
            }
            Some(OnInsert::OnConflict(conflict)) => {
                match &mut conflict.conflict_target {
                    Some(ConflictTarget::Columns(columns)) => {
                        for column in columns {
                            self.rename_ident(column);
                        }
                    }
                    Some(ConflictTarget::OnConstraint(_)) => self.fail(Unroutable::Expression),
                    None => {}
                }
                if let OnConflictAction::DoUpdate(update) = &mut conflict.action {
                    // The existing row is the innermost scope (unqualified
                    // names are its columns); EXCLUDED is the proposed row.
                    self.frames.push(Frame {
                        entries: vec![source_entry(Ident::new("excluded"))],
                        ..Frame::default()
                    });
                    self.frames.push(table.clone());
                    self.assignments(&mut update.assignments);
                    if let Some(selection) = &mut update.selection {
                        self.expr(selection);
                    }
                    self.frames.pop();
                    self.frames.pop();
                }
            }
            _ => {}
        }
        if let Some(items) = &mut insert.returning {
            self.frames.push(table);
            self.returning(items);
            self.frames.pop();
        }
    }

    /// An INSERT without a column list fills the first columns in the
    /// source's order: the list is written out, as the target's names.
    fn implicit_columns(&mut self, insert: &mut Insert) {
        let Some(source) = &insert.source else {
            // DEFAULT VALUES: nothing to name.
            return;
        };
        let width = match &*source.body {
            SetExpr::Values(values) => {
                let first = values.rows.first().map_or(0, |r| r.len());
                values
                    .rows
                    .iter()
                    .all(|r| r.len() == first)
                    .then_some(first)
            }
            SetExpr::Select(select) => select
                .projection
                .iter()
                .all(|i| {
                    matches!(
                        i,
                        SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                    )
                })
                .then_some(select.projection.len()),
            _ => None,
        };
        match width {
            Some(n) if n <= self.map.columns.len() => {
                insert.columns = self.map.columns[..n]
                    .iter()
                    .map(|c| ObjectName::from(vec![ident_for(self.dialect, &c.source)]))
                    .collect();
            }
            _ => self.fail(Unroutable::Expression),
        }
    }

    fn update(&mut self, update: &mut Update) {
        if !update.table.joins.is_empty() {
            // MySQL's multi-table UPDATE: which table a SET writes is
            // decided by name, and the write must stay where it is.
            if self.names_source(&update.table) {
                self.touched = true;
                self.fail(Unroutable::Expression);
            }
            return;
        }
        let mut frame = self.from(std::slice::from_mut(&mut update.table));
        if !frame.has_source() {
            return self.reads_only(update);
        }
        match &mut update.from {
            Some(UpdateTableFromKind::AfterSet(from) | UpdateTableFromKind::BeforeSet(from)) => {
                frame.entries.extend(self.from(from).entries);
            }
            None => {}
        }
        self.frames.push(frame);
        self.assignments(&mut update.assignments);
        if let Some(selection) = &mut update.selection {
            self.expr(selection);
        }
        for order in &mut update.order_by {
            self.expr(&mut order.expr);
        }
        if let Some(limit) = &mut update.limit {
            self.expr(limit);
        }
        if let Some(items) = &mut update.returning {
            self.returning(items);
        }
        self.frames.pop();
    }

    fn delete(&mut self, delete: &mut Delete) {
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &mut delete.from;
        if !delete.tables.is_empty() || from.len() != 1 || !from[0].joins.is_empty() {
            // MySQL's multi-table DELETE names the tables it deletes from
            // by alias.
            if self.names_source(&*delete) {
                self.touched = true;
                self.fail(Unroutable::Expression);
            }
            return;
        }
        let aliased = matches!(&from[0].relation, TableFactor::Table { alias: Some(_), .. });
        let mut frame = self.from(from);
        if !frame.has_source() {
            return self.reads_only(delete);
        }
        if self.dialect == Dialect::Mysql && !aliased {
            // MariaDB takes no alias in a single-table DELETE, so the table
            // keeps its new name bare, and a reference qualified by the old
            // one would be left dangling.
            if let TableFactor::Table { alias, .. } = &mut from[0].relation {
                *alias = None;
            }
            if qualifies_any(&delete.selection) || qualifies_any(&delete.order_by) {
                self.fail(Unroutable::Expression);
            }
        }
        if let Some(using) = &mut delete.using {
            frame.entries.extend(self.from(using).entries);
        }
        self.frames.push(frame);
        if let Some(selection) = &mut delete.selection {
            self.expr(selection);
        }
        for order in &mut delete.order_by {
            self.expr(&mut order.expr);
        }
        if let Some(limit) = &mut delete.limit {
            self.expr(limit);
        }
        if let Some(items) = &mut delete.returning {
            self.returning(items);
        }
        self.frames.pop();
    }

    /// A write of another table: the write stays where it is, and a read
    /// of the source inside it cannot be moved with certainty.
    fn reads_only<V: ast::Visit>(&mut self, write: &V) {
        if self.names_source(write) {
            self.touched = true;
            self.fail(Unroutable::Writes);
        }
    }

    fn other_write<V: ast::Visit>(&mut self, write: &V) {
        if self.names_source(write) {
            self.touched = true;
            self.fail(Unroutable::Expression);
        }
    }

    /// SET items: each target renamed when it is a source column, each
    /// value rewritten in the current scope.
    fn assignments(&mut self, assignments: &mut [ast::Assignment]) {
        for assignment in assignments {
            match &mut assignment.target {
                AssignmentTarget::ColumnName(name) => self.rename_target(name),
                AssignmentTarget::Tuple(names) => {
                    names.iter_mut().for_each(|n| self.rename_target(n))
                }
            }
            self.expr(&mut assignment.value);
        }
    }

    /// A SET target: a bare name is a column of the written table
    /// (whatever else FROM brings); `t.col` is resolved in the scope.
    fn rename_target(&mut self, name: &mut ObjectName) {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_mut_slice() {
            return self.rename_ident(ident);
        }
        let parts: Vec<Ident> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().cloned())
            .collect();
        match self.resolve(&parts) {
            Ok(Resolved::Source { column, .. }) => {
                let target = ident_for(self.dialect, &self.map.columns[column].target);
                if let Some(last) = name.0.last_mut() {
                    *last = ObjectNamePart::Identifier(target);
                }
            }
            Ok(Resolved::Other) => {}
            Err(reason) => self.fail(reason),
        }
    }

    /// A name in the INSERT's column list.
    fn rename_column(&mut self, name: &mut ObjectName) {
        if let Some(ObjectNamePart::Identifier(ident)) = name.0.last_mut() {
            self.rename_ident(ident);
        }
    }

    /// A bare name that can only be a column of the written table.
    fn rename_ident(&mut self, ident: &mut Ident) {
        if let Some(index) = self.source_column(ident) {
            let column = &self.map.columns[index];
            if !super::names::same_column(self.dialect, &column.source, &column.target) {
                *ident = ident_for(self.dialect, &column.target);
            }
        }
    }
}

/// The written table's scope entry.
fn source_entry(binding: Ident) -> Entry {
    Entry {
        binding: Some(binding),
        relation: None,
        source: true,
    }
}

/// Whether `node` holds a qualified column reference.
fn qualifies_any<V: ast::Visit>(node: &V) -> bool {
    ast::visit_expressions(node, |e| match e {
        ast::Expr::CompoundIdentifier(_) => std::ops::ControlFlow::Break(()),
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

/// Whether an assignment list holds a qualified column reference.
fn qualifies(assignments: &Vec<ast::Assignment>) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(assignments, |e| {
        found |= matches!(e, ast::Expr::CompoundIdentifier(_));
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
        || assignments.iter().any(|a| match &a.target {
            AssignmentTarget::ColumnName(n) => n.0.len() > 1,
            AssignmentTarget::Tuple(ns) => ns.iter().any(|n| n.0.len() > 1),
        })
}
