//! Statement classification: what kind of statement a text is (read, write,
//! DDL, transaction control, other) and which tables it touches, so the
//! routing step can decide per statement.
//!
//! Classification runs on every statement, so it is cached by the
//! statement's shape ([`fingerprint`]): sqlparser runs only on the first
//! text of each shape, and every later text with the same shape but other
//! literal values costs one hash pass and one map lookup. Results are shared
//! as `Arc<Statement>`.
//!
//! The AST is walked by hand ([`Collector`]), written before sqlparser's
//! `visitor` feature was enabled; the walk tracks CTE scopes. It covers the places a
//! relation can appear in DML and queries (FROM, joins, subqueries in
//! expressions, CTE bodies, INSERT sources, UPDATE ... FROM, DELETE ...
//! USING, MERGE) and the object of the common DDL statements.
//!
//! This module must never do IO (beyond the `metrics` counter) and must
//! never panic or fail on client input: text that sqlparser cannot parse is
//! classified `parsed: false` and relayed untouched by the caller.

use std::sync::Arc;

use dashmap::DashMap;
use sqlparser::ast::{
    self, CommentObject, CopySource, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, JoinConstraint, JoinOperator, MergeAction, ObjectName,
    ObjectNamePart, ObjectType, OnConflictAction, OnInsert, OrderByKind, Query, Select, SelectItem,
    SetExpr, TableFactor, TableObject, TableWithJoins, UpdateTableFromKind,
};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace};

use super::fingerprint::fingerprint;
pub use super::fingerprint::Dialect;

/// What a statement does, as far as routing cares. For a text holding
/// several statements the strongest kind wins: Write > Ddl > Read >
/// Transaction > Other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// Reads rows only: SELECT, VALUES, TABLE, COPY ... TO.
    Read,
    /// Changes rows: INSERT, UPDATE, DELETE, MERGE, REPLACE, COPY ... FROM,
    /// LOAD DATA, TRUNCATE, SELECT ... INTO (PostgreSQL), or a query with a
    /// data-modifying CTE.
    Write,
    /// Changes schema or privileges: CREATE, ALTER, DROP, RENAME, COMMENT
    /// ON, GRANT, REVOKE.
    Ddl,
    /// Transaction control: BEGIN, START TRANSACTION, COMMIT, ROLLBACK,
    /// SAVEPOINT, RELEASE, SET TRANSACTION.
    Transaction,
    /// Everything else: SET, SHOW, USE, LISTEN, NOTIFY, PREPARE, EXECUTE,
    /// DEALLOCATE, EXPLAIN, empty text, and text that did not parse.
    Other,
}

impl StatementKind {
    /// Strength for combining several statements: a text is as strong as
    /// its strongest statement.
    fn rank(self) -> u8 {
        match self {
            StatementKind::Other => 0,
            StatementKind::Transaction => 1,
            StatementKind::Read => 2,
            StatementKind::Ddl => 3,
            StatementKind::Write => 4,
        }
    }
}

/// A relation a statement reads or writes, named as the server resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Schema (PostgreSQL) or database (MySQL) when the name was qualified.
    /// PostgreSQL: lower-cased unless quoted. MySQL: as written.
    pub schema: Option<String>,
    /// Table name. PostgreSQL: lower-cased unless quoted. MySQL: as written,
    /// without backticks (table names may be case-sensitive there).
    pub name: String,
}

/// The classification of one client text (one or more statements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The strongest kind among the statements of the text.
    pub kind: StatementKind,
    /// Every relation read or written, including in subqueries, joins and
    /// CTE bodies (CTE names themselves excluded), in order of first
    /// appearance, without duplicates.
    pub tables: Vec<TableRef>,
    /// False when sqlparser could not parse the text: then `kind` is Other,
    /// `tables` is empty and `count` is 1, and the caller must relay the
    /// text untouched to the source.
    pub parsed: bool,
    /// Number of statements in the text (0 for empty or comment-only text).
    pub count: usize,
    /// True when a query takes row locks (FOR UPDATE, FOR SHARE, LOCK IN
    /// SHARE MODE), so it must run where the writes run.
    pub locking: bool,
}

/// Classifies statements, caching results by `(dialect, fingerprint)`.
/// Shared by all sessions; lookups are lock-striped by `DashMap`.
pub struct Classifier {
    /// Shape → classification. Holds at most about `capacity` entries.
    cache: DashMap<(Dialect, u64), Arc<Statement>>,
    /// Entry count at which half of the cache is evicted before an insert.
    capacity: usize,
}

impl Classifier {
    /// A classifier caching at most `capacity` shapes (at least 1).
    pub fn new(capacity: usize) -> Classifier {
        Classifier {
            cache: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Classifies `sql`. A cache hit costs one fingerprint pass and one
    /// lookup; a miss parses with sqlparser and caches the result, parsed or
    /// not. Every unparsed occurrence (hit or miss) increments
    /// `switchyard_unparsed_total{protocol}`.
    pub fn classify(&self, dialect: Dialect, sql: &str) -> Arc<Statement> {
        let key = (dialect, fingerprint(dialect, sql));
        let cached = self.cache.get(&key).map(|e| Arc::clone(e.value()));
        let statement = cached.unwrap_or_else(|| {
            let fresh = Arc::new(analyze(dialect, sql));
            self.insert(key, Arc::clone(&fresh));
            fresh
        });
        if !statement.parsed {
            metrics::counter!(
                switchyard_core::names::UNPARSED_TOTAL,
                "protocol" => protocol_label(dialect)
            )
            .increment(1);
        }
        statement
    }

    /// Number of cached shapes.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no shape is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Inserts, evicting first when full. Eviction drops arbitrary entries
    /// until half the capacity is left: one O(capacity) `retain` every
    /// capacity/2 inserts is O(1) amortised, needs no per-entry bookkeeping
    /// on the hit path (unlike LRU), and keeps half the cache warm (unlike
    /// clearing). Applications have few shapes, so reaching capacity at all
    /// means churn, where recency buys little. Concurrent misses may
    /// overshoot `capacity` by the number of racing inserts.
    fn insert(&self, key: (Dialect, u64), statement: Arc<Statement>) {
        if self.cache.len() >= self.capacity {
            let mut keep = self.capacity / 2;
            self.cache.retain(|_, _| {
                let kept = keep > 0;
                keep = keep.saturating_sub(1);
                kept
            });
        }
        self.cache.insert(key, statement);
    }
}

/// The `protocol` label value for a dialect.
fn protocol_label(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "postgres",
        Dialect::Mysql => "mysql",
    }
}

/// Classifies `sql` without the cache.
fn analyze(dialect: Dialect, sql: &str) -> Statement {
    match parse(dialect, sql) {
        Ok(statements) => {
            let mut collector = Collector::new(dialect);
            let mut kind = StatementKind::Other;
            for statement in &statements {
                let k = collector.statement(statement);
                if k.rank() > kind.rank() {
                    kind = k;
                }
            }
            Statement {
                kind,
                tables: collector.tables,
                parsed: true,
                count: statements.len(),
                locking: collector.locking,
            }
        }
        Err(tokens) => load_data(dialect, &tokens).unwrap_or(Statement {
            kind: StatementKind::Other,
            tables: Vec::new(),
            parsed: false,
            count: 1,
            locking: false,
        }),
    }
}

/// Tokenizes and parses. Two token-level patches cover syntax sqlparser
/// 0.63 rejects but servers accept: MySQL's `LOCK IN SHARE MODE` (same as
/// `FOR SHARE`) and PostgreSQL's `TABLE t` statement (same as `SELECT * FROM
/// t`). On failure returns the tokens (empty if tokenizing failed) for the
/// LOAD DATA fallback.
pub(crate) fn parse(
    dialect: Dialect,
    sql: &str,
) -> Result<Vec<ast::Statement>, Vec<TokenWithSpan>> {
    let parser_dialect: &dyn sqlparser::dialect::Dialect = match dialect {
        Dialect::Postgres => &PostgreSqlDialect {},
        Dialect::Mysql => &MySqlDialect {},
    };
    let Ok(mut tokens) = Tokenizer::new(parser_dialect, sql).tokenize_with_location() else {
        return Err(Vec::new());
    };
    if too_deep(&tokens) {
        return Err(Vec::new());
    }
    match dialect {
        Dialect::Mysql => patch_lock_in_share_mode(&mut tokens),
        Dialect::Postgres => patch_table_statement(&mut tokens),
    }
    Parser::new(parser_dialect)
        .with_tokens_with_locations(tokens.clone())
        .parse_statements()
        .map_err(|_| tokens)
}

/// Most operators allowed along one path of nested expressions. sqlparser
/// builds operator chains (`a OR b OR ...`, `x::t::t ...`, UNION chains)
/// left-deep without a depth limit, and dropping (or printing, or cloning)
/// such an AST recurses once per level: some 40 000 levels overflow a 2 MiB
/// tokio worker stack and abort the whole proxy. 4 000 leaves a wide margin
/// and still admits every ORM-generated statement we know of.
const MAX_OPERATOR_DEPTH: usize = 4000;

/// Whether the AST of `tokens` could be deeper than `MAX_OPERATOR_DEPTH`.
/// Over-approximates the depth by the operator tokens on the current path:
/// per open bracket level, the operators since that level's last comma (a
/// comma separates list items, which do not nest).
fn too_deep(tokens: &[TokenWithSpan]) -> bool {
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0usize;
    for token in tokens {
        let counts = match &token.token {
            Token::LParen | Token::LBracket | Token::LBrace => {
                levels.push(0);
                false
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if levels.len() > 1 {
                    depth -= levels.pop().unwrap_or(0);
                }
                false
            }
            Token::Comma | Token::SemiColon => {
                if let Some(level) = levels.last_mut() {
                    depth -= *level;
                    *level = 0;
                }
                false
            }
            Token::Word(w) => w.quote_style.is_none() && is_operator_keyword(w.keyword),
            // Operands and separators. Anything not listed counts, which
            // errs on the safe side.
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::Placeholder(_)
            | Token::Period
            | Token::EOF
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::HexStringLiteral(_) => false,
            _ => true,
        };
        if let (true, Some(level)) = (counts, levels.last_mut()) {
            *level += 1;
            depth += 1;
            if depth > MAX_OPERATOR_DEPTH {
                return true;
            }
        }
    }
    false
}

/// Keywords that sqlparser parses as infix or postfix operators.
fn is_operator_keyword(keyword: Keyword) -> bool {
    use Keyword as K;
    matches!(
        keyword,
        K::AND
            | K::OR
            | K::XOR
            | K::IS
            | K::NOT
            | K::LIKE
            | K::ILIKE
            | K::RLIKE
            | K::REGEXP
            | K::SIMILAR
            | K::BETWEEN
            | K::IN
            | K::DIV
            | K::MOD
            | K::COLLATE
            | K::AT
            | K::UNION
            | K::EXCEPT
            | K::INTERSECT
            | K::MINUS
            | K::OVERLAPS
            | K::MEMBER
    )
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn is_blank(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

fn keyword(word: &str) -> TokenWithSpan {
    TokenWithSpan::wrap(Token::make_keyword(word))
}

/// Indices of the non-whitespace tokens.
fn significant(tokens: &[TokenWithSpan]) -> Vec<usize> {
    (0..tokens.len())
        .filter(|&i| !is_blank(&tokens[i].token))
        .collect()
}

/// Rewrites `LOCK IN SHARE MODE` to `FOR SHARE`.
fn patch_lock_in_share_mode(tokens: &mut Vec<TokenWithSpan>) {
    let sig = significant(tokens);
    let Some(at) = sig.windows(4).rposition(|w| {
        ["LOCK", "IN", "SHARE", "MODE"]
            .iter()
            .zip(w)
            .all(|(word, &i)| is_word(&tokens[i].token, word))
    }) else {
        return;
    };
    let (first, last) = (sig[at], sig[at + 3]);
    let space = TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space));
    tokens.splice(first..=last, [keyword("FOR"), space, keyword("SHARE")]);
    // Several `LOCK IN SHARE MODE` in one text are patched one at a time.
    patch_lock_in_share_mode(tokens);
}

/// Rewrites a statement-leading `TABLE` to `SELECT * FROM`.
fn patch_table_statement(tokens: &mut Vec<TokenWithSpan>) {
    let mut at_start = true;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i].token;
        if at_start && is_word(token, "TABLE") {
            let space = || TokenWithSpan::wrap(Token::Whitespace(Whitespace::Space));
            let star = TokenWithSpan::wrap(Token::Mul);
            tokens.splice(
                i..=i,
                [keyword("SELECT"), space(), star, space(), keyword("FROM")],
            );
            i += 5;
            at_start = false;
            continue;
        }
        if !is_blank(token) {
            at_start = *token == Token::SemiColon;
        }
        i += 1;
    }
}

/// MySQL `LOAD DATA ... INTO TABLE name`, which sqlparser 0.63 only parses
/// in Hive's form: a write to `name`. Classified from the tokens.
fn load_data(dialect: Dialect, tokens: &[TokenWithSpan]) -> Option<Statement> {
    if dialect != Dialect::Mysql {
        return None;
    }
    let sig: Vec<&Token> = significant(tokens)
        .iter()
        .map(|&i| &tokens[i].token)
        .collect();
    if !(sig.len() > 2 && is_word(sig[0], "LOAD") && is_word(sig[1], "DATA")) {
        return None;
    }
    let into = sig
        .windows(2)
        .position(|w| is_word(w[0], "INTO") && is_word(w[1], "TABLE"))?;
    let mut parts = Vec::new();
    let mut i = into + 2;
    while let Some(Token::Word(w)) = sig.get(i) {
        parts.push(w.value.clone());
        if sig.get(i + 1) != Some(&&Token::Period) {
            break;
        }
        i += 2;
    }
    let name = parts.pop()?;
    Some(Statement {
        kind: StatementKind::Write,
        tables: vec![TableRef {
            schema: parts.pop(),
            name,
        }],
        parsed: true,
        count: 1,
        locking: false,
    })
}

/// Walks statements, collecting tables and the facts that decide the kind.
struct Collector {
    /// Decides identifier case folding.
    dialect: Dialect,
    /// Relations seen so far, in order, without duplicates.
    tables: Vec<TableRef>,
    /// CTE names in scope: references to them are not relations.
    ctes: Vec<String>,
    /// Set when the current statement modifies data somewhere inside a
    /// query (data-modifying CTE, SELECT INTO).
    writes: bool,
    /// Set when any query takes row locks.
    locking: bool,
}

impl Collector {
    fn new(dialect: Dialect) -> Collector {
        Collector {
            dialect,
            tables: Vec::new(),
            ctes: Vec::new(),
            writes: false,
            locking: false,
        }
    }

    /// An identifier as the server resolves it.
    fn ident(&self, ident: &Ident) -> String {
        match (self.dialect, ident.quote_style) {
            (Dialect::Postgres, None) => ident.value.to_ascii_lowercase(),
            _ => ident.value.clone(),
        }
    }

    /// Records a relation by name (last two parts of the name), unless it
    /// names a CTE in scope.
    fn relation(&mut self, name: &ObjectName) {
        let mut parts = name.0.iter().rev().map(|part| match part {
            ObjectNamePart::Identifier(ident) => self.ident(ident),
            ObjectNamePart::Function(f) => self.ident(&f.name),
        });
        let Some(name) = parts.next() else { return };
        let schema = parts.next();
        if schema.is_none() && self.ctes.contains(&name) {
            return;
        }
        let table = TableRef { schema, name };
        if !self.tables.contains(&table) {
            self.tables.push(table);
        }
    }

    /// Collects one statement's tables and returns its kind.
    fn statement(&mut self, statement: &ast::Statement) -> StatementKind {
        use ast::Statement as S;
        use StatementKind::{Ddl, Other, Read, Transaction, Write};
        self.writes = false;
        match statement {
            S::Query(q) => {
                self.query(q);
                if self.writes {
                    Write
                } else {
                    Read
                }
            }
            S::Insert(_) | S::Update(_) | S::Delete(_) | S::Merge(_) => {
                self.dml(statement);
                Write
            }
            S::Copy { source, to, .. } => {
                match source {
                    CopySource::Table { table_name, .. } => self.relation(table_name),
                    CopySource::Query(q) => self.query(q),
                }
                if *to {
                    Read
                } else {
                    Write
                }
            }
            S::LoadData { table_name, .. } => {
                self.relation(table_name);
                Write
            }
            S::Truncate(t) => {
                t.table_names.iter().for_each(|t| self.relation(&t.name));
                Write
            }
            S::CreateTable(c) => {
                self.relation(&c.name);
                if let Some(q) = &c.query {
                    self.query(q);
                }
                Ddl
            }
            S::CreateView(v) => {
                self.relation(&v.name);
                self.query(&v.query);
                Ddl
            }
            S::CreateIndex(c) => {
                self.relation(&c.table_name);
                Ddl
            }
            S::AlterTable(a) => {
                self.relation(&a.name);
                Ddl
            }
            S::Drop {
                object_type,
                names,
                table,
                ..
            } => {
                if matches!(
                    object_type,
                    ObjectType::Table | ObjectType::View | ObjectType::MaterializedView
                ) {
                    names.iter().for_each(|n| self.relation(n));
                }
                if let Some(t) = table {
                    self.relation(t);
                }
                Ddl
            }
            S::RenameTable(renames) => {
                for r in renames {
                    self.relation(&r.old_name);
                    self.relation(&r.new_name);
                }
                Ddl
            }
            S::Comment {
                object_type,
                object_name,
                ..
            } => {
                if *object_type == CommentObject::Table {
                    self.relation(object_name);
                }
                Ddl
            }
            S::AlterSchema(_)
            | S::AlterIndex { .. }
            | S::AlterView { .. }
            | S::AlterFunction(_)
            | S::AlterType(_)
            | S::AlterCollation(_)
            | S::AlterOperator(_)
            | S::AlterOperatorFamily(_)
            | S::AlterOperatorClass(_)
            | S::AlterTextSearch(_)
            | S::AlterRole { .. }
            | S::AlterPolicy(_)
            | S::AlterUser(_)
            | S::CreateVirtualTable { .. }
            | S::CreateRole(_)
            | S::CreateServer(_)
            | S::CreatePolicy(_)
            | S::CreateOperator(_)
            | S::CreateOperatorFamily(_)
            | S::CreateOperatorClass(_)
            | S::CreateTextSearch(_)
            | S::CreateExtension(_)
            | S::CreateCollation(_)
            | S::CreateSchema { .. }
            | S::CreateDatabase { .. }
            | S::CreateFunction(_)
            | S::CreateTrigger(_)
            | S::CreateProcedure { .. }
            | S::CreateSequence { .. }
            | S::CreateDomain(_)
            | S::CreateType { .. }
            | S::CreateUser(_)
            | S::DropFunction(_)
            | S::DropDomain(_)
            | S::DropProcedure { .. }
            | S::DropPolicy(_)
            | S::DropExtension(_)
            | S::DropOperator(_)
            | S::DropOperatorFamily(_)
            | S::DropOperatorClass(_)
            | S::DropTrigger(_)
            | S::Grant(_)
            | S::Revoke(_)
            | S::Deny(_) => Ddl,
            S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Savepoint { .. }
            | S::ReleaseSavepoint { .. }
            | S::Set(ast::Set::SetTransaction { .. }) => Transaction,
            // EXPLAIN ANALYZE runs its statement, so it is what it runs;
            // plain EXPLAIN and PREPARE only name their statement's tables.
            S::Explain {
                analyze, statement, ..
            } => self.wrapped(statement, *analyze),
            S::Prepare { statement, .. } => self.wrapped(statement, false),
            S::ExplainTable { table_name, .. } => {
                self.relation(table_name);
                Other
            }
            S::Lock(l) => {
                l.tables.iter().for_each(|t| self.relation(&t.name));
                Other
            }
            S::LockTables { tables } => {
                for t in tables {
                    self.relation(&ObjectName(vec![ObjectNamePart::Identifier(
                        t.table.clone(),
                    )]));
                }
                Other
            }
            _ => Other,
        }
    }

    /// A statement wrapping another (EXPLAIN, PREPARE): the inner tables
    /// count; the inner kind and locks only when the wrapper executes it.
    fn wrapped(&mut self, inner: &ast::Statement, executes: bool) -> StatementKind {
        let locking = self.locking;
        let kind = self.statement(inner);
        if executes {
            kind
        } else {
            self.locking = locking;
            StatementKind::Other
        }
    }

    /// INSERT / UPDATE / DELETE / MERGE, top level or inside a CTE.
    fn dml(&mut self, statement: &ast::Statement) {
        use ast::Statement as S;
        self.writes = true;
        let mut exprs: Vec<&Expr> = Vec::new();
        let mut returning = None;
        match statement {
            S::Insert(i) => {
                match &i.table {
                    TableObject::TableName(name) => self.relation(name),
                    TableObject::TableQuery(q) => self.query(q),
                    TableObject::TableFunction(_) => {}
                }
                if let Some(source) = &i.source {
                    self.query(source);
                }
                exprs.extend(i.assignments.iter().map(|a| &a.value));
                match &i.on {
                    Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                        exprs.extend(assignments.iter().map(|a| &a.value));
                    }
                    Some(OnInsert::OnConflict(c)) => {
                        if let OnConflictAction::DoUpdate(u) = &c.action {
                            exprs.extend(u.assignments.iter().map(|a| &a.value));
                            exprs.extend(&u.selection);
                        }
                    }
                    _ => {}
                }
                returning = i.returning.as_ref();
            }
            S::Update(u) => {
                self.table_with_joins(&u.table);
                if let Some(
                    UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from),
                ) = &u.from
                {
                    from.iter().for_each(|t| self.table_with_joins(t));
                }
                exprs.extend(u.assignments.iter().map(|a| &a.value));
                exprs.extend(&u.selection);
                returning = u.returning.as_ref();
            }
            S::Delete(d) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                // MySQL's multi-table DELETE lists its targets by name or
                // alias; each must also appear in FROM, which is walked.
                if from.is_empty() {
                    d.tables.iter().for_each(|t| self.relation(t));
                }
                from.iter().for_each(|t| self.table_with_joins(t));
                d.using
                    .iter()
                    .flatten()
                    .for_each(|t| self.table_with_joins(t));
                exprs.extend(&d.selection);
                returning = d.returning.as_ref();
            }
            S::Merge(m) => {
                self.table_factor(&m.table);
                self.table_factor(&m.source);
                exprs.push(&m.on);
                for clause in &m.clauses {
                    exprs.extend(&clause.predicate);
                    if let MergeAction::Update(u) = &clause.action {
                        exprs.extend(&u.update_predicate);
                        exprs.extend(&u.delete_predicate);
                    }
                }
            }
            _ => {}
        }
        exprs.into_iter().for_each(|e| self.expr(e));
        returning
            .into_iter()
            .flatten()
            .for_each(|item| self.select_item(item));
    }

    fn query(&mut self, query: &Query) {
        let scope = self.ctes.len();
        if let Some(with) = &query.with {
            // A recursive CTE sees every CTE name of its WITH; otherwise a
            // CTE body sees only earlier CTEs, and a name it shadows still
            // means the real table there.
            if with.recursive {
                for cte in &with.cte_tables {
                    self.ctes.push(self.ident(&cte.alias.name));
                }
            }
            for cte in &with.cte_tables {
                self.query(&cte.query);
                if !with.recursive {
                    self.ctes.push(self.ident(&cte.alias.name));
                }
            }
        }
        self.set_expr(&query.body);
        if let Some(OrderByKind::Expressions(order)) = query.order_by.as_ref().map(|o| &o.kind) {
            order.iter().for_each(|o| self.expr(&o.expr));
        }
        if !query.locks.is_empty() {
            self.locking = true;
        }
        self.ctes.truncate(scope);
    }

    /// Iterative over UNION / INTERSECT / EXCEPT chains: sqlparser builds
    /// them left-deep without a depth limit, so recursion could overflow.
    fn set_expr(&mut self, root: &SetExpr) {
        let mut stack = vec![root];
        while let Some(set) = stack.pop() {
            match set {
                SetExpr::Select(s) => self.select(s),
                SetExpr::Query(q) => self.query(q),
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                SetExpr::Values(v) => v
                    .rows
                    .iter()
                    .flat_map(|r| r.iter())
                    .for_each(|e| self.expr(e)),
                SetExpr::Insert(s)
                | SetExpr::Update(s)
                | SetExpr::Delete(s)
                | SetExpr::Merge(s) => self.dml(s),
                SetExpr::Table(t) => {
                    if let Some(name) = &t.table_name {
                        let part = |v: &String| ObjectNamePart::Identifier(Ident::new(v.clone()));
                        let parts = t.schema_name.iter().chain([name]).map(part).collect();
                        self.relation(&ObjectName(parts));
                    }
                }
            }
        }
    }

    fn select(&mut self, select: &Select) {
        select.from.iter().for_each(|t| self.table_with_joins(t));
        if let Some(into) = &select.into {
            // PostgreSQL's SELECT INTO creates and fills a table; MySQL's
            // INTO names variables or a file.
            if self.dialect == Dialect::Postgres {
                self.writes = true;
                for target in &into.targets {
                    match target {
                        Expr::Identifier(i) => self.relation(&ObjectName::from(vec![i.clone()])),
                        Expr::CompoundIdentifier(parts) => {
                            self.relation(&ObjectName::from(parts.clone()))
                        }
                        _ => {}
                    }
                }
            }
        }
        select
            .projection
            .iter()
            .for_each(|item| self.select_item(item));
        let clauses = [
            &select.prewhere,
            &select.selection,
            &select.having,
            &select.qualify,
        ];
        clauses.into_iter().flatten().for_each(|e| self.expr(e));
        if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
            exprs.iter().for_each(|e| self.expr(e));
        }
    }

    fn select_item(&mut self, item: &SelectItem) {
        match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. } => self.expr(e),
            _ => {}
        }
    }

    fn table_with_joins(&mut self, t: &TableWithJoins) {
        self.table_factor(&t.relation);
        for join in &t.joins {
            self.table_factor(&join.relation);
            if let Some(JoinConstraint::On(e)) = join_constraint(&join.join_operator) {
                self.expr(e);
            }
        }
    }

    fn table_factor(&mut self, factor: &TableFactor) {
        match factor {
            // With arguments it is a table function call, not a relation.
            TableFactor::Table {
                name, args: None, ..
            } => self.relation(name),
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.table_with_joins(table_with_joins),
            TableFactor::TableFunction { expr, .. } => self.expr(expr),
            TableFactor::UNNEST { array_exprs, .. } => {
                array_exprs.iter().for_each(|e| self.expr(e))
            }
            TableFactor::Pivot { table, .. }
            | TableFactor::Unpivot { table, .. }
            | TableFactor::MatchRecognize { table, .. } => self.table_factor(table),
            _ => {}
        }
    }

    /// Iterative: sqlparser builds operator chains (`a + b + c ...`,
    /// `x = 1 OR x = 2 OR ...`) left-deep without a depth limit. Only the
    /// nesting of subqueries recurses, and sqlparser bounds that.
    fn expr(&mut self, root: &Expr) {
        let mut stack = vec![root];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => self.query(q),
                Expr::InSubquery { expr, subquery, .. } => {
                    stack.push(expr);
                    self.query(subquery);
                }
                Expr::Function(f) => {
                    match &f.args {
                        FunctionArguments::Subquery(q) => self.query(q),
                        FunctionArguments::List(list) => {
                            stack.extend(list.args.iter().filter_map(function_arg_expr));
                        }
                        FunctionArguments::None => {}
                    }
                    stack.extend(f.filter.as_deref());
                    stack.extend(f.within_group.iter().map(|o| &o.expr));
                }
                Expr::BinaryOp { left, right, .. }
                | Expr::AnyOp { left, right, .. }
                | Expr::AllOp { left, right, .. }
                | Expr::IsDistinctFrom(left, right)
                | Expr::IsNotDistinctFrom(left, right)
                | Expr::AtTimeZone {
                    timestamp: left,
                    time_zone: right,
                }
                | Expr::Position {
                    expr: left,
                    r#in: right,
                }
                | Expr::InUnnest {
                    expr: left,
                    array_expr: right,
                    ..
                }
                | Expr::RLike {
                    expr: left,
                    pattern: right,
                    ..
                } => {
                    stack.push(right);
                    stack.push(left);
                }
                Expr::Like {
                    expr,
                    pattern,
                    escape_char,
                    ..
                }
                | Expr::ILike {
                    expr,
                    pattern,
                    escape_char,
                    ..
                }
                | Expr::SimilarTo {
                    expr,
                    pattern,
                    escape_char,
                    ..
                } => {
                    stack.extend(escape_char.as_deref());
                    stack.push(pattern);
                    stack.push(expr);
                }
                Expr::Between {
                    expr, low, high, ..
                } => stack.extend([&**expr, low, high]),
                Expr::InList { expr, list, .. } => {
                    stack.push(expr);
                    stack.extend(list);
                }
                Expr::Case {
                    operand,
                    conditions,
                    else_result,
                    ..
                } => {
                    stack.extend(operand.as_deref());
                    stack.extend(conditions.iter().flat_map(|c| [&c.condition, &c.result]));
                    stack.extend(else_result.as_deref());
                }
                Expr::Substring {
                    expr,
                    substring_from,
                    substring_for,
                    ..
                } => {
                    stack.push(expr);
                    stack.extend(substring_from.as_deref());
                    stack.extend(substring_for.as_deref());
                }
                Expr::Trim {
                    expr,
                    trim_what,
                    trim_characters,
                    ..
                } => {
                    stack.push(expr);
                    stack.extend(trim_what.as_deref());
                    stack.extend(trim_characters.iter().flatten());
                }
                Expr::Overlay {
                    expr,
                    overlay_what,
                    overlay_from,
                    overlay_for,
                } => {
                    stack.extend([&**expr, overlay_what, overlay_from]);
                    stack.extend(overlay_for.as_deref());
                }
                Expr::Convert { expr, styles, .. } => {
                    stack.push(expr);
                    stack.extend(styles);
                }
                Expr::Tuple(list) | Expr::Struct { values: list, .. } => stack.extend(list),
                Expr::Array(a) => stack.extend(&a.elem),
                Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                    stack.extend(sets.iter().flatten());
                }
                Expr::Interval(i) => stack.push(&i.value),
                Expr::Lambda(l) => stack.push(&l.body),
                Expr::IsFalse(inner)
                | Expr::IsNotFalse(inner)
                | Expr::IsTrue(inner)
                | Expr::IsNotTrue(inner)
                | Expr::IsNull(inner)
                | Expr::IsNotNull(inner)
                | Expr::IsUnknown(inner)
                | Expr::IsNotUnknown(inner)
                | Expr::IsJson { expr: inner, .. }
                | Expr::IsNormalized { expr: inner, .. }
                | Expr::UnaryOp { expr: inner, .. }
                | Expr::Cast { expr: inner, .. }
                | Expr::Extract { expr: inner, .. }
                | Expr::Ceil { expr: inner, .. }
                | Expr::Floor { expr: inner, .. }
                | Expr::Collate { expr: inner, .. }
                | Expr::Nested(inner)
                | Expr::Prefixed { value: inner, .. }
                | Expr::Named { expr: inner, .. }
                | Expr::OuterJoin(inner)
                | Expr::Prior(inner)
                | Expr::JsonAccess { value: inner, .. }
                | Expr::CompoundFieldAccess { root: inner, .. } => stack.push(inner),
                // Leaves (identifiers, literals, placeholders, wildcards)
                // and forms that cannot hold a relation.
                _ => {}
            }
        }
    }
}

fn function_arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    let (FunctionArg::Named { arg, .. }
    | FunctionArg::ExprNamed { arg, .. }
    | FunctionArg::Unnamed(arg)) = arg;
    match arg {
        FunctionArgExpr::Expr(e) => Some(e),
        _ => None,
    }
}

fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use StatementKind::{Ddl, Other, Read, Transaction, Write};

    /// (sql, kind, tables as "schema.name" or "name", count, locking)
    type Row = (
        &'static str,
        StatementKind,
        &'static [&'static str],
        usize,
        bool,
    );

    fn expect(dialect: Dialect, rows: &[Row]) {
        let classifier = Classifier::new(1024);
        for &(sql, kind, tables, count, locking) in rows {
            let got = classifier.classify(dialect, sql);
            let names: Vec<String> = got
                .tables
                .iter()
                .map(|t| match &t.schema {
                    Some(s) => format!("{s}.{}", t.name),
                    None => t.name.clone(),
                })
                .collect();
            assert!(got.parsed, "{dialect:?}: did not parse: {sql}");
            assert_eq!(
                (got.kind, names, got.count, got.locking),
                (
                    kind,
                    tables.iter().map(|s| s.to_string()).collect(),
                    count,
                    locking
                ),
                "{dialect:?}: {sql}"
            );
        }
    }

    #[test]
    fn postgres_statements() {
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // pgbench
            ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", Read, &["pgbench_accounts"], 1, false),
            ("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", Read, &["pgbench_accounts"], 1, false),
            ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", Write, &["pgbench_accounts"], 1, false),
            ("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", Write, &["pgbench_history"], 1, false),
            ("BEGIN; UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 2; COMMIT;", Write, &["pgbench_tellers"], 3, false),
            // reads
            ("SELECT 1", Read, &[], 1, false),
            ("VALUES (1), (2)", Read, &[], 1, false),
            ("TABLE Users", Read, &["users"], 1, false),
            ("SELECT 1; TABLE s.t", Read, &["s.t"], 2, false),
            ("SELECT * FROM a JOIN b ON a.id = b.a_id LEFT JOIN c USING (id)", Read, &["a", "b", "c"], 1, false),
            ("SELECT * FROM a WHERE id IN (SELECT a_id FROM b) AND EXISTS (SELECT 1 FROM c WHERE c.x = a.x)", Read, &["a", "b", "c"], 1, false),
            ("SELECT (SELECT max(x) FROM b), count(*) FILTER (WHERE y > (SELECT 1 FROM c)) FROM a", Read, &["a", "b", "c"], 1, false),
            ("SELECT * FROM (SELECT * FROM inner_t) AS d", Read, &["inner_t"], 1, false),
            ("SELECT * FROM a UNION ALL SELECT * FROM b EXCEPT SELECT * FROM a", Read, &["a", "b"], 1, false),
            ("WITH recent AS (SELECT * FROM orders WHERE ts > now()) SELECT * FROM recent JOIN users u ON u.id = recent.user_id", Read, &["orders", "users"], 1, false),
            ("WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", Read, &[], 1, false),
            // A non-recursive CTE body still sees the real table it shadows.
            ("WITH t AS (SELECT * FROM t) SELECT * FROM t", Read, &["t"], 1, false),
            ("SELECT * FROM Public.\"Users\" JOIN \"S\".t ON true", Read, &["public.Users", "S.t"], 1, false),
            ("SELECT * FROM db.sch.tbl", Read, &["sch.tbl"], 1, false),
            ("SELECT * FROM generate_series(1, 3)", Read, &[], 1, false),
            ("SELECT * FROM t WHERE id = 1 FOR UPDATE", Read, &["t"], 1, true),
            ("SELECT * FROM t WHERE id = 1 FOR SHARE SKIP LOCKED", Read, &["t"], 1, true),
            ("/* switchyard:target */ SELECT * FROM t", Read, &["t"], 1, false),
            ("COPY t TO STDOUT", Read, &["t"], 1, false),
            ("COPY (SELECT * FROM t JOIN u ON true) TO STDOUT", Read, &["t", "u"], 1, false),
            // writes
            ("INSERT INTO t SELECT * FROM s ON CONFLICT (id) DO UPDATE SET v = excluded.v", Write, &["t", "s"], 1, false),
            ("UPDATE t SET v = s.v FROM s WHERE s.id = t.id RETURNING (SELECT 1 FROM r)", Write, &["t", "s", "r"], 1, false),
            ("DELETE FROM t USING s WHERE s.id = t.id", Write, &["t", "s"], 1, false),
            ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", Write, &["t", "s"], 1, false),
            ("COPY t FROM STDIN", Write, &["t"], 1, false),
            ("TRUNCATE a, b", Write, &["a", "b"], 1, false),
            ("SELECT * INTO new_t FROM t", Write, &["t", "new_t"], 1, false),
            ("WITH gone AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM gone", Write, &["t"], 1, false),
            ("WITH n AS (INSERT INTO log SELECT * FROM src RETURNING id) SELECT count(*) FROM n", Write, &["log", "src"], 1, false),
            // DDL
            ("CREATE TABLE t (id int primary key)", Ddl, &["t"], 1, false),
            ("CREATE TABLE t2 AS SELECT * FROM t", Ddl, &["t2", "t"], 1, false),
            ("ALTER TABLE s.t ADD COLUMN c int", Ddl, &["s.t"], 1, false),
            ("DROP TABLE IF EXISTS a, b", Ddl, &["a", "b"], 1, false),
            ("DROP INDEX i", Ddl, &[], 1, false),
            ("CREATE INDEX i ON t (c)", Ddl, &["t"], 1, false),
            ("CREATE VIEW v AS SELECT * FROM t", Ddl, &["v", "t"], 1, false),
            ("ALTER TABLE a RENAME TO b", Ddl, &["a"], 1, false),
            ("COMMENT ON TABLE t IS 'x'", Ddl, &["t"], 1, false),
            ("GRANT SELECT ON t TO app", Ddl, &[], 1, false),
            ("REVOKE SELECT ON t FROM app", Ddl, &[], 1, false),
            ("CREATE SCHEMA s", Ddl, &[], 1, false),
            // transactions
            ("BEGIN", Transaction, &[], 1, false),
            ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", Transaction, &[], 1, false),
            ("COMMIT", Transaction, &[], 1, false),
            ("ROLLBACK", Transaction, &[], 1, false),
            ("SAVEPOINT s1", Transaction, &[], 1, false),
            ("RELEASE SAVEPOINT s1", Transaction, &[], 1, false),
            ("ROLLBACK TO SAVEPOINT s1", Transaction, &[], 1, false),
            ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", Transaction, &[], 1, false),
            ("BEGIN; SELECT * FROM t; COMMIT", Read, &["t"], 3, false),
            ("BEGIN; CREATE TABLE x (a int); INSERT INTO y VALUES (1); COMMIT", Write, &["x", "y"], 4, false),
            ("BEGIN; DROP TABLE x; COMMIT", Ddl, &["x"], 3, false),
            // other
            ("SET search_path TO app", Other, &[], 1, false),
            ("SHOW search_path", Other, &[], 1, false),
            ("LISTEN chan", Other, &[], 1, false),
            ("NOTIFY chan, 'hi'", Other, &[], 1, false),
            ("PREPARE p AS SELECT * FROM t WHERE id = $1", Other, &["t"], 1, false),
            ("EXECUTE p(1)", Other, &[], 1, false),
            ("DEALLOCATE p", Other, &[], 1, false),
            ("EXPLAIN SELECT * FROM t FOR UPDATE", Other, &["t"], 1, false),
            ("EXPLAIN ANALYZE DELETE FROM t", Write, &["t"], 1, false),
            ("", Other, &[], 0, false),
            ("   \n ", Other, &[], 0, false),
            ("/* only a comment */ -- and another", Other, &[], 0, false),
        ];
        expect(Dialect::Postgres, rows);
    }

    #[test]
    fn mysql_statements() {
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // sysbench
            ("SELECT c FROM sbtest1 WHERE id=?", Read, &["sbtest1"], 1, false),
            ("SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c", Read, &["sbtest1"], 1, false),
            ("SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?", Read, &["sbtest1"], 1, false),
            ("UPDATE sbtest1 SET k=k+1 WHERE id=?", Write, &["sbtest1"], 1, false),
            ("DELETE FROM sbtest1 WHERE id=?", Write, &["sbtest1"], 1, false),
            ("INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)", Write, &["sbtest1"], 1, false),
            // names keep their case; backticks are stripped
            ("SELECT * FROM `Users` u JOIN shop.Orders o ON o.uid = u.id", Read, &["Users", "shop.Orders"], 1, false),
            ("SELECT * FROM a WHERE x IN (SELECT x FROM b)", Read, &["a", "b"], 1, false),
            ("SELECT * FROM t WHERE id = 1 FOR UPDATE", Read, &["t"], 1, true),
            ("SELECT * FROM t WHERE id = 1 LOCK IN SHARE MODE", Read, &["t"], 1, true),
            ("SELECT * FROM t WHERE id = 1 lock in share mode; SELECT 1", Read, &["t"], 2, true),
            ("SELECT 'LOCK IN SHARE MODE' FROM t", Read, &["t"], 1, false),
            ("SELECT a INTO @v FROM t", Read, &["t"], 1, false),
            ("WITH c AS (SELECT * FROM t) SELECT * FROM c", Read, &["t"], 1, false),
            ("REPLACE INTO t VALUES (1)", Write, &["t"], 1, false),
            ("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE a = (SELECT 2 FROM u)", Write, &["t", "u"], 1, false),
            ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.a = t2.a", Write, &["t1", "t2"], 1, false),
            ("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", Write, &["t1", "t2"], 1, false),
            ("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE db.t FIELDS TERMINATED BY ','", Write, &["db.t"], 1, false),
            ("TRUNCATE TABLE t", Write, &["t"], 1, false),
            ("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB", Ddl, &["t"], 1, false),
            ("ALTER TABLE t ADD COLUMN c INT", Ddl, &["t"], 1, false),
            ("RENAME TABLE a TO b", Ddl, &["a", "b"], 1, false),
            ("DROP TABLE t", Ddl, &["t"], 1, false),
            ("BEGIN", Transaction, &[], 1, false),
            ("START TRANSACTION", Transaction, &[], 1, false),
            ("COMMIT", Transaction, &[], 1, false),
            ("ROLLBACK", Transaction, &[], 1, false),
            ("USE shop", Other, &[], 1, false),
            ("SET NAMES utf8mb4", Other, &[], 1, false),
            ("SET autocommit = 1", Other, &[], 1, false),
            ("SHOW TABLES", Other, &[], 1, false),
            ("SELECT 1 # trailing comment", Read, &[], 1, false),
        ];
        expect(Dialect::Mysql, rows);
    }

    #[test]
    fn unparsable_text_is_marked_and_cached() {
        let unparsed = Statement {
            kind: Other,
            tables: vec![],
            parsed: false,
            count: 1,
            locking: false,
        };
        let classifier = Classifier::new(16);
        for (dialect, sql) in [
            (Dialect::Postgres, "SELEC * FROM t"),
            (Dialect::Postgres, "SELECT * FROM"),
            (Dialect::Mysql, "FROB the widgets"),
        ] {
            let got = classifier.classify(dialect, sql);
            assert_eq!(*got, unparsed, "{sql}");
            let before = classifier.len();
            assert!(Arc::ptr_eq(&got, &classifier.classify(dialect, sql)));
            assert_eq!(classifier.len(), before);
        }
    }

    #[test]
    fn overly_deep_expressions_are_not_parsed() {
        // Parsing is fine, but dropping such an AST would overflow a worker
        // stack; it is relayed untouched instead.
        let classifier = Classifier::new(16);
        let chain = vec!["a = 1"; 50_000].join(" OR ");
        let got = classifier.classify(Dialect::Postgres, &format!("SELECT * FROM t WHERE {chain}"));
        assert!(!got.parsed);
        // Long lists are flat and stay parseable.
        let list = vec!["(1, 2)"; 10_000].join(", ");
        let got = classifier.classify(Dialect::Mysql, &format!("INSERT INTO t VALUES {list}"));
        assert!(got.parsed && got.kind == Write);
    }

    #[test]
    fn same_shape_hits_the_cache() {
        let classifier = Classifier::new(64);
        let sql = |aid: u32| format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};");
        let first = classifier.classify(Dialect::Postgres, &sql(0));
        for aid in 1..100 {
            assert!(Arc::ptr_eq(
                &first,
                &classifier.classify(Dialect::Postgres, &sql(aid))
            ));
        }
        assert_eq!(classifier.len(), 1);
        // Dialects never share entries.
        classifier.classify(Dialect::Mysql, &sql(0));
        assert_eq!(classifier.len(), 2);
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let capacity = 32;
        let classifier = Classifier::new(capacity);
        for i in 0..10 * capacity {
            let sql = format!("SELECT c FROM sbtest{i} WHERE id=?");
            let got = classifier.classify(Dialect::Mysql, &sql);
            assert_eq!(got.tables[0].name, format!("sbtest{i}"));
            assert!(classifier.len() <= capacity);
        }
        assert!(!classifier.is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let classifier = Classifier::new(8);
            classifier.classify(Dialect::Postgres, &s);
            classifier.classify(Dialect::Mysql, &s);
        }

        #[test]
        fn sql_like_text_never_panics(
            s in "(SELECT|FROM|WITH|TABLE|LOCK|IN|SHARE|MODE|LOAD|DATA|INTO|t|\\(|\\)|;|'|\"|`|\\$|\\.|,|=|\\?| |1)*"
        ) {
            let classifier = Classifier::new(8);
            classifier.classify(Dialect::Postgres, &s);
            classifier.classify(Dialect::Mysql, &s);
        }
    }
}
