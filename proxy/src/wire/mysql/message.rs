//! Command-phase messages: length-encoded integers and strings, OK / ERR /
//! EOF packets, command bytes, server status flags, COM_STMT_PREPARE_OK and
//! the statement id carried by the COM_STMT_* commands.
//!
//! Functions here take and produce *payloads* (no packet header; see
//! [`super::packet`] for framing). This module never does IO.

use bytes::{BufMut, BytesMut};

use super::error::CodecError;
use super::handshake::{CLIENT_PROTOCOL_41, CLIENT_QUERY_ATTRIBUTES, CLIENT_SESSION_TRACK};

// Command bytes: the first byte of every client payload in the command phase.
/// COM_SLEEP (internal to the server; never sent by clients).
pub const COM_SLEEP: u8 = 0x00;
/// COM_QUIT: close the connection; no response.
pub const COM_QUIT: u8 = 0x01;
/// COM_INIT_DB: change the default schema (`USE db`); OK or ERR.
pub const COM_INIT_DB: u8 = 0x02;
/// COM_QUERY: run SQL text; OK, ERR, a result set or a LOCAL INFILE request.
pub const COM_QUERY: u8 = 0x03;
/// COM_FIELD_LIST: column definitions of a table, ended by EOF (deprecated).
pub const COM_FIELD_LIST: u8 = 0x04;
/// COM_REFRESH: flush tables, logs, ... (deprecated); OK or ERR.
pub const COM_REFRESH: u8 = 0x07;
/// COM_STATISTICS: one human-readable status string (not an OK packet).
pub const COM_STATISTICS: u8 = 0x09;
/// COM_PROCESS_INFO: SHOW PROCESSLIST as a result set (deprecated).
pub const COM_PROCESS_INFO: u8 = 0x0A;
/// COM_PROCESS_KILL: kill a connection by id (deprecated for `KILL`); OK or ERR.
pub const COM_PROCESS_KILL: u8 = 0x0C;
/// COM_DEBUG: dump debug info to the server log; EOF or ERR.
pub const COM_DEBUG: u8 = 0x0D;
/// COM_PING: liveness check; OK.
pub const COM_PING: u8 = 0x0E;
/// COM_CHANGE_USER: re-authenticate on the same connection (an auth exchange).
pub const COM_CHANGE_USER: u8 = 0x11;
/// COM_BINLOG_DUMP: start a replication stream.
pub const COM_BINLOG_DUMP: u8 = 0x12;
/// COM_REGISTER_SLAVE: register a replica.
pub const COM_REGISTER_SLAVE: u8 = 0x15;
/// COM_STMT_PREPARE: prepare a statement; COM_STMT_PREPARE_OK (+ definitions) or ERR.
pub const COM_STMT_PREPARE: u8 = 0x16;
/// COM_STMT_EXECUTE: execute a prepared statement; like COM_QUERY, rows in binary form.
pub const COM_STMT_EXECUTE: u8 = 0x17;
/// COM_STMT_SEND_LONG_DATA: stream a parameter value; no response.
pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
/// COM_STMT_CLOSE: drop a prepared statement; no response.
pub const COM_STMT_CLOSE: u8 = 0x19;
/// COM_STMT_RESET: reset long data and cursor of a statement; OK or ERR.
pub const COM_STMT_RESET: u8 = 0x1A;
/// COM_SET_OPTION: multi-statements on/off; EOF (or OK) or ERR.
pub const COM_SET_OPTION: u8 = 0x1B;
/// COM_STMT_FETCH: fetch rows from an open cursor; rows then EOF, or ERR.
pub const COM_STMT_FETCH: u8 = 0x1C;
/// COM_BINLOG_DUMP_GTID: start a GTID replication stream.
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1E;
/// COM_RESET_CONNECTION: reset session state without re-authenticating; OK or ERR.
pub const COM_RESET_CONNECTION: u8 = 0x1F;
/// COM_STMT_BULK_EXECUTE (MariaDB): array binding; like COM_STMT_EXECUTE.
pub const COM_STMT_BULK_EXECUTE: u8 = 0xFA;

/// `COM_STMT_EXECUTE` flag: open a read-only cursor (rows come by COM_STMT_FETCH).
pub const CURSOR_TYPE_READ_ONLY: u8 = 0x01;

// Server status flags (OK and EOF packets).
/// A transaction is open.
pub const SERVER_STATUS_IN_TRANS: u16 = 0x0001;
/// Autocommit is on.
pub const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;
/// Another result of the same response follows.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// A cursor is open for the statement (its rows come by COM_STMT_FETCH).
pub const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;
/// The cursor has sent its last row.
pub const SERVER_STATUS_LAST_ROW_SENT: u16 = 0x0080;
/// The result set holds OUT parameters of a stored procedure.
pub const SERVER_PS_OUT_PARAMS: u16 = 0x1000;
/// The open transaction is read-only.
pub const SERVER_STATUS_IN_TRANS_READONLY: u16 = 0x2000;
/// The OK packet carries session-state changes (with CLIENT_SESSION_TRACK).
pub const SERVER_SESSION_STATE_CHANGED: u16 = 0x4000;

// Error codes the proxy itself sends.
/// ER_HANDSHAKE_ERROR: bad handshake.
pub const ER_HANDSHAKE_ERROR: u16 = 1043;
/// ER_ACCESS_DENIED_ERROR: wrong user or password.
pub const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// ER_UNKNOWN_COM_ERROR: a command the proxy does not relay.
pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
/// ER_UNKNOWN_STMT_HANDLER: unknown prepared statement id.
pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
/// ER_NOT_SUPPORTED_AUTH_MODE: the client cannot use the required auth plugin.
pub const ER_NOT_SUPPORTED_AUTH_MODE: u16 = 1251;

/// A cursor over a payload; every read checks bounds and reports the message
/// name on failure, so malformed input is an error and never a panic.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// The whole payload.
    buf: &'a [u8],
    /// Offset of the next unread byte.
    pos: usize,
    /// Message name for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`; `what` names the message in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next byte, without consuming it.
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(CodecError::truncated(self.what))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Everything left (`string<EOF>`).
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    /// A little-endian `int<2>`.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian `int<3>`.
    pub fn u24(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// A little-endian `int<4>`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A little-endian `int<8>`.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.bytes(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// An `int<lenenc>`. `0xFB` (NULL in rows) and `0xFF` are not integers here.
    pub fn lenenc_int(&mut self) -> Result<u64, CodecError> {
        match self.u8()? {
            b @ 0..=0xFA => Ok(u64::from(b)),
            0xFC => self.u16().map(u64::from),
            0xFD => self.u24().map(u64::from),
            0xFE => self.u64(),
            _ => Err(CodecError::malformed(
                self.what,
                "a length-encoded integer starts with 0xFB or 0xFF",
            )),
        }
    }

    /// A `string<lenenc>`.
    pub fn lenenc_bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.lenenc_int()?;
        let len = usize::try_from(len).map_err(|_| CodecError::truncated(self.what))?;
        self.bytes(len)
    }

    /// A `string<NUL>`. A missing terminator at the very end is tolerated
    /// (some servers omit it after the last field), and consumes the rest.
    pub fn null_terminated(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(i) => {
                self.pos += i + 1;
                &rest[..i]
            }
            None => {
                self.pos = self.buf.len();
                rest
            }
        }
    }
}

/// Appends an `int<lenenc>`.
pub fn put_lenenc_int(out: &mut BytesMut, value: u64) {
    if value < 0xFB {
        out.put_u8(value as u8);
    } else if value <= 0xFFFF {
        out.put_u8(0xFC);
        out.put_u16_le(value as u16);
    } else if value <= 0xFF_FFFF {
        out.put_u8(0xFD);
        out.put_slice(&(value as u32).to_le_bytes()[..3]);
    } else {
        out.put_u8(0xFE);
        out.put_u64_le(value);
    }
}

/// Appends a `string<lenenc>`.
pub fn put_lenenc_bytes(out: &mut BytesMut, value: &[u8]) {
    put_lenenc_int(out, value.len() as u64);
    out.put_slice(value);
}

/// Appends a `string<NUL>`.
pub fn put_null_terminated(out: &mut BytesMut, value: &[u8]) {
    out.put_slice(value);
    out.put_u8(0);
}

/// An OK packet: the command succeeded. Also the result-set terminator
/// (with a `0xFE` header) when CLIENT_DEPRECATE_EOF is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OkPacket {
    /// Rows changed by the statement (or matched, with CLIENT_FOUND_ROWS).
    pub affected_rows: u64,
    /// The AUTO_INCREMENT value of the first inserted row, or 0.
    pub last_insert_id: u64,
    /// Server status flags (`SERVER_*`).
    pub status: u16,
    /// Number of warnings the statement raised.
    pub warnings: u16,
    /// Human-readable info ("Rows matched: 1 Changed: 1 Warnings: 0").
    pub info: Vec<u8>,
    /// Raw session-state-change records (only with CLIENT_SESSION_TRACK and
    /// SERVER_SESSION_STATE_CHANGED); kept opaque so they relay unchanged.
    pub session_state: Vec<u8>,
}

impl OkPacket {
    /// Whether another result of the same response follows.
    pub fn more_results(&self) -> bool {
        self.status & SERVER_MORE_RESULTS_EXISTS != 0
    }

    /// Parses an OK packet (header `0x00`, or `0xFE` as a DEPRECATE_EOF
    /// terminator). `capabilities` are the session's negotiated flags; the
    /// info string is read leniently, so a server that sends session-track
    /// data the caller did not expect still parses.
    pub fn parse(payload: &[u8], capabilities: u32) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload, "OK packet");
        let header = r.u8()?;
        if header != 0x00 && header != 0xFE {
            return Err(CodecError::malformed(
                "OK packet",
                "the header is neither 0x00 nor 0xFE",
            ));
        }
        let affected_rows = r.lenenc_int()?;
        let last_insert_id = r.lenenc_int()?;
        let mut ok = OkPacket {
            affected_rows,
            last_insert_id,
            ..Self::default()
        };
        if capabilities & CLIENT_PROTOCOL_41 != 0 {
            ok.status = r.u16()?;
            ok.warnings = r.u16()?;
        }
        if r.is_empty() {
            return Ok(ok);
        }
        if capabilities & CLIENT_SESSION_TRACK == 0 {
            ok.info = r.rest().to_vec();
            return Ok(ok);
        }
        let mut tracked = r.clone();
        match tracked.lenenc_bytes() {
            Ok(info) => {
                ok.info = info.to_vec();
                if ok.status & SERVER_SESSION_STATE_CHANGED != 0 && !tracked.is_empty() {
                    ok.session_state = tracked.lenenc_bytes().unwrap_or_default().to_vec();
                }
            }
            // Not length-encoded after all: take it as plain text.
            Err(_) => ok.info = r.rest().to_vec(),
        }
        Ok(ok)
    }

    /// Appends this OK packet's payload (header `0x00`).
    pub fn encode(&self, capabilities: u32, out: &mut BytesMut) {
        self.encode_with_header(0x00, capabilities, out);
    }

    /// Appends this OK packet with the `0xFE` header that ends a result set
    /// when CLIENT_DEPRECATE_EOF is on.
    pub fn encode_as_terminator(&self, capabilities: u32, out: &mut BytesMut) {
        self.encode_with_header(0xFE, capabilities, out);
    }

    fn encode_with_header(&self, header: u8, capabilities: u32, out: &mut BytesMut) {
        out.put_u8(header);
        put_lenenc_int(out, self.affected_rows);
        put_lenenc_int(out, self.last_insert_id);
        out.put_u16_le(self.status);
        out.put_u16_le(self.warnings);
        if capabilities & CLIENT_SESSION_TRACK != 0 {
            let state_changed = self.status & SERVER_SESSION_STATE_CHANGED != 0;
            if state_changed || !self.info.is_empty() {
                put_lenenc_bytes(out, &self.info);
            }
            if state_changed {
                put_lenenc_bytes(out, &self.session_state);
            }
        } else {
            out.put_slice(&self.info);
        }
    }
}

/// An ERR packet: the command (or login) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// MySQL error number (e.g. 1045 access denied).
    pub code: u16,
    /// Five-character SQLSTATE (e.g. `28000`); `HY000` when the server sent none.
    pub sql_state: [u8; 5],
    /// The error message.
    pub message: String,
}

impl ErrPacket {
    /// An ERR packet with the given code, SQLSTATE (5 ASCII characters; other
    /// lengths become `HY000`) and message.
    pub fn new(code: u16, sql_state: &str, message: impl Into<String>) -> Self {
        let sql_state = <[u8; 5]>::try_from(sql_state.as_bytes()).unwrap_or(*b"HY000");
        Self {
            code,
            sql_state,
            message: message.into(),
        }
    }

    /// The standard "Access denied" error, worded like the server's.
    pub fn access_denied(user: &str, host: &str, using_password: bool) -> Self {
        let using = if using_password { "YES" } else { "NO" };
        Self::new(
            ER_ACCESS_DENIED_ERROR,
            "28000",
            format!("Access denied for user '{user}'@'{host}' (using password: {using})"),
        )
    }

    /// The SQLSTATE as text.
    pub fn sql_state_str(&self) -> &str {
        std::str::from_utf8(&self.sql_state).unwrap_or("HY000")
    }

    /// Parses an ERR packet. The `#` + SQLSTATE marker is optional, as it is
    /// in errors sent before capabilities are agreed.
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload, "ERR packet");
        if r.u8()? != 0xFF {
            return Err(CodecError::malformed(
                "ERR packet",
                "the header is not 0xFF",
            ));
        }
        let code = r.u16()?;
        let mut sql_state = *b"HY000";
        if r.peek() == Some(b'#') && r.remaining() >= 6 {
            r.u8()?;
            sql_state.copy_from_slice(r.bytes(5)?);
        }
        let message = String::from_utf8_lossy(r.rest()).into_owned();
        Ok(Self {
            code,
            sql_state,
            message,
        })
    }

    /// Appends this ERR packet's payload (4.1 format, with the SQLSTATE).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(0xFF);
        out.put_u16_le(self.code);
        out.put_u8(b'#');
        out.put_slice(&self.sql_state);
        out.put_slice(self.message.as_bytes());
    }
}

/// A (pre-DEPRECATE_EOF) EOF packet: ends column definitions and rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EofPacket {
    /// Number of warnings.
    pub warnings: u16,
    /// Server status flags (`SERVER_*`).
    pub status: u16,
}

impl EofPacket {
    /// Parses an EOF packet: `0xFE` and fewer than 9 bytes. The 1-byte
    /// pre-4.1 form parses with zero warnings and status.
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        if !is_eof_packet(payload) {
            return Err(CodecError::malformed(
                "EOF packet",
                "it is not 0xFE followed by at most 8 bytes",
            ));
        }
        if payload.len() < 5 {
            return Ok(Self::default());
        }
        let mut r = Reader::new(&payload[1..], "EOF packet");
        Ok(Self {
            warnings: r.u16()?,
            status: r.u16()?,
        })
    }

    /// Appends this EOF packet's payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(0xFE);
        out.put_u16_le(self.warnings);
        out.put_u16_le(self.status);
    }
}

/// Whether a payload is a classic EOF packet (`0xFE`, under 9 bytes). A row
/// whose first column is at least 16 MiB also starts with `0xFE`, but is long.
pub fn is_eof_packet(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFE) && payload.len() < 9
}

/// Whether a payload is an OK packet (`0x00` header). Only meaningful where
/// the protocol expects OK or something else, not among binary rows.
pub fn is_ok_packet(payload: &[u8]) -> bool {
    payload.first() == Some(&0x00)
}

/// Whether a payload is an ERR packet (`0xFF` header).
pub fn is_err_packet(payload: &[u8]) -> bool {
    payload.first() == Some(&0xFF)
}

/// Whether `payload`, read where a row may come, is the end of the rows:
/// the EOF packet, or with CLIENT_DEPRECATE_EOF an OK packet with a `0xFE`
/// header (any length below 16 MiB, since it may carry info and session
/// state). `payload_len` is the length of the whole packet, which may be
/// larger than the slice when a relay looks only at the first bytes. An
/// ERR packet also ends the rows, and is not covered here.
pub fn is_result_set_end(first_byte: u8, payload_len: usize, deprecate_eof: bool) -> bool {
    first_byte == 0xFE
        && if deprecate_eof {
            payload_len < super::packet::MAX_PACKET_PAYLOAD
        } else {
            payload_len < 9
        }
}

/// The response to COM_STMT_PREPARE when it succeeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StmtPrepareOk {
    /// The server's id for the statement.
    pub statement_id: u32,
    /// Columns of the statement's result set (0: no result set).
    pub num_columns: u16,
    /// Number of `?` placeholders.
    pub num_params: u16,
    /// Warnings raised while preparing.
    pub warnings: u16,
}

impl StmtPrepareOk {
    /// Parses COM_STMT_PREPARE_OK (`0x00`, id, columns, params, filler, warnings).
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(payload, "COM_STMT_PREPARE_OK");
        if r.u8()? != 0x00 {
            return Err(CodecError::malformed(
                "COM_STMT_PREPARE_OK",
                "the header is not 0x00",
            ));
        }
        let statement_id = r.u32()?;
        let num_columns = r.u16()?;
        let num_params = r.u16()?;
        let mut warnings = 0;
        if r.remaining() >= 3 {
            r.u8()?;
            warnings = r.u16()?;
        }
        Ok(Self {
            statement_id,
            num_columns,
            num_params,
            warnings,
        })
    }

    /// Appends this COM_STMT_PREPARE_OK payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(0x00);
        out.put_u32_le(self.statement_id);
        out.put_u16_le(self.num_columns);
        out.put_u16_le(self.num_params);
        out.put_u8(0);
        out.put_u16_le(self.warnings);
    }
}

/// Whether a command payload starts with a statement id at bytes 1..5.
fn carries_statement_id(command: u8) -> bool {
    matches!(
        command,
        COM_STMT_EXECUTE
            | COM_STMT_CLOSE
            | COM_STMT_RESET
            | COM_STMT_SEND_LONG_DATA
            | COM_STMT_FETCH
            | COM_STMT_BULK_EXECUTE
    )
}

/// The statement id of a COM_STMT_EXECUTE / CLOSE / RESET / SEND_LONG_DATA /
/// FETCH (or MariaDB BULK_EXECUTE) payload; `None` for other payloads.
/// MariaDB's `0xFFFFFFFF` ("the statement prepared last") is returned as is.
pub fn statement_id(payload: &[u8]) -> Option<u32> {
    let command = *payload.first()?;
    if !carries_statement_id(command) {
        return None;
    }
    let id = payload.get(1..5)?;
    Some(u32::from_le_bytes([id[0], id[1], id[2], id[3]]))
}

/// Rewrites, in place, the statement id of a statement command (see
/// [`statement_id`]) or of a COM_STMT_PREPARE_OK response (`0x00` header),
/// which keep the id at the same offset. Returns the id it replaced. The
/// relay uses this to map client ids to the backend's ids and back.
pub fn set_statement_id(payload: &mut [u8], id: u32) -> Result<u32, CodecError> {
    let first = payload.first().copied();
    if !first.is_some_and(|c| c == 0x00 || carries_statement_id(c)) || payload.len() < 5 {
        return Err(CodecError::malformed(
            "statement command",
            "it is not a COM_STMT_* command or COM_STMT_PREPARE_OK with a statement id",
        ));
    }
    let old = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
    payload[1..5].copy_from_slice(&id.to_le_bytes());
    Ok(old)
}

/// Where a COM_STMT_EXECUTE with `params` placeholders keeps its
/// "new params bound" flag: after the command, id, flags, iteration count
/// and NULL bitmap. `None` without placeholders or when too short.
fn bound_flag_at(payload: &[u8], params: u16) -> Option<usize> {
    if params == 0 || payload.first() != Some(&COM_STMT_EXECUTE) {
        return None;
    }
    let at = 10 + usize::from(params).div_ceil(8);
    (payload.len() > at).then_some(at)
}

/// The parameter types a COM_STMT_EXECUTE binds (two bytes each), when it
/// sends them (the "new params bound" flag is set). A client sends them on
/// a statement's first execute and may leave them out after.
pub fn execute_param_types(payload: &[u8], params: u16) -> Option<&[u8]> {
    let at = bound_flag_at(payload, params)?;
    if payload[at] != 1 {
        return None;
    }
    payload.get(at + 1..at + 1 + 2 * usize::from(params))
}

/// A COM_STMT_EXECUTE that sends no parameter types, rewritten to bind
/// `types` (taken from an earlier execute of the same client statement):
/// a statement prepared under another form has never seen them.
pub fn with_param_types(payload: &[u8], params: u16, types: &[u8]) -> Option<Vec<u8>> {
    let at = bound_flag_at(payload, params)?;
    if payload[at] != 0 || types.len() != 2 * usize::from(params) {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() + types.len());
    out.extend_from_slice(&payload[..at]);
    out.push(1);
    out.extend_from_slice(types);
    out.extend_from_slice(&payload[at + 1..]);
    Some(out)
}

/// The values a COM_STMT_EXECUTE binds, as text, for routing on a key
/// value: integers in decimal, strings as sent, NULL and other types
/// `None`. `types` are the ones bound earlier, for an execute that leaves
/// them out. `None` when the payload cannot be read.
pub fn execute_params_text(
    payload: &[u8],
    params: u16,
    earlier: Option<&[u8]>,
) -> Option<Vec<Option<String>>> {
    use mysql_common::constants::{ColumnFlags, ColumnType};
    use mysql_common::io::ParseBuf;
    use mysql_common::value::{BinValue, Value, ValueDeserializer};
    let at = bound_flag_at(payload, params)?;
    let n = usize::from(params);
    let nulls = &payload[10..at];
    let (types, mut rest) = if payload[at] == 1 {
        let types = payload.get(at + 1..at + 1 + 2 * n)?;
        (types, &payload[at + 1 + 2 * n..])
    } else {
        (earlier?, &payload[at + 1..])
    };
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            values.push(None);
            continue;
        }
        let column_type = ColumnType::try_from(types[2 * i]).ok()?;
        let flags = if types[2 * i + 1] & 0x80 != 0 {
            ColumnFlags::UNSIGNED_FLAG
        } else {
            ColumnFlags::empty()
        };
        let mut buf = ParseBuf(rest);
        let value: ValueDeserializer<BinValue> = buf.parse((column_type, flags)).ok()?;
        rest = buf.0;
        values.push(match value.0 {
            Value::Int(v) => Some(v.to_string()),
            Value::UInt(v) => Some(v.to_string()),
            Value::Bytes(b) => String::from_utf8(b).ok(),
            _ => None,
        });
    }
    Some(values)
}

/// Whether a COM_STMT_EXECUTE payload asks for a cursor (its rows then come
/// by COM_STMT_FETCH, not in the execute response).
pub fn execute_opens_cursor(payload: &[u8]) -> bool {
    payload.first() == Some(&COM_STMT_EXECUTE)
        && payload.get(5).is_some_and(|flags| flags & 0x07 != 0)
}

/// The SQL text of a COM_QUERY payload. With CLIENT_QUERY_ATTRIBUTES the
/// text follows a parameter count and a parameter-set count; a query that
/// carries attributes is refused, because finding its text would need the
/// binary values decoded (the proxy does not offer the flag to clients).
pub fn query_text(payload: &[u8], capabilities: u32) -> Result<&[u8], CodecError> {
    let mut r = Reader::new(payload, "COM_QUERY");
    if r.u8()? != COM_QUERY {
        return Err(CodecError::malformed(
            "COM_QUERY",
            "the command byte is not 0x03",
        ));
    }
    if capabilities & CLIENT_QUERY_ATTRIBUTES != 0 {
        let params = r.lenenc_int()?;
        let _sets = r.lenenc_int()?;
        if params != 0 {
            return Err(CodecError::malformed(
                "COM_QUERY",
                "query attributes are not supported",
            ));
        }
    }
    Ok(r.rest())
}

/// The schema name of a COM_INIT_DB payload.
pub fn init_db_schema(payload: &[u8]) -> Option<&[u8]> {
    (payload.first() == Some(&COM_INIT_DB)).then(|| &payload[1..])
}

/// The readable name of a command byte, for logs and metrics labels.
pub fn command_name(command: u8) -> &'static str {
    match command {
        COM_SLEEP => "COM_SLEEP",
        COM_QUIT => "COM_QUIT",
        COM_INIT_DB => "COM_INIT_DB",
        COM_QUERY => "COM_QUERY",
        COM_FIELD_LIST => "COM_FIELD_LIST",
        COM_REFRESH => "COM_REFRESH",
        COM_STATISTICS => "COM_STATISTICS",
        COM_PROCESS_INFO => "COM_PROCESS_INFO",
        COM_PROCESS_KILL => "COM_PROCESS_KILL",
        COM_DEBUG => "COM_DEBUG",
        COM_PING => "COM_PING",
        COM_CHANGE_USER => "COM_CHANGE_USER",
        COM_BINLOG_DUMP => "COM_BINLOG_DUMP",
        COM_REGISTER_SLAVE => "COM_REGISTER_SLAVE",
        COM_STMT_PREPARE => "COM_STMT_PREPARE",
        COM_STMT_EXECUTE => "COM_STMT_EXECUTE",
        COM_STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        COM_STMT_CLOSE => "COM_STMT_CLOSE",
        COM_STMT_RESET => "COM_STMT_RESET",
        COM_SET_OPTION => "COM_SET_OPTION",
        COM_STMT_FETCH => "COM_STMT_FETCH",
        COM_BINLOG_DUMP_GTID => "COM_BINLOG_DUMP_GTID",
        COM_RESET_CONNECTION => "COM_RESET_CONNECTION",
        COM_STMT_BULK_EXECUTE => "COM_STMT_BULK_EXECUTE",
        _ => "COM_UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mysql::handshake::CLIENT_DEPRECATE_EOF;
    use proptest::prelude::*;

    const CAPS41: u32 = CLIENT_PROTOCOL_41;
    const CAPS_TRACK: u32 = CLIENT_PROTOCOL_41 | CLIENT_SESSION_TRACK;

    #[test]
    fn lenenc_ints_use_the_shortest_form_and_round_trip() {
        let cases: [(u64, &[u8]); 7] = [
            (0, &[0]),
            (250, &[250]),
            (251, &[0xFC, 251, 0]),
            (0xFFFF, &[0xFC, 0xFF, 0xFF]),
            (0x1_0000, &[0xFD, 0, 0, 1]),
            (0xFF_FFFF, &[0xFD, 0xFF, 0xFF, 0xFF]),
            (0x100_0000, &[0xFE, 0, 0, 0, 1, 0, 0, 0, 0]),
        ];
        for (value, bytes) in cases {
            let mut out = BytesMut::new();
            put_lenenc_int(&mut out, value);
            assert_eq!(&out[..], bytes, "{value}");
            assert_eq!(Reader::new(bytes, "t").lenenc_int().unwrap(), value);
        }
        assert!(Reader::new(&[0xFB], "t").lenenc_int().is_err());
        assert!(Reader::new(&[0xFF], "t").lenenc_int().is_err());
        assert!(Reader::new(&[0xFD, 1], "t").lenenc_int().is_err());
    }

    #[test]
    fn lenenc_strings_round_trip() {
        let mut out = BytesMut::new();
        put_lenenc_bytes(&mut out, b"def");
        put_null_terminated(&mut out, b"root");
        let mut r = Reader::new(&out, "t");
        assert_eq!(r.lenenc_bytes().unwrap(), b"def");
        assert_eq!(r.null_terminated(), b"root");
        assert!(r.is_empty());
        assert!(Reader::new(&[5, b'a'], "t").lenenc_bytes().is_err());
    }

    #[test]
    fn ok_packet_round_trips_with_and_without_session_track() {
        let ok = OkPacket {
            affected_rows: 3,
            last_insert_id: 70000,
            status: SERVER_STATUS_AUTOCOMMIT,
            warnings: 1,
            info: b"Rows matched: 3  Changed: 3  Warnings: 1".to_vec(),
            session_state: vec![],
        };
        for caps in [CAPS41, CAPS_TRACK] {
            let mut out = BytesMut::new();
            ok.encode(caps, &mut out);
            assert_eq!(OkPacket::parse(&out, caps).unwrap(), ok);
        }
        let tracked = OkPacket {
            status: SERVER_SESSION_STATE_CHANGED,
            session_state: b"\x01\x05\x04test".to_vec(),
            ..OkPacket::default()
        };
        let mut out = BytesMut::new();
        tracked.encode(CAPS_TRACK, &mut out);
        assert_eq!(OkPacket::parse(&out, CAPS_TRACK).unwrap(), tracked);
    }

    #[test]
    fn ok_packet_parse_is_lenient() {
        // Minimal OK as sent by a server: no info at all.
        let ok = OkPacket::parse(&[0, 0, 0, 2, 0, 0, 0], CAPS_TRACK).unwrap();
        assert_eq!(ok.status, SERVER_STATUS_AUTOCOMMIT);
        // Session-track data when the caller negotiated none: kept as info.
        let ok = OkPacket::parse(&[0, 1, 0, 0, 0x40, 0, 0, 3, 1, 2, 3], CAPS41).unwrap();
        assert_eq!(ok.info, vec![3, 1, 2, 3]);
        // A DEPRECATE_EOF terminator.
        let mut out = BytesMut::new();
        OkPacket::default().encode_as_terminator(CAPS41, &mut out);
        assert_eq!(out[0], 0xFE);
        assert!(OkPacket::parse(&out, CAPS41).is_ok());
        assert!(OkPacket::parse(&[0xFF, 0, 0], CAPS41).is_err());
    }

    #[test]
    fn err_packet_round_trips_and_tolerates_a_missing_sql_state() {
        let err = ErrPacket::access_denied("app", "10.0.0.1", true);
        let mut out = BytesMut::new();
        err.encode(&mut out);
        let parsed = ErrPacket::parse(&out).unwrap();
        assert_eq!(parsed, err);
        assert_eq!(parsed.sql_state_str(), "28000");
        assert_eq!(
            parsed.message,
            "Access denied for user 'app'@'10.0.0.1' (using password: YES)"
        );
        let bare = ErrPacket::parse(b"\xff\x10\x04Too many connections").unwrap();
        assert_eq!((bare.code, bare.sql_state_str()), (1040, "HY000"));
        assert_eq!(bare.message, "Too many connections");
    }

    #[test]
    fn eof_packet_round_trips_and_is_told_from_long_rows() {
        let eof = EofPacket {
            warnings: 2,
            status: SERVER_MORE_RESULTS_EXISTS,
        };
        let mut out = BytesMut::new();
        eof.encode(&mut out);
        assert_eq!(&out[..], &[0xFE, 2, 0, 8, 0]);
        assert_eq!(EofPacket::parse(&out).unwrap(), eof);
        assert!(is_result_set_end(0xFE, 5, false));
        assert!(!is_result_set_end(0xFE, 9, false));
        assert!(is_result_set_end(0xFE, 40, true));
        assert!(!is_result_set_end(0xFE, 0xFF_FFFF, true));
        assert!(!is_result_set_end(0x03, 5, true));
        let _ = CLIENT_DEPRECATE_EOF;
    }

    #[test]
    fn prepare_ok_parses_and_ids_rewrite_in_place() {
        let prepared = StmtPrepareOk {
            statement_id: 7,
            num_columns: 2,
            num_params: 1,
            warnings: 0,
        };
        let mut out = BytesMut::new();
        prepared.encode(&mut out);
        assert_eq!(StmtPrepareOk::parse(&out).unwrap(), prepared);
        assert_eq!(set_statement_id(&mut out, 900).unwrap(), 7);
        assert_eq!(StmtPrepareOk::parse(&out).unwrap().statement_id, 900);

        let mut execute = vec![
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
        assert_eq!(statement_id(&execute), Some(1));
        assert!(execute_opens_cursor(&execute));
        assert_eq!(set_statement_id(&mut execute, 0x0102_0304).unwrap(), 1);
        assert_eq!(&execute[1..5], &[4, 3, 2, 1]);
        for command in [
            COM_STMT_CLOSE,
            COM_STMT_RESET,
            COM_STMT_SEND_LONG_DATA,
            COM_STMT_FETCH,
        ] {
            assert_eq!(statement_id(&[command, 9, 0, 0, 0]), Some(9));
        }
        assert_eq!(statement_id(&[COM_QUERY, 9, 0, 0, 0]), None);
        assert_eq!(statement_id(&[COM_STMT_CLOSE, 9]), None);
        assert!(set_statement_id(&mut [COM_QUERY, 0, 0, 0, 0], 1).is_err());
        assert!(set_statement_id(&mut [COM_STMT_CLOSE, 0], 1).is_err());
    }

    #[test]
    fn query_text_skips_an_empty_attribute_header() {
        assert_eq!(query_text(b"\x03SELECT 1", CAPS41).unwrap(), b"SELECT 1");
        let caps = CAPS41 | CLIENT_QUERY_ATTRIBUTES;
        assert_eq!(
            query_text(b"\x03\x00\x01SELECT 1", caps).unwrap(),
            b"SELECT 1"
        );
        assert!(query_text(b"\x03\x01\x01\x00\x01", caps).is_err());
        assert!(query_text(b"\x16SELECT 1", CAPS41).is_err());
        assert_eq!(init_db_schema(b"\x02app"), Some(&b"app"[..]));
    }

    #[test]
    fn execute_parameter_types_are_read_and_added() {
        // Two parameters: NULL bitmap of one byte, flag, types, values.
        let head = [COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let mut bound = head.to_vec();
        bound.extend_from_slice(&[1, 0x03, 0x00, 0xfd, 0x00, 42, 0, 0, 0, 1, b'x']);
        let types = execute_param_types(&bound, 2).unwrap();
        assert_eq!(types, [0x03, 0x00, 0xfd, 0x00]);
        let mut unbound = head.to_vec();
        unbound.extend_from_slice(&[0, 42, 0, 0, 0, 1, b'x']);
        assert_eq!(execute_param_types(&unbound, 2), None);
        assert_eq!(with_param_types(&unbound, 2, types).unwrap(), bound);
        assert_eq!(with_param_types(&bound, 2, types), None);
        assert_eq!(execute_param_types(&head[..5], 2), None);
        // Values as text: a LONG and a VAR_STRING, then with types left
        // out and taken from before; a NULL.
        assert_eq!(
            execute_params_text(&bound, 2, None),
            Some(vec![Some("42".into()), Some("x".into())])
        );
        assert_eq!(
            execute_params_text(&unbound, 2, Some(types)),
            Some(vec![Some("42".into()), Some("x".into())])
        );
        assert_eq!(execute_params_text(&unbound, 2, None), None);
        let mut null_first = bound.clone();
        null_first[10] = 0b01;
        null_first.drain(16..20);
        assert_eq!(
            execute_params_text(&null_first, 2, None),
            Some(vec![None, Some("x".into())])
        );
        assert_eq!(command_name(COM_STMT_PREPARE), "COM_STMT_PREPARE");
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), caps: u32) {
            let _ = OkPacket::parse(&bytes, caps);
            let _ = ErrPacket::parse(&bytes);
            let _ = EofPacket::parse(&bytes);
            let _ = StmtPrepareOk::parse(&bytes);
            let _ = statement_id(&bytes);
            let _ = query_text(&bytes, caps);
            let mut copy = bytes.clone();
            let _ = set_statement_id(&mut copy, 1);
        }

        #[test]
        fn lenenc_round_trips(value: u64) {
            let mut out = BytesMut::new();
            put_lenenc_int(&mut out, value);
            prop_assert_eq!(Reader::new(&out, "t").lenenc_int().unwrap(), value);
        }
    }
}
