//! The read-form cache: by shape when the shape path takes a text, by
//! exact text otherwise.
//!
//! A lookup costs one lexer pass over the text (which also hashes its
//! skeleton), one map lookup, a comparison of the stored skeleton with the
//! text's (no allocation), and a check of the text's string literals; the
//! rewritten SQL is spliced only when the read goes to the target.

use std::borrow::Cow;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;

use super::literals::{Class, Literals};
use super::template::{self, Form};
use super::value;
use crate::route::fingerprint::Dialect;
use crate::route::rewrite::{self, KeyValue, ReadForm, Scope, TableMap, Unroutable};

/// Entries kept at most in each of the two maps; half are dropped when
/// full.
const CACHE_ENTRIES: usize = 10_000;

/// The exact-text map's hasher: fixed keys, so every session's lookup of
/// one text lands on the same entry.
static FIXED: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// The shape map's hasher: its keys hold a hash already, so they are only
/// folded together (Fx-style) rather than hashed again.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a read form is computed under besides the text: the other
/// arguments of `rewrite::read_form`.
#[derive(Clone, Copy, Debug)]
pub struct FormInputs<'a> {
    /// The migration's dialect.
    pub dialect: Dialect,
    /// The migration's source and target tables.
    pub map: &'a TableMap,
    /// Where the session's unqualified names resolve.
    pub scope: Scope<'a>,
    /// The source column whose value keys a sticky rule, if any.
    pub sticky_column: Option<&'a str>,
}

impl FormInputs<'_> {
    /// The exact-text read form of `sql`.
    pub(super) fn read_form(&self, sql: &str) -> ReadForm {
        rewrite::read_form(self.dialect, sql, self.map, &self.scope, self.sticky_column)
    }
}

/// Read forms of texts under each migration, per routing generation.
#[derive(Debug, Default)]
pub struct FormCache {
    /// `(generation, migration index, hash of schema and skeleton)` → the
    /// shape's template, or that its texts are rewritten by exact text.
    shapes: DashMap<(u64, usize, u64), Arc<Shape>, BuildHasherDefault<Prehashed>>,
    /// `(generation, migration index, hash of schema and text)` → the
    /// read form of a text the shape path does not take.
    texts: DashMap<(u64, usize, u64), Arc<Exact>>,
}

/// One shape's entry.
#[derive(Debug)]
pub struct Shape {
    /// The skeleton: told apart from another with the same hash.
    skeleton: Box<[u8]>,
    /// The schema unqualified names resolved to.
    schema: Option<String>,
    /// The template; `None` when the shape's texts are rewritten by exact
    /// text.
    template: Option<Form>,
}

/// One text's entry in the exact-text map.
#[derive(Debug)]
pub struct Exact {
    /// The statement text.
    sql: String,
    /// The schema unqualified names resolved to.
    schema: Option<String>,
    /// The read form.
    form: ReadForm,
}

/// The read form of one text: the exact-text rewrite's, or a shape's
/// template with this text's literals.
///
/// The shaped variant carries the literal spans inline (under a kilobyte):
/// a form lives on the stack for one decision, and boxing them would cost
/// an allocation per lookup.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum TextForm<'t> {
    /// By exact text.
    Exact(Arc<Exact>),
    /// By shape.
    Shaped {
        /// The shape's entry (its template is `Some`).
        shape: Arc<Shape>,
        /// The text.
        sql: &'t str,
        /// The text's literals.
        literals: Literals,
        /// The text's dialect, for decoding its literals.
        dialect: Dialect,
    },
}

/// A sticky-key value: [`KeyValue`], borrowed from the text when it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// A literal's value.
    Literal(Cow<'a, str>),
    /// A bind parameter, 1-based.
    Param(usize),
}

impl FormCache {
    /// The read form of `sql` under migration `index` of routing
    /// `generation`.
    pub fn form<'t>(
        &self,
        generation: u64,
        index: usize,
        inputs: &FormInputs<'_>,
        sql: &'t str,
    ) -> TextForm<'t> {
        let schema = inputs.scope.default_schema;
        let Some(literals) = Literals::scan(inputs.dialect, schema, sql) else {
            return self.exact(generation, index, inputs, sql);
        };
        let key = (generation, index, literals.hash());
        let hit = self.shapes.get(&key).map(|entry| Arc::clone(&entry));
        match hit {
            Some(shape) => {
                let usable = shape.template.is_some()
                    && shape.schema.as_deref() == schema
                    && literals.skeleton_is(sql, &shape.skeleton)
                    && admits(inputs, sql, &literals);
                if usable {
                    return TextForm::Shaped {
                        shape,
                        sql,
                        literals,
                        dialect: inputs.dialect,
                    };
                }
            }
            None if admits(inputs, sql, &literals) => {
                let exact = inputs.read_form(sql);
                let template = template::build(inputs, sql, &literals, &exact).ok();
                let usable = template.is_some();
                let shape = Arc::new(Shape {
                    skeleton: literals.skeleton(sql),
                    schema: schema.map(str::to_string),
                    template,
                });
                insert(&self.shapes, key, Arc::clone(&shape));
                if usable {
                    return TextForm::Shaped {
                        shape,
                        sql,
                        literals,
                        dialect: inputs.dialect,
                    };
                }
                return TextForm::Exact(self.insert_exact(generation, index, schema, sql, exact));
            }
            // A text the shape path cannot take builds no template: the
            // shape's next text may.
            None => {}
        }
        self.exact(generation, index, inputs, sql)
    }

    /// The read form of `sql` by its exact text, cached by text.
    fn exact(
        &self,
        generation: u64,
        index: usize,
        inputs: &FormInputs<'_>,
        sql: &str,
    ) -> TextForm<'static> {
        let schema = inputs.scope.default_schema;
        if let Some(hit) = self.texts.get(&text_key(generation, index, schema, sql)) {
            if hit.sql == sql && hit.schema.as_deref() == schema {
                return TextForm::Exact(Arc::clone(&hit));
            }
        }
        let form = inputs.read_form(sql);
        TextForm::Exact(self.insert_exact(generation, index, schema, sql, form))
    }

    fn insert_exact(
        &self,
        generation: u64,
        index: usize,
        schema: Option<&str>,
        sql: &str,
        form: ReadForm,
    ) -> Arc<Exact> {
        let exact = Arc::new(Exact {
            sql: sql.to_string(),
            schema: schema.map(str::to_string),
            form,
        });
        let key = text_key(generation, index, schema, sql);
        insert(&self.texts, key, Arc::clone(&exact));
        exact
    }

    /// How many shapes are cached (tests).
    #[cfg(test)]
    pub(super) fn shape_count(&self) -> usize {
        self.shapes.len()
    }

    /// How many shapes have a template (tests).
    #[cfg(test)]
    pub(super) fn template_count(&self) -> usize {
        self.shapes.iter().filter(|s| s.template.is_some()).count()
    }
}

/// Whether the text's string literals let it take the shape path: each is
/// well formed, and none names the source table (the rewrite reads such a
/// string as the table: `to_regclass('api')`).
fn admits(inputs: &FormInputs<'_>, sql: &str, literals: &Literals) -> bool {
    literals.spans().iter().all(|span| match span.class {
        Class::Single | Class::Double => value::string(inputs.dialect, &sql[span.range()])
            .is_some_and(|v| !rewrite::text_names_table(&v, &inputs.map.source.name)),
        Class::Integer | Class::Decimal | Class::Other => true,
    })
}

fn text_key(generation: u64, index: usize, schema: Option<&str>, sql: &str) -> (u64, usize, u64) {
    let mut h = FIXED.build_hasher();
    schema.hash(&mut h);
    sql.hash(&mut h);
    (generation, index, h.finish())
}

/// Inserts into a bounded map, dropping half of it when full.
fn insert<V, S: BuildHasher + Clone>(
    map: &DashMap<(u64, usize, u64), V, S>,
    key: (u64, usize, u64),
    value: V,
) {
    if map.len() >= CACHE_ENTRIES {
        let mut keep = CACHE_ENTRIES / 2;
        map.retain(|_, _| {
            keep = keep.saturating_sub(1);
            keep > 0
        });
    }
    map.insert(key, value);
}

impl TextForm<'_> {
    /// Whether the text reads the source table.
    pub fn reads_source(&self) -> bool {
        match self {
            TextForm::Exact(exact) => matches!(exact.form, ReadForm::Source { .. }),
            TextForm::Shaped { shape, .. } => {
                matches!(shape.template, Some(Form::Source { .. }))
            }
        }
    }

    /// The sticky key, when a sticky column was asked for and the WHERE
    /// clause pins it.
    pub fn key(&self) -> Option<Key<'_>> {
        match self {
            TextForm::Exact(exact) => match &exact.form {
                ReadForm::Source {
                    key: Some(KeyValue::Literal(value)),
                    ..
                } => Some(Key::Literal(Cow::Borrowed(value))),
                ReadForm::Source {
                    key: Some(KeyValue::Param(n)),
                    ..
                } => Some(Key::Param(*n)),
                _ => None,
            },
            TextForm::Shaped {
                shape,
                sql,
                literals,
                dialect,
            } => match &shape.template {
                Some(Form::Source {
                    key: Some(slot), ..
                }) => slot.key(*dialect, sql, literals),
                _ => None,
            },
        }
    }

    /// The SQL to send when the read goes to the target, or why it must
    /// stay on the source; `None` when the text does not read the source.
    /// Allocates the SQL.
    pub fn target(&self) -> Option<Result<String, Unroutable>> {
        match self {
            TextForm::Exact(exact) => match &exact.form {
                ReadForm::Source { target, .. } => Some(target.clone()),
                ReadForm::Untouched => None,
            },
            TextForm::Shaped {
                shape,
                sql,
                literals,
                ..
            } => match &shape.template {
                Some(Form::Source { target, .. }) => Some(match target {
                    Ok(spliced) => Ok(spliced.fill(sql, literals)),
                    Err(reason) => Err(*reason),
                }),
                _ => None,
            },
        }
    }

    /// The form as `rewrite::read_form` states it, with the text's
    /// literals as written (tests).
    #[cfg(test)]
    pub(super) fn to_read_form(&self) -> ReadForm {
        if !self.reads_source() {
            return ReadForm::Untouched;
        }
        let key = self.key().map(|k| match k {
            Key::Literal(value) => KeyValue::Literal(value.into_owned()),
            Key::Param(n) => KeyValue::Param(n),
        });
        ReadForm::Source {
            target: self.target().unwrap_or(Err(Unroutable::Expression)),
            key,
        }
    }

    /// [`TextForm::to_read_form`] with the literals as sqlparser prints
    /// them, which is what `rewrite::read_form` gives (tests).
    #[cfg(test)]
    pub(super) fn to_printed_read_form(&self, inputs: &FormInputs<'_>) -> ReadForm {
        let TextForm::Shaped {
            shape,
            sql,
            literals,
            ..
        } = self
        else {
            return self.to_read_form();
        };
        match (self.to_read_form(), &shape.template) {
            (ReadForm::Source { key, .. }, Some(Form::Source { target, .. })) => {
                let target = match target {
                    Ok(spliced) => spliced
                        .fill_printed(inputs, sql, literals)
                        .ok_or(Unroutable::Expression),
                    Err(reason) => Err(*reason),
                };
                ReadForm::Source { target, key }
            }
            (form, _) => form,
        }
    }

    /// Whether the form came from a shape's template (tests).
    #[cfg(test)]
    pub(super) fn is_shaped(&self) -> bool {
        matches!(self, TextForm::Shaped { .. })
    }
}
