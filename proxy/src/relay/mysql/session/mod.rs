//! One MySQL client session after login: reads the client's commands one at
//! a time, carries out each statement's [`Decision`], and relays the
//! backend's answers.
//!
//! MySQL is strictly request-response, so the loop is sequential: one
//! command goes to a backend connection, its response is copied back as
//! whole physical packets (the codec's `ResponseTracker` only finds where it
//! ends), then the next command. Sequence ids of forwarded packets are
//! renumbered for the client, which is the identity on the fast path and
//! what lets the proxy hide answers of its own statements. While a response
//! streams, the client socket is watched too, so a client that vanishes
//! mid-query is noticed at once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use switchyard_core::config::ReadPath;
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod change_user;
mod inject;
mod response;

use response::Handling;

use super::backend::{self, MyBackend};
use super::code;
use crate::relay::reads::{ReadEnd, ReadMeters};
use crate::relay::stream::ClientStream;
use crate::route::classify::Dialect;
use crate::route::{
    kind_label, Affected, Affinity, Connection, Decision, Plan, ReadRoute, SessionFacts, Stage,
};
use crate::shadow::ShadowJob;
use crate::state::Shared;
use crate::wire::mysql::login::BackendLoginConfig;
use crate::wire::mysql::message::{
    self, ErrPacket, OkPacket, COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_INIT_DB,
    COM_PROCESS_KILL, COM_QUERY, COM_QUIT, COM_REGISTER_SLAVE, COM_RESET_CONNECTION,
    COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH, COM_STMT_PREPARE,
    COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_IN_TRANS,
};
use crate::wire::mysql::packet::{self, Packet, HEADER_LEN};
use crate::wire::mysql::retype::Retype;
use crate::wire::mysql::CodecError;

/// Flush forwarded packets to the client once this much is waiting.
const FLUSH_AT: usize = 64 * 1024;

/// Server errors that mean a statement ran past its time limit: MariaDB's
/// ER_STATEMENT_TIMEOUT (max_statement_time) and MySQL's ER_QUERY_TIMEOUT
/// (max_execution_time).
const TIMEOUT_CODES: [u16; 2] = [1969, 3024];

/// Proxy-owned statement ids start here, far above the ids a server hands
/// out on one connection, so the two never meet in the client's id space.
const FIRST_PROXY_STATEMENT: u32 = 0x8000_0000;

/// MariaDB's "the statement prepared last" id.
const LAST_PREPARED: u32 = u32::MAX;

/// Who the client is, from its handshake.
pub struct ClientInfo {
    /// The proxy user it logged in as.
    pub user: String,
    /// The schema it asked for (empty: none).
    pub database: String,
    /// Its `program_name` connection attribute.
    pub application: String,
    /// Capabilities of the client leg (what the client took of the offer).
    pub capabilities: u32,
    /// MariaDB extended flags of the client leg.
    pub mariadb_capabilities: u32,
    /// The client's collation id.
    pub charset: u8,
    /// Largest packet the client accepts.
    pub max_packet_size: u32,
    /// The client's connection attributes, repeated on second connections.
    pub connect_attrs: Vec<(String, String)>,
    /// The greeting's salt; COM_CHANGE_USER scrambles with it.
    pub salt: [u8; 20],
    /// The connection id the proxy presented.
    pub proxy_id: u32,
    /// The own backend's name in `backends:`.
    pub backend_name: String,
    /// The client's IP address, for "Access denied for user 'u'@'host'".
    pub host: String,
    /// The backend user the session logged in as, when the proxy user
    /// names its own (`backend_user`); shadow reads then skip, as MySQL
    /// has no way to take another user's identity.
    pub backend_user: Option<String>,
}

/// How a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client said goodbye or closed its socket.
    #[error("client closed the connection")]
    ClientClosed,
    /// The client vanished while a command ran on a backend.
    #[error("client vanished during a command")]
    ClientVanished,
    /// The proxy drained the session for shutdown.
    #[error("drained for shutdown")]
    Drained,
    /// The client sent something the proxy cannot accept; it is told so.
    #[error("client protocol error: {} {}", .err.code, .err.message)]
    ClientProtocol {
        /// What the client is told.
        err: ErrPacket,
        /// Sequence id of that ERR.
        seq: u8,
    },
    /// A login step (COM_CHANGE_USER) failed; the client was told.
    #[error("change of user failed: {0}")]
    ChangeUser(String),
    /// A socket to the client failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A backend closed, failed or broke the protocol.
    #[error("{message}")]
    Backend {
        /// What the client is told.
        message: String,
        /// Sequence id of that ERR.
        seq: u8,
    },
}

/// Which backend connection of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    /// The session's own connection to the routed backend.
    Own,
    /// The second connection, opened on first use by a plan.
    Second,
}

/// A client statement that may be routed, remembered with its text so
/// that every execution is decided anew.
struct Prepared {
    /// The client's text.
    sql: String,
    /// The forms prepared so far. The first is the one the client's
    /// COM_STMT_PREPARE created, whose answer the client holds.
    forms: Vec<StmtForm>,
    /// Long data was sent since the last execute. It lives in the first
    /// form on its server, so the next execute must run that form.
    long_data: bool,
    /// The form of the last execute, which COM_STMT_FETCH reads from.
    last: usize,
    /// Its number of placeholders.
    params: u16,
    /// The parameter types the client last bound: a form executed for the
    /// first time gets them even when the client leaves them out.
    types: Option<Vec<u8>>,
    /// The column definitions the client received when it prepared: the
    /// types it decodes binary rows with.
    columns: Vec<BytesMut>,
}

/// One form of a client statement, prepared on one connection.
struct StmtForm {
    /// The connection holding it.
    conn: Conn,
    /// The text it was prepared from; `None` is the client's own.
    sql: Option<String>,
    /// The server's id for it there.
    backend_id: u32,
    /// The plan that asked for it (the one long data pins an execute to);
    /// `None` relays.
    plan: Option<Arc<Plan>>,
    /// The server has been sent parameter types for it.
    bound: bool,
    /// How its binary rows reach the client.
    rows: Rows,
}

/// How a form's binary rows reach the client.
#[derive(Clone)]
enum Rows {
    /// As the server sends them: the client's own form, or a form whose
    /// columns are encoded as the client's are.
    Relayed,
    /// Re-encoded in the types of the client's form (a retyped target).
    Retyped(Arc<Retype>),
    /// Not in a shape the client's form can be given: the form is not run.
    Unfit,
}

/// Why a statement could not run.
enum Failed {
    /// The statement fails with this error; the session goes on.
    Statement(ErrPacket),
    /// The dual write refused the statement with this error; the session
    /// goes on (not a backend's failure: nothing is logged as one).
    Refused(ErrPacket),
    /// The session ends.
    Session(SessionEnd),
}

/// Keeps the parameter types an execute binds, and adds the last ones to
/// an execute that leaves them out when its form has never seen any (the
/// client bound them on another form of the statement).
fn bind_types(prepared: &mut Prepared, index: usize, payload: BytesMut) -> BytesMut {
    let params = prepared.params;
    if let Some(types) = message::execute_param_types(&payload, params) {
        prepared.types = Some(types.to_vec());
        prepared.forms[index].bound = true;
        return payload;
    }
    let form = &mut prepared.forms[index];
    match (&prepared.types, form.bound) {
        (Some(types), false) => match message::with_param_types(&payload, params, types) {
            Some(bound) => {
                form.bound = true;
                BytesMut::from(&bound[..])
            }
            None => payload,
        },
        _ => payload,
    }
}

/// How the binary rows of a form whose prepare answer had `columns` reach
/// a client that prepared with `client`.
fn rows_of(client: &[BytesMut], columns: &[BytesMut]) -> Rows {
    match Retype::between(client, columns) {
        Ok(None) => Rows::Relayed,
        Ok(Some(retype)) => Rows::Retyped(Arc::new(retype)),
        Err(e) => {
            tracing::warn!(error = %e, "a routed form's columns do not fit the client's; it runs on the source");
            Rows::Unfit
        }
    }
}

/// A target read's text limited to its `read_timeout` by the server
/// itself: MariaDB's `SET STATEMENT max_statement_time = s FOR`, MySQL's
/// `MAX_EXECUTION_TIME(ms)` hint (SELECT only). The server ends the
/// statement, so no cancel can land on the next one.
fn time_limited<'a>(sql: &'a str, read: Option<&ReadRoute>, mariadb: bool) -> Cow<'a, str> {
    let Some(timeout) = read.and_then(|r| r.timeout) else {
        return Cow::Borrowed(sql);
    };
    if mariadb {
        return Cow::Owned(format!(
            "SET STATEMENT max_statement_time = {:.3} FOR {sql}",
            timeout.as_secs_f64().max(0.001)
        ));
    }
    let head = sql.trim_start();
    match head.get(..6) {
        Some(select) if select.eq_ignore_ascii_case("select") => Cow::Owned(format!(
            "SELECT /*+ MAX_EXECUTION_TIME({}) */{}",
            timeout.as_millis().max(1),
            &head[6..]
        )),
        _ => Cow::Borrowed(sql),
    }
}

/// How a read's response ended, as the read metrics count it.
fn read_end(reply: &Reply) -> ReadEnd {
    match &reply.error {
        None => ReadEnd::Ok,
        Some(err) if TIMEOUT_CODES.contains(&err.code) => ReadEnd::TimedOut,
        Some(_) => ReadEnd::Failed,
    }
}

/// The source read that answers instead of target read `read`.
fn source_instead(read: &ReadRoute) -> Plan {
    Plan::source_read(read.on_source(None))
}

/// The routed read a decision carries, if any.
fn read_of(decision: &Decision) -> Option<&crate::route::ReadRoute> {
    match decision {
        Decision::Plan(plan) => plan.read.as_ref(),
        Decision::Relay | Decision::Refuse(_) => None,
    }
}

/// The error a refused write answers with (documented in the README).
fn refused(refusal: &crate::route::write::Refusal) -> ErrPacket {
    refusal.count();
    ErrPacket::new(REFUSED_WRITE, "HY000", refusal.to_string())
}

/// The MySQL error code of a write the dual write refuses:
/// ER_OPTION_PREVENTS_STATEMENT, "the server's configuration prevents it".
pub const REFUSED_WRITE: u16 = 1290;

/// A COM_STMT_PREPARE payload for `sql`.
fn prepare_payload(sql: &str) -> BytesMut {
    let mut prepare = BytesMut::with_capacity(sql.len() + 1);
    prepare.put_u8(COM_STMT_PREPARE);
    prepare.extend_from_slice(sql.as_bytes());
    prepare
}

/// Where the packets of a response go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    /// Straight to the client, renumbered.
    Client,
    /// Nowhere: the proxy's own statement.
    Swallow,
    /// Held until the proxy's statements after it have succeeded.
    Hold,
    /// Kept from the client; its rows are decoded into the session's
    /// `collected` for the program that asked for them.
    Collect,
}

/// What a response came to.
#[derive(Debug, Default)]
struct Reply {
    /// The ERR that ended it, if any.
    error: Option<ErrPacket>,
    /// The server's id of a prepared statement (COM_STMT_PREPARE_OK).
    prepared: Option<u32>,
    /// Its number of placeholders.
    params: u16,
    /// The column definitions of a prepare answer, when asked for.
    columns: Vec<BytesMut>,
    /// The response was an ERR kept from the client (see
    /// [`Handling::withhold_error`]).
    withheld: bool,
    /// The warning count of its last OK or end of rows.
    warnings: u16,
}

/// A logged-in session.
pub struct Session {
    shared: Arc<Shared>,
    info: ClientInfo,
    client: ClientStream,
    /// Bytes from the client not yet decoded.
    client_inbox: BytesMut,
    /// Packets waiting to be written to the client.
    client_out: BytesMut,
    /// The next sequence id of a packet to the client in this response.
    seq: u8,
    own: MyBackend,
    /// The second connection, opened on first use by a plan.
    second: Option<MyBackend>,
    /// Client statements that may be routed, by the id the client holds.
    statements: HashMap<u32, Prepared>,
    /// The next proxy-owned statement id.
    next_statement: u32,
    /// The connection of the client's last COM_STMT_PREPARE.
    last_prepared: Conn,
    /// Physical packet payloads of a held response ([`Sink::Hold`]), with
    /// whether each ended a result.
    held: Vec<(BytesMut, bool)>,
    /// Writes through the outbox not yet copied: their reads stay home.
    own_writes: crate::relay::reads::OwnWrites,
    /// The rows of a response read into [`Sink::Collect`].
    collected: Vec<crate::route::program::Row>,
    /// Upper bound on one payload.
    max_payload: usize,
    /// The session's stickiness key for read rules sticky by session.
    sticky: u64,
    /// Paths pinned by the open transaction, per migration.
    affinity: Affinity,
    /// Routed reads, timed until their response ends.
    reads: ReadMeters,
    /// The client's address (canary cohorts by network).
    client_ip: Option<std::net::IpAddr>,
}

impl Session {
    /// A session over a logged-in client and its own backend connection.
    pub fn new(
        shared: Arc<Shared>,
        info: ClientInfo,
        client: ClientStream,
        client_inbox: BytesMut,
        own: MyBackend,
    ) -> Session {
        let max_payload = shared.snapshot().config.limits.max_frame_bytes;
        let reads = ReadMeters::new(shared.clone());
        Session {
            shared,
            client,
            client_inbox,
            client_out: BytesMut::with_capacity(16 * 1024),
            seq: 1,
            own,
            second: None,
            statements: HashMap::new(),
            next_statement: FIRST_PROXY_STATEMENT,
            last_prepared: Conn::Own,
            held: Vec::new(),
            collected: Vec::new(),
            own_writes: Default::default(),
            max_payload,
            sticky: rand::random(),
            affinity: Affinity::default(),
            reads,
            client_ip: info.host.parse().ok(),
            info,
        }
    }

    /// Relays until the client leaves, a backend fails or the proxy drains.
    pub async fn run(mut self) -> SessionEnd {
        let end = self.relay().await;
        let notice = match &end {
            SessionEnd::Drained => Some((
                ErrPacket::new(
                    code::SHUTDOWN,
                    "08S01",
                    "switchyard: the proxy is shutting down; reconnect to another replica",
                ),
                0,
            )),
            SessionEnd::ClientProtocol { err, seq } => Some((err.clone(), *seq)),
            SessionEnd::Backend { message, seq } => Some((
                ErrPacket::new(code::BACKEND_LOST, "08S01", message.clone()),
                *seq,
            )),
            _ => None,
        };
        if let SessionEnd::ClientProtocol { .. } = &end {
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "mysql", "reason" => "protocol").increment(1);
        }
        if let SessionEnd::Backend { .. } = &end {
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "mysql", "reason" => "backend_lost").increment(1);
        }
        if let Some((err, seq)) = notice {
            self.client_out.clear();
            self.send_err(&err, seq);
            let _ = self.flush().await;
        }
        let _ = self.client.shutdown().await;
        if matches!(end, SessionEnd::ClientVanished) {
            // The server may keep running the statement (MariaDB's SLEEP and
            // long scans do not notice a closed socket): kill the thread, so
            // its locks go and its transaction rolls back now.
            self.kill_backends();
        } else {
            self.quit_backends().await;
        }
        end
    }

    async fn relay(&mut self) -> SessionEnd {
        let mut drain_requested = self.shared.is_draining();
        // One future for the whole session, not one per command.
        let drain_signal = crate::relay::drained(self.shared.draining.subscribe());
        tokio::pin!(drain_signal);
        // Set when the backend went away between commands: the client is
        // told with the answer to its next command, which it reads in step.
        let mut lost: Option<String> = None;
        loop {
            match packet::decode(&mut self.client_inbox, self.max_payload) {
                Ok(Some(command)) => {
                    if let Some(message) = lost {
                        return SessionEnd::Backend {
                            message,
                            seq: command.seq.wrapping_add(1),
                        };
                    }
                    if let Err(end) = self.on_command(command).await {
                        return end;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => return malformed(&e, 1),
            }
            if drain_requested && self.idle() {
                return SessionEnd::Drained;
            }
            let watch_backend = lost.is_none();
            crate::relay::make_room(&mut self.client_inbox);
            crate::relay::make_room(&mut self.own.inbox);
            let Session {
                client,
                client_inbox,
                own,
                ..
            } = self;
            tokio::select! {
                r = client.read_buf(client_inbox) => match r {
                    Ok(0) => return SessionEnd::ClientClosed,
                    Ok(n) => count_bytes("client_to_server", n),
                    Err(e) => return SessionEnd::Io(e),
                },
                r = own.stream.read_buf(&mut own.inbox), if watch_backend => {
                    // The server speaks first only to say goodbye (KILL,
                    // wait_timeout, shutdown).
                    let why = match r {
                        Ok(0) => "closed the connection".to_string(),
                        Ok(_) => match message::ErrPacket::parse(&own.inbox[HEADER_LEN.min(own.inbox.len())..]) {
                            Ok(err) => format!("ended the session ({} {})", err.code, err.message),
                            Err(_) => "sent a packet outside any command".to_string(),
                        },
                        Err(e) => format!("failed ({e})"),
                    };
                    let name = &own.name;
                    lost = Some(format!(
                        "switchyard: lost the connection to backend `{name}`: the server {why}; reconnect to start a new session"
                    ));
                }
                _ = &mut drain_signal, if !drain_requested => drain_requested = true,
            }
        }
    }

    /// Between commands, outside a transaction: the session may be closed
    /// without the client losing work.
    fn idle(&self) -> bool {
        let open = |b: &MyBackend| b.status & SERVER_STATUS_IN_TRANS != 0;
        self.client_inbox.is_empty() && !open(&self.own) && !self.second.as_ref().is_some_and(open)
    }

    fn side(&mut self, conn: Conn) -> &mut MyBackend {
        match (conn, self.second.as_mut()) {
            (Conn::Second, Some(s)) => s,
            _ => &mut self.own,
        }
    }

    // ---- commands ------------------------------------------------------

    async fn on_command(&mut self, command: Packet) -> Result<(), SessionEnd> {
        // `seq` is the last part's; a payload of 16 MiB or more came in parts.
        let parts = command.payload.len() / packet::MAX_PACKET_PAYLOAD + 1;
        let first_seq = command.seq.wrapping_sub((parts - 1) as u8);
        if first_seq != 0 {
            let err = ErrPacket::new(
                code::OUT_OF_ORDER,
                "08S01",
                format!("Got packets out of order: a command must start with sequence id 0, got {first_seq}"),
            );
            return Err(SessionEnd::ClientProtocol {
                err,
                seq: command.seq.wrapping_add(1),
            });
        }
        // The answer's sequence ids follow the command's last part.
        self.seq = command.seq.wrapping_add(1);
        let payload = command.payload;
        let Some(&first) = payload.first() else {
            let err = ErrPacket::new(
                code::MALFORMED,
                "08S01",
                "Malformed communication packet: an empty command",
            );
            return Err(SessionEnd::ClientProtocol { err, seq: self.seq });
        };
        match first {
            COM_QUIT => Err(SessionEnd::ClientClosed),
            COM_QUERY => self.on_query(payload).await,
            COM_STMT_PREPARE => self.on_prepare(payload).await,
            COM_STMT_EXECUTE
            | COM_STMT_BULK_EXECUTE
            | COM_STMT_FETCH
            | COM_STMT_RESET
            | COM_STMT_CLOSE
            | COM_STMT_SEND_LONG_DATA => self.on_statement(payload).await,
            COM_PROCESS_KILL => self.on_process_kill(payload).await,
            COM_CHANGE_USER => self.on_change_user(payload).await,
            COM_RESET_CONNECTION => {
                // The server forgets its prepared statements; so do we, and
                // the second connection goes (it is reopened on demand).
                self.statements.clear();
                if let Some(mut s) = self.second.take() {
                    quit(&mut s).await;
                }
                let reply = self
                    .exchange(Conn::Own, &payload, Sink::Client, None)
                    .await?;
                if reply.error.is_none() {
                    // The reset cleared the session's variables, the
                    // proxy's mark among them.
                    self.mark_as_proxy().await?;
                }
                Ok(())
            }
            COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID | COM_REGISTER_SLAVE => {
                let err = ErrPacket::new(
                    code::UNKNOWN_COMMAND,
                    "08S01",
                    format!("{} is not supported through switchyard; replicate from the server directly", message::command_name(first)),
                );
                self.send_err(&err, self.seq);
                self.flush().await
            }
            COM_INIT_DB => {
                let reply = self
                    .exchange(Conn::Own, &payload, Sink::Client, None)
                    .await?;
                if reply.error.is_none() {
                    self.info.database = String::from_utf8_lossy(&payload[1..]).into_owned();
                }
                Ok(())
            }
            _ => self
                .exchange(Conn::Own, &payload, Sink::Client, None)
                .await
                .map(drop),
        }
    }

    /// Classifies and decides one statement. Returns the decision and
    /// whether the statement touches a migrated table (so a prepared one
    /// must be decided again at each execute). Counted once per execute,
    /// or once per prepare for a statement the fast path relays from then
    /// on.
    fn decide(&mut self, sql: &str, stage: Stage, params: &[Option<String>]) -> (Decision, bool) {
        let statement = self.shared.classifier.classify(Dialect::Mysql, sql);
        let routing = self.shared.routing();
        let routable = routing.touches(&statement);
        if stage == Stage::Execute || !routable {
            meters().statements[statement.kind as usize].increment(1);
        }
        let in_transaction = self.own.status & SERVER_STATUS_IN_TRANS != 0;
        if !in_transaction && !self.affinity.is_empty() {
            self.affinity.clear();
        }
        let pins = self.own_writes.pins(&self.shared, self.affinity.as_slice());
        let facts = SessionFacts {
            dialect: Dialect::Mysql,
            stage,
            user: &self.info.user,
            database: &self.info.database,
            application: &self.info.application,
            in_transaction,
            session: self.sticky,
            client: self.client_ip,
            backend: &self.info.backend_name,
            schema: (!self.info.database.is_empty()).then_some(self.info.database.as_str()),
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
        (decision, routable)
    }

    async fn on_query(&mut self, payload: BytesMut) -> Result<(), SessionEnd> {
        let sql = match message::query_text(&payload, self.info.capabilities) {
            Ok(text) => String::from_utf8_lossy(text),
            Err(e) => return Err(malformed(&e, self.seq)),
        };
        crate::control::hold(&self.shared, Dialect::Mysql, &sql).await;
        let (decision, _) = self.decide(&sql, Stage::Execute, &[]);
        if let Some((query_only, id)) = super::parse_kill(&sql) {
            if let Some(outcome) = super::kill(&self.shared, &self.info.user, id, query_only).await
            {
                match outcome {
                    Ok(()) => self.send_ok(None, self.seq),
                    Err(err) => self.send_err(&err, self.seq),
                }
                return self.flush().await;
            }
        }
        self.offer_shadow(read_of(&decision), &sql, Vec::new);
        let plan = match decision {
            Decision::Refuse(refusal) => {
                self.send_err(&refused(&refusal), self.seq);
                return self.flush().await;
            }
            Decision::Plan(plan) if !plan.is_passthrough() => plan,
            decision => {
                let meter = read_of(&decision).map(|r| self.reads.start(r));
                let reply = self
                    .exchange(Conn::Own, &payload, Sink::Client, None)
                    .await?;
                if let Some(token) = meter {
                    self.reads.finish(token, read_end(&reply));
                }
                if reply.error.is_none() {
                    if let Some(database) = use_database(&sql) {
                        self.info.database = database;
                    }
                }
                return Ok(());
            }
        };
        let conn = match self.connection_for(&plan.connection).await {
            Ok(conn) => conn,
            Err(err) => return self.fail_statement(&err).await,
        };
        if plan.injects() {
            let payload = match &plan.sql {
                Some(sql) => query_payload(sql),
                None => payload,
            };
            return self.run_injected(conn, &payload, &plan).await;
        }
        let mariadb = self.side(conn).mariadb;
        let rewritten = plan
            .sql
            .as_deref()
            .map(|sql| query_payload(&time_limited(sql, plan.read.as_ref(), mariadb)));
        let meter = plan.read.as_ref().map(|r| self.reads.start(r));
        let target = plan.read.as_ref().filter(|r| r.path == ReadPath::Target);
        let handling = Handling {
            affected: plan.affected,
            withhold_error: target.is_some(),
            ..Handling::default()
        };
        let sent = rewritten.as_ref().unwrap_or(&payload);
        let reply = self
            .exchange_with(conn, sent, Sink::Client, handling)
            .await?;
        match (target, meter) {
            (Some(read), Some(token)) if reply.withheld => {
                // The client's own statement, on the source.
                self.read_on_source(read, token, &reply, &payload).await
            }
            (_, Some(token)) => {
                self.reads.finish(token, read_end(&reply));
                Ok(())
            }
            (_, None) => Ok(()),
        }
    }

    /// Offers a routed read to the shadow, outside a transaction only (a
    /// transaction's reads see its own writes, which no other connection
    /// can). `params` gives the bound values, decoded only if drawn.
    fn offer_shadow(
        &self,
        read: Option<&ReadRoute>,
        sql: &str,
        params: impl FnOnce() -> Vec<Option<String>>,
    ) {
        let Some(read) = read else { return };
        if self.own.status & SERVER_STATUS_IN_TRANS != 0 {
            return;
        }
        crate::guard::offer_shadow(&self.shared, read, |route| ShadowJob {
            migration: read.migration.clone(),
            dialect: Dialect::Mysql,
            backend: self.info.backend_name.clone(),
            target_backend: route.target_backend.clone(),
            database: self.info.database.clone(),
            role: self.info.backend_user.clone(),
            settings: Vec::new(),
            source_sql: sql.to_string(),
            target_sql: route.target_sql.clone(),
            params: params(),
            key_columns: route.key.clone(),
            order: None,
        });
    }

    /// A target read failed before any of its answer reached the client:
    /// `payload` runs it on the source instead, the client gets the
    /// source's answer, and the failure counts against the target only
    /// when the source succeeded. A failed SELECT leaves a MySQL
    /// transaction usable, so this holds inside one too.
    async fn read_on_source(
        &mut self,
        read: &ReadRoute,
        token: u32,
        failed: &Reply,
        payload: &[u8],
    ) -> Result<(), SessionEnd> {
        let source = read.on_source(None);
        let source_token = self.reads.start(&source);
        let reply = self
            .exchange(Conn::Own, payload, Sink::Client, None)
            .await?;
        let target_end = match (reply.error.is_none(), read_end(failed)) {
            (false, _) => ReadEnd::ClientError,
            (true, ReadEnd::TimedOut) => ReadEnd::TimedOut,
            (true, _) => ReadEnd::Failed,
        };
        if let Some(err) = &failed.error {
            tracing::debug!(migration = %read.migration, code = err.code, error = %err.message, "a target read failed; the source answered it");
        }
        self.reads.finish(token, target_end);
        self.reads.finish(source_token, read_end(&reply));
        Ok(())
    }

    async fn on_prepare(&mut self, payload: BytesMut) -> Result<(), SessionEnd> {
        let sql = String::from_utf8_lossy(&payload[1..]).into_owned();
        let (decision, routable) = self.decide(&sql, Stage::Prepare, &[]);
        let plan = match decision {
            Decision::Plan(plan) if !plan.is_passthrough() => plan,
            _ => {
                self.last_prepared = Conn::Own;
                let handling = Handling {
                    columns: routable,
                    ..Handling::default()
                };
                let reply = self
                    .exchange_with(Conn::Own, &payload, Sink::Client, handling)
                    .await?;
                // A statement that may be routed keeps the server's id, so
                // the fast path stays untouched for as long as it relays.
                if let (true, Some(backend_id)) = (routable, reply.prepared) {
                    let form = StmtForm {
                        conn: Conn::Own,
                        sql: None,
                        backend_id,
                        plan: None,
                        bound: false,
                        rows: Rows::Relayed,
                    };
                    self.remember(backend_id, sql, form, reply);
                }
                return Ok(());
            }
        };
        let conn = match self.connection_for(&plan.connection).await {
            Ok(conn) => conn,
            Err(err) => return self.fail_statement(&err).await,
        };
        self.last_prepared = conn;
        let prepare = prepare_payload(plan.sql.as_deref().unwrap_or(&sql));
        let proxy_id = self.next_statement;
        self.next_statement = self
            .next_statement
            .checked_add(1)
            .unwrap_or(FIRST_PROXY_STATEMENT);
        let handling = Handling {
            prepare_id: Some(proxy_id),
            columns: true,
            ..Handling::default()
        };
        let reply = self
            .exchange_with(conn, &prepare, Sink::Client, handling)
            .await?;
        if let Some(backend_id) = reply.prepared {
            let form = StmtForm {
                conn,
                sql: plan.sql.clone(),
                backend_id,
                plan: Some(plan),
                bound: false,
                rows: Rows::Relayed,
            };
            self.remember(proxy_id, sql, form, reply);
        }
        Ok(())
    }

    fn remember(&mut self, client_id: u32, sql: String, form: StmtForm, reply: Reply) {
        let prepared = Prepared {
            sql,
            forms: vec![form],
            long_data: false,
            last: 0,
            params: reply.params,
            types: None,
            columns: reply.columns,
        };
        self.statements.insert(client_id, prepared);
    }

    /// COM_STMT_EXECUTE / FETCH / RESET / CLOSE / SEND_LONG_DATA: remembered
    /// statements are decided at each execute and run on that form's
    /// connection under the server's id; others are relayed.
    async fn on_statement(&mut self, mut payload: BytesMut) -> Result<(), SessionEnd> {
        let command = payload[0];
        let Some(id) = message::statement_id(&payload) else {
            let err = ErrPacket::new(
                code::MALFORMED,
                "08S01",
                format!(
                    "Malformed communication packet: {} without a statement id",
                    message::command_name(command)
                ),
            );
            return Err(SessionEnd::ClientProtocol { err, seq: self.seq });
        };
        if command == COM_STMT_CLOSE {
            if let Some(prepared) = self.statements.remove(&id) {
                return self.close_forms(&prepared, payload).await;
            }
        }
        let Some(mut prepared) = self.statements.remove(&id) else {
            let conn = if id == LAST_PREPARED {
                self.last_prepared
            } else {
                Conn::Own
            };
            return self
                .exchange(conn, &payload, Sink::Client, None)
                .await
                .map(drop);
        };
        let executes = matches!(command, COM_STMT_EXECUTE | COM_STMT_BULK_EXECUTE);
        let mut decided = None;
        let index = match command {
            _ if executes => match self.execute_form(&mut prepared, &payload).await {
                Ok((index, plan)) => {
                    decided = plan;
                    index
                }
                Err(Failed::Statement(err)) => {
                    self.statements.insert(id, prepared);
                    return self.fail_statement(&err).await;
                }
                Err(Failed::Refused(err)) => {
                    self.statements.insert(id, prepared);
                    self.send_err(&err, self.seq);
                    return self.flush().await;
                }
                Err(Failed::Session(end)) => return Err(end),
            },
            COM_STMT_FETCH => prepared.last,
            COM_STMT_SEND_LONG_DATA => {
                prepared.long_data = true;
                0
            }
            _ => {
                // COM_STMT_RESET
                prepared.long_data = false;
                0
            }
        };
        if let Some(read) = decided.as_ref().and_then(|p| p.read.as_ref()) {
            let (types, count) = (prepared.types.as_deref(), prepared.params);
            let params =
                || message::execute_params_text(&payload, count, types).unwrap_or_default();
            self.offer_shadow(Some(read), &prepared.sql, params);
        }
        let client_payload = payload.clone();
        if command == COM_STMT_EXECUTE {
            payload = bind_types(&mut prepared, index, payload);
        }
        // A target read that fails is answered by the client's own form.
        let fallback = match decided.as_ref().and_then(|p| p.read.as_ref()) {
            Some(read) if read.path == ReadPath::Target && index != 0 => Some(read.clone()),
            _ => None,
        };
        let form = &prepared.forms[index];
        let conn = form.conn;
        let retype = match &form.rows {
            Rows::Retyped(retype) => Some(retype.clone()),
            _ => None,
        };
        if let Err(e) = message::set_statement_id(&mut payload, form.backend_id) {
            self.statements.insert(id, prepared);
            return Err(malformed(&e, self.seq));
        }
        self.statements.insert(id, prepared);
        // An execute carries out the plan decided for it now.
        let plan = decided;
        if let Some(plan) = plan.as_ref().filter(|p| p.injects()) {
            return self.run_injected(conn, &payload, plan).await;
        }
        let meter = plan
            .as_ref()
            .and_then(|p| p.read.as_ref())
            .map(|r| self.reads.start(r));
        let handling = Handling {
            affected: plan.and_then(|p| p.affected),
            retype: retype.as_deref(),
            withhold_error: fallback.is_some(),
            ..Handling::default()
        };
        let reply = self
            .exchange_with(conn, &payload, Sink::Client, handling)
            .await?;
        match (fallback, meter) {
            (Some(read), Some(token)) if reply.withheld => {
                // The execute as the client's own form runs it, built only
                // now: binding types to that form marks them sent.
                let own = self.statements.get_mut(&id).and_then(|prepared| {
                    prepared.last = 0;
                    let mut own = bind_types(prepared, 0, client_payload);
                    message::set_statement_id(&mut own, prepared.forms[0].backend_id)
                        .ok()
                        .map(|_| own)
                });
                match own {
                    Some(own) => self.read_on_source(&read, token, &reply, &own).await,
                    None => {
                        // Cannot happen (the statement was just run); the
                        // client gets the target's error rather than none.
                        self.reads.finish(token, read_end(&reply));
                        if let Some(err) = &reply.error {
                            self.send_err(err, self.seq);
                        }
                        self.flush().await
                    }
                }
            }
            (_, Some(token)) => {
                self.reads.finish(token, read_end(&reply));
                Ok(())
            }
            (_, None) => Ok(()),
        }
    }

    /// Decides where one execute of `prepared` runs, preparing that form on
    /// its connection first if this is its first use; returns its index and
    /// the plan decided.
    async fn execute_form(
        &mut self,
        prepared: &mut Prepared,
        payload: &[u8],
    ) -> Result<(usize, Option<Arc<Plan>>), Failed> {
        if std::mem::take(&mut prepared.long_data) {
            prepared.last = 0;
            return Ok((0, prepared.forms[0].plan.clone()));
        }
        // Bound values are decoded only when some rule keys on them.
        let params = match self.shared.routing().reads_keys() {
            true => {
                message::execute_params_text(payload, prepared.params, prepared.types.as_deref())
                    .unwrap_or_default()
            }
            false => Vec::new(),
        };
        crate::control::hold(&self.shared, Dialect::Mysql, &prepared.sql).await;
        let (conn, sql, plan) = match self.decide(&prepared.sql, Stage::Execute, &params).0 {
            Decision::Refuse(refusal) => return Err(Failed::Refused(refused(&refusal))),
            Decision::Relay => (Conn::Own, None, None),
            Decision::Plan(plan) if plan.is_passthrough() => (Conn::Own, None, Some(plan)),
            Decision::Plan(plan) => {
                let conn = self
                    .connection_for(&plan.connection)
                    .await
                    .map_err(Failed::Statement)?;
                let mariadb = self.side(conn).mariadb;
                let sql = plan
                    .sql
                    .as_deref()
                    .map(|sql| time_limited(sql, plan.read.as_ref(), mariadb).into_owned());
                (conn, sql, Some(plan))
            }
        };
        let found = prepared
            .forms
            .iter()
            .position(|f| f.conn == conn && f.sql == sql);
        let index = match found {
            Some(index) => index,
            None => {
                let text = sql.as_deref().unwrap_or(&prepared.sql);
                let handling = Handling {
                    columns: true,
                    ..Handling::default()
                };
                let reply = self
                    .exchange_with(conn, &prepare_payload(text), Sink::Swallow, handling)
                    .await
                    .map_err(Failed::Session)?;
                let target = plan
                    .as_ref()
                    .and_then(|p| p.read.as_ref())
                    .filter(|r| r.path == ReadPath::Target);
                if let (None, Some(read)) = (reply.prepared, target) {
                    // The target cannot prepare it: the client's own form
                    // answers, and the target is held to the failure.
                    let token = self.reads.start(read);
                    self.reads.finish(token, ReadEnd::Failed);
                    prepared.last = 0;
                    return Ok((0, Some(Arc::new(source_instead(read)))));
                }
                let backend_id =
                    match (reply.prepared, reply.error) {
                        (Some(id), _) => id,
                        (None, Some(err)) => return Err(Failed::Statement(err)),
                        (None, None) => return Err(Failed::Statement(ErrPacket::new(
                            code::BACKEND_LOST,
                            "HY000",
                            "switchyard: the server did not prepare the statement's routed form",
                        ))),
                    };
                let rows = rows_of(&prepared.columns, &reply.columns);
                prepared.forms.push(StmtForm {
                    conn,
                    sql,
                    backend_id,
                    plan: plan.clone(),
                    bound: false,
                    rows,
                });
                prepared.forms.len() - 1
            }
        };
        if let Rows::Unfit = prepared.forms[index].rows {
            // The client's own form answers instead, as a source read.
            let source = plan
                .as_ref()
                .and_then(|p| p.read.as_ref())
                .map(|read| Arc::new(Plan::source_read(read.on_source(Some("binary_shape")))));
            prepared.last = 0;
            return Ok((0, source));
        }
        prepared.last = index;
        Ok((index, plan))
    }

    /// COM_STMT_CLOSE of a remembered statement: every form is closed on
    /// its server (the command has no answer).
    async fn close_forms(
        &mut self,
        prepared: &Prepared,
        mut payload: BytesMut,
    ) -> Result<(), SessionEnd> {
        for form in &prepared.forms {
            message::set_statement_id(&mut payload, form.backend_id)
                .map_err(|e| malformed(&e, self.seq))?;
            self.exchange(form.conn, &payload, Sink::Swallow, None)
                .await?;
        }
        Ok(())
    }

    async fn on_process_kill(&mut self, payload: BytesMut) -> Result<(), SessionEnd> {
        if payload.len() >= 5 {
            let id = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
            if let Some(outcome) =
                super::kill(&self.shared, &self.info.user, u64::from(id), false).await
            {
                match outcome {
                    Ok(()) => self.send_ok(None, self.seq),
                    Err(err) => self.send_err(&err, self.seq),
                }
                return self.flush().await;
            }
        }
        self.exchange(Conn::Own, &payload, Sink::Client, None)
            .await
            .map(drop)
    }

    /// The connection a plan runs on, opening the second one on first use.
    /// When it cannot be had, the statement fails with the returned error
    /// and the session goes on (a failed statement leaves a MySQL
    /// transaction open, so the client decides what to do next).
    async fn connection_for(&mut self, target: &Connection) -> Result<Conn, ErrPacket> {
        let Connection::Backend(name) = target else {
            return Ok(Conn::Own);
        };
        if let Some(side) = &self.second {
            if &side.name == name {
                return Ok(Conn::Second);
            }
            return Err(ErrPacket::new(
                code::UNKNOWN_ERROR,
                "HY000",
                format!("switchyard: a session can use one second backend at a time; it uses `{}`, a plan asked for `{name}`", side.name),
            ));
        }
        let snapshot = self.shared.snapshot_full();
        let config = &snapshot.config;
        let backend = config.backends.get(name).ok_or_else(|| {
            ErrPacket::new(
                code::UNKNOWN_ERROR,
                "HY000",
                format!("switchyard: a plan named backend `{name}`, which is not in `backends:`; add it to the proxy's config"),
            )
        })?;
        let database = backend
            .database
            .clone()
            .or_else(|| (!self.info.database.is_empty()).then(|| self.info.database.clone()));
        let login = BackendLoginConfig {
            user: backend.user.clone(),
            password: backend.password.clone(),
            database,
            charset: self.info.charset,
            client_capabilities: self.info.capabilities,
            client_mariadb_capabilities: self.info.mariadb_capabilities,
            tls: false,
            connect_attrs: super::session_attrs(&self.info.connect_attrs, self.info.proxy_id),
            max_packet_size: self.info.max_packet_size.max(1 << 24),
            server_public_key: None,
        };
        let conn = backend::connect(
            name,
            backend,
            snapshot.backend_tls(name),
            login,
            config.limits.connect_timeout,
            self.max_payload,
        )
        .await
        .map_err(|e| {
            ErrPacket::new(
                code::BACKEND_UNREACHABLE,
                "08S01",
                format!("switchyard: {e}"),
            )
        })?;
        self.second = Some(conn);
        Ok(Conn::Second)
    }

    /// Answers the current command with `err` instead of running it.
    async fn fail_statement(&mut self, err: &ErrPacket) -> Result<(), SessionEnd> {
        metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "mysql", "reason" => "second_backend").increment(1);
        tracing::warn!(error = %err.message, "statement failed: its plan's backend is not available");
        self.send_err(err, self.seq);
        self.flush().await
    }

    // ---- answers of the proxy's own --------------------------------------

    fn send_ok(&mut self, affected: Option<Affected>, seq: u8) {
        let ok = OkPacket {
            affected_rows: affected.map_or(0, |a| a.rows),
            last_insert_id: affected.and_then(|a| a.last_insert_id).unwrap_or(0),
            status: self.own.status & !SERVER_MORE_RESULTS_EXISTS,
            ..OkPacket::default()
        };
        let mut payload = BytesMut::new();
        ok.encode(self.info.capabilities, &mut payload);
        self.seq = packet::encode(seq, &payload, &mut self.client_out);
    }

    fn send_err(&mut self, err: &ErrPacket, seq: u8) {
        let mut payload = BytesMut::new();
        err.encode(&mut payload);
        self.seq = packet::encode(seq, &payload, &mut self.client_out);
    }

    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.client_out.is_empty() {
            return Ok(());
        }
        self.client.write_all(&self.client_out).await?;
        // A TLS stream may take the bytes into its session without
        // having written all their records to the socket (the socket was
        // full): without a flush the end of a response could wait there
        // until the client's next command, which never comes.
        self.client.flush().await?;
        self.client_out.clear();
        Ok(())
    }

    // ---- failures and goodbyes ---------------------------------------------

    fn backend_lost(&mut self, conn: Conn, why: &str) -> SessionEnd {
        let name = &self.side(conn).name;
        SessionEnd::Backend {
            message: format!("switchyard: lost the connection to backend `{name}` ({why}); reconnect to start a new session"),
            seq: self.seq,
        }
    }

    fn backend_broken(&mut self, conn: Conn, e: &CodecError) -> SessionEnd {
        let name = &self.side(conn).name;
        SessionEnd::Backend {
            message: format!("switchyard: backend `{name}` sent a response the proxy cannot follow ({e}); closing the session to stay in step"),
            seq: self.seq,
        }
    }

    async fn quit_backends(&mut self) {
        quit(&mut self.own).await;
        if let Some(s) = self.second.as_mut() {
            quit(s).await;
        }
    }

    /// Kills the session's backend threads from side connections.
    fn kill_backends(&self) {
        let targets = std::iter::once(&self.own).chain(self.second.as_ref());
        for conn in targets {
            let shared = self.shared.clone();
            let (name, thread_id) = (conn.name.clone(), conn.thread_id);
            tokio::spawn(async move {
                let snapshot = shared.snapshot_full();
                let Some(backend) = snapshot.config.backends.get(&name) else {
                    return;
                };
                let timeout = snapshot.config.limits.connect_timeout;
                if let Err(e) = backend::kill(
                    &name,
                    backend,
                    snapshot.backend_tls(&name),
                    &backend.user,
                    &backend.password,
                    thread_id,
                    false,
                    timeout,
                )
                .await
                {
                    tracing::debug!(error = %e, "killing an abandoned backend thread failed");
                }
            });
        }
    }
}

/// Says goodbye to a backend, best effort.
async fn quit(conn: &mut MyBackend) {
    let mut out = BytesMut::new();
    packet::encode(0, &[COM_QUIT], &mut out);
    let _ = conn.stream.write_all(&out).await;
    let _ = conn.stream.shutdown().await;
}

impl Session {
    /// Marks the session's own backend connection as the proxy's again
    /// (`@switchyard_proxy`), after a reset or a change of user cleared
    /// it, so a migration's guard still tells a write the proxy relayed
    /// unmirrored from one that bypassed it. Only while migrations are
    /// configured; a failure only costs that label, as at login.
    async fn mark_as_proxy(&mut self) -> Result<(), SessionEnd> {
        if self.shared.snapshot().config.migrations.is_empty() {
            return Ok(());
        }
        let mark = switchyard_core::store::mysql::mark_proxy_session();
        let reply = self
            .exchange(Conn::Own, &query_payload(&mark), Sink::Swallow, None)
            .await?;
        if let Some(error) = reply.error {
            tracing::debug!(
                ?error,
                "could not mark the backend connection as the proxy's"
            );
        }
        Ok(())
    }
}

/// A COM_QUERY payload for `sql`.
fn query_payload(sql: &str) -> BytesMut {
    let mut payload = BytesMut::with_capacity(sql.len() + 1);
    payload.put_u8(COM_QUERY);
    payload.extend_from_slice(sql.as_bytes());
    payload
}

/// The session end for a client packet the codec refused.
fn malformed(e: &CodecError, seq: u8) -> SessionEnd {
    let (code, text) = match e {
        CodecError::PayloadTooLarge { .. } => (
            code::PACKET_TOO_LARGE,
            format!("Got a packet bigger than the proxy allows (limits.max_frame_bytes): {e}"),
        ),
        CodecError::SequenceGap { .. } => {
            (code::OUT_OF_ORDER, format!("Got packets out of order: {e}"))
        }
        e => (
            code::MALFORMED,
            format!("Malformed communication packet: {e}"),
        ),
    };
    SessionEnd::ClientProtocol {
        err: ErrPacket::new(code, "08S01", text),
        seq,
    }
}

/// Metric handles, registered once: a lookup per packet would cost more
/// than the counting.
struct Meters {
    client_bytes: metrics::Counter,
    server_bytes: metrics::Counter,
    /// `switchyard_statements_total` by kind, in `StatementKind` order.
    statements: [metrics::Counter; 5],
}

fn meters() -> &'static Meters {
    static METERS: std::sync::OnceLock<Meters> = std::sync::OnceLock::new();
    METERS.get_or_init(|| {
        use crate::route::classify::StatementKind::*;
        let bytes = |direction: &'static str| {
            metrics::counter!(names::BYTES_TOTAL, "protocol" => "mysql", "direction" => direction)
        };
        let kind = |kind| metrics::counter!(names::STATEMENTS_TOTAL, "protocol" => "mysql", "kind" => kind_label(kind));
        Meters {
            client_bytes: bytes("client_to_server"),
            server_bytes: bytes("server_to_client"),
            statements: [kind(Read), kind(Write), kind(Ddl), kind(Transaction), kind(Other)],
        }
    })
}

/// Counts relayed bytes.
pub fn count_bytes(direction: &'static str, n: usize) {
    let meters = meters();
    let counter = if direction == "client_to_server" {
        &meters.client_bytes
    } else {
        &meters.server_bytes
    };
    counter.increment(n as u64);
}

/// The database a `USE db` statement selects; `None` for any other text.
fn use_database(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let (word, rest) = text.split_once(char::is_whitespace)?;
    if !word.eq_ignore_ascii_case("use") {
        return None;
    }
    let name = rest.trim();
    let name = name
        .strip_prefix('`')
        .and_then(|n| n.strip_suffix('`'))
        .map(|n| n.replace("``", "`"))
        .unwrap_or_else(|| name.to_string());
    (!name.is_empty()).then_some(name)
}
