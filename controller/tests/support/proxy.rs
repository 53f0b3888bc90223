//! In-process proxies as the controller's tests use them: start one on a
//! configuration and wait until it has loaded a migration's tables, see
//! what it follows of the control store, and a client of either engine
//! that reads and writes through a proxy's listener with plain SQL.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use switchyard_core::config::{Config, Protocol};
use switchyard_proxy::route::routing::CatalogState;
use switchyard_proxy::route::MigrationRouter;
use switchyard_proxy::server::{self, Running};

/// A proxy on `config`, migration `id`'s tables loaded.
pub async fn start(config: Config, id: &str) -> Running {
    let running = server::start(config, None, Arc::new(MigrationRouter::default()))
        .await
        .expect("proxy starts");
    wait_ready(&running, id).await;
    running
}

/// The id the proxy heartbeats under and the audit log names it by.
pub fn proxy_id(running: &Running) -> String {
    let control = running.shared.control.get();
    control.expect("the proxy follows the store").proxy.clone()
}

/// The stored epoch of migration `id` the proxy enforces (0: none).
pub fn epoch(running: &Running, id: &str) -> u64 {
    let routing = running.shared.routing();
    let stored = routing.migration(id).and_then(|m| m.stored.clone());
    stored.map_or(0, |s| s.epoch)
}

/// Whether the proxy holds writes of migration `id` for its write switch.
pub fn holding_writes(running: &Running, id: &str) -> bool {
    let routing = running.shared.routing();
    let stored = routing.migration(id).and_then(|m| m.stored.clone());
    stored.is_some_and(|s| s.holding_writes)
}

/// Whether the proxy's lease on migration `id`'s store has lapsed, so it
/// refuses writes of the migrated tables.
pub fn lapsed(running: &Running, id: &str) -> bool {
    let routing = running.shared.routing();
    let stored = routing.migration(id).and_then(|m| m.stored.clone());
    stored.is_some_and(|s| s.lapsed.is_some())
}

/// Waits until `done` or panics after `within`, naming `what`.
pub async fn until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether `check` turns true within `within`.
pub async fn eventually<F, Fut>(within: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the proxy has loaded migration `id`'s tables.
pub async fn wait_ready(running: &Running, id: &str) {
    for _ in 0..300 {
        let routing = running.shared.routing();
        if let Some(CatalogState::Ready(_)) = routing.migration(id).map(|m| &m.catalog) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("migration `{id}`: the proxy's catalog never became ready");
}

/// A client session through a proxy, logged in as the test user `app`.
pub enum Through {
    /// Through the proxy's PostgreSQL listener.
    Pg(tokio_postgres::Client),
    /// Through the proxy's MySQL listener.
    My(mysql_async::Conn),
}

impl Through {
    /// Connects to the proxy's listener of `protocol`, in database `db`.
    pub async fn connect(proxy: &Running, protocol: Protocol, db: &str) -> Through {
        let listener = match protocol {
            Protocol::Postgres => proxy.postgres,
            Protocol::Mysql => proxy.mysql,
        };
        let addr = listener.expect("the proxy listens for the protocol");
        if protocol == Protocol::Mysql {
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(addr.ip().to_string())
                .tcp_port(addr.port())
                .user(Some("app"))
                .pass(Some("app"))
                .db_name(Some(db))
                .prefer_socket(false);
            let conn = mysql_async::Conn::new(opts).await;
            return Through::My(conn.expect("login through the proxy"));
        }
        let dsn = format!(
            "host={} port={} user=app password=app dbname={db}",
            addr.ip(),
            addr.port()
        );
        let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .expect("login through the proxy");
        tokio::spawn(conn);
        Through::Pg(client)
    }

    /// The first column of the first row `sql` returns, as text (`None`
    /// for no row or NULL), or the server's error as text (on PostgreSQL
    /// its SQLSTATE and message).
    pub async fn text(&mut self, sql: &str) -> Result<Option<String>, String> {
        match self {
            Through::Pg(client) => {
                let messages =
                    client
                        .simple_query(sql)
                        .await
                        .map_err(|e| match e.as_db_error() {
                            Some(db) => format!("{}: {}", db.code().code(), db.message()),
                            None => e.to_string(),
                        })?;
                Ok(messages.into_iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                    _ => None,
                }))
            }
            Through::My(conn) => {
                let row: Option<mysql_async::Row> =
                    conn.query_first(sql).await.map_err(|e| e.to_string())?;
                Ok(row.and_then(|r| r.get_opt::<Option<String>, _>(0)?.ok().flatten()))
            }
        }
    }
}
