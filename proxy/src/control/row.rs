//! A migration's `switchyard_state` row as the proxy holds it, what the
//! routing makes of it, and the rows the proxy writes back (a read rule set
//! through its admin API, a rollback its guard decided). Pure: no IO, no
//! clock.

use std::sync::Arc;

use switchyard_core::config::{Migration, Percent, Phase, Reads, Strategy};
use switchyard_core::store::StateRow;

use crate::route::routing::Stored;

/// One stored state, owned (the store's `StateRow` borrows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Where the migration stands; overrides the file's phase.
    pub phase: Phase,
    /// Bumped on every phase change; what the proxy heartbeats.
    pub epoch: u64,
    /// A read rule (JSON, the file's `reads` shape) replacing the file's.
    pub read_rule: Option<String>,
    /// The ramp's target share, kept as read so a write-back keeps it.
    pub share: Percent,
    /// Whether an operator paused the migration, kept as read.
    pub paused: bool,
    /// A ramp step waiting for approval, kept as read.
    pub pending_approval: Option<Percent>,
    /// Writes to the migrated table wait while the write switch runs.
    pub holding_writes: bool,
    /// Why the migration was rolled back.
    pub rollback_reason: Option<String>,
}

impl Row {
    /// The state a migration without a stored one starts from: the file's
    /// phase at epoch 0.
    pub fn initial(file_phase: Phase) -> Row {
        Row {
            phase: file_phase,
            epoch: 0,
            read_rule: None,
            share: Percent::ZERO,
            paused: false,
            pending_approval: None,
            holding_writes: false,
            rollback_reason: None,
        }
    }

    /// The store's view of it, for `write_state` / `init_state`.
    pub fn as_state<'a>(&'a self, migration: &'a str) -> StateRow<'a> {
        StateRow {
            migration,
            phase: self.phase,
            epoch: self.epoch,
            read_rule: self.read_rule.as_deref(),
            share: self.share,
            paused: self.paused,
            pending_approval: self.pending_approval,
            holding_writes: self.holding_writes,
            rollback_reason: self.rollback_reason.as_deref(),
        }
    }

    /// What the routing enforces for `plan`: the stored phase, epoch and
    /// holding, and the stored rule when it is one the plan accepts. A
    /// rule it does not accept is named in the `Err`, and the file's rule
    /// stays in force.
    pub fn stored(&self, plan: &Migration) -> (Stored, Option<String>) {
        let (reads, problem) = match self.read_rule.as_deref().map(|json| rule(plan, json)) {
            None if self.phase == Phase::ReadRamp => {
                (Some(Arc::new(ramped(plan, self.share))), None)
            }
            None => (None, None),
            Some(Ok(reads)) => (Some(Arc::new(reads)), None),
            Some(Err(problem)) => (None, Some(problem)),
        };
        let stored = Stored {
            epoch: self.epoch,
            phase: self.phase,
            reads,
            holding_writes: self.holding_writes,
            rollback_reason: self.rollback_reason.clone(),
            lapsed: None,
        };
        (stored, problem)
    }
}

/// The file's rule at the share the controller's ramp stored: the
/// percentage (or a canary's rest) set to it, and any other strategy
/// turned into a percentage, since a ramp is one.
fn ramped(plan: &Migration, share: Percent) -> Reads {
    let mut reads = plan.reads.clone();
    if !matches!(reads.strategy, Strategy::Percentage | Strategy::Canary) {
        reads.strategy = Strategy::Percentage;
    }
    reads.percent = share;
    reads
}

/// A stored rule, checked as the admin API checks one.
fn rule(plan: &Migration, json: &str) -> Result<Reads, String> {
    let reads: Reads = serde_json::from_str(json).map_err(|e| {
        format!(
            "migration `{}`: the stored read rule is not a `reads` rule ({e}); set a new one with \
             `PUT /migrations/{}/reads`",
            plan.id, plan.id
        )
    })?;
    let problems = plan.check_reads(&reads);
    if problems.is_empty() {
        return Ok(reads);
    }
    let text: Vec<String> = problems
        .into_iter()
        .map(|(field, why)| format!("{field}: {why}"))
        .collect();
    Err(format!(
        "migration `{}`: the stored read rule is refused ({}); the file's rule stays in force",
        plan.id,
        text.join("; ")
    ))
}

/// The phase as stored, or `None` for a name this release does not know.
pub fn phase(name: &str) -> Option<Phase> {
    Phase::ALL.iter().copied().find(|p| p.as_str() == name)
}

/// A share from the store's basis points (out of range: none).
pub fn share(basis_points: u64) -> Percent {
    u32::try_from(basis_points)
        .ok()
        .and_then(Percent::from_basis_points)
        .unwrap_or(Percent::ZERO)
}

/// Whether a proxy may store a read rollback its guard decided: only while
/// the source is still the primary. After the write switch the reads
/// already follow the writes, and a rollback has to move sequences first,
/// which only the controller does.
pub fn proxy_may_roll_back(phase: Phase) -> bool {
    !matches!(
        phase,
        Phase::WriteSwitch | Phase::Complete | Phase::RolledBack
    )
}

/// `current` (or the file's phase) with `reads` as the stored rule. The
/// epoch stays: a rule is not a phase change. An operator's new rule lifts
/// a read rollback, as it does on one proxy.
pub fn with_rule(current: Option<&Row>, file_phase: Phase, reads: &Reads) -> Row {
    let mut row = current.cloned().unwrap_or_else(|| Row::initial(file_phase));
    row.read_rule = Some(serde_json::to_string(reads).expect("a rule serialises"));
    if row.phase != Phase::RolledBack {
        row.rollback_reason = None;
    }
    row
}

/// `current` (or the file's phase) with its reads rolled back for `reason`
/// under a new epoch: the target's share to 0 and the reason stored, so
/// every replica takes the target's reads away too. The phase stays:
/// writes keep being mirrored, so an operator's new rule can bring reads
/// back once the target is fixed, and a phase rollback (mirror off) stays
/// the controller's (`switchyard rollback`). `None` when the phase does
/// not allow a proxy to roll it back.
pub fn rolled_back(current: Option<&Row>, file_phase: Phase, reason: &str) -> Option<Row> {
    let mut row = current.cloned().unwrap_or_else(|| Row::initial(file_phase));
    if !proxy_may_roll_back(row.phase) {
        return None;
    }
    row.epoch += 1;
    row.share = Percent::ZERO;
    row.pending_approval = None;
    row.rollback_reason = Some(reason.to_string());
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::config::{ReadPath, Strategy};

    fn plan() -> Migration {
        let yaml = r#"
backends: { pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: u, password: "" } }
migrations:
  - id: api_v2
    backend: pg
    source: { table: api, primary_key: [id] }
    target: { table: api_v2 }
    phase: read_ramp
"#;
        let config =
            switchyard_core::config::Config::from_yaml(yaml, std::path::Path::new("."), &|_| None)
                .unwrap();
        config.migrations[0].clone()
    }

    #[test]
    fn a_rule_written_back_reads_the_same() {
        let plan = plan();
        let reads = Reads {
            strategy: Strategy::Percentage,
            percent: Percent::from_basis_points(2500).unwrap(),
            ..Reads::default()
        };
        let row = with_rule(None, Phase::ReadRamp, &reads);
        assert_eq!((row.phase, row.epoch), (Phase::ReadRamp, 0));
        let (stored, problem) = row.stored(&plan);
        assert_eq!(problem, None);
        assert_eq!(stored.reads.as_deref(), Some(&reads));
    }

    #[test]
    fn a_rule_the_plan_refuses_keeps_the_files() {
        let plan = plan();
        let mut row = Row::initial(Phase::ReadRamp);
        row.read_rule = Some(r#"{"strategy": "percentage", "percent": 250}"#.into());
        let (stored, problem) = row.stored(&plan);
        assert_eq!(stored.reads, None);
        assert!(problem.unwrap().contains("migration `api_v2`"));
        row.read_rule = Some(r#"{"strategy": "immediate", "path": "target"}"#.into());
        let (stored, problem) = row.stored(&plan);
        assert_eq!(problem, None);
        assert_eq!(stored.reads.unwrap().path, ReadPath::Target);
    }

    #[test]
    fn a_proxy_rolls_back_only_while_the_source_is_primary() {
        let mut at = Row::initial(Phase::ReadRamp);
        at.epoch = 4;
        at.share = Percent::FULL;
        let row = rolled_back(Some(&at), Phase::DualWrite, "error_rate").unwrap();
        assert_eq!((row.phase, row.epoch), (Phase::ReadRamp, 5));
        assert_eq!(row.share, Percent::ZERO);
        assert_eq!(row.rollback_reason.as_deref(), Some("error_rate"));
        for phase in [Phase::WriteSwitch, Phase::Complete, Phase::RolledBack] {
            at.phase = phase;
            assert_eq!(rolled_back(Some(&at), Phase::ReadRamp, "x"), None);
        }
        // No stored state yet: from the file's phase, epoch 0 → 1.
        let first = rolled_back(None, Phase::ReadsOnTarget, "latency").unwrap();
        assert_eq!((first.phase, first.epoch), (Phase::ReadsOnTarget, 1));
        // A new rule lifts it, and keeps the epoch.
        let lifted = with_rule(Some(&first), Phase::ReadRamp, &Reads::default());
        assert_eq!((lifted.rollback_reason, lifted.epoch), (None, 1));
    }

    #[test]
    fn stored_names_read_back() {
        for p in Phase::ALL {
            assert_eq!(phase(p.as_str()), Some(p));
        }
        assert_eq!(phase("later"), None);
        assert_eq!(share(2500), Percent::from_basis_points(2500).unwrap());
        assert_eq!(share(20_000), Percent::ZERO);
    }
}
