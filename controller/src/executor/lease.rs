//! The controller lease: one controller acts on a store at a time. A
//! second one waits for the lease; a crashed one's lease expires after
//! [`TTL`] and the next takes over. While held, a task renews it on a
//! connection of its own, so a long backfill never lets it lapse.

use std::time::{Duration, Instant};

use switchyard_core::sql::Dialect;
use switchyard_core::store::{mysql as my, pg};
use tokio::task::JoinHandle;

use super::store::{text, Store};
use super::ExecError;
use crate::live::Site;

/// How long a lease lasts without renewal.
pub const TTL: Duration = Duration::from_secs(15);
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a waiting controller tries again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// A held lease; dropping it stops the renewal, [`Lease::release`] also
/// gives it up at once.
pub struct Lease {
    /// Who holds it: unique per process, so two controllers on one host
    /// never share a lease.
    holder: String,
    /// The renewal task.
    renewal: JoinHandle<()>,
    /// The store connection the lease lives on, for the release.
    store: Store,
}

/// Tries once to take or renew the lease for `holder`; returns the
/// current holder's name (ours when taken).
async fn try_take(store: &mut Store, holder: &str) -> Result<String, ExecError> {
    let schema = store.schema.clone();
    match store.dialect {
        Dialect::Postgres => {
            let rows = store
                .rows("taking the lease", &pg::acquire_lease(&schema, holder, TTL))
                .await?;
            if !rows.is_empty() {
                return Ok(holder.to_string());
            }
            let rows = store
                .rows("reading the lease", &pg::lease_holder(&schema))
                .await?;
            Ok(rows.first().map(|r| text(r.first())).unwrap_or_default())
        }
        Dialect::Mysql => {
            store
                .execute("taking the lease", &my::acquire_lease(&schema, holder, TTL))
                .await?;
            let rows = store
                .rows("reading the lease", &my::lease_holder(&schema))
                .await?;
            Ok(rows.first().map(|r| text(r.first())).unwrap_or_default())
        }
    }
}

impl Lease {
    /// Takes the lease for `holder`, waiting up to `wait` for another
    /// controller to let go (or its lease to expire).
    pub async fn take(site: &Site, holder: &str, wait: Duration) -> Result<Lease, ExecError> {
        let mut store = Store::open(site).await?;
        let started = Instant::now();
        let mut announced = false;
        loop {
            let current = try_take(&mut store, holder).await?;
            if current == holder {
                break;
            }
            if started.elapsed() >= wait {
                return Err(ExecError::Lease {
                    migration: site.migration.id.clone(),
                    holder: current,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            if !announced {
                eprintln!("switchyard: controller `{current}` holds the lease; waiting for it");
                announced = true;
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
        let mut renewer = Store::open(site).await?;
        let name = holder.to_string();
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(e) = try_take(&mut renewer, &name).await {
                    tracing::warn!(error = %e, "renewing the controller lease failed");
                }
            }
        });
        Ok(Lease {
            holder: holder.to_string(),
            renewal,
            store,
        })
    }

    /// Gives the lease up so the next controller need not wait.
    pub async fn release(mut self) {
        self.renewal.abort();
        let statement = match self.store.dialect {
            Dialect::Postgres => pg::release_lease(&self.store.schema, &self.holder),
            Dialect::Mysql => my::release_lease(&self.store.schema, &self.holder),
        };
        let _ = self.store.execute("releasing the lease", &statement).await;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}
