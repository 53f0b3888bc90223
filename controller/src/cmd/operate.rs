//! What the commands that move a migration share: open its executor,
//! apply one event, print what happened (a few lines, or JSON with
//! `--json`) and turn it into the exit code: 0 done, 1 refused or a gate
//! closed (with the machine's message), 2 an error.

use std::process::ExitCode;

use switchyard_core::config::Config;

use crate::executor::{self, Executor, Settings};
use crate::phase::{Event, Refusal};

/// How a command ended, before printing.
pub enum Ended {
    /// The event was applied; gates may still have closed.
    Applied,
    /// The machine refused the event.
    Refused(Refusal),
    /// A check of the command's own refused it (e.g. the archive's
    /// dependents), with the message.
    Declined(String),
}

/// Opens `id`'s executor as the operator, for a command that only
/// records its decision (no lease, no work).
pub async fn record(config: &Config, id: &str) -> Result<Executor, executor::ExecError> {
    let settings = Settings {
        lease_wait: None,
        record_only: true,
        ..Settings::default()
    };
    let mut exec = Executor::open(config, id, &executor::operator(), settings).await?;
    exec.take_over(false).await?;
    Ok(exec)
}

/// Applies `event` to `id` in record-only mode and reports it.
pub async fn one_event(config: &Config, id: &str, event: Event, json: bool) -> ExitCode {
    let mut exec = match record(config, id).await {
        Ok(exec) => exec,
        Err(e) => return super::fail(json, &e),
    };
    let ended = match exec.apply(event).await {
        Ok(Ok(())) => Ended::Applied,
        Ok(Err(refusal)) => Ended::Refused(refusal),
        Err(e) => {
            exec.close().await;
            return super::fail(json, &e);
        }
    };
    let code = report(&exec, &ended, json);
    exec.close().await;
    code
}

/// Prints what `exec` did and returns the exit code.
pub fn report(exec: &Executor, ended: &Ended, json: bool) -> ExitCode {
    let s = &exec.state;
    let refused = match ended {
        Ended::Applied => None,
        Ended::Refused(r) => Some(r.to_string()),
        Ended::Declined(why) => Some(why.clone()),
    };
    let ok = refused.is_none() && exec.closed.is_empty();
    if json {
        let doc = serde_json::json!({
            "ok": ok,
            "migration": s.migration,
            "phase": s.phase.as_str(),
            "epoch": s.epoch,
            "share": s.share.as_percent(),
            "paused": s.paused,
            "pending_approval": s.pending_approval.map(|p| p.as_percent()),
            "rollback_reason": s.rollback_reason,
            "happened": exec.happened,
            "gates_closed": exec.closed,
            "refused": refused,
        });
        super::print(&format!("{doc}\n"));
    } else {
        let mut text = String::new();
        for line in &exec.happened {
            text.push_str(&format!("{}: {line}\n", s.migration));
        }
        for line in &exec.closed {
            text.push_str(&format!("{}: {line}\n", s.migration));
        }
        if let Some(why) = &refused {
            eprintln!("switchyard: {why}");
        }
        text.push_str(&format!(
            "{}: at {} (epoch {}, reads on target {}{})\n",
            s.migration,
            s.phase,
            s.epoch,
            s.share,
            if s.paused { ", paused" } else { "" }
        ));
        super::print(&text);
    }
    ExitCode::from(if ok { super::OK } else { super::NOT_OK })
}
