//! Listeners, sessions and backend connections: the only tokio code of the
//! data plane. Each listener accepts clients of one protocol and runs one
//! task per client; a semaphore caps how many run at once.

pub mod backend_stream;
pub mod backend_tls;
pub mod dial;
pub mod mysql;
pub mod pg;
pub mod reads;
pub mod stream;
pub mod tls;
pub mod workers;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use switchyard_core::config::Protocol;
use switchyard_core::names;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use self::workers::Workers;
use crate::state::Shared;

/// Room a session's read buffer is given before each read.
pub const READ_CHUNK: usize = 16 * 1024;

/// Makes room in a read buffer before the next read, so a large response
/// comes in a few big reads: once a `BytesMut` is full, reading into it
/// offers the socket only 64 bytes. Reclaims the front of the buffer when
/// the frames read earlier have been released.
pub fn make_room(buf: &mut bytes::BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// The label of a protocol in metrics and logs.
pub fn protocol_label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Postgres => "postgres",
        Protocol::Mysql => "mysql",
    }
}

/// Binds a listener; its sessions run on `workers`.
pub async fn listen(
    shared: Arc<Shared>,
    addr: SocketAddr,
    protocol: Protocol,
    workers: Arc<Workers>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "listen.{}: cannot listen on {addr}: {e}; pick a free address",
            protocol_label(protocol)
        )
    })?;
    let local = listener.local_addr()?;
    tracing::info!(%local, protocol = protocol_label(protocol), "listening");
    let handle = tokio::spawn(accept_loop(shared, listener, protocol, workers));
    Ok((local, handle))
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    protocol: Protocol,
    workers: Arc<Workers>,
) {
    let label = protocol_label(protocol);
    // The listener stays open while draining: a new client is told why it
    // is refused (57P01 / ER_SERVER_SHUTDOWN) instead of finding the port
    // closed, and the process exit closes the socket.
    loop {
        let accepted = listener.accept().await;
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and similar: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            metrics::counter!(names::CONNECTION_ERRORS_TOTAL, "protocol" => label, "reason" => "too_many").increment(1);
            tokio::spawn(refuse_too_many(socket, protocol));
            continue;
        };
        metrics::counter!(names::CONNECTIONS_TOTAL, "protocol" => label).increment(1);
        // The socket moves to a worker thread's own event loop.
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection to a worker");
                continue;
            }
        };
        let shared = shared.clone();
        workers.dispatch(Box::new(move || {
            Box::pin(async move {
                let Ok(socket) = TcpStream::from_std(socket) else {
                    return;
                };
                shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
                shared.counters.active.fetch_add(1, Ordering::Relaxed);
                let gauge = metrics::gauge!(names::CONNECTIONS_ACTIVE, "protocol" => label);
                gauge.increment(1.0);
                tracing::debug!(%peer, protocol = label, "client connected");
                match protocol {
                    Protocol::Postgres => pg::serve(shared.clone(), socket).await,
                    Protocol::Mysql => mysql::serve(shared.clone(), socket).await,
                }
                gauge.decrement(1.0);
                shared.counters.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            })
        }));
    }
}

async fn refuse_too_many(mut socket: TcpStream, protocol: Protocol) {
    let mut out = bytes::BytesMut::new();
    match protocol {
        Protocol::Postgres => crate::wire::pg::message::error_response(
            &mut out,
            "FATAL",
            crate::wire::pg::message::sqlstate::TOO_MANY_CONNECTIONS,
            "the proxy is at limits.max_connections; retry later or raise the limit",
            None,
        ),
        Protocol::Mysql => mysql::too_many_connections(&mut out),
    }
    let _ = socket.write_all(&out).await;
}

/// Completes once the proxy starts draining.
pub async fn drained(mut draining: tokio::sync::watch::Receiver<bool>) {
    while !*draining.borrow_and_update() {
        if draining.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Counts one mirrored write by how its program ended
/// (`switchyard_mirror_writes_total`, `switchyard_mirror_duration_seconds`).
pub(crate) fn record_mirror(
    migration: &str,
    outcome: &crate::route::program::Outcome,
    restarts: usize,
    started: std::time::Instant,
) {
    use crate::route::program::Outcome;
    let outcome = match (outcome, restarts) {
        (Outcome::Done, 0) => "mirrored",
        (Outcome::Done, _) => "repair_queued",
        (Outcome::ClientFailed, _) => "client_error",
        (Outcome::Failed(_), _) => "failed",
    };
    let migration = migration.to_string();
    metrics::counter!(switchyard_core::names::MIRROR_WRITES_TOTAL, "migration" => migration.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!(switchyard_core::names::MIRROR_DURATION_SECONDS, "migration" => migration)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    /// After the frames read so far are split off and released, the buffer
    /// offers a full chunk again (keeping a partial frame), instead of the
    /// 64 bytes a full `BytesMut` would offer the next read.
    #[test]
    fn make_room_offers_a_full_chunk_after_frames_are_released() {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        buf.put_bytes(7, READ_CHUNK - 100);
        drop(buf.split_to(READ_CHUNK - 110));
        assert!(buf.capacity() - buf.len() < READ_CHUNK / 4);
        make_room(&mut buf);
        assert!(buf.capacity() - buf.len() >= READ_CHUNK);
        assert_eq!(&buf[..], &[7u8; 10][..], "the partial frame is kept");
        // Plenty of room already: left alone.
        let before = buf.capacity();
        make_room(&mut buf);
        assert_eq!(buf.capacity(), before);
    }
}
