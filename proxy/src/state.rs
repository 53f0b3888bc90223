//! What every session shares: the configuration snapshot in force, the
//! statement classifier, the router, the cancel-key registry, counters and
//! the shutdown signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use switchyard_core::config::Config;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::relay::backend_tls::{self, BackendTls, TlsFileError};
use crate::relay::dial::Endpoint;
use crate::relay::tls;
use crate::route::classify::Classifier;
use crate::route::routing::{Routing, Runtime};
use crate::route::Route;

/// One immutable view of the configuration, swapped whole on reload so a
/// session never sees half of an old file and half of a new one.
pub struct Snapshot {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// 1 at start, +1 for every reload applied.
    pub generation: u64,
    /// The TLS acceptor built from `tls:`; `None` declines TLS.
    pub tls: Option<TlsAcceptor>,
    /// Each backend's TLS client, built here so CA and key files are read
    /// once per configuration, not once per connection, and a reload with
    /// an unreadable file is refused like any invalid configuration.
    pub backend_tls: HashMap<String, BackendTls>,
}

impl Snapshot {
    /// Builds a snapshot, loading the TLS certificate if one is configured.
    pub fn build(config: Config, generation: u64) -> anyhow::Result<Snapshot> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let backend_tls = config
            .backends
            .iter()
            .map(|(name, b)| Ok((name.clone(), BackendTls::build(name, b)?)))
            .collect::<Result<_, TlsFileError>>()?;
        Ok(Snapshot {
            config: Arc::new(config),
            generation,
            tls,
            backend_tls,
        })
    }

    /// The TLS setting of backend `name` (plain for an unknown name).
    pub fn backend_tls(&self, name: &str) -> &BackendTls {
        self.backend_tls.get(name).unwrap_or(&backend_tls::DISABLED)
    }
}

/// Where to send a cancel request for a proxy-issued key.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    /// Where the backend holding the session listens (TCP or a Unix
    /// socket); the request goes there in plain, as libpq sends it.
    pub endpoint: Endpoint,
    /// The backend's own process id.
    pub pid: i32,
    /// The backend's own secret key.
    pub secret: i32,
}

/// The first MySQL connection id the proxy presents to clients.
pub const FIRST_MYSQL_ID: u32 = 0x4000_0000;

/// A MySQL session's backend thread, for `KILL QUERY <proxy id>`.
#[derive(Clone, Debug)]
pub struct KillTarget {
    /// The backend's name in `backends:`.
    pub backend: String,
    /// The backend's own connection (thread) id.
    pub thread_id: u32,
}

/// Connection counters the admin `/status` page reports.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client connections open now.
    pub active: AtomicUsize,
    /// Client connections accepted since start.
    pub accepted: AtomicU64,
}

/// State shared by the listeners, sessions, admin and reload tasks.
pub struct Shared {
    /// The configuration in force.
    pub snapshot: ArcSwap<Snapshot>,
    /// The router's input: the configuration merged with runtime state.
    /// Rebuilt whenever either changes ([`Shared::publish_routing`]).
    pub routing: ArcSwap<Routing>,
    /// Runtime state that outlives a reload (rules set through the admin
    /// API). Locked only to change it, never on the statement path.
    pub runtime: Mutex<Runtime>,
    /// Statement classification, cached by statement shape.
    pub classifier: Classifier,
    /// The per-statement decision.
    pub router: Arc<dyn Route>,
    /// Proxy-issued cancel keys mapped to the real backend keys.
    pub cancel_keys: DashMap<(i32, i32), CancelTarget>,
    /// MySQL connection ids the proxy presented, mapped to backend threads.
    pub mysql_threads: DashMap<u32, KillTarget>,
    /// The next MySQL connection id to present to a client.
    pub next_mysql_id: AtomicU32,
    /// Connection counters.
    pub counters: Counters,
    /// Caps concurrent client connections at `limits.max_connections`.
    pub slots: Arc<Semaphore>,
    /// When the process started, for `/status`.
    pub started: Instant,
    /// Flips to `true` when the proxy starts draining.
    pub draining: watch::Sender<bool>,
    /// Each migration's window of read outcomes, judged by the guard.
    pub guards: crate::guard::Guards,
    /// Per migration copied through the outbox: the last instant at which
    /// its outbox was seen empty, so every write committed before it is on
    /// the target (read-your-writes for sessions that wrote).
    pub outbox_applied: DashMap<String, Instant>,
    /// Shadow compare, started with the listeners.
    pub shadow: std::sync::OnceLock<crate::shadow::Shadow>,
    /// The control store follower, started with the listeners: where rule
    /// changes and rollbacks go to be stored for every replica.
    pub control: std::sync::OnceLock<crate::control::Control>,
    /// Bumped on every routing publish, so a held write wakes when the
    /// hold ends rather than polling.
    pub routing_changed: watch::Sender<u64>,
}

impl Shared {
    /// Shared state for a first snapshot and a router.
    pub fn new(snapshot: Snapshot, router: Arc<dyn Route>) -> Arc<Shared> {
        let limits = &snapshot.config.limits;
        let classifier = Classifier::new(limits.classify_cache_entries);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let runtime = Runtime::default();
        let routing = Routing::build(&snapshot.config, snapshot.generation, &runtime);
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            routing: ArcSwap::from_pointee(routing),
            runtime: Mutex::new(runtime),
            classifier,
            router,
            cancel_keys: DashMap::new(),
            mysql_threads: DashMap::new(),
            // Far above the thread ids a server hands out, so a `KILL n`
            // with a real backend id (from CONNECTION_ID()) is never taken
            // for a proxy id, and still below 2^31 for clients that read
            // the id as a signed int.
            next_mysql_id: AtomicU32::new(FIRST_MYSQL_ID),
            counters: Counters::default(),
            slots,
            started: Instant::now(),
            draining: watch::channel(false).0,
            guards: crate::guard::Guards::default(),
            outbox_applied: DashMap::new(),
            shadow: std::sync::OnceLock::new(),
            control: std::sync::OnceLock::new(),
            routing_changed: watch::channel(0).0,
        })
    }

    /// The configuration in force now.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The configuration in force now, to hold across awaits.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The router's input in force now.
    pub fn routing(&self) -> arc_swap::Guard<Arc<Routing>> {
        self.routing.load()
    }

    /// Rebuilds the router's input from the configuration in force and the
    /// runtime state (after `change`), and publishes it: live for the next
    /// statement of every session.
    pub fn publish_routing(&self, change: impl FnOnce(&mut Runtime)) {
        let snapshot = self.snapshot_full();
        let mut runtime = self.runtime.lock().unwrap_or_else(|e| e.into_inner());
        let rolled_back: Vec<String> = runtime.rollbacks.keys().cloned().collect();
        change(&mut runtime);
        runtime.prune(&snapshot.config);
        for id in rolled_back {
            if !runtime.rollbacks.contains_key(&id) {
                // Lifted by a new rule: the reads before it do not count.
                self.guards.reset(&id);
            }
        }
        let routing = Routing::build(&snapshot.config, snapshot.generation, &runtime);
        for m in &routing.migrations {
            metrics::gauge!(switchyard_core::names::TARGET_SHARE, "migration" => m.plan.id.clone())
                .set(f64::from(m.target_share()));
        }
        let serial = routing.serial;
        self.routing.store(Arc::new(routing));
        self.routing_changed.send_replace(serial);
    }

    /// Whether the proxy is draining for shutdown.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Client connections open now.
    pub fn active_connections(&self) -> usize {
        self.counters.active.load(Ordering::Relaxed)
    }
}
