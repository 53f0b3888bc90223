//! One PostgreSQL client session after login: relays frames between the
//! client and its backend connection(s) and carries out each statement's
//! [`Decision`].
//!
//! The loop never blocks on one direction: reads and writes of every socket
//! are polled together, so a server streaming a large result while the client
//! pipelines more requests cannot deadlock the proxy. Frames the decision
//! leaves alone are copied through byte for byte.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use switchyard_core::config::ReadPath;
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::backend::{self, Login, PgBackend};
use crate::relay::backend_stream::{BackendRead, BackendWrite};
use crate::relay::make_room;
use crate::relay::reads::{OwnWrites, ReadEnd, ReadMeters};
use crate::relay::stream::ClientStream;
use crate::route::classify::{Dialect, StatementKind};
use crate::route::read::{search_path_schema, set_search_path};
use crate::route::{
    kind_label, Affinity, Connection, Decision, Plan, ReadRoute, SessionFacts, Stage,
};

mod extended;
mod program;
use crate::shadow::ShadowJob;
use crate::state::Shared;
use crate::wire::pg::message::{self, sqlstate};
use crate::wire::pg::response::{
    Conn, Disposition, Expect, Fallback, Pending, Responses, Step, READ_SAVEPOINT,
};
use crate::wire::pg::{frame, CodecError};

/// Stop reading from one side while this much is waiting to be written to
/// the other: backpressure instead of unbounded buffers.
const HIGH_WATER: usize = 1 << 20;

/// Who the client is, from its startup packet and login.
pub struct ClientInfo {
    /// The proxy user it logged in as.
    pub user: String,
    /// The database it asked for.
    pub database: String,
    /// Its `application_name`.
    pub application: String,
    /// Startup parameters to repeat when opening a second connection.
    pub params: Vec<(String, String)>,
    /// The client's address (canary cohorts by network).
    pub client: Option<std::net::IpAddr>,
    /// The backend role the session logged in as, when the proxy user
    /// names its own (`backend_user`): shadow reads take it too.
    pub backend_user: Option<String>,
}

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client said goodbye or closed its socket.
    #[error("client closed the connection")]
    ClientClosed,
    /// The proxy drained the session for shutdown.
    #[error("drained for shutdown")]
    Drained,
    /// The client sent something the proxy cannot accept.
    #[error("client protocol error: {0}")]
    ClientProtocol(#[from] CodecError),
    /// A socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A backend closed, failed or broke the protocol.
    #[error("{0}")]
    Backend(String),
}

/// A client statement that may be routed, remembered so that every Bind
/// can decide anew where it runs.
struct Prepared {
    /// The client's text.
    sql: String,
    /// The parameter types every form is parsed with (count and OIDs): the
    /// client's Parse's, or the ParameterDescription of its source form.
    param_types: Vec<u8>,
    /// The parameter types as the client's Parse declared them, to tell a
    /// re-sent Parse of the same statement.
    declared: Vec<u8>,
    /// The forms prepared so far. The first was parsed when the client
    /// asked and answers its Describe.
    forms: Vec<Form>,
}

/// One form of a client statement, prepared on one connection.
struct Form {
    /// The connection it is prepared on.
    conn: Conn,
    /// The text it was prepared from; `None` is the client's own.
    sql: Option<String>,
    /// Its name on the backend.
    name: String,
    /// Whether `name` is the proxy's (else it is the client's own).
    proxy_owned: bool,
}

/// A portal bound from a remembered statement.
struct Portal {
    /// The connection that holds it.
    conn: Conn,
    /// The plan decided at its Bind; `None` relays.
    plan: Option<Arc<Plan>>,
    /// The client's statement and the index of the form it was bound to.
    form: Option<(String, usize)>,
    /// A mirrored write alone in its batch: should it fail, the form that
    /// runs the write alone and queues its keys answers instead.
    fenced_write: bool,
}

/// A backend connection's halves and buffers.
struct Side {
    /// Read half of the connection.
    read: BackendRead,
    /// Write half of the connection.
    write: BackendWrite,
    /// Bytes read but not yet relayed.
    inbox: BytesMut,
    /// Bytes waiting to be written.
    outbox: BytesMut,
    /// The backend's name in `backends:`.
    name: String,
}

impl Side {
    fn new(conn: PgBackend, name: String) -> Side {
        let (read, write) = conn.stream.into_split();
        Side {
            read,
            write,
            inbox: BytesMut::with_capacity(16 * 1024),
            outbox: BytesMut::with_capacity(16 * 1024),
            name,
        }
    }
}

/// A logged-in session.
pub struct Session {
    shared: Arc<Shared>,
    info: ClientInfo,
    client_read: ReadHalf<ClientStream>,
    client_write: WriteHalf<ClientStream>,
    /// Bytes went to the client since its stream was last flushed: a TLS
    /// stream may hold the last records of a write in its session (the
    /// socket was full) until it is flushed, and the end of a response
    /// must not wait there for the client's next message.
    client_unflushed: bool,
    /// Bytes from the client not yet decoded.
    client_inbox: BytesMut,
    /// Bytes waiting to be written to the client.
    client_outbox: BytesMut,
    own: Side,
    /// The second connection, opened on first use by a plan.
    second: Option<Side>,
    /// The second connection got messages since the client's last Sync.
    second_in_batch: bool,
    /// The batch since the client's last Sync is a target read run behind
    /// the read savepoint inside the client's transaction.
    read_savepoint: bool,
    /// Messages in flight and what the client sees of their answers.
    responses: Responses,
    /// The own connection's transaction status from its last ReadyForQuery.
    status: u8,
    /// Client statements that may be routed, by the client's name.
    statements: HashMap<String, Prepared>,
    /// Client portals bound from remembered statements.
    portals: HashMap<String, Portal>,
    /// Counter for proxy-owned statement names.
    next_name: u64,
    /// Upper bound on one frame.
    max_frame: usize,
    /// The session's stickiness key for read rules sticky by session.
    sticky: u64,
    /// The schema unqualified table names resolve to (first of the
    /// search_path); `None` when it cannot be told.
    schema: Option<String>,
    /// Paths pinned by the open transaction, per migration.
    affinity: Affinity,
    /// Routed reads in flight, timed until their response ends.
    reads: ReadMeters,
    /// Describes of remembered statements in flight, by capture token:
    /// their ParameterDescription gives the types every form is parsed
    /// with, so a client's binary values bind alike on every path.
    describing: HashMap<u32, String>,
    /// The next capture token.
    next_capture: u32,
    /// Metric handles, looked up once per session rather than per message.
    meters: Meters,
    /// A plan's program in progress: the client is not read until it ends.
    program: Option<program::Running>,
    /// Writes through the outbox not yet copied: their reads stay home.
    own_writes: OwnWrites,
}

/// The session's metric handles.
struct Meters {
    client_bytes: metrics::Counter,
    server_bytes: metrics::Counter,
    /// `switchyard_statements_total` by kind, in `StatementKind` order.
    statements: [metrics::Counter; 5],
}

impl Meters {
    fn new() -> Meters {
        let bytes = |direction: &'static str| metrics::counter!(names::BYTES_TOTAL, "protocol" => "postgres", "direction" => direction);
        let kind = |kind| metrics::counter!(names::STATEMENTS_TOTAL, "protocol" => "postgres", "kind" => kind_label(kind));
        use crate::route::classify::StatementKind::*;
        Meters {
            client_bytes: bytes("client_to_server"),
            server_bytes: bytes("server_to_client"),
            statements: [
                kind(Read),
                kind(Write),
                kind(Ddl),
                kind(Transaction),
                kind(Other),
            ],
        }
    }
}

impl Session {
    /// A session over a logged-in client and its own backend connection.
    pub fn new(
        shared: Arc<Shared>,
        info: ClientInfo,
        client: ClientStream,
        own: PgBackend,
        backend_name: String,
    ) -> Session {
        let (client_read, client_write) = tokio::io::split(client);
        let max_frame = shared.snapshot().config.limits.max_frame_bytes;
        let reads = ReadMeters::new(shared.clone());
        let schema = startup_schema(&info.params);
        Session {
            shared,
            info,
            client_read,
            client_write,
            client_unflushed: false,
            client_inbox: BytesMut::with_capacity(16 * 1024),
            client_outbox: BytesMut::with_capacity(16 * 1024),
            own: Side::new(own, backend_name),
            second: None,
            second_in_batch: false,
            read_savepoint: false,
            responses: Responses::default(),
            status: b'I',
            statements: HashMap::new(),
            portals: HashMap::new(),
            next_name: 0,
            max_frame,
            sticky: rand::random(),
            schema,
            affinity: Affinity::default(),
            reads,
            describing: HashMap::new(),
            next_capture: 0,
            meters: Meters::new(),
            program: None,
            own_writes: OwnWrites::default(),
        }
    }

    /// Relays until the client leaves, a backend fails or the proxy drains.
    pub async fn run(mut self) -> SessionEnd {
        let end = self.relay().await;
        let notice = match &end {
            SessionEnd::Drained => Some((
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection: the proxy is shutting down; reconnect to another replica"
                    .to_string(),
            )),
            SessionEnd::ClientProtocol(e) => Some((sqlstate::PROTOCOL_VIOLATION, e.to_string())),
            SessionEnd::Backend(reason) => Some((sqlstate::CONNECTION_FAILURE, reason.clone())),
            _ => None,
        };
        if let Some((code, text)) = notice {
            message::error_response(&mut self.client_outbox, "FATAL", code, &text, None);
            let _ = self.client_write.write_all(&self.client_outbox).await;
            let _ = self.client_write.shutdown().await;
        }
        end
    }

    async fn relay(&mut self) -> SessionEnd {
        let mut drain_requested = self.shared.is_draining();
        // One future for the whole session, not one per loop turn.
        let drain_signal = crate::relay::drained(self.shared.draining.subscribe());
        tokio::pin!(drain_signal);
        loop {
            if drain_requested && self.idle() {
                return SessionEnd::Drained;
            }
            if self.held_client_frame() {
                if let Err(end) = self.on_client().await {
                    return end;
                }
            }
            let take_client = !self.responses.awaiting_fallback()
                && self.program.is_none()
                && self.own.outbox.len() < HIGH_WATER
                && self
                    .second
                    .as_ref()
                    .is_none_or(|s| s.outbox.len() < HIGH_WATER);
            let take_backend = self.client_outbox.len() < HIGH_WATER;
            make_room(&mut self.client_inbox);
            make_room(&mut self.own.inbox);
            if let Some(side) = &mut self.second {
                make_room(&mut side.inbox);
            }
            let result: Result<(), SessionEnd> = tokio::select! {
                biased;
                r = write_or_flush(&mut self.client_write, &mut self.client_outbox), if !self.client_outbox.is_empty() || self.client_unflushed => {
                    r.map(|flushed| self.client_unflushed = !flushed).map_err(SessionEnd::Io)
                }
                r = self.own.write.write_buf(&mut self.own.outbox), if !self.own.outbox.is_empty() => {
                    r.map(|_| ()).map_err(|e| self.backend_lost(Conn::Own, e))
                }
                r = self.own.read.read_buf(&mut self.own.inbox), if take_backend => {
                    match r {
                        Ok(0) => Err(self.backend_closed(Conn::Own)),
                        Ok(n) => { self.meters.server_bytes.increment(n as u64); self.on_backend() }
                        Err(e) => Err(self.backend_lost(Conn::Own, e)),
                    }
                }
                io = second_io(&mut self.second, take_backend) => {
                    match io {
                        SecondIo::Wrote(Ok(_)) => Ok(()),
                        SecondIo::Read(Ok(0)) => Err(self.backend_closed(Conn::Second)),
                        SecondIo::Read(Ok(_)) => self.on_backend(),
                        SecondIo::Wrote(Err(e)) | SecondIo::Read(Err(e)) => Err(self.backend_lost(Conn::Second, e)),
                    }
                }
                r = self.client_read.read_buf(&mut self.client_inbox), if take_client => {
                    match r {
                        Ok(0) => Err(SessionEnd::ClientClosed),
                        Ok(n) => { self.meters.client_bytes.increment(n as u64); self.on_client().await }
                        Err(e) => Err(SessionEnd::Io(e)),
                    }
                }
                _ = &mut drain_signal, if !drain_requested => {
                    drain_requested = true;
                    Ok(())
                }
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    /// Offers a routed read to the shadow, outside a transaction only (a
    /// transaction's reads see its own writes, which no other connection
    /// can).
    fn offer_shadow(&self, read: Option<&ReadRoute>, sql: &str, params: Vec<Option<String>>) {
        let Some(read) = read else { return };
        if self.status != b'I' {
            return;
        }
        crate::guard::offer_shadow(&self.shared, read, |route| ShadowJob {
            migration: read.migration.clone(),
            dialect: Dialect::Postgres,
            backend: self.own.name.clone(),
            target_backend: route.target_backend.clone(),
            database: self.info.database.clone(),
            role: self.info.backend_user.clone(),
            settings: self
                .schema
                .iter()
                .map(|schema| {
                    (
                        "search_path".to_string(),
                        switchyard_core::sql::pg::ident(schema),
                    )
                })
                .collect(),
            source_sql: sql.to_string(),
            target_sql: route.target_sql.clone(),
            params,
            key_columns: route.key.clone(),
            order: None,
        });
    }

    /// A portal's target form failed and the client's own form answered:
    /// later Executes of the portal run where it now is, and the form is
    /// closed and forgotten, so the next Bind prepares it anew (it may
    /// have failed to parse, or the target may come back).
    fn forget_failed_form(&mut self, portal: String) {
        let form = self.portals.get(&portal).and_then(|p| p.form.clone());
        self.portals.insert(
            portal,
            Portal {
                fenced_write: false,
                conn: Conn::Own,
                plan: None,
                form: None,
            },
        );
        let Some((statement, index)) = form.filter(|(_, index)| *index > 0) else {
            return;
        };
        let Some(prepared) = self.statements.get_mut(&statement) else {
            return;
        };
        if index >= prepared.forms.len() || !prepared.forms[index].proxy_owned {
            return;
        }
        let form = prepared.forms.remove(index);
        message::close(self.outbox(form.conn), b'S', &form.name);
        self.responses
            .push(Pending::new(form.conn, Expect::Close, Disposition::Swallow));
    }

    /// A complete client message waits while nothing holds it back (it was
    /// held while a target read that a fallback may answer was in flight).
    fn held_client_frame(&self) -> bool {
        !self.client_inbox.is_empty()
            && !self.responses.awaiting_fallback()
            && matches!(
                frame::frame_len(&self.client_inbox, self.max_frame),
                Ok(Some(_))
            )
    }

    /// Nothing in flight, no transaction open: the session may be closed
    /// without the client losing work.
    fn idle(&self) -> bool {
        self.responses.is_empty() && self.status == b'I' && self.client_inbox.is_empty()
    }

    fn backend_closed(&self, conn: Conn) -> SessionEnd {
        SessionEnd::Backend(format!(
            "the connection to backend `{}` was closed by the server; reconnect to start a new session",
            self.side_name(conn)
        ))
    }

    fn backend_lost(&self, conn: Conn, e: io::Error) -> SessionEnd {
        SessionEnd::Backend(format!(
            "the connection to backend `{}` failed ({e}); reconnect to start a new session",
            self.side_name(conn)
        ))
    }

    fn side_name(&self, conn: Conn) -> &str {
        match (conn, &self.second) {
            (Conn::Second, Some(s)) => &s.name,
            _ => &self.own.name,
        }
    }

    fn outbox(&mut self, conn: Conn) -> &mut BytesMut {
        match conn {
            Conn::Own => &mut self.own.outbox,
            Conn::Second => {
                &mut self
                    .second
                    .as_mut()
                    .expect("second connection is open")
                    .outbox
            }
        }
    }

    /// Sends a frame as it came and records what answers it.
    fn relay_frame(&mut self, conn: Conn, frame: &[u8], expect: Option<Expect>) {
        self.outbox(conn).extend_from_slice(frame);
        if let Some(expect) = expect {
            self.responses.push(Pending::forward(conn, expect));
        }
    }

    // ---- client → backend ----------------------------------------------

    async fn on_client(&mut self) -> Result<(), SessionEnd> {
        // While a target read that a fallback may answer is in flight, the
        // client's next messages wait in the inbox.
        while !self.responses.awaiting_fallback() {
            let Some(frame) = frame::decode(&mut self.client_inbox, self.max_frame)? else {
                break;
            };
            match frame.tag {
                b'Q' => self.on_query(&frame.bytes).await?,
                b'P' => self.on_parse(&frame.bytes).await?,
                b'B' => self.on_bind(&frame.bytes).await?,
                b'D' => self.on_describe(&frame.bytes)?,
                b'E' => self.on_execute(&frame.bytes)?,
                b'C' => self.on_close(&frame.bytes)?,
                b'S' => self.on_sync(&frame.bytes),
                b'H' => {
                    if self.second_in_batch {
                        self.relay_frame(Conn::Second, &frame.bytes, None);
                    }
                    self.relay_frame(Conn::Own, &frame.bytes, None);
                }
                // COPY data goes where the COPY runs.
                b'd' | b'c' | b'f' => {
                    let conn = self.responses.next_conn().unwrap_or(Conn::Own);
                    self.relay_frame(conn, &frame.bytes, None);
                    if frame.tag != b'd' {
                        self.responses.copy_in_ended(conn);
                    }
                }
                b'F' => self.relay_frame(Conn::Own, &frame.bytes, Some(Expect::Query)),
                b'X' => return Err(SessionEnd::ClientClosed),
                _ => {
                    return Err(CodecError::BadBody {
                        tag: frame.tag,
                        reason: "this message type is not valid from a client after login",
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Classifies and decides one statement, with the execution's bound
    /// parameters (`params`, text or decoded). Returns the decision,
    /// whether the statement touches a migrated table (so a prepared one
    /// must be decided again at each execution), and its statement count.
    /// Counted once per execution, or once per prepare for a statement the
    /// fast path relays from then on.
    fn decide(
        &mut self,
        sql: &str,
        stage: Stage,
        params: &[Option<String>],
    ) -> (Decision, bool, usize) {
        let statement = self.shared.classifier.classify(Dialect::Postgres, sql);
        let routing = self.shared.routing();
        let routable = routing.touches(&statement);
        if stage == Stage::Execute || !routable {
            self.meters.statements[statement.kind as usize].increment(1);
        }
        if statement.kind == StatementKind::Other {
            if let Some(schema) = set_search_path(sql) {
                self.schema = schema;
            }
        }
        let in_transaction = self.status != b'I';
        let pins = self.own_writes.pins(&self.shared, self.affinity.as_slice());
        let facts = SessionFacts {
            dialect: Dialect::Postgres,
            stage,
            user: &self.info.user,
            database: &self.info.database,
            application: &self.info.application,
            in_transaction,
            session: self.sticky,
            client: self.info.client,
            backend: &self.own.name,
            schema: self.schema.as_deref(),
            params,
            pinned: &pins,
        };
        let decision = self.shared.router.decide(&routing, &facts, &statement, sql);
        drop(pins);
        if let (Decision::Plan(plan), Stage::Execute) = (&decision, stage) {
            if let (true, Some(migration)) = (plan.outbox, &plan.mirror) {
                self.own_writes.wrote(migration.clone());
            }
        }
        if in_transaction && stage == Stage::Execute {
            self.affinity.note(&routing, &statement, &decision);
        }
        (decision, routable, statement.count.max(1))
    }

    async fn on_query(&mut self, frame: &[u8]) -> Result<(), SessionEnd> {
        let sql = message::query_text(&frame[5..])?;
        crate::control::hold(&self.shared, Dialect::Postgres, sql).await;
        let (decision, _, count) = self.decide(sql, Stage::Execute, &[]);
        if let Decision::Plan(plan) = &decision {
            self.offer_shadow(plan.read.as_ref(), sql, Vec::new());
        }
        let plan = match decision {
            Decision::Refuse(refusal) => {
                // The server raises it, so it comes in turn behind whatever
                // the client pipelined before, and a transaction fails as
                // with any failed statement.
                message::query(
                    self.outbox(Conn::Own),
                    &extended::refusal_statement(&refusal),
                );
                self.responses
                    .push(Pending::forward(Conn::Own, Expect::Query));
                return Ok(());
            }
            Decision::Plan(plan) if !plan.is_passthrough() => plan,
            Decision::Plan(plan) => {
                let meter = plan.read.as_ref().map(|r| self.reads.start(r));
                self.outbox(Conn::Own).extend_from_slice(frame);
                self.responses
                    .push(Pending::forward(Conn::Own, Expect::Query).metered(meter));
                return Ok(());
            }
            Decision::Relay => {
                self.relay_frame(Conn::Own, frame, Some(Expect::Query));
                return Ok(());
            }
        };
        let meter = plan.read.as_ref().map(|r| self.reads.start(r));
        let conn = self.connection_for(&plan.connection).await?;
        if let Some(read) = plan.read.as_ref().filter(|r| r.path == ReadPath::Target) {
            if !plan.injects() && count == 1 && self.status != b'E' {
                let target = plan.sql.as_deref().unwrap_or(sql);
                // A second connection's transaction is not the client's.
                let status = if conn == Conn::Own { self.status } else { b'I' };
                let (pending, text) = guarded_read(status, read, target, sql, &plan);
                message::query(self.outbox(conn), &text);
                let mut pending = Pending { conn, ..pending }.metered(meter);
                pending.fields = plan.fields.clone();
                self.responses.push(pending);
                return Ok(());
            }
        }
        if plan.injects() && count == 1 && self.status != b'E' {
            self.start_program(conn, sql, &plan);
            return Ok(());
        }
        let sql = plan.sql.clone().unwrap_or_else(|| sql.to_string());
        message::query(self.outbox(conn), &sql);
        let disposition = Disposition::Forward {
            tag: plan.tag.clone(),
        };
        let mut pending = Pending::new(conn, Expect::Query, disposition).metered(meter);
        pending.fields = plan.fields.clone();
        self.responses.push(pending);
        Ok(())
    }

    /// The connection a plan runs on, opening the second one on first use.
    async fn connection_for(&mut self, target: &Connection) -> Result<Conn, SessionEnd> {
        let (name, database) = match target {
            Connection::Own => return Ok(Conn::Own),
            Connection::Backend(name) => (name, None),
            Connection::Database { backend, database } => (backend, Some(database)),
        };
        // A second connection is known by its backend and database.
        let label = match database {
            Some(database) => format!("{name}/{database}"),
            None => name.clone(),
        };
        if let Some(side) = &self.second {
            if side.name == label {
                return Ok(Conn::Second);
            }
            return Err(SessionEnd::Backend(format!(
                "a session can use one second backend at a time; it uses `{}`, a plan asked for `{label}`",
                side.name
            )));
        }
        let snapshot = self.shared.snapshot();
        let config = &snapshot.config;
        let backend = config.backends.get(name).ok_or_else(|| {
            SessionEnd::Backend(format!(
                "a plan named backend `{name}`, which is not in `backends:`"
            ))
        })?;
        let mut params = self.info.params.clone();
        if let Some(db) = database.or(backend.database.as_ref()) {
            params.retain(|(k, _)| k != "database");
            params.push(("database".into(), db.clone()));
        }
        let login = Login {
            name,
            backend,
            tls: snapshot.backend_tls(name),
            user: &backend.user,
            password: &backend.password,
            params: &params,
        };
        let conn = backend::connect(login, config.limits.connect_timeout, self.max_frame)
            .await
            .map_err(|e| SessionEnd::Backend(e.to_string()))?;
        self.second = Some(Side::new(conn, label));
        Ok(Conn::Second)
    }

    // ---- backend → client ----------------------------------------------

    /// Relays every complete backend frame whose turn it is.
    fn on_backend(&mut self) -> Result<(), SessionEnd> {
        while self.drain(Conn::Own)? | self.drain(Conn::Second)? {}
        if self.responses.has_finished() {
            for (token, ok) in self.responses.take_finished() {
                let end = if ok { ReadEnd::Ok } else { ReadEnd::Failed };
                self.reads.finish(token, end);
            }
            for (token, source_ok, timed_out) in self.responses.take_retried() {
                let end = match (source_ok, timed_out) {
                    (false, _) => ReadEnd::ClientError,
                    (true, true) => ReadEnd::TimedOut,
                    (true, false) => ReadEnd::Failed,
                };
                self.reads.finish(token, end);
            }
        }
        Ok(())
    }

    /// Relays frames from one connection until it has none or it is another
    /// connection's turn; returns whether any frame moved.
    fn drain(&mut self, conn: Conn) -> Result<bool, SessionEnd> {
        let mut moved = false;
        loop {
            let side = match conn {
                Conn::Own => &mut self.own,
                Conn::Second => match self.second.as_mut() {
                    Some(s) => s,
                    None => return Ok(moved),
                },
            };
            let len = match frame::frame_len(&side.inbox, self.max_frame) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(moved),
                Err(e) => {
                    return Err(SessionEnd::Backend(format!(
                        "backend `{}` sent an invalid message: {e}",
                        side.name
                    )))
                }
            };
            let tag = side.inbox[0];
            let asynchronous = matches!(tag, b'A' | b'S' | b'N');
            if !asynchronous && self.responses.next_conn().is_some_and(|c| c != conn) {
                return Ok(moved);
            }
            let mut frame = side.inbox.split_to(len);
            moved = true;
            if tag == b't' {
                self.capture_parameters(&frame[5..]);
            }
            if tag == b'T' {
                if let Some(patch) = self.responses.front_fields() {
                    message::patch_row_description(&mut frame[5..], patch);
                }
            }
            if matches!(tag, b'T' | b'D') {
                if let Some(trim) = self.responses.front_trim() {
                    match message::trim_frame(&frame, trim) {
                        Some(trimmed) => frame = trimmed,
                        // The client's statement alone describes no rows.
                        None if !trim.rows && tag == b'T' => {
                            frame = BytesMut::from(&b"n\0\0\0\x04"[..])
                        }
                        // ... and returns none.
                        None if !trim.rows => continue,
                        None => {}
                    }
                }
            }
            match self.responses.on_frame(conn, tag, &frame[5..]) {
                Step::Forward => self.client_outbox.extend_from_slice(&frame),
                Step::Retag(tag) => message::command_complete(&mut self.client_outbox, &tag),
                Step::Swallow => {}
                Step::Ready { forward } => {
                    if conn == Conn::Own {
                        self.status = frame[5];
                        if self.status == b'I' {
                            self.affinity.clear();
                            self.own_writes.committed();
                        }
                    }
                    if forward {
                        message::ready_for_query(&mut self.client_outbox, self.status);
                    }
                }
                Step::Retry {
                    fallback,
                    covers,
                    timed_out,
                } => {
                    if conn == Conn::Own {
                        self.status = frame[5];
                    }
                    let meter = covers.and_then(|token| self.reads.on_source_instead(token));
                    let Fallback {
                        messages,
                        responses,
                        read,
                        portal,
                    } = *fallback;
                    self.outbox(Conn::Own).extend_from_slice(&messages);
                    for (i, (expect, disposition, trim)) in responses.into_iter().enumerate() {
                        let mut pending = Pending::new(Conn::Own, expect, disposition);
                        pending.trim = trim;
                        if i == read {
                            pending.meter = meter;
                            pending.covers = covers.map(|token| (token, timed_out));
                        }
                        self.responses.push(pending);
                    }
                    if let Some(portal) = portal {
                        self.forget_failed_form(portal);
                    }
                }
                Step::Program { statement } => self.on_program_frame(statement, &frame),
                Step::ProgramReady => {
                    if conn == Conn::Own {
                        self.status = frame[5];
                        if self.status == b'I' {
                            self.own_writes.committed();
                        }
                    }
                    self.on_program_ready();
                }
                Step::Unexpected => {
                    return Err(SessionEnd::Backend(format!(
                        "backend `{}` sent an unexpected '{}' message; closing the session to stay in step",
                        self.side_name(conn),
                        char::from(tag)
                    )))
                }
            }
        }
    }
}

impl Session {
    /// Keeps a remembered statement's ParameterDescription (count and type
    /// OIDs, the same layout as a Parse's parameter types).
    fn capture_parameters(&mut self, body: &[u8]) {
        let Some(token) = self.responses.front_capture() else {
            return;
        };
        if let Some(name) = self.describing.remove(&token) {
            if let Some(prepared) = self.statements.get_mut(&name) {
                prepared.param_types = body.to_vec();
            }
        }
    }
}

/// What happened on the second connection.
enum SecondIo {
    Wrote(io::Result<usize>),
    Read(io::Result<usize>),
}

/// A simple-query target read with its fallback: the query to send and
/// what the client sees of it. Outside a transaction the read runs under
/// `SET LOCAL statement_timeout` (one implicit transaction, so the setting
/// ends with it) and a failure is re-run on the source as the client sent
/// it. Inside one (`status` `T`) it runs behind a savepoint that is rolled
/// back after it (undoing the timeout; a read changes nothing else), and a
/// failure is rolled back to the savepoint before the source answers, so
/// the client's transaction, tags and status are the source's alone.
fn guarded_read(
    status: u8,
    read: &ReadRoute,
    target: &str,
    client: &str,
    plan: &Plan,
) -> (Pending, String) {
    let in_transaction = status == b'T';
    let mut statements = Vec::new();
    if in_transaction {
        statements.push(format!("SAVEPOINT {READ_SAVEPOINT}"));
    }
    if let Some(timeout) = read.timeout {
        statements.push(format!(
            "SET LOCAL statement_timeout = {}",
            timeout.as_millis().max(1)
        ));
    }
    let skip = statements.len();
    statements.push(target.trim().trim_end_matches(';').to_string());
    if in_transaction {
        statements.push(format!("ROLLBACK TO SAVEPOINT {READ_SAVEPOINT}"));
        statements.push(format!("RELEASE SAVEPOINT {READ_SAVEPOINT}"));
    }
    let disposition = match statements.len() {
        1 => Disposition::Forward {
            tag: plan.tag.clone(),
        },
        _ => Disposition::Filter {
            skip,
            keep: 1,
            tag: plan.tag.clone(),
        },
    };
    let (query, fallback_disposition) = match in_transaction {
        true => (
            format!(
                "ROLLBACK TO SAVEPOINT {READ_SAVEPOINT}\n;\nRELEASE SAVEPOINT {READ_SAVEPOINT}\n;\n{client}"
            ),
            Disposition::Filter {
                skip: 2,
                keep: 1,
                tag: None,
            },
        ),
        false => (client.to_string(), Disposition::FORWARD),
    };
    let mut messages = BytesMut::new();
    message::query(&mut messages, &query);
    let fallback = Fallback {
        messages: messages.to_vec(),
        responses: vec![(Expect::Query, fallback_disposition, None)],
        read: 0,
        portal: None,
    };
    let mut pending = Pending::new(Conn::Own, Expect::Query, disposition);
    pending.fallback = Some(Box::new(fallback));
    (pending, statements.join("\n;\n"))
}

/// Reads or writes the second connection, whichever is ready; never
/// completes while there is none.
async fn second_io(side: &mut Option<Side>, read: bool) -> SecondIo {
    let Some(side) = side else {
        return std::future::pending().await;
    };
    let Side {
        read: reader,
        write,
        inbox,
        outbox,
        ..
    } = side;
    tokio::select! {
        biased;
        r = write.write_buf(outbox), if !outbox.is_empty() => SecondIo::Wrote(r),
        r = reader.read_buf(inbox), if read => SecondIo::Read(r),
        else => std::future::pending().await,
    }
}

/// The schema unqualified names resolve to from the startup packet: a
/// `search_path` parameter or `-c search_path=...` in `options`; `public`
/// (the default path's first schema) when neither is given.
fn startup_schema(params: &[(String, String)]) -> Option<String> {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    if let Some(path) = param("search_path") {
        return search_path_schema(path);
    }
    if let Some(options) = param("options") {
        let mut words = options.split_whitespace();
        while let Some(word) = words.next() {
            let setting = match word {
                "-c" => words.next().unwrap_or(""),
                w => w
                    .strip_prefix("-c")
                    .or_else(|| w.strip_prefix("--"))
                    .unwrap_or(""),
            };
            if let Some(path) = setting.strip_prefix("search_path=") {
                return search_path_schema(&path.replace("\\ ", " "));
            }
        }
    }
    Some("public".into())
}

/// Writes what waits for the client, or, once nothing does, flushes the
/// stream; `true` when it flushed.
async fn write_or_flush(
    client: &mut WriteHalf<ClientStream>,
    outbox: &mut BytesMut,
) -> std::io::Result<bool> {
    if outbox.is_empty() {
        client.flush().await?;
        return Ok(true);
    }
    client.write_buf(outbox).await?;
    Ok(false)
}
