//! Alert webhooks: the proxy announces read warnings and rollbacks to the
//! URLs in each migration's `alerts.webhooks`.
//!
//! [`Alerter::send`] never blocks and never awaits, so announcing a breach
//! can never slow a read down: it hands the alert to one background task
//! over a bounded queue, and when the queue is full the alert is dropped and
//! counted. The task suppresses repeats ([`repeats`]) and posts each alert
//! to each URL on a task of its own ([`webhook`]), retrying with exponential
//! backoff, so a dead URL delays neither the other URLs nor the next alert.
//!
//! Every alert is counted in `switchyard_alerts_total{migration,kind,outcome}`:
//! `sent` and `failed` once per URL, `suppressed` and `dropped` once per
//! alert. Labels and logs never carry SQL, key values, user names, or a
//! webhook's path (chat services keep their token there).

mod repeats;
mod webhook;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::{Serialize, Serializer};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Semaphore};

use switchyard_core::names;

use self::repeats::Repeats;
use self::webhook::Poster;

/// How long an alert silences its repeats when the migration says nothing.
pub const DEFAULT_REPEAT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// One announcement: a migration's target reads earned a warning or a
/// rollback.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The migration whose target misbehaved.
    pub migration: String,
    /// A warning, or a rollback the proxy already carried out.
    pub kind: AlertKind,
    /// What breached, as a label: `error_rate`, `mismatch_rate`,
    /// `latency`, `timeouts`. With `migration` and `kind` it is what makes
    /// two alerts repeats of each other.
    pub reason: &'static str,
    /// A sentence for a person, with the figures in it.
    pub text: String,
    /// The figures behind the verdict, for programs reading the webhook.
    pub figures: Figures,
    /// When the verdict was reached; retries post it unchanged.
    pub at: SystemTime,
    /// Where it is posted: the migration's `alerts.webhooks`.
    pub webhooks: Vec<String>,
    /// How long after this alert is announced its repeats stay silent.
    pub repeat_window: Duration,
}

/// What an alert announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// The target passed a warning threshold; reads still go there.
    Warn,
    /// The target passed a rollback threshold; its reads are back on the source.
    Rollback,
}

impl AlertKind {
    /// The `kind` label and JSON field.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::Warn => "warn",
            AlertKind::Rollback => "rollback",
        }
    }
}

/// The figures of a verdict, in one shape for every reason so a program
/// reading webhooks needs no case per reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// What the window measured: a rate in 0..=1, a p99 latency ratio of
    /// target to source, or a number of timeouts.
    pub observed: f64,
    /// The configured limit `observed` passed.
    pub threshold: f64,
    /// Target reads in the window.
    pub samples: u64,
    /// The sliding window the figures cover.
    #[serde(rename = "window_seconds", serialize_with = "seconds")]
    pub window: Duration,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// How alerts are delivered.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Names this proxy in every alert, so an operator knows which replica
    /// judged: the host name (a pod's name under Kubernetes).
    pub proxy: String,
    /// Alerts waiting for the delivery task; `send` drops what does not
    /// fit. Repeats are suppressed, so only a storm fills it.
    pub queue: usize,
    /// Posts in flight at once: bounds the sockets and memory a storm of
    /// alerts to dead webhooks can hold. When every slot is taken, alerts
    /// wait in the queue.
    pub concurrency: usize,
    /// How long one post may take, connect to response.
    pub timeout: Duration,
    /// How often a post is tried, and how long it waits in between.
    pub retry: Retry,
}

impl Default for Delivery {
    fn default() -> Delivery {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        Delivery {
            proxy: if host.is_empty() {
                "switchyard-proxy".to_string()
            } else {
                host
            },
            queue: 256,
            concurrency: 16,
            timeout: Duration::from_secs(5),
            retry: Retry::default(),
        }
    }
}

/// Exponential backoff: `attempts` posts in all, the first wait
/// `first_delay`, each later wait twice the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Posts to one URL before it is given up; at least one is made.
    pub attempts: u32,
    /// Wait after the first failure.
    pub first_delay: Duration,
}

impl Default for Retry {
    /// 0.5 s, 1 s, 2 s, 4 s between five attempts: a webhook that restarts
    /// within about eight seconds still gets the alert.
    fn default() -> Retry {
        Retry {
            attempts: 5,
            first_delay: Duration::from_millis(500),
        }
    }
}

impl Retry {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.first_delay.saturating_mul(1 << doublings)
    }
}

/// Why alerts cannot be delivered at all.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("alerts: cannot set up the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The handle sessions and the rollback judge announce alerts through.
/// Cheap to clone: every clone feeds the same delivery task, which ends when
/// the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Alerter {
    /// The bounded queue to the delivery task.
    queue: mpsc::Sender<Alert>,
}

impl Alerter {
    /// Starts the delivery task with the default [`Delivery`]. Must be
    /// called inside a tokio runtime.
    pub fn spawn() -> Result<Alerter, AlertError> {
        Alerter::spawn_with(Delivery::default())
    }

    /// Starts the delivery task. Must be called inside a tokio runtime.
    pub fn spawn_with(delivery: Delivery) -> Result<Alerter, AlertError> {
        let poster = Poster::new(delivery.timeout, delivery.retry)?;
        let (alerter, queue) = Alerter::with_queue(delivery.queue);
        tokio::spawn(dispatch(queue, delivery, poster));
        Ok(alerter)
    }

    /// An alerter and the receiving end of its queue.
    fn with_queue(capacity: usize) -> (Alerter, mpsc::Receiver<Alert>) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        (Alerter { queue }, receiver)
    }

    /// Announces `alert`. Returns at once: a full queue drops the alert
    /// and counts it `dropped`. An alert without webhooks goes nowhere.
    pub fn send(&self, alert: Alert) {
        if alert.webhooks.is_empty() {
            return;
        }
        let (alert, why) = match self.queue.try_send(alert) {
            Ok(()) => return,
            Err(TrySendError::Full(alert)) => (alert, "the alert queue is full"),
            Err(TrySendError::Closed(alert)) => (alert, "the alert task has stopped"),
        };
        count(&alert.migration, alert.kind, "dropped");
        tracing::warn!(
            migration = %alert.migration,
            kind = alert.kind.label(),
            reason = alert.reason,
            "alert dropped: {why}"
        );
    }
}

/// The delivery task: suppresses repeats, then starts one post per URL,
/// at most `concurrency` at a time.
async fn dispatch(mut queue: mpsc::Receiver<Alert>, delivery: Delivery, poster: Poster) {
    let poster = Arc::new(poster);
    let slots = Arc::new(Semaphore::new(delivery.concurrency.max(1)));
    let mut repeats = Repeats::default();
    while let Some(alert) = queue.recv().await {
        if !repeats.admit(&alert, Instant::now()) {
            count(&alert.migration, alert.kind, "suppressed");
            continue;
        }
        let body = Bytes::from(webhook::body(&alert, &delivery.proxy).to_string());
        for url in alert.webhooks {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (poster, body) = (poster.clone(), body.clone());
            let migration = alert.migration.clone();
            let kind = alert.kind;
            tokio::spawn(async move {
                match poster.deliver(&url, body).await {
                    Ok(()) => count(&migration, kind, "sent"),
                    Err(error) => {
                        count(&migration, kind, "failed");
                        tracing::warn!(
                            %migration,
                            kind = kind.label(),
                            webhook = %webhook::origin(&url),
                            %error,
                            "alert webhook given up"
                        );
                    }
                }
                drop(slot);
            });
        }
    }
}

/// One more `switchyard_alerts_total`.
fn count(migration: &str, kind: AlertKind, outcome: &'static str) {
    metrics::counter!(
        names::ALERTS_TOTAL,
        "migration" => migration.to_string(),
        "kind" => kind.label(),
        "outcome" => outcome,
    )
    .increment(1);
}

#[cfg(test)]
mod tests;
