//! Seam (c): the proxy's own statements before and after the client's, on
//! the same backend connection and in one transaction with it (the
//! client's, fenced by a savepoint, or one opened for the purpose). Their
//! answers are swallowed; the client's is held until all succeeded, then
//! released with the final status; any failure rolls all of it back.

use super::{query_payload, Conn, Session, SessionEnd, Sink, SAVEPOINT};
use crate::route::Plan;
use crate::wire::mysql::message::{ErrPacket, SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_IN_TRANS};

impl Session {
    /// Runs the client's command between the proxy's own statements, all in
    /// one transaction: the client's own when one is open (fenced by a
    /// savepoint), else one opened for the purpose. The client sees only
    /// its own answer, and only once everything after it has succeeded; if
    /// anything fails, nothing of it stays.
    pub(super) async fn run_injected(
        &mut self,
        conn: Conn,
        command: &[u8],
        plan: &Plan,
    ) -> Result<(), SessionEnd> {
        let status = self.side(conn).status;
        let inside = status & SERVER_STATUS_IN_TRANS != 0 || status & SERVER_STATUS_AUTOCOMMIT == 0;
        let (open, close, undo): (String, Vec<String>, Vec<String>) = if inside {
            (
                format!("SAVEPOINT {SAVEPOINT}"),
                vec![format!("RELEASE SAVEPOINT {SAVEPOINT}")],
                vec![
                    format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    format!("RELEASE SAVEPOINT {SAVEPOINT}"),
                ],
            )
        } else {
            (
                "BEGIN".into(),
                vec!["COMMIT".into()],
                vec!["ROLLBACK".into()],
            )
        };
        for sql in std::iter::once(&open).chain(&plan.before) {
            if let Some(err) = self.proxy_statement(conn, sql).await? {
                return self.abort_injected(conn, &undo, Some(err)).await;
            }
        }
        self.held.clear();
        let reply = self
            .exchange(conn, command, Sink::Hold, plan.affected)
            .await?;
        if reply.error.is_some() {
            // The client's own error: undo the proxy's part, then tell it.
            return self.abort_injected(conn, &undo, None).await;
        }
        for sql in plan.after.iter().chain(&close) {
            if let Some(err) = self.proxy_statement(conn, sql).await? {
                return self.abort_injected(conn, &undo, Some(err)).await;
            }
        }
        let status = self.side(conn).status;
        self.release_held(Some(status));
        self.flush().await
    }

    /// Rolls back an injected run and answers the client: with its own held
    /// answer (its statement failed), or with the proxy statement's error.
    async fn abort_injected(
        &mut self,
        conn: Conn,
        undo: &[String],
        failed: Option<ErrPacket>,
    ) -> Result<(), SessionEnd> {
        for sql in undo {
            if let Some(err) = self.proxy_statement(conn, sql).await? {
                tracing::warn!(code = err.code, message = %err.message, "rolling back the proxy's statements failed");
            }
        }
        match failed {
            None => self.release_held(None),
            Some(err) => {
                self.held.clear();
                let err = ErrPacket {
                    message: format!(
                        "switchyard: a statement the proxy runs with yours failed, so yours was rolled back: {}",
                        err.message
                    ),
                    ..err
                };
                let seq = self.seq;
                self.send_err(&err, seq);
            }
        }
        self.flush().await
    }

    /// Runs one statement of the proxy's own and hides its answer; returns
    /// its error, if any.
    async fn proxy_statement(
        &mut self,
        conn: Conn,
        sql: &str,
    ) -> Result<Option<ErrPacket>, SessionEnd> {
        let seq = self.seq;
        let reply = self
            .exchange(conn, &query_payload(sql), Sink::Swallow, None)
            .await?;
        self.seq = seq;
        Ok(reply.error)
    }
}
