//! PostgreSQL protocol 3.0 codec: framing ([`frame`]), the messages the proxy
//! reads or writes itself ([`message`]) and authentication ([`auth`]).
//! Sans-IO: no sockets, no tokio.

pub mod auth;
pub mod frame;
pub mod message;
pub mod response;

/// A frame the proxy cannot accept. The session answers it with an
/// ErrorResponse (SQLSTATE 08P01) and closes that one connection.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A declared length below the 4 bytes of the length field itself.
    #[error("message '{}' declares length {length}, below the minimum of 4", char::from(*tag))]
    BadLength {
        /// The message type byte.
        tag: u8,
        /// The declared length.
        length: i32,
    },
    /// A frame larger than `limits.max_frame_bytes`.
    #[error("message '{}' of {length} bytes exceeds the proxy's limit of {max} bytes (raise limits.max_frame_bytes if this is legitimate)", char::from(*tag))]
    TooLarge {
        /// The message type byte.
        tag: u8,
        /// The frame's total length.
        length: usize,
        /// The configured limit.
        max: usize,
    },
    /// A startup packet that is not one the protocol defines.
    #[error("invalid startup packet: {0}")]
    BadStartup(String),
    /// A message body that does not match its type's layout.
    #[error("invalid '{}' message: {reason}", char::from(*tag))]
    BadBody {
        /// The message type byte.
        tag: u8,
        /// What is wrong with it.
        reason: &'static str,
    },
}
