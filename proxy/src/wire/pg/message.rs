//! The few PostgreSQL messages the proxy reads or writes itself: login,
//! errors, and the extended-protocol messages whose statement names it maps.
//! Everything else crosses the proxy as raw frames. Never does IO.

use bytes::{BufMut, BytesMut};

use super::CodecError;

/// SQLSTATE codes the proxy emits.
pub mod sqlstate {
    /// Malformed or oversized message.
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// The backend could not be reached or died.
    pub const CONNECTION_FAILURE: &str = "08006";
    /// Password did not match.
    pub const INVALID_PASSWORD: &str = "28P01";
    /// Unknown user or a login that is not allowed.
    pub const INVALID_AUTHORIZATION: &str = "28000";
    /// The proxy is shutting down.
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// Too many connections.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// A feature the proxy does not support.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// The proxy's own failure, when the server gave no code.
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// Writes a message: tag, a length placeholder, the body, then the length.
fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_i32(0);
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// ErrorResponse with severity, SQLSTATE, message and an optional hint.
pub fn error_response(
    out: &mut BytesMut,
    severity: &str,
    code: &str,
    text: &str,
    hint: Option<&str>,
) {
    message(out, b'E', |b| {
        b.put_u8(b'S');
        put_cstr(b, severity);
        b.put_u8(b'V');
        put_cstr(b, severity);
        b.put_u8(b'C');
        put_cstr(b, code);
        b.put_u8(b'M');
        put_cstr(b, text);
        if let Some(hint) = hint {
            b.put_u8(b'H');
            put_cstr(b, hint);
        }
        b.put_u8(0);
    });
}

/// AuthenticationOk, Cleartext, MD5 and the SASL family share the 'R' tag.
pub fn auth_ok(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_i32(0));
}

/// AuthenticationMD5Password with its salt.
pub fn auth_md5(out: &mut BytesMut, salt: [u8; 4]) {
    message(out, b'R', |b| {
        b.put_i32(5);
        b.put_slice(&salt);
    });
}

/// AuthenticationSASL listing the mechanisms offered.
pub fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    message(out, b'R', |b| {
        b.put_i32(10);
        for m in mechanisms {
            put_cstr(b, m);
        }
        b.put_u8(0);
    });
}

/// AuthenticationSASLContinue (code 11) or AuthenticationSASLFinal (code 12).
pub fn auth_sasl_data(out: &mut BytesMut, code: i32, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_i32(code);
        b.put_slice(data);
    });
}

/// ParameterStatus.
pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    message(out, b'S', |b| {
        put_cstr(b, name);
        put_cstr(b, value);
    });
}

/// BackendKeyData.
pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    message(out, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

/// ReadyForQuery with a transaction status (`I`, `T` or `E`).
pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    message(out, b'Z', |b| b.put_u8(status));
}

/// CommandComplete with a tag such as `INSERT 0 1`.
pub fn command_complete(out: &mut BytesMut, tag: &str) {
    message(out, b'C', |b| put_cstr(b, tag));
}

/// StartupMessage (protocol 3.0) with its parameters.
pub fn startup_message(out: &mut BytesMut, params: &[(&str, &str)]) {
    let at = out.len();
    out.put_i32(0);
    out.put_i32(super::frame::PROTOCOL_3_0);
    for (k, v) in params {
        put_cstr(out, k);
        put_cstr(out, v);
    }
    out.put_u8(0);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// SSLRequest: asks a server to switch the connection to TLS.
pub fn ssl_request(out: &mut BytesMut) {
    out.put_i32(8);
    out.put_i32(super::frame::SSL_REQUEST);
}

/// CancelRequest for a backend key.
pub fn cancel_request(out: &mut BytesMut, pid: i32, secret: i32) {
    out.put_i32(16);
    out.put_i32(super::frame::CANCEL_REQUEST);
    out.put_i32(pid);
    out.put_i32(secret);
}

/// Simple Query.
pub fn query(out: &mut BytesMut, sql: &str) {
    message(out, b'Q', |b| put_cstr(b, sql));
}

/// Parse, with the parameter-type section copied from a client's Parse.
pub fn parse(out: &mut BytesMut, name: &str, sql: &str, param_types: &[u8]) {
    message(out, b'P', |b| {
        put_cstr(b, name);
        put_cstr(b, sql);
        if param_types.is_empty() {
            b.put_i16(0);
        } else {
            b.put_slice(param_types);
        }
    });
}

/// Bind, with everything after the names copied from a client's Bind.
pub fn bind(out: &mut BytesMut, portal: &str, statement: &str, rest: &[u8]) {
    message(out, b'B', |b| {
        put_cstr(b, portal);
        put_cstr(b, statement);
        if rest.is_empty() {
            // No parameter formats, no parameters, no result formats.
            b.put_i16(0);
            b.put_i16(0);
            b.put_i16(0);
        } else {
            b.put_slice(rest);
        }
    });
}

/// Describe (`kind` is `S` for a statement, `P` for a portal).
pub fn describe(out: &mut BytesMut, kind: u8, name: &str) {
    message(out, b'D', |b| {
        b.put_u8(kind);
        put_cstr(b, name);
    });
}

/// Close (`kind` is `S` for a statement, `P` for a portal).
pub fn close(out: &mut BytesMut, kind: u8, name: &str) {
    message(out, b'C', |b| {
        b.put_u8(kind);
        put_cstr(b, name);
    });
}

/// Execute a portal (`max_rows` 0 means all).
pub fn execute(out: &mut BytesMut, portal: &str, max_rows: i32) {
    message(out, b'E', |b| {
        put_cstr(b, portal);
        b.put_i32(max_rows);
    });
}

/// Sync.
pub fn sync(out: &mut BytesMut) {
    message(out, b'S', |_| {});
}

/// Splits a NUL-terminated string off the front of `body`.
pub fn cstr(tag: u8, body: &[u8]) -> Result<(&str, &[u8]), CodecError> {
    let end = body
        .iter()
        .position(|b| *b == 0)
        .ok_or(CodecError::BadBody {
            tag,
            reason: "a string is not NUL-terminated",
        })?;
    let text = std::str::from_utf8(&body[..end]).map_err(|_| CodecError::BadBody {
        tag,
        reason: "a string is not valid UTF-8",
    })?;
    Ok((text, &body[end + 1..]))
}

/// The SQL text of a simple Query.
pub fn query_text(body: &[u8]) -> Result<&str, CodecError> {
    Ok(cstr(b'Q', body)?.0)
}

/// A client's Parse.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseMsg<'a> {
    /// Statement name (empty for the unnamed statement).
    pub name: &'a str,
    /// The SQL text.
    pub sql: &'a str,
    /// Parameter count and types, kept as bytes to copy into a rewritten Parse.
    pub param_types: &'a [u8],
}

impl<'a> ParseMsg<'a> {
    /// Decodes a Parse body.
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let (name, rest) = cstr(b'P', body)?;
        let (sql, param_types) = cstr(b'P', rest)?;
        Ok(ParseMsg {
            name,
            sql,
            param_types,
        })
    }
}

/// A client's Bind, split at the names the proxy may map.
#[derive(Debug, PartialEq, Eq)]
pub struct BindMsg<'a> {
    /// Destination portal.
    pub portal: &'a str,
    /// Source statement.
    pub statement: &'a str,
    /// Formats, parameters and result formats, copied verbatim.
    pub rest: &'a [u8],
}

impl<'a> BindMsg<'a> {
    /// Decodes a Bind body.
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let (portal, rest) = cstr(b'B', body)?;
        let (statement, rest) = cstr(b'B', rest)?;
        Ok(BindMsg {
            portal,
            statement,
            rest,
        })
    }
}

impl BindMsg<'_> {
    /// Whether any parameter is sent in binary format (a malformed format
    /// list counts as binary: the cautious answer).
    pub fn binary_params(&self) -> bool {
        let Some(count) = self.rest.get(..2) else {
            return true;
        };
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        match self.rest.get(2..2 + 2 * count) {
            Some(codes) => codes.chunks_exact(2).any(|c| c != [0, 0]),
            None => true,
        }
    }

    /// The bound parameter values as text, for routing on a key value:
    /// text-format values as sent; binary values of 2, 4 or 8 bytes read as
    /// the big-endian integers drivers send for int2/int4/int8 (so a key
    /// reads the same in either format); other binary values and NULL are
    /// `None`. `None` overall when the message is malformed.
    pub fn params(&self) -> Option<Vec<Option<String>>> {
        let values = self.values()?;
        Some(
            values
                .into_iter()
                .map(|v| match v? {
                    (0, value) => std::str::from_utf8(value).ok().map(str::to_string),
                    (_, value) => match value.len() {
                        2 => Some(i16::from_be_bytes(value.try_into().ok()?).to_string()),
                        4 => Some(i32::from_be_bytes(value.try_into().ok()?).to_string()),
                        8 => Some(i64::from_be_bytes(value.try_into().ok()?).to_string()),
                        _ => None,
                    },
                })
                .collect(),
        )
    }

    /// The bound values exactly as text (`None` is NULL), binary ones
    /// decoded by the parameter types of `types` (a ParameterDescription
    /// or Parse layout: a count, then OIDs); `None` when a binary value's
    /// type is not one decoded here (integers, booleans, floats, text), so
    /// the values could not be given again faithfully.
    pub fn params_exact(&self, types: &[u8]) -> Option<Vec<Option<String>>> {
        let oid = |i: usize| -> Option<u32> {
            let at = 2 + 4 * i;
            Some(u32::from_be_bytes(types.get(at..at + 4)?.try_into().ok()?))
        };
        let values = self.values()?;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let Some((format, value)) = v else {
                    return Some(None);
                };
                let text = match (format, oid(i).unwrap_or(0)) {
                    (0, _) => std::str::from_utf8(value).ok()?.to_string(),
                    (_, 16) => (value.first()? != &0).to_string(),
                    (_, 21) => i16::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 23) => i32::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 20) => i64::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 26) => u32::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 700) => f32::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 701) => f64::from_be_bytes(value.try_into().ok()?).to_string(),
                    (_, 19 | 25 | 1042 | 1043) => std::str::from_utf8(value).ok()?.to_string(),
                    _ => return None,
                };
                Some(Some(text))
            })
            .collect()
    }

    /// Each bound value with its format code; `None` for NULL. `None`
    /// overall when the message is malformed.
    fn values(&self) -> Option<Vec<Option<BoundValue<'_>>>> {
        let mut rest = self.rest;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            rest = tail;
            Some(head)
        };
        let nformats = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let formats: Vec<u16> = (0..nformats)
            .map(|_| Some(u16::from_be_bytes(take(2)?.try_into().ok()?)))
            .collect::<Option<_>>()?;
        let nparams = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let mut values = Vec::with_capacity(nparams);
        for i in 0..nparams {
            let len = i32::from_be_bytes(take(4)?.try_into().ok()?);
            if len < 0 {
                values.push(None);
                continue;
            }
            let value = take(len as usize)?;
            let format = match formats.len() {
                0 => 0,
                1 => formats[0],
                _ => *formats.get(i)?,
            };
            values.push(Some((format, value)));
        }
        Some(values)
    }
}

/// One bound value: its format code and bytes.
type BoundValue<'a> = (u16, &'a [u8]);

/// A client's Describe or Close: a kind byte and a name.
#[derive(Debug, PartialEq, Eq)]
pub struct TargetMsg<'a> {
    /// `S` (statement) or `P` (portal).
    pub kind: u8,
    /// The statement's or portal's name.
    pub name: &'a str,
}

impl<'a> TargetMsg<'a> {
    /// Decodes a Describe or Close body.
    pub fn decode(tag: u8, body: &'a [u8]) -> Result<Self, CodecError> {
        let (&kind, rest) = body.split_first().ok_or(CodecError::BadBody {
            tag,
            reason: "the body is empty",
        })?;
        if kind != b'S' && kind != b'P' {
            return Err(CodecError::BadBody {
                tag,
                reason: "the kind must be 'S' or 'P'",
            });
        }
        Ok(TargetMsg {
            kind,
            name: cstr(tag, rest)?.0,
        })
    }
}

/// How the rows of a mirrored write are cut back to what the client's
/// statement alone returns: the mirror adds the row images after the
/// client's own `RETURNING` items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    /// Columns the proxy added at the end of every row.
    pub extra: usize,
    /// The client asked for rows (`RETURNING`); without, the row
    /// description and the rows are dropped whole.
    pub rows: bool,
}

/// A RowDescription or DataRow frame (tag and length included) without its
/// last `trim.extra` fields or values; `None` when the client gets no rows
/// at all, or the frame cannot be read (then it passes untouched).
pub fn trim_frame(frame: &[u8], trim: Trim) -> Option<BytesMut> {
    if !trim.rows {
        return None;
    }
    let tag = frame[0];
    let body = &frame[5..];
    let count = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    let keep = count.checked_sub(trim.extra)?;
    let mut at = 2;
    for _ in 0..keep {
        at += match tag {
            b'T' => body.get(at..)?.iter().position(|&b| b == 0)? + 1 + 18,
            _ => {
                let len = i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
                4 + usize::try_from(len).unwrap_or(0)
            }
        };
    }
    let kept = body.get(2..at)?;
    let mut out = BytesMut::with_capacity(at + 5);
    out.put_u8(tag);
    out.put_i32((4 + 2 + kept.len()) as i32);
    out.put_u16(keep as u16);
    out.extend_from_slice(kept);
    Some(out)
}

/// Whether an ErrorResponse of a mirrored write may be its mirror's rather
/// than its own: a data exception (a value the target's type cannot hold),
/// or an integrity or privilege error that names the target table. Any
/// other error (a deadlock, a lock timeout, the source's own constraint)
/// is the statement's, and the client gets it as it is.
pub fn may_be_mirror_error(body: &[u8], target_table: &str) -> bool {
    let (mut code, mut table, mut text) = ("", "", "");
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Ok((value, tail)) = cstr(b'E', tail) else {
            break;
        };
        match field {
            b'C' => code = value,
            b't' => table = value,
            b'M' => text = value,
            _ => {}
        }
        rest = tail;
    }
    code.starts_with("22")
        || ((code.starts_with("23") || code == "42501")
            && (table == target_table || text.contains(&format!("\"{target_table}\""))))
}

/// The values of a DataRow body, text or binary as sent; `None` for NULL.
pub fn data_row(body: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut rest = &body[2..];
    let mut values = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        if len < 0 {
            values.push(None);
            continue;
        }
        let len = usize::try_from(len).ok()?;
        values.push(Some(rest.get(..len)?.to_vec()));
        rest = &rest[len..];
    }
    Some(values)
}

/// A command tag from a template: `{rows}` becomes the row count the
/// server's tag ends with (`SELECT 3` → `INSERT 0 {rows}` → `INSERT 0 3`).
pub fn expand_tag(template: &str, server_tag: &str) -> String {
    if !template.contains("{rows}") {
        return template.to_string();
    }
    let rows = server_tag.rsplit(' ').next().unwrap_or("0");
    template.replace("{rows}", rows)
}

/// The portal an Execute runs.
pub fn execute_portal(body: &[u8]) -> Result<&str, CodecError> {
    Ok(cstr(b'E', body)?.0)
}

/// The SQLSTATE and message of an ErrorResponse or NoticeResponse body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut text) = (String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let Ok((value, tail)) = cstr(b'E', tail) else {
            break;
        };
        match field {
            b'C' => code = value.to_string(),
            b'M' => text = value.to_string(),
            _ => {}
        }
        rest = tail;
    }
    (code, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::pg::frame;

    #[test]
    fn encoded_messages_frame_correctly() {
        let mut out = BytesMut::new();
        error_response(&mut out, "ERROR", "08P01", "bad", Some("fix it"));
        query(&mut out, "SELECT 1");
        parse(&mut out, "s1", "SELECT $1", &[0, 1, 0, 0, 0, 23]);
        bind(&mut out, "", "s1", &[]);
        ready_for_query(&mut out, b'I');
        let mut tags = Vec::new();
        while let Some(f) = frame::decode(&mut out, 1 << 20).unwrap() {
            tags.push(f.tag);
            if f.tag == b'E' {
                assert_eq!(error_fields(f.body()), ("08P01".into(), "bad".into()));
            }
            if f.tag == b'P' {
                let p = ParseMsg::decode(f.body()).unwrap();
                assert_eq!((p.name, p.sql), ("s1", "SELECT $1"));
                assert_eq!(p.param_types, &[0, 1, 0, 0, 0, 23]);
            }
            if f.tag == b'B' {
                let b = BindMsg::decode(f.body()).unwrap();
                assert_eq!(
                    (b.portal, b.statement, b.rest),
                    ("", "s1", &[0u8, 0, 0, 0, 0, 0][..])
                );
            }
        }
        assert_eq!(tags, b"EQPBZ");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(ParseMsg::decode(b"name-without-nul").is_err());
        assert!(TargetMsg::decode(b'D', b"").is_err());
        assert!(TargetMsg::decode(b'D', b"Xname\0").is_err());
        assert_eq!(TargetMsg::decode(b'C', b"Sname\0").unwrap().name, "name");
        assert!(query_text(&[0xff, 0xfe, 0]).is_err());
    }
}

/// Where one RowDescription field's column lives: the table's OID and the
/// column's number, as RowDescription reports them.
pub type FieldOrigin = (u32, i16);

/// How the RowDescription of a rewritten read is made to say what the
/// source's would (drivers such as pgjdbc read the table OID and column
/// number): fields of the answering table map to the source's columns, and
/// fields the rewrite computed (a cast back to the source's type, which the
/// server reports with no table) map by name when their type is the
/// source's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPatch {
    /// The answering table's column → the source's column.
    pub columns: Vec<(FieldOrigin, FieldOrigin)>,
    /// A computed field's name and type OID → the source's column.
    pub computed: Vec<((String, u32), FieldOrigin)>,
}

/// Rewrites, in place, the table OID and column number of the fields of a
/// RowDescription body that `patch` maps. Anything it cannot read is left
/// as it is.
pub fn patch_row_description(body: &mut [u8], patch: &FieldPatch) {
    let Some(count) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return;
    };
    let mut at = 2;
    for _ in 0..count {
        let Some(end) = body[at..].iter().position(|&b| b == 0) else {
            return;
        };
        let name_end = at + end;
        let fixed = name_end + 1;
        if body.len() < fixed + 18 {
            return;
        }
        let read_u32 =
            |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let table = read_u32(body, fixed);
        let column = i16::from_be_bytes([body[fixed + 4], body[fixed + 5]]);
        let type_oid = read_u32(body, fixed + 6);
        let origin = if table == 0 {
            let name = String::from_utf8_lossy(&body[at..name_end]);
            patch
                .computed
                .iter()
                .find(|((n, t), _)| *n == name && *t == type_oid)
                .map(|(_, to)| *to)
        } else {
            patch
                .columns
                .iter()
                .find(|(from, _)| *from == (table, column))
                .map(|(_, to)| *to)
        };
        if let Some((table, column)) = origin {
            body[fixed..fixed + 4].copy_from_slice(&table.to_be_bytes());
            body[fixed + 4..fixed + 6].copy_from_slice(&column.to_be_bytes());
        }
        at = fixed + 18;
    }
}

#[cfg(test)]
mod field_patch_tests {
    use super::*;

    fn field(out: &mut Vec<u8>, name: &str, table: u32, column: i16, type_oid: u32) {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(&table.to_be_bytes());
        out.extend_from_slice(&column.to_be_bytes());
        out.extend_from_slice(&type_oid.to_be_bytes());
        out.extend_from_slice(&4i16.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
    }

    #[test]
    fn fields_take_the_source_columns_origin() {
        let patch = FieldPatch {
            columns: vec![((900, 2), (800, 3))],
            computed: vec![(("id".into(), 23), (800, 1))],
        };
        let mut body = 3u16.to_be_bytes().to_vec();
        field(&mut body, "id", 0, 0, 23);
        field(&mut body, "path", 900, 2, 25);
        field(&mut body, "other", 0, 0, 25);
        patch_row_description(&mut body, &patch);
        let mut want = 3u16.to_be_bytes().to_vec();
        field(&mut want, "id", 800, 1, 23);
        field(&mut want, "path", 800, 3, 25);
        field(&mut want, "other", 0, 0, 25);
        assert_eq!(body, want);
        // Truncated bodies are left alone, never a panic.
        for len in 0..want.len() {
            let mut cut = want[..len].to_vec();
            patch_row_description(&mut cut, &patch);
        }
    }
}
