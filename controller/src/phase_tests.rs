//! The phase machine's transitions as tables: every phase, and every state
//! in between (waiting for acknowledgements or gates, paused, holding
//! writes), against every event. A row is the state, the event, and either
//! the state after it with the actions in order, or the refusal's message.

use expect_test::{expect, Expect};
use switchyard_core::config::{Percent, Phase};

use super::*;

fn pct(percent: u32) -> Percent {
    Percent::from_basis_points(percent * 100).unwrap()
}

/// The config's default ramp: 1, 5, 25, 50, 100 %.
fn schedule(approval: bool) -> Schedule {
    Schedule {
        steps: [1, 5, 25, 50, 100].into_iter().map(pct).collect(),
        approval,
    }
}

/// A migration standing at `phase` with nothing in flight: the backfill
/// running, reads at 25% during the ramp and baked on the target after.
fn settled(phase: Phase) -> State {
    let index = Phase::ALL.iter().position(|&p| p == phase).unwrap() as u64;
    let mut state = State::new("api_v2", schedule(false));
    state.phase = phase;
    state.epoch = index;
    state.share = match phase {
        Phase::ReadRamp => pct(25),
        Phase::ReadsOnTarget | Phase::WriteSwitch | Phase::Complete => Percent::FULL,
        _ => Percent::ZERO,
    };
    state.baked = phase == Phase::ReadsOnTarget;
    if phase == Phase::RolledBack {
        state.rollback_reason = Some("target error rate 7%".into());
    }
    state
}

/// One of each event; acknowledgements name the state's own epoch.
fn events(state: &State) -> Vec<Event> {
    vec![
        Event::Advance { to: None },
        Event::Advance {
            to: Some(Phase::Complete),
        },
        Event::Advance {
            to: Some(Phase::DualWrite),
        },
        Event::Ramp { percent: pct(50) },
        Event::Rollback {
            reason: "operator".into(),
        },
        Event::Pause,
        Event::Resume,
        Event::Approve,
        Event::ProxiesAcknowledged { epoch: state.epoch },
        Event::BackfillDone,
        Event::GatePassed {
            gate: Gate::CleanDiff,
        },
        Event::GateFailed {
            gate: Gate::CleanDiff,
            why: "3 keys differ".into(),
        },
        Event::BakeElapsed,
        Event::SwitchAborted {
            why: "budget 2s spent".into(),
        },
        Event::Stalled { minutes: 30 },
        Event::TookOver,
    ]
}

/// `read_ramp#5 25% paused ...`: what a row shows of a state.
fn summary(state: &State) -> String {
    let mut out = format!("{}#{} {}", state.phase, state.epoch, state.share);
    if state.paused {
        out.push_str(" paused");
    }
    if let Some(p) = state.pending_approval {
        out.push_str(&format!(" approve?{p}"));
    }
    if state.holding_writes {
        out.push_str(" holding");
    }
    if state.baked {
        out.push_str(" baked");
    }
    match &state.waiting {
        Some(Wait::Acks { epoch, work }) => out.push_str(&format!(" acks({epoch})→{work:?}")),
        Some(Wait::Gates { to, pending }) => {
            let gates: Vec<String> = pending.iter().map(Gate::to_string).collect();
            out.push_str(&format!(" gates({})→{to}", gates.join(",")));
        }
        Some(Wait::Resume { work }) => out.push_str(&format!(" resume→{work:?}")),
        None => {}
    }
    out
}

/// Every event against each of `states`, one row each.
fn table(states: &[(&str, State)], want: Expect) {
    let mut out = String::new();
    for (name, state) in states {
        out.push_str(&format!("## {name}: {}\n", summary(state)));
        for event in events(state) {
            let row = match step(state, event.clone()) {
                Ok((after, actions)) => {
                    let actions: Vec<String> = actions.iter().map(Action::to_string).collect();
                    format!("{} | {}", summary(&after), actions.join(" "))
                }
                Err(refusal) => format!("refused: {refusal}"),
            };
            out.push_str(&format!("{:<26} {row}\n", event.to_string()));
        }
    }
    want.assert_eq(&out);
}

#[test]
fn every_phase_against_every_event() {
    let states: Vec<(&str, State)> = Phase::ALL
        .iter()
        .map(|&p| (p.as_str(), settled(p)))
        .collect();
    table(
        &states,
        expect![[r#"
            ## planned: planned#0 0%
            advance                    dual_write#1 0% | install_guard persist audit(advance planned→dual_write) alert(phase_changed)
            advance --to complete      refused: migration `api_v2` is at planned; it reaches complete only through dual_write → backfill → validate → read_ramp → reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    dual_write#1 0% | install_guard persist audit(advance planned→dual_write) alert(phase_changed)
            ramp 50%                   refused: migration `api_v2` is at planned; reads ramp only in read_ramp: advance it there first (dual_write → backfill → validate → read_ramp)
            rollback                   rolled_back#1 0% | persist audit(rollback planned→rolled_back) alert(rolled_back)
            pause                      planned#0 0% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 0     refused: migration `api_v2`: proxies acknowledged epoch 0, but nothing waits for acknowledgements (the current epoch is 0)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at planned; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at planned; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at planned; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at planned; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at planned; the report is ignored
            stalled 30min              planned#0 0% | alert(stalled)
            took_over                  planned#0 0% | 
            ## dual_write: dual_write#1 0%
            advance                    backfill#2 0% acks(2)→Backfill | persist audit(advance dual_write→backfill) alert(phase_changed) await_acks(2)
            advance --to complete      refused: migration `api_v2` is at dual_write; it reaches complete only through backfill → validate → read_ramp → reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at dual_write, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at dual_write; reads ramp only in read_ramp: advance it there first (backfill → validate → read_ramp)
            rollback                   rolled_back#2 0% | persist audit(rollback dual_write→rolled_back) alert(rolled_back)
            pause                      dual_write#1 0% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 1     refused: migration `api_v2`: proxies acknowledged epoch 1, but nothing waits for acknowledgements (the current epoch is 1)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at dual_write; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at dual_write; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at dual_write; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at dual_write; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at dual_write; the report is ignored
            stalled 30min              dual_write#1 0% | alert(stalled)
            took_over                  dual_write#1 0% | 
            ## backfill: backfill#2 0%
            advance                    refused: migration `api_v2` is still backfilling; it moves to validate by itself when the last chunk is copied (`switchyard status api_v2` shows how far it is)
            advance --to complete      refused: migration `api_v2` is at backfill; it reaches complete only through validate → read_ramp → reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at backfill, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at backfill; reads ramp only in read_ramp: advance it there first (validate → read_ramp)
            rollback                   rolled_back#3 0% | stop_backfill persist audit(rollback backfill→rolled_back) alert(rolled_back)
            pause                      backfill#2 0% paused | persist audit(pause) stop_backfill
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 2     refused: migration `api_v2`: proxies acknowledged epoch 2, but nothing waits for acknowledgements (the current epoch is 2)
            backfill_done              validate#3 0% | persist audit(backfill_done backfill→validate) alert(phase_changed)
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at backfill; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at backfill; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at backfill; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at backfill; the report is ignored
            stalled 30min              backfill#2 0% | alert(stalled)
            took_over                  backfill#2 0% acks(2)→Backfill | await_acks(2)
            ## validate: validate#3 0%
            advance                    validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp | check(clean_diff) check(repair_queue_empty)
            advance --to complete      refused: migration `api_v2` is at validate; it reaches complete only through read_ramp → reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at validate, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at validate; reads ramp only in read_ramp: advance it there first (read_ramp)
            rollback                   rolled_back#4 0% | persist audit(rollback validate→rolled_back) alert(rolled_back)
            pause                      validate#3 0% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 3     refused: migration `api_v2`: proxies acknowledged epoch 3, but nothing waits for acknowledgements (the current epoch is 3)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at validate; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at validate; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at validate; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at validate; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at validate; the report is ignored
            stalled 30min              validate#3 0% | alert(stalled)
            took_over                  validate#3 0% | 
            ## read_ramp: read_ramp#4 25%
            advance                    refused: migration `api_v2` sends 25% of reads to the target; ramp to 100% first (`switchyard ramp api_v2 100`)
            advance --to complete      refused: migration `api_v2` is at read_ramp; it reaches complete only through reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at read_ramp, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   read_ramp#4 50% | persist audit(ramp)
            rollback                   rolled_back#5 0% | persist audit(rollback read_ramp→rolled_back) alert(rolled_back)
            pause                      read_ramp#4 25% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (25% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 4     refused: migration `api_v2`: proxies acknowledged epoch 4, but nothing waits for acknowledgements (the current epoch is 4)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at read_ramp; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at read_ramp; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at read_ramp; the report is ignored
            bake_elapsed               read_ramp#4 50% | persist audit(ramp)
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at read_ramp; the report is ignored
            stalled 30min              read_ramp#4 25% | alert(stalled)
            took_over                  read_ramp#4 25% | 
            ## reads_on_target: reads_on_target#5 100% baked
            advance                    reads_on_target#5 100% baked gates(repair_queue_empty,clean_diff,readiness)→write_switch | check(repair_queue_empty) check(clean_diff) check(readiness)
            advance --to complete      refused: migration `api_v2` is at reads_on_target; it reaches complete only through write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at reads_on_target, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at reads_on_target: every read is on the target; to send reads back to the source, run `switchyard rollback api_v2`
            rollback                   rolled_back#6 0% | persist audit(rollback reads_on_target→rolled_back) alert(rolled_back)
            pause                      reads_on_target#5 100% paused baked | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 5     refused: migration `api_v2`: proxies acknowledged epoch 5, but nothing waits for acknowledgements (the current epoch is 5)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at reads_on_target; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at reads_on_target; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at reads_on_target; the report is ignored
            bake_elapsed               reads_on_target#5 100% baked | 
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at reads_on_target; the report is ignored
            stalled 30min              reads_on_target#5 100% baked | alert(stalled)
            took_over                  reads_on_target#5 100% | 
            ## write_switch: write_switch#6 100%
            advance                    complete#7 100% acks(7)→Archive | retire_guard persist audit(advance write_switch→complete) alert(phase_changed) await_acks(7)
            advance --to complete      complete#7 100% acks(7)→Archive | retire_guard persist audit(advance write_switch→complete) alert(phase_changed) await_acks(7)
            advance --to dual_write    refused: migration `api_v2` is at write_switch, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at write_switch: every read is on the target; to send reads back to the source, run `switchyard rollback api_v2`
            rollback                   rolled_back#7 0% | move_sequences(source) move_guard(source) persist audit(rollback write_switch→rolled_back) alert(rolled_back)
            pause                      write_switch#6 100% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 6     refused: migration `api_v2`: proxies acknowledged epoch 6, but nothing waits for acknowledgements (the current epoch is 6)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at write_switch; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at write_switch; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at write_switch; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at write_switch; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at write_switch; the report is ignored
            stalled 30min              write_switch#6 100% | alert(stalled)
            took_over                  write_switch#6 100% | 
            ## complete: complete#7 100%
            advance                    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            advance --to complete      refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            advance --to dual_write    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            ramp 50%                   refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            rollback                   refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            pause                      refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            resume                     refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            approve                    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            proxies_acknowledged 7     refused: migration `api_v2`: proxies acknowledged epoch 7, but nothing waits for acknowledgements (the current epoch is 7)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at complete; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at complete; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at complete; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at complete; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at complete; the report is ignored
            stalled 30min              refused: migration `api_v2`: stalled does not apply at complete; the report is ignored
            took_over                  complete#7 100% acks(7)→Archive | await_acks(7)
            ## rolled_back: rolled_back#8 0%
            advance                    refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            advance --to complete      refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            advance --to dual_write    refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            ramp 50%                   refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            rollback                   refused: migration `api_v2` is already rolled back (target error rate 7%)
            pause                      refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            resume                     refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            approve                    refused: migration `api_v2` was rolled back (target error rate 7%); it moves no further: fix the cause and start a new migration with an empty target
            proxies_acknowledged 8     refused: migration `api_v2`: proxies acknowledged epoch 8, but nothing waits for acknowledgements (the current epoch is 8)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at rolled_back; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at rolled_back; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at rolled_back; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at rolled_back; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at rolled_back; the report is ignored
            stalled 30min              refused: migration `api_v2`: stalled does not apply at rolled_back; the report is ignored
            took_over                  rolled_back#8 0% | 
        "#]],
    );
}

#[test]
fn every_state_in_between_against_every_event() {
    let with = |phase, change: &dyn Fn(&mut State)| {
        let mut state = settled(phase);
        change(&mut state);
        state
    };
    let states = [
        (
            "backfill behind its fence",
            with(Phase::Backfill, &|s| {
                s.waiting = Some(Wait::Acks {
                    epoch: s.epoch,
                    work: Work::Backfill,
                })
            }),
        ),
        (
            "backfill paused",
            with(Phase::Backfill, &|s| s.paused = true),
        ),
        (
            "validate checking gates",
            with(Phase::Validate, &|s| {
                s.waiting = Some(Wait::Gates {
                    to: Phase::ReadRamp,
                    pending: vec![Gate::CleanDiff, Gate::RepairQueueEmpty],
                })
            }),
        ),
        (
            "read_ramp awaiting approval",
            with(Phase::ReadRamp, &|s| s.pending_approval = Some(pct(50))),
        ),
        (
            "read_ramp at 100%",
            with(Phase::ReadRamp, &|s| s.share = Percent::FULL),
        ),
        (
            "read_ramp paused",
            with(Phase::ReadRamp, &|s| s.paused = true),
        ),
        (
            "reads_on_target not baked",
            with(Phase::ReadsOnTarget, &|s| s.baked = false),
        ),
        (
            "reads_on_target holding writes",
            with(Phase::ReadsOnTarget, &|s| {
                s.holding_writes = true;
                s.waiting = Some(Wait::Acks {
                    epoch: s.epoch,
                    work: Work::SwitchWrites,
                })
            }),
        ),
        (
            "complete behind its fence",
            with(Phase::Complete, &|s| {
                s.waiting = Some(Wait::Acks {
                    epoch: s.epoch,
                    work: Work::Archive,
                })
            }),
        ),
    ];
    table(
        &states,
        expect![[r#"
            ## backfill behind its fence: backfill#2 0% acks(2)→Backfill
            advance                    refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 2, and older transactions end, before the backfill starts; try again when that is done
            advance --to complete      refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 2, and older transactions end, before the backfill starts; try again when that is done
            advance --to dual_write    refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 2, and older transactions end, before the backfill starts; try again when that is done
            ramp 50%                   refused: migration `api_v2` is at backfill; reads ramp only in read_ramp: advance it there first (validate → read_ramp)
            rollback                   rolled_back#3 0% | persist audit(rollback backfill→rolled_back) alert(rolled_back)
            pause                      backfill#2 0% paused acks(2)→Backfill | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 2     backfill#2 0% | start_backfill
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at backfill; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at backfill; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at backfill; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at backfill; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at backfill; the report is ignored
            stalled 30min              backfill#2 0% acks(2)→Backfill | alert(stalled)
            took_over                  backfill#2 0% acks(2)→Backfill | await_acks(2)
            ## backfill paused: backfill#2 0% paused
            advance                    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            advance --to complete      refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            advance --to dual_write    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            ramp 50%                   refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            rollback                   rolled_back#3 0% | persist audit(rollback backfill→rolled_back) alert(rolled_back)
            pause                      refused: migration `api_v2` is already paused; `switchyard resume api_v2` carries on
            resume                     backfill#2 0% | persist audit(resume) start_backfill
            approve                    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            proxies_acknowledged 2     refused: migration `api_v2`: proxies acknowledged epoch 2, but nothing waits for acknowledgements (the current epoch is 2)
            backfill_done              validate#3 0% paused | persist audit(backfill_done backfill→validate) alert(phase_changed)
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at backfill; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at backfill; the report is ignored
            bake_elapsed               refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at backfill; the report is ignored
            stalled 30min              backfill#2 0% paused | alert(stalled)
            took_over                  backfill#2 0% paused resume→Backfill | 
            ## validate checking gates: validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp
            advance                    refused: migration `api_v2` is waiting: gates clean_diff, repair_queue_empty must pass before read_ramp; try again when that is done
            advance --to complete      refused: migration `api_v2` is waiting: gates clean_diff, repair_queue_empty must pass before read_ramp; try again when that is done
            advance --to dual_write    refused: migration `api_v2` is waiting: gates clean_diff, repair_queue_empty must pass before read_ramp; try again when that is done
            ramp 50%                   refused: migration `api_v2` is at validate; reads ramp only in read_ramp: advance it there first (read_ramp)
            rollback                   rolled_back#4 0% | persist audit(rollback validate→rolled_back) alert(rolled_back)
            pause                      refused: migration `api_v2` is waiting: gates clean_diff, repair_queue_empty must pass before read_ramp; try again when that is done
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (0% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 3     refused: migration `api_v2`: proxies acknowledged epoch 3, but nothing waits for acknowledgements (the current epoch is 3)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at validate; the report is ignored
            gate_passed clean_diff     validate#3 0% gates(repair_queue_empty)→read_ramp | 
            gate_failed clean_diff     validate#3 0% | audit(gate_failed) alert(gate_failed)
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at validate; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at validate; the report is ignored
            stalled 30min              validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp | alert(stalled)
            took_over                  validate#3 0% | 
            ## read_ramp awaiting approval: read_ramp#4 25% approve?50%
            advance                    refused: migration `api_v2` sends 25% of reads to the target; ramp to 100% first (`switchyard ramp api_v2 100`)
            advance --to complete      refused: migration `api_v2` is at read_ramp; it reaches complete only through reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at read_ramp, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   read_ramp#4 50% | persist audit(ramp)
            rollback                   rolled_back#5 0% | persist audit(rollback read_ramp→rolled_back) alert(rolled_back)
            pause                      read_ramp#4 25% paused approve?50% | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    read_ramp#4 50% | persist audit(approve)
            proxies_acknowledged 4     refused: migration `api_v2`: proxies acknowledged epoch 4, but nothing waits for acknowledgements (the current epoch is 4)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at read_ramp; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at read_ramp; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at read_ramp; the report is ignored
            bake_elapsed               refused: migration `api_v2`: the ramp step to 50% waits for `switchyard approve api_v2`
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at read_ramp; the report is ignored
            stalled 30min              read_ramp#4 25% approve?50% | alert(stalled)
            took_over                  read_ramp#4 25% approve?50% | 
            ## read_ramp at 100%: read_ramp#4 100%
            advance                    reads_on_target#5 100% | persist audit(advance read_ramp→reads_on_target) alert(phase_changed)
            advance --to complete      refused: migration `api_v2` is at read_ramp; it reaches complete only through reads_on_target → write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at read_ramp, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   read_ramp#4 50% | persist audit(ramp)
            rollback                   rolled_back#5 0% | persist audit(rollback read_ramp→rolled_back) alert(rolled_back)
            pause                      read_ramp#4 100% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 4     refused: migration `api_v2`: proxies acknowledged epoch 4, but nothing waits for acknowledgements (the current epoch is 4)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at read_ramp; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at read_ramp; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at read_ramp; the report is ignored
            bake_elapsed               reads_on_target#5 100% | persist audit(ramp_done read_ramp→reads_on_target) alert(phase_changed)
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at read_ramp; the report is ignored
            stalled 30min              read_ramp#4 100% | alert(stalled)
            took_over                  read_ramp#4 100% | 
            ## read_ramp paused: read_ramp#4 25% paused
            advance                    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            advance --to complete      refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            advance --to dual_write    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            ramp 50%                   refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            rollback                   rolled_back#5 0% | persist audit(rollback read_ramp→rolled_back) alert(rolled_back)
            pause                      refused: migration `api_v2` is already paused; `switchyard resume api_v2` carries on
            resume                     read_ramp#4 25% | persist audit(resume)
            approve                    refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            proxies_acknowledged 4     refused: migration `api_v2`: proxies acknowledged epoch 4, but nothing waits for acknowledgements (the current epoch is 4)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at read_ramp; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at read_ramp; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at read_ramp; the report is ignored
            bake_elapsed               refused: migration `api_v2` is paused; run `switchyard resume api_v2` first
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at read_ramp; the report is ignored
            stalled 30min              read_ramp#4 25% paused | alert(stalled)
            took_over                  read_ramp#4 25% paused | 
            ## reads_on_target not baked: reads_on_target#5 100%
            advance                    refused: migration `api_v2`: every read must stay on the target for the bake time before the write switch; let `switchyard run api_v2` bake it first
            advance --to complete      refused: migration `api_v2` is at reads_on_target; it reaches complete only through write_switch → complete, one `switchyard advance api_v2` at a time
            advance --to dual_write    refused: migration `api_v2` is at reads_on_target, past dual_write; phases never go back: `switchyard rollback api_v2` returns reads and writes to the source
            ramp 50%                   refused: migration `api_v2` is at reads_on_target: every read is on the target; to send reads back to the source, run `switchyard rollback api_v2`
            rollback                   rolled_back#6 0% | persist audit(rollback reads_on_target→rolled_back) alert(rolled_back)
            pause                      reads_on_target#5 100% paused | persist audit(pause)
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 5     refused: migration `api_v2`: proxies acknowledged epoch 5, but nothing waits for acknowledgements (the current epoch is 5)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at reads_on_target; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at reads_on_target; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at reads_on_target; the report is ignored
            bake_elapsed               reads_on_target#5 100% baked | 
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at reads_on_target; the report is ignored
            stalled 30min              reads_on_target#5 100% | alert(stalled)
            took_over                  reads_on_target#5 100% | 
            ## reads_on_target holding writes: reads_on_target#5 100% holding baked acks(5)→SwitchWrites
            advance                    refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 5, and older transactions end, before writes switch to the target; try again when that is done
            advance --to complete      refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 5, and older transactions end, before writes switch to the target; try again when that is done
            advance --to dual_write    refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 5, and older transactions end, before writes switch to the target; try again when that is done
            ramp 50%                   refused: migration `api_v2` is at reads_on_target: every read is on the target; to send reads back to the source, run `switchyard rollback api_v2`
            rollback                   rolled_back#6 0% | persist audit(rollback reads_on_target→rolled_back) alert(rolled_back)
            pause                      refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 5, and older transactions end, before writes switch to the target; try again when that is done
            resume                     refused: migration `api_v2` is not paused; nothing to resume
            approve                    refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
            proxies_acknowledged 5     write_switch#6 100% | move_sequences(target) move_guard(target) persist audit(switch_writes reads_on_target→write_switch) alert(phase_changed)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at reads_on_target; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at reads_on_target; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at reads_on_target; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at reads_on_target; the report is ignored
            switch_aborted             reads_on_target#6 100% baked | persist audit(switch_aborted) alert(switch_aborted)
            stalled 30min              reads_on_target#5 100% holding baked acks(5)→SwitchWrites | alert(stalled)
            took_over                  reads_on_target#6 100% | persist audit(switch_aborted) alert(switch_aborted)
            ## complete behind its fence: complete#7 100% acks(7)→Archive
            advance                    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            advance --to complete      refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            advance --to dual_write    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            ramp 50%                   refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            rollback                   refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            pause                      refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            resume                     refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            approve                    refused: migration `api_v2` is complete: its source is archived and the target is primary; nothing about it changes any more
            proxies_acknowledged 7     complete#7 100% | archive_source audit(archive)
            backfill_done              refused: migration `api_v2`: backfill_done does not apply at complete; the report is ignored
            gate_passed clean_diff     refused: migration `api_v2`: gate_passed does not apply at complete; the report is ignored
            gate_failed clean_diff     refused: migration `api_v2`: gate_failed does not apply at complete; the report is ignored
            bake_elapsed               refused: migration `api_v2`: bake_elapsed does not apply at complete; the report is ignored
            switch_aborted             refused: migration `api_v2`: switch_aborted does not apply at complete; the report is ignored
            stalled 30min              refused: migration `api_v2`: stalled does not apply at complete; the report is ignored
            took_over                  complete#7 100% acks(7)→Archive | await_acks(7)
        "#]],
    );
}

/// Feeds `events` in order from `state`, printing each step.
fn flow(mut state: State, events: Vec<Event>, want: Expect) {
    let mut out = String::new();
    for event in events {
        match step(&state, event.clone()) {
            Ok((after, actions)) => {
                out.push_str(&format!("{event} → {}\n", summary(&after)));
                for action in actions {
                    match &action {
                        Action::Alert { message, .. } => {
                            out.push_str(&format!("    alert: {message}\n"))
                        }
                        Action::Audit {
                            reason: Some(reason),
                            ..
                        } => out.push_str(&format!("    {action}: {reason}\n")),
                        other => out.push_str(&format!("    {other}\n")),
                    }
                }
                state = after;
            }
            Err(refusal) => out.push_str(&format!("{event} refused: {refusal}\n")),
        }
    }
    want.assert_eq(&out);
}

#[test]
fn planned_to_complete() {
    let next = Event::Advance { to: None };
    let ack = |epoch| Event::ProxiesAcknowledged { epoch };
    let passed = |gate| Event::GatePassed { gate };
    flow(
        State::new("api_v2", schedule(false)),
        vec![
            next.clone(),
            next.clone(),
            ack(2),
            Event::BackfillDone,
            next.clone(),
            passed(Gate::CleanDiff),
            passed(Gate::RepairQueueEmpty),
            Event::BakeElapsed,
            Event::BakeElapsed,
            Event::BakeElapsed,
            Event::BakeElapsed,
            Event::BakeElapsed,
            Event::BakeElapsed,
            next.clone(),
            passed(Gate::RepairQueueEmpty),
            passed(Gate::CleanDiff),
            passed(Gate::Readiness),
            ack(6),
            next.clone(),
            ack(8),
        ],
        expect![[r#"
            advance → dual_write#1 0%
                install_guard
                persist
                audit(advance planned→dual_write)
                alert: migration `api_v2`: planned → dual_write (epoch 1)
            advance → backfill#2 0% acks(2)→Backfill
                persist
                audit(advance dual_write→backfill)
                alert: migration `api_v2`: dual_write → backfill (epoch 2)
                await_acks(2)
            proxies_acknowledged 2 → backfill#2 0%
                start_backfill
            backfill_done → validate#3 0%
                persist
                audit(backfill_done backfill→validate)
                alert: migration `api_v2`: backfill → validate (epoch 3)
            advance → validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp
                check(clean_diff)
                check(repair_queue_empty)
            gate_passed clean_diff → validate#3 0% gates(repair_queue_empty)→read_ramp
            gate_passed repair_queue_empty → read_ramp#4 1%
                persist
                audit(advance validate→read_ramp)
                alert: migration `api_v2`: validate → read_ramp (epoch 4)
                audit(ramp): 0% → 1% on schedule
            bake_elapsed → read_ramp#4 5%
                persist
                audit(ramp): 1% → 5% on schedule
            bake_elapsed → read_ramp#4 25%
                persist
                audit(ramp): 5% → 25% on schedule
            bake_elapsed → read_ramp#4 50%
                persist
                audit(ramp): 25% → 50% on schedule
            bake_elapsed → read_ramp#4 100%
                persist
                audit(ramp): 50% → 100% on schedule
            bake_elapsed → reads_on_target#5 100%
                persist
                audit(ramp_done read_ramp→reads_on_target)
                alert: migration `api_v2`: read_ramp → reads_on_target (epoch 5)
            bake_elapsed → reads_on_target#5 100% baked
            advance → reads_on_target#5 100% baked gates(repair_queue_empty,clean_diff,readiness)→write_switch
                check(repair_queue_empty)
                check(clean_diff)
                check(readiness)
            gate_passed repair_queue_empty → reads_on_target#5 100% baked gates(clean_diff,readiness)→write_switch
            gate_passed clean_diff → reads_on_target#5 100% baked gates(readiness)→write_switch
            gate_passed readiness → reads_on_target#6 100% holding baked acks(6)→SwitchWrites
                persist
                audit(hold_writes)
                hold_writes(6)
                await_acks(6)
            proxies_acknowledged 6 → write_switch#7 100%
                move_sequences(target)
                move_guard(target)
                persist
                audit(switch_writes reads_on_target→write_switch)
                alert: migration `api_v2`: reads_on_target → write_switch (epoch 7)
            advance → complete#8 100% acks(8)→Archive
                retire_guard
                persist
                audit(advance write_switch→complete)
                alert: migration `api_v2`: write_switch → complete (epoch 8)
                await_acks(8)
            proxies_acknowledged 8 → complete#8 100%
                archive_source
                audit(archive)
        "#]],
    );
}

#[test]
fn ramp_with_approval_and_a_gate_that_fails() {
    let mut state = settled(Phase::Validate);
    state.schedule = schedule(true);
    flow(
        state,
        vec![
            Event::Advance { to: None },
            Event::GateFailed {
                gate: Gate::RepairQueueEmpty,
                why: "12 keys queued".into(),
            },
            Event::GatePassed {
                gate: Gate::CleanDiff,
            },
            Event::Advance { to: None },
            Event::GatePassed {
                gate: Gate::CleanDiff,
            },
            Event::GatePassed {
                gate: Gate::RepairQueueEmpty,
            },
            Event::BakeElapsed,
            Event::Approve,
            Event::BakeElapsed,
            Event::BakeElapsed,
            Event::Ramp { percent: pct(100) },
            Event::Approve,
        ],
        expect![[r#"
            advance → validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp
                check(clean_diff)
                check(repair_queue_empty)
            gate_failed repair_queue_empty → validate#3 0%
                audit(gate_failed): repair_queue_empty: 12 keys queued
                alert: migration `api_v2`: gate repair_queue_empty is closed at validate: 12 keys queued
            gate_passed clean_diff refused: migration `api_v2`: gate_passed does not apply at validate; the report is ignored
            advance → validate#3 0% gates(clean_diff,repair_queue_empty)→read_ramp
                check(clean_diff)
                check(repair_queue_empty)
            gate_passed clean_diff → validate#3 0% gates(repair_queue_empty)→read_ramp
            gate_passed repair_queue_empty → read_ramp#4 0% approve?1%
                persist
                audit(advance validate→read_ramp)
                alert: migration `api_v2`: validate → read_ramp (epoch 4)
                audit(await_approval): step to 1%
                alert: migration `api_v2`: the read ramp's step to 1% awaits `switchyard approve api_v2`
            bake_elapsed refused: migration `api_v2`: the ramp step to 1% waits for `switchyard approve api_v2`
            approve → read_ramp#4 1%
                persist
                audit(approve): 0% → 1%
            bake_elapsed → read_ramp#4 1% approve?5%
                persist
                audit(await_approval): step to 5%
                alert: migration `api_v2`: the read ramp's step to 5% awaits `switchyard approve api_v2`
            bake_elapsed refused: migration `api_v2`: the ramp step to 5% waits for `switchyard approve api_v2`
            ramp 100% → read_ramp#4 100%
                persist
                audit(ramp): 1% → 100%
            approve refused: migration `api_v2` has no ramp step waiting for approval (100% of reads on the target); `switchyard run api_v2` asks when a step has baked
        "#]],
    );
}

#[test]
fn pause_defers_a_fence_and_a_new_controller_rebuilds_one() {
    flow(
        settled(Phase::DualWrite),
        vec![
            Event::Advance { to: None },
            Event::Pause,
            Event::ProxiesAcknowledged { epoch: 3 },
            Event::Resume,
            Event::Pause,
            Event::TookOver,
            Event::Resume,
            Event::TookOver,
            Event::ProxiesAcknowledged { epoch: 2 },
            Event::ProxiesAcknowledged { epoch: 3 },
        ],
        expect![[r#"
            advance → backfill#2 0% acks(2)→Backfill
                persist
                audit(advance dual_write→backfill)
                alert: migration `api_v2`: dual_write → backfill (epoch 2)
                await_acks(2)
            pause → backfill#2 0% paused acks(2)→Backfill
                persist
                audit(pause)
            proxies_acknowledged 3 refused: migration `api_v2`: proxies acknowledged epoch 3, but the fence waits for epoch 2
            resume → backfill#2 0% acks(2)→Backfill
                persist
                audit(resume)
            pause → backfill#2 0% paused acks(2)→Backfill
                persist
                audit(pause)
            took_over → backfill#2 0% paused resume→Backfill
            resume → backfill#2 0%
                persist
                audit(resume)
                start_backfill
            took_over → backfill#2 0% acks(2)→Backfill
                await_acks(2)
            proxies_acknowledged 2 → backfill#2 0%
                start_backfill
            proxies_acknowledged 3 refused: migration `api_v2`: proxies acknowledged epoch 3, but nothing waits for acknowledgements (the current epoch is 2)
        "#]],
    );
}

#[test]
fn a_write_switch_that_runs_out_of_budget_and_one_rolled_back() {
    flow(
        settled(Phase::ReadsOnTarget),
        vec![
            Event::Advance { to: None },
            Event::GatePassed {
                gate: Gate::RepairQueueEmpty,
            },
            Event::GatePassed {
                gate: Gate::CleanDiff,
            },
            Event::GatePassed {
                gate: Gate::Readiness,
            },
            Event::Pause,
            Event::SwitchAborted {
                why: "proxy p2 did not hold writes within 2s".into(),
            },
            Event::Advance { to: None },
            Event::BakeElapsed,
            Event::Advance { to: None },
            Event::GatePassed {
                gate: Gate::RepairQueueEmpty,
            },
            Event::GatePassed {
                gate: Gate::CleanDiff,
            },
            Event::GatePassed {
                gate: Gate::Readiness,
            },
            Event::ProxiesAcknowledged { epoch: 8 },
            Event::Rollback {
                reason: "orders fail on the target".into(),
            },
            Event::Rollback {
                reason: "again".into(),
            },
        ],
        expect![[r#"
            advance → reads_on_target#5 100% baked gates(repair_queue_empty,clean_diff,readiness)→write_switch
                check(repair_queue_empty)
                check(clean_diff)
                check(readiness)
            gate_passed repair_queue_empty → reads_on_target#5 100% baked gates(clean_diff,readiness)→write_switch
            gate_passed clean_diff → reads_on_target#5 100% baked gates(readiness)→write_switch
            gate_passed readiness → reads_on_target#6 100% holding baked acks(6)→SwitchWrites
                persist
                audit(hold_writes)
                hold_writes(6)
                await_acks(6)
            pause refused: migration `api_v2` is waiting: every live proxy must acknowledge epoch 6, and older transactions end, before writes switch to the target; try again when that is done
            switch_aborted → reads_on_target#7 100% baked
                persist
                audit(switch_aborted): proxy p2 did not hold writes within 2s
                alert: migration `api_v2`: the write switch aborted, writes stay on the source: proxy p2 did not hold writes within 2s
            advance → reads_on_target#7 100% baked gates(repair_queue_empty,clean_diff,readiness)→write_switch
                check(repair_queue_empty)
                check(clean_diff)
                check(readiness)
            bake_elapsed → reads_on_target#7 100% baked gates(repair_queue_empty,clean_diff,readiness)→write_switch
            advance refused: migration `api_v2` is waiting: gates repair_queue_empty, clean_diff, readiness must pass before write_switch; try again when that is done
            gate_passed repair_queue_empty → reads_on_target#7 100% baked gates(clean_diff,readiness)→write_switch
            gate_passed clean_diff → reads_on_target#7 100% baked gates(readiness)→write_switch
            gate_passed readiness → reads_on_target#8 100% holding baked acks(8)→SwitchWrites
                persist
                audit(hold_writes)
                hold_writes(8)
                await_acks(8)
            proxies_acknowledged 8 → write_switch#9 100%
                move_sequences(target)
                move_guard(target)
                persist
                audit(switch_writes reads_on_target→write_switch)
                alert: migration `api_v2`: reads_on_target → write_switch (epoch 9)
            rollback → rolled_back#10 0%
                move_sequences(source)
                move_guard(source)
                persist
                audit(rollback write_switch→rolled_back): orders fail on the target
                alert: migration `api_v2`: write_switch → rolled_back (epoch 10)
            rollback refused: migration `api_v2` is already rolled back (orders fail on the target)
        "#]],
    );
}
