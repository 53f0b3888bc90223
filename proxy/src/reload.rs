//! Config hot reload: the file is re-read when it changes and on SIGHUP,
//! validated, and published as a new snapshot. A bad file keeps the old
//! configuration in force, logs why and counts the rejection.
//!
//! The file is polled (once a second, comparing content) rather than
//! watched with inotify: Kubernetes updates a mounted ConfigMap by swapping
//! a symlink, which file watchers miss, while a content check cannot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::config::Config;
use switchyard_core::names;

use crate::state::{Shared, Snapshot};

/// What one reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new generation is in force.
    Applied(u64),
    /// The file parses to the configuration already in force.
    Unchanged,
    /// The file is invalid; the old configuration stays.
    Rejected(String),
}

/// Re-reads `path` and publishes it if it is valid and different.
pub fn reload(shared: &Shared, path: &Path) -> Outcome {
    let outcome = match Config::load(path) {
        Err(e) => Outcome::Rejected(e.to_string()),
        Ok(config) => {
            let current = shared.snapshot_full();
            if *current.config == config {
                Outcome::Unchanged
            } else {
                warn_restart_only(&current.config, &config);
                let generation = current.generation + 1;
                match Snapshot::build(config, generation) {
                    Ok(snapshot) => {
                        grow_slots(shared, &current.config, &snapshot.config);
                        shared.snapshot.store(Arc::new(snapshot));
                        shared.publish_routing(|_| {});
                        metrics::gauge!(names::CONFIG_GENERATION).set(generation as f64);
                        Outcome::Applied(generation)
                    }
                    Err(e) => Outcome::Rejected(format!("{e:#}")),
                }
            }
        }
    };
    let label = match &outcome {
        Outcome::Applied(generation) => {
            tracing::info!(generation, path = %path.display(), "configuration reloaded");
            "applied"
        }
        Outcome::Unchanged => "unchanged",
        Outcome::Rejected(why) => {
            tracing::error!(path = %path.display(), error = %why, "configuration rejected; the previous one stays in force");
            "rejected"
        }
    };
    metrics::counter!(names::CONFIG_RELOADS_TOTAL, "outcome" => label).increment(1);
    outcome
}

/// Some settings bind sockets at start; say so rather than ignore silently.
fn warn_restart_only(old: &Config, new: &Config) {
    if old.listen != new.listen || old.admin.listen != new.admin.listen {
        tracing::warn!("listen addresses changed; they take effect when the proxy restarts");
    }
}

fn grow_slots(shared: &Shared, old: &Config, new: &Config) {
    let (was, now) = (old.limits.max_connections, new.limits.max_connections);
    if now > was {
        shared.slots.add_permits(now - was);
    } else if now < was {
        tracing::warn!(
            was,
            now,
            "limits.max_connections can only shrink at restart"
        );
    }
}

/// Watches the file (content polled every `interval`) and SIGHUP until the
/// process exits.
pub fn spawn(shared: Arc<Shared>, path: PathBuf, interval: Duration) {
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(interval);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let now = std::fs::read(&path).ok();
            if forced || now != last {
                last = now;
                reload(&shared, &path);
            }
        }
    });
}
