//! [`ResponseTracker`]: tells a relay where the server's response to one
//! command ends, without decoding rows.
//!
//! Fed every server payload after a command, in order, it follows the shape
//! of the response — OK, ERR, a result set (column count, column
//! definitions, EOF unless CLIENT_DEPRECATE_EOF, rows, EOF or 0xFE-OK), a
//! LOCAL INFILE request, the COM_STMT_PREPARE answer — and reports when a
//! result ends and whether another follows (SERVER_MORE_RESULTS_EXISTS).
//! Rows are only looked at by first byte and length. It can be fed physical
//! packets (split 16 MiB parts forwarded as they arrive) or reassembled
//! payloads. This module never does IO.

use super::error::CodecError;
use super::handshake::{CLIENT_DEPRECATE_EOF, MARIADB_CLIENT_CACHE_METADATA};
use super::message::{
    execute_opens_cursor, is_eof_packet, is_result_set_end, EofPacket, ErrPacket, OkPacket, Reader,
    StmtPrepareOk, COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID, COM_CHANGE_USER, COM_FIELD_LIST,
    COM_QUIT, COM_REGISTER_SLAVE, COM_STATISTICS, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_FETCH,
    COM_STMT_PREPARE, COM_STMT_SEND_LONG_DATA, SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_CURSOR_EXISTS,
};
use super::packet::MAX_PACKET_PAYLOAD;

/// The shape of the server's answer to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseShape {
    /// No answer at all (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
    None,
    /// OK, ERR, LOCAL INFILE request or result set(s): COM_QUERY,
    /// COM_STMT_EXECUTE, COM_PING, COM_INIT_DB and the other simple commands.
    Results {
        /// COM_STMT_EXECUTE asked for a cursor: the result set ends after its
        /// column definitions when the server opened one.
        cursor: bool,
    },
    /// COM_STMT_PREPARE: COM_STMT_PREPARE_OK, parameter and column
    /// definitions, or ERR.
    Prepare,
    /// COM_FIELD_LIST: column definitions up to EOF, or ERR.
    FieldList,
    /// COM_STMT_FETCH: rows up to EOF, or ERR.
    Fetch,
    /// COM_STATISTICS: one text packet.
    Text,
    /// Not a request/response command (COM_CHANGE_USER is an auth exchange,
    /// COM_BINLOG_DUMP a stream): the relay must handle it itself.
    Unsupported,
}

impl ResponseShape {
    /// The response shape of a client command payload.
    pub fn of_command(payload: &[u8]) -> Self {
        match payload.first() {
            None => Self::Unsupported,
            Some(&(COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA)) => Self::None,
            Some(&COM_STMT_PREPARE) => Self::Prepare,
            Some(&COM_FIELD_LIST) => Self::FieldList,
            Some(&COM_STMT_FETCH) => Self::Fetch,
            Some(&COM_STATISTICS) => Self::Text,
            Some(&COM_STMT_EXECUTE) => Self::Results {
                cursor: execute_opens_cursor(payload),
            },
            Some(
                &(COM_CHANGE_USER | COM_BINLOG_DUMP | COM_BINLOG_DUMP_GTID | COM_REGISTER_SLAVE),
            ) => Self::Unsupported,
            Some(_) => Self::Results { cursor: false },
        }
    }
}

/// How one result of a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An OK packet (statement without rows).
    Ok(OkPacket),
    /// An ERR packet; it always ends the whole response.
    Err(ErrPacket),
    /// A result set (or, after COM_STMT_FETCH, a batch of cursor rows).
    ResultSet {
        /// Number of columns (0 after COM_STMT_FETCH, which sends none).
        columns: u64,
        /// Rows seen.
        rows: u64,
        /// Status flags of the terminator.
        status: u16,
        /// Warnings of the terminator.
        warnings: u16,
    },
    /// COM_STMT_PREPARE succeeded; all definitions have been seen.
    Prepared(StmtPrepareOk),
    /// COM_FIELD_LIST's definitions or COM_STATISTICS's text were sent.
    Other,
}

/// What the last fed packet means for the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The response goes on: forward the packet and keep feeding.
    Continue,
    /// The server asks for a client file (LOAD DATA LOCAL INFILE). Forward
    /// the request, relay the client's packets up to and including its empty
    /// packet, then keep feeding server packets.
    LocalInfile {
        /// The file name the server asks for.
        filename: Vec<u8>,
    },
    /// A result ended. With `more_results` another result of the same
    /// response follows; otherwise the response is complete.
    ResultEnd {
        /// How the result ended.
        outcome: Outcome,
        /// Whether another result follows (SERVER_MORE_RESULTS_EXISTS).
        more_results: bool,
    },
}

/// Where the tracker stands within the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first packet of a result: OK, ERR, 0xFB or a column count.
    ResultStart,
    /// Column definitions still to come.
    Columns(u64),
    /// Expecting the EOF after the column definitions.
    ColumnsEof,
    /// Rows, up to a terminator.
    Rows,
    /// Expecting COM_STMT_PREPARE_OK or ERR.
    PrepareStart,
    /// Parameter definitions still to come (then the column definitions).
    PrepareParams(u64),
    /// Expecting the EOF after the parameter definitions.
    PrepareParamsEof,
    /// Column definitions of a prepared statement still to come.
    PrepareColumns(u64),
    /// Expecting the EOF after the prepared statement's column definitions.
    PrepareColumnsEof,
    /// COM_FIELD_LIST definitions, up to EOF.
    FieldList,
    /// Expecting COM_STATISTICS's text.
    Text,
    /// The response is complete.
    Done,
}

/// Follows the server's response to one command. See the module docs.
#[derive(Debug, Clone)]
pub struct ResponseTracker {
    /// The session's negotiated capabilities (DEPRECATE_EOF, SESSION_TRACK).
    capabilities: u32,
    /// MARIADB_CLIENT_CACHE_METADATA: column counts carry a "metadata
    /// follows" byte, and the definitions may be left out.
    cache_metadata: bool,
    /// Whether the command asked for a cursor.
    cursor: bool,
    /// Where the response stands.
    state: State,
    /// Columns of the current result set.
    columns: u64,
    /// Rows of the current result set.
    rows: u64,
    /// The prepare answer, kept until its definitions are through.
    prepared: StmtPrepareOk,
    /// The last physical packet was full, so the next one continues it and
    /// is not a packet of its own.
    continued: bool,
}

impl ResponseTracker {
    /// A tracker for a response of `shape`, with the session's capabilities.
    /// For [`ResponseShape::None`] it is complete from the start.
    pub fn new(shape: ResponseShape, capabilities: u32) -> Result<Self, CodecError> {
        let (state, cursor) = match shape {
            ResponseShape::None => (State::Done, false),
            ResponseShape::Results { cursor } => (State::ResultStart, cursor),
            ResponseShape::Prepare => (State::PrepareStart, false),
            ResponseShape::FieldList => (State::FieldList, false),
            ResponseShape::Fetch => (State::Rows, false),
            ResponseShape::Text => (State::Text, false),
            ResponseShape::Unsupported => return Err(CodecError::Untrackable),
        };
        Ok(Self {
            capabilities,
            cache_metadata: false,
            cursor,
            state,
            columns: 0,
            rows: 0,
            prepared: StmtPrepareOk::default(),
            continued: false,
        })
    }

    /// A tracker for the response to the client command `payload`.
    pub fn for_command(payload: &[u8], capabilities: u32) -> Result<Self, CodecError> {
        Self::new(ResponseShape::of_command(payload), capabilities)
    }

    /// The same tracker for a session with the MariaDB extended flags
    /// `mariadb_capabilities` (see [`MARIADB_CLIENT_CACHE_METADATA`]).
    pub fn with_mariadb_capabilities(mut self, mariadb_capabilities: u32) -> Self {
        self.cache_metadata = mariadb_capabilities & MARIADB_CLIENT_CACHE_METADATA != 0;
        self
    }

    /// Whether the next packet starts a result (and may be a column count).
    pub fn at_result_start(&self) -> bool {
        self.state == State::ResultStart
    }

    /// Whether the next physical packet is a column definition of a result
    /// set or of a prepare answer (not a parameter's).
    pub fn next_is_column_definition(&self) -> bool {
        !self.continued
            && match self.state {
                State::Columns(_) => true,
                State::PrepareColumns(left) => left > 0,
                _ => false,
            }
    }

    /// Whether the next physical packet starts a row or a result set's
    /// terminator.
    pub fn next_is_row(&self) -> bool {
        !self.continued && self.state == State::Rows
    }

    /// The column count of the result being read (a text row's width).
    pub fn columns(&self) -> u64 {
        self.columns
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds one reassembled payload (as from [`super::packet::decode`]).
    pub fn feed(&mut self, payload: &[u8]) -> Result<Progress, CodecError> {
        self.step(payload, payload.len())
    }

    /// Feeds the payload of one physical packet (as framed by
    /// [`super::packet::next_raw_len`], header removed). A full
    /// (`0xFFFFFF`-byte) packet and the packets continuing it count as one.
    pub fn feed_physical(&mut self, payload: &[u8]) -> Result<Progress, CodecError> {
        let full = payload.len() == MAX_PACKET_PAYLOAD;
        if std::mem::replace(&mut self.continued, full) {
            return Ok(Progress::Continue);
        }
        // A full packet is the head of a payload of at least 16 MiB: a row
        // or a huge column definition, never a terminator.
        self.step(payload, payload.len())
    }

    fn deprecate_eof(&self) -> bool {
        self.capabilities & CLIENT_DEPRECATE_EOF != 0
    }

    fn step(&mut self, payload: &[u8], len: usize) -> Result<Progress, CodecError> {
        let first = payload.first().copied();
        if first == Some(0xFF) && self.state != State::Done {
            // ERR can end any response, even in the middle of rows.
            self.state = State::Done;
            let err = ErrPacket::parse(payload)?;
            return Ok(self.end(Outcome::Err(err), 0));
        }
        match self.state {
            State::ResultStart => self.result_start(payload),
            State::Columns(left) => {
                self.state = match left - 1 {
                    0 if self.deprecate_eof() => State::Rows,
                    0 => State::ColumnsEof,
                    n => State::Columns(n),
                };
                Ok(Progress::Continue)
            }
            State::ColumnsEof => {
                let eof = EofPacket::parse(payload)?;
                if self.cursor && eof.status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                    // The rows stay on the server until COM_STMT_FETCH.
                    return Ok(self.result_set_end(eof.status, eof.warnings));
                }
                self.state = State::Rows;
                Ok(Progress::Continue)
            }
            State::Rows => match first {
                Some(b) if is_result_set_end(b, len, self.deprecate_eof()) => {
                    let (status, warnings) = self.terminator(payload)?;
                    Ok(self.result_set_end(status, warnings))
                }
                _ => {
                    self.rows += 1;
                    Ok(Progress::Continue)
                }
            },
            State::PrepareStart => {
                let ok = StmtPrepareOk::parse(payload)?;
                self.prepared = ok;
                self.state = State::PrepareParams(u64::from(ok.num_params));
                Ok(self.skip_finished_sections())
            }
            State::PrepareParams(left) => {
                self.state = State::PrepareParams(left - 1);
                Ok(self.skip_finished_sections())
            }
            State::PrepareParamsEof => {
                EofPacket::parse(payload)?;
                self.state = State::PrepareColumns(u64::from(self.prepared.num_columns));
                Ok(self.skip_finished_sections())
            }
            State::PrepareColumns(left) => {
                self.state = State::PrepareColumns(left - 1);
                Ok(self.skip_finished_sections())
            }
            State::PrepareColumnsEof => {
                EofPacket::parse(payload)?;
                Ok(self.end(Outcome::Prepared(self.prepared), 0))
            }
            State::FieldList => match first {
                Some(b) if is_result_set_end(b, len, true) => Ok(self.end(Outcome::Other, 0)),
                _ => Ok(Progress::Continue),
            },
            State::Text => Ok(self.end(Outcome::Other, 0)),
            State::Done => Err(CodecError::unexpected(
                "the response was already complete",
                payload,
            )),
        }
    }

    /// Moves past a finished (or empty) section of the prepare answer:
    /// to its EOF when the session has EOF packets and the section had
    /// definitions, else to the next section or the end.
    fn skip_finished_sections(&mut self) -> Progress {
        let eof = !self.deprecate_eof();
        match self.state {
            State::PrepareParams(0) if self.prepared.num_params > 0 && eof => {
                self.state = State::PrepareParamsEof;
                Progress::Continue
            }
            State::PrepareParams(0) => {
                self.state = State::PrepareColumns(u64::from(self.prepared.num_columns));
                self.skip_finished_sections()
            }
            State::PrepareColumns(0) if self.prepared.num_columns > 0 && eof => {
                self.state = State::PrepareColumnsEof;
                Progress::Continue
            }
            State::PrepareColumns(0) => self.end(Outcome::Prepared(self.prepared), 0),
            _ => Progress::Continue,
        }
    }

    fn result_start(&mut self, payload: &[u8]) -> Result<Progress, CodecError> {
        self.columns = 0;
        self.rows = 0;
        match payload.first() {
            Some(0x00) => {
                let ok = OkPacket::parse(payload, self.capabilities)?;
                let status = ok.status;
                Ok(self.end(Outcome::Ok(ok), status))
            }
            // COM_SET_OPTION and COM_DEBUG answer with a bare EOF (or, with
            // CLIENT_DEPRECATE_EOF, an OK with the 0xFE header). A column
            // count never starts with 0xFE: that would be 2^24 columns.
            Some(0xFE) => {
                let (status, warnings) = if is_eof_packet(payload) {
                    let eof = EofPacket::parse(payload)?;
                    (eof.status, eof.warnings)
                } else {
                    let ok = OkPacket::parse(payload, self.capabilities)?;
                    (ok.status, ok.warnings)
                };
                let ok = OkPacket {
                    status,
                    warnings,
                    ..OkPacket::default()
                };
                Ok(self.end(Outcome::Ok(ok), status))
            }
            Some(0xFB) => {
                // Still waiting for the OK/ERR after the client's file.
                Ok(Progress::LocalInfile {
                    filename: payload[1..].to_vec(),
                })
            }
            _ => {
                let mut r = Reader::new(payload, "column count");
                let columns = r.lenenc_int()?;
                if columns == 0 {
                    return Err(CodecError::malformed(
                        "column count",
                        "a result set has no columns",
                    ));
                }
                self.columns = columns;
                self.state = State::Columns(columns);
                if self.cache_metadata && r.u8()? == 0 {
                    // The client has the definitions from an earlier execute.
                    self.state = if self.deprecate_eof() {
                        State::Rows
                    } else {
                        State::ColumnsEof
                    };
                }
                Ok(Progress::Continue)
            }
        }
    }

    /// Status and warnings of a rows terminator (EOF, or OK with 0xFE).
    fn terminator(&self, payload: &[u8]) -> Result<(u16, u16), CodecError> {
        if self.deprecate_eof() {
            let ok = OkPacket::parse(payload, self.capabilities)?;
            Ok((ok.status, ok.warnings))
        } else {
            let eof = EofPacket::parse(payload)?;
            Ok((eof.status, eof.warnings))
        }
    }

    fn result_set_end(&mut self, status: u16, warnings: u16) -> Progress {
        let outcome = Outcome::ResultSet {
            columns: self.columns,
            rows: self.rows,
            status,
            warnings,
        };
        self.end(outcome, status)
    }

    /// Ends a result; goes on to the next one when the status says so.
    fn end(&mut self, outcome: Outcome, status: u16) -> Progress {
        let more_results =
            status & SERVER_MORE_RESULTS_EXISTS != 0 && !matches!(outcome, Outcome::Err(_));
        self.state = if more_results {
            State::ResultStart
        } else {
            State::Done
        };
        Progress::ResultEnd {
            outcome,
            more_results,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mysql::handshake::{CLIENT_PROTOCOL_41, CLIENT_SESSION_TRACK};
    use crate::wire::mysql::message::{
        put_lenenc_bytes, COM_PING, COM_QUERY, COM_SET_OPTION, CURSOR_TYPE_READ_ONLY,
        SERVER_STATUS_AUTOCOMMIT, SERVER_STATUS_LAST_ROW_SENT,
    };
    use bytes::BytesMut;

    const CLASSIC: u32 = CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK;
    const MODERN: u32 = CLASSIC | CLIENT_DEPRECATE_EOF;

    fn ok(status: u16) -> Vec<u8> {
        let mut out = BytesMut::new();
        OkPacket {
            affected_rows: 1,
            status,
            ..OkPacket::default()
        }
        .encode(MODERN, &mut out);
        out.to_vec()
    }

    fn terminator(caps: u32, status: u16) -> Vec<u8> {
        let mut out = BytesMut::new();
        if caps & CLIENT_DEPRECATE_EOF != 0 {
            OkPacket {
                status,
                info: b"some info".to_vec(),
                ..OkPacket::default()
            }
            .encode_as_terminator(caps, &mut out);
        } else {
            EofPacket {
                warnings: 0,
                status,
            }
            .encode(&mut out);
        }
        out.to_vec()
    }

    fn eof() -> Vec<u8> {
        terminator(CLASSIC, SERVER_STATUS_AUTOCOMMIT)
    }

    fn err() -> Vec<u8> {
        let mut out = BytesMut::new();
        ErrPacket::new(1146, "42S02", "Table 'app.nope' doesn't exist").encode(&mut out);
        out.to_vec()
    }

    fn column_def(name: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        for part in ["def", "app", "t", "t", name, name] {
            put_lenenc_bytes(&mut out, part.as_bytes());
        }
        out.extend_from_slice(&[0x0C, 0x21, 0, 0, 1, 0, 0xFD, 0, 0, 0, 0, 0]);
        out.to_vec()
    }

    /// Text row whose first column is NULL (0xFB) or a string.
    fn row(first: Option<&str>) -> Vec<u8> {
        let mut out = BytesMut::new();
        match first {
            None => out.extend_from_slice(&[0xFB]),
            Some(v) => put_lenenc_bytes(&mut out, v.as_bytes()),
        }
        put_lenenc_bytes(&mut out, b"x");
        out.to_vec()
    }

    /// A two-column result set with `rows` rows, as the server sends it.
    fn result_set(caps: u32, rows: usize, status: u16) -> Vec<Vec<u8>> {
        let mut packets = vec![vec![2], column_def("id"), column_def("name")];
        if caps & CLIENT_DEPRECATE_EOF == 0 {
            packets.push(eof());
        }
        for i in 0..rows {
            packets.push(row(if i % 2 == 0 { None } else { Some("v") }));
        }
        packets.push(terminator(caps, status));
        packets
    }

    /// Feeds all packets; every one but the last must be `Continue`
    /// (or a non-final ResultEnd); returns the progress of each.
    fn run(tracker: &mut ResponseTracker, packets: &[Vec<u8>]) -> Vec<Progress> {
        packets.iter().map(|p| tracker.feed(p).unwrap()).collect()
    }

    fn ends(progress: &[Progress]) -> Vec<(bool, &Outcome)> {
        progress
            .iter()
            .filter_map(|p| match p {
                Progress::ResultEnd {
                    outcome,
                    more_results,
                } => Some((*more_results, outcome)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn shapes_follow_the_command_byte() {
        assert_eq!(ResponseShape::of_command(&[COM_QUIT]), ResponseShape::None);
        assert_eq!(
            ResponseShape::of_command(&[COM_STMT_CLOSE, 1, 0, 0, 0]),
            ResponseShape::None
        );
        assert_eq!(
            ResponseShape::of_command(b"\x03SELECT 1"),
            ResponseShape::Results { cursor: false }
        );
        let execute = [
            COM_STMT_EXECUTE,
            1,
            0,
            0,
            0,
            CURSOR_TYPE_READ_ONLY,
            1,
            0,
            0,
            0,
        ];
        assert_eq!(
            ResponseShape::of_command(&execute),
            ResponseShape::Results { cursor: true }
        );
        assert_eq!(
            ResponseShape::of_command(&[COM_CHANGE_USER]),
            ResponseShape::Unsupported
        );
        assert!(ResponseTracker::for_command(&[COM_CHANGE_USER], MODERN).is_err());
        assert!(ResponseTracker::for_command(&[COM_QUIT], MODERN)
            .unwrap()
            .is_done());
    }

    #[test]
    fn ok_and_err_end_the_response() {
        for caps in [CLASSIC, MODERN] {
            let mut t = ResponseTracker::for_command(&[COM_PING], caps).unwrap();
            let p = t.feed(&ok(SERVER_STATUS_AUTOCOMMIT)).unwrap();
            assert!(matches!(
                p,
                Progress::ResultEnd {
                    outcome: Outcome::Ok(_),
                    more_results: false
                }
            ));
            assert!(t.is_done());
            assert!(t.feed(&ok(0)).is_err());

            let mut t = ResponseTracker::for_command(b"\x03SELECT * FROM nope", caps).unwrap();
            let p = t.feed(&err()).unwrap();
            let Progress::ResultEnd {
                outcome: Outcome::Err(e),
                more_results: false,
            } = p
            else {
                panic!("{p:?}")
            };
            assert_eq!(e.code, 1146);
        }
    }

    #[test]
    fn result_sets_end_at_their_terminator() {
        for caps in [CLASSIC, MODERN] {
            let packets = result_set(caps, 3, SERVER_STATUS_AUTOCOMMIT);
            let mut t = ResponseTracker::for_command(b"\x03SELECT", caps).unwrap();
            let progress = run(&mut t, &packets);
            assert!(progress[..progress.len() - 1]
                .iter()
                .all(|p| *p == Progress::Continue));
            assert_eq!(
                ends(&progress),
                vec![(
                    false,
                    &Outcome::ResultSet {
                        columns: 2,
                        rows: 3,
                        status: SERVER_STATUS_AUTOCOMMIT,
                        warnings: 0
                    }
                )]
            );
            assert!(t.is_done());
        }
    }

    #[test]
    fn a_row_starting_with_0xfe_is_not_a_terminator() {
        // A first column of 16 MiB or more is length-encoded with 0xFE and the
        // row is longer than any terminator.
        for caps in [CLASSIC, MODERN] {
            let mut big = vec![0xFE];
            big.extend_from_slice(&(MAX_PACKET_PAYLOAD as u64).to_le_bytes());
            big.resize(MAX_PACKET_PAYLOAD + 9, b'a');
            let mut t = ResponseTracker::for_command(b"\x03SELECT", caps).unwrap();
            let mut packets = result_set(caps, 0, 0);
            let term = packets.pop().unwrap();
            run(&mut t, &packets);
            assert_eq!(t.feed(&big).unwrap(), Progress::Continue);
            // Physically: one full packet, then its continuation (which
            // itself may start with 0xFE), then the terminator.
            assert_eq!(
                t.feed_physical(&big[..MAX_PACKET_PAYLOAD]).unwrap(),
                Progress::Continue
            );
            assert_eq!(
                t.feed_physical(&[0xFE, 0, 0, 0, 0]).unwrap(),
                Progress::Continue
            );
            let p = t.feed(&term).unwrap();
            assert!(matches!(
                p,
                Progress::ResultEnd {
                    outcome: Outcome::ResultSet { rows: 2, .. },
                    ..
                }
            ));
        }
    }

    #[test]
    fn multi_results_continue_until_the_last() {
        for caps in [CLASSIC, MODERN] {
            let more = SERVER_MORE_RESULTS_EXISTS | SERVER_STATUS_AUTOCOMMIT;
            let mut packets = result_set(caps, 1, more);
            packets.push(ok(more));
            packets.extend(result_set(caps, 2, more));
            packets.push(ok(SERVER_STATUS_AUTOCOMMIT));
            let mut t = ResponseTracker::for_command(b"\x03CALL p()", caps).unwrap();
            let progress = run(&mut t, &packets);
            let ends = ends(&progress);
            assert_eq!(
                ends.iter().map(|e| e.0).collect::<Vec<_>>(),
                vec![true, true, true, false]
            );
            assert!(matches!(ends[2].1, Outcome::ResultSet { rows: 2, .. }));
            assert!(t.is_done());
        }
    }

    #[test]
    fn err_in_the_middle_of_rows_ends_everything() {
        let mut packets = result_set(MODERN, 2, 0);
        packets.pop();
        packets.push(err());
        let mut t = ResponseTracker::for_command(b"\x03SELECT", MODERN).unwrap();
        let progress = run(&mut t, &packets);
        assert!(matches!(
            progress.last(),
            Some(Progress::ResultEnd {
                outcome: Outcome::Err(_),
                more_results: false
            })
        ));
        assert!(t.is_done());
    }

    #[test]
    fn local_infile_waits_for_the_final_ok() {
        let mut t = ResponseTracker::for_command(
            b"\x03LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE t",
            MODERN,
        )
        .unwrap();
        assert_eq!(
            t.feed(b"\xfbx.csv").unwrap(),
            Progress::LocalInfile {
                filename: b"x.csv".to_vec()
            }
        );
        assert!(!t.is_done());
        assert!(matches!(
            t.feed(&ok(0)).unwrap(),
            Progress::ResultEnd {
                outcome: Outcome::Ok(_),
                more_results: false
            }
        ));
    }

    #[test]
    fn prepare_answers_with_and_without_eof() {
        let header = |params: u16, columns: u16| {
            let mut out = BytesMut::new();
            StmtPrepareOk {
                statement_id: 1,
                num_columns: columns,
                num_params: params,
                warnings: 0,
            }
            .encode(&mut out);
            out.to_vec()
        };
        for (params, columns) in [(0, 0), (2, 0), (0, 3), (2, 3)] {
            for caps in [CLASSIC, MODERN] {
                let mut packets = vec![header(params, columns)];
                for (count, _) in [(params, "param"), (columns, "column")] {
                    packets.extend((0..count).map(|_| column_def("?")));
                    if count > 0 && caps & CLIENT_DEPRECATE_EOF == 0 {
                        packets.push(eof());
                    }
                }
                let mut t = ResponseTracker::for_command(b"\x16SELECT ?", caps).unwrap();
                let progress = run(&mut t, &packets);
                assert!(
                    progress[..progress.len() - 1]
                        .iter()
                        .all(|p| *p == Progress::Continue),
                    "{params} {columns} {caps:#x}"
                );
                let Some(Progress::ResultEnd {
                    outcome: Outcome::Prepared(ok),
                    more_results: false,
                }) = progress.last()
                else {
                    panic!("{params} {columns} {caps:#x}: {progress:?}")
                };
                assert_eq!((ok.num_params, ok.num_columns), (params, columns));
                assert!(t.is_done());
            }
        }
        let mut t = ResponseTracker::for_command(b"\x16SELEC", CLASSIC).unwrap();
        assert!(matches!(
            t.feed(&err()).unwrap(),
            Progress::ResultEnd {
                outcome: Outcome::Err(_),
                ..
            }
        ));
    }

    #[test]
    fn set_option_answered_by_a_bare_eof_or_ok_terminator() {
        let set_option = [COM_SET_OPTION, 0, 0];
        for caps in [CLASSIC, MODERN] {
            let mut t = ResponseTracker::for_command(&set_option, caps).unwrap();
            let progress = t.feed(&terminator(caps, SERVER_STATUS_AUTOCOMMIT)).unwrap();
            assert!(matches!(
                progress,
                Progress::ResultEnd {
                    outcome: Outcome::Ok(OkPacket {
                        status: SERVER_STATUS_AUTOCOMMIT,
                        ..
                    }),
                    more_results: false
                }
            ));
            assert!(t.is_done());
        }
    }

    #[test]
    fn cursor_execute_ends_after_metadata_and_fetch_reads_rows() {
        let execute = [
            COM_STMT_EXECUTE,
            1,
            0,
            0,
            0,
            CURSOR_TYPE_READ_ONLY,
            1,
            0,
            0,
            0,
        ];
        for caps in [CLASSIC, MODERN] {
            let mut packets = vec![vec![1], column_def("id")];
            packets.push(terminator(caps, SERVER_STATUS_CURSOR_EXISTS));
            let mut t = ResponseTracker::for_command(&execute, caps).unwrap();
            let progress = run(&mut t, &packets);
            assert!(matches!(
                progress.last(),
                Some(Progress::ResultEnd {
                    outcome: Outcome::ResultSet { rows: 0, .. },
                    more_results: false
                })
            ));
            assert!(t.is_done());

            let fetch = [COM_STMT_FETCH, 1, 0, 0, 0, 10, 0, 0, 0];
            let mut t = ResponseTracker::for_command(&fetch, caps).unwrap();
            // Binary rows start with 0x00, which must not read as OK here.
            let packets = vec![
                vec![0x00, 0x00, 1, 0, 0, 0],
                vec![0x00, 0x00, 2, 0, 0, 0],
                terminator(caps, SERVER_STATUS_LAST_ROW_SENT),
            ];
            let progress = run(&mut t, &packets);
            assert_eq!(
                ends(&progress),
                vec![(
                    false,
                    &Outcome::ResultSet {
                        columns: 0,
                        rows: 2,
                        status: SERVER_STATUS_LAST_ROW_SENT,
                        warnings: 0
                    }
                )]
            );
        }
    }

    #[test]
    fn binary_result_set_without_cursor() {
        let execute = [COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let mut packets = vec![
            vec![1],
            column_def("id"),
            eof(),
            vec![0x00, 0x00, 7, 0, 0, 0],
            eof(),
        ];
        let mut t = ResponseTracker::for_command(&execute, CLASSIC).unwrap();
        let progress = run(&mut t, &packets);
        assert!(matches!(
            progress.last(),
            Some(Progress::ResultEnd {
                outcome: Outcome::ResultSet { rows: 1, .. },
                more_results: false
            })
        ));
        packets.clear();
    }

    #[test]
    fn cached_metadata_column_counts_say_whether_definitions_follow() {
        let execute = [COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        for caps in [CLASSIC, MODERN] {
            let eof_after_columns = caps & CLIENT_DEPRECATE_EOF == 0;
            for follows in [1u8, 0] {
                let mut packets = vec![vec![2, follows]];
                if follows == 1 {
                    packets.extend([column_def("id"), column_def("k")]);
                }
                if eof_after_columns {
                    packets.push(eof());
                }
                packets.push(vec![0x00, 0x00, 7, 0, 0, 0, 9, 0, 0, 0]);
                packets.push(terminator(caps, SERVER_STATUS_AUTOCOMMIT));
                let mut t = ResponseTracker::for_command(&execute, caps)
                    .unwrap()
                    .with_mariadb_capabilities(MARIADB_CLIENT_CACHE_METADATA);
                assert!(t.at_result_start());
                let progress = run(&mut t, &packets);
                assert_eq!(
                    ends(&progress),
                    vec![(
                        false,
                        &Outcome::ResultSet {
                            columns: 2,
                            rows: 1,
                            status: SERVER_STATUS_AUTOCOMMIT,
                            warnings: 0
                        }
                    )],
                    "caps {caps:#x}, metadata follows {follows}"
                );
                assert!(t.is_done());
            }
        }
    }

    #[test]
    fn field_list_and_statistics() {
        for caps in [CLASSIC, MODERN] {
            let mut t = ResponseTracker::for_command(b"\x04t\0", caps).unwrap();
            let progress = run(
                &mut t,
                &[column_def("a"), column_def("b"), terminator(caps, 0)],
            );
            assert!(matches!(
                progress.last(),
                Some(Progress::ResultEnd {
                    outcome: Outcome::Other,
                    more_results: false
                })
            ));
        }
        let mut t = ResponseTracker::for_command(&[COM_STATISTICS], MODERN).unwrap();
        let p = t.feed(b"Uptime: 5  Threads: 1").unwrap();
        assert!(matches!(
            p,
            Progress::ResultEnd {
                outcome: Outcome::Other,
                more_results: false
            }
        ));
        let _ = COM_QUERY;
    }

    proptest::proptest! {
        #[test]
        fn never_panics(packets in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24), 0..12), caps in 0u32..2, command: u8) {
            let caps = if caps == 1 { MODERN } else { CLASSIC };
            if let Ok(mut t) = ResponseTracker::for_command(&[command, 1, 0, 0, 0, 1], caps) {
                for p in &packets {
                    let _ = t.feed(p);
                    let _ = t.feed_physical(p);
                }
            }
        }
    }
}
