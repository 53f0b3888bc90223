//! Starting and stopping a whole proxy: listeners, admin, reload, and the
//! graceful drain. `main` and the end-to-end tests both use it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::config::{Config, Protocol};
use switchyard_core::names;

use crate::relay::workers::Workers;
use crate::route::Route;
use crate::state::{Shared, Snapshot};

/// A running proxy.
pub struct Running {
    /// Shared state, for inspection and shutdown.
    pub shared: Arc<Shared>,
    /// Where the PostgreSQL listener is bound, if configured.
    pub postgres: Option<SocketAddr>,
    /// Where the MySQL listener is bound, if configured.
    pub mysql: Option<SocketAddr>,
    /// Where the admin listener is bound, if configured.
    pub admin: Option<SocketAddr>,
}

/// Starts every configured listener. With `config_path`, the file is
/// watched for changes.
pub async fn start(
    config: Config,
    config_path: Option<PathBuf>,
    router: Arc<dyn Route>,
) -> anyhow::Result<Running> {
    crate::admin::recorder();
    let snapshot = Snapshot::build(config, 1)?;
    let shared = Shared::new(snapshot, router);
    shared.publish_routing(|_| {});
    metrics::gauge!(names::CONFIG_GENERATION).set(1.0);
    let config = shared.snapshot_full().config.clone();
    let mut running = Running {
        shared: shared.clone(),
        postgres: None,
        mysql: None,
        admin: None,
    };
    let workers = Arc::new(Workers::start(config.limits.worker_threads)?);
    if let Some(addr) = config.listen.postgres {
        running.postgres = Some(
            crate::relay::listen(shared.clone(), addr, Protocol::Postgres, workers.clone())
                .await?
                .0,
        );
    }
    if let Some(addr) = config.listen.mysql {
        running.mysql = Some(
            crate::relay::listen(shared.clone(), addr, Protocol::Mysql, workers)
                .await?
                .0,
        );
    }
    if let Some(addr) = config.admin.listen {
        running.admin = Some(crate::admin::serve(shared.clone(), addr).await?);
    }
    // Always, not only with migrations at start: a reload may add the
    // first one. Idle, the task only compares a generation once a second.
    crate::catalog::spawn(shared.clone());
    let port = [running.admin, running.postgres, running.mysql]
        .into_iter()
        .flatten()
        .next()
        .map_or(0, |a| a.port());
    crate::control::spawn(shared.clone(), crate::control::proxy_id(port));
    crate::guard::spawn(shared.clone());
    // The outbox applier: every replica runs one; two at once take
    // different entries (see `mirror::outbox`).
    crate::mirror::outbox::spawn(shared.clone());
    crate::mirror::watch::spawn(shared.clone());
    crate::guard::start_shadow(&shared);
    if let Some(path) = config_path {
        crate::reload::spawn(shared.clone(), path, Duration::from_secs(1));
    }
    Ok(running)
}

impl Running {
    /// Stops accepting, lets sessions finish their transactions, and
    /// returns once all have closed or `limits.drain_timeout` has passed.
    /// Returns how many sessions were still open at the deadline.
    pub async fn drain(&self) -> usize {
        let timeout = self.shared.snapshot().config.limits.drain_timeout;
        self.shared.draining.send_replace(true);
        let deadline = Instant::now() + timeout;
        while self.shared.active_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.active_connections()
    }
}
