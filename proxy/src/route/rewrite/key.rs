//! The sticky key: the value a WHERE clause pins the sticky column to, so a
//! percentage rule can bucket reads by it (`tenant_id = 42`).
//!
//! Only top-level conjuncts count (`a AND c = 1`, not `a OR c = 1` nor
//! `NOT (c = 1)`): anything else does not pin one value.
//!
//! No IO, no panics.

use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Location, Token, Tokenizer};

use super::exprs::bare_parts;
use super::names::same_column;
use super::scope::Resolved;
use super::walk::Rewriter;
use super::KeyValue;

impl Rewriter<'_> {
    /// Looks for the sticky key in a WHERE clause of a SELECT reading the
    /// source (its scope is the current frame). The first found wins.
    pub(super) fn sticky_key(&mut self, selection: Option<&Expr>) {
        let (Some(column), None, Some(selection)) = (self.sticky_column, &self.key, selection)
        else {
            return;
        };
        let mut conjuncts = vec![selection];
        while let Some(e) = conjuncts.pop() {
            let found = match e {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::And,
                    right,
                } => {
                    // Right first onto the stack: text order when popped.
                    conjuncts.push(right);
                    conjuncts.push(left);
                    None
                }
                Expr::Nested(inner) => {
                    conjuncts.push(inner);
                    None
                }
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } => self
                    .key_pair(left, right, column)
                    .or_else(|| self.key_pair(right, left, column)),
                Expr::InList {
                    expr,
                    list,
                    negated: false,
                } if list.len() == 1 => self.key_pair(expr, &list[0], column),
                _ => None,
            };
            if found.is_some() {
                self.key = found;
                return;
            }
        }
    }

    /// `value` when `reference` is the sticky source column.
    fn key_pair(&self, reference: &Expr, value: &Expr, column: &str) -> Option<KeyValue> {
        match self.resolve(bare_parts(reference)?) {
            Ok(Resolved::Source { column: index, .. })
                if same_column(self.dialect, &self.map.columns[index].source, column) =>
            {
                self.key_value(value)
            }
            _ => None,
        }
    }

    fn key_value(&self, expr: &Expr) -> Option<KeyValue> {
        match expr {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Some(KeyValue::Literal(n.to_string())),
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                    Some(KeyValue::Literal(s.clone()))
                }
                Value::Placeholder(p) if p == "?" => self.question_mark(v.span.start),
                Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok().map(KeyValue::Param),
                _ => None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match self.key_value(expr)? {
                KeyValue::Literal(n) if n.starts_with(|c: char| c.is_ascii_digit()) => {
                    Some(KeyValue::Literal(format!("-{n}")))
                }
                _ => None,
            },
            Expr::Nested(inner) | Expr::Cast { expr: inner, .. } => self.key_value(inner),
            _ => None,
        }
    }

    /// The 1-based position of the `?` at `at` among the text's `?`s: the
    /// client binds MySQL parameters in text order.
    fn question_mark(&self, at: Location) -> Option<KeyValue> {
        let tokens = Tokenizer::new(&MySqlDialect {}, self.sql)
            .tokenize_with_location()
            .ok()?;
        let marks = tokens
            .iter()
            .filter(|t| matches!(&t.token, Token::Placeholder(p) if p == "?"));
        marks
            .enumerate()
            .find(|(_, t)| t.span.start == at)
            .map(|(i, _)| KeyValue::Param(i + 1))
    }
}
