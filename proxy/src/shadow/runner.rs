//! The shadow's engine room: a bounded queue sessions drop reads into
//! without waiting, a task that runs each read on a pooled connection of
//! the proxy's own, and the outcome: a metric, a sample when the two paths
//! disagree, and the caller's callback.
//!
//! A mismatch is re-checked once in a fresh snapshot before it counts, so
//! only a difference that persists can roll reads back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchyard_core::config::{Backend, BackendKind};
use switchyard_core::names;
use tokio::sync::{mpsc, Semaphore};

use super::compare::{compare, Rows};
use super::eligibility::{shadowable, RowOrder, Skip};
use super::pool::{Conn, Lease, LeaseError, Pools};
use super::samples::{MismatchSample, Samples};
use super::{mysql, pg, ShadowJob, ShadowOutcome, ShadowResult};
use crate::relay::backend_tls::BackendTls;
use crate::route::fingerprint::{fingerprint, Dialect};
use crate::state::{Shared, Snapshot};

/// Where the shadow finds a backend's entry and TLS client by name. The
/// live proxy answers from the configuration in force ([`Shared`]), so a
/// reload is followed; a fixed [`Snapshot`] serves tests.
pub trait Backends: Send + Sync + 'static {
    /// The entry `backends.NAME` and the TLS client sessions use for it.
    fn backend(&self, name: &str) -> Option<(Backend, BackendTls)>;
}

impl Backends for Snapshot {
    fn backend(&self, name: &str) -> Option<(Backend, BackendTls)> {
        let backend = self.config.backends.get(name)?.clone();
        Some((backend, self.backend_tls(name).clone()))
    }
}

impl Backends for Shared {
    fn backend(&self, name: &str) -> Option<(Backend, BackendTls)> {
        self.snapshot().backend(name)
    }
}

/// The shadow's bounds.
#[derive(Clone, Debug)]
pub struct ShadowLimits {
    /// Reads waiting to run; past this, `submit` skips (`busy`).
    pub queue: usize,
    /// Connections (and so reads at once) per backend, login user and
    /// database.
    pub pool_per_backend: usize,
    /// Rows one form may return; past this the read is skipped
    /// (`too_large`).
    pub max_rows: usize,
    /// Bytes of values one form may return, likewise.
    pub max_bytes: usize,
    /// How long a read may wait for a connection (then `busy`), and how
    /// long connecting and the snapshot read may take (then `error`).
    pub timeout: Duration,
    /// Mismatch samples kept per migration.
    pub samples_per_migration: usize,
}

impl Default for ShadowLimits {
    fn default() -> ShadowLimits {
        ShadowLimits {
            queue: 256,
            pool_per_backend: 4,
            max_rows: 1000,
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            samples_per_migration: 20,
        }
    }
}

/// Called with every outcome, on the shadow's task (or, for `busy`, in
/// `submit`): it must return quickly.
pub type Report = Arc<dyn Fn(ShadowOutcome) + Send + Sync>;

/// Why one snapshot read gave no answer to compare.
pub(super) enum Failure {
    /// Not compared; the connection is fine.
    Skipped(Skip),
    /// Not compared, and the connection has unread results: drop it.
    Abandoned(Skip),
    /// The server refused a statement; the connection is fine.
    Server(String),
    /// The connection failed: drop it.
    Broken(String),
}

/// The handle sessions hold: cheap to clone, one per proxy.
#[derive(Clone)]
pub struct Shadow {
    /// Reads waiting for the worker.
    queue: mpsc::Sender<ShadowJob>,
    /// What the worker and the handle share.
    engine: Arc<Engine>,
}

/// What runs the reads and records their outcomes.
struct Engine {
    /// Backend entries by name.
    backends: Arc<dyn Backends>,
    /// The bounds.
    limits: ShadowLimits,
    /// The shadow's own connections.
    pools: Pools,
    /// The last mismatches per migration.
    samples: Samples,
    /// The caller's outcome callback.
    report: Report,
}

impl Shadow {
    /// Starts the shadow's worker on the current tokio runtime. It runs
    /// until every handle is dropped.
    pub fn new(backends: Arc<dyn Backends>, limits: ShadowLimits, report: Report) -> Shadow {
        let (queue, jobs) = mpsc::channel(limits.queue.max(1));
        let engine = Arc::new(Engine {
            backends,
            pools: Pools::new(limits.pool_per_backend, limits.timeout),
            samples: Samples::new(limits.samples_per_migration),
            limits,
            report,
        });
        tokio::spawn(work(engine.clone(), jobs));
        Shadow { queue, engine }
    }

    /// Hands a read to the shadow without waiting. A full queue (or a
    /// stopped worker) makes it `skipped` (`busy`) at once.
    pub fn submit(&self, job: ShadowJob) {
        if let Err(refused) = self.queue.try_send(job) {
            let job = match refused {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job
                }
            };
            self.engine
                .deliver(job.migration, ShadowResult::Skipped(Skip::Busy));
        }
    }

    /// The last mismatches of `migration`, oldest first.
    pub fn mismatches(&self, migration: &str) -> Vec<MismatchSample> {
        self.engine.samples.of(migration)
    }
}

/// The worker: takes reads off the queue and runs each on a task of its
/// own, at most as many at once as the queue holds (the pools bound the
/// connections; this bounds the tasks waiting for them).
async fn work(engine: Arc<Engine>, mut jobs: mpsc::Receiver<ShadowJob>) {
    let running = Arc::new(Semaphore::new(engine.limits.queue.max(1)));
    while let Some(job) = jobs.recv().await {
        let Ok(slot) = running.clone().acquire_owned().await else {
            return;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            let migration = job.migration.clone();
            let result = engine.run(job).await;
            engine.deliver(migration, result);
            drop(slot);
        });
    }
}

impl Engine {
    /// Counts, keeps and reports one outcome.
    fn deliver(&self, migration: Arc<str>, result: ShadowResult) {
        let label = result.label();
        match &result {
            ShadowResult::Skipped(skip) => {
                tracing::debug!(%migration, reason = skip.label(), "shadow read skipped");
                metrics::counter!(names::SHADOW_COMPARE_TOTAL, "migration" => migration.to_string(), "result" => label, "reason" => skip.label()).increment(1);
            }
            other => {
                if let ShadowResult::Mismatch(sample) = other {
                    tracing::debug!(%migration, fingerprint = sample.fingerprint, "shadow mismatch");
                    self.samples.push(sample.clone());
                }
                if let ShadowResult::Error(error) = other {
                    tracing::debug!(%migration, %error, "shadow read failed");
                }
                metrics::counter!(names::SHADOW_COMPARE_TOTAL, "migration" => migration.to_string(), "result" => label).increment(1);
            }
        }
        (self.report)(ShadowOutcome { migration, result });
    }

    /// Runs one job to its verdict.
    async fn run(&self, job: ShadowJob) -> ShadowResult {
        if job
            .target_backend
            .as_ref()
            .is_some_and(|t| *t != job.backend)
        {
            return ShadowResult::Skipped(Skip::CrossServer);
        }
        let order = match job.order {
            Some(order) => order,
            None => match shadowable(job.dialect, &job.source_sql, &job.key_columns) {
                Ok(order) => order,
                Err(skip) => return ShadowResult::Skipped(skip),
            },
        };
        if job.source_sql.len() + job.target_sql.len() > self.limits.max_bytes {
            return ShadowResult::Skipped(Skip::TooLarge);
        }
        let Some((backend, tls)) = self.backends.backend(&job.backend) else {
            return ShadowResult::Error(format!("backend `{}` is not configured", job.backend));
        };
        let speaks = match backend.kind {
            BackendKind::Postgres => Dialect::Postgres,
            BackendKind::Mysql => Dialect::Mysql,
        };
        if speaks != job.dialect {
            return ShadowResult::Error(format!(
                "backend `{}` speaks another protocol",
                job.backend
            ));
        }
        // A MySQL connection has one user for good; the pool's is the
        // backend's.
        if speaks == Dialect::Mysql && job.role.as_ref().is_some_and(|r| *r != backend.user) {
            return ShadowResult::Skipped(Skip::Settings);
        }
        let lease = match self
            .pools
            .lease(&job.backend, &backend, &tls, &job.database)
            .await
        {
            Ok(lease) => lease,
            Err(LeaseError::Busy) => return ShadowResult::Skipped(Skip::Busy),
            Err(LeaseError::Failed(error)) => return ShadowResult::Error(error),
        };
        let checked = self.checked(lease, &job, order, &backend.user);
        match tokio::time::timeout(self.limits.timeout, checked).await {
            Ok(result) => result,
            // The lease went with the future: the connection is closed.
            Err(_) => ShadowResult::Error(format!(
                "backend `{}`: shadow read timed out after {:?}",
                job.backend, self.limits.timeout
            )),
        }
    }

    /// Reads both forms and compares them; a difference is read and
    /// compared again in a new snapshot, and counts only if it persists.
    async fn checked(
        &self,
        mut lease: Lease,
        job: &ShadowJob,
        order: RowOrder,
        login_user: &str,
    ) -> ShadowResult {
        let mut difference = None;
        for _ in 0..2 {
            let (source, target) = match self.read(&mut lease.conn, job, login_user).await {
                Ok(rows) => rows,
                Err(failure) => return failed(lease, failure),
            };
            difference = compare(&source, &target, order, &job.key_columns);
            if difference.is_none() {
                break;
            }
        }
        lease.give_back();
        match difference {
            None => ShadowResult::Match,
            Some(difference) => ShadowResult::Mismatch(MismatchSample {
                migration: job.migration.clone(),
                fingerprint: fingerprint(job.dialect, &job.source_sql),
                at: SystemTime::now(),
                difference,
            }),
        }
    }

    async fn read(
        &self,
        conn: &mut Conn,
        job: &ShadowJob,
        login_user: &str,
    ) -> Result<(Rows, Rows), Failure> {
        match conn {
            Conn::Postgres(client) => {
                pg::snapshot_read(client, job, login_user, &self.limits).await
            }
            Conn::Mysql(conn) => mysql::snapshot_read(conn, job, &self.limits).await,
        }
    }
}

/// The verdict of a failed read, keeping the connection only if it is
/// still sound.
fn failed(lease: Lease, failure: Failure) -> ShadowResult {
    match failure {
        Failure::Skipped(skip) => {
            lease.give_back();
            ShadowResult::Skipped(skip)
        }
        Failure::Server(error) => {
            lease.give_back();
            ShadowResult::Error(error)
        }
        Failure::Abandoned(skip) => ShadowResult::Skipped(skip),
        Failure::Broken(error) => ShadowResult::Error(error),
    }
}
