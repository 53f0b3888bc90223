//! The extended-query protocol of a session: Parse, Bind, Describe,
//! Execute, Close and Sync.
//!
//! Decisions are made at Bind, not at Parse: drivers prepare once and
//! execute for hours, so a statement prepared before a ramp, a flip or a
//! rollback must follow the rule in force when it runs. A statement that
//! may be routed is remembered with its text; each form of it that a
//! decision asks for (the client's own text on the own connection, a
//! rewritten text, another backend) is prepared lazily under a proxy-owned
//! name and reused by later Binds. The client's names stay the client's. A
//! portal keeps the form it was bound to, so a portal run in pieces
//! (`max_rows`) stays on one path.

use std::sync::Arc;

use bytes::BytesMut;

use super::{Conn, Form, Portal, Prepared, Session, SessionEnd};
use switchyard_core::config::ReadPath;

use crate::route::{Decision, Plan, ReadRoute, Stage};
use crate::wire::pg::message::{self, BindMsg, ParseMsg, TargetMsg};
use crate::wire::pg::response::{Disposition, Expect, Pending, READ_SAVEPOINT};

impl Session {
    pub(super) async fn on_parse(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        let parse = ParseMsg::decode(&frame[5..])?;
        let (decision, routable, _) = self.decide(parse.sql, Stage::Prepare, &[]);
        // A new Parse of the unnamed statement replaces the old one. Drivers
        // re-send the same text for every execution: then the forms the
        // proxy prepared for it stay valid and are kept.
        if let Some(old) = self.statements.remove(parse.name) {
            let same = old.sql == parse.sql
                && old.declared == parse.param_types
                && !old.forms[0].proxy_owned
                && matches!(&decision, Decision::Relay)
                && routable;
            if same {
                self.relay_frame(Conn::Own, frame, Some(Expect::Parse));
                self.statements.insert(parse.name.to_string(), old);
                return Ok(());
            }
            self.close_forms(&old, false);
        }
        let plan = match decision {
            // Refused when it runs, not when it is prepared.
            Decision::Refuse(_) => None,
            Decision::Relay if !routable => {
                self.relay_frame(Conn::Own, frame, Some(Expect::Parse));
                return Ok(());
            }
            Decision::Relay => None,
            Decision::Plan(plan) if plan.is_passthrough() => None,
            Decision::Plan(plan) => Some(plan),
        };
        // The form parsed now answers the client's Describe: for a routed
        // read it is the source's, so the client learns the source's shape.
        let mut prepared = Prepared {
            sql: parse.sql.to_string(),
            param_types: parse.param_types.to_vec(),
            declared: parse.param_types.to_vec(),
            forms: Vec::new(),
        };
        let form = match plan {
            None => {
                self.relay_frame(Conn::Own, frame, Some(Expect::Parse));
                Form {
                    conn: Conn::Own,
                    sql: None,
                    name: parse.name.to_string(),
                    proxy_owned: false,
                }
            }
            Some(plan) => {
                let conn = self.connection_for(&plan.connection).await?;
                self.parse_form(&mut prepared, conn, plan.sql.clone(), Disposition::FORWARD)
            }
        };
        let (conn, name) = (form.conn, form.name.clone());
        prepared.forms.push(form);
        self.statements.insert(parse.name.to_string(), prepared);
        if !parse.name.is_empty() && !all_types_given(parse.param_types) {
            // A named statement is usually bound later: learn its parameter
            // types now, so a client that sends binary values without ever
            // describing the statement binds them alike on every form.
            self.describe_for_types(conn, &name, parse.name);
        }
        Ok(())
    }

    /// Sends a Describe of one form whose answer only the proxy reads: its
    /// ParameterDescription becomes the statement's parameter types.
    fn describe_for_types(&mut self, conn: Conn, backend_name: &str, client_name: &str) {
        message::describe(self.outbox(conn), b'S', backend_name);
        let token = self.next_capture;
        self.next_capture = self.next_capture.wrapping_add(1);
        self.describing.insert(token, client_name.to_string());
        let mut pending = Pending::new(conn, Expect::DescribeStatement, Disposition::Swallow);
        pending.capture = Some(token);
        self.responses.push(pending);
        self.note_conn(conn);
    }

    /// Parses one form of a statement under a fresh proxy-owned name.
    fn parse_form(
        &mut self,
        prepared: &mut Prepared,
        conn: Conn,
        sql: Option<String>,
        disposition: Disposition,
    ) -> Form {
        self.next_name += 1;
        let name = format!("switchyard_s{}", self.next_name);
        let text = sql.as_deref().unwrap_or(&prepared.sql);
        message::parse(self.outbox(conn), &name, text, &prepared.param_types);
        self.responses
            .push(Pending::new(conn, Expect::Parse, disposition));
        self.note_conn(conn);
        Form {
            conn,
            sql,
            name,
            proxy_owned: true,
        }
    }

    /// The index of `prepared`'s form of `sql` on `conn`, parsed now (its
    /// answer hidden) when there is none yet.
    fn form_index(&mut self, prepared: &mut Prepared, conn: Conn, sql: Option<String>) -> usize {
        match prepared
            .forms
            .iter()
            .position(|f| f.conn == conn && f.sql == sql)
        {
            Some(index) => index,
            None => {
                let form = self.parse_form(prepared, conn, sql, Disposition::Swallow);
                prepared.forms.push(form);
                prepared.forms.len() - 1
            }
        }
    }

    pub(super) async fn on_bind(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        if self.statements.is_empty() && self.portals.is_empty() {
            self.relay_frame(Conn::Own, frame, Some(Expect::Bind));
            return Ok(());
        }
        let bind = BindMsg::decode(&frame[5..])?;
        self.portals.remove(bind.portal);
        let Some(mut prepared) = self.statements.remove(bind.statement) else {
            self.relay_frame(Conn::Own, frame, Some(Expect::Bind));
            return Ok(());
        };
        let statement = bind.statement.to_string();
        let result = self.bind_form(&mut prepared, &bind).await;
        self.statements.insert(statement, prepared);
        result
    }

    /// Decides where one execution of `prepared` runs and binds the portal
    /// to that form, preparing the form first if this is its first use.
    async fn bind_form(
        &mut self,
        prepared: &mut Prepared,
        bind: &BindMsg<'_>,
    ) -> Result<(), SessionEnd> {
        // Bound values are decoded only when some rule keys on them.
        let params = match self.shared.routing().reads_keys() {
            true => bind.params().unwrap_or_default(),
            false => Vec::new(),
        };
        crate::control::hold(
            &self.shared,
            crate::route::classify::Dialect::Postgres,
            &prepared.sql,
        )
        .await;
        let (decision, _, _) = self.decide(&prepared.sql, Stage::Execute, &params);
        if let Decision::Plan(plan) = &decision {
            // A binary value of a type not decoded here cannot be given to
            // the shadow again: such executions are not shadowed.
            let read = plan.read.as_ref().filter(|r| r.shadow.is_some());
            if let Some(values) = read.and_then(|_| bind.params_exact(&prepared.param_types)) {
                self.offer_shadow(read, &prepared.sql, values);
            }
        }
        let (conn, sql, plan) = match decision {
            Decision::Refuse(refusal) => {
                // The server fails the batch as the client's statement
                // would have: the error, then nothing until its Sync.
                self.inject(Conn::Own, &refusal_statement(&refusal));
                return Ok(());
            }
            Decision::Relay => (Conn::Own, None, None),
            Decision::Plan(plan) if plan.is_passthrough() => (Conn::Own, None, Some(plan)),
            Decision::Plan(plan) => {
                let unknown = bind.binary_params() && !all_types_given(&prepared.param_types);
                match plan.read.as_ref() {
                    // The server would infer the routed form's parameter
                    // types from the target's columns, and binary values
                    // are sized by type: without the statement's own
                    // types, the client's form answers.
                    // (Not when the statement was prepared in its target
                    // form, as after complete: the client's types are
                    // that form's.)
                    Some(read)
                        if unknown
                            && read.path == ReadPath::Target
                            && prepared.forms[0].sql.is_none() =>
                    {
                        (Conn::Own, None, Some(Arc::new(types_unknown(read))))
                    }
                    _ => {
                        let conn = self.connection_for(&plan.connection).await?;
                        (conn, plan.sql.clone(), Some(plan))
                    }
                }
            }
        };
        // A mirrored write alone in its batch, on the own connection, can
        // be answered by its fallback form (the write alone and its
        // repair-queue insert) should its mirror fail.
        let write_fallback = plan
            .as_deref()
            .filter(|_| conn == Conn::Own)
            .and_then(|p| p.program.as_ref())
            .and_then(|p| p.instead_of_client())
            .map(str::to_string);
        let fenced_write = write_fallback.is_some()
            && self.responses.nothing_for_client()
            && alone_before_sync(&self.client_inbox)
            && matches!(self.status, b'I' | b'T');
        if fenced_write && self.status == b'T' {
            // Inside the client's transaction the write runs behind the
            // savepoint, so a failure can be rolled back before the
            // fallback runs, and is released after it succeeds.
            self.inject(conn, &format!("SAVEPOINT {READ_SAVEPOINT}"));
            self.read_savepoint = true;
        }
        let alone = conn == Conn::Own
            && reads_target(plan.as_deref())
            && self.responses.nothing_for_client()
            && alone_before_sync(&self.client_inbox);
        if alone && matches!(self.status, b'I' | b'T') {
            // The read alone before its Sync. Outside a transaction the
            // batch is its own implicit transaction; inside one it runs
            // behind the read savepoint, rolled back after it. Either way
            // a `SET LOCAL` ahead of its Parse and Bind (both wait for the
            // table's lock too) bounds it and ends with it.
            if self.status == b'T' {
                self.inject(conn, &format!("SAVEPOINT {READ_SAVEPOINT}"));
                self.read_savepoint = true;
            }
            if let Some(timeout) = plan.as_ref().and_then(|p| p.read.as_ref()?.timeout) {
                let set = format!(
                    "SET LOCAL statement_timeout = {}",
                    timeout.as_millis().max(1)
                );
                self.inject(conn, &set);
            }
        }
        let index = self.form_index(prepared, conn, sql);
        let form = &prepared.forms[index];
        message::bind(self.outbox(conn), bind.portal, &form.name, bind.rest);
        let mut pending = Pending::forward(conn, Expect::Bind);
        if let Some(sql) = write_fallback.filter(|_| fenced_write) {
            // Parsed only if it runs: it names the repair queue, which a
            // missing store must not turn into a failure of every write.
            const FALLBACK: &str = "switchyard_fallback";
            let mut replay = BytesMut::new();
            message::close(&mut replay, b'S', FALLBACK);
            message::parse(&mut replay, FALLBACK, &sql, &prepared.param_types);
            message::bind(&mut replay, bind.portal, FALLBACK, bind.rest);
            pending.replay = Some(replay.to_vec());
            pending.replay_hidden = vec![Expect::Close, Expect::Parse];
        }
        let own_form = &prepared.forms[0];
        if conn == Conn::Own && own_form.conn == Conn::Own && reads_target(plan.as_deref()) {
            // Should the target fail, the client's own form binds instead.
            let mut replay = BytesMut::new();
            message::bind(&mut replay, bind.portal, &own_form.name, bind.rest);
            pending.replay = Some(replay.to_vec());
        }
        self.responses.push(pending);
        self.note_conn(conn);
        self.portals.insert(
            bind.portal.to_string(),
            Portal {
                conn,
                plan,
                form: Some((bind.statement.to_string(), index)),
                fenced_write,
            },
        );
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
            if let Some(form) = self.statements.get(target.name).map(|p| &p.forms[0]) {
                let (conn, name) = (form.conn, form.name.clone());
                message::describe(self.outbox(conn), b'S', &name);
                let token = self.next_capture;
                self.next_capture = self.next_capture.wrapping_add(1);
                self.describing.insert(token, target.name.to_string());
                let mut pending = Pending::forward(conn, Expect::DescribeStatement);
                pending.capture = Some(token);
                self.responses.push(pending);
                self.note_conn(conn);
                return Ok(());
            }
            self.relay_frame(Conn::Own, frame, Some(Expect::DescribeStatement));
            return Ok(());
        }
        let (conn, fields, trim) = match self.portals.get(target.name) {
            Some(p) => (
                p.conn,
                p.plan.as_ref().and_then(|p| p.fields.clone()),
                p.plan.as_ref().and_then(|p| p.trim),
            ),
            None => (Conn::Own, None, None),
        };
        self.outbox(conn).extend_from_slice(frame);
        let mut pending = Pending::forward(conn, Expect::DescribePortal);
        if conn == Conn::Own && (fields.is_some() || trim.is_some()) {
            pending.replay = Some(frame.to_vec());
        }
        pending.fields = fields;
        pending.trim = trim;
        self.responses.push(pending);
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
        let conn = portal.conn;
        let fenced_write = portal.fenced_write;
        let plan: Option<Arc<Plan>> = portal.plan.clone();
        let (before, after) = plan
            .as_deref()
            .and_then(|p| p.program.as_ref())
            .and_then(|p| p.around_client())
            .unwrap_or_default();
        let tag = plan.as_deref().and_then(|p| p.tag.clone());
        let meter = plan
            .as_ref()
            .and_then(|p| p.read.as_ref())
            .map(|r| self.reads.start(r));
        for sql in &before {
            self.inject(conn, sql);
        }
        let guarded = conn == Conn::Own
            && before.is_empty()
            && after.is_empty()
            && reads_target(plan.as_deref());
        self.outbox(conn).extend_from_slice(frame);
        let mut pending =
            Pending::new(conn, Expect::Execute, Disposition::Forward { tag }).metered(meter);
        pending.trim = plan.as_deref().and_then(|p| p.trim);
        if guarded || fenced_write {
            pending.replay = Some(frame.to_vec());
            pending.rewind = self.read_savepoint;
        }
        if fenced_write {
            pending.mirror_target = plan.as_deref().and_then(|p| p.mirror_target.clone());
        }
        self.responses.push(pending);
        if fenced_write && self.read_savepoint {
            self.inject(conn, &format!("RELEASE SAVEPOINT {READ_SAVEPOINT}"));
        }
        if guarded && self.read_savepoint {
            // A read changes nothing: rolling back to the savepoint only
            // undoes the timeout.
            self.inject(conn, &format!("ROLLBACK TO SAVEPOINT {READ_SAVEPOINT}"));
            self.inject(conn, &format!("RELEASE SAVEPOINT {READ_SAVEPOINT}"));
        }
        for sql in &after {
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
            if let Some(prepared) = self.statements.remove(target.name) {
                self.close_forms(&prepared, true);
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

    /// Closes every form of a statement on its backend; with `answer`, the
    /// first CloseComplete is the client's. A form under the client's own
    /// name is left to the client's next Parse of that name when not
    /// answering.
    fn close_forms(&mut self, prepared: &Prepared, answer: bool) {
        let mut answered = !answer;
        for form in &prepared.forms {
            if !form.proxy_owned && !answer {
                continue;
            }
            message::close(self.outbox(form.conn), b'S', &form.name);
            let disposition = if answered {
                Disposition::Swallow
            } else {
                Disposition::FORWARD
            };
            answered = true;
            self.responses
                .push(Pending::new(form.conn, Expect::Close, disposition));
            self.note_conn(form.conn);
        }
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
        if std::mem::take(&mut self.read_savepoint) || self.status == b'I' {
            // A target read alone before its Sync, outside a transaction
            // or behind the read savepoint, can be answered by the source
            // if it fails.
            self.responses.arm_batch(Conn::Own);
        }
    }

    fn note_conn(&mut self, conn: Conn) {
        if conn == Conn::Second {
            self.second_in_batch = true;
        }
    }
}

/// Whether the client's messages after a Bind are, in order, at most a
/// Describe, one Execute and a Sync: the bound read is alone in its batch.
fn alone_before_sync(inbox: &[u8]) -> bool {
    let mut rest = inbox;
    let mut tags = Vec::new();
    while let Some(&tag) = rest.first() {
        let Some(len) = rest
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            return false;
        };
        tags.push(tag);
        if tag == b'S' || tags.len() > 3 {
            break;
        }
        rest = rest.get(1 + len..).unwrap_or_default();
    }
    matches!(tags.as_slice(), [b'E', b'S'] | [b'D', b'E', b'S'])
}

/// Whether a plan reads the target.
fn reads_target(plan: Option<&Plan>) -> bool {
    plan.and_then(|p| p.read.as_ref())
        .is_some_and(|r| r.path == ReadPath::Target)
}

/// The source read a routed read becomes when its parameter types are not
/// known.
fn types_unknown(read: &ReadRoute) -> Plan {
    Plan::source_read(read.on_source(Some("param_types")))
}

/// Whether a Parse names a type for every parameter (a count, then OIDs;
/// 0 leaves one to the server).
fn all_types_given(param_types: &[u8]) -> bool {
    let Some(count) = param_types
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
    else {
        return false;
    };
    count > 0
        && param_types[2..]
            .chunks_exact(4)
            .take(usize::from(count))
            .all(|oid| oid != [0, 0, 0, 0])
}

fn describe_expect(frame: &[u8]) -> Expect {
    if frame.get(5) == Some(&b'S') {
        Expect::DescribeStatement
    } else {
        Expect::DescribePortal
    }
}

/// A statement that fails with a refused write's error, SQLSTATE and
/// message, inside the client's batch.
pub(super) fn refusal_statement(refusal: &crate::route::write::Refusal) -> String {
    refusal.count();
    let message = switchyard_core::sql::pg::literal(&refusal.to_string());
    format!(
        "DO $switchyard$ BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = {message}; END $switchyard$",
        crate::route::write::pg::MIRROR_SQLSTATE
    )
}
