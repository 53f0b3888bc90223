//! Opening a socket to a backend — TCP or a Unix socket — and the ways that
//! fails, as both protocols' backend connections share them.

use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_core::config::Backend;
use tokio::net::{TcpStream, UnixStream};

use super::backend_stream::Socket;

/// Where a backend listens, as the file's `host` and `port` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A host name or IP address and a TCP port.
    Tcp {
        /// Host name (resolved at every dial) or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// The path of a Unix-domain socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// The endpoint of a configured backend.
    pub fn of(backend: &Backend) -> Endpoint {
        match backend.socket_path() {
            Some(path) => Endpoint::Unix(path),
            None => Endpoint::Tcp {
                host: backend.host.clone(),
                port: backend.port,
            },
        }
    }

    /// Whether this is a Unix socket, where TLS is never attempted.
    pub fn is_unix(&self) -> bool {
        matches!(self, Endpoint::Unix(_))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

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
    /// Connecting to a Unix socket failed; `reason` says what is wrong with
    /// the path and how to fix it.
    #[error("backend `{name}`: cannot connect to the Unix socket `{}`: {reason}", .path.display())]
    Socket {
        /// The backend's name.
        name: String,
        /// The socket file.
        path: PathBuf,
        /// What is wrong, in words, with the fix.
        reason: String,
    },
    /// Connect or login took longer than `limits.connect_timeout`.
    #[error("backend `{name}` at {addr} did not complete login within {timeout:?} (limits.connect_timeout)")]
    Timeout {
        /// The backend's name.
        name: String,
        /// `host:port` or the socket path.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
}

impl DialError {
    /// The backend did not finish within `timeout`.
    pub fn timeout(name: &str, addr: &dyn fmt::Display, timeout: Duration) -> DialError {
        DialError::Timeout {
            name: name.to_string(),
            addr: addr.to_string(),
            timeout,
        }
    }
}

/// Connects to a backend. TCP gets Nagle off: the relay writes whole
/// messages and must not wait for acknowledgements.
pub async fn dial(name: &str, endpoint: &Endpoint) -> Result<Socket, DialError> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|source| DialError::Unreachable {
                    name: name.to_string(),
                    addr: endpoint.to_string(),
                    source,
                })?;
            stream.set_nodelay(true).ok();
            Ok(Socket::Tcp(stream))
        }
        Endpoint::Unix(path) => match UnixStream::connect(path).await {
            Ok(stream) => Ok(Socket::Unix(stream)),
            Err(e) => Err(DialError::Socket {
                name: name.to_string(),
                path: path.clone(),
                reason: diagnose(path, &e),
            }),
        },
    }
}

/// Says what is wrong with a socket path connect failed on, and the fix.
fn diagnose(path: &Path, error: &std::io::Error) -> String {
    let dir = path.parent().unwrap_or(Path::new("/"));
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound && !dir.is_dir() => format!(
            "the directory `{}` does not exist; `host` must be the server's socket directory (PostgreSQL's unix_socket_directories) or socket file (MySQL's `socket`)",
            dir.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => "it does not exist; check that the server is running and that `host` (and for PostgreSQL `port`) name its socket".to_string(),
        Ok(meta) if !meta.file_type().is_socket() => format!(
            "it is not a socket; `host` must be the server's socket {}",
            if meta.is_dir() { "file (MySQL), or a directory holding `.s.PGSQL.<port>` (PostgreSQL)" } else { "directory (PostgreSQL) or socket file (MySQL)" }
        ),
        _ => match error.kind() {
            ErrorKind::PermissionDenied => "permission denied; the proxy's user needs write permission on the socket and search permission on its directory (e.g. add it to the server's group)".to_string(),
            ErrorKind::ConnectionRefused => "nothing accepts connections on it (a stale socket file: is the server running?)".to_string(),
            _ => error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_errors_name_the_path_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let cases = [
            (dir.path().join("nope.sock"), "it does not exist"),
            (dir.path().join("no-dir/x.sock"), "the directory"),
            (file, "it is not a socket"),
            (
                dir.path().to_path_buf(),
                "it is not a socket; `host` must be the server's socket file (MySQL)",
            ),
            (stale, "nothing accepts connections on it"),
        ];
        for (path, expected) in cases {
            let err = dial("db", &Endpoint::Unix(path.clone()))
                .await
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "backend `db`: cannot connect to the Unix socket `{}`: ",
                    path.display()
                )),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
        }
    }
}
