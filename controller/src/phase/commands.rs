//! The operator's commands: advance, ramp, approve, pause, resume,
//! rollback. Each checks what must be true first and refuses otherwise.

use switchyard_core::config::{Percent, Phase};

use super::{forward, path, Action, Gate, Refusal, Side, Step, Wait, Work};

impl Step {
    pub(super) fn advance(&mut self, to: Option<Phase>) -> Result<(), Refusal> {
        self.still_running()?;
        self.not_paused()?;
        self.not_waiting()?;
        let migration = self.migration();
        let at = self.state.phase;
        // `forward` is Some for every phase `still_running` lets through.
        let Some(next) = forward(at) else {
            return Err(Refusal::Complete { migration });
        };
        let asked = to.unwrap_or(next);
        if asked == Phase::RolledBack {
            return Err(Refusal::AdvanceToRollback { migration });
        }
        if asked != next {
            let ahead = Phase::ALL.iter().position(|&p| p == asked)
                > Phase::ALL.iter().position(|&p| p == at);
            return Err(if ahead {
                Refusal::NotNext {
                    migration,
                    at,
                    asked,
                    path: path(at, asked),
                }
            } else {
                Refusal::Backward {
                    migration,
                    at,
                    asked,
                }
            });
        }
        match at {
            Phase::Planned => {
                // The guard must queue unmirrored writes before any proxy
                // starts mirroring, or the diff could miss one.
                self.actions.push(Action::InstallGuard);
                self.enter(Phase::DualWrite, "advance", None);
            }
            Phase::DualWrite => {
                self.enter(Phase::Backfill, "advance", None);
                self.fence(Work::Backfill);
            }
            Phase::Backfill => return Err(Refusal::BackfillRunning { migration }),
            Phase::Validate => {
                self.check_gates(Phase::ReadRamp, &[Gate::CleanDiff, Gate::RepairQueueEmpty]);
            }
            Phase::ReadRamp if self.state.share != Percent::FULL => {
                return Err(Refusal::ReadsNotOnTarget {
                    migration,
                    share: self.state.share,
                });
            }
            Phase::ReadRamp => self.enter(Phase::ReadsOnTarget, "advance", None),
            Phase::ReadsOnTarget if !self.state.baked => {
                return Err(Refusal::NotBaked { migration });
            }
            Phase::ReadsOnTarget => self.check_gates(
                Phase::WriteSwitch,
                &[Gate::RepairQueueEmpty, Gate::CleanDiff, Gate::Readiness],
            ),
            Phase::WriteSwitch => {
                self.actions.push(Action::RetireGuard);
                self.enter(Phase::Complete, "advance", None);
                self.fence(Work::Archive);
            }
            // Refused by `still_running` already; refused here too rather
            // than panic.
            Phase::Complete | Phase::RolledBack => return Err(Refusal::Complete { migration }),
        }
        Ok(())
    }

    pub(super) fn ramp(&mut self, percent: Percent) -> Result<(), Refusal> {
        self.still_running()?;
        self.not_paused()?;
        let migration = self.migration();
        let at = self.state.phase;
        match at {
            Phase::ReadRamp => {}
            Phase::ReadsOnTarget | Phase::WriteSwitch => {
                return Err(Refusal::RampTooLate { migration, at });
            }
            _ => {
                return Err(Refusal::RampTooEarly {
                    migration,
                    at,
                    path: path(at, Phase::ReadRamp),
                })
            }
        }
        let from = self.state.share;
        self.state.share = percent;
        self.state.pending_approval = None;
        self.state.baked = false;
        self.record("ramp", Some(format!("{from} → {percent}")));
        Ok(())
    }

    pub(super) fn approve(&mut self) -> Result<(), Refusal> {
        self.still_running()?;
        self.not_paused()?;
        let Some(next) = self.state.pending_approval.take() else {
            return Err(Refusal::NothingToApprove {
                migration: self.migration(),
                share: self.state.share,
            });
        };
        let from = self.state.share;
        self.state.share = next;
        self.record("approve", Some(format!("{from} → {next}")));
        Ok(())
    }

    pub(super) fn pause(&mut self) -> Result<(), Refusal> {
        self.still_running()?;
        let migration = self.migration();
        if self.state.paused {
            return Err(Refusal::AlreadyPaused { migration });
        }
        // Gate checks end by themselves within seconds, and a write switch
        // in progress must not hold writes longer than its budget: neither
        // is left half done by a pause.
        if matches!(self.state.waiting, Some(Wait::Gates { .. })) || self.state.holding_writes {
            self.not_waiting()?;
        }
        self.state.paused = true;
        self.record("pause", None);
        if self.state.phase == Phase::Backfill && self.state.waiting.is_none() {
            self.actions.push(Action::StopBackfill);
        }
        Ok(())
    }

    pub(super) fn resume(&mut self) -> Result<(), Refusal> {
        self.still_running()?;
        if !self.state.paused {
            return Err(Refusal::NotPaused {
                migration: self.migration(),
            });
        }
        self.state.paused = false;
        self.record("resume", None);
        match self.state.waiting.take() {
            // A fence passed while paused: its work starts now.
            Some(Wait::Resume { work }) => self.start(work),
            other => {
                self.state.waiting = other;
                // The backfill resumes from its last checkpoint.
                if self.state.phase == Phase::Backfill && self.state.waiting.is_none() {
                    self.actions.push(Action::StartBackfill);
                }
            }
        }
        Ok(())
    }

    pub(super) fn rollback(&mut self, reason: String) -> Result<(), Refusal> {
        let migration = self.migration();
        match self.state.phase {
            Phase::Complete => return Err(Refusal::Complete { migration }),
            Phase::RolledBack => {
                return Err(Refusal::AlreadyRolledBack {
                    migration,
                    reason: self.state.rollback_reason.clone().unwrap_or_default(),
                })
            }
            Phase::Backfill if self.state.waiting.is_none() && !self.state.paused => {
                self.actions.push(Action::StopBackfill);
            }
            // The source becomes primary again: its counters must be past
            // every value the target handed out since the switch, before
            // any proxy writes the source as primary.
            Phase::WriteSwitch => {
                self.actions.push(Action::MoveSequences {
                    primary: Side::Source,
                });
                self.actions.push(Action::MoveGuard {
                    primary: Side::Source,
                });
            }
            _ => {}
        }
        self.state.share = Percent::ZERO;
        self.state.paused = false;
        self.state.pending_approval = None;
        self.state.holding_writes = false;
        self.state.waiting = None;
        self.state.rollback_reason = Some(reason.clone());
        self.enter(Phase::RolledBack, "rollback", Some(reason));
        Ok(())
    }
}
