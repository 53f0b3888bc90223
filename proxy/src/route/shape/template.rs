//! A shape's template: its read form with a hole for each literal, built
//! once by rewriting the shape's text with a sentinel in place of each
//! literal, and checked against the exact-text rewrite of the first text.
//!
//! Sentinels: a string literal becomes `'0\x01sy<n>'` (in its own quotes),
//! an integer `2718281828<nnnn>`, a decimal `2718281828.<nnnn>`, where `n`
//! is the literal's index in the text. A sentinel string starts with a
//! digit because the sticky key of `-'5'` is `-5`: the key's rule for a
//! unary minus looks at the value's first character. A shape whose
//! skeleton itself contains a sentinel's marks is refused, so every
//! sentinel found in the rewritten SQL came from a literal.

use std::borrow::Cow;
use std::ops::Range;

use super::cache::{FormInputs, Key};
use super::literals::{Class, Literals, Span, MAX_LITERALS};
use super::value;
use crate::route::fingerprint::Dialect;
use crate::route::rewrite::{KeyValue, ReadForm, Unroutable};

/// What a string sentinel's value starts with: `0` then a control
/// character.
const STRING_MARK: &str = "0\u{1}sy";
/// The control character of [`STRING_MARK`]: a skeleton with one in it
/// is refused.
const STRING_MARK_BYTE: u8 = 0x01;
/// What every number sentinel starts with: a skeleton with these digits in
/// it is refused.
const NUMBER_MARK: &str = "2718281828";
/// Digits of a literal's index in a number sentinel.
const INDEX_DIGITS: usize = 4;

/// How the read form of a text of one shape is made from its literals.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// The shape does not read the source table.
    Untouched,
    /// The shape reads the source table.
    Source {
        /// The SQL for the target, with holes for the literals, or why
        /// there is none.
        target: Result<Spliced, Unroutable>,
        /// Where the sticky key comes from, when there is one.
        key: Option<KeySlot>,
    },
}

/// Rewritten SQL with holes where a text's literals go.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Spliced {
    /// The SQL without the sentinels.
    text: String,
    /// Where each hole is in `text` (a byte offset) and which literal of
    /// the text fills it, in order of offset.
    holes: Vec<(usize, usize)>,
}

/// Where a shape's sticky key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeySlot {
    /// A bind parameter (1-based), the same for every text of the shape.
    Param(usize),
    /// The value of one of the text's literals.
    Literal {
        /// The literal's index in the text.
        index: usize,
        /// Under a unary minus: the key is `-value` when the value starts
        /// with a digit, and there is none otherwise (as for `- -5`).
        negated: bool,
    },
}

/// Why a shape's texts are rewritten by their exact text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A literal of a class the shape path does not take, or one that
    /// touches a neighbour sqlparser could read together with it.
    Literal,
    /// The skeleton contains a sentinel's marks.
    Marks,
    /// A sentinel does not come out of the rewrite exactly once.
    Sentinel,
    /// The sticky key is not one literal's value.
    Key,
    /// The template does not give the first text's exact-text rewrite.
    Differs,
}

/// The template of the shape of `sql` (whose literals are `literals`),
/// checked against `exact`, the exact-text read form of `sql`.
pub(super) fn build(
    inputs: &FormInputs<'_>,
    sql: &str,
    literals: &Literals,
    exact: &ReadForm,
) -> Result<Form, Refusal> {
    let form = if literals.spans().is_empty() {
        // The text is its own shape.
        form_of(exact.clone(), literals)?
    } else {
        let shape_text = shape_text(sql, literals)?;
        form_of(inputs.read_form(&shape_text), literals)?
    };
    if !gives(&form, inputs, sql, literals, exact) {
        return Err(Refusal::Differs);
    }
    Ok(form)
}

/// The text with each literal replaced by its sentinel.
fn shape_text(sql: &str, literals: &Literals) -> Result<String, Refusal> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16 * literals.spans().len());
    let mut last = 0;
    for (index, span) in literals.spans().iter().enumerate() {
        let range = span.range();
        let gap = &sql[last..range.start];
        if gap.as_bytes().contains(&STRING_MARK_BYTE) || gap.contains(NUMBER_MARK) {
            return Err(Refusal::Marks);
        }
        let before = range.start.checked_sub(1).map(|i| b[i]);
        if !stands_alone(span.class, before, b.get(range.end).copied()) {
            return Err(Refusal::Literal);
        }
        out.push_str(gap);
        out.push_str(&sentinel(span.class, index));
        last = range.end;
    }
    let tail = &sql[last..];
    if tail.as_bytes().contains(&STRING_MARK_BYTE) || tail.contains(NUMBER_MARK) {
        return Err(Refusal::Marks);
    }
    out.push_str(tail);
    Ok(out)
}

/// Whether a literal of `class` between the bytes `before` and `after` is
/// read by sqlparser as one literal of that class whatever its value, and
/// a sentinel in its place is too. Refused: a string right after a word or
/// `&` (`_utf8'..'`, `U&'..'`) or another quote; a number right after or
/// before a `.`, a word, a quote or a variable sigil (`t.5`, `1.5.6`,
/// `@1`).
fn stands_alone(class: Class, before: Option<u8>, after: Option<u8>) -> bool {
    let quote = |c: u8| matches!(c, b'\'' | b'"' | b'`');
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    match class {
        Class::Single | Class::Double => !before.is_some_and(|c| word(c) || c == b'&' || quote(c)),
        Class::Integer | Class::Decimal => {
            !before.is_some_and(|c| word(c) || quote(c) || matches!(c, b'.' | b'@' | b':'))
                && !after.is_some_and(|c| word(c) || quote(c) || c == b'.')
        }
        Class::Other => false,
    }
}

/// The sentinel for literal `index` of `class`.
fn sentinel(class: Class, index: usize) -> String {
    match class {
        Class::Single => format!("'{STRING_MARK}{index}'"),
        Class::Double => format!("\"{STRING_MARK}{index}\""),
        Class::Integer => format!("{NUMBER_MARK}{index:0INDEX_DIGITS$}"),
        Class::Decimal => format!("{NUMBER_MARK}.{index:0INDEX_DIGITS$}"),
        // Refused before a sentinel is asked for.
        Class::Other => String::new(),
    }
}

/// The template made of the shape text's read form.
fn form_of(shape_form: ReadForm, literals: &Literals) -> Result<Form, Refusal> {
    let ReadForm::Source { target, key } = shape_form else {
        return Ok(Form::Untouched);
    };
    let key = match key {
        None => None,
        Some(KeyValue::Param(n)) => Some(KeySlot::Param(n)),
        Some(KeyValue::Literal(value)) => {
            let (negated, value) = match value.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, value.as_str()),
            };
            let index = sentinel_index(value, literals.spans()).ok_or(Refusal::Key)?;
            Some(KeySlot::Literal { index, negated })
        }
    };
    let target = match target {
        Ok(sql) => Ok(spliced(sql, literals.spans())?),
        Err(reason) => Err(reason),
    };
    Ok(Form::Source { target, key })
}

/// The index of the literal whose sentinel sqlparser reads as `value`;
/// `None` when `value` is no sentinel's, or the literal's class is not one
/// that sentinel stands for.
fn sentinel_index(value: &str, spans: &[Span]) -> Option<usize> {
    let (index, fits): (usize, fn(Class) -> bool) =
        if let Some(digits) = value.strip_prefix(STRING_MARK) {
            (parse_index(digits)?, |c| {
                matches!(c, Class::Single | Class::Double)
            })
        } else {
            let rest = value.strip_prefix(NUMBER_MARK)?;
            match rest.strip_prefix('.') {
                Some(digits) if digits.len() == INDEX_DIGITS => {
                    (parse_index(digits)?, |c| c == Class::Decimal)
                }
                None if rest.len() == INDEX_DIGITS => (parse_index(rest)?, |c| c == Class::Integer),
                _ => return None,
            }
        };
    fits(spans.get(index)?.class).then_some(index)
}

/// A literal index written in decimal digits.
fn parse_index(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&i| i < MAX_LITERALS)
}

/// Cuts every sentinel out of the rewritten `sql`; each literal's must be
/// there exactly once, and nothing else may look like one.
fn spliced(sql: String, spans: &[Span]) -> Result<Spliced, Refusal> {
    let b = sql.as_bytes();
    let mut found: Vec<(Range<usize>, usize)> = Vec::with_capacity(spans.len());
    for at in (0..b.len()).filter(|&i| b[i] == STRING_MARK_BYTE) {
        found.push(string_sentinel_at(b, at, spans).ok_or(Refusal::Sentinel)?);
    }
    let mark = NUMBER_MARK.as_bytes();
    for at in (0..b.len()).filter(|&i| b[i..].starts_with(mark)) {
        found.push(number_sentinel_at(b, at, spans).ok_or(Refusal::Sentinel)?);
    }
    let mut seen = [false; MAX_LITERALS];
    for (_, index) in &found {
        if std::mem::replace(&mut seen[*index], true) {
            return Err(Refusal::Sentinel);
        }
    }
    if found.len() != spans.len() {
        return Err(Refusal::Sentinel);
    }
    found.sort_by_key(|(range, _)| range.start);
    let mut text = String::with_capacity(sql.len());
    let mut holes = Vec::with_capacity(found.len());
    let mut last = 0;
    for (range, index) in found {
        text.push_str(&sql[last..range.start]);
        holes.push((text.len(), index));
        last = range.end;
    }
    text.push_str(&sql[last..]);
    Ok(Spliced { text, holes })
}

/// The string sentinel whose control character is at `at`: its bytes,
/// quotes included, and its literal's index.
fn string_sentinel_at(b: &[u8], at: usize, spans: &[Span]) -> Option<(Range<usize>, usize)> {
    let start = at.checked_sub(2)?;
    let quote = b[start];
    let class = match quote {
        b'\'' => Class::Single,
        b'"' => Class::Double,
        _ => return None,
    };
    let mark_end = start + 1 + STRING_MARK.len();
    if b.get(start + 1..mark_end)? != STRING_MARK.as_bytes() {
        return None;
    }
    let digits = b[mark_end..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let end = mark_end + digits;
    if b.get(end) != Some(&quote) {
        return None;
    }
    let index = parse_index(std::str::from_utf8(&b[mark_end..end]).ok()?)?;
    (spans.get(index)?.class == class).then_some((start..end + 1, index))
}

/// The number sentinel starting at `at`: its bytes and its literal's index.
fn number_sentinel_at(b: &[u8], at: usize, spans: &[Span]) -> Option<(Range<usize>, usize)> {
    let word = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.') || *c >= 0x80;
    if at.checked_sub(1).is_some_and(|i| word(&b[i])) {
        return None;
    }
    let mut digits_at = at + NUMBER_MARK.len();
    let class = if b.get(digits_at) == Some(&b'.') {
        digits_at += 1;
        Class::Decimal
    } else {
        Class::Integer
    };
    let end = digits_at + INDEX_DIGITS;
    let digits = std::str::from_utf8(b.get(digits_at..end)?).ok()?;
    if b.get(end).is_some_and(word) {
        return None;
    }
    let index = parse_index(digits)?;
    (spans.get(index)?.class == class).then_some((at..end, index))
}

impl Spliced {
    /// The SQL with the text's literals in the holes, as the client wrote
    /// them. One allocation, of the final size.
    pub(super) fn fill(&self, sql: &str, literals: &Literals) -> String {
        let spans = literals.spans();
        let extra: usize = self
            .holes
            .iter()
            .filter_map(|&(_, index)| spans.get(index))
            .map(|span| span.range().len())
            .sum();
        let mut out = String::with_capacity(self.text.len() + extra);
        let mut last = 0;
        for &(at, index) in &self.holes {
            out.push_str(&self.text[last..at]);
            if let Some(span) = spans.get(index) {
                out.push_str(&sql[span.range()]);
            }
            last = at;
        }
        out.push_str(&self.text[last..]);
        out
    }

    /// The SQL with the text's literals in the holes as sqlparser prints
    /// them: what the exact-text rewrite gives. `None` when a literal does
    /// not decode.
    pub(super) fn fill_printed(
        &self,
        inputs: &FormInputs<'_>,
        sql: &str,
        literals: &Literals,
    ) -> Option<String> {
        let spans = literals.spans();
        let mut out = String::with_capacity(self.text.len() + sql.len());
        let mut last = 0;
        for &(at, index) in &self.holes {
            out.push_str(&self.text[last..at]);
            let span = spans.get(index)?;
            out.push_str(&value::printed(
                inputs.dialect,
                span.class,
                &sql[span.range()],
            )?);
            last = at;
        }
        out.push_str(&self.text[last..]);
        Some(out)
    }
}

impl KeySlot {
    /// The sticky key of the text `sql`, whose literals are `literals`.
    pub(super) fn key<'t>(
        self,
        dialect: Dialect,
        sql: &'t str,
        literals: &Literals,
    ) -> Option<Key<'t>> {
        let (index, negated) = match self {
            KeySlot::Param(n) => return Some(Key::Param(n)),
            KeySlot::Literal { index, negated } => (index, negated),
        };
        let span = literals.spans().get(index)?;
        let literal = &sql[span.range()];
        let value = match span.class {
            Class::Integer | Class::Decimal => Cow::Borrowed(literal),
            Class::Single | Class::Double => value::string(dialect, literal)?,
            Class::Other => return None,
        };
        if !negated {
            return Some(Key::Literal(value));
        }
        value
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| Key::Literal(Cow::Owned(format!("-{value}"))))
    }
}

/// Whether `form`, filled with the literals of `sql`, gives `exact`.
fn gives(
    form: &Form,
    inputs: &FormInputs<'_>,
    sql: &str,
    literals: &Literals,
    exact: &ReadForm,
) -> bool {
    match (form, exact) {
        (Form::Untouched, ReadForm::Untouched) => true,
        (
            Form::Source { target, key },
            ReadForm::Source {
                target: exact_target,
                key: exact_key,
            },
        ) => {
            let same_target = match (target, exact_target) {
                (Ok(spliced), Ok(exact_sql)) => {
                    spliced.fill_printed(inputs, sql, literals).as_ref() == Some(exact_sql)
                }
                (Err(a), Err(b)) => a == b,
                _ => false,
            };
            let key = key.and_then(|slot| slot.key(inputs.dialect, sql, literals));
            let same_key = match (key, exact_key) {
                (None, None) => true,
                (Some(Key::Param(a)), Some(KeyValue::Param(b))) => a == *b,
                (Some(Key::Literal(a)), Some(KeyValue::Literal(b))) => a == b.as_str(),
                _ => false,
            };
            same_target && same_key
        }
        _ => false,
    }
}
