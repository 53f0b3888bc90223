//! The read switch's rewriter: turns a read of a migration's source table
//! into the same read of its target table, with the result shape the client
//! expects (the source's column names, order and, on PostgreSQL, types).
//!
//! [`read_form`] answers, for one client text: does it read the source, and
//! if so, what SQL to send when the read is routed to the target (or why it
//! cannot be), plus the sticky-key value of the WHERE clause when the rule
//! needs one. It renames the table and every column reference that resolves
//! to it, expands `*`, aliases the select list back to the source's names,
//! and refuses ([`Unroutable`]) whatever it cannot rewrite with certainty:
//! the caller then reads from the source.
//!
//! Layout: `names` folds, quotes and matches identifiers; `scope` knows
//! which FROM entries are visible and resolves a column reference to one;
//! `walk` is the scope-aware walk over statements, queries and FROM
//! clauses; `select` handles one SELECT (`*`, the select list, ORDER BY,
//! GROUP BY); `exprs` is the flat pass over expressions (sqlparser's
//! `VisitorMut`); `key` finds the sticky key.
//!
//! Conventions the caller relies on:
//! - every source relation gets an alias (its name as written when the
//!   client gave none: `FROM api` → `FROM t_sys_api_endpoints AS api`), so
//!   qualified references keep working; `schema.api.col` becomes `api.col`;
//! - a bare select-list reference to a renamed column gets `AS <source
//!   name>` (PostgreSQL: the folded name; MySQL: the name as the client
//!   wrote it, since MySQL reports that); a client alias is kept;
//! - PostgreSQL casts back (`CAST(col AS type)`) only in the select lists
//!   of the outermost query (every branch of a set operation); subqueries,
//!   CTEs and derived tables keep the target's types, and expressions over
//!   a cast column (`id + 1`, `max(id)`) are not cast;
//! - a bare ORDER BY name that is an output column is left to mean the
//!   output column, except a cast one, which is replaced by the uncast
//!   qualified column so the target's index can still serve the sort;
//! - comments are dropped (the caller reads tags from the original text);
//!   placeholders and literals print as written, so `$n` and the order of
//!   MySQL `?`s are unchanged.
//!
//! This module must never do IO, read a clock, or panic on client input:
//! text sqlparser cannot parse is reported, never unwrapped.

mod dml;
mod exprs;
mod key;
mod names;
mod scope;
mod select;
mod walk;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mysql;
#[cfg(test)]
mod tests_pg;
#[cfg(test)]
mod tests_write;

use sqlparser::ast::{self, LockType, SetExpr};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::tokenizer::{Token, Tokenizer};

use super::classify::parse;
use super::fingerprint::Dialect;
pub(crate) use names::text_names_table;
use walk::Rewriter;

/// A table name as the server resolves it: PostgreSQL schema and table,
/// MySQL database and table. Stored folded the way the server compares
/// names (PostgreSQL: unquoted identifiers lower-cased; MySQL: as written),
/// so matching a reference is plain string comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// Schema (PostgreSQL) or database (MySQL): the rewrite must tell
    /// `public.api` from `audit.api`.
    pub schema: String,
    /// Table name.
    pub name: String,
}

/// One source column and what the target calls it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    /// The source's column name: what clients write and expect back.
    pub source: String,
    /// The target's column name (equal to `source` when not renamed): what
    /// references are rewritten to.
    pub target: String,
    /// PostgreSQL only: the source column's SQL type (`integer`, `text`)
    /// when the target's differs, so the client still receives the type it
    /// was given before. `None` when the types agree.
    pub cast: Option<String>,
}

/// Everything the rewrite needs about one migration, built by the caller
/// from the configuration and the live catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableMap {
    /// The table clients name.
    pub source: Relation,
    /// The table reads are sent to.
    pub target: Relation,
    /// Every source column, in the source's column order: `*` expands to
    /// this list, so its order is the order the client sees.
    pub columns: Vec<ColumnMap>,
}

impl TableMap {
    /// The same tables the other way round, for the mirror back to the
    /// source once the target takes the writes: the target's names map
    /// to the source's. No casts: the mirror writes values, and the
    /// assignment to the source's column converts them.
    pub fn inverse(&self) -> TableMap {
        TableMap {
            source: self.target.clone(),
            target: self.source.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnMap {
                    source: c.target.clone(),
                    target: c.source.clone(),
                    cast: None,
                })
                .collect(),
        }
    }
}

/// Where unqualified table names resolve for this session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope<'a> {
    /// PostgreSQL: the schema the session's search_path resolves the
    /// source table's name to; `None` when not known, which makes an
    /// unqualified reference to that name [`Unroutable::UnknownSchema`].
    /// MySQL: the current database; `None` when none is selected, and then
    /// unqualified names are never the source.
    pub default_schema: Option<&'a str>,
}

/// Why a read that touches the source cannot be sent to the target. A
/// small fixed set: [`Unroutable::label`] is a metric label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unroutable {
    /// An unqualified column could belong to the source or to another table
    /// whose columns the rewrite does not know.
    #[error("an unqualified column may belong to the source table or another one")]
    AmbiguousColumn,
    /// An expression the rewrite does not understand names the source: a
    /// whole-row reference, `to_json(api.*)`, the table's name as text, a
    /// system column, a column list on the table's alias, a multi-statement
    /// text mixing reads and other statements.
    #[error("an expression the rewrite does not understand names the source table")]
    Expression,
    /// The statement also writes (data-modifying CTE, SELECT INTO, INSERT
    /// ... SELECT, UPDATE, DELETE), so it must run where the writes run.
    #[error("the statement writes")]
    Writes,
    /// The source is read through a table function or a `TABLE` form the
    /// rewrite does not handle.
    #[error("the source table is read through a table function")]
    View,
    /// An unqualified name matches the source's, and the session's schema
    /// for it is not known.
    #[error("the schema of an unqualified table name is not known")]
    UnknownSchema,
}

impl Unroutable {
    /// The `reason` label value of the unroutable-read counter.
    pub fn label(self) -> &'static str {
        match self {
            Unroutable::AmbiguousColumn => "ambiguous_column",
            Unroutable::Expression => "expression",
            Unroutable::Writes => "writes",
            Unroutable::View => "view",
            Unroutable::UnknownSchema => "unknown_schema",
        }
    }
}

/// A sticky-key value found in the WHERE clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyValue {
    /// The literal's value as text: numbers as written (`42`, `-7`),
    /// strings without their quotes (`acme`).
    Literal(String),
    /// A bind parameter, 1-based: `$3` is 3; MySQL's n-th `?` in text order
    /// is n. The caller looks the value up in the execution's parameters.
    Param(usize),
}

/// What one client text means for the read switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadForm {
    /// The text does not read the source table: nothing to do.
    Untouched,
    /// The text reads the source table.
    Source {
        /// The SQL to send when the read is routed to the target, or why
        /// it must stay on the source.
        target: Result<String, Unroutable>,
        /// The sticky column's value, when a sticky column was asked for
        /// and the WHERE clause pins it.
        key: Option<KeyValue>,
    },
}

/// Decides whether `sql` reads `map`'s source table and, if so, rewrites it
/// for the target. `sticky_column` names the source column whose value in
/// the WHERE clause keys a sticky percentage rule.
///
/// A text of several statements that reads the source is rewritten
/// statement by statement when every statement is a query; if any other
/// statement is among them, it is [`Unroutable::Expression`] (a `SET` or a
/// `SHOW` must not silently move to the target's connection).
pub fn read_form(
    dialect: Dialect,
    sql: &str,
    map: &TableMap,
    scope: &Scope,
    sticky_column: Option<&str>,
) -> ReadForm {
    // Cheap exit for the common case: a text that does not even contain the
    // table's name (in any case) cannot reference it.
    if !contains_ignore_case(sql, &map.source.name) {
        return ReadForm::Untouched;
    }
    let Ok(mut statements) = parse(dialect, sql) else {
        return unparsed(dialect, sql, map);
    };
    let mut rewriter = Rewriter::new(dialect, map, scope, sticky_column, sql);
    let queries_only = statements
        .iter()
        .all(|s| matches!(s, ast::Statement::Query(_)));
    for statement in &mut statements {
        rewriter.statement(statement);
    }
    let outcome = rewriter.finish();
    if !outcome.touched {
        return ReadForm::Untouched;
    }
    let target = match outcome.error {
        Some(reason) => Err(reason),
        None if statements.len() > 1 && !queries_only => Err(Unroutable::Expression),
        None => Ok(print(dialect, &mut statements)),
    };
    ReadForm::Source {
        target,
        key: outcome.key,
    }
}

/// Decides whether `sql` writes `map`'s source table and, if so, rewrites
/// it as the same write of the target (the write switch's direction).
/// [`ReadForm::Untouched`] when the text does not name the source. A text
/// of several statements is rewritten statement by statement (the caller
/// relays it without an inline mirror, as the dual write does).
pub fn write_form(dialect: Dialect, sql: &str, map: &TableMap, scope: &Scope) -> ReadForm {
    if !contains_ignore_case(sql, &map.source.name) {
        return ReadForm::Untouched;
    }
    let Ok(mut statements) = parse(dialect, sql) else {
        return unparsed(dialect, sql, map);
    };
    let mut rewriter = Rewriter::new(dialect, map, scope, None, sql);
    for statement in &mut statements {
        rewriter.write(statement);
    }
    let outcome = rewriter.finish();
    if !outcome.touched {
        return ReadForm::Untouched;
    }
    let target = match outcome.error {
        Some(reason) => Err(reason),
        None => Ok(print(dialect, &mut statements)),
    };
    ReadForm::Source { target, key: None }
}

/// Prints rewritten statements. MySQL's shared lock is printed as `LOCK IN
/// SHARE MODE`: the parser reads it as `FOR SHARE`, which MariaDB does not
/// accept.
fn print(dialect: Dialect, statements: &mut [ast::Statement]) -> String {
    let mut out = Vec::with_capacity(statements.len());
    for statement in statements.iter_mut() {
        let mut suffix = "";
        if let (Dialect::Mysql, ast::Statement::Query(q)) = (dialect, &mut *statement) {
            let plain_share = matches!(
                q.locks.as_slice(),
                [l] if l.lock_type == LockType::Share && l.of.is_none() && l.nonblock.is_none()
            );
            if plain_share && !matches!(*q.body, SetExpr::Values(_)) {
                q.locks.clear();
                suffix = " LOCK IN SHARE MODE";
            }
        }
        out.push(format!("{statement}{suffix}"));
    }
    out.join("; ")
}

/// A text sqlparser cannot parse: it reads the source (and cannot be
/// rewritten) when one of its words is the table's name; otherwise it is
/// not ours, and the classifier already keeps it on the source.
fn unparsed(dialect: Dialect, sql: &str, map: &TableMap) -> ReadForm {
    let parser_dialect: &dyn sqlparser::dialect::Dialect = match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlDialect {},
    };
    let names_source = match Tokenizer::new(parser_dialect, sql).tokenize() {
        Ok(tokens) => tokens.iter().any(|t| match t {
            Token::Word(w) => {
                names::fold_value(dialect, &w.value, w.quote_style) == map.source.name
            }
            _ => false,
        }),
        // Not even tokenizable: the name is in the text, so assume the worst.
        Err(_) => true,
    };
    if names_source {
        ReadForm::Source {
            target: Err(Unroutable::Expression),
            key: None,
        }
    } else {
        ReadForm::Untouched
    }
}

/// Whether `haystack` contains `needle`, ASCII case-insensitively.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
