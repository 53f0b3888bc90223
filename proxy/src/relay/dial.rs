//! Opening a TCP connection to a backend, and the two ways that fails, as
//! both protocols' backend connections share them.

use std::time::Duration;

use tokio::net::TcpStream;

/// A backend that could not be reached in time.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// TCP connect failed.
    #[error("backend `{name}` at {addr} is unreachable ({source}); check that the server is running, new connections retry it")]
    Unreachable {
        /// The backend's name in `backends:`.
        name: String,
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// Connect or login took longer than `limits.connect_timeout`.
    #[error("backend `{name}` at {addr} did not complete login within {timeout:?} (limits.connect_timeout)")]
    Timeout {
        /// The backend's name.
        name: String,
        /// `host:port`.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
}

impl DialError {
    /// The backend did not finish within `timeout`.
    pub fn timeout(name: &str, addr: &str, timeout: Duration) -> DialError {
        DialError::Timeout {
            name: name.to_string(),
            addr: addr.to_string(),
            timeout,
        }
    }
}

/// Connects to `addr` with Nagle off: the relay writes whole messages and
/// must not wait for acknowledgements.
pub async fn dial(name: &str, addr: &str) -> Result<TcpStream, DialError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| DialError::Unreachable {
            name: name.to_string(),
            addr: addr.to_string(),
            source,
        })?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}
