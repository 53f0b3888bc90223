//! Test harness: fresh databases, an in-process proxy on free ports, and
//! clients connected through it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use switchyard_core::config::Config;
use switchyard_proxy::route::{MigrationRouter, Route};
use switchyard_proxy::server::{self, Running};
use tokio_postgres::{Client, NoTls};


/// A direct connection to the real server.
pub async fn direct(db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&format!("host=127.0.0.1 port=5432 user=postgres dbname={db}"), NoTls)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/ensure-databases.sh)");
    tokio::spawn(conn);
    client
}

/// Creates a fresh database named after the test.
pub async fn create_db(prefix: &str) -> String {
    let name = format!("sy_{prefix}_{}", rand::random::<u32>());
    direct("postgres").await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    name
}

/// Drops a test database, ending any session still in it.
pub async fn drop_db(name: &str) {
    let admin = direct("postgres").await;
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// The users and backend every test config starts from.
pub fn base_yaml() -> String {
    r#"
listen: { postgres: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
users:
  - { name: app, password: app }
  - { name: app_md5, password: app, auth: md5 }
  - { name: app_trust, password: "", auth: trust }
backends:
  pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: "" }
routes: { postgres: pg }
"#
    .to_string()
}

/// A proxy running in this process.
pub struct Proxy {
    /// The running proxy.
    pub running: Running,
    /// Its PostgreSQL listener.
    pub addr: SocketAddr,
}

/// Starts a proxy from YAML with a router.
pub async fn start(yaml: &str, router: Arc<dyn Route>) -> Proxy {
    let config = Config::from_yaml(yaml, Path::new("."), &|_| None).unwrap_or_else(|e| panic!("test config: {e}"));
    let running = server::start(config, None, router).await.expect("proxy starts");
    let addr = running.postgres.expect("postgres listener");
    Proxy { running, addr }
}

/// Starts a proxy with the base config and the production router.
pub async fn start_default() -> Proxy {
    start(&base_yaml(), Arc::new(MigrationRouter)).await
}

impl Proxy {
    /// A libpq-style connection string through the proxy.
    pub fn dsn(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "host={} port={} user={user} password={password} dbname={db}",
            self.addr.ip(),
            self.addr.port()
        )
    }

    /// Connects through the proxy as `app`.
    pub async fn connect(&self, db: &str) -> Client {
        self.try_connect("app", "app", db).await.expect("connect through the proxy")
    }

    /// Connects through the proxy, returning the error if login fails.
    pub async fn try_connect(&self, user: &str, password: &str, db: &str) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.dsn(user, password, db), NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}
