//! A text's literals and its skeleton: where each literal is, what class
//! it is, and a hash of everything else, from one pass of the lexer the
//! classifier fingerprints with.
//!
//! Never allocates: the spans live in a fixed array.

use std::ops::Range;

use crate::route::fingerprint::{scan, Dialect, Literal, ShapeHasher, Tokens};

/// Most literals a text may have to take the shape path. A text with more
/// (a long `IN` list) is rewritten by its exact text; the span array lives
/// on the stack of every lookup, so it stays small.
pub const MAX_LITERALS: usize = 64;

/// Digits an integer literal may have to be a plain [`Class::Integer`]:
/// sqlparser reads a number as `u64` or `i64` in some places (type
/// modifiers), where a longer one fails to parse.
const MAX_INTEGER_DIGITS: usize = 18;

/// What kind of literal a span is, as far as it can change how sqlparser
/// reads the text around it. Part of the skeleton: two texts of one shape
/// have literals of the same classes in the same places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Digits only, at most [`MAX_INTEGER_DIGITS`], no leading zero.
    Integer,
    /// A decimal number with a fraction or an exponent (`1.5`, `.5`, `2e3`).
    Decimal,
    /// A string in single quotes, no prefix.
    Single,
    /// A MySQL string in double quotes, no prefix.
    Double,
    /// A literal the shape path does not take: prefixed and dollar-quoted
    /// strings, `0x` / `0o` / `0b` numbers, `_` separators, long integers
    /// and integers with a leading zero.
    Other,
}

impl Class {
    /// The byte that stands for a literal of this class in a skeleton.
    /// None of them occurs in UTF-8, so a skeleton is unambiguous.
    pub(super) fn marker(self) -> u8 {
        match self {
            Class::Integer => 0xF8,
            Class::Decimal => 0xF9,
            Class::Single => 0xFA,
            Class::Double => 0xFB,
            Class::Other => 0xFC,
        }
    }

    fn of(kind: Literal, text: &[u8]) -> Class {
        match kind {
            Literal::Quoted if text.first() == Some(&b'\'') => Class::Single,
            Literal::Quoted => Class::Double,
            Literal::Number => {
                if text.iter().all(u8::is_ascii_digit) {
                    // A leading zero is refused too: where sqlparser reads
                    // the number as an integer, it prints `007` as `7`.
                    if text.len() <= MAX_INTEGER_DIGITS && (text.len() == 1 || text[0] != b'0') {
                        Class::Integer
                    } else {
                        Class::Other
                    }
                } else if text
                    .iter()
                    .all(|c| matches!(c, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    Class::Decimal
                } else {
                    Class::Other
                }
            }
            Literal::Prefixed | Literal::DollarQuoted => Class::Other,
        }
    }
}

/// One literal: its bytes in the text and its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    /// First byte.
    start: u32,
    /// One past the last byte.
    end: u32,
    /// What kind of literal it is.
    pub(super) class: Class,
}

impl Span {
    /// The span's bytes in the text.
    pub(super) fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

const NO_SPAN: Span = Span {
    start: 0,
    end: 0,
    class: Class::Other,
};

/// One text's literals, in text order, and the hash of its skeleton and
/// schema: the shape cache's key.
#[derive(Clone, Debug)]
pub struct Literals {
    /// The first `count` entries are the literals.
    spans: [Span; MAX_LITERALS],
    /// How many literals the text has.
    count: usize,
    /// Hash of the schema and the skeleton.
    hash: u64,
}

impl Literals {
    /// Lexes `sql` once: finds its literals and hashes its skeleton together
    /// with the session's schema (unqualified names resolve by it, so it is
    /// part of the shape). `None` when the text has more than
    /// [`MAX_LITERALS`] literals or is too long to index with `u32`.
    pub fn scan(dialect: Dialect, schema: Option<&str>, sql: &str) -> Option<Literals> {
        if u32::try_from(sql.len()).is_err() {
            return None;
        }
        let mut hasher = ShapeHasher::new();
        match schema {
            Some(schema) => {
                hasher.bytes(schema.as_bytes());
                hasher.byte(0xFF);
            }
            None => hasher.byte(0xFE),
        }
        let mut collector = Collector {
            text: sql.as_bytes(),
            literals: Literals {
                spans: [NO_SPAN; MAX_LITERALS],
                count: 0,
                hash: 0,
            },
            overflow: false,
            hasher,
            last: 0,
        };
        scan(dialect, sql, &mut collector);
        let Collector {
            text,
            mut literals,
            overflow,
            mut hasher,
            last,
        } = collector;
        if overflow {
            return None;
        }
        hasher.bytes(&text[last..]);
        literals.hash = hasher.finish();
        Some(literals)
    }

    /// The hash of the schema and the skeleton.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The literals, in text order.
    pub(super) fn spans(&self) -> &[Span] {
        &self.spans[..self.count]
    }

    /// The skeleton of `sql` (whose literals these are): its bytes with
    /// each literal replaced by its class's marker.
    pub(super) fn skeleton(&self, sql: &str) -> Box<[u8]> {
        let b = sql.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut last = 0;
        for span in self.spans() {
            out.extend_from_slice(&b[last..span.range().start]);
            out.push(span.class.marker());
            last = span.range().end;
        }
        out.extend_from_slice(&b[last..]);
        out.into_boxed_slice()
    }

    /// Whether `skeleton` is the skeleton of `sql`, without building it:
    /// what rules out a hash collision on a cache hit.
    pub(super) fn skeleton_is(&self, sql: &str, skeleton: &[u8]) -> bool {
        let b = sql.as_bytes();
        let mut rest = skeleton;
        let mut last = 0;
        for span in self.spans() {
            let gap = &b[last..span.range().start];
            let Some((stored, tail)) = rest.split_at_checked(gap.len()) else {
                return false;
            };
            if stored != gap || tail.first() != Some(&span.class.marker()) {
                return false;
            }
            rest = &tail[1..];
            last = span.range().end;
        }
        rest == &b[last..]
    }
}

/// The lexer's sink while scanning for literals: records each span and
/// hashes the bytes between them.
struct Collector<'a> {
    /// The text being scanned.
    text: &'a [u8],
    /// The spans found so far (`hash` is set at the end).
    literals: Literals,
    /// More literals than fit: the text takes the exact-text path.
    overflow: bool,
    /// Hash of the skeleton so far.
    hasher: ShapeHasher,
    /// End of the last literal: the skeleton bytes from here on are not
    /// hashed yet.
    last: usize,
}

impl Tokens for Collector<'_> {
    const KEEPS: bool = false;

    fn kept(&mut self, _token: &[u8]) {}

    fn folded(&mut self, _word: &[u8]) {}

    fn literal(&mut self, kind: Literal, start: usize, end: usize) {
        let literals = &mut self.literals;
        let Some(slot) = literals.spans.get_mut(literals.count) else {
            self.overflow = true;
            return;
        };
        let class = Class::of(kind, &self.text[start..end]);
        // The text is at most u32::MAX bytes long (checked in `scan`).
        *slot = Span {
            start: start as u32,
            end: end as u32,
            class,
        };
        literals.count += 1;
        self.hasher.bytes(&self.text[self.last..start]);
        self.hasher.byte(class.marker());
        self.last = end;
    }
}
