//! Listeners, sessions and backend connections: the only tokio code of the
//! data plane. Each listener accepts clients of one protocol and runs one
//! task per client; a semaphore caps how many run at once.

pub mod dial;
pub mod mysql;
pub mod pg;
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
