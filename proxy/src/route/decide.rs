//! The per-statement decision: what the session does with one statement.
//!
//! Deciding is pure: `(routing, session facts, statement) -> Decision`, no
//! IO and no clock but what the caller passes in. The session carries the
//! decision out; so the read switch and the dual write only add decisions,
//! never plumbing.

use std::net::IpAddr;
use std::sync::Arc;

use switchyard_core::config::ReadPath;

use super::classify::{Dialect, Statement};
use super::program::Program;
use super::routing::Routing;
use crate::wire::pg::message::{FieldPatch, Trim};

/// Which backend connection runs a statement. (Not to be confused with a
/// migration's source and target tables, nor with which of them is primary.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The session's own backend connection.
    Own,
    /// A second connection to the named backend (from `backends:`), opened
    /// on first use with the session's database and the backend's login.
    Backend(String),
    /// PostgreSQL: a second connection to the session's own backend, in
    /// another database (a target table there; no session can reach two
    /// databases on one connection).
    Database {
        /// The backend (the session's own).
        backend: String,
        /// The database to open it in.
        database: String,
    },
}

/// What a MySQL client's OK packet reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affected {
    /// Affected rows.
    pub rows: u64,
    /// Last insert id; `None` keeps the server's.
    pub last_insert_id: Option<u64>,
}

/// A statement the proxy changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// SQL to send instead of the client's; `None` keeps the client's text.
    pub sql: Option<String>,
    /// The statements run for the client's, on the same connection and in
    /// one transaction with it (a write mirrored inline): the client
    /// receives the answer of the program's client step. `None` runs the
    /// client's statement (or `sql`) alone.
    pub program: Option<Program>,
    /// PostgreSQL: replaces the command tag the client receives (`INSERT 0
    /// 1`); `{rows}` stands for the row count of the server's tag.
    pub tag: Option<String>,
    /// PostgreSQL: the client step's rows carry columns of the proxy's.
    pub trim: Option<Trim>,
    /// A write mirrored for this migration (for its metrics).
    pub mirror: Option<Arc<str>>,
    /// PostgreSQL: the table the mirror writes, to tell its failures from
    /// the client statement's own.
    pub mirror_target: Option<Arc<str>>,
    /// The write's keys go through the outbox: the session's reads of the
    /// migration stay on the source until the applier has copied them.
    pub outbox: bool,
    /// MySQL: replaces the affected rows and last insert id of the OK
    /// packet the client receives.
    pub affected: Option<Affected>,
    /// The connection that runs it all.
    pub connection: Connection,
    /// A read of a migrated table: which migration, which path, why.
    pub read: Option<ReadRoute>,
    /// PostgreSQL: how the answer's RowDescription is made to name the
    /// source's columns (a read rewritten for the target).
    pub fields: Option<Arc<FieldPatch>>,
}

/// How one read of a migrated table was routed, for metrics and for the
/// transaction's affinity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRoute {
    /// The migration's id.
    pub migration: Arc<str>,
    /// Where the read goes.
    pub path: ReadPath,
    /// The A/B arm that chose the path; `None` outside `ab`.
    pub arm: Option<String>,
    /// Why a read the rule sent to the target stays on the source (an
    /// `unroutable` reason label); `None` when it went where the rule said.
    pub unroutable: Option<&'static str>,
    /// How long a target read may run before the source answers it
    /// (`rollback.read_timeout`); `None` on the source or when off.
    pub timeout: Option<std::time::Duration>,
    /// The migration shadows a share of its reads: what a shadow of this
    /// one needs. `None` when it does not, or the read has no target form.
    pub shadow: Option<Arc<ShadowRoute>>,
}

/// What the shadow of a routed read needs from the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShadowRoute {
    /// The share of reads shadowed, in basis points.
    pub basis_points: u32,
    /// The read's target form.
    pub target_sql: String,
    /// The source table's primary key.
    pub key: Vec<String>,
    /// The target's backend when it is not the source's (such reads are
    /// not compared: no snapshot spans two servers).
    pub target_backend: Option<String>,
}

impl ReadRoute {
    /// The same read answered by the source instead (no timeout, no
    /// shadow), with `unroutable` as the reason when the rule's path could
    /// not be taken.
    pub fn on_source(&self, unroutable: Option<&'static str>) -> ReadRoute {
        ReadRoute {
            path: ReadPath::Source,
            unroutable,
            timeout: None,
            shadow: None,
            ..self.clone()
        }
    }
}

impl Plan {
    /// A plan that sends `sql` instead of the client's statement.
    pub fn rewrite(sql: impl Into<String>) -> Plan {
        Plan {
            sql: Some(sql.into()),
            program: None,
            trim: None,
            mirror: None,
            mirror_target: None,
            outbox: false,
            tag: None,
            affected: None,
            connection: Connection::Own,
            read: None,
            fields: None,
        }
    }

    /// A read of a migrated table that runs as the client sent it, on the
    /// session's own connection (the source path).
    pub fn source_read(read: ReadRoute) -> Plan {
        Plan {
            sql: None,
            read: Some(read),
            ..Plan::rewrite(String::new())
        }
    }

    /// Whether the client's bytes go to the own connection as they came:
    /// the plan only records what the read was.
    pub fn is_passthrough(&self) -> bool {
        self.sql.is_none()
            && self.connection == Connection::Own
            && !self.injects()
            && self.tag.is_none()
            && self.affected.is_none()
    }

    /// A plan that runs the client's statement on another backend.
    pub fn divert(backend: impl Into<String>) -> Plan {
        Plan {
            sql: None,
            program: None,
            trim: None,
            mirror: None,
            mirror_target: None,
            outbox: false,
            tag: None,
            affected: None,
            connection: Connection::Backend(backend.into()),
            read: None,
            fields: None,
        }
    }

    /// Whether the proxy adds statements of its own.
    pub fn injects(&self) -> bool {
        self.program.is_some()
    }
}

/// What the session does with one statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send the client's bytes as they came: the fast path.
    Relay,
    /// Carry out a plan.
    Plan(Arc<Plan>),
    /// Run nothing: answer with this error, which names the migration and
    /// the fix (a write the dual write cannot mirror with certainty).
    Refuse(Arc<super::write::Refusal>),
}

/// When a decision is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A statement is being prepared (Parse, COM_STMT_PREPARE). The form
    /// prepared now describes the statement to the client, so a read is
    /// prepared in its source form whatever the rule says.
    Prepare,
    /// A statement runs now (simple Query, Bind, COM_QUERY,
    /// COM_STMT_EXECUTE): the rule in force decides.
    Execute,
}

/// Facts about the session a decision may depend on.
#[derive(Clone, Copy, Debug)]
pub struct SessionFacts<'a> {
    /// Which protocol the client speaks.
    pub dialect: Dialect,
    /// Preparing or running.
    pub stage: Stage,
    /// The proxy user the client logged in as.
    pub user: &'a str,
    /// The database the client asked for.
    pub database: &'a str,
    /// The client's `application_name` (PostgreSQL) or program name (MySQL).
    pub application: &'a str,
    /// A transaction is open on the session's own connection.
    pub in_transaction: bool,
    /// The session's stickiness key, stable for the connection.
    pub session: u64,
    /// The client's address, when known (canary by CIDR).
    pub client: Option<IpAddr>,
    /// The session's own backend (a name under `backends:`).
    pub backend: &'a str,
    /// Where unqualified table names resolve: PostgreSQL's first schema of
    /// the search_path, MySQL's current database; `None` when not known.
    pub schema: Option<&'a str>,
    /// The execution's bound parameter values as text (`None` for NULL or
    /// not decodable), for a sticky key given by a placeholder.
    pub params: &'a [Option<String>],
    /// The paths this transaction's earlier reads and writes pinned, by
    /// migration id: the rest of the transaction keeps them.
    pub pinned: &'a [(Arc<str>, ReadPath)],
}

impl SessionFacts<'_> {
    /// The path this transaction pinned for a migration.
    pub fn pinned_path(&self, migration: &str) -> Option<ReadPath> {
        self.pinned
            .iter()
            .find(|(id, _)| &**id == migration)
            .map(|(_, path)| *path)
    }
}

/// Chooses what happens to each statement. Implementations must be pure.
pub trait Route: Send + Sync + 'static {
    /// Decides for one statement; `sql` is the text `statement` classifies.
    fn decide(
        &self,
        routing: &Routing,
        facts: &SessionFacts<'_>,
        statement: &Statement,
        sql: &str,
    ) -> Decision;
}
