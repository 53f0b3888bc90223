//! MySQL / MariaDB client-server protocol codec. Sans-IO: bytes in, frames
//! out. Nothing here touches a socket, a clock or tokio; the relay owns the
//! IO and drives these functions and state machines.
//!
//! Map:
//! - [`packet`] — framing: [`packet::decode`] reassembles payloads (16 MiB
//!   splits included), [`packet::next_raw_len`] sizes raw packets for
//!   forwarding untouched, [`packet::encode`] frames and splits.
//! - [`handshake`] — `CLIENT_*` flags, greeting (HandshakeV10), SSLRequest,
//!   HandshakeResponse41, and the capability choice for both legs
//!   ([`handshake::client_offer`], [`handshake::backend_capabilities`]).
//! - [`auth`] — scrambles, RSA keys, AuthSwitchRequest, and [`auth::ServerAuth`],
//!   the proxy's side of a client's login.
//! - [`login`] — [`login::BackendLogin`], the proxy's login to a backend.
//! - [`message`] — length-encoded values, OK / ERR / EOF, command bytes,
//!   status flags, COM_STMT_PREPARE_OK and statement-id rewriting.
//! - [`retype`] — [`retype::Retype`], binary rows of a retyped target
//!   re-encoded in the source's column types.
//! - [`tracker`] — [`tracker::ResponseTracker`], where a command's response
//!   ends, without decoding rows.
//! - [`error`] — the one error type, [`CodecError`].

pub mod auth;
pub mod error;
pub mod handshake;
pub mod login;
pub mod message;
pub mod packet;
pub mod retype;
pub mod tracker;

pub use error::CodecError;
pub use packet::Packet;
