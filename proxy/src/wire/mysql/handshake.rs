//! The connection phase: capability flags, the server greeting
//! (HandshakeV10), the client's SSLRequest and HandshakeResponse41, and the
//! choice of capabilities on both legs of a proxied session.
//!
//! The proxy plays both roles: server to applications (it sends a greeting
//! and parses their response) and client to backends (it parses the
//! backend's greeting and sends a response). This module never does IO.

use bytes::{BufMut, BytesMut};
use rand::Rng;

use super::error::CodecError;
use super::message::{put_lenenc_bytes, put_lenenc_int, put_null_terminated, Reader};

/// "New" 4.1 password hashing. MariaDB calls this bit CLIENT_MYSQL and a
/// MariaDB server clears it to announce extended capabilities.
pub const CLIENT_LONG_PASSWORD: u32 = 1;
/// Report rows matched instead of rows changed in OK packets.
pub const CLIENT_FOUND_ROWS: u32 = 1 << 1;
/// All column flags in column definitions.
pub const CLIENT_LONG_FLAG: u32 = 1 << 2;
/// A schema name may be given in the handshake response.
pub const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
/// Disallow `db.table.column` names.
pub const CLIENT_NO_SCHEMA: u32 = 1 << 4;
/// The compressed protocol (never offered by the proxy).
pub const CLIENT_COMPRESS: u32 = 1 << 5;
/// ODBC behaviour (unused by servers).
pub const CLIENT_ODBC: u32 = 1 << 6;
/// LOAD DATA LOCAL INFILE is allowed.
pub const CLIENT_LOCAL_FILES: u32 = 1 << 7;
/// Allow spaces after function names.
pub const CLIENT_IGNORE_SPACE: u32 = 1 << 8;
/// The 4.1 protocol (required).
pub const CLIENT_PROTOCOL_41: u32 = 1 << 9;
/// Use `interactive_timeout` instead of `wait_timeout`.
pub const CLIENT_INTERACTIVE: u32 = 1 << 10;
/// TLS: the client sends an SSLRequest and upgrades the connection.
pub const CLIENT_SSL: u32 = 1 << 11;
/// Do not raise SIGPIPE (client-side only).
pub const CLIENT_IGNORE_SIGPIPE: u32 = 1 << 12;
/// Status flags in EOF packets; the client knows about transactions.
pub const CLIENT_TRANSACTIONS: u32 = 1 << 13;
/// Old flag for the 4.1 protocol.
pub const CLIENT_RESERVED: u32 = 1 << 14;
/// 4.1 authentication: the auth response is length-prefixed.
pub const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
/// Several statements per COM_QUERY.
pub const CLIENT_MULTI_STATEMENTS: u32 = 1 << 16;
/// Several results per response (stored procedures, multi-statements).
pub const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
/// Several results for COM_STMT_EXECUTE.
pub const CLIENT_PS_MULTI_RESULTS: u32 = 1 << 18;
/// Authentication plugins (names in greeting and response).
pub const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
/// Connection attributes in the handshake response.
pub const CLIENT_CONNECT_ATTRS: u32 = 1 << 20;
/// The auth response is a length-encoded string (may exceed 255 bytes).
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
/// The client can handle expired passwords (sandbox mode).
pub const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
/// Session-state changes in OK packets.
pub const CLIENT_SESSION_TRACK: u32 = 1 << 23;
/// No EOF packets: result sets end with an OK packet with a 0xFE header.
pub const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
/// Result set metadata may be omitted (changes the result-set shape).
pub const CLIENT_OPTIONAL_RESULTSET_METADATA: u32 = 1 << 25;
/// zstd compression (never offered by the proxy).
pub const CLIENT_ZSTD_COMPRESSION_ALGORITHM: u32 = 1 << 26;
/// Query attributes before the text of COM_QUERY.
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 1 << 27;
/// Multi-factor authentication.
pub const MULTI_FACTOR_AUTHENTICATION: u32 = 1 << 28;
/// Reserved for extending the 32-bit flags.
pub const CLIENT_CAPABILITY_EXTENSION: u32 = 1 << 29;
/// Verify the server certificate (client-side only).
pub const CLIENT_SSL_VERIFY_SERVER_CERT: u32 = 1 << 30;
/// Keep options after a failed connect (client-side only).
pub const CLIENT_REMEMBER_OPTIONS: u32 = 1 << 31;

/// MariaDB extended capability (in the greeting's and the response's
/// otherwise unused filler bytes, when CLIENT_LONG_PASSWORD is clear): the
/// server sends a prepared statement's column definitions with an execute
/// only when they changed, and every column count carries a "metadata
/// follows" byte. Saves the server and the client most of the work of a
/// point select.
pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 1 << 4;

/// MariaDB extended flags the proxy passes through: like
/// [`SESSION_CAPABILITIES`], both legs must agree on them.
pub const MARIADB_SESSION_CAPABILITIES: u32 = MARIADB_CLIENT_CACHE_METADATA;

/// Flags that shape the traffic of the command phase. The relay forwards
/// that traffic untouched, so the client leg and the backend leg must agree
/// on every one of them: the proxy offers only those the backend has, and
/// asks the backend for exactly those the client took.
pub const SESSION_CAPABILITIES: u32 = CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_LOCAL_FILES
    | CLIENT_IGNORE_SPACE
    | CLIENT_INTERACTIVE
    | CLIENT_TRANSACTIONS
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF;

/// Flags of the connection phase that each leg negotiates on its own,
/// because the proxy terminates authentication.
pub const LOGIN_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_RESERVED
    | CLIENT_PLUGIN_AUTH
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_CONNECT_ATTRS
    | CLIENT_CONNECT_WITH_DB;

/// Session flags every supported server (MySQL 5.7+, MariaDB 10.2+) has,
/// for a relay that greets clients before it has read the backend's greeting.
pub const DEFAULT_BACKEND_CAPABILITIES: u32 = SESSION_CAPABILITIES | LOGIN_CAPABILITIES;

/// What the proxy offers applications in its greeting: its own login flags,
/// the session flags the backend also has, and CLIENT_SSL only when TLS is
/// configured. Never CLIENT_COMPRESS (the relay forwards frames it does not
/// decompress), never QUERY_ATTRIBUTES (the SQL text would sit behind binary
/// values) and never OPTIONAL_RESULTSET_METADATA (it changes result-set
/// shapes). CLIENT_LONG_PASSWORD is set here; the relay clears it when it
/// also offers MariaDB extended flags ([`mariadb_offer`]).
pub fn client_offer(backend_capabilities: u32, tls_configured: bool) -> u32 {
    let tls = if tls_configured { CLIENT_SSL } else { 0 };
    LOGIN_CAPABILITIES | (SESSION_CAPABILITIES & backend_capabilities) | tls
}

/// The MariaDB extended flags the proxy offers applications: those of
/// [`MARIADB_SESSION_CAPABILITIES`] the backend announced. A non-zero offer
/// goes with CLIENT_LONG_PASSWORD cleared in the greeting, which is how a
/// MariaDB server says the extended bytes are there.
pub fn mariadb_offer(backend_capabilities: u32, backend_extended: u32) -> u32 {
    if backend_capabilities & CLIENT_LONG_PASSWORD != 0 {
        return 0;
    }
    backend_extended & MARIADB_SESSION_CAPABILITIES
}

/// The capabilities the proxy sends the backend for a client session: the
/// session flags the client took (and the backend has), plus the login
/// flags the backend supports; CONNECT_WITH_DB when a schema is given and
/// SSL when the proxy will upgrade the backend connection to TLS.
pub fn backend_capabilities(client: u32, backend: u32, with_db: bool, tls: bool) -> u32 {
    let own = LOGIN_CAPABILITIES & !CLIENT_CONNECT_WITH_DB;
    let mut caps =
        (client & SESSION_CAPABILITIES & backend) | (own & backend) | CLIENT_LONG_PASSWORD;
    if with_db {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    if tls {
        caps |= CLIENT_SSL;
    }
    caps
}

/// utf8mb4_general_ci, the collation the proxy announces (known to MySQL
/// and MariaDB alike; the client's own choice is what goes to the backend).
pub const UTF8MB4_GENERAL_CI: u8 = 45;

/// A fresh 20-byte salt (scramble) for one login. Like servers, only
/// printable ASCII, never NUL (the salt is sent NUL-terminated) nor `$`.
pub fn new_salt() -> [u8; 20] {
    let mut rng = rand::rng();
    let mut salt = [0u8; 20];
    for byte in &mut salt {
        *byte = loop {
            let b = rng.random_range(0x21u8..=0x7E);
            if b != b'$' {
                break b;
            }
        };
    }
    salt
}

/// The server greeting, protocol version 10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// Server version string; clients read features from it (e.g. "8.0.36").
    pub server_version: String,
    /// Connection (thread) id; clients use it for `KILL`.
    pub connection_id: u32,
    /// The salt for password scrambles, without the trailing NUL (20 bytes).
    pub auth_plugin_data: Vec<u8>,
    /// Capability flags (`CLIENT_*`).
    pub capabilities: u32,
    /// MariaDB's extended capabilities (present when CLIENT_LONG_PASSWORD is clear).
    pub mariadb_capabilities: u32,
    /// Default collation id.
    pub charset: u8,
    /// Server status flags.
    pub status: u16,
    /// Authentication plugin the salt is meant for.
    pub auth_plugin_name: String,
}

impl HandshakeV10 {
    /// Appends the greeting payload. `auth_plugin_data` should be the 20-byte
    /// salt (at least 8 bytes).
    pub fn encode(&self, out: &mut BytesMut) {
        let salt = &self.auth_plugin_data;
        let split = salt.len().min(8);
        out.put_u8(10);
        put_null_terminated(out, self.server_version.as_bytes());
        out.put_u32_le(self.connection_id);
        out.put_slice(&salt[..split]);
        out.put_bytes(0, 8 - split);
        out.put_u8(0);
        out.put_u16_le(self.capabilities as u16);
        out.put_u8(self.charset);
        out.put_u16_le(self.status);
        out.put_u16_le((self.capabilities >> 16) as u16);
        let plugin_auth = self.capabilities & CLIENT_PLUGIN_AUTH != 0;
        out.put_u8(if plugin_auth {
            (salt.len() + 1) as u8
        } else {
            0
        });
        out.put_bytes(0, 6);
        if self.capabilities & CLIENT_LONG_PASSWORD == 0 {
            out.put_u32_le(self.mariadb_capabilities);
        } else {
            out.put_bytes(0, 4);
        }
        if self.capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // At least 13 bytes: the rest of the salt and its NUL.
            let part2 = &salt[split..];
            out.put_slice(part2);
            out.put_bytes(0, 13usize.saturating_sub(part2.len()).max(1));
        }
        if plugin_auth {
            put_null_terminated(out, self.auth_plugin_name.as_bytes());
        }
    }

    /// Parses a backend's greeting. An ERR packet here (e.g. "Too many
    /// connections") should be checked for by the caller first.
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        const WHAT: &str = "server greeting (HandshakeV10)";
        let mut r = Reader::new(payload, WHAT);
        let version = r.u8()?;
        if version != 10 {
            return Err(CodecError::UnsupportedProtocol(version));
        }
        let server_version = String::from_utf8_lossy(r.null_terminated()).into_owned();
        let connection_id = r.u32()?;
        let mut salt = r.bytes(8)?.to_vec();
        r.u8()?;
        let mut capabilities = u32::from(r.u16()?);
        let mut hs = Self {
            server_version,
            connection_id,
            auth_plugin_data: Vec::new(),
            capabilities: 0,
            mariadb_capabilities: 0,
            charset: 0,
            status: 0,
            auth_plugin_name: String::new(),
        };
        if !r.is_empty() {
            hs.charset = r.u8()?;
            hs.status = r.u16()?;
            capabilities |= u32::from(r.u16()?) << 16;
            let data_len = usize::from(r.u8()?);
            r.bytes(6)?;
            let extended = r.u32()?;
            if capabilities & CLIENT_LONG_PASSWORD == 0 {
                hs.mariadb_capabilities = extended;
            }
            if capabilities & CLIENT_SECURE_CONNECTION != 0 {
                let len = data_len.saturating_sub(8).max(13).min(r.remaining());
                let part2 = r.bytes(len)?;
                let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
                salt.extend_from_slice(part2);
            }
            if capabilities & CLIENT_PLUGIN_AUTH != 0 {
                hs.auth_plugin_name = String::from_utf8_lossy(r.null_terminated()).into_owned();
            }
        }
        if capabilities & CLIENT_PROTOCOL_41 == 0 {
            return Err(CodecError::Protocol41Required);
        }
        hs.capabilities = capabilities;
        hs.auth_plugin_data = salt;
        Ok(hs)
    }
}

/// The short response a client sends to ask for TLS before its real one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    /// The client's capability flags (CLIENT_SSL set).
    pub capabilities: u32,
    /// Largest packet the client will send.
    pub max_packet_size: u32,
    /// The client's collation id.
    pub charset: u8,
    /// MariaDB extended capabilities, in the filler's last four bytes when
    /// CLIENT_LONG_PASSWORD is cleared: MariaDB takes them from this packet,
    /// not from the full response sent over TLS, so they must be here too.
    pub mariadb_capabilities: u32,
}

/// SSLRequest length: capabilities, max packet, charset and 23 filler bytes.
pub const SSL_REQUEST_LEN: usize = 32;

impl SslRequest {
    /// Appends the SSLRequest payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.capabilities | CLIENT_SSL);
        out.put_u32_le(self.max_packet_size);
        out.put_u8(self.charset);
        out.put_bytes(0, 19);
        let extended = if self.capabilities & CLIENT_LONG_PASSWORD == 0 {
            self.mariadb_capabilities
        } else {
            0
        };
        out.put_u32_le(extended);
    }
}

/// The client's login: HandshakeResponse41.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    /// The client's capability flags.
    pub capabilities: u32,
    /// Largest packet the client will send.
    pub max_packet_size: u32,
    /// The client's collation id; the session's character set.
    pub charset: u8,
    /// MariaDB extended capabilities (only when the server cleared CLIENT_LONG_PASSWORD).
    pub mariadb_capabilities: u32,
    /// Login name.
    pub username: String,
    /// Auth plugin data: a scramble, or empty for an empty password.
    pub auth_response: Vec<u8>,
    /// Initial schema (with CLIENT_CONNECT_WITH_DB).
    pub database: Option<String>,
    /// The plugin the auth response was computed with (with CLIENT_PLUGIN_AUTH).
    pub auth_plugin_name: Option<String>,
    /// Connection attributes, in order (with CLIENT_CONNECT_ATTRS).
    pub connect_attrs: Vec<(String, String)>,
    /// zstd level (with CLIENT_ZSTD_COMPRESSION_ALGORITHM); never used by the proxy.
    pub zstd_level: Option<u8>,
}

/// What a client sends after the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    /// Upgrade to TLS now; the full response follows over TLS.
    SslRequest(SslRequest),
    /// The full login.
    Response(HandshakeResponse41),
}

/// Parses the client's first packet: an SSLRequest (exactly 32 bytes with
/// CLIENT_SSL) or a HandshakeResponse41. Pre-4.1 clients are refused.
pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello, CodecError> {
    const WHAT: &str = "handshake response";
    let mut r = Reader::new(payload, WHAT);
    let capabilities = r.u32()?;
    if capabilities & CLIENT_PROTOCOL_41 == 0 {
        return Err(CodecError::Protocol41Required);
    }
    let max_packet_size = r.u32()?;
    let charset = r.u8()?;
    let filler = r.bytes(23)?;
    // The extended bytes count only when the client cleared CLIENT_MYSQL.
    let mariadb_capabilities = if capabilities & CLIENT_LONG_PASSWORD == 0 {
        u32::from_le_bytes([filler[19], filler[20], filler[21], filler[22]])
    } else {
        0
    };
    if payload.len() == SSL_REQUEST_LEN && capabilities & CLIENT_SSL != 0 {
        return Ok(ClientHello::SslRequest(SslRequest {
            capabilities,
            max_packet_size,
            charset,
            mariadb_capabilities,
        }));
    }
    let username = String::from_utf8_lossy(r.null_terminated()).into_owned();
    let auth_response = if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_bytes()?
    } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let len = usize::from(r.u8()?);
        r.bytes(len)?
    } else {
        r.null_terminated()
    }
    .to_vec();
    let mut hello = HandshakeResponse41 {
        capabilities,
        max_packet_size,
        charset,
        mariadb_capabilities,
        username,
        auth_response,
        ..HandshakeResponse41::default()
    };
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 && !r.is_empty() {
        let db = r.null_terminated();
        hello.database = Some(String::from_utf8_lossy(db).into_owned());
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        let name = r.null_terminated();
        hello.auth_plugin_name = Some(String::from_utf8_lossy(name).into_owned());
    }
    if capabilities & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        let attrs = r.lenenc_bytes()?;
        let mut a = Reader::new(attrs, "connection attributes");
        while !a.is_empty() {
            let key = String::from_utf8_lossy(a.lenenc_bytes()?).into_owned();
            let value = String::from_utf8_lossy(a.lenenc_bytes()?).into_owned();
            hello.connect_attrs.push((key, value));
        }
    }
    if capabilities & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 && !r.is_empty() {
        hello.zstd_level = Some(r.u8()?);
    }
    Ok(ClientHello::Response(hello))
}

/// Parses a COM_CHANGE_USER payload into the login it asks for: user name,
/// auth response, schema, collation, plugin and connection attributes, read
/// as the session's negotiated `capabilities` say. The result's
/// `capabilities` are those flags, so it can be handed to
/// [`ServerAuth::start`](super::auth::ServerAuth::start) like a
/// HandshakeResponse41.
pub fn parse_change_user(
    payload: &[u8],
    capabilities: u32,
) -> Result<HandshakeResponse41, CodecError> {
    const WHAT: &str = "COM_CHANGE_USER";
    let mut r = Reader::new(payload, WHAT);
    if r.u8()? != super::message::COM_CHANGE_USER {
        return Err(CodecError::malformed(WHAT, "the command byte is not 0x11"));
    }
    let username = String::from_utf8_lossy(r.null_terminated()).into_owned();
    let auth_response = if capabilities & CLIENT_SECURE_CONNECTION != 0 {
        let len = usize::from(r.u8()?);
        r.bytes(len)?
    } else {
        r.null_terminated()
    }
    .to_vec();
    let database = String::from_utf8_lossy(r.null_terminated()).into_owned();
    let mut change = HandshakeResponse41 {
        capabilities,
        username,
        auth_response,
        database: (!database.is_empty()).then_some(database),
        ..HandshakeResponse41::default()
    };
    if r.remaining() >= 2 {
        // The collation id is two bytes here; ids above 255 do not fit the
        // handshake's one byte and are kept modulo as servers do.
        change.charset = r.u16()? as u8;
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 && !r.is_empty() {
        let name = r.null_terminated();
        change.auth_plugin_name = Some(String::from_utf8_lossy(name).into_owned());
    }
    if capabilities & CLIENT_CONNECT_ATTRS != 0 && !r.is_empty() {
        let attrs = r.lenenc_bytes()?;
        let mut a = Reader::new(attrs, "connection attributes");
        while !a.is_empty() {
            let key = String::from_utf8_lossy(a.lenenc_bytes()?).into_owned();
            let value = String::from_utf8_lossy(a.lenenc_bytes()?).into_owned();
            change.connect_attrs.push((key, value));
        }
    }
    Ok(change)
}

impl HandshakeResponse41 {
    /// Appends the response payload; fields are written as `capabilities`
    /// says (auth response length-encoded, 1-byte-prefixed or NUL-ended).
    pub fn encode(&self, out: &mut BytesMut) {
        let caps = self.capabilities;
        out.put_u32_le(caps);
        out.put_u32_le(self.max_packet_size);
        out.put_u8(self.charset);
        out.put_bytes(0, 19);
        out.put_u32_le(self.mariadb_capabilities);
        put_null_terminated(out, self.username.as_bytes());
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            put_lenenc_bytes(out, &self.auth_response);
        } else if caps & CLIENT_SECURE_CONNECTION != 0 {
            let len = self.auth_response.len().min(255);
            out.put_u8(len as u8);
            out.put_slice(&self.auth_response[..len]);
        } else {
            put_null_terminated(out, &self.auth_response);
        }
        if caps & CLIENT_CONNECT_WITH_DB != 0 {
            put_null_terminated(out, self.database.as_deref().unwrap_or("").as_bytes());
        }
        if caps & CLIENT_PLUGIN_AUTH != 0 {
            put_null_terminated(
                out,
                self.auth_plugin_name.as_deref().unwrap_or("").as_bytes(),
            );
        }
        if caps & CLIENT_CONNECT_ATTRS != 0 {
            let mut attrs = BytesMut::new();
            for (key, value) in &self.connect_attrs {
                put_lenenc_bytes(&mut attrs, key.as_bytes());
                put_lenenc_bytes(&mut attrs, value.as_bytes());
            }
            put_lenenc_int(out, attrs.len() as u64);
            out.put_slice(&attrs);
        }
        if caps & CLIENT_ZSTD_COMPRESSION_ALGORITHM != 0 {
            out.put_u8(self.zstd_level.unwrap_or(3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn change_user_parses_like_a_login() {
        let caps = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_ATTRS;
        let mut payload = BytesMut::new();
        payload.put_u8(0x11);
        put_null_terminated(&mut payload, b"other");
        payload.put_u8(3);
        payload.put_slice(&[1, 2, 3]);
        put_null_terminated(&mut payload, b"shop");
        payload.put_u16_le(45);
        put_null_terminated(&mut payload, b"mysql_native_password");
        let mut attrs = BytesMut::new();
        put_lenenc_bytes(&mut attrs, b"_client_name");
        put_lenenc_bytes(&mut attrs, b"t");
        put_lenenc_bytes(&mut payload, &attrs);
        let change = parse_change_user(&payload, caps).unwrap();
        assert_eq!(change.username, "other");
        assert_eq!(change.auth_response, vec![1, 2, 3]);
        assert_eq!(change.database.as_deref(), Some("shop"));
        assert_eq!(change.charset, 45);
        assert_eq!(
            change.auth_plugin_name.as_deref(),
            Some("mysql_native_password")
        );
        assert_eq!(
            change.connect_attrs,
            vec![("_client_name".into(), "t".into())]
        );
        assert!(parse_change_user(&payload[..9], caps).is_err());
        assert!(parse_change_user(b"\x03x", caps).is_err());
    }

    fn greeting(capabilities: u32) -> HandshakeV10 {
        HandshakeV10 {
            server_version: "8.0.36-switchyard".into(),
            connection_id: 42,
            auth_plugin_data: new_salt().to_vec(),
            capabilities,
            mariadb_capabilities: 0,
            charset: UTF8MB4_GENERAL_CI,
            status: 2,
            auth_plugin_name: "caching_sha2_password".into(),
        }
    }

    #[test]
    fn salts_are_printable_without_nul_and_differ() {
        let a = new_salt();
        assert!(a.iter().all(|&b| (0x21..=0x7E).contains(&b) && b != b'$'));
        assert_ne!(a, new_salt());
    }

    #[test]
    fn greeting_round_trips() {
        let hs = greeting(client_offer(DEFAULT_BACKEND_CAPABILITIES, true));
        let mut out = BytesMut::new();
        hs.encode(&mut out);
        assert_eq!(out[0], 10);
        assert_eq!(HandshakeV10::parse(&out).unwrap(), hs);
    }

    #[test]
    fn mariadb_greeting_keeps_extended_capabilities() {
        let mut hs = greeting(LOGIN_CAPABILITIES & !CLIENT_LONG_PASSWORD);
        hs.mariadb_capabilities = 0b10101;
        hs.auth_plugin_name = "mysql_native_password".into();
        let mut out = BytesMut::new();
        hs.encode(&mut out);
        assert_eq!(HandshakeV10::parse(&out).unwrap(), hs);
    }

    #[test]
    fn greeting_without_final_nul_parses() {
        // Some 5.5-era servers omit the NUL after the plugin name.
        let hs = greeting(LOGIN_CAPABILITIES);
        let mut out = BytesMut::new();
        hs.encode(&mut out);
        out.truncate(out.len() - 1);
        assert_eq!(HandshakeV10::parse(&out).unwrap(), hs);
    }

    #[test]
    fn greeting_with_other_protocol_is_refused() {
        assert_eq!(
            HandshakeV10::parse(&[9, 0]),
            Err(CodecError::UnsupportedProtocol(9))
        );
        assert!(HandshakeV10::parse(&[10, b'5', 0, 1]).is_err());
    }

    #[test]
    fn ssl_request_is_recognised() {
        for (capabilities, mariadb_capabilities) in [
            (CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_LONG_PASSWORD, 0),
            // MariaDB's extended flags ride in the filler, as in the full response.
            (CLIENT_PROTOCOL_41 | CLIENT_SSL, 1 << 4),
        ] {
            let req = SslRequest {
                capabilities,
                max_packet_size: 1 << 24,
                charset: 255,
                mariadb_capabilities,
            };
            let mut out = BytesMut::new();
            req.encode(&mut out);
            assert_eq!(out.len(), SSL_REQUEST_LEN);
            assert_eq!(
                parse_client_hello(&out).unwrap(),
                ClientHello::SslRequest(req)
            );
        }
    }

    fn response(capabilities: u32) -> HandshakeResponse41 {
        HandshakeResponse41 {
            capabilities,
            max_packet_size: 16 << 20,
            charset: 255,
            mariadb_capabilities: 0,
            username: "app".into(),
            auth_response: (0..32).collect(),
            database: Some("shop".into()),
            auth_plugin_name: Some("caching_sha2_password".into()),
            connect_attrs: vec![
                ("_client_name".into(), "libmysql".into()),
                ("program_name".into(), "mysql".into()),
            ],
            zstd_level: None,
        }
    }

    #[test]
    fn handshake_response_round_trips_in_each_auth_form() {
        let full = LOGIN_CAPABILITIES | CLIENT_DEPRECATE_EOF;
        for caps in [
            full,
            full & !CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
            full & !CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA & !CLIENT_SECURE_CONNECTION,
        ] {
            let mut resp = response(caps);
            if caps & CLIENT_SECURE_CONNECTION == 0 {
                // The NUL-terminated form cannot carry NUL bytes.
                resp.auth_response = b"scrambled".to_vec();
            }
            let mut out = BytesMut::new();
            resp.encode(&mut out);
            assert_eq!(
                parse_client_hello(&out).unwrap(),
                ClientHello::Response(resp),
                "caps {caps:#x}"
            );
        }
    }

    #[test]
    fn minimal_response_parses() {
        let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
        let resp = HandshakeResponse41 {
            capabilities: caps,
            username: "root".into(),
            ..HandshakeResponse41::default()
        };
        let mut out = BytesMut::new();
        resp.encode(&mut out);
        assert_eq!(
            parse_client_hello(&out).unwrap(),
            ClientHello::Response(resp)
        );
        let mut old = BytesMut::new();
        old.put_u32_le(CLIENT_LONG_PASSWORD);
        old.put_bytes(0, 40);
        assert_eq!(
            parse_client_hello(&old),
            Err(CodecError::Protocol41Required)
        );
    }

    #[test]
    fn capability_negotiation_keeps_both_legs_in_step() {
        let old_backend =
            DEFAULT_BACKEND_CAPABILITIES & !CLIENT_DEPRECATE_EOF & !CLIENT_SESSION_TRACK;
        let offer = client_offer(
            old_backend | CLIENT_COMPRESS | CLIENT_QUERY_ATTRIBUTES,
            false,
        );
        assert_eq!(
            offer & (CLIENT_COMPRESS | CLIENT_QUERY_ATTRIBUTES | CLIENT_SSL),
            0
        );
        assert_eq!(offer & CLIENT_DEPRECATE_EOF, 0);
        assert_ne!(offer & CLIENT_PLUGIN_AUTH, 0);
        assert_ne!(client_offer(old_backend, true) & CLIENT_SSL, 0);

        let client = CLIENT_PROTOCOL_41
            | CLIENT_DEPRECATE_EOF
            | CLIENT_MULTI_RESULTS
            | CLIENT_COMPRESS
            | CLIENT_SSL;
        let backend = DEFAULT_BACKEND_CAPABILITIES | CLIENT_SSL | CLIENT_COMPRESS;
        let caps = backend_capabilities(client, backend, false, false);
        assert_ne!(caps & CLIENT_DEPRECATE_EOF, 0);
        assert_eq!(
            caps & (CLIENT_MULTI_STATEMENTS
                | CLIENT_COMPRESS
                | CLIENT_SSL
                | CLIENT_CONNECT_WITH_DB),
            0
        );
        let caps = backend_capabilities(client, backend, true, true);
        assert_ne!(caps & CLIENT_SSL, 0);
        assert_ne!(caps & CLIENT_CONNECT_WITH_DB, 0);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = HandshakeV10::parse(&bytes);
            let _ = parse_client_hello(&bytes);
        }
    }
}
