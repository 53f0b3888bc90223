//! Who may log in to the proxy, how they prove it, and which credentials
//! the proxy then uses towards the backends on their behalf.

use serde::Deserialize;

use super::Protocol;

/// One account clients log in to the proxy with. The same list serves the
/// PostgreSQL and the MySQL listener.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name the client sends; unique across `users`.
    pub name: String,
    /// Plaintext password (usually from `${ENV}`) or a SCRAM verifier
    /// (`SCRAM-SHA-256$...`). Empty is allowed, e.g. with `trust`.
    #[serde(default)]
    pub password: String,
    /// How the client proves the password. `None` means the protocol's
    /// default: see [`User::auth_for`].
    #[serde(default)]
    pub auth: Option<AuthMethod>,
    /// Log in to backends as this user instead of the backend's own `user`,
    /// so database permissions follow the application's role.
    #[serde(default)]
    pub backend_user: Option<String>,
    /// Password for `backend_user`; only meaningful together with it.
    #[serde(default)]
    pub backend_password: Option<String>,
}

impl User {
    /// The method a client of `protocol` must use. A method configured for
    /// the other protocol (say `md5` on the MySQL listener) does not apply,
    /// and that protocol's default is used instead, so one user list can
    /// serve both listeners.
    pub fn auth_for(&self, protocol: Protocol) -> AuthMethod {
        match self.auth {
            Some(method) if method.protocol() == protocol => method,
            _ => AuthMethod::default_for(protocol),
        }
    }
}

/// A client authentication method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum AuthMethod {
    /// PostgreSQL SASL SCRAM-SHA-256; the PostgreSQL default.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// PostgreSQL MD5 password hashing, for old clients.
    #[serde(rename = "md5")]
    Md5,
    /// PostgreSQL: no password asked.
    #[serde(rename = "trust")]
    Trust,
    /// MySQL `mysql_native_password` (SHA-1 based).
    #[serde(rename = "mysql_native_password")]
    MysqlNativePassword,
    /// MySQL `caching_sha2_password`; the MySQL default.
    #[serde(rename = "caching_sha2_password")]
    CachingSha2Password,
}

impl AuthMethod {
    /// The default when a user sets no `auth`.
    pub fn default_for(protocol: Protocol) -> AuthMethod {
        match protocol {
            Protocol::Postgres => AuthMethod::ScramSha256,
            Protocol::Mysql => AuthMethod::CachingSha2Password,
        }
    }

    /// The protocol this method belongs to.
    pub fn protocol(self) -> Protocol {
        match self {
            AuthMethod::ScramSha256 | AuthMethod::Md5 | AuthMethod::Trust => Protocol::Postgres,
            AuthMethod::MysqlNativePassword | AuthMethod::CachingSha2Password => Protocol::Mysql,
        }
    }

    /// The name as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
            AuthMethod::MysqlNativePassword => "mysql_native_password",
            AuthMethod::CachingSha2Password => "caching_sha2_password",
        }
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
