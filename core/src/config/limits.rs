//! Resource limits of the proxy, and MySQL-only protocol options.

use std::time::Duration;

use serde::Deserialize;

use super::scalars;

/// Caps that protect the proxy and the servers from overload and from
/// malformed or hostile clients.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Client connections open at once, across both listeners; more wait
    /// in the accept queue rather than overload the backends.
    pub max_connections: usize,
    /// Largest protocol frame accepted, in bytes (`256MiB` or a number); a
    /// larger length prefix is treated as a malformed frame, so a garbage
    /// header cannot make the proxy allocate gigabytes.
    #[serde(deserialize_with = "scalars::bytes")]
    pub max_frame_bytes: usize,
    /// How long to wait for a backend's TCP connect and login.
    #[serde(deserialize_with = "scalars::duration")]
    pub connect_timeout: Duration,
    /// On shutdown or a listener change, how long open sessions may finish
    /// before they are closed.
    #[serde(deserialize_with = "scalars::duration")]
    pub drain_timeout: Duration,
    /// Statements whose classification is cached by shape; 0 turns the
    /// cache off.
    pub classify_cache_entries: usize,
    /// Threads that run client sessions, each with its own event loop;
    /// 0 means one per CPU core. Read at start.
    pub worker_threads: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_frame_bytes: 256 << 20,
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            classify_cache_entries: 10_000,
            worker_threads: 0,
        }
    }
}

/// Options that only exist in the MySQL protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlOptions {
    /// Whether `LOAD DATA LOCAL INFILE` may pass through. Off by default:
    /// it lets a server read files from the client's machine.
    pub allow_local_infile: bool,
    /// Whether caching_sha2_password logins always run full authentication
    /// (the password over TLS, or RSA-encrypted without TLS), as a MySQL
    /// server with a cold cache does. Off by default: the proxy knows the
    /// password, so the fast-path scramble already proves it, and some
    /// drivers cannot fetch the RSA key without an extra option.
    pub caching_sha2_full_auth: bool,
}
