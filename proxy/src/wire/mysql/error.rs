//! The one error type of the MySQL codec.
//!
//! Every fallible function in `wire::mysql` returns [`CodecError`]. Like the
//! rest of the codec, this module never does IO: an error describes bytes
//! that could not be understood or a login that cannot go on, and the relay
//! decides whether to answer with an ERR packet or to close the connection.

use super::message::ErrPacket;

/// Why the MySQL codec could not decode, encode or continue an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A logical payload (all its 16 MiB parts together) is larger than the
    /// caller allowed, so it is refused before it is buffered.
    #[error("a MySQL packet of {len} bytes exceeds the limit of {max} bytes; raise the limit or reject the peer.")]
    PayloadTooLarge {
        /// Bytes announced so far by the packet headers.
        len: usize,
        /// The caller's limit.
        max: usize,
    },

    /// The parts of one split payload did not carry consecutive sequence ids,
    /// which means the stream is out of step and cannot be trusted.
    #[error("a split MySQL payload jumped from sequence id {previous} to {got}; the stream is out of step.")]
    SequenceGap {
        /// Sequence id of the previous part.
        previous: u8,
        /// Sequence id of the part that followed.
        got: u8,
    },

    /// A message ended before one of its fields.
    #[error("the MySQL {what} ended early: it is too short to hold all its fields.")]
    Truncated {
        /// The message or field being read.
        what: &'static str,
    },

    /// A message had a value that its format does not allow.
    #[error("the MySQL {what} is malformed: {reason}.")]
    Malformed {
        /// The message or field being read.
        what: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },

    /// The server greeting is not HandshakeV10 (protocol version 10).
    #[error("the server greeting uses protocol version {0}; only protocol version 10 (MySQL 4.1 and later, MariaDB) is supported.")]
    UnsupportedProtocol(u8),

    /// The peer did not offer CLIENT_PROTOCOL_41; pre-4.1 peers are not supported.
    #[error("the peer does not support the 4.1 protocol (CLIENT_PROTOCOL_41); upgrade the client or server.")]
    Protocol41Required,

    /// The peer wants an authentication plugin the proxy cannot speak.
    #[error("the authentication plugin `{0}` is not supported; use mysql_native_password or caching_sha2_password.")]
    UnsupportedAuthPlugin(String),

    /// TLS to the backend is required but the backend does not offer it.
    #[error("TLS to the MySQL backend is required but the server does not offer it (no CLIENT_SSL); enable TLS on the server or turn it off for this backend.")]
    TlsUnavailable,

    /// caching_sha2_password full authentication needs TLS or an RSA key, and
    /// neither is available on this connection.
    #[error("caching_sha2_password full authentication needs TLS or the server's RSA public key, and neither is available; enable TLS for this connection.")]
    InsecureFullAuth,

    /// An RSA operation of caching_sha2_password failed.
    #[error("the RSA step of caching_sha2_password failed: {0}.")]
    Rsa(String),

    /// The backend refused the proxy's login with an ERR packet.
    #[error("the MySQL backend refused the login with error {} ({}): {}", .0.code, .0.sql_state_str(), .0.message)]
    LoginRejected(ErrPacket),

    /// The command's answer is not a single response (COM_CHANGE_USER is an
    /// auth exchange, COM_BINLOG_DUMP a stream), so it cannot be tracked.
    #[error(
        "this MySQL command is not answered by a single response; the relay must handle it itself."
    )]
    Untrackable,

    /// A packet arrived that the current step of an exchange does not expect.
    #[error("unexpected MySQL packet starting with 0x{first_byte:02x} while {state}; the exchange cannot continue.")]
    Unexpected {
        /// What the state machine was waiting for.
        state: &'static str,
        /// The packet's first byte (0 for an empty packet).
        first_byte: u8,
    },
}

impl CodecError {
    /// Shorthand for [`CodecError::Truncated`].
    pub(crate) fn truncated(what: &'static str) -> Self {
        Self::Truncated { what }
    }

    /// Shorthand for [`CodecError::Malformed`].
    pub(crate) fn malformed(what: &'static str, reason: &'static str) -> Self {
        Self::Malformed { what, reason }
    }

    /// Shorthand for [`CodecError::Unexpected`].
    pub(crate) fn unexpected(state: &'static str, payload: &[u8]) -> Self {
        Self::Unexpected {
            state,
            first_byte: payload.first().copied().unwrap_or(0),
        }
    }
}
