//! The flat pass over expressions: sqlparser's `VisitorMut` visits every
//! expression of a clause, and each column reference is resolved in the
//! walk's current scope and renamed when it is a source column.
//!
//! A subquery inside an expression opens a new scope: the pass hands it to
//! the scope-aware walk (`pre_visit_query`) and ignores the expressions the
//! visitor then descends into, which the walk has already rewritten.
//!
//! No IO, no panics.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectNamePart, Query, VisitorMut,
};

use super::names::{fold, ident_for, same_column};
use super::scope::Resolved;
use super::walk::Rewriter;
use super::Unroutable;

/// One pass over the expressions of one clause.
pub(super) struct ExprPass<'r, 'm> {
    /// The walk, for scopes and for subqueries.
    rewriter: &'r mut Rewriter<'m>,
    /// Depth inside subqueries the walk has already rewritten.
    nested: usize,
    /// Folded aliases that shadow a source column of the same name here
    /// (MySQL's HAVING): a bare reference to one is ambiguous.
    shadowed: &'r [String],
}

impl<'r, 'm> ExprPass<'r, 'm> {
    pub(super) fn new(rewriter: &'r mut Rewriter<'m>) -> ExprPass<'r, 'm> {
        ExprPass {
            rewriter,
            nested: 0,
            shadowed: &[],
        }
    }

    pub(super) fn with_shadowed(mut self, shadowed: &'r [String]) -> ExprPass<'r, 'm> {
        self.shadowed = shadowed;
        self
    }
}

impl VisitorMut for ExprPass<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if self.nested == 0 {
            self.rewriter.query(query, false);
        }
        self.nested += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.nested -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.nested == 0 {
            self.rewriter.column_expr(expr, self.shadowed);
        }
        ControlFlow::Continue(())
    }
}

/// The parts of a bare column reference (`col`, `t.col`, ...).
pub(super) fn bare_parts(expr: &Expr) -> Option<&[Ident]> {
    match expr {
        Expr::Identifier(ident) => Some(std::slice::from_ref(ident)),
        Expr::CompoundIdentifier(parts) => Some(parts),
        _ => None,
    }
}

impl Rewriter<'_> {
    /// Rewrites `expr` if it is a reference to a source column; refuses
    /// the forms that use the table other than column by column.
    pub(super) fn column_expr(&mut self, expr: &mut Expr, shadowed: &[String]) {
        match expr {
            Expr::Identifier(ident) => {
                let name = fold(self.dialect, ident);
                if shadowed.iter().any(|s| same_column(self.dialect, s, &name)) {
                    self.fail(Unroutable::AmbiguousColumn);
                    return;
                }
                self.column_ref(expr);
            }
            Expr::CompoundIdentifier(_) => self.column_ref(expr),
            Expr::Function(function) => {
                let name = function.name.to_string().to_ascii_lowercase();
                let takes_table =
                    name.starts_with("pg_") || name.starts_with("has_") || name == "to_regclass";
                let FunctionArguments::List(list) = &function.args else {
                    return;
                };
                for arg in &list.args {
                    let (FunctionArg::Named { arg, .. }
                    | FunctionArg::ExprNamed { arg, .. }
                    | FunctionArg::Unnamed(arg)) = arg;
                    match arg {
                        FunctionArgExpr::QualifiedWildcard(name) => {
                            let parts: Vec<Ident> = name
                                .0
                                .iter()
                                .filter_map(|p| match p {
                                    ObjectNamePart::Identifier(i) => Some(i.clone()),
                                    ObjectNamePart::Function(_) => None,
                                })
                                .collect();
                            if self.find_entry(&parts).is_some_and(|e| e.source) {
                                self.fail(Unroutable::Expression);
                            }
                        }
                        FunctionArgExpr::Expr(Expr::Value(v))
                            if takes_table && self.names_source_text(&v.value) =>
                        {
                            self.touched = true;
                            self.fail(Unroutable::Expression);
                        }
                        _ => {}
                    }
                }
            }
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                let regclass = data_type.to_string().eq_ignore_ascii_case("regclass");
                if let (true, Expr::Value(v)) = (regclass, &**inner) {
                    if self.names_source_text(&v.value) {
                        self.touched = true;
                        self.fail(Unroutable::Expression);
                    }
                }
            }
            Expr::QualifiedWildcard(name, _) => {
                let parts: Vec<Ident> = name
                    .0
                    .iter()
                    .filter_map(|p| match p {
                        ObjectNamePart::Identifier(i) => Some(i.clone()),
                        ObjectNamePart::Function(_) => None,
                    })
                    .collect();
                if self.find_entry(&parts).is_some_and(|e| e.source) {
                    self.fail(Unroutable::Expression);
                }
            }
            Expr::MatchAgainst { columns, .. } => {
                // MATCH's columns are names, not expressions, and must
                // match a full-text index: not rewritten.
                for column in columns.iter() {
                    let parts: Vec<Ident> = column
                        .0
                        .iter()
                        .filter_map(|p| match p {
                            ObjectNamePart::Identifier(i) => Some(i.clone()),
                            ObjectNamePart::Function(_) => None,
                        })
                        .collect();
                    if !matches!(self.resolve(&parts), Ok(Resolved::Other)) {
                        self.fail(Unroutable::Expression);
                    }
                }
            }
            _ => {}
        }
    }

    /// Renames a column reference that resolves to the source.
    fn column_ref(&mut self, expr: &mut Expr) {
        let Some(parts) = bare_parts(expr) else {
            return;
        };
        let (binding, index) = match self.resolve(parts) {
            Ok(Resolved::Source { binding, column }) => (binding, column),
            Ok(Resolved::Other) => return,
            Err(reason) => {
                self.fail(reason);
                return;
            }
        };
        let column = &self.map.columns[index];
        let Some(last) = parts.last() else { return };
        // Unrenamed columns keep the user's spelling and quoting.
        let name = if same_column(self.dialect, &column.source, &column.target) {
            last.clone()
        } else {
            ident_for(self.dialect, &column.target)
        };
        *expr = match parts {
            [_] => Expr::Identifier(name),
            [qualifier, _] => Expr::CompoundIdentifier(vec![qualifier.clone(), name]),
            // `schema.table.col`: the table now has an alias, which is
            // the only name that qualifies its columns.
            [.., table, _] => {
                let qualifier = binding.unwrap_or_else(|| table.clone());
                Expr::CompoundIdentifier(vec![qualifier, name])
            }
            [] => return,
        };
    }
}
