//! What the executor observed: proxies' acknowledgements, the backfill's
//! end, gate verdicts, a bake that elapsed, a switch that ran out of
//! budget, a phase that stalls, a controller that took over. A fact that
//! does not fit the state is refused, so the executor can log a stale or
//! doubled report and carry on.

use switchyard_core::config::{Percent, Phase};

use super::{Action, AlertKind, Gate, Refusal, Side, Step, Wait, Work};

impl Step {
    /// The executor's report did not fit the state.
    fn unexpected(&self, event: &'static str) -> Refusal {
        Refusal::Unexpected {
            migration: self.migration(),
            event,
            at: self.state.phase,
        }
    }

    /// Starts the work a fence held back.
    pub(super) fn start(&mut self, work: Work) {
        match work {
            Work::Backfill => self.actions.push(Action::StartBackfill),
            Work::SwitchWrites => {
                // Every proxy holds writes: move the target's counters past
                // the source's, then make the target primary. Proxies that
                // see the new epoch release their held writes onto it.
                self.actions.push(Action::MoveSequences {
                    primary: Side::Target,
                });
                self.actions.push(Action::MoveGuard {
                    primary: Side::Target,
                });
                self.state.holding_writes = false;
                self.enter(Phase::WriteSwitch, "switch_writes", None);
            }
            Work::Archive => {
                let phase = self.state.phase;
                self.actions.push(Action::ArchiveSource);
                self.actions.push(Action::Audit {
                    action: "archive",
                    from: phase,
                    to: phase,
                    reason: None,
                });
            }
        }
    }

    pub(super) fn acknowledged(&mut self, epoch: u64) -> Result<(), Refusal> {
        let Some(Wait::Acks { epoch: want, work }) = self.state.waiting else {
            return Err(Refusal::StaleAck {
                migration: self.migration(),
                got: epoch,
                current: self.state.epoch,
                waiting: false,
            });
        };
        if epoch != want {
            return Err(Refusal::StaleAck {
                migration: self.migration(),
                got: epoch,
                current: want,
                waiting: true,
            });
        }
        self.state.waiting = None;
        if self.state.paused {
            self.state.waiting = Some(Wait::Resume { work });
        } else {
            self.start(work);
        }
        Ok(())
    }

    pub(super) fn backfill_done(&mut self) -> Result<(), Refusal> {
        let running = self.state.phase == Phase::Backfill
            && !matches!(self.state.waiting, Some(Wait::Acks { .. }));
        if !running {
            return Err(self.unexpected("backfill_done"));
        }
        // A pause that raced the last chunk has nothing left to hold.
        self.state.waiting = None;
        self.enter(Phase::Validate, "backfill_done", None);
        Ok(())
    }

    pub(super) fn gate_passed(&mut self, gate: Gate) -> Result<(), Refusal> {
        let Some(Wait::Gates { to, pending }) = &mut self.state.waiting else {
            return Err(self.unexpected("gate_passed"));
        };
        let Some(at) = pending.iter().position(|&g| g == gate) else {
            return Err(self.unexpected("gate_passed"));
        };
        pending.remove(at);
        if pending.is_empty() {
            let to = *to;
            self.gates_open(to);
        }
        Ok(())
    }

    pub(super) fn gate_failed(&mut self, gate: Gate, why: String) -> Result<(), Refusal> {
        let asked = matches!(&self.state.waiting,
            Some(Wait::Gates { pending, .. }) if pending.contains(&gate));
        if !asked {
            return Err(self.unexpected("gate_failed"));
        }
        // One closed gate is enough: the advance is dropped, and the
        // verdicts still on their way are refused as unexpected.
        self.state.waiting = None;
        let phase = self.state.phase;
        self.actions.push(Action::Audit {
            action: "gate_failed",
            from: phase,
            to: phase,
            reason: Some(format!("{gate}: {why}")),
        });
        self.actions.push(Action::Alert {
            kind: AlertKind::GateFailed,
            message: format!(
                "migration `{}`: gate {gate} is closed at {phase}: {why}",
                self.state.migration
            ),
        });
        Ok(())
    }

    pub(super) fn bake_elapsed(&mut self) -> Result<(), Refusal> {
        let migration = self.migration();
        if self.state.paused {
            return Err(Refusal::Paused { migration });
        }
        match self.state.phase {
            Phase::ReadRamp => {
                if let Some(share) = self.state.pending_approval {
                    return Err(Refusal::AwaitingApproval { migration, share });
                }
                if self.next_ramp_step() {
                    return Ok(());
                }
                if self.state.share != Percent::FULL {
                    return Err(Refusal::ScheduleEnds {
                        migration,
                        share: self.state.share,
                    });
                }
                // The last step baked: every read stays on the target.
                self.enter(Phase::ReadsOnTarget, "ramp_done", None);
            }
            Phase::ReadsOnTarget if !self.state.holding_writes => self.state.baked = true,
            _ => return Err(self.unexpected("bake_elapsed")),
        }
        Ok(())
    }

    pub(super) fn switch_aborted(&mut self, why: String) -> Result<(), Refusal> {
        if !self.state.holding_writes {
            return Err(self.unexpected("switch_aborted"));
        }
        self.abort_switch(why);
        Ok(())
    }

    /// Releases held writes on the source: the switch did not happen.
    fn abort_switch(&mut self, why: String) {
        self.state.holding_writes = false;
        self.state.waiting = None;
        self.state.epoch += 1;
        self.record("switch_aborted", Some(why.clone()));
        self.actions.push(Action::Alert {
            kind: AlertKind::SwitchAborted,
            message: format!(
                "migration `{}`: the write switch aborted, writes stay on the source: {why}",
                self.state.migration
            ),
        });
    }

    pub(super) fn stalled(&mut self, minutes: u64) -> Result<(), Refusal> {
        if matches!(self.state.phase, Phase::Complete | Phase::RolledBack) {
            return Err(self.unexpected("stalled"));
        }
        let waiting = match &self.state.waiting {
            Some(wait) => format!(", waiting: {wait}"),
            None => String::new(),
        };
        self.actions.push(Action::Alert {
            kind: AlertKind::Stalled,
            message: format!(
                "migration `{}` has been at {} for {minutes} min{waiting}",
                self.state.migration, self.state.phase
            ),
        });
        Ok(())
    }

    /// A controller took the lease and loaded the stored state: the work
    /// a crashed one had in flight is set up again.
    pub(super) fn took_over(&mut self) {
        self.state.waiting = None;
        self.state.baked = false;
        if self.state.holding_writes {
            // The budget of the switch in flight is gone with its
            // controller; release the writes rather than hold them longer.
            self.abort_switch("the controller running the write switch stopped".into());
            return;
        }
        match self.state.phase {
            // The backfill resumes from its checkpoint once every proxy
            // mirrors; a rename that already happened is a no-op.
            Phase::Backfill if self.state.paused => {
                self.state.waiting = Some(Wait::Resume {
                    work: Work::Backfill,
                })
            }
            Phase::Backfill => self.fence(Work::Backfill),
            Phase::Complete => self.fence(Work::Archive),
            _ => {}
        }
    }
}
