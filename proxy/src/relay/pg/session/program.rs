//! A plan's program on the PostgreSQL session: each batch the run asks for
//! goes as one simple query (one round trip, and stopped by the server at
//! its first error, which is what the run expects); every frame of its
//! answer comes back here. The client's statement's frames are held until
//! the run is over, then released with the final ReadyForQuery, or
//! replaced by the error of a proxy statement that failed.

use bytes::BytesMut;

use super::Session;
use crate::route::classify::Dialect;
use crate::route::program::{self, Action, Outcome, Role, Row, Run, StepResult};
use crate::route::Plan;
use crate::wire::pg::message::{self, sqlstate};
use crate::wire::pg::response::{Conn, Disposition, Expect, Pending};

/// A program being carried out for the client's simple query.
pub(super) struct Running {
    /// The run deciding every statement.
    run: Run,
    /// The connection it runs on.
    conn: Conn,
    /// The client's own text (a step sent as it came).
    client_sql: String,
    /// Replaces the tag of the client's statement (`{rows}`: the server's
    /// row count).
    tag: Option<String>,
    /// Cuts the proxy's columns off the client's rows.
    trim: Option<message::Trim>,
    /// The statements of the batch in flight.
    batch: Vec<program::Statement>,
    /// Rows of the capturing statement being read.
    rows: Vec<Row>,
    /// The client's frames, held until the run is over.
    held: BytesMut,
    /// The SQLSTATE of the proxy statement that failed.
    failure: Option<String>,
    /// A mirrored write's migration, for its metrics.
    mirror: Option<std::sync::Arc<str>>,
    /// The table its mirror writes.
    mirror_target: Option<std::sync::Arc<str>>,
    /// When the program started.
    started: std::time::Instant,
}

impl Session {
    /// Starts a plan's program for the client's simple query `sql`.
    pub(super) fn start_program(&mut self, conn: Conn, sql: &str, plan: &Plan) {
        let Some(program) = plan.program.clone() else {
            return;
        };
        let inside = conn == Conn::Own && self.status != b'I';
        let run = Run::new(program, Dialect::Postgres, inside);
        self.program = Some(Running {
            run,
            conn,
            client_sql: sql.to_string(),
            tag: plan.tag.clone(),
            trim: plan.trim,
            batch: Vec::new(),
            rows: Vec::new(),
            held: BytesMut::new(),
            failure: None,
            mirror: plan.mirror.clone(),
            mirror_target: plan.mirror_target.clone(),
            started: std::time::Instant::now(),
        });
        self.program_next();
    }

    /// Sends the run's next batch, or answers the client when it is over.
    fn program_next(&mut self) {
        let Some(running) = self.program.as_mut() else {
            return;
        };
        match running.run.advance() {
            Action::Send(batch) => {
                let text = batch
                    .statements
                    .iter()
                    .map(|s| {
                        let sql = if s.as_sent {
                            &running.client_sql
                        } else {
                            &s.sql
                        };
                        sql.trim().trim_end_matches(';').to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(";\n");
                if batch.statements.iter().any(|s| s.role == Role::Client) {
                    // A restarted program answers anew.
                    running.held.clear();
                }
                running.batch = batch.statements;
                let conn = running.conn;
                message::query(self.outbox(conn), &text);
                self.responses
                    .push(Pending::new(conn, Expect::Query, Disposition::Program));
            }
            Action::Finish(outcome) => {
                let running = self.program.take().expect("checked above");
                if let Some(migration) = &running.mirror {
                    crate::relay::record_mirror(
                        migration,
                        &outcome,
                        running.run.restarts(),
                        running.started,
                    );
                }
                match outcome {
                    Outcome::Done | Outcome::ClientFailed => {
                        self.client_outbox.extend_from_slice(&running.held)
                    }
                    Outcome::Failed(text) => message::error_response(
                        &mut self.client_outbox,
                        "ERROR",
                        running.failure.as_deref().unwrap_or(sqlstate::INTERNAL_ERROR),
                        &format!(
                            "switchyard: a statement the proxy runs with yours failed, so yours was rolled back: {text}"
                        ),
                        None,
                    ),
                }
                message::ready_for_query(&mut self.client_outbox, self.status);
            }
        }
    }

    /// One frame of statement `statement` of the batch in flight.
    pub(super) fn on_program_frame(&mut self, statement: usize, frame: &[u8]) {
        let Some(running) = self.program.as_mut() else {
            return;
        };
        let tag = frame[0];
        let body = &frame[5..];
        if tag == b'N' {
            self.client_outbox.extend_from_slice(frame);
            return;
        }
        let Some(sent) = running.batch.get(statement) else {
            return;
        };
        let (role, capture) = (sent.role, sent.capture);
        match tag {
            b'E' => {
                let (code, text) = message::error_fields(body);
                if role == Role::Client {
                    running.held.extend_from_slice(frame);
                } else {
                    running.failure = Some(code);
                }
                let own = running
                    .mirror_target
                    .as_deref()
                    .is_some_and(|target| !message::may_be_mirror_error(body, target));
                running.run.on_result(StepResult {
                    error: Some(text),
                    own,
                    ..StepResult::default()
                });
            }
            b'C' | b'I' => {
                if role == Role::Client {
                    match (&running.tag, tag) {
                        (Some(template), b'C') => {
                            let server = message::cstr(b'C', body).map_or("", |(t, _)| t);
                            let tag = message::expand_tag(template, server);
                            message::command_complete(&mut running.held, &tag);
                        }
                        _ => running.held.extend_from_slice(frame),
                    }
                }
                let rows = std::mem::take(&mut running.rows);
                running.run.on_result(StepResult {
                    rows,
                    ..StepResult::default()
                });
            }
            b'D' if capture => {
                if let Some(row) = message::data_row(body) {
                    running.rows.push(row);
                }
            }
            b'T' | b'D' if role == Role::Client && running.trim.is_some() => {
                let trim = running.trim.expect("checked");
                match message::trim_frame(frame, trim) {
                    Some(trimmed) => running.held.extend_from_slice(&trimmed),
                    None if !trim.rows => {}
                    None => running.held.extend_from_slice(frame),
                }
            }
            _ if role == Role::Client => running.held.extend_from_slice(frame),
            _ => {}
        }
    }

    /// The ReadyForQuery ending a program's batch.
    pub(super) fn on_program_ready(&mut self) {
        self.program_next();
    }
}
