//! Which backend responses answer which frontend messages.
//!
//! PostgreSQL answers messages strictly in order, so the session keeps one
//! [`Pending`] per message it sent that expects an answer; the front of the
//! queue says which connection the next response comes from and what the
//! client may see of it. That is what lets the proxy inject statements of its
//! own and consume their responses, send a statement to a second backend,
//! and adjust a command tag, while the client sees one ordinary stream.
//! Sans-IO: the session feeds frames in and acts on the [`Step`] returned.

use std::collections::VecDeque;

/// The savepoint a target read inside the client's transaction runs
/// behind, so its failure can be rolled back before the source answers.
pub const READ_SAVEPOINT: &str = "switchyard_read";

/// Which backend connection a message went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// The session's own backend connection.
    Own,
    /// The session's second connection (another database or server).
    Second,
}

/// The response a message produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Simple Query or FunctionCall: everything up to ReadyForQuery.
    Query,
    /// ParseComplete.
    Parse,
    /// BindComplete.
    Bind,
    /// ParameterDescription, then RowDescription or NoData.
    DescribeStatement,
    /// RowDescription or NoData.
    DescribePortal,
    /// Rows (or COPY), then CommandComplete, EmptyQuery or PortalSuspended.
    Execute,
    /// CloseComplete.
    Close,
    /// ReadyForQuery.
    Sync,
    /// Not a message: marks where the client ended a COPY IN (CopyDone or
    /// CopyFail), so the Syncs the server ignores can be told apart.
    CopyEnd,
}

/// What the client sees of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Everything, with an optional replacement for the command tag.
    Forward {
        /// Replaces the tag of CommandComplete (e.g. `INSERT 0 1`).
        tag: Option<String>,
    },
    /// Nothing but errors: the proxy's own messages.
    Swallow,
    /// A simple query the proxy extended with statements of its own: only
    /// statements `skip .. skip + keep` are the client's.
    Filter {
        /// Statements the proxy put before the client's.
        skip: usize,
        /// How many statements are the client's.
        keep: usize,
        /// Replaces the tag of the client's last CommandComplete.
        tag: Option<String>,
    },
    /// A batch of a plan's program, one simple query of several
    /// statements: every frame goes to the session's run, which decides
    /// what the client sees once the program is over.
    Program,
}

impl Disposition {
    /// Forward everything untouched.
    pub const FORWARD: Disposition = Disposition::Forward { tag: None };
}

/// One message awaiting its response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The connection the response will come from.
    pub conn: Conn,
    /// The shape of the response.
    pub expect: Expect,
    /// What the client sees of it.
    pub disposition: Disposition,
    /// Statements of a simple query already completed (for `Filter`).
    pub done: usize,
    /// A DescribeStatement's ParameterDescription has arrived.
    pub described: bool,
    /// The session's token for a read it times: reported through
    /// [`Responses::take_finished`] when the response ends.
    pub meter: Option<u32>,
    /// A simple query's statement failed (for the meter's outcome).
    pub failed: bool,
    /// A read rewritten for the target: its RowDescription is made to name
    /// the source's columns.
    pub fields: Option<std::sync::Arc<super::message::FieldPatch>>,
    /// A mirrored write: its rows carry the proxy's columns after the
    /// client's, cut off before the client sees them.
    pub trim: Option<super::message::Trim>,
    /// A mirrored write's Execute: the table its mirror writes. An error
    /// that is the statement's own (see `may_be_mirror_error`) reaches the
    /// client as it is instead of starting the batch's fallback.
    pub mirror_target: Option<std::sync::Arc<str>>,
    /// A DescribeStatement whose ParameterDescription the session keeps
    /// (under this token) to prepare the statement's other forms alike.
    pub capture: Option<u32>,
    /// A simple query reading the target (or the Sync ending an extended
    /// one): what runs instead if it fails before the client saw any of
    /// its answer.
    pub fallback: Option<Box<Fallback>>,
    /// Extended protocol, a message of a target read's batch: what to send
    /// on the own connection instead, when the batch's target read fails,
    /// so the client still gets its answer (`None`: the proxy's own
    /// message, which needs none).
    pub replay: Option<Vec<u8>>,
    /// The responses of messages `replay` sends ahead of the replayed one
    /// (a fallback form's Close and Parse), all hidden from the client.
    pub replay_hidden: Vec<Expect>,
    /// Part of a batch whose one target read a fallback may answer.
    pub armed: bool,
    /// Extended protocol, a target read's Execute run behind
    /// [`READ_SAVEPOINT`]: its fallback first rolls back to it.
    pub rewind: bool,
    /// Some frame of this response reached the client.
    pub shown: bool,
    /// The error that ended it was kept from the client, because
    /// `fallback` answers instead; `true` when it was a statement timeout.
    pub withheld: Option<bool>,
    /// A fallback query: the meter token of the target read it replaces,
    /// and whether that read timed out.
    pub covers: Option<(u32, bool)>,
}

/// What answers a target read that failed before the client saw anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// The messages to send on the own connection.
    pub messages: Vec<u8>,
    /// The response each of them expects, and what the client sees of it.
    pub responses: Vec<(Expect, Disposition, Option<super::message::Trim>)>,
    /// Which of them is the read (timed in place of the target read).
    pub read: usize,
    /// Extended protocol: the portal the fallback binds, which now lives
    /// on the own connection.
    pub portal: Option<String>,
}

impl Pending {
    /// A message whose response goes to the client untouched.
    pub fn forward(conn: Conn, expect: Expect) -> Pending {
        Pending::new(conn, expect, Disposition::FORWARD)
    }

    /// A message with a chosen disposition.
    pub fn new(conn: Conn, expect: Expect, disposition: Disposition) -> Pending {
        Pending {
            conn,
            expect,
            disposition,
            done: 0,
            described: false,
            meter: None,
            failed: false,
            capture: None,
            fields: None,
            trim: None,
            mirror_target: None,
            fallback: None,
            replay: None,
            replay_hidden: Vec::new(),
            armed: false,
            rewind: false,
            shown: false,
            withheld: None,
            covers: None,
        }
    }

    /// The same, timed by the session under `token`.
    pub fn metered(mut self, token: Option<u32>) -> Pending {
        self.meter = token;
        self
    }
}

/// What to do with one backend frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send it to the client as it is.
    Forward,
    /// Send the client a CommandComplete with this tag instead.
    Retag(String),
    /// Drop it.
    Swallow,
    /// A ReadyForQuery for the client; `status` is the byte the client must
    /// see (the own connection's status, even when a second connection answered).
    Ready {
        /// Whether to send it on to the client.
        forward: bool,
    },
    /// A frame no message in flight explains: the streams are out of step.
    Unexpected,
    /// A frame of statement `statement` (0-based) of a program's batch.
    Program {
        /// Which statement of the batch it answers.
        statement: usize,
    },
    /// The ReadyForQuery ending a program's batch.
    ProgramReady,
    /// The ReadyForQuery ending a target read whose error was kept from
    /// the client: send `fallback` and answer the client with that.
    Retry {
        /// What to send.
        fallback: Box<Fallback>,
        /// The target read's meter token.
        covers: Option<u32>,
        /// The target's error was a statement timeout.
        timed_out: bool,
    },
}

/// The queue of messages awaiting a response.
#[derive(Debug, Default)]
pub struct Responses {
    queue: VecDeque<Pending>,
    /// A backend is in COPY FROM STDIN mode, where it ignores Sync.
    copy_in: bool,
    /// Per connection (own, second): an extended-protocol error
    /// arrived and no Sync was in flight, so the server discards every
    /// message until the client's next Sync and answers none of them.
    discarding: [bool; 2],
    /// Metered responses that ended since the session last asked, with
    /// whether they succeeded.
    finished: Vec<(u32, bool)>,
    /// Messages of the armed batch already answered (a Bind before the
    /// Execute that failed): sent again, their answers hidden, ahead of the
    /// rest of the batch's fallback, since the failure took their effect.
    settled: Vec<(Vec<u8>, Vec<Expect>)>,
    /// Target reads answered by a fallback since the session last asked:
    /// the target read's token, whether the fallback succeeded, and
    /// whether the target timed out.
    retried: Vec<(u32, bool, bool)>,
}

fn slot(conn: Conn) -> usize {
    match conn {
        Conn::Own => 0,
        Conn::Second => 1,
    }
}

impl Responses {
    /// Records a message sent to a backend.
    pub fn push(&mut self, pending: Pending) {
        let discarding = &mut self.discarding[slot(pending.conn)];
        if *discarding {
            if pending.expect != Expect::Sync {
                return;
            }
            *discarding = false;
        }
        self.queue.push_back(pending);
    }

    /// The client ended a COPY IN (CopyDone or CopyFail) on `conn`.
    pub fn copy_in_ended(&mut self, conn: Conn) {
        if self.copy_in {
            self.copy_in = false;
        } else if !self.queue.is_empty() {
            // CopyInResponse has not arrived yet: remember where the copy
            // data ended among the messages in flight.
            self.queue
                .push_back(Pending::forward(conn, Expect::CopyEnd));
        }
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let front = self.queue.pop_front();
        while self
            .queue
            .front()
            .is_some_and(|p| p.expect == Expect::CopyEnd)
        {
            self.queue.pop_front();
        }
        front
    }

    /// The metered responses that ended, with whether each succeeded.
    pub fn take_finished(&mut self) -> Vec<(u32, bool)> {
        std::mem::take(&mut self.finished)
    }

    /// Whether a target read that a fallback may answer is in flight: the
    /// session takes no more client messages until it ends, so a fallback
    /// never answers out of turn.
    pub fn awaiting_fallback(&self) -> bool {
        self.queue.iter().any(|p| p.fallback.is_some() || p.armed)
    }

    /// Extended protocol, just after the session queued the Sync ending a
    /// batch on `conn`: when the batch holds exactly one Execute, of a
    /// target read, and every message the client awaits an answer to can
    /// be replayed, the batch is armed so the source answers if the target
    /// read fails. Anything else in the batch (another statement, a
    /// message that cannot be replayed) leaves it unarmed: its errors pass
    /// through.
    pub fn arm_batch(&mut self, conn: Conn) {
        let len = self.queue.len();
        if len < 2 || self.queue[len - 1].expect != Expect::Sync {
            return;
        }
        // Only a batch with nothing in flight before it: a fallback must
        // not answer ahead of (or behind) another batch's answers.
        if self
            .queue
            .iter()
            .take(len - 1)
            .any(|p| p.expect == Expect::Sync || p.conn != conn)
        {
            return;
        }
        let start = 0;
        let batch = || self.queue.range(start..len - 1).filter(|p| p.conn == conn);
        // The proxy's own statements (a `SET LOCAL` ahead of the read) are
        // not the client's.
        let executes = batch()
            .filter(|p| p.expect == Expect::Execute && p.disposition != Disposition::Swallow)
            .count();
        let target_read = batch().any(|p| p.expect == Expect::Execute && p.replay.is_some());
        // The client's own Parse, Describe or Close may come first (they
        // are answered before the target read can fail); from the first
        // message of the target read on, each is the proxy's or replayable.
        let replayable = batch()
            .skip_while(|p| {
                p.replay.is_none()
                    && p.disposition != Disposition::Swallow
                    && matches!(
                        p.expect,
                        Expect::Parse | Expect::DescribeStatement | Expect::Close
                    )
            })
            .all(|p| p.replay.is_some() || p.disposition == Disposition::Swallow);
        if executes != 1 || !target_read || !replayable {
            return;
        }
        for p in self.queue.range_mut(start..len - 1) {
            if p.conn == conn {
                p.armed = true;
            }
        }
    }

    /// An armed batch's target read failed (the error is at the front):
    /// the server discards the rest of the batch up to its Sync, so every
    /// message the client still awaits an answer to is replayed on the own
    /// connection once that Sync's ReadyForQuery arrives.
    fn replay_batch(&mut self, conn: Conn, timed_out: bool) {
        let mut fallback = Fallback {
            messages: Vec::new(),
            responses: Vec::new(),
            read: 0,
            portal: None,
        };
        let mut meter = None;
        for (replay, expects) in std::mem::take(&mut self.settled) {
            fallback.messages.extend_from_slice(&replay);
            for expect in expects {
                fallback
                    .responses
                    .push((expect, Disposition::Swallow, None));
            }
        }
        while let Some(p) = self.queue.front() {
            if p.conn == conn && p.expect == Expect::Sync {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            if p.conn != conn {
                continue;
            }
            let Some(replay) = p.replay else { continue };
            if p.rewind {
                // The transaction is aborted up to the savepoint: roll
                // back to it, unseen, before the source answers.
                let mut rewind = bytes::BytesMut::new();
                super::message::query(
                    &mut rewind,
                    &format!("ROLLBACK TO SAVEPOINT {READ_SAVEPOINT};\nRELEASE SAVEPOINT {READ_SAVEPOINT}"),
                );
                let mut messages = rewind.to_vec();
                messages.append(&mut fallback.messages);
                fallback.messages = messages;
                fallback
                    .responses
                    .insert(0, (Expect::Query, Disposition::Swallow, None));
            }
            if p.expect == Expect::Execute {
                fallback.read = fallback.responses.len();
                meter = p.meter;
                fallback.portal = super::message::execute_portal(&replay[5..])
                    .ok()
                    .map(str::to_string);
            }
            fallback.messages.extend_from_slice(&replay);
            for expect in &p.replay_hidden {
                fallback
                    .responses
                    .push((*expect, Disposition::Swallow, None));
            }
            fallback.responses.push((p.expect, p.disposition, p.trim));
        }
        fallback.messages.extend_from_slice(b"S\0\0\0\x04");
        fallback
            .responses
            .push((Expect::Sync, Disposition::FORWARD, None));
        if let Some(sync) = self.queue.front_mut() {
            sync.fallback = Some(Box::new(fallback));
            sync.withheld = Some(timed_out);
            sync.meter = meter;
        }
    }

    /// Whether nothing the client awaits is in flight (only the proxy's own
    /// messages, outside any batch the client ended with a Sync).
    pub fn nothing_for_client(&self) -> bool {
        self.queue
            .iter()
            .all(|p| p.disposition == Disposition::Swallow && p.expect != Expect::Sync)
    }

    /// Whether any metered response ended since the last `take_finished`.
    pub fn has_finished(&self) -> bool {
        !self.finished.is_empty() || !self.retried.is_empty()
    }

    fn report(&mut self, pending: &Pending, ok: bool) {
        if let Some(token) = pending.meter {
            self.finished.push((token, ok));
        }
        if let Some((token, timed_out)) = pending.covers {
            self.retried.push((token, ok, timed_out));
        }
    }

    /// Target reads a fallback answered since the last call: the target
    /// read's token, whether the fallback succeeded, and whether the target
    /// timed out.
    pub fn take_retried(&mut self) -> Vec<(u32, bool, bool)> {
        std::mem::take(&mut self.retried)
    }

    /// The field patch of the message whose response comes next.
    pub fn front_fields(&self) -> Option<&super::message::FieldPatch> {
        self.queue.front().and_then(|p| p.fields.as_deref())
    }

    /// The trim of the message whose response comes next.
    pub fn front_trim(&self) -> Option<super::message::Trim> {
        self.queue.front().and_then(|p| p.trim)
    }

    /// The capture token of the message whose response comes next.
    pub fn front_capture(&self) -> Option<u32> {
        self.queue.front().and_then(|p| p.capture)
    }

    /// Nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// A backend is receiving COPY data: a Sync from the client now is
    /// ignored by the server and gets no ReadyForQuery.
    pub fn in_copy_in(&self) -> bool {
        self.copy_in
    }

    /// The connection the next response must come from.
    pub fn next_conn(&self) -> Option<Conn> {
        self.queue.front().map(|p| p.conn)
    }

    /// Classifies one frame from `conn`. Asynchronous frames (notices,
    /// notifications, parameter changes) may come at any time; everything
    /// else answers the front of the queue.
    pub fn on_frame(&mut self, conn: Conn, tag: u8, body: &[u8]) -> Step {
        if matches!(tag, b'A' | b'S') {
            return Step::Forward;
        }
        let in_flight = self.queue.len();
        let Some(front) = self.queue.front_mut() else {
            // Notices can arrive while idle (e.g. a backend shutting down).
            return if tag == b'N' || tag == b'E' {
                Step::Forward
            } else {
                Step::Unexpected
            };
        };
        if front.conn != conn {
            return if tag == b'N' {
                Step::Forward
            } else {
                Step::Unexpected
            };
        }
        let step = match tag {
            b'N' => visible(front, Step::Forward),
            b'E' if front.fallback.is_some() && !front.shown => {
                // Kept from the client: the fallback answers instead.
                front.withheld = Some(is_statement_timeout(body));
                front.done += 1;
                front.failed = true;
                return Step::Swallow;
            }
            b'E' if front.armed
                && !front.shown
                && front
                    .mirror_target
                    .as_deref()
                    .is_none_or(|target| super::message::may_be_mirror_error(body, target)) =>
            {
                self.replay_batch(conn, is_statement_timeout(body));
                return Step::Swallow;
            }
            b'E' if front.disposition == Disposition::Program => {
                let statement = front.done;
                self.on_error(conn);
                return Step::Program { statement };
            }
            b'E' => {
                self.on_error(conn);
                Step::Forward
            }
            b'Z' => return self.on_ready(),
            _ => self.on_response(tag, body),
        };
        // Only a response still in flight was shown something: one that
        // this frame completed is gone, and the next has shown nothing.
        if matches!(step, Step::Forward | Step::Retag(_)) && self.queue.len() == in_flight {
            if let Some(front) = self.queue.front_mut() {
                front.shown = true;
            }
        }
        step
    }

    fn on_error(&mut self, conn: Conn) {
        let front = self.queue.front_mut().expect("checked by caller");
        if front.expect == Expect::Query {
            // The rest of a simple query is skipped; ReadyForQuery follows.
            front.done += 1;
            front.failed = true;
            return;
        }
        // In the extended protocol the backend discards every message up to
        // its next Sync, so none of this connection's messages before that
        // Sync will be answered; other connections' messages still will.
        if let Some(failed) = self.pop_front() {
            self.report(&failed, false);
        }
        let mut skipping = true;
        let mut dropped = Vec::new();
        self.queue.retain(|p| {
            if !skipping || p.conn != conn {
                return true;
            }
            if p.expect == Expect::Sync {
                skipping = false;
                return true;
            }
            dropped.extend(p.meter);
            false
        });
        self.finished
            .extend(dropped.into_iter().map(|t| (t, false)));
        // No Sync in flight yet: what the client sends until its Sync is
        // discarded too.
        self.discarding[slot(conn)] = skipping;
    }

    fn on_ready(&mut self) -> Step {
        self.settled.clear();
        let front = self.pop_front().expect("checked by caller");
        if let (Some(fallback), Some(timed_out)) = (&front.fallback, front.withheld) {
            return Step::Retry {
                fallback: fallback.clone(),
                covers: front.meter,
                timed_out,
            };
        }
        self.report(&front, !front.failed);
        match front.expect {
            Expect::Query if front.disposition == Disposition::Program => Step::ProgramReady,
            Expect::Query | Expect::Sync => Step::Ready {
                forward: front.disposition != Disposition::Swallow,
            },
            _ => Step::Unexpected,
        }
    }

    fn on_response(&mut self, tag: u8, body: &[u8]) -> Step {
        let front = self.queue.front_mut().expect("checked by caller");
        let complete = match (front.expect, tag) {
            (Expect::Query | Expect::Execute, b'G') => {
                self.enter_copy_in();
                return Step::Forward;
            }
            (Expect::Query, b'C' | b'I') => {
                let step = visible(front, retag(front, body));
                front.done += 1;
                return step;
            }
            (Expect::Query, _) => return visible(front, Step::Forward),
            (Expect::Parse, b'1') | (Expect::Bind, b'2') | (Expect::Close, b'3') => true,
            (Expect::DescribeStatement, b't') if !front.described => {
                front.described = true;
                false
            }
            (Expect::DescribeStatement, b'T' | b'n') if front.described => true,
            (Expect::DescribePortal, b'T' | b'n') => true,
            (Expect::Execute, b'C') => {
                let step = visible(front, retag(front, body));
                if let Some(done) = self.pop_front() {
                    self.report(&done, true);
                }
                return step;
            }
            (Expect::Execute, b'I' | b's') => true,
            (Expect::Execute, b'D' | b'H' | b'W' | b'd' | b'c') => false,
            _ => return Step::Unexpected,
        };
        let step = visible(front, Step::Forward);
        if complete {
            if let Some(done) = self.pop_front() {
                self.report(&done, true);
                if let (true, Some(replay)) = (done.armed, done.replay) {
                    let mut expects = done.replay_hidden;
                    expects.push(done.expect);
                    self.settled.push((replay, expects));
                }
            }
        }
        step
    }
}

impl Responses {
    /// CopyInResponse: the server ignores every Sync from here to the
    /// client's CopyDone or CopyFail, so those get no ReadyForQuery. Syncs
    /// the client already sent after its CopyDone still count.
    fn enter_copy_in(&mut self) {
        let conn = self.queue.front().expect("checked by caller").conn;
        let mut ended = false;
        let mut first = true;
        self.queue.retain(|p| {
            if std::mem::take(&mut first) || ended || p.conn != conn {
                return true;
            }
            match p.expect {
                Expect::CopyEnd => {
                    ended = true;
                    false
                }
                Expect::Sync => false,
                _ => true,
            }
        });
        self.copy_in = !ended;
    }
}

/// Whether an ErrorResponse body is a statement timeout (SQLSTATE 57014
/// with the server's statement-timeout message; a cancel has the same code).
fn is_statement_timeout(body: &[u8]) -> bool {
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    has(b"C57014\0") && has(b"statement timeout")
}

/// The client sees `step` unless the frame belongs to the proxy.
fn visible(front: &Pending, step: Step) -> Step {
    match &front.disposition {
        Disposition::Forward { .. } => step,
        Disposition::Swallow => Step::Swallow,
        Disposition::Program => Step::Program {
            statement: front.done,
        },
        Disposition::Filter { skip, keep, .. } => {
            if (*skip..skip + keep).contains(&front.done) {
                step
            } else {
                Step::Swallow
            }
        }
    }
}

/// A CommandComplete, retagged when the disposition asks for it.
fn retag(front: &Pending, body: &[u8]) -> Step {
    let tag = match &front.disposition {
        Disposition::Forward { tag } => tag,
        Disposition::Filter { skip, keep, tag } if front.done + 1 == skip + keep => tag,
        _ => &None,
    };
    match tag {
        Some(tag) => {
            let server = super::message::cstr(b'C', body).map_or("", |(t, _)| t);
            Step::Retag(super::message::expand_tag(tag, server))
        }
        None => Step::Forward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Conn::*;

    fn run(r: &mut Responses, frames: &[(Conn, u8)]) -> Vec<Step> {
        frames
            .iter()
            .map(|(c, t)| r.on_frame(*c, *t, b""))
            .collect()
    }

    #[test]
    fn extended_batch_forwards_in_order() {
        let mut r = Responses::default();
        for e in [
            Expect::Parse,
            Expect::Bind,
            Expect::DescribePortal,
            Expect::Execute,
            Expect::Sync,
        ] {
            r.push(Pending::forward(Own, e));
        }
        let steps = run(
            &mut r,
            &[
                (Own, b'1'),
                (Own, b'2'),
                (Own, b'T'),
                (Own, b'D'),
                (Own, b'C'),
                (Own, b'Z'),
            ],
        );
        assert_eq!(steps[..5], vec![Step::Forward; 5][..]);
        assert_eq!(steps[5], Step::Ready { forward: true });
        assert!(r.is_empty());
    }

    #[test]
    fn error_skips_to_sync() {
        let mut r = Responses::default();
        for e in [Expect::Parse, Expect::Bind, Expect::Execute, Expect::Sync] {
            r.push(Pending::forward(Own, e));
        }
        assert_eq!(r.on_frame(Own, b'E', b""), Step::Forward);
        assert_eq!(r.len(), 1);
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
    }

    #[test]
    fn swallowed_messages_hide_all_but_errors() {
        let mut r = Responses::default();
        r.push(Pending::new(Own, Expect::Parse, Disposition::Swallow));
        r.push(Pending::forward(Own, Expect::Bind));
        assert_eq!(r.on_frame(Own, b'1', b""), Step::Swallow);
        assert_eq!(r.on_frame(Own, b'2', b""), Step::Forward);
        r.push(Pending::new(Own, Expect::Close, Disposition::Swallow));
        r.push(Pending::forward(Own, Expect::Sync));
        assert_eq!(r.on_frame(Own, b'E', b""), Step::Forward);
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
    }

    #[test]
    fn filter_keeps_only_the_clients_statements() {
        let mut r = Responses::default();
        let tag = Some("INSERT 0 7".to_string());
        r.push(Pending::new(
            Own,
            Expect::Query,
            Disposition::Filter {
                skip: 1,
                keep: 1,
                tag,
            },
        ));
        let steps = run(
            &mut r,
            &[
                (Own, b'C'),
                (Own, b'T'),
                (Own, b'D'),
                (Own, b'C'),
                (Own, b'C'),
                (Own, b'Z'),
            ],
        );
        assert_eq!(
            steps,
            vec![
                Step::Swallow,
                Step::Forward,
                Step::Forward,
                Step::Retag("INSERT 0 7".into()),
                Step::Swallow,
                Step::Ready { forward: true }
            ]
        );
    }

    #[test]
    fn responses_wait_for_their_connection() {
        let mut r = Responses::default();
        r.push(Pending::forward(Second, Expect::Query));
        r.push(Pending::forward(Own, Expect::Query));
        assert_eq!(r.next_conn(), Some(Second));
        assert_eq!(r.on_frame(Own, b'T', b""), Step::Unexpected);
        assert_eq!(r.on_frame(Own, b'A', b""), Step::Forward);
        assert_eq!(r.on_frame(Second, b'Z', b""), Step::Ready { forward: true });
        assert_eq!(r.next_conn(), Some(Own));
    }

    #[test]
    fn error_on_one_connection_skips_only_its_messages() {
        let mut r = Responses::default();
        r.push(Pending::forward(Second, Expect::Bind));
        r.push(Pending::forward(Own, Expect::Parse));
        r.push(Pending::forward(Second, Expect::Execute));
        r.push(Pending::new(Second, Expect::Sync, Disposition::Swallow));
        r.push(Pending::forward(Own, Expect::Sync));
        assert_eq!(r.on_frame(Second, b'E', b""), Step::Forward);
        assert_eq!(r.on_frame(Own, b'1', b""), Step::Forward);
        assert_eq!(
            r.on_frame(Second, b'Z', b""),
            Step::Ready { forward: false }
        );
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
        assert!(r.is_empty());
    }

    #[test]
    fn copy_in_drops_the_syncs_the_server_ignores() {
        let mut r = Responses::default();
        for e in [Expect::Bind, Expect::Execute, Expect::Sync] {
            r.push(Pending::forward(Own, e));
        }
        assert_eq!(r.on_frame(Own, b'2', b""), Step::Forward);
        assert_eq!(r.on_frame(Own, b'G', b""), Step::Forward);
        assert!(r.in_copy_in());
        assert_eq!(r.len(), 1);
        r.copy_in_ended(Own);
        r.push(Pending::forward(Own, Expect::Sync));
        assert_eq!(r.on_frame(Own, b'C', b""), Step::Forward);
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
        assert!(r.is_empty());
    }

    #[test]
    fn copy_in_pipelined_with_its_data_keeps_the_later_sync() {
        let mut r = Responses::default();
        for e in [Expect::Bind, Expect::Execute, Expect::Sync] {
            r.push(Pending::forward(Own, e));
        }
        r.copy_in_ended(Own);
        r.push(Pending::forward(Own, Expect::Sync));
        r.push(Pending::forward(Own, Expect::Parse));
        r.push(Pending::forward(Own, Expect::Sync));
        let steps = run(
            &mut r,
            &[
                (Own, b'2'),
                (Own, b'G'),
                (Own, b'C'),
                (Own, b'Z'),
                (Own, b'1'),
                (Own, b'Z'),
            ],
        );
        assert_eq!(steps[3], Step::Ready { forward: true });
        assert_eq!(steps[5], Step::Ready { forward: true });
        assert!(!r.in_copy_in());
        assert!(r.is_empty());
    }

    #[test]
    fn messages_sent_after_an_error_before_sync_are_not_answered() {
        let mut r = Responses::default();
        for e in [Expect::Parse, Expect::Bind, Expect::Execute] {
            r.push(Pending::forward(Own, e));
        }
        assert_eq!(r.on_frame(Own, b'E', b""), Step::Forward);
        assert!(r.is_empty());
        // The client's pipeline goes on; the server discards up to Sync.
        for e in [
            Expect::Parse,
            Expect::Bind,
            Expect::Execute,
            Expect::Sync,
            Expect::Parse,
            Expect::Sync,
        ] {
            r.push(Pending::forward(Own, e));
        }
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
        assert_eq!(r.on_frame(Own, b'1', b""), Step::Forward);
        assert_eq!(r.on_frame(Own, b'Z', b""), Step::Ready { forward: true });
        assert!(r.is_empty());
    }

    #[test]
    fn describe_statement_takes_two_frames() {
        let mut r = Responses::default();
        r.push(Pending::forward(Own, Expect::DescribeStatement));
        assert_eq!(r.on_frame(Own, b't', b""), Step::Forward);
        assert_eq!(r.len(), 1);
        assert_eq!(r.on_frame(Own, b'n', b""), Step::Forward);
        assert!(r.is_empty());
    }
}
