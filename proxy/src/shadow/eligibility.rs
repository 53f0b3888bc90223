//! Which reads may be shadowed: only those whose answer the statement
//! alone determines, so that two runs inside one snapshot must agree and a
//! difference can only be the target's fault.
//!
//! Pure: sqlparser's AST in, a verdict out. The checks are conservative —
//! a read that might be deterministic but cannot be shown to be is skipped,
//! because a false mismatch rolls reads back and a skipped read costs
//! nothing.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Distinct, Expr, Function, OrderBy, OrderByKind, Query, Select, SetExpr,
    Statement, Value, ValueWithSpan, Visit, Visitor,
};

use crate::route::classify;
use crate::route::fingerprint::Dialect;

/// Why a read is not shadowed (or a shadow was not run). A small fixed
/// set: [`Skip::label`] is a metric label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Calls a function whose result is not fixed by the snapshot (clock,
    /// random, sequence, lock, sleep) or one not known to be a stable
    /// builtin (a user-defined function may do anything).
    Volatile,
    /// LIMIT / OFFSET / FETCH (or DISTINCT ON) without an ORDER BY that
    /// covers the key: which rows come back is up to the plan.
    UnorderedLimit,
    /// sum() / avg() and the statistical aggregates: over floating point
    /// their result depends on the order rows are added in.
    FloatAggregate,
    /// FOR UPDATE / FOR SHARE: takes locks, so running it twice more is a
    /// side effect.
    Locking,
    /// Not a plain SELECT (a write, a writable CTE, SELECT INTO, several
    /// statements).
    NotARead,
    /// sqlparser could not parse it.
    Unparsed,
    /// The statement or one of its results is over the size limits.
    TooLarge,
    /// The shadow queue was full.
    Busy,
    /// The session's settings or user could not be reproduced.
    Settings,
    /// The read ran inside the client's transaction, whose snapshot the
    /// shadow cannot share.
    Transaction,
    /// The session could not build the job (e.g. a bound value it cannot
    /// render as text).
    Error,
    /// Source and target live on different servers: no single snapshot
    /// covers both, which this version does not compare.
    CrossServer,
}

impl Skip {
    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            Skip::Volatile => "volatile",
            Skip::UnorderedLimit => "unordered_limit",
            Skip::FloatAggregate => "float_aggregate",
            Skip::Locking => "locking",
            Skip::NotARead => "not_a_read",
            Skip::Unparsed => "unparsed",
            Skip::TooLarge => "too_large",
            Skip::Busy => "busy",
            Skip::Settings => "settings",
            Skip::Transaction => "transaction",
            Skip::Error => "error",
            Skip::CrossServer => "cross_server",
        }
    }
}

/// How two results of a shadowable read are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowOrder {
    /// The outer ORDER BY covers the key: rows compare position by position.
    InOrder,
    /// No ORDER BY, or one with possible ties: rows compare as multisets
    /// (ties may come back in either order on either table).
    Multiset,
}

/// Builtins whose result depends only on their arguments (and on session
/// settings the shadow reproduces). Anything else is `volatile`.
#[rustfmt::skip]
const STABLE_FUNCTIONS: &[&str] = &[
    // aggregates that are exact whatever the order rows come in
    "count", "min", "max", "bool_and", "bool_or", "every", "bit_and", "bit_or",
    // window functions fixed by the window's order (ties get equal values)
    "rank", "dense_rank",
    // conditionals and comparison
    "coalesce", "nullif", "greatest", "least", "ifnull", "if", "isnull", "nvl",
    // text
    "lower", "upper", "lcase", "ucase", "initcap", "length", "char_length",
    "character_length", "octet_length", "bit_length", "concat", "concat_ws", "substr",
    "substring", "left", "right", "lpad", "rpad", "trim", "ltrim", "rtrim", "btrim",
    "replace", "reverse", "repeat", "split_part", "strpos", "position", "locate", "instr",
    "ascii", "chr", "char", "hex", "unhex", "md5", "sha1", "sha2", "to_hex", "format",
    "regexp_replace", "regexp_like", "regexp_substr", "starts_with", "translate",
    "quote_ident", "quote_literal", "encode", "decode", "field", "find_in_set",
    // numbers (exact, or deterministic on their inputs)
    "abs", "sign", "ceil", "ceiling", "floor", "round", "trunc", "truncate", "mod",
    "power", "pow", "sqrt", "div",
    // dates and times of values (never of the clock)
    "date_trunc", "date_part", "to_char", "to_date", "to_timestamp", "to_number",
    "date", "year", "month", "day", "dayofmonth", "dayofweek", "dayofyear", "hour",
    "minute", "second", "week", "weekday", "quarter", "date_format", "str_to_date",
    "datediff", "timestampdiff", "date_add", "date_sub", "adddate", "subdate",
    "last_day", "make_date", "make_timestamp",
    // JSON and arrays
    "json_extract", "json_unquote", "json_value", "json_contains", "json_length",
    "json_type", "json_valid", "json_object", "json_array", "json_build_object",
    "json_build_array", "jsonb_build_object", "jsonb_build_array", "to_json", "to_jsonb",
    "json_extract_path", "json_extract_path_text", "jsonb_extract_path",
    "jsonb_extract_path_text", "jsonb_typeof", "json_typeof", "array_length", "cardinality",
    "unnest", "generate_series",
];

/// Aggregates whose result over floating point depends on the order rows
/// are added in. Whether an argument is a float cannot be told from SQL
/// alone, and sum() over an integer expression is rare enough in reads
/// worth shadowing, so all of them are skipped.
#[rustfmt::skip]
const FLOAT_AGGREGATES: &[&str] = &[
    "sum", "avg", "stddev", "stddev_pop", "stddev_samp", "std", "variance", "var_pop",
    "var_samp", "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept",
];

/// String literals PostgreSQL reads as the clock when cast to a date or
/// time type (`'now'::timestamptz`). Any literal spelled so is taken as one.
const CLOCK_WORDS: &[&str] = &["now", "today", "tomorrow", "yesterday"];

/// Whether `sql` may be shadowed, and how its rows compare. `key_columns`
/// is the source table's primary key: an ORDER BY is total only if it
/// covers every key column.
pub fn shadowable(dialect: Dialect, sql: &str, key_columns: &[String]) -> Result<RowOrder, Skip> {
    let statements = classify::parse(dialect, sql).map_err(|_| Skip::Unparsed)?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return Err(Skip::NotARead);
    };
    let mut check = Check { key_columns };
    if let ControlFlow::Break(skip) = statements.visit(&mut check) {
        return Err(skip);
    }
    if total_order(query.order_by.as_ref(), key_columns) {
        Ok(RowOrder::InOrder)
    } else {
        Ok(RowOrder::Multiset)
    }
}

/// The visitor that finds the first reason to skip.
struct Check<'a> {
    /// The source table's primary key columns.
    key_columns: &'a [String],
}

impl Visitor for Check<'_> {
    type Break = Skip;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Skip> {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(Skip::NotARead),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Skip> {
        if !query.locks.is_empty() {
            return ControlFlow::Break(Skip::Locking);
        }
        if matches!(
            *query.body,
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_)
        ) {
            return ControlFlow::Break(Skip::NotARead);
        }
        let picks_rows = query.limit_clause.is_some()
            || query.fetch.is_some()
            || matches!(&*query.body, SetExpr::Select(s) if matches!(s.distinct, Some(Distinct::On(_))));
        if picks_rows
            && !total_order(query.order_by.as_ref(), self.key_columns)
            && !at_most_one_row(query, self.key_columns)
        {
            return ControlFlow::Break(Skip::UnorderedLimit);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Skip> {
        if select.into.is_some() {
            return ControlFlow::Break(Skip::NotARead);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Skip> {
        let verdict = match expr {
            Expr::Function(function) => function_verdict(function),
            // MySQL user and system variables: session state the shadow's
            // connection does not have (and `@v := x` assigns).
            Expr::Identifier(ident) if ident.value.starts_with('@') => Err(Skip::Volatile),
            _ => Ok(()),
        };
        match verdict {
            Ok(()) => ControlFlow::Continue(()),
            Err(skip) => ControlFlow::Break(skip),
        }
    }

    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<Skip> {
        if let Value::SingleQuotedString(text) = &value.value {
            let text = text.trim().to_ascii_lowercase();
            if CLOCK_WORDS.contains(&text.as_str()) {
                return ControlFlow::Break(Skip::Volatile);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Whether a call is allowed: a known stable builtin, unqualified or in
/// `pg_catalog`.
fn function_verdict(function: &Function) -> Result<(), Skip> {
    let parts: Vec<String> = function
        .name
        .0
        .iter()
        .map(|part| {
            part.as_ident()
                .map_or(String::new(), |i| i.value.to_lowercase())
        })
        .collect();
    let name = match parts.as_slice() {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return Err(Skip::Volatile),
    };
    if FLOAT_AGGREGATES.contains(&name.as_str()) {
        return Err(Skip::FloatAggregate);
    }
    if !STABLE_FUNCTIONS.contains(&name.as_str()) {
        return Err(Skip::Volatile);
    }
    Ok(())
}

/// The last identifier of a plain or qualified column reference.
fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Identifier(ident) => Some(&ident.value),
        Expr::CompoundIdentifier(idents) => idents.last().map(|i| i.value.as_str()),
        Expr::Nested(inner) => column_name(inner),
        _ => None,
    }
}

/// Whether `name` is one of the key columns (identifiers compare without
/// case: PostgreSQL folds unquoted ones, MySQL ignores case in columns).
fn is_key(name: &str, key_columns: &[String]) -> bool {
    key_columns.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// Whether an ORDER BY names every key column, so no two rows tie.
fn total_order(order_by: Option<&OrderBy>, key_columns: &[String]) -> bool {
    let Some(OrderBy {
        kind: OrderByKind::Expressions(exprs),
        ..
    }) = order_by
    else {
        return false;
    };
    !key_columns.is_empty()
        && key_columns.iter().all(|key| {
            exprs
                .iter()
                .any(|e| column_name(&e.expr).is_some_and(|c| c.eq_ignore_ascii_case(key)))
        })
}

/// Whether a query over one table pins every key column to a value with
/// top-level `AND`ed equalities (`WHERE id = $1 LIMIT 21`, as ORMs write a
/// lookup): at most one row, so a LIMIT cannot choose among rows.
fn at_most_one_row(query: &Query, key_columns: &[String]) -> bool {
    let SetExpr::Select(select) = &*query.body else {
        return false;
    };
    let single_table = matches!(select.from.as_slice(), [from] if from.joins.is_empty());
    let Some(selection) = select.selection.as_ref().filter(|_| single_table) else {
        return false;
    };
    let mut pinned = Vec::new();
    collect_pinned(selection, key_columns, &mut pinned);
    !key_columns.is_empty()
        && key_columns
            .iter()
            .all(|k| pinned.iter().any(|p: &&str| p.eq_ignore_ascii_case(k)))
}

/// Key columns compared for equality with a literal or a parameter in the
/// `AND` chain of `expr`.
fn collect_pinned<'a>(expr: &'a Expr, key_columns: &[String], pinned: &mut Vec<&'a str>) {
    let Expr::BinaryOp { left, op, right } = expr else {
        if let Expr::Nested(inner) = expr {
            collect_pinned(inner, key_columns, pinned);
        }
        return;
    };
    match op {
        BinaryOperator::And => {
            collect_pinned(left, key_columns, pinned);
            collect_pinned(right, key_columns, pinned);
        }
        BinaryOperator::Eq => {
            for (column, value) in [(left, right), (right, left)] {
                if let (Some(name), Expr::Value(_)) = (column_name(column), &**value) {
                    if is_key(name, key_columns) {
                        pinned.push(name);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "eligibility_tests.rs"]
mod tests;
