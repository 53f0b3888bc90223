//! Test helpers both end-to-end binaries (`tests/pg`, `tests/mysql`)
//! share, included by path from each harness.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP relay from a local port to a real server that can be stopped
/// (every relayed connection drops) and started again on the same port, to
/// play a backend that goes away and comes back.
pub struct Forwarder {
    /// The local port clients (the proxy) connect to.
    pub port: u16,
    /// The real server, `host:port`.
    target: &'static str,
    /// The accept loop, which owns every relayed connection.
    task: Option<tokio::task::JoinHandle<()>>,
    /// Relayed connections whose client sent a TLS ClientHello, so a test
    /// sees that a connection it cannot observe otherwise was encrypted.
    tls_clients: Arc<AtomicUsize>,
}

impl Forwarder {
    /// Starts forwarding on a free port to `target`.
    pub async fn start(target: &'static str) -> Forwarder {
        let mut forwarder = Forwarder {
            port: 0,
            target,
            task: None,
            tls_clients: Arc::new(AtomicUsize::new(0)),
        };
        forwarder.up().await;
        forwarder
    }

    /// Starts forwarding again (on the same port once one was chosen).
    pub async fn up(&mut self) {
        assert!(self.task.is_none(), "forwarder already running");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .unwrap();
        let listener = socket.listen(128).unwrap();
        self.port = listener.local_addr().unwrap().port();
        let target = self.target;
        let tls_clients = self.tls_clients.clone();
        self.task = Some(tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let tls_clients = tls_clients.clone();
                relays.spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(target).await {
                        relay(inbound, outbound, &tls_clients).await;
                    }
                });
            }
        }));
    }

    /// How many relayed connections' clients sent a TLS ClientHello.
    pub fn tls_clients(&self) -> usize {
        self.tls_clients.load(Ordering::SeqCst)
    }

    /// Stops listening and cuts every relayed connection.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Copies both ways until both sides close, counting the connection in
/// `tls_clients` once the client sends a TLS handshake record (content
/// type 22, version 3.1: how every ClientHello starts).
async fn relay(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    tls_clients: &AtomicUsize,
) {
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let upstream = async {
        let mut buf = vec![0; 16 * 1024];
        let mut seen = false;
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if !seen && buf[..n].windows(3).any(|w| w == [0x16, 0x03, 0x01]) {
                seen = true;
                tls_clients.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
