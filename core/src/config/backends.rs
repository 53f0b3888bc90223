//! The real database servers behind the proxy, how they are reached (TCP or
//! a Unix socket, with or without TLS), and the credentials the proxy logs
//! in with.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Protocol};

/// One database server, named by its key under `backends`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Which wire protocol the server speaks.
    pub kind: BackendKind,
    /// Host name or IP address, resolved when connecting, not at load, so a
    /// DNS name that moves (a failover) is followed. An absolute path is a
    /// Unix socket instead, so a proxy beside its server skips loopback TCP:
    /// the socket directory for PostgreSQL (the file is `.s.PGSQL.<port>`
    /// in it, as libpq does), the socket file itself for MySQL.
    pub host: String,
    /// TCP port. For a PostgreSQL socket directory it names the socket file;
    /// a MySQL socket ignores it. Omitted reads as 0, which only a MySQL
    /// socket accepts.
    #[serde(default)]
    pub port: u16,
    /// User the proxy logs in as, unless a proxy user names its own
    /// `backend_user`.
    pub user: String,
    /// Password for `user`; empty for trust or socket-less test servers.
    #[serde(default)]
    pub password: String,
    /// Database to connect to; `None` uses the client's requested database
    /// (PostgreSQL) or none (MySQL).
    #[serde(default)]
    pub database: Option<String>,
    /// Whether and how the connection to the server is encrypted; the
    /// meanings are libpq's `sslmode`, so operators carry their habits over.
    #[serde(default)]
    pub tls: BackendTlsMode,
    /// PEM CA certificate(s) the server's certificate must chain to; needed
    /// by `verify-ca` and `verify-full`, and turns `require` into
    /// `verify-ca` (as libpq). Relative paths are read from the config
    /// file's directory.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain, for servers that authenticate the
    /// proxy by certificate (PostgreSQL `clientcert`, MySQL `REQUIRE X509`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Connections the proxy keeps to this server for shadow reads, shared
    /// by every session. A shadow read that finds them all busy is skipped
    /// rather than queued, so comparisons never add load or wait time
    /// beyond this many connections.
    #[serde(default = "Backend::default_shadow_pool")]
    pub shadow_pool: usize,
}

/// How the proxy encrypts its connection to a backend: libpq's `sslmode`
/// values, minus `allow`, which only exists for servers that demand TLS of
/// some clients and which `prefer` covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendTlsMode {
    /// Plain connections. The default, so a file written before backend TLS
    /// existed keeps connecting the way it did, with no extra round trip.
    #[default]
    Disable,
    /// TLS when the server offers it, plain when it does not; the
    /// certificate is not checked (as libpq). Protects against eavesdroppers,
    /// not against an active attacker.
    Prefer,
    /// TLS or no connection; the certificate is not checked unless `ca` is
    /// given.
    Require,
    /// TLS with the server's chain checked against `ca`; any name accepted.
    VerifyCa,
    /// TLS with the chain checked against `ca` and `host` checked against
    /// the certificate's names.
    VerifyFull,
}

impl BackendTlsMode {
    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendTlsMode::Disable => "disable",
            BackendTlsMode::Prefer => "prefer",
            BackendTlsMode::Require => "require",
            BackendTlsMode::VerifyCa => "verify-ca",
            BackendTlsMode::VerifyFull => "verify-full",
        }
    }

    /// A server that declines TLS is refused rather than used in plain.
    pub fn mandatory(self) -> bool {
        matches!(
            self,
            BackendTlsMode::Require | BackendTlsMode::VerifyCa | BackendTlsMode::VerifyFull
        )
    }
}

impl std::fmt::Display for BackendTlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's protocol family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB, which share the wire protocol.
    #[serde(alias = "mariadb")]
    Mysql,
}

impl BackendKind {
    /// The client protocol this server speaks.
    pub fn protocol(self) -> Protocol {
        match self {
            BackendKind::Postgres => Protocol::Postgres,
            BackendKind::Mysql => Protocol::Mysql,
        }
    }

    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        self.protocol().as_str()
    }

    /// The port servers of this kind usually listen on, for examples in
    /// error messages.
    fn usual_port(self) -> u16 {
        match self {
            BackendKind::Postgres => 5432,
            BackendKind::Mysql => 3306,
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Backend {
    /// A few connections: shadow reads sample a share of traffic, and the
    /// ones that find the pool busy are skipped.
    pub const DEFAULT_SHADOW_POOL: usize = 4;
    /// A comparison is a sample, not a second workload: beyond this many
    /// connections the server works for the proxy's curiosity.
    pub const MAX_SHADOW_POOL: usize = 64;

    fn default_shadow_pool() -> usize {
        Backend::DEFAULT_SHADOW_POOL
    }

    /// The Unix socket to connect to, when `host` is a path: the file
    /// `.s.PGSQL.<port>` in the directory for PostgreSQL (libpq's rule), the
    /// path itself for MySQL.
    pub fn socket_path(&self) -> Option<PathBuf> {
        if !self.host.starts_with('/') {
            return None;
        }
        Some(match self.kind {
            BackendKind::Postgres => Path::new(&self.host).join(format!(".s.PGSQL.{}", self.port)),
            BackendKind::Mysql => PathBuf::from(&self.host),
        })
    }

    /// Where the server is, for messages: `host:port` or the socket path.
    pub fn location(&self) -> String {
        match self.socket_path() {
            Some(path) => path.display().to_string(),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Makes the TLS file paths absolute against the config file's directory.
    pub(super) fn resolve(&mut self, base_dir: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            *path = base_dir.join(&*path);
        }
    }

    /// Checks one backend; `name` is its key under `backends`.
    pub(super) fn validate(&self, name: &str, errors: &mut Vec<ConfigError>) {
        let field = |f: &str| format!("backends.{name}.{f}");
        let port = self.kind.usual_port();
        if self.host.trim().is_empty() {
            errors.push(ConfigError::invalid(
                field("host"),
                "the host is empty; give the server's host name or IP address, e.g. `127.0.0.1`, or its Unix socket as an absolute path",
            ));
        }
        let socket = self.socket_path().is_some();
        if self.port == 0 && !(socket && self.kind == BackendKind::Mysql) {
            let why = if socket {
                format!(
                    " (it names the socket file `.s.PGSQL.<port>` in `{}`)",
                    self.host
                )
            } else {
                String::new()
            };
            errors.push(ConfigError::invalid(
                field("port"),
                format!("the port is missing or 0; give the port the server listens on{why}, e.g. `{port}`"),
            ));
        }
        if self.user.trim().is_empty() {
            errors.push(ConfigError::invalid(
                field("user"),
                "the user is empty; give the database user the proxy logs in as",
            ));
        }
        let (max, default) = (Backend::MAX_SHADOW_POOL, Backend::DEFAULT_SHADOW_POOL);
        if self.shadow_pool == 0 {
            errors.push(ConfigError::invalid(
                field("shadow_pool"),
                format!("0 connections would skip every shadow read; use from 1 to {max} (the default is {default})"),
            ));
        } else if self.shadow_pool > max {
            errors.push(ConfigError::invalid(
                field("shadow_pool"),
                format!("{} connections would make comparisons a second workload on the server; use at most {max} (the default is {default})", self.shadow_pool),
            ));
        }
        self.validate_tls(&field, socket, errors);
    }

    fn validate_tls(
        &self,
        field: &dyn Fn(&str) -> String,
        socket: bool,
        errors: &mut Vec<ConfigError>,
    ) {
        let mode = self.tls;
        if socket && mode.mandatory() {
            // PostgreSQL never offers TLS on a socket, and a socket cannot be
            // reached from another machine, so there is nothing to protect.
            errors.push(ConfigError::invalid(
                field("tls"),
                format!("`{mode}` cannot be used with the Unix socket `{}`: a socket is local and the server does not encrypt it; remove `tls` (or use `prefer`), or give a TCP host", self.host),
            ));
        }
        if self.ca.is_none()
            && matches!(mode, BackendTlsMode::VerifyCa | BackendTlsMode::VerifyFull)
        {
            errors.push(ConfigError::invalid(
                field("ca"),
                format!("`tls: {mode}` checks the server's certificate against a CA; give the PEM file of the CA that signed it, e.g. `ca: /etc/ssl/certs/db-root.crt`"),
            ));
        }
        if mode == BackendTlsMode::Disable {
            for (f, set) in [
                ("ca", self.ca.is_some()),
                ("cert", self.cert.is_some()),
                ("key", self.key.is_some()),
            ] {
                if set {
                    errors.push(ConfigError::invalid(
                        field(f),
                        format!("`{f}` has no effect while `tls` is `disable` (the default); set `tls: verify-full` (or another mode), or remove `{f}`"),
                    ));
                }
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => errors.push(ConfigError::invalid(
                field("key"),
                "a client `cert` needs its private key; add `key: <PEM file>`",
            )),
            (None, Some(_)) => errors.push(ConfigError::invalid(
                field("cert"),
                "a client `key` needs its certificate; add `cert: <PEM file>`",
            )),
            _ => {}
        }
        for (f, path) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                errors.push(ConfigError::invalid(
                    field(f),
                    format!("the file `{}` does not exist; create it or correct the path (a relative path is read from the config file's directory)", path.display()),
                ));
            }
        }
    }
}
