//! The extended-query protocol of a session: Parse, Bind, Describe,
//! Execute, Close and Sync, with the client's statement names mapped to the
//! proxy's own when a plan changes a statement, and the proxy's own
//! statements injected around the client's Execute.

use super::{Conn, Portal, Prepared, Session, SessionEnd};
use crate::route::Decision;
use crate::wire::pg::message::{self, BindMsg, ParseMsg, TargetMsg};
use crate::wire::pg::response::{Disposition, Expect, Pending};

impl Session {
    pub(super) async fn on_parse(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        let parse = ParseMsg::decode(&frame[5..])?;
        // A new Parse of the unnamed statement replaces the old one.
        if let Some(old) = self.statements.remove(parse.name) {
            message::close(self.outbox(old.conn), b'S', &old.backend_name);
            self.responses
                .push(Pending::new(old.conn, Expect::Close, Disposition::Swallow));
        }
        let (decision, _) = self.decide(parse.sql);
        let Decision::Plan(plan) = decision else {
            self.relay_frame(Conn::Own, frame, Some(Expect::Parse));
            return Ok(());
        };
        let conn = self.connection_for(&plan.connection).await?;
        self.next_name += 1;
        let backend_name = format!("switchyard_s{}", self.next_name);
        let sql = plan.sql.as_deref().unwrap_or(parse.sql);
        message::parse(self.outbox(conn), &backend_name, sql, parse.param_types);
        self.responses.push(Pending::forward(conn, Expect::Parse));
        let client_name = parse.name.to_string();
        self.statements.insert(
            client_name,
            Prepared {
                backend_name,
                conn,
                plan,
            },
        );
        Ok(())
    }

    pub(super) fn on_bind(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        if self.statements.is_empty() && self.portals.is_empty() {
            self.relay_frame(Conn::Own, frame, Some(Expect::Bind));
            return Ok(());
        }
        let bind = BindMsg::decode(&frame[5..])?;
        self.portals.remove(bind.portal);
        let Some(prepared) = self.statements.get(bind.statement) else {
            self.relay_frame(Conn::Own, frame, Some(Expect::Bind));
            return Ok(());
        };
        let (conn, plan) = (prepared.conn, prepared.plan.clone());
        let backend_name = prepared.backend_name.clone();
        let portal = bind.portal.to_string();
        message::bind(self.outbox(conn), &portal, &backend_name, bind.rest);
        self.responses.push(Pending::forward(conn, Expect::Bind));
        self.note_conn(conn);
        self.portals.insert(portal, Portal { conn, plan });
        Ok(())
    }

    pub(super) fn on_describe(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        if self.statements.is_empty() && self.portals.is_empty() {
            let expect = describe_expect(frame);
            self.relay_frame(Conn::Own, frame, Some(expect));
            return Ok(());
        }
        let target = TargetMsg::decode(b'D', &frame[5..])?;
        if target.kind == b'S' {
            if let Some(p) = self.statements.get(target.name) {
                let (conn, name) = (p.conn, p.backend_name.clone());
                message::describe(self.outbox(conn), b'S', &name);
                self.responses
                    .push(Pending::forward(conn, Expect::DescribeStatement));
                self.note_conn(conn);
                return Ok(());
            }
            self.relay_frame(Conn::Own, frame, Some(Expect::DescribeStatement));
            return Ok(());
        }
        let conn = self.portals.get(target.name).map_or(Conn::Own, |p| p.conn);
        self.relay_frame(conn, frame, Some(Expect::DescribePortal));
        self.note_conn(conn);
        Ok(())
    }

    pub(super) fn on_execute(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        if self.portals.is_empty() {
            self.relay_frame(Conn::Own, frame, Some(Expect::Execute));
            return Ok(());
        }
        let name = message::execute_portal(&frame[5..])?;
        let Some(portal) = self.portals.get(name) else {
            self.relay_frame(Conn::Own, frame, Some(Expect::Execute));
            return Ok(());
        };
        let (conn, plan) = (portal.conn, portal.plan.clone());
        for sql in &plan.before {
            self.inject(conn, sql);
        }
        self.outbox(conn).extend_from_slice(frame);
        let disposition = Disposition::Forward {
            tag: plan.tag.clone(),
        };
        self.responses
            .push(Pending::new(conn, Expect::Execute, disposition));
        for sql in &plan.after {
            self.inject(conn, sql);
        }
        self.note_conn(conn);
        Ok(())
    }

    /// Runs one statement of the proxy's own inside the client's batch (no
    /// Sync, so it shares the client's transaction) and hides its answers.
    fn inject(&mut self, conn: Conn, sql: &str) {
        const STMT: &str = "switchyard_inject";
        const PORTAL: &str = "switchyard_inject_p";
        let out = self.outbox(conn);
        message::parse(out, STMT, sql, &[]);
        message::bind(out, PORTAL, STMT, &[]);
        message::execute(out, PORTAL, 0);
        message::close(out, b'P', PORTAL);
        message::close(out, b'S', STMT);
        for expect in [
            Expect::Parse,
            Expect::Bind,
            Expect::Execute,
            Expect::Close,
            Expect::Close,
        ] {
            self.responses
                .push(Pending::new(conn, expect, Disposition::Swallow));
        }
    }

    pub(super) fn on_close(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        if self.statements.is_empty() && self.portals.is_empty() {
            self.relay_frame(Conn::Own, frame, Some(Expect::Close));
            return Ok(());
        }
        let target = TargetMsg::decode(b'C', &frame[5..])?;
        if target.kind == b'S' {
            if let Some(p) = self.statements.remove(target.name) {
                message::close(self.outbox(p.conn), b'S', &p.backend_name);
                self.responses.push(Pending::forward(p.conn, Expect::Close));
                self.note_conn(p.conn);
                return Ok(());
            }
        } else if let Some(p) = self.portals.remove(target.name) {
            self.relay_frame(p.conn, frame, Some(Expect::Close));
            self.note_conn(p.conn);
            return Ok(());
        }
        self.relay_frame(Conn::Own, frame, Some(Expect::Close));
        Ok(())
    }

    pub(super) fn on_sync(&mut self, frame: &[u8]) {
        if self.responses.in_copy_in() {
            // The server ignores Sync during COPY FROM STDIN.
            self.relay_frame(Conn::Own, frame, None);
            return;
        }
        if std::mem::take(&mut self.second_in_batch) {
            self.outbox(Conn::Second).extend_from_slice(frame);
            self.responses.push(Pending::new(
                Conn::Second,
                Expect::Sync,
                Disposition::Swallow,
            ));
        }
        self.relay_frame(Conn::Own, frame, Some(Expect::Sync));
    }

    fn note_conn(&mut self, conn: Conn) {
        if conn == Conn::Second {
            self.second_in_batch = true;
        }
    }
}

fn describe_expect(frame: &[u8]) -> Expect {
    if frame.get(5) == Some(&b'S') {
        Expect::DescribeStatement
    } else {
        Expect::DescribePortal
    }
}
