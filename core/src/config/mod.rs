//! The configuration file: its schema, loading, and validation.
//!
//! The YAML shape is a user-facing contract (DESIGN.md, "Configuration"):
//! fields may be added, never renamed. Loading goes
//! text → YAML tree → `${VAR}` expansion → typed structs → checks across
//! sections, and fails with an error that names the setting and the fix.
//! A loaded [`Config`] is valid: the proxy and the controller never re-check.
//!
//! This module reads the file and the TLS files' existence; it opens no
//! connection and never consults the control store.
//!
//! One file per section: `listen` (listeners, admin, TLS, routes), `users`,
//! `backends`, `limits` (and MySQL options), `migrations` (the plan) and
//! `switch` (its write switch).
//! `expand`, `de` and `scalars` are the loading machinery.

mod backends;
mod de;
mod error;
mod expand;
mod limits;
mod listen;
mod migrations;
mod scalars;
mod switch;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

pub use backends::{Backend, BackendKind, BackendTlsMode};
pub use error::ConfigError;
pub use limits::{Limits, MysqlOptions};
pub use listen::{Admin, Listen, Routes, Tls};
pub use migrations::{
    Alerts, Arm, Canary, Migration, OnMirrorError, Phase, Ramp, ReadPath, Reads, Rollback, Shadow,
    SourceTable, StickyBy, Strategy, TargetTable, Unmirrored,
};
pub use scalars::{parse_bytes, parse_duration, parse_socket_addr, Cidr, Percent};
pub use switch::{Switch, MAX_BUDGET};
pub use users::{AuthMethod, User};

/// The smallest `limits.max_frame_bytes` accepted: below it ordinary
/// startup and query messages would be rejected as malformed.
const MIN_FRAME_BYTES: usize = 1024;

/// The whole configuration, valid by construction (see [`Config::from_yaml`]).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Client listeners; none configured means no data plane.
    pub listen: Listen,
    /// Admin HTTP port and its token.
    pub admin: Admin,
    /// Client-side TLS; `None` means plaintext only.
    pub tls: Option<Tls>,
    /// Accounts clients log in to the proxy with.
    pub users: Vec<User>,
    /// Real servers, by name.
    pub backends: BTreeMap<String, Backend>,
    /// Which backend serves each listener.
    pub routes: Routes,
    /// Resource caps.
    pub limits: Limits,
    /// MySQL-only protocol options.
    pub mysql: MysqlOptions,
    /// Table moves.
    pub migrations: Vec<Migration>,
}

/// A client protocol, i.e. one of the two listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// PostgreSQL frontend/backend protocol.
    Postgres,
    /// MySQL / MariaDB client/server protocol.
    Mysql,
}

impl Protocol {
    /// Both protocols.
    pub const ALL: [Protocol; 2] = [Protocol::Postgres, Protocol::Mysql];

    /// The name used in the file (`listen.postgres`) and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Config {
    /// Parses and validates. `base_dir` resolves relative file paths; `env`
    /// looks up variables for `${VAR}` expansion.
    pub fn from_yaml(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut tree: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
                message: e.to_string(),
            })?;
        tree.apply_merge().map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
        })?;
        expand::expand_value(&mut tree, "", env)?;
        let mut config: Config = de::from_value(&tree)?;
        config.resolve(base_dir);
        config.validate()?;
        Ok(config)
    }

    /// Reads the file and uses the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Config::from_yaml(&text, base_dir, &|name| std::env::var(name).ok()).map_err(|error| {
            ConfigError::File {
                path: path.to_path_buf(),
                error: Box::new(error),
            }
        })
    }

    /// The proxy user called `name`.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The backend serving a listener, from `routes`.
    pub fn route(&self, protocol: Protocol) -> Option<(&str, &Backend)> {
        let name = match protocol {
            Protocol::Postgres => self.routes.postgres.as_deref(),
            Protocol::Mysql => self.routes.mysql.as_deref(),
        }?;
        self.backends
            .get_key_value(name)
            .map(|(k, b)| (k.as_str(), b))
    }

    /// The listen address of a protocol, if that listener is on.
    pub fn listener(&self, protocol: Protocol) -> Option<std::net::SocketAddr> {
        match protocol {
            Protocol::Postgres => self.listen.postgres,
            Protocol::Mysql => self.listen.mysql,
        }
    }

    /// The migration with this id.
    pub fn migration(&self, id: &str) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.id == id)
    }

    /// Fills what the file leaves to be derived: absolute TLS paths (client
    /// and backend side), and
    /// target database/schema defaulting to the source's.
    fn resolve(&mut self, base_dir: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.cert = base_dir.join(&tls.cert);
            tls.key = base_dir.join(&tls.key);
        }
        for backend in self.backends.values_mut() {
            backend.resolve(base_dir);
        }
        for m in &mut self.migrations {
            if m.target.database.is_none() {
                m.target.database = m.source.database.clone();
            }
            if m.target.schema.is_none() {
                m.target.schema = m.source.schema.clone();
            }
        }
    }

    /// Checks that span fields or sections; collects every problem.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        self.validate_routes(&mut errors);
        self.validate_users(&mut errors);
        self.validate_backends(&mut errors);
        self.validate_limits(&mut errors);
        self.validate_tls(&mut errors);
        let mut seen = BTreeSet::new();
        for (i, m) in self.migrations.iter().enumerate() {
            let path = format!("migrations[{i}]");
            migrations::validate(m, &path, &self.backends, &mut seen, &mut errors);
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ConfigError::Several(errors)),
        }
    }

    fn validate_routes(&self, errors: &mut Vec<ConfigError>) {
        let first_listener = Protocol::ALL
            .into_iter()
            .find(|p| self.listener(*p).is_some());
        if let (Some(p), true) = (first_listener, self.backends.is_empty()) {
            errors.push(ConfigError::invalid(
                "backends",
                format!("no backends are defined, but `listen.{p}` accepts clients; add the server it fronts, e.g. `backends: {{ pg: {{ kind: postgres, host: 127.0.0.1, port: 5432, user: postgres }} }}`"),
            ));
            return;
        }
        for protocol in Protocol::ALL {
            let route = match protocol {
                Protocol::Postgres => &self.routes.postgres,
                Protocol::Mysql => &self.routes.mysql,
            };
            let field = format!("routes.{protocol}");
            match route {
                None if self.listener(protocol).is_some() => errors.push(ConfigError::invalid(
                    &field,
                    format!("`listen.{protocol}` is set, but no backend serves it; name one of the {protocol} backends here, e.g. `routes: {{ {protocol}: <backend> }}`"),
                )),
                None => {}
                Some(name) => match self.backends.get(name) {
                    None => errors.push(ConfigError::invalid(
                        &field,
                        format!("backend `{name}` is not defined; use one of the names under `backends` ({})", self.backends.keys().cloned().collect::<Vec<_>>().join(", ")),
                    )),
                    Some(b) if b.kind.protocol() != protocol => errors.push(ConfigError::invalid(
                        &field,
                        format!("backend `{name}` is a {} server, but this route serves {protocol} clients; name a backend with `kind: {protocol}`", b.kind),
                    )),
                    Some(_) => {}
                },
            }
        }
    }

    fn validate_users(&self, errors: &mut Vec<ConfigError>) {
        if self.users.is_empty() {
            if let Some(p) = Protocol::ALL
                .into_iter()
                .find(|p| self.listener(*p).is_some())
            {
                errors.push(ConfigError::invalid(
                    "users",
                    format!("no users are defined, but `listen.{p}` accepts clients; add at least one, e.g. `users: [{{ name: app, password: \"${{APP_PASSWORD}}\" }}]`"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.name.trim().is_empty() {
                errors.push(ConfigError::invalid(
                    format!("users[{i}].name"),
                    "the user name is empty; give the login name clients use",
                ));
            } else if !names.insert(&user.name) {
                errors.push(ConfigError::invalid(
                    format!("users[{i}].name"),
                    format!(
                        "user `{}` is defined twice; keep one entry per user",
                        user.name
                    ),
                ));
            }
            if user.backend_password.is_some() && user.backend_user.is_none() {
                errors.push(ConfigError::invalid(
                    format!("users[{i}].backend_password"),
                    format!("user `{}` has a backend_password but no backend_user; add `backend_user`, or remove `backend_password` to use the backend's own credentials", user.name),
                ));
            }
        }
    }

    fn validate_backends(&self, errors: &mut Vec<ConfigError>) {
        for (name, b) in &self.backends {
            b.validate(name, errors);
        }
    }

    fn validate_limits(&self, errors: &mut Vec<ConfigError>) {
        let l = &self.limits;
        if l.max_connections == 0 {
            errors.push(ConfigError::invalid(
                "limits.max_connections",
                "0 would refuse every client; use at least 1 (the default is 10000)",
            ));
        }
        if l.max_frame_bytes < MIN_FRAME_BYTES {
            errors.push(ConfigError::invalid(
                "limits.max_frame_bytes",
                format!("{} bytes is too small for ordinary messages; use at least {MIN_FRAME_BYTES} (the default is `256MiB`)", l.max_frame_bytes),
            ));
        }
        if l.connect_timeout.is_zero() {
            errors.push(ConfigError::invalid(
                "limits.connect_timeout",
                "0 would fail every backend connection; use a duration such as `5s`",
            ));
        }
    }

    fn validate_tls(&self, errors: &mut Vec<ConfigError>) {
        let Some(tls) = &self.tls else { return };
        for (field, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
            if !path.is_file() {
                errors.push(ConfigError::invalid(
                    field,
                    format!("the file `{}` does not exist; create it or correct the path (a relative path is read from the config file's directory)", path.display()),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
