//! Protocol codecs. Sans-IO: they turn bytes into frames and frames into
//! bytes, and never touch a socket, a clock or tokio.

pub mod mysql;
pub mod pg;
