//! The controller's alerts: one JSON document POSTed to each of the
//! migration's `alerts.webhooks` per phase change, rollback, closed gate,
//! pending approval, aborted switch or stalled phase. The document has a
//! `text` field, so Slack-compatible incoming webhooks show it as it is.
//! A repeat of the same alert within `alerts.repeat_window` is not sent
//! again (per controller process). A webhook that fails is reported on
//! stderr and never stops the migration.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use switchyard_core::config::Alerts;

use crate::phase::AlertKind;

/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts alerts and remembers what it sent, to suppress repeats.
pub struct Alerter {
    /// Where and how often: the migration's `alerts`.
    config: Alerts,
    /// When each (kind, message) was last sent.
    sent: HashMap<(String, String), Instant>,
    /// The HTTP client, shared by every post.
    client: reqwest::Client,
}

impl Alerter {
    /// An alerter for one migration's `alerts`.
    pub fn new(config: Alerts) -> Alerter {
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Alerter {
            config,
            sent: HashMap::new(),
            client,
        }
    }

    /// Posts one alert to every webhook, unless it repeats one sent within
    /// the repeat window. Returns how many webhooks accepted it.
    pub async fn post(
        &mut self,
        migration: &str,
        kind: AlertKind,
        message: &str,
        epoch: u64,
    ) -> usize {
        if self.config.webhooks.is_empty() {
            return 0;
        }
        let key = (kind.to_string(), message.to_string());
        let window = self.config.repeat_window;
        if let Some(last) = self.sent.get(&key) {
            if !window.is_zero() && last.elapsed() < window {
                return 0;
            }
        }
        self.sent.insert(key, Instant::now());
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = serde_json::json!({
            "source": "switchyard-controller",
            "migration": migration,
            "kind": kind.to_string(),
            "text": message,
            "epoch": epoch,
            "at": at,
        });
        let mut accepted = 0;
        for url in &self.config.webhooks {
            match self.client.post(url).json(&body).send().await {
                Ok(response) if response.status().is_success() => accepted += 1,
                Ok(response) => eprintln!(
                    "switchyard: alert webhook answered {} for migration `{migration}`",
                    response.status()
                ),
                Err(e) => eprintln!(
                    "switchyard: alert webhook failed for migration `{migration}`: {}",
                    e.without_url()
                ),
            }
        }
        accepted
    }
}
