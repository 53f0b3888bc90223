//! Shadow compare: a share of routed reads also runs on the other path, and
//! the two answers are compared, so a target that disagrees with its source
//! is found before clients read from it.
//!
//! A session hands a read to [`Shadow::submit`] and goes on: the client's
//! answer comes from the path its rule chose, on the client's connection,
//! untouched. The shadow runs **both** forms (source and target) again on a
//! connection of the proxy's own, inside one REPEATABLE READ snapshot, and
//! compares them there — it never buffers, delays or sees the client's
//! rows.
//!
//! - [`eligibility`]: which reads have a determined answer (pure).
//! - [`value`]: column values normalised so equal meaning is equal data.
//! - [`compare`]: the comparison and its bounded difference (pure).
//! - [`samples`]: the last mismatches per migration, for the admin API.
//! - `runner`: the queue, the workers and the outcome; `pool`: the proxy's
//!   own backend connections; `pg` and `mysql`: one snapshot read each.
//!
//! It must never block a session (a full queue skips the read), never
//! panic, and never touch a client's connection.

pub mod compare;
pub mod eligibility;
mod mysql;
mod pg;
mod pool;
mod runner;
pub mod samples;
pub mod value;

use std::sync::Arc;

pub use eligibility::{shadowable, RowOrder, Skip};
pub use runner::{Backends, Report, Shadow, ShadowLimits};
pub use samples::MismatchSample;

use crate::route::fingerprint::Dialect;

/// One read to shadow, as the session knows it.
#[derive(Clone, Debug)]
pub struct ShadowJob {
    /// The migration the read belongs to (metric label, sample ring).
    pub migration: Arc<str>,
    /// The protocol's SQL dialect.
    pub dialect: Dialect,
    /// The configured backend (`backends.NAME`) holding the source table.
    pub backend: String,
    /// The backend holding the target table when it is another server;
    /// such reads are skipped (`cross_server`): no snapshot spans two
    /// servers, so a comparison could not tell lag from a wrong row.
    pub target_backend: Option<String>,
    /// The database the client is connected to.
    pub database: String,
    /// The client's backend user when it is not the backend's login user:
    /// the read must see what that user may see. PostgreSQL takes it with
    /// `SET LOCAL ROLE`; MySQL has no equivalent, so it skips (`settings`).
    pub role: Option<String>,
    /// Session settings the answer depends on (`search_path`, `TimeZone`,
    /// `DateStyle`; `time_zone`, `sql_mode`, `collation_connection`), as
    /// name and value.
    pub settings: Vec<(String, String)>,
    /// The read as the source runs it.
    pub source_sql: String,
    /// The read as the target runs it (the rewriter's form).
    pub target_sql: String,
    /// Bound values in text format (`None` is NULL), for `$n` / `?`.
    pub params: Vec<Option<String>>,
    /// The source table's primary key: a total ORDER BY covers it, and a
    /// sample names the row by it.
    pub key_columns: Vec<String>,
    /// How rows compare, if the session already knows it is shadowable;
    /// `None` has the shadow parse `source_sql` itself.
    pub order: Option<RowOrder>,
}

/// What became of one shadowed read.
#[derive(Clone, Debug)]
pub struct ShadowOutcome {
    /// The read's migration.
    pub migration: Arc<str>,
    /// The verdict.
    pub result: ShadowResult,
}

/// The verdict on one shadowed read.
#[derive(Clone, Debug)]
pub enum ShadowResult {
    /// Both forms returned the same rows.
    Match,
    /// They differed, and still did in a fresh snapshot.
    Mismatch(MismatchSample),
    /// Not compared, and why.
    Skipped(Skip),
    /// A form failed or the backend could not be reached: the message says
    /// which.
    Error(String),
}

impl ShadowResult {
    /// The `result` label value.
    pub fn label(&self) -> &'static str {
        match self {
            ShadowResult::Match => "match",
            ShadowResult::Mismatch(_) => "mismatch",
            ShadowResult::Skipped(_) => "skipped",
            ShadowResult::Error(_) => "error",
        }
    }
}
