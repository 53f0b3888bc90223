//! Test helpers both end-to-end binaries (`tests/pg`, `tests/mysql`)
//! share, included by path from each harness.

use std::net::SocketAddr;

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
}

impl Forwarder {
    /// Starts forwarding on a free port to `target`.
    pub async fn start(target: &'static str) -> Forwarder {
        let mut forwarder = Forwarder {
            port: 0,
            target,
            task: None,
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
        self.task = Some(tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                relays.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Stops listening and cuts every relayed connection.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}
