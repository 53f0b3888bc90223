//! One SELECT: its FROM scope, `*` expansion, the select list aliased back
//! to the source's names (and, on PostgreSQL, cast back to its types), and
//! the clauses whose bare names may mean output columns (ORDER BY, GROUP
//! BY, MySQL's HAVING).
//!
//! No IO, no panics.

use sqlparser::ast::{
    CastKind, Distinct, Expr, GroupByExpr, Ident, NamedWindowExpr, ObjectName, ObjectNamePart,
    OrderBy, OrderByKind, Select, SelectItem, SelectItemQualifiedWildcardKind, VisitMut,
    WildcardAdditionalOptions,
};

use super::exprs::{bare_parts, ExprPass};
use super::names::{fold, ident_for, same_column};
use super::scope::{Frame, Resolved};
use super::walk::Rewriter;
use super::Unroutable;
use crate::route::fingerprint::Dialect;

/// What the client sees of one select-list item.
struct Output {
    /// The output column's name (folded), when the rewrite can tell it: an
    /// alias, or the column name of a bare reference.
    name: Option<String>,
    /// Whether the name is an alias the client wrote.
    user_alias: bool,
    /// The source column a bare reference reads.
    source: Option<SourceRef>,
}

/// A select-list item that is a bare reference to a source column.
struct SourceRef {
    /// Index into `TableMap::columns`.
    column: usize,
    /// The source entry's binding, to qualify a reference to it.
    binding: Option<Ident>,
    /// The column name as written: MySQL names the output column so.
    written: Ident,
}

impl Rewriter<'_> {
    /// Rewrites a SELECT; `order_by` is its query's ORDER BY, which may
    /// name its output columns. `outermost` selects reach the client, so
    /// only their items are cast back to the source's types.
    pub(super) fn select(
        &mut self,
        select: &mut Select,
        order_by: Option<&mut OrderBy>,
        outermost: bool,
    ) {
        if select.into.is_some() {
            // PostgreSQL creates a table; MySQL sets variables or writes a
            // file on the server.
            self.fail(Unroutable::Writes);
        }
        let frame = self.from(&mut select.from);
        let has_source = frame.has_source();
        self.frames.push(frame);
        if has_source {
            if has_exotic_clauses(select) {
                self.fail(Unroutable::Expression);
            }
            self.sticky_key(select.selection.as_ref());
        }
        self.expand_wildcards(&mut select.projection);
        let outputs: Vec<Output> = select.projection.iter().map(|i| self.output(i)).collect();
        for (item, output) in select.projection.iter_mut().zip(&outputs) {
            self.select_item(item, output, outermost);
        }
        if let Some(Distinct::On(exprs)) = &mut select.distinct {
            // PostgreSQL reads DISTINCT ON names as it reads ORDER BY's:
            // output columns first.
            for e in exprs {
                if !self.names_output(e, &outputs) {
                    self.expr(e);
                }
            }
        }
        if let Some(selection) = &mut select.selection {
            self.expr(selection);
        }
        if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
            for e in exprs {
                self.group_by_expr(e, &outputs);
            }
        }
        if let Some(having) = &mut select.having {
            // MySQL's HAVING may name select-list aliases, PostgreSQL's not.
            let shadowed = match self.dialect {
                Dialect::Mysql => self.shadowing_aliases(&outputs),
                Dialect::Postgres => Vec::new(),
            };
            let mut pass = ExprPass::new(self).with_shadowed(&shadowed);
            let _ = having.visit(&mut pass);
        }
        if let Some(qualify) = &mut select.qualify {
            self.expr(qualify);
        }
        for window in &mut select.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &mut window.1 {
                let mut pass = ExprPass::new(self);
                let _ = spec.visit(&mut pass);
            }
        }
        if let Some(order_by) = order_by {
            // DISTINCT needs the sort keys in the select list, DISTINCT ON
            // its keys first in ORDER BY: the sort keys stay as written.
            let distinct = matches!(select.distinct, Some(Distinct::Distinct | Distinct::On(_)));
            self.order_by(order_by, &outputs, distinct, outermost);
        }
        self.frames.pop();
    }

    /// A write's `RETURNING` list, in the scope of the written table: it
    /// reaches the client as an outermost select list does, so `*` is
    /// expanded and items are aliased (and cast) back to the source's.
    pub(super) fn returning(&mut self, items: &mut Vec<SelectItem>) {
        self.expand_wildcards(items);
        let outputs: Vec<Output> = items.iter().map(|i| self.output(i)).collect();
        for (item, output) in items.iter_mut().zip(&outputs) {
            self.select_item(item, output, true);
        }
    }

    /// Replaces `*` and `source.*` by the source's columns in its order;
    /// with several FROM entries, the others stay as `other.*`.
    fn expand_wildcards(&mut self, projection: &mut Vec<SelectItem>) {
        let Some(frame) = self.frames.last().cloned() else {
            return;
        };
        let needs = projection.iter().any(|item| match item {
            SelectItem::Wildcard(_) => frame.has_source(),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(_), _) => {
                true
            }
            _ => false,
        });
        if !needs {
            return;
        }
        let mut expanded = Vec::with_capacity(projection.len() + self.map.columns.len());
        for item in projection.drain(..) {
            match item {
                SelectItem::Wildcard(options) if frame.has_source() => {
                    if !is_plain(&options) || frame.merged {
                        self.fail(Unroutable::Expression);
                        expanded.push(SelectItem::Wildcard(options));
                        continue;
                    }
                    self.expand_star(&frame, &mut expanded);
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    options,
                ) => {
                    let parts = idents(&name);
                    match self.find_entry(&parts).filter(|e| e.source).cloned() {
                        Some(entry) => {
                            if !is_plain(&options) {
                                self.fail(Unroutable::Expression);
                            }
                            self.push_columns(entry.binding.as_ref(), &mut expanded);
                        }
                        None => expanded.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(name),
                            options,
                        )),
                    }
                }
                other => expanded.push(other),
            }
        }
        *projection = expanded;
    }

    /// `*` over a FROM that holds the source: entries in FROM order.
    fn expand_star(&mut self, frame: &Frame, out: &mut Vec<SelectItem>) {
        let single = frame.entries.len() == 1;
        for entry in &frame.entries {
            match (&entry.binding, entry.source) {
                (binding, true) => {
                    self.push_columns(binding.as_ref().filter(|_| !single), out);
                }
                (Some(binding), false) => out.push(SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                        binding.clone()
                    ])),
                    WildcardAdditionalOptions::default(),
                )),
                // An unaliased subquery's columns cannot be named.
                (None, false) => self.fail(Unroutable::Expression),
            }
        }
    }

    /// The source's columns, by their source names (the normal rewrite
    /// renames them next), qualified when `binding` is given.
    fn push_columns(&self, binding: Option<&Ident>, out: &mut Vec<SelectItem>) {
        for column in &self.map.columns {
            let name = ident_for(self.dialect, &column.source);
            out.push(SelectItem::UnnamedExpr(match binding {
                Some(b) => Expr::CompoundIdentifier(vec![b.clone(), name]),
                None => Expr::Identifier(name),
            }));
        }
    }

    /// What the client sees of an item, judged before rewriting.
    fn output(&self, item: &SelectItem) -> Output {
        let source_ref = |expr: &Expr| {
            let parts = bare_parts(expr)?;
            match self.resolve(parts) {
                Ok(Resolved::Source { binding, column }) => Some(SourceRef {
                    column,
                    binding,
                    written: parts.last()?.clone(),
                }),
                _ => None,
            }
        };
        match item {
            SelectItem::UnnamedExpr(expr) => Output {
                name: bare_parts(expr)
                    .and_then(|p| p.last())
                    .map(|i| fold(self.dialect, i)),
                user_alias: false,
                source: source_ref(expr),
            },
            SelectItem::ExprWithAlias { expr, alias } => Output {
                name: Some(fold(self.dialect, alias)),
                user_alias: true,
                source: source_ref(expr),
            },
            _ => Output {
                name: None,
                user_alias: false,
                source: None,
            },
        }
    }

    /// Whether a bare reference to `column` in an outermost select list is
    /// cast back to the source's type.
    fn casts(&self, column: usize, outermost: bool) -> bool {
        outermost && self.casts.get(column).is_some_and(Option::is_some)
    }

    fn select_item(&mut self, item: &mut SelectItem, output: &Output, outermost: bool) {
        let expr = match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. } => e,
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => e,
            _ => return,
        };
        self.expr(expr);
        let Some(source) = &output.source else {
            return;
        };
        let column = &self.map.columns[source.column];
        let renamed = !same_column(self.dialect, &column.source, &column.target);
        if self.casts(source.column, outermost) {
            if let Some(Some(data_type)) = self.casts.get(source.column) {
                *expr = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(expr.clone()),
                    data_type: data_type.clone(),
                    format: None,
                };
            }
        } else if !renamed {
            return;
        }
        if let SelectItem::UnnamedExpr(expr) = item {
            // The client sees the name it would have seen from the source:
            // PostgreSQL's folded column name, MySQL's name as written.
            let alias = match self.dialect {
                Dialect::Postgres => ident_for(self.dialect, &column.source),
                Dialect::Mysql => source.written.clone(),
            };
            *item = SelectItem::ExprWithAlias {
                expr: expr.clone(),
                alias,
            };
        }
    }

    /// A GROUP BY item. A bare name is an input column first on
    /// PostgreSQL; MySQL may take a select-list alias, so a name that is
    /// both an alias and a source column is refused there.
    fn group_by_expr(&mut self, expr: &mut Expr, outputs: &[Output]) {
        if let (Dialect::Mysql, Expr::Identifier(ident)) = (self.dialect, &*expr) {
            let shadowed = self.shadowing_aliases(outputs);
            let name = fold(self.dialect, ident);
            if shadowed.iter().any(|s| same_column(self.dialect, s, &name)) {
                self.fail(Unroutable::AmbiguousColumn);
                return;
            }
        }
        self.expr(expr);
    }

    /// Aliases the client gave to something other than the source column
    /// of the same name, where a source column of that name is in scope.
    fn shadowing_aliases(&self, outputs: &[Output]) -> Vec<String> {
        outputs
            .iter()
            .filter(|o| o.user_alias)
            .filter_map(|o| {
                let name = o.name.as_ref()?;
                let column = self.source_column(&Ident::new(name.clone()))?;
                let same = o.source.as_ref().is_some_and(|s| s.column == column);
                (!same).then(|| name.clone())
            })
            .collect()
    }

    /// Whether `expr` is a bare name of an output column.
    fn names_output(&self, expr: &Expr, outputs: &[Output]) -> bool {
        let Expr::Identifier(ident) = expr else {
            return false;
        };
        let name = fold(self.dialect, ident);
        outputs.iter().any(|o| {
            o.name
                .as_ref()
                .is_some_and(|n| same_column(self.dialect, n, &name))
        })
    }

    /// ORDER BY of a single SELECT: a bare name that is an output column
    /// means that output column (both servers look there first) and is
    /// kept; everything else is an input expression.
    fn order_by(
        &mut self,
        order_by: &mut OrderBy,
        outputs: &[Output],
        distinct: bool,
        outermost: bool,
    ) {
        let OrderByKind::Expressions(list) = &mut order_by.kind else {
            return;
        };
        for item in list {
            if let Expr::Identifier(ident) = &item.expr {
                let name = fold(self.dialect, ident);
                let output = outputs.iter().find(|o| {
                    o.name
                        .as_ref()
                        .is_some_and(|n| same_column(self.dialect, n, &name))
                });
                if let Some(output) = output {
                    // Sorting by a cast output would hide the target's
                    // index on the column; the uncast column sorts the same.
                    // DISTINCT requires the sort key in the select list.
                    if let Some(source) = output.source.as_ref().filter(|_| !distinct) {
                        if self.casts(source.column, outermost) {
                            if let Some(binding) = &source.binding {
                                let column = &self.map.columns[source.column];
                                item.expr = Expr::CompoundIdentifier(vec![
                                    binding.clone(),
                                    ident_for(self.dialect, &column.target),
                                ]);
                            }
                        }
                    }
                    continue;
                }
            }
            self.expr(&mut item.expr);
        }
    }
}

/// Whether a `*` has no modifiers (EXCLUDE, EXCEPT, REPLACE, ...), none of
/// which PostgreSQL or MySQL has.
fn is_plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_ilike.is_none()
        && options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// Clauses of other dialects that the rewrite does not walk.
fn has_exotic_clauses(select: &Select) -> bool {
    select.prewhere.is_some()
        || select.exclude.is_some()
        || select.top.is_some()
        || select.value_table_mode.is_some()
        || !select.lateral_views.is_empty()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
}

fn idents(name: &ObjectName) -> Vec<Ident> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.clone()),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}
