//! The MySQL side of the relay (being written).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::state::Shared;

/// Serves one MySQL client connection from accept to close.
pub async fn serve(_shared: Arc<Shared>, _socket: TcpStream) {}

/// The ERR packet a server sends instead of its greeting when full.
pub fn too_many_connections(_out: &mut BytesMut) {}
