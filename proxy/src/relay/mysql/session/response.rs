//! The backend's answer to one command: copied to the client as whole
//! physical packets (renumbered), swallowed (the proxy's own statements) or
//! held (until the proxy's statements after it succeed), with the
//! [`ResponseTracker`] finding where it ends, and LOAD DATA LOCAL INFILE.

use bytes::{BufMut, BytesMut};
use switchyard_core::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{code, count_bytes, Conn, Reply, Session, SessionEnd, Sink, FLUSH_AT};
use crate::route::Affected;
use crate::wire::mysql::handshake::{CLIENT_DEPRECATE_EOF, MARIADB_CLIENT_CACHE_METADATA};
use crate::wire::mysql::message::{
    self, ErrPacket, OkPacket, SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_IN_TRANS,
};
use crate::wire::mysql::packet::{self, HEADER_LEN, MAX_PACKET_PAYLOAD};
use crate::wire::mysql::retype::Retype;
use crate::wire::mysql::tracker::{Outcome, Progress, ResponseTracker};

/// What an exchange does with the response besides relaying it.
#[derive(Default)]
pub(super) struct Handling<'a> {
    /// Affected rows and last insert id the client's OK reports instead.
    pub affected: Option<Affected>,
    /// COM_STMT_PREPARE whose answer carries this id instead of the server's.
    pub prepare_id: Option<u32>,
    /// Keep the column definitions of a prepare answer in the reply.
    pub columns: bool,
    /// Binary rows re-encoded in the source's types, under the source's
    /// column definitions.
    pub retype: Option<&'a Retype>,
    /// An ERR that is the whole response is kept from the client (the
    /// reply says so), so the caller can answer from elsewhere.
    pub withhold_error: bool,
}

/// MySQL's "Deadlock found when trying to get lock": the server rolled the
/// whole transaction back.
pub(super) const ER_LOCK_DEADLOCK: u16 = 1213;

impl Session {
    /// Sends a command to `conn` and relays its response into `sink`.
    pub(super) async fn exchange(
        &mut self,
        conn: Conn,
        command: &[u8],
        sink: Sink,
        affected: Option<Affected>,
    ) -> Result<Reply, SessionEnd> {
        let handling = Handling {
            affected,
            ..Handling::default()
        };
        self.exchange_with(conn, command, sink, handling).await
    }

    /// Sends a command to `conn` and relays its response into `sink` the
    /// way `handling` says.
    pub(super) async fn exchange_with(
        &mut self,
        conn: Conn,
        command: &[u8],
        sink: Sink,
        handling: Handling<'_>,
    ) -> Result<Reply, SessionEnd> {
        let client_extended = self.info.mariadb_capabilities;
        let side = self.side(conn);
        let tracker = ResponseTracker::for_command(command, side.capabilities)
            .map(|t| t.with_mariadb_capabilities(side.mariadb_capabilities));
        // A connection that could not take the client's metadata caching
        // (a second backend without it) sends column counts without the
        // "metadata follows" byte the client reads: add it.
        let add_metadata_flag =
            client_extended & !side.mariadb_capabilities & MARIADB_CLIENT_CACHE_METADATA != 0;
        let mut out = BytesMut::with_capacity(command.len() + HEADER_LEN);
        packet::encode(0, command, &mut out);
        let written = self.side(conn).stream.write_all(&out).await;
        written.map_err(|e| self.backend_lost(conn, &e.to_string()))?;
        let mut tracker = match tracker {
            Ok(t) if !t.is_done() => t,
            // No answer (COM_STMT_CLOSE, SEND_LONG_DATA).
            _ => return Ok(Reply::default()),
        };
        let Handling {
            affected,
            prepare_id,
            columns,
            retype,
            withhold_error,
        } = handling;
        let mut reply = Reply::default();
        let mut first = true;
        // Column definitions of the current result seen so far.
        let mut definitions = 0;
        let flush_at_end = sink == Sink::Client;
        let mut sink = sink;
        loop {
            while let Some(len) = packet::next_raw_len(&self.side(conn).inbox) {
                let mut raw = self.side(conn).inbox.split_to(len);
                let column_count = tracker.at_result_start();
                let definition = tracker.next_is_column_definition();
                let row = tracker.next_is_row();
                let progress = tracker
                    .feed_physical(&raw[HEADER_LEN..])
                    .map_err(|e| self.backend_broken(conn, &e))?;
                if std::mem::take(&mut first) {
                    if withhold_error && raw.get(HEADER_LEN) == Some(&0xFF) {
                        reply.withheld = true;
                        sink = Sink::Swallow;
                    }
                    if let (Some(id), Some(0x00)) = (prepare_id, raw.get(HEADER_LEN)) {
                        let backend_id = message::set_statement_id(&mut raw[HEADER_LEN..], id)
                            .map_err(|e| self.backend_broken(conn, &e))?;
                        reply.prepared = Some(backend_id);
                    }
                }
                if add_metadata_flag && column_count && progress == Progress::Continue {
                    raw = with_metadata_flag(raw);
                }
                // The last definition of a prepare answer may end it.
                if definition {
                    if columns {
                        reply.columns.push(BytesMut::from(&raw[HEADER_LEN..]));
                    }
                    if let Some(source) = retype.and_then(|r| r.definition(definitions)) {
                        raw = reframed(raw[3], source);
                    }
                    definitions += 1;
                } else if progress == Progress::Continue {
                    if column_count {
                        definitions = 0;
                    } else if let (true, Some(retype)) = (row, retype) {
                        match retyped_row(retype, &raw) {
                            Ok(converted) => raw = converted,
                            Err(err) => {
                                // The client's answer ends here; the rest
                                // of the server's is not for it.
                                tracing::warn!(error = %err.message, "a target row does not fit the source's column types");
                                if sink == Sink::Client {
                                    self.send_err(&err, self.seq);
                                }
                                reply.error.get_or_insert(err);
                                sink = Sink::Swallow;
                                continue;
                            }
                        }
                    }
                }
                if row && sink == Sink::Collect && progress == Progress::Continue {
                    let width = tracker.columns() as usize;
                    match super::inject::text_row(&raw[HEADER_LEN..], width) {
                        Some(values) => self.collected.push(values),
                        None => {
                            let err = ErrPacket::new(
                                1105,
                                "HY000",
                                "switchyard: a row of the proxy's own query could not be read",
                            );
                            reply.error.get_or_insert(err);
                        }
                    }
                }
                match progress {
                    Progress::Continue => self.sink(sink, raw, false),
                    Progress::LocalInfile { .. } => {
                        if let Some(err) = self.local_infile(conn, sink, raw).await? {
                            // The client has its answer; the server's own
                            // answer to the empty file is not for it.
                            reply.error = Some(err);
                            sink = Sink::Swallow;
                        }
                    }
                    Progress::ResultEnd {
                        outcome,
                        more_results,
                    } => {
                        let raw = self.on_result_end(conn, raw, &outcome, affected);
                        if let Outcome::Prepared(ok) = &outcome {
                            reply.params = ok.num_params;
                            if prepare_id.is_none() {
                                reply.prepared = Some(ok.statement_id);
                            }
                        }
                        match outcome {
                            Outcome::Err(err) => {
                                reply.error.get_or_insert(err);
                            }
                            Outcome::Ok(ok) => reply.warnings = ok.warnings,
                            Outcome::ResultSet { warnings, .. } => reply.warnings = warnings,
                            _ => {}
                        }
                        self.sink(sink, raw, true);
                        if !more_results && tracker.is_done() {
                            if flush_at_end {
                                self.flush().await?;
                            }
                            return Ok(reply);
                        }
                    }
                }
            }
            if self.client_out.len() >= FLUSH_AT {
                self.flush().await?;
            }
            self.fill(conn).await?;
        }
    }

    /// Notes the status a result ended with and patches the packet the
    /// client sees (affected rows and last insert id per the plan).
    fn on_result_end(
        &mut self,
        conn: Conn,
        raw: BytesMut,
        outcome: &Outcome,
        affected: Option<Affected>,
    ) -> BytesMut {
        match outcome {
            Outcome::Ok(ok) => {
                self.note_status(conn, ok.status);
                let Some(affected) = affected else { return raw };
                let patched = OkPacket {
                    affected_rows: affected.rows,
                    last_insert_id: affected.last_insert_id.unwrap_or(ok.last_insert_id),
                    ..ok.clone()
                };
                let mut payload = BytesMut::new();
                patched.encode(self.side(conn).capabilities, &mut payload);
                let mut out = BytesMut::with_capacity(payload.len() + HEADER_LEN);
                packet::encode(raw[3], &payload, &mut out);
                out
            }
            Outcome::ResultSet { status, .. } => {
                self.note_status(conn, *status);
                raw
            }
            // An ERR carries no status, but a deadlock's victim has lost its
            // whole transaction: the connection is out of it now.
            Outcome::Err(err) if err.code == ER_LOCK_DEADLOCK => {
                let status = self.side(conn).status & !SERVER_STATUS_IN_TRANS;
                self.note_status(conn, status);
                raw
            }
            _ => raw,
        }
    }

    /// Keeps a connection's status after a result. The own connection
    /// outside a transaction ends the transaction's affinity, whatever
    /// ended it (COMMIT as a query or as a prepared statement, autocommit).
    fn note_status(&mut self, conn: Conn, status: u16) {
        self.side(conn).status = status;
        if conn == Conn::Own && status & SERVER_STATUS_IN_TRANS == 0 {
            self.affinity.clear();
            self.own_writes.committed();
        }
    }

    /// Hands one physical packet to its sink.
    fn sink(&mut self, sink: Sink, mut raw: BytesMut, ends_result: bool) {
        match sink {
            Sink::Client => {
                raw[3] = self.seq;
                self.seq = self.seq.wrapping_add(1);
                self.client_out.extend_from_slice(&raw);
            }
            Sink::Swallow | Sink::Collect => {}
            Sink::Hold => self.held.push((raw.split_off(HEADER_LEN), ends_result)),
        }
    }

    /// Sends the held response to the client. With `status`, the last
    /// result's terminator carries it (the status after the proxy's
    /// statements, e.g. no longer in the transaction it opened).
    pub(super) fn release_held(&mut self, status: Option<u16>) {
        let held = std::mem::take(&mut self.held);
        let last_end = held.iter().rposition(|(_, end)| *end);
        let caps = self.own.capabilities;
        for (i, (mut payload, _)) in held.into_iter().enumerate() {
            if let (Some(status), true) = (status, Some(i) == last_end) {
                payload = with_status(payload, status & !SERVER_MORE_RESULTS_EXISTS, caps);
            }
            // Physical payloads of one logical packet stay split as they came.
            let len = (payload.len() as u32).to_le_bytes();
            self.client_out.put_slice(&len[..3]);
            self.client_out.put_u8(self.seq);
            self.client_out.extend_from_slice(&payload);
            self.seq = self.seq.wrapping_add(1);
        }
    }

    /// LOAD DATA LOCAL INFILE: the server asks for a client file. Relays
    /// the exchange when allowed; otherwise answers the client with an ERR
    /// (returned) and the server with an empty file.
    async fn local_infile(
        &mut self,
        conn: Conn,
        sink: Sink,
        request: BytesMut,
    ) -> Result<Option<ErrPacket>, SessionEnd> {
        let backend_seq = request[3].wrapping_add(1);
        let allowed = self.shared.snapshot().config.mysql.allow_local_infile;
        if !allowed || sink != Sink::Client {
            // Answer the server with an empty file, so it loads nothing and
            // stays in step; the client never sees the request.
            let mut out = BytesMut::new();
            packet::encode(backend_seq, &[], &mut out);
            let written = self.side(conn).stream.write_all(&out).await;
            written.map_err(|e| self.backend_lost(conn, &e.to_string()))?;
            let err = ErrPacket::new(
                code::NOT_ALLOWED,
                "42000",
                "switchyard: LOAD DATA LOCAL INFILE is refused by the proxy (it lets a server read files from the client's machine); set `mysql.allow_local_infile: true` in the proxy's config to allow it",
            );
            let mut payload = BytesMut::new();
            err.encode(&mut payload);
            let mut raw = BytesMut::new();
            packet::encode(self.seq, &payload, &mut raw);
            self.sink(sink, raw, true);
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => "mysql", "reason" => "local_infile_refused").increment(1);
            return Ok(Some(err));
        }
        self.sink(sink, request, false);
        self.flush().await?;
        let mut backend_seq = backend_seq;
        loop {
            while let Some(len) = packet::next_raw_len(&self.client_inbox) {
                let mut raw = self.client_inbox.split_to(len);
                raw[3] = backend_seq;
                backend_seq = backend_seq.wrapping_add(1);
                self.seq = self.seq.wrapping_add(1);
                let written = self.side(conn).stream.write_all(&raw).await;
                written.map_err(|e| self.backend_lost(conn, &e.to_string()))?;
                if len == HEADER_LEN {
                    return Ok(None);
                }
            }
            match self.client.read_buf(&mut self.client_inbox).await {
                Ok(0) | Err(_) => return Err(SessionEnd::ClientVanished),
                Ok(n) => count_bytes("client_to_server", n),
            }
        }
    }

    /// Reads more of a response from `conn`, watching the client meanwhile.
    async fn fill(&mut self, conn: Conn) -> Result<(), SessionEnd> {
        let Session {
            client,
            client_inbox,
            own,
            second,
            ..
        } = self;
        let side = match (conn, second.as_mut()) {
            (Conn::Second, Some(s)) => s,
            _ => own,
        };
        let watch_client = client_inbox.len() < (1 << 20);
        crate::relay::make_room(client_inbox);
        crate::relay::make_room(&mut side.inbox);
        let result = tokio::select! {
            r = side.stream.read_buf(&mut side.inbox) => r,
            r = client.read_buf(client_inbox), if watch_client => {
                return match r {
                    Ok(0) | Err(_) => Err(SessionEnd::ClientVanished),
                    Ok(n) => {
                        count_bytes("client_to_server", n);
                        Ok(())
                    }
                };
            }
        };
        match result {
            Ok(0) => Err(self.backend_lost(conn, "the server closed the connection")),
            Ok(n) => {
                count_bytes("server_to_client", n);
                Ok(())
            }
            Err(e) => Err(self.backend_lost(conn, &e.to_string())),
        }
    }
}

/// One physical packet holding `payload`, numbered `seq`.
fn reframed(seq: u8, payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(payload.len() + HEADER_LEN);
    packet::encode(seq, payload, &mut out);
    out
}

/// A binary row of the target re-encoded in the source's types; an ERR for
/// the client when a value does not fit them.
fn retyped_row(retype: &Retype, raw: &[u8]) -> Result<BytesMut, ErrPacket> {
    let payload = &raw[HEADER_LEN..];
    let converted = match payload.len() {
        MAX_PACKET_PAYLOAD => Err("a row of 16 MiB or more cannot be re-encoded".to_string()),
        _ => {
            let mut row = BytesMut::with_capacity(payload.len() + HEADER_LEN);
            row.put_slice(&raw[..HEADER_LEN]);
            retype.row(payload, &mut row).map(|()| row)
        }
    };
    converted
        .map(|mut row| {
            let len = (row.len() - HEADER_LEN) as u32;
            row[..3].copy_from_slice(&len.to_le_bytes()[..3]);
            row
        })
        .map_err(|why| {
            ErrPacket::new(
                code::OUT_OF_RANGE,
                "22003",
                format!("switchyard: the migration's target answered a value the source's column type cannot hold ({why}); keep this read on the source until the tables agree"),
            )
        })
}

/// A column count packet with the "metadata follows" byte of
/// MARIADB_CLIENT_CACHE_METADATA appended (the definitions do follow).
fn with_metadata_flag(mut raw: BytesMut) -> BytesMut {
    raw.put_u8(1);
    let len = ((raw.len() - HEADER_LEN) as u32).to_le_bytes();
    raw[..3].copy_from_slice(&len[..3]);
    raw
}

/// A result terminator (OK, 0xFE-OK or EOF) payload with another status.
fn with_status(payload: BytesMut, status: u16, caps: u32) -> BytesMut {
    match payload.first() {
        Some(0x00) => match OkPacket::parse(&payload, caps) {
            Ok(ok) => {
                let mut out = BytesMut::new();
                OkPacket { status, ..ok }.encode(caps, &mut out);
                out
            }
            Err(_) => payload,
        },
        Some(0xFE) if message::is_eof_packet(&payload) && payload.len() >= 5 => {
            let mut payload = payload;
            payload[3..5].copy_from_slice(&status.to_le_bytes());
            payload
        }
        Some(0xFE) if caps & CLIENT_DEPRECATE_EOF != 0 => match OkPacket::parse(&payload, caps) {
            Ok(ok) => {
                let mut out = BytesMut::new();
                OkPacket { status, ..ok }.encode_as_terminator(caps, &mut out);
                out
            }
            Err(_) => payload,
        },
        _ => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A column count from a connection without metadata caching, relayed
    /// to a client with it: the "metadata follows" byte is appended and the
    /// length and sequence id stay right.
    #[test]
    fn metadata_flag_is_appended_to_a_column_count() {
        let mut raw = BytesMut::new();
        packet::encode(5, &[3], &mut raw);
        let out = with_metadata_flag(raw);
        assert_eq!(&out[..], &[2, 0, 0, 5, 3, 1]);
        // A two-byte length-encoded count (251 columns) keeps its bytes.
        let mut raw = BytesMut::new();
        packet::encode(1, &[0xFC, 251, 0], &mut raw);
        assert_eq!(&with_metadata_flag(raw)[..], &[4, 0, 0, 1, 0xFC, 251, 0, 1]);
    }
}
