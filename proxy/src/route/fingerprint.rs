//! Statement fingerprints: a 64-bit hash of a statement's *shape*, used as
//! the classification cache key, and the lexer that finds a statement's
//! literals.
//!
//! Drivers and benchmarks send the same statement over and over with
//! different literal values (`... WHERE aid = 48213`), so caching by exact
//! text would miss on every query and sqlparser would run on the hot path.
//! The fingerprint is taken over the statement's token stream with every
//! literal replaced by one placeholder and whitespace dropped, so all those
//! texts share one cache entry.
//!
//! What the fingerprint keeps is exactly what can change a classification:
//! identifiers (quoted ones verbatim), keywords, operators, punctuation, bind
//! placeholders (`$1`, `?`) and comments (a comment such as
//! `/* switchyard:target */` can change routing). Two texts that differ in
//! any of those get different fingerprints (up to hash collisions).
//!
//! The lexer ([`scan`]) reports what it finds to a [`Tokens`] sink: the
//! fingerprint's hasher is one sink; `route::shape` collects the literals'
//! byte spans with another, so that a read's rewrite can be cached per shape
//! too. Each sink gets its own monomorphised copy of the lexer.
//!
//! This module must never allocate, do IO, or panic on any input: it runs
//! once per statement on the hot path, on bytes straight from clients.

pub use switchyard_core::sql::Dialect;

/// Marker hashed in place of every literal. 0xFF never occurs in UTF-8, so
/// it cannot be confused with text that was kept.
const LITERAL: u8 = 0xFF;
/// Marker hashed after every token. Whitespace is dropped entirely, so this
/// is what keeps `a b` apart from `ab` and `< =` apart from `<=`. 0xFE never
/// occurs in UTF-8 either.
const TOKEN_END: u8 = 0xFE;

/// FxHash-style word hasher: bytes are packed into 64-bit words and each
/// word costs one rotate, xor and multiply, so the multiply chain is one per
/// 8 bytes rather than one per byte. A final avalanche fixes Fx's weak
/// mixing of the last word. `route::shape` hashes a text's skeleton with
/// it too.
pub(crate) struct ShapeHasher {
    /// Running hash over the full words so far.
    hash: u64,
    /// Bytes not yet mixed, packed little-endian.
    word: u64,
    /// How many bytes `word` holds (0..8).
    filled: u32,
    /// Bytes hashed in total, folded in at the end so streams that differ
    /// only in trailing zero-packed bytes still differ.
    len: u64,
}

impl ShapeHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    pub(crate) fn new() -> ShapeHasher {
        ShapeHasher {
            hash: 0,
            word: 0,
            filled: 0,
            len: 0,
        }
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }

    pub(crate) fn byte(&mut self, b: u8) {
        self.word |= u64::from(b) << (self.filled * 8);
        self.filled += 1;
        self.len += 1;
        if self.filled == 8 {
            self.mix(self.word);
            self.word = 0;
            self.filled = 0;
        }
    }

    pub(crate) fn bytes(&mut self, mut bs: &[u8]) {
        loop {
            // Whole words straight from the input when aligned to a word.
            while self.filled == 0 && bs.len() >= 8 {
                let (chunk, rest) = bs.split_at(8);
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                self.mix(u64::from_le_bytes(word));
                self.len += 8;
                bs = rest;
            }
            let Some((&b, rest)) = bs.split_first() else {
                return;
            };
            self.byte(b);
            bs = rest;
        }
    }

    /// Ends a token: the stream stays unambiguous without whitespace.
    fn end_token(&mut self) {
        self.byte(TOKEN_END);
    }

    /// Mixes the tail and the length, then murmur3's fmix64 avalanche.
    pub(crate) fn finish(mut self) -> u64 {
        if self.filled > 0 {
            self.mix(self.word);
        }
        let mut h = self.hash ^ self.len;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// What kind of literal the lexer found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Literal {
    /// A number: digits with an optional fraction and exponent, or a
    /// `0x` / `0o` / `0b` integer, `_` separators allowed.
    Number,
    /// A string in quotes without a prefix: `'..'`, and in MySQL `".."`.
    /// The span starts and ends with the quote (unless unterminated).
    Quoted,
    /// A string with a one-letter prefix, which is part of the span:
    /// `E'..'`, `X'..'`, `B'..'`, `N'..'`.
    Prefixed,
    /// A PostgreSQL dollar-quoted string (`$$..$$`, `$tag$..$tag$`).
    DollarQuoted,
}

/// Where the lexer reports a statement's tokens.
pub trait Tokens {
    /// Whether the sink reads kept tokens at all. A sink that only wants
    /// literals says `false`, and its copy of the lexer skips the work of
    /// telling which words fold.
    const KEEPS: bool;

    /// A token kept as written: an identifier, quoted identifier,
    /// operator, punctuation, placeholder or comment.
    fn kept(&mut self, token: &[u8]);

    /// A keyword or unquoted identifier the server compares
    /// case-insensitively: the sink folds it to lower case.
    fn folded(&mut self, word: &[u8]);

    /// A literal at `start..end` of the text.
    fn literal(&mut self, kind: Literal, start: usize, end: usize);
}

/// Hashes the shape of `sql`: literals replaced by one marker, whitespace
/// dropped, keywords case-folded, everything else kept. One pass, no
/// allocation, never panics (unterminated strings and comments hash what is
/// there).
pub fn fingerprint(dialect: Dialect, sql: &str) -> u64 {
    let mut h = ShapeHasher::new();
    scan(dialect, sql, &mut h);
    h.finish()
}

impl Tokens for ShapeHasher {
    const KEEPS: bool = true;

    fn kept(&mut self, token: &[u8]) {
        self.bytes(token);
        self.end_token();
    }

    fn folded(&mut self, word: &[u8]) {
        for &c in word {
            self.byte(c.to_ascii_lowercase());
        }
        self.end_token();
    }

    fn literal(&mut self, _kind: Literal, _start: usize, _end: usize) {
        self.byte(LITERAL);
        self.end_token();
    }
}

/// Lexes `sql` into `sink`: whitespace is dropped, every other byte belongs
/// to exactly one token or literal. Never allocates, never panics
/// (unterminated strings and comments run to the end of the text).
pub fn scan<T: Tokens>(dialect: Dialect, sql: &str, sink: &mut T) {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        i = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => i + 1,
            b'-' if next == Some(b'-') && line_comment_starts(dialect, b, i) => {
                verbatim(sink, b, i, line_end(b, i))
            }
            b'#' if dialect == Dialect::Mysql => verbatim(sink, b, i, line_end(b, i)),
            b'/' if next == Some(b'*') => verbatim(sink, b, i, block_comment_end(dialect, b, i)),
            b'\'' => {
                let end = quoted_end(b, i, b'\'', dialect == Dialect::Mysql);
                literal(sink, Literal::Quoted, i, end)
            }
            b'"' if dialect == Dialect::Mysql => {
                literal(sink, Literal::Quoted, i, quoted_end(b, i, b'"', true))
            }
            b'"' => verbatim(sink, b, i, quoted_end(b, i, b'"', false)),
            b'`' if dialect == Dialect::Mysql => {
                verbatim(sink, b, i, quoted_end(b, i, b'`', false))
            }
            b'$' if dialect == Dialect::Postgres => dollar(sink, b, i),
            b'0'..=b'9' => number(sink, b, i),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) && !after_word(b, i) => {
                number(sink, b, i)
            }
            _ if is_ident_start(c) => word(sink, dialect, b, i),
            b'(' | b')' | b',' | b';' | b'.' | b'[' | b']' | b'{' | b'}' => {
                verbatim(sink, b, i, i + 1)
            }
            b'?' if dialect == Dialect::Mysql => verbatim(sink, b, i, i + 1),
            _ if is_operator(c) => verbatim(sink, b, i, operator_end(dialect, b, i)),
            // Anything else (control characters, stray backticks in
            // PostgreSQL): one token per byte, so nothing is lost.
            _ => verbatim(sink, b, i, i + 1),
        };
    }
}

/// Reports `b[start..end]` as one kept token and returns `end`.
fn verbatim<T: Tokens>(sink: &mut T, b: &[u8], start: usize, end: usize) -> usize {
    if T::KEEPS {
        sink.kept(&b[start..end]);
    }
    end
}

/// Reports a literal at `start..end` and returns `end`.
fn literal<T: Tokens>(sink: &mut T, kind: Literal, start: usize, end: usize) -> usize {
    sink.literal(kind, start, end);
    end
}

/// Bytes that may continue an unquoted identifier, as a table: this test
/// runs for nearly every byte of a statement.
static IDENT_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        c += 1;
    }
    table
};

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    IDENT_CHAR[usize::from(c)]
}

fn is_operator(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'?'
            | b':'
    )
}

/// Whether byte `i` directly follows an identifier or quoted identifier, so
/// that `t.5` stays a qualified name rather than `t` and a literal `.5`.
fn after_word(b: &[u8], i: usize) -> bool {
    i > 0 && (is_ident_char(b[i - 1]) || b[i - 1] == b'"' || b[i - 1] == b'`')
}

/// `--` at `i`: always a comment in PostgreSQL; in MySQL only when followed
/// by whitespace, a control character or the end (`1--1` is arithmetic there).
fn line_comment_starts(dialect: Dialect, b: &[u8], i: usize) -> bool {
    match dialect {
        Dialect::Postgres => true,
        Dialect::Mysql => b.get(i + 2).is_none_or(|&c| c <= b' '),
    }
}

/// End of a line comment starting at `i` (the newline is left as whitespace).
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p)
}

/// End of a block comment starting at `i` (just past `*/`, or the end of the
/// text when unterminated). PostgreSQL nests block comments; MySQL does not.
fn block_comment_end(dialect: Dialect, b: &[u8], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        if b[j] == b'/'
            && b.get(j + 1) == Some(&b'*')
            && (depth == 0 || dialect == Dialect::Postgres)
        {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// End of a quoted run opened by `quote` at `i`: just past the closing quote
/// (a doubled quote is an escaped quote), or the end of the text when
/// unterminated. With `backslash`, `\x` escapes any byte.
fn quoted_end(b: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        let c = b[j];
        if backslash && c == b'\\' {
            j += 2;
        } else if c == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// `$` in PostgreSQL: `$1` bind placeholder (kept), `$tag$..$tag$` or
/// `$$..$$` dollar-quoted string (a literal), or else an operator byte.
fn dollar<T: Tokens>(sink: &mut T, b: &[u8], i: usize) -> usize {
    let rest = &b[i + 1..];
    if rest.first().is_some_and(|c| c.is_ascii_digit()) {
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        return verbatim(sink, b, i, i + 1 + digits);
    }
    // A tag is an identifier without `$`: letters, digits (not first), `_`.
    let tag_len = if rest.first().is_some_and(|&c| is_ident_start(c)) {
        rest.iter()
            .take_while(|&&c| is_ident_char(c) && c != b'$')
            .count()
    } else {
        0
    };
    if rest.get(tag_len) != Some(&b'$') {
        return verbatim(sink, b, i, operator_end(Dialect::Postgres, b, i));
    }
    let delimiter = &b[i..i + tag_len + 2];
    let body = i + delimiter.len();
    let end = b[body..]
        .windows(delimiter.len())
        .position(|w| w == delimiter)
        .map_or(b.len(), |p| body + p + delimiter.len());
    literal(sink, Literal::DollarQuoted, i, end)
}

/// A numeric literal at `i` (digits, optional fraction and exponent, or a
/// `0x`/`0o`/`0b` integer, `_` separators allowed). If letters follow
/// directly (`123abc`, a legal MySQL identifier), the whole run is kept as a
/// word instead: replacing it could merge distinct identifiers.
fn number<T: Tokens>(sink: &mut T, b: &[u8], i: usize) -> usize {
    let digits_from = |j: usize, radix: u32| {
        j + b[j..]
            .iter()
            .take_while(|&&c| c == b'_' || char::from(c).is_digit(radix))
            .count()
    };
    let radix = match (b[i], b.get(i + 1).map(u8::to_ascii_lowercase)) {
        (b'0', Some(b'x')) => 16,
        (b'0', Some(b'o')) => 8,
        (b'0', Some(b'b')) => 2,
        _ => 10,
    };
    let mut j;
    if radix != 10 && b.get(i + 2).is_some_and(|&c| char::from(c).is_digit(radix)) {
        j = digits_from(i + 2, radix);
    } else {
        j = digits_from(i, 10);
        if b.get(j) == Some(&b'.') && b.get(j + 1) != Some(&b'.') {
            j = digits_from(j + 1, 10);
        }
        if matches!(b.get(j), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
            if b.get(j + 1 + sign).is_some_and(u8::is_ascii_digit) {
                j = digits_from(j + 1 + sign, 10);
            }
        }
    }
    if b.get(j).is_some_and(|&c| is_ident_char(c)) {
        let end = j + b[j..].iter().take_while(|&&c| is_ident_char(c)).count();
        return verbatim(sink, b, i, end);
    }
    literal(sink, Literal::Number, i, j)
}

/// An unquoted word at `i`: a keyword or identifier, or the prefix of a
/// prefixed string literal (`E'..'`, `X'..'`, `B'..'`, `N'..'`).
fn word<T: Tokens>(sink: &mut T, dialect: Dialect, b: &[u8], i: usize) -> usize {
    let end = i + b[i..].iter().take_while(|&&c| is_ident_char(c)).count();
    let w = &b[i..end];
    if w.len() == 1 && b.get(end) == Some(&b'\'') {
        let prefix = w[0].to_ascii_lowercase();
        if matches!(prefix, b'e' | b'x' | b'b' | b'n') {
            // E'..' is PostgreSQL's escape string; MySQL escapes everywhere.
            let backslash = dialect == Dialect::Mysql || prefix == b'e';
            return literal(
                sink,
                Literal::Prefixed,
                i,
                quoted_end(b, end, b'\'', backslash),
            );
        }
    }
    if !T::KEEPS {
        return end;
    }
    let fold = match dialect {
        // The server folds every unquoted identifier to lower case.
        Dialect::Postgres => true,
        // Table names may be case-sensitive, so only reserved words (which
        // cannot be unquoted identifiers) are folded. After a `.` even a
        // reserved word is an identifier (`db.Order`), so never fold there.
        Dialect::Mysql => (i == 0 || b[i - 1] != b'.') && is_mysql_reserved(w),
    };
    if fold {
        sink.folded(w);
    } else {
        sink.kept(w);
    }
    end
}

/// End of an operator run at `i`. PostgreSQL operators are runs of operator
/// bytes (`<=`, `->>`, `@>`); a run stops where a comment begins. In MySQL
/// `?` is a bind placeholder and `#` a comment, so both end a run.
fn operator_end(dialect: Dialect, b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < b.len() && is_operator(b[j]) {
        let next = b.get(j + 1).copied();
        let comment = (b[j] == b'-' && next == Some(b'-') && line_comment_starts(dialect, b, j))
            || (b[j] == b'/' && next == Some(b'*'));
        let mysql_stop = dialect == Dialect::Mysql && matches!(b[j], b'?' | b'#');
        if comment || mysql_stop {
            break;
        }
        j += 1;
    }
    j
}

/// Whether `w` is one of the MySQL reserved words common in application
/// SQL. Reserved words cannot be unquoted identifiers, so folding their case
/// can never merge two different table names. The list is deliberately
/// partial: a word missing here only costs an extra cache entry per
/// spelling, never a wrong classification.
fn is_mysql_reserved(w: &[u8]) -> bool {
    // Upper-case into a stack buffer once; the match compiles to a switch
    // on length and a few compares.
    let mut buf = [0u8; 24];
    let Some(upper) = buf.get_mut(..w.len()) else {
        return false;
    };
    upper.copy_from_slice(w);
    upper.make_ascii_uppercase();
    matches!(
        &*upper,
        b"ADD"
            | b"ALL"
            | b"ALTER"
            | b"ANALYZE"
            | b"AND"
            | b"AS"
            | b"ASC"
            | b"BETWEEN"
            | b"BINARY"
            | b"BY"
            | b"CALL"
            | b"CASE"
            | b"CHECK"
            | b"COLLATE"
            | b"COLUMN"
            | b"CONSTRAINT"
            | b"CONVERT"
            | b"CREATE"
            | b"CROSS"
            | b"CURRENT_DATE"
            | b"CURRENT_TIME"
            | b"CURRENT_TIMESTAMP"
            | b"DATABASE"
            | b"DEFAULT"
            | b"DELETE"
            | b"DESC"
            | b"DESCRIBE"
            | b"DISTINCT"
            | b"DIV"
            | b"DROP"
            | b"DUAL"
            | b"ELSE"
            | b"EXISTS"
            | b"EXPLAIN"
            | b"FALSE"
            | b"FOR"
            | b"FORCE"
            | b"FOREIGN"
            | b"FROM"
            | b"GRANT"
            | b"GROUP"
            | b"HAVING"
            | b"IF"
            | b"IGNORE"
            | b"IN"
            | b"INDEX"
            | b"INFILE"
            | b"INNER"
            | b"INSERT"
            | b"INTERVAL"
            | b"INTO"
            | b"IS"
            | b"JOIN"
            | b"KEY"
            | b"KILL"
            | b"LEFT"
            | b"LIKE"
            | b"LIMIT"
            | b"LOAD"
            | b"LOCK"
            | b"MOD"
            | b"NATURAL"
            | b"NOT"
            | b"NULL"
            | b"ON"
            | b"OR"
            | b"ORDER"
            | b"OUTER"
            | b"PRIMARY"
            | b"READ"
            | b"REFERENCES"
            | b"REGEXP"
            | b"RENAME"
            | b"REPLACE"
            | b"REVOKE"
            | b"RIGHT"
            | b"RLIKE"
            | b"SELECT"
            | b"SET"
            | b"SHOW"
            | b"STRAIGHT_JOIN"
            | b"TABLE"
            | b"THEN"
            | b"TO"
            | b"TRUE"
            | b"UNION"
            | b"UNIQUE"
            | b"UPDATE"
            | b"USE"
            | b"USING"
            | b"VALUES"
            | b"WHEN"
            | b"WHERE"
            | b"WITH"
            | b"WRITE"
            | b"XOR"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (a, b, same fingerprint?)
    type Row = (&'static str, &'static str, bool);

    fn check(dialect: Dialect, rows: &[Row]) {
        for (a, b, same) in rows {
            let (fa, fb) = (fingerprint(dialect, a), fingerprint(dialect, b));
            assert_eq!(fa == fb, *same, "{dialect:?}: {a:?} vs {b:?}");
        }
    }

    #[test]
    fn postgres_pairs() {
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", "SELECT abalance FROM pgbench_accounts WHERE aid = 7;", true),
            ("select a from t where b = 1", "SELECT  a\n\tFROM t WHERE b=2 ", true),
            ("SELECT * FROM t WHERE x = 1.5e3", "SELECT * FROM t WHERE x = .25", true),
            ("SELECT * FROM t WHERE x = 0x1F", "SELECT * FROM t WHERE x = 1_000", true),
            ("SELECT 'a' || 'it''s'", "SELECT '' || 'x'", true),
            ("SELECT 'a\\' FROM t", "SELECT 'b' FROM t", true),
            ("SELECT E'a\\'b' FROM t", "SELECT E'c' FROM t", true),
            ("SELECT e'\\\\' FROM t", "SELECT 'x' FROM t", true),
            ("SELECT $$a'b$$", "SELECT $fn$ x $$ y $fn$", true),
            ("SELECT $1 FROM t", "SELECT $2 FROM t", false),
            ("SELECT $1 FROM t", "SELECT 1 FROM t", false),
            ("SELECT * FROM T1", "select * from t1", true),
            ("SELECT * FROM t1", "SELECT * FROM t2", false),
            ("SELECT * FROM \"T\"", "SELECT * FROM \"t\"", false),
            ("SELECT * FROM \"a\"\"b\"", "SELECT * FROM \"a\"\"c\"", false),
            ("SELECT * FROM t WHERE a < b", "SELECT * FROM t WHERE a > b", false),
            ("SELECT * FROM t WHERE a <= b", "SELECT * FROM t WHERE a < = b", false),
            ("SELECT * FROM ab", "SELECT * FROM a b", false),
            ("/* switchyard:target */ SELECT 1", "SELECT 1", false),
            ("/* switchyard:target */ SELECT 1", "/* switchyard:source */ SELECT 1", false),
            ("SELECT 1 -- a\n", "SELECT 2 -- a\n", true),
            ("SELECT 1 -- a", "SELECT 1 -- b", false),
            ("SELECT /* /* nested */ x */ 1", "SELECT /* /* nested */ y */ 1", false),
            ("SELECT a FROM t", "SELECT a FROM t;", false),
            ("SELECT a FROM t", "SELECT b FROM t", false),
            ("SELECT a, b FROM t", "SELECT a FROM t", false),
            ("SELECT t.a FROM t", "SELECT t . a FROM t", true),
            ("SELECT x::int", "SELECT x :: int", true),
            ("SELECT 1 2", "SELECT 12", false),
            ("SELECT e 'x'", "SELECT e'x'", false),
            ("SELECT * FROM t WHERE a IN (1, 2)", "SELECT * FROM t WHERE a IN (3, 4)", true),
            ("SELECT a$b FROM t", "SELECT a FROM t", false),
            ("SELECT 'unterminated", "SELECT 'other", true),
            ("SELECT /* open", "SELECT /* open", true),
            ("SELECT $tag$ open", "SELECT $tag$ other", true),
        ];
        check(Dialect::Postgres, rows);
    }

    #[test]
    fn mysql_pairs() {
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("SELECT c FROM sbtest1 WHERE id=?", "select c from sbtest1 where id=?", true),
            ("SELECT c FROM sbtest1 WHERE id=5", "SELECT c FROM sbtest1 WHERE id = 6", true),
            ("SELECT c FROM sbtest1 WHERE id=?", "SELECT c FROM sbtest2 WHERE id=?", false),
            ("SELECT * FROM t WHERE a = 'it\\'s'", "SELECT * FROM t WHERE a = 'x'", true),
            ("SELECT * FROM t WHERE a = \"q\\\"uote\"", "SELECT * FROM t WHERE a = 'x'", true),
            ("SELECT * FROM t WHERE a = 'a''b'", "SELECT * FROM t WHERE a = 'x'", true),
            ("SELECT * FROM t WHERE a = X'0A'", "SELECT * FROM t WHERE a = 0x0B", true),
            ("SELECT * FROM `My Table`", "SELECT * FROM `my table`", false),
            // Table names may be case-sensitive: only reserved words fold.
            ("SELECT * FROM Users", "SELECT * FROM users", false),
            ("SELECT * FROM db.Order", "SELECT * FROM db.order", false),
            ("SELECT * FROM t1", "SELECT * FROM t2", false),
            ("SELECT * FROM 1abc", "SELECT * FROM 2abc", false),
            ("SELECT 1 # note\n", "SELECT 2 # note\n", true),
            ("SELECT 1 # a", "SELECT 1 # b", false),
            ("SELECT 1 -- a", "SELECT 1 -- b", false),
            ("SELECT 1--1", "SELECT 1-1", false),
            ("/*! STRAIGHT_JOIN */ SELECT 1", "SELECT 1", false),
            ("SELECT a FROM t WHERE b IS NULL", "select a from t where b is null", true),
            ("SELECT \"unterminated", "SELECT 'x", true),
            ("SELECT `open", "SELECT `open", true),
        ];
        check(Dialect::Mysql, rows);
    }

    #[test]
    fn dialects_lex_double_quotes_differently() {
        // A string in MySQL, an identifier in PostgreSQL.
        let (a, b) = ("SELECT \"x\"", "SELECT \"y\"");
        assert_eq!(
            fingerprint(Dialect::Mysql, a),
            fingerprint(Dialect::Mysql, b)
        );
        assert_ne!(
            fingerprint(Dialect::Postgres, a),
            fingerprint(Dialect::Postgres, b)
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            fingerprint(Dialect::Postgres, &s);
            fingerprint(Dialect::Mysql, &s);
        }

        #[test]
        fn never_panics_on_sql_bytes(s in "[-a-z0-9 '\"`$./*#\\\\?;:E_\n]{0,40}") {
            fingerprint(Dialect::Postgres, &s);
            fingerprint(Dialect::Mysql, &s);
        }
    }
}
