//! A TCP relay to a real server that can go silent: once stalled it
//! passes no more bytes either way and answers no new connection, but
//! closes nothing, as a network that drops packets does. (The proxy's
//! tests' `Forwarder` goes down instead: its connections are refused.)

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The relay; dropping it cuts every connection.
pub struct StallingRelay {
    /// The local port clients connect to.
    pub port: u16,
    /// Whether bytes stop: relays and the accept loop watch it.
    stalled: watch::Sender<bool>,
    /// The accept loop, which owns every relayed connection.
    task: tokio::task::JoinHandle<()>,
}

impl StallingRelay {
    /// Relays a free local port to `target` (`host:port`).
    pub async fn start(target: &'static str) -> StallingRelay {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stalled, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            let mut silent = Vec::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *watching.borrow() {
                    // Accepted by the kernel, never answered.
                    silent.push(inbound);
                    continue;
                }
                let watching = watching.clone();
                relays.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(target).await {
                        relay(inbound, outbound, watching).await;
                    }
                });
            }
        });
        StallingRelay {
            port,
            stalled,
            task,
        }
    }

    /// From now on no byte passes and no new connection is answered.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }
}

impl Drop for StallingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until a side closes or the relay stalls; stalled, it
/// holds both sockets open and silent.
async fn relay(inbound: TcpStream, outbound: TcpStream, stalled: watch::Receiver<bool>) {
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    tokio::join!(
        copy(client_read, server_write, stalled.clone()),
        copy(server_read, client_write, stalled),
    );
}

/// One direction of [`relay`].
async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => Some(read),
            _ = stalled.wait_for(|s| *s) => None,
        };
        let n = match read {
            Some(Ok(0)) | Some(Err(_)) => break,
            Some(Ok(n)) if !*stalled.borrow() => n,
            _ => return std::future::pending().await,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
