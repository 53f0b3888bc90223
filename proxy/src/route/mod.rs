//! Statement classification and routing decisions. Pure functions: no IO,
//! no clock but what the caller passes in.

pub mod classify;
pub mod decide;
pub mod fingerprint;
pub mod program;
pub mod read;
pub mod rewrite;
pub mod routing;
pub mod rules;
pub mod shape;
pub mod switched;
pub mod write;

pub use decide::{
    Affected, Connection, Decision, Plan, ReadRoute, Route, SessionFacts, ShadowRoute, Stage,
};
pub use read::{Affinity, MigrationRouter};

use classify::StatementKind;

/// The `kind` label of `switchyard_statements_total`.
pub fn kind_label(kind: StatementKind) -> &'static str {
    match kind {
        StatementKind::Read => "read",
        StatementKind::Write => "write",
        StatementKind::Ddl => "ddl",
        StatementKind::Transaction => "transaction",
        StatementKind::Other => "other",
    }
}
