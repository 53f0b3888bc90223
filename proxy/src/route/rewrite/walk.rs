//! The scope-aware walk: statements, queries, CTEs, set operations and FROM
//! clauses, where names come into and go out of scope. Expressions are
//! handed to the flat pass in `exprs`; the select list to `select`.
//!
//! Problems are recorded (the first one wins) and the walk goes on, so that
//! whether the text touches the source at all is always known: a problem in
//! a text that never reads the source is no problem of ours.
//!
//! No IO, no panics: every shape the walk does not know is refused.

use std::ops::ControlFlow;

use sqlparser::ast::{
    self, visit_relations, DataType, Expr, FunctionArg, FunctionArgExpr, Ident, JoinConstraint,
    JoinOperator, ObjectName, ObjectNamePart, Query, SetExpr, TableAlias, TableFactor,
    TableWithJoins, Value, VisitMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::exprs::ExprPass;
use super::names::{fold, ident_for, same_column, text_names_table};
use super::scope::{Entry, Frame};
use super::{KeyValue, Scope, TableMap, Unroutable};
use crate::route::fingerprint::Dialect;

/// What a relation name in FROM is to the migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RelationKind {
    /// The source table.
    Source,
    /// Some other table, or a CTE.
    Other,
    /// The source's name, unqualified, with no known schema.
    Unknown,
}

/// What the walk found, once it is done.
pub(super) struct Outcome {
    /// Whether the text reads (or names) the source at all.
    pub(super) touched: bool,
    /// The first reason the text cannot go to the target.
    pub(super) error: Option<Unroutable>,
    /// The sticky key, when asked for and found.
    pub(super) key: Option<KeyValue>,
}

/// Rewrites one client text in place.
pub(super) struct Rewriter<'m> {
    /// Decides folding, quoting and casts.
    pub(super) dialect: Dialect,
    /// The migration.
    pub(super) map: &'m TableMap,
    /// Where unqualified table names resolve.
    scope: &'m Scope<'m>,
    /// FROM entries in scope, outermost first.
    pub(super) frames: Vec<Frame>,
    /// CTE names in scope: an unqualified reference to one is not a table.
    ctes: Vec<String>,
    /// Whether the source was seen.
    pub(super) touched: bool,
    /// The first problem seen.
    error: Option<Unroutable>,
    /// The source column whose WHERE value is the sticky key.
    pub(super) sticky_column: Option<&'m str>,
    /// The sticky key, once found.
    pub(super) key: Option<KeyValue>,
    /// The client's text, to number MySQL `?` placeholders by position.
    pub(super) sql: &'m str,
    /// PostgreSQL: each column's cast-back type, parsed once.
    pub(super) casts: Vec<Option<DataType>>,
}

impl<'m> Rewriter<'m> {
    pub(super) fn new(
        dialect: Dialect,
        map: &'m TableMap,
        scope: &'m Scope<'m>,
        sticky_column: Option<&'m str>,
        sql: &'m str,
    ) -> Rewriter<'m> {
        let casts = map
            .columns
            .iter()
            .map(|c| match (dialect, &c.cast) {
                (Dialect::Postgres, Some(ty)) => Some(parse_type(ty)),
                _ => None,
            })
            .collect();
        Rewriter {
            dialect,
            map,
            scope,
            frames: Vec::new(),
            ctes: Vec::new(),
            touched: false,
            error: None,
            sticky_column,
            key: None,
            sql,
            casts,
        }
    }

    pub(super) fn finish(self) -> Outcome {
        Outcome {
            touched: self.touched,
            error: self.error,
            key: self.key,
        }
    }

    /// Records a problem; the first one is the one reported.
    pub(super) fn fail(&mut self, reason: Unroutable) {
        self.error.get_or_insert(reason);
    }

    /// One statement of the text. Only queries are rewritten; any other
    /// statement that names the source is a write or something the read
    /// switch does not handle.
    pub(super) fn statement(&mut self, statement: &mut ast::Statement) {
        use ast::Statement as S;
        match statement {
            S::Query(q) => self.query(q, true),
            other => {
                if self.names_source(other) {
                    self.touched = true;
                    let writes = matches!(
                        other,
                        S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_)
                    );
                    self.fail(if writes {
                        Unroutable::Writes
                    } else {
                        Unroutable::Expression
                    });
                }
            }
        }
    }

    /// Whether any relation in `node` could be the source, ignoring CTE
    /// scopes: the flat check for shapes the walk does not enter.
    pub(super) fn names_source<V: ast::Visit>(&self, node: &V) -> bool {
        visit_relations(node, |name| {
            if self.relation_kind(name, false) == RelationKind::Other {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        })
        .is_break()
    }

    /// What a relation name in FROM is. `ctes` says whether CTE names in
    /// scope shadow it.
    pub(super) fn relation_kind(&self, name: &ObjectName, ctes: bool) -> RelationKind {
        let parts: Option<Vec<&Ident>> = name
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        let Some([.., table]) = parts.as_deref() else {
            return RelationKind::Other;
        };
        let table_name = fold(self.dialect, table);
        if table_name != self.map.source.name {
            return RelationKind::Other;
        }
        let schema = match parts.as_deref() {
            Some([.., schema, _]) => fold(self.dialect, schema),
            _ if ctes && self.ctes.contains(&table_name) => return RelationKind::Other,
            _ => match (self.scope.default_schema, self.dialect) {
                (Some(s), _) => s.to_string(),
                (None, Dialect::Postgres) => return RelationKind::Unknown,
                (None, Dialect::Mysql) => return RelationKind::Other,
            },
        };
        if schema == self.map.source.schema {
            RelationKind::Source
        } else {
            RelationKind::Other
        }
    }

    /// A query: its CTEs, its body, and the clauses after the body.
    /// `outermost` marks the query whose select lists reach the client.
    pub(super) fn query(&mut self, query: &mut Query, outermost: bool) {
        let ctes_before = self.ctes.len();
        if let Some(with) = &mut query.with {
            // A recursive WITH sees all its names; otherwise a CTE body sees
            // only earlier CTEs, and a name it shadows is the table there.
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|c| fold(self.dialect, &c.alias.name))
                .collect();
            if with.recursive {
                self.ctes.extend(names.iter().cloned());
            }
            for (cte, name) in with.cte_tables.iter_mut().zip(names) {
                self.query(&mut cte.query, false);
                if !with.recursive {
                    self.ctes.push(name);
                }
            }
        }
        match &mut *query.body {
            SetExpr::Select(select) => self.select(select, query.order_by.as_mut(), outermost),
            body => {
                self.set_expr(body, outermost);
                // ORDER BY of a set operation or VALUES names output
                // columns, whose names the rewrite keeps.
                if let Some(order_by) = &mut query.order_by {
                    self.frames.push(Frame::default());
                    let mut pass = ExprPass::new(self);
                    let _ = order_by.visit(&mut pass);
                    self.frames.pop();
                }
            }
        }
        self.frames.push(Frame::default());
        let mut pass = ExprPass::new(self);
        let _ = query.limit_clause.visit(&mut pass);
        let _ = query.fetch.visit(&mut pass);
        self.frames.pop();
        self.ctes.truncate(ctes_before);
    }

    /// UNION / INTERSECT / EXCEPT trees, VALUES, `TABLE t` and
    /// data-modifying CTE bodies. Iterative: sqlparser builds set-operation
    /// chains left-deep without a depth limit.
    fn set_expr(&mut self, root: &mut SetExpr, outermost: bool) {
        let mut stack = vec![root];
        while let Some(set) = stack.pop() {
            match set {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                SetExpr::Select(select) => self.select(select, None, outermost),
                SetExpr::Query(q) => self.query(q, outermost),
                SetExpr::Values(values) => {
                    self.frames.push(Frame::default());
                    let mut pass = ExprPass::new(self);
                    let _ = values.visit(&mut pass);
                    self.frames.pop();
                }
                SetExpr::Table(table) => {
                    let parts = table.schema_name.iter().chain(&table.table_name);
                    let name =
                        ObjectName::from(parts.map(|p| Ident::new(p.clone())).collect::<Vec<_>>());
                    if self.relation_kind(&name, true) != RelationKind::Other {
                        self.touched = true;
                        self.fail(Unroutable::View);
                    }
                }
                SetExpr::Insert(s)
                | SetExpr::Update(s)
                | SetExpr::Delete(s)
                | SetExpr::Merge(s) => {
                    if self.names_source(s) {
                        self.touched = true;
                    }
                    self.fail(Unroutable::Writes);
                }
            }
        }
    }

    /// A FROM clause: rewrites the source's relations and returns the
    /// entries it brings into scope.
    pub(super) fn from(&mut self, from: &mut [TableWithJoins]) -> Frame {
        let mut frame = Frame::default();
        for item in from {
            self.table_with_joins(item, &mut frame);
        }
        frame
    }

    fn table_with_joins(&mut self, item: &mut TableWithJoins, frame: &mut Frame) {
        self.factor(&mut item.relation, frame);
        for join in &mut item.joins {
            self.factor(&mut join.relation, frame);
            match join_constraint_mut(&mut join.join_operator) {
                Some(JoinConstraint::On(on)) => self.in_partial(frame, |r| r.expr(on)),
                Some(JoinConstraint::Using(columns)) => {
                    frame.merged = true;
                    for column in columns.iter() {
                        self.using_column(column, frame);
                    }
                }
                Some(JoinConstraint::Natural) => {
                    frame.merged = true;
                    if frame.has_source() {
                        // The joined columns are chosen by name, and names
                        // differ on the target.
                        self.fail(Unroutable::Expression);
                    }
                }
                _ => {}
            }
        }
    }

    /// A `USING (col)` column: kept when the source does not rename it.
    fn using_column(&mut self, column: &ObjectName, frame: &mut Frame) {
        let [ObjectNamePart::Identifier(ident)] = column.0.as_slice() else {
            return;
        };
        let name = fold(self.dialect, ident);
        if frame.has_source() {
            if let Some(index) = self.source_column(ident) {
                let c = &self.map.columns[index];
                if !same_column(self.dialect, &c.source, &c.target) {
                    self.fail(Unroutable::Expression);
                }
            }
        }
        frame.using.push(name);
    }

    /// Runs `f` with the FROM entries seen so far in scope (ON clauses,
    /// LATERAL, table function arguments).
    fn in_partial(&mut self, frame: &mut Frame, f: impl FnOnce(&mut Self)) {
        self.frames.push(std::mem::take(frame));
        f(self);
        *frame = self.frames.pop().unwrap_or_default();
    }

    /// Rewrites one expression in the current scope.
    pub(super) fn expr(&mut self, expr: &mut Expr) {
        let mut pass = ExprPass::new(self);
        let _ = expr.visit(&mut pass);
    }

    fn factor(&mut self, factor: &mut TableFactor, frame: &mut Frame) {
        match factor {
            TableFactor::Table {
                args: Some(args),
                name,
                alias,
                ..
            } => {
                let binding = binding(alias, Some(name));
                self.table_function(&mut args.args, frame);
                frame.entries.push(other(binding, None));
            }
            TableFactor::Table {
                name,
                alias,
                partitions,
                index_hints,
                ..
            } => match self.relation_kind(name, true) {
                RelationKind::Source => {
                    self.touched = true;
                    let written = last_ident(name);
                    // Unaliased, `schema.table.col` may qualify its columns.
                    let relation = alias.is_none().then(|| {
                        let source = &self.map.source;
                        (Some(source.schema.clone()), source.name.clone())
                    });
                    *name = self.target_name(name);
                    let alias = alias.get_or_insert_with(|| TableAlias {
                        explicit: true,
                        name: written.clone(),
                        columns: Vec::new(),
                        at: None,
                    });
                    if !alias.columns.is_empty() || !partitions.is_empty() {
                        // Column aliases are positional, and partitions are
                        // the source's own.
                        self.fail(Unroutable::Expression);
                    }
                    // Index names are the source's; hints never change a
                    // result, so dropping them is safe.
                    index_hints.clear();
                    frame.entries.push(Entry {
                        binding: Some(alias.name.clone()),
                        relation,
                        source: true,
                    });
                }
                RelationKind::Unknown => {
                    self.touched = true;
                    self.fail(Unroutable::UnknownSchema);
                    frame.entries.push(other(binding(alias, Some(name)), None));
                }
                RelationKind::Other => {
                    let relation = match alias {
                        Some(_) => None,
                        None => self.resolved_relation(name),
                    };
                    frame
                        .entries
                        .push(other(binding(alias, Some(name)), relation));
                }
            },
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                if *lateral {
                    self.in_partial(frame, |r| r.query(subquery, false));
                } else {
                    self.query(subquery, false);
                }
                frame.entries.push(other(binding(alias, None), None));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: Some(alias),
            } => {
                // An aliased join hides its entries behind one name whose
                // columns we cannot list.
                let mut inner = Frame::default();
                self.table_with_joins(table_with_joins, &mut inner);
                if inner.has_source() {
                    self.fail(Unroutable::Expression);
                }
                frame.entries.push(other(Some(alias.name.clone()), None));
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins, frame),
            TableFactor::Function {
                args, name, alias, ..
            } => {
                let binding = binding(alias, Some(name));
                self.table_function(args, frame);
                frame.entries.push(other(binding, None));
            }
            TableFactor::TableFunction { expr, alias } => {
                if self.mentions_source(expr) {
                    self.touched = true;
                    self.fail(Unroutable::View);
                } else {
                    self.in_partial(frame, |r| r.expr(expr));
                }
                frame.entries.push(other(binding(alias, None), None));
            }
            TableFactor::UNNEST {
                array_exprs, alias, ..
            } => {
                self.in_partial(frame, |r| array_exprs.iter_mut().for_each(|e| r.expr(e)));
                frame.entries.push(other(binding(alias, None), None));
            }
            exotic => {
                if self.mentions_source(exotic) {
                    self.touched = true;
                    self.fail(Unroutable::View);
                }
                frame.entries.push(other(None, None));
            }
        }
    }

    /// Arguments of a table function in FROM: a function fed the source
    /// (by subquery or by name) is a view over it; otherwise its arguments
    /// may still name earlier FROM entries' columns.
    fn table_function(&mut self, args: &mut Vec<FunctionArg>, frame: &mut Frame) {
        if self.mentions_source(&*args) {
            self.touched = true;
            self.fail(Unroutable::View);
            return;
        }
        self.in_partial(frame, |r| {
            for arg in args.iter_mut() {
                let (FunctionArg::Named { arg, .. }
                | FunctionArg::ExprNamed { arg, .. }
                | FunctionArg::Unnamed(arg)) = arg;
                if let FunctionArgExpr::Expr(e) = arg {
                    r.expr(e);
                }
            }
        });
    }

    /// Whether `node` names the source as a relation or as a string.
    fn mentions_source<V: ast::Visit>(&self, node: &V) -> bool {
        self.names_source(node)
            || ast::visit_expressions(node, |e| match e {
                Expr::Value(v) if self.names_source_text(&v.value) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            })
            .is_break()
    }

    /// Whether a literal is the source's name as text (`'api'`,
    /// `'public.api'`), as functions taking a table name get it.
    pub(super) fn names_source_text(&self, value: &Value) -> bool {
        let (Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)) = value else {
            return false;
        };
        text_names_table(s, &self.map.source.name)
    }

    /// The target's name, qualified as the user qualified the source's: a
    /// qualified name keeps its qualification; an unqualified one stays
    /// unqualified when the target is in the source's schema.
    pub(super) fn target_name(&self, written: &ObjectName) -> ObjectName {
        let target = &self.map.target;
        let same_schema = target.schema == self.map.source.schema;
        let table = ObjectNamePart::Identifier(ident_for(self.dialect, &target.name));
        let mut parts = written.0.clone();
        parts.pop();
        match parts.last_mut() {
            Some(schema) if !same_schema => {
                *schema = ObjectNamePart::Identifier(ident_for(self.dialect, &target.schema));
            }
            Some(_) => {}
            None if !same_schema => parts.push(ObjectNamePart::Identifier(ident_for(
                self.dialect,
                &target.schema,
            ))),
            None => {}
        }
        parts.push(table);
        ObjectName(parts)
    }

    /// Schema (resolved) and name of a table written unaliased, so that
    /// `schema.table.col` can find it.
    fn resolved_relation(&self, name: &ObjectName) -> Option<(Option<String>, String)> {
        let idents: Vec<&Ident> = name
            .0
            .iter()
            .filter_map(|p| match p {
                ObjectNamePart::Identifier(i) => Some(i),
                ObjectNamePart::Function(_) => None,
            })
            .collect();
        match idents.as_slice() {
            [.., schema, table] => {
                Some((Some(fold(self.dialect, schema)), fold(self.dialect, table)))
            }
            [table] => Some((
                self.scope.default_schema.map(str::to_string),
                fold(self.dialect, table),
            )),
            [] => None,
        }
    }
}

/// The name a FROM entry is qualified by: its alias, else (for a table)
/// its name as written.
fn binding(alias: &Option<TableAlias>, name: Option<&ObjectName>) -> Option<Ident> {
    match (alias, name) {
        (Some(a), _) => Some(a.name.clone()),
        (None, Some(n)) => n.0.last().and_then(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.clone()),
            ObjectNamePart::Function(_) => None,
        }),
        (None, None) => None,
    }
}

fn other(binding: Option<Ident>, relation: Option<(Option<String>, String)>) -> Entry {
    Entry {
        binding,
        relation,
        source: false,
    }
}

/// The last part of a relation name, as written.
pub(super) fn last_ident(name: &ObjectName) -> Ident {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.clone(),
        _ => Ident::new(""),
    }
}

/// Parses a configured cast type; a type sqlparser does not know is
/// printed as written.
fn parse_type(ty: &str) -> DataType {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(ty)
        .and_then(|mut p| p.parse_data_type())
        .unwrap_or_else(|_| DataType::Custom(ObjectName::from(vec![Ident::new(ty)]), Vec::new()))
}

fn join_constraint_mut(op: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c)
        | J::StraightJoin(c)
        | J::AsOf { constraint: c, .. } => Some(c),
        _ => None,
    }
}
