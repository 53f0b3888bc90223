//! Writes the control store stops: while a migration's writes are held for
//! its write switch, and while this proxy's lease on the store has lapsed
//! (it cannot tell whether the phase it enforces is still the one in
//! force). Pure, like the rest of the router: the control task decides
//! when a lease lapses and publishes it in the routing.

use switchyard_core::config::Phase;

use super::{mirrors, Refusal};
use crate::route::classify::{Statement, StatementKind};
use crate::route::routing::MigrationRoute;

/// The `reason` label of a write refused because the store's lease lapsed.
pub const LEASE_LAPSED: &str = "store_lease_lapsed";
/// The `reason` label of a write refused because the write switch held it
/// past its budget.
pub const WRITES_HELD: &str = "writes_held";
/// The `reason` label of a write of the source after the write switch that
/// cannot be rewritten for the target.
pub const NOT_REWRITTEN: &str = "write_not_rewritten";

/// Whether `statement` writes `m`'s source or target table.
pub fn writes_migrated(m: &MigrationRoute, statement: &Statement) -> bool {
    matches!(statement.kind, StatementKind::Write | StatementKind::Ddl) && m.names(statement, true)
}

/// The refusal of a write of `m`'s tables that the control store stops,
/// if it does.
pub fn fenced(m: &MigrationRoute, statement: &Statement) -> Option<Refusal> {
    let stored = m.stored.as_ref()?;
    if !writes_migrated(m, statement) {
        return None;
    }
    let table = match &m.table_map {
        Some(map) => format!("{}.{}", map.source.schema, map.source.name),
        None => m.plan.source.table.clone(),
    };
    // Where the phase decides where writes go, a proxy that cannot read
    // the store must not guess it.
    let phase_decides = mirrors(stored.phase) || stored.phase == Phase::WriteSwitch;
    if let (Some(cause), true) = (&stored.lapsed, phase_decides) {
        return Some(Refusal {
            migration: m.plan.id.clone(),
            table,
            reason: format!(
                "this proxy's lease on the control store has lapsed ({cause}), so it cannot know \
                 whether phase `{}` (epoch {}) is still in force",
                stored.phase, stored.epoch
            ),
            fix: "retry once the store's server is reachable from the proxy again, or write \
                  through another proxy"
                .into(),
            label: LEASE_LAPSED,
        });
    }
    stored.holding_writes.then(|| Refusal {
        migration: m.plan.id.clone(),
        table,
        reason: format!(
            "writes are held for its write switch (epoch {}), which did not end within the \
             switch budget",
            stored.epoch
        ),
        fix: "retry the write; `switchyard status` shows whether the switch went on or aborted"
            .into(),
        label: WRITES_HELD,
    })
}

/// The refusal of a write of the source after the write switch that the
/// proxy cannot rewrite for the target (`why`): relaying it would write a
/// table every read has left (and, once archived, one that is gone).
pub fn not_rewritten(m: &MigrationRoute, why: &str) -> Refusal {
    Refusal {
        migration: m.plan.id.clone(),
        table: match &m.table_map {
            Some(map) => format!("{}.{}", map.source.schema, map.source.name),
            None => m.plan.source.table.clone(),
        },
        reason: format!(
            "it is in phase `{}`, where the target `{}` takes the writes, and {why}",
            m.phase, m.plan.target.table
        ),
        fix: format!(
            "write `{}` (the target) with its own column names, or roll the migration back",
            m.plan.target.table
        ),
        label: NOT_REWRITTEN,
    }
}
