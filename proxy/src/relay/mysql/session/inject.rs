//! Seam (c): a plan's program, carried out on one backend connection. The
//! run ([`Run`]) decides every statement and frames them in one
//! transaction with the client's; this file only sends them, reads their
//! answers (the rows of capturing steps included), and answers the client
//! with exactly what its own statement produced, once the run is over.

use bytes::BytesMut;

use super::response::ER_LOCK_DEADLOCK;
use super::{query_payload, Conn, Session, SessionEnd, Sink};
use crate::route::classify::Dialect;
use crate::route::program::{Action, Outcome, Role, Row, Run, StepResult};
use crate::route::Plan;
use crate::wire::mysql::message::{
    ErrPacket, Reader, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS,
};

impl Session {
    /// Carries out a plan's program for the client's `command`. The client
    /// sees only its own statement's answer, and only once the run is
    /// over: its success with the final status, its own error, or the
    /// error of a proxy statement that failed (then nothing of it stays).
    pub(super) async fn run_injected(
        &mut self,
        conn: Conn,
        command: &[u8],
        plan: &Plan,
    ) -> Result<(), SessionEnd> {
        let Some(program) = plan.program.clone() else {
            return Ok(());
        };
        let status = self.side(conn).status;
        let inside = status & SERVER_STATUS_IN_TRANS != 0 || status & SERVER_STATUS_AUTOCOMMIT == 0;
        let mut run = Run::new(program, Dialect::Mysql, inside);
        let started = std::time::Instant::now();
        let seq = self.seq;
        let mut failure: Option<ErrPacket> = None;
        let outcome = loop {
            let batch = match run.advance() {
                Action::Send(batch) => batch,
                Action::Finish(outcome) => break outcome,
            };
            for statement in batch.statements {
                let payload = if statement.as_sent {
                    BytesMut::from(command)
                } else {
                    query_payload(&statement.sql)
                };
                let (sink, affected) = match statement.role {
                    Role::Client => {
                        // A restarted program answers anew.
                        self.held.clear();
                        (Sink::Hold, plan.affected)
                    }
                    Role::Proxy if statement.capture => (Sink::Collect, None),
                    Role::Proxy => (Sink::Swallow, None),
                };
                self.seq = seq;
                self.collected.clear();
                let reply = self.exchange(conn, &payload, sink, affected).await?;
                let rows: Vec<Row> = std::mem::take(&mut self.collected);
                let failed = reply.error.is_some();
                if let Some(err) = &reply.error {
                    if statement.role == Role::Proxy {
                        tracing::warn!(code = err.code, message = %err.message, "a statement the proxy runs with the client's failed");
                    }
                    failure = Some(err.clone());
                }
                // A deadlock rolls the whole transaction back (the client's
                // statement with it): the client gets it as its own.
                let rolled_back = reply
                    .error
                    .as_ref()
                    .is_some_and(|e| e.code == ER_LOCK_DEADLOCK);
                run.on_result(StepResult {
                    rows,
                    warnings: reply.warnings,
                    error: reply.error.map(|e| e.message),
                    rolled_back,
                    own: false,
                });
                if failed {
                    break;
                }
            }
        };
        self.seq = seq;
        if let Some(migration) = &plan.mirror {
            crate::relay::record_mirror(migration, &outcome, run.restarts(), started);
        }
        match outcome {
            Outcome::Done => {
                let status = self.side(conn).status;
                self.release_held(Some(status));
            }
            Outcome::ClientFailed => self.release_held(None),
            Outcome::Failed(_) if failure.as_ref().is_some_and(|e| e.code == ER_LOCK_DEADLOCK) => {
                self.held.clear();
                let err = failure.expect("checked");
                self.send_err(&err, seq);
            }
            Outcome::Failed(message) => {
                self.held.clear();
                let err = failure.unwrap_or_else(|| ErrPacket::new(1105, "HY000", ""));
                let err = ErrPacket {
                    message: format!(
                        "switchyard: a statement the proxy runs with yours failed, so yours was rolled back: {message}"
                    ),
                    ..err
                };
                self.send_err(&err, seq);
            }
        }
        self.flush().await
    }
}

/// Decodes one text-protocol row: length-encoded strings, 0xFB for NULL.
pub(super) fn text_row(payload: &[u8], columns: usize) -> Option<Row> {
    let mut reader = Reader::new(payload, "text row");
    let mut row = Vec::with_capacity(columns);
    for _ in 0..columns {
        if reader.peek() == Some(0xFB) {
            reader.u8().ok()?;
            row.push(None);
        } else {
            row.push(Some(reader.lenenc_bytes().ok()?.to_vec()));
        }
    }
    Some(row)
}
