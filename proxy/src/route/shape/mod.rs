//! Read forms cached by statement *shape*: one rewrite per shape, each
//! text's own literals spliced into it.
//!
//! Clients that send SQL as text (PostgreSQL's simple protocol, MySQL
//! without server-side prepared statements) put a new literal in every
//! statement (`... WHERE aid = 48213`), so a cache of rewrites by exact
//! text never hits and sqlparser would run twice per read. Here a text is
//! split into its *skeleton* (every byte but its literals, each literal
//! replaced by a marker of its class) and its literals. The first text of a
//! skeleton is rewritten once with a *sentinel* in place of each literal
//! (`'0\x01sy3'`, `27182818280003`); where the sentinels land in the
//! rewritten SQL gives a template, and every later text of the skeleton
//! gets the template with its own literals spliced in, as the client wrote
//! them. The sticky key is kept as a slot too, and decoded from the text's
//! literal when asked for.
//!
//! A text takes this path only when the answer is certain to be the one
//! `rewrite::read_form` gives for the text itself (the shape's first text is
//! checked against it); otherwise it is rewritten by its exact text, as
//! before:
//! - per shape: a literal sqlparser reads otherwise than a plain string or
//!   number (`E'..'`, `$$..$$`, `X'..'`, `N'..'`, `_utf8'..'`, `U&'..'`,
//!   `0x1F`, `1_000`), a sentinel that does not come out of the rewrite
//!   exactly once, a sticky key that is not one literal, or a rewrite that
//!   differs from the first text's own;
//! - per text: a string literal that is not well formed, or whose value
//!   names the source table (the rewrite reads such strings), or more than
//!   [`MAX_LITERALS`] literals.
//!
//! The one difference from the exact-text rewrite is deliberate: literals
//! reach the server as the client wrote them, where sqlparser would print
//! its own reading of them (a MySQL `'a\\b'` would come out as `'a\b'`).
//!
//! Layout: `literals` finds a text's literals and hashes its skeleton in
//! the classifier's lexer pass; `value` decodes a literal as sqlparser
//! does; `template` builds a shape's template and splices a text into it;
//! `cache` is the cache of both kinds (by shape, and by exact text for
//! texts the shape path refuses).
//!
//! Like all of `route`, this module does no IO and never panics on client
//! text.

mod cache;
mod literals;
mod template;
mod value;

#[cfg(test)]
pub(crate) mod tests;

pub use cache::{FormCache, FormInputs, Key, TextForm};
pub use literals::MAX_LITERALS;
