//! A backend connection's socket: TCP or a Unix socket, in plain or under
//! TLS, and its two halves for the PostgreSQL session, which reads and
//! writes at once.
//!
//! These are enums rather than boxed trait objects so the relay's hot path
//! pays one predictable branch per read or write, and no allocation. Plain
//! TCP and Unix sockets split into the kernel socket's own halves, without
//! the lock `tokio::io::split` takes on every call; only TLS, whose state
//! both directions share, needs that lock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::{tcp, unix, TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

/// Implements `AsyncRead` for an enum whose every variant holds a reader.
macro_rules! delegate_read {
    ($ty:ident: $($variant:ident),+) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
}

/// Implements `AsyncWrite` for an enum whose every variant holds a writer.
macro_rules! delegate_write {
    ($ty:ident: $($variant:ident),+) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $($ty::$variant(s) => Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}

/// A connected socket to a backend, before any TLS.
pub enum Socket {
    /// TCP, Nagle off.
    Tcp(TcpStream),
    /// A Unix-domain socket on the same machine.
    Unix(UnixStream),
}

delegate_read!(Socket: Tcp, Unix);
delegate_write!(Socket: Tcp, Unix);

/// A backend connection as the relay uses it.
pub enum BackendStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// Plain Unix socket.
    Unix(UnixStream),
    /// TLS over either; boxed because the TLS state is large and rare.
    Tls(Box<TlsStream<Socket>>),
}

delegate_read!(BackendStream: Tcp, Unix, Tls);
delegate_write!(BackendStream: Tcp, Unix, Tls);

impl From<Socket> for BackendStream {
    fn from(socket: Socket) -> BackendStream {
        match socket {
            Socket::Tcp(s) => BackendStream::Tcp(s),
            Socket::Unix(s) => BackendStream::Unix(s),
        }
    }
}

impl BackendStream {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, BackendStream::Tls(_))
    }

    /// Splits into a read half and a write half that can be polled at once.
    pub fn into_split(self) -> (BackendRead, BackendWrite) {
        match self {
            BackendStream::Tcp(s) => {
                let (r, w) = s.into_split();
                (BackendRead::Tcp(r), BackendWrite::Tcp(w))
            }
            BackendStream::Unix(s) => {
                let (r, w) = s.into_split();
                (BackendRead::Unix(r), BackendWrite::Unix(w))
            }
            BackendStream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (BackendRead::Tls(r), BackendWrite::Tls(w))
            }
        }
    }
}

/// The reading half of a [`BackendStream`].
pub enum BackendRead {
    /// TCP.
    Tcp(tcp::OwnedReadHalf),
    /// Unix socket.
    Unix(unix::OwnedReadHalf),
    /// TLS over either.
    Tls(ReadHalf<TlsStream<Socket>>),
}

delegate_read!(BackendRead: Tcp, Unix, Tls);

/// The writing half of a [`BackendStream`]; dropping it shuts the
/// connection's write side, so the server sees the session end.
pub enum BackendWrite {
    /// TCP.
    Tcp(tcp::OwnedWriteHalf),
    /// Unix socket.
    Unix(unix::OwnedWriteHalf),
    /// TLS over either.
    Tls(WriteHalf<TlsStream<Socket>>),
}

delegate_write!(BackendWrite: Tcp, Unix, Tls);
