//! One alert posted to one webhook: the JSON document it carries, and the
//! post itself, retried with exponential backoff until the URL answers 2xx
//! or the attempts run out.
//!
//! Never logs a webhook's full URL: Slack's and most chat services' URLs
//! hold their token in the path. Logs name a URL by its origin
//! (`scheme://host:port`) only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use super::{Alert, AlertKind, Retry};

/// Why one post failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Not an `http` or `https` URL; no retry can fix that.
    #[error("not an http or https URL; fix `alerts.webhooks`")]
    BadUrl,
    /// The webhook answered, but not with a 2xx.
    #[error("answered HTTP {0}")]
    Status(StatusCode),
    /// No answer: connection refused, TLS failure, timeout. The error is
    /// stripped of its URL.
    #[error("{0}")]
    Transport(reqwest::Error),
}

/// The JSON document posted for `alert`: the generic fields a program reads,
/// and a top-level `text` that Slack and compatible chat webhooks show.
pub fn body(alert: &Alert, proxy: &str) -> Value {
    json!({
        "text": chat_text(alert, proxy),
        "migration": alert.migration,
        "kind": alert.kind.label(),
        "reason": alert.reason,
        "message": alert.text,
        "figures": alert.figures,
        "at": rfc3339(alert.at),
        "proxy": proxy,
    })
}

/// The line a person reads in a chat channel.
fn chat_text(alert: &Alert, proxy: &str) -> String {
    let what = match alert.kind {
        AlertKind::Warn => "warning for",
        AlertKind::Rollback => "reads rolled back to the source for",
    };
    format!(
        "switchyard: {what} migration `{}` ({}, proxy {proxy}): {}",
        alert.migration, alert.reason, alert.text
    )
}

/// `at` as RFC 3339 UTC with milliseconds, clamped to the years the format
/// can write (1970 to 9999) so a stray clock can never fail an alert.
fn rfc3339(at: SystemTime) -> String {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_millis(at.clamp(UNIX_EPOCH, last)).to_string()
}

/// What a log may say of a webhook URL: `scheme://host[:port]`, without the
/// user, path or query that may hold a secret.
pub fn origin(url: &str) -> String {
    match Url::parse(url) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "an unparsable URL".to_string(),
    }
}

/// Posts documents to webhooks; shared by every delivery task.
#[derive(Debug)]
pub struct Poster {
    /// One client for every post, so connections to a webhook are reused
    /// and the TLS roots are loaded once.
    client: reqwest::Client,
    /// How many attempts, and how long to wait between them.
    retry: Retry,
}

impl Poster {
    /// A poster whose every request gives up after `timeout`, connect to
    /// response.
    pub fn new(timeout: Duration, retry: Retry) -> Result<Poster, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirected POST may turn into a GET; a webhook that moved
            // is a configuration to fix, not something to follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Poster { client, retry })
    }

    /// Posts `body` to `url` until it answers 2xx or the attempts run out.
    /// Returns the last error when it gave up.
    pub async fn deliver(&self, url: &str, body: Bytes) -> Result<(), PostError> {
        let url = Url::parse(url).map_err(|_| PostError::BadUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(PostError::BadUrl);
        }
        let mut attempt = 1;
        loop {
            let error = match self.post(&url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if attempt >= self.retry.attempts {
                return Err(error);
            }
            let delay = self.retry.delay_after(attempt);
            tracing::debug!(
                webhook = %url.origin().ascii_serialization(),
                attempt,
                %error,
                "alert webhook failed; retrying in {delay:?}"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt.
    async fn post(&self, url: &Url, body: Bytes) -> Result<(), PostError> {
        let response = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| PostError::Transport(e.without_url()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(PostError::Status(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use expect_test::expect;

    use super::*;
    use crate::alerts::Figures;

    #[test]
    fn the_document_has_generic_fields_and_a_chat_text() {
        let alert = Alert {
            migration: "api_v2".to_string(),
            kind: AlertKind::Rollback,
            reason: "error_rate",
            text: "target error rate 7.1% over 30s passed 5.0% (412 reads)".to_string(),
            figures: Figures {
                observed: 0.071,
                threshold: 0.05,
                samples: 412,
                window: Duration::from_secs(30),
            },
            at: UNIX_EPOCH + Duration::from_millis(1_767_225_600_250),
            webhooks: vec!["https://hooks.example.com/services/T0/B0/secret".to_string()],
            repeat_window: Duration::from_secs(300),
        };
        let body = serde_json::to_string_pretty(&body(&alert, "proxy-1")).unwrap();
        expect![[r#"
            {
              "at": "2026-01-01T00:00:00.250Z",
              "figures": {
                "observed": 0.071,
                "samples": 412,
                "threshold": 0.05,
                "window_seconds": 30.0
              },
              "kind": "rollback",
              "message": "target error rate 7.1% over 30s passed 5.0% (412 reads)",
              "migration": "api_v2",
              "proxy": "proxy-1",
              "reason": "error_rate",
              "text": "switchyard: reads rolled back to the source for migration `api_v2` (error_rate, proxy proxy-1): target error rate 7.1% over 30s passed 5.0% (412 reads)"
            }"#]]
        .assert_eq(&body);
    }

    #[test]
    fn times_outside_the_format_are_clamped() {
        let cases = [
            (
                UNIX_EPOCH - Duration::from_secs(1),
                "1970-01-01T00:00:00.000Z",
            ),
            (
                UNIX_EPOCH + Duration::from_secs(300_000_000_000),
                "9999-12-31T23:59:59.000Z",
            ),
        ];
        for (at, expected) in cases {
            assert_eq!(rfc3339(at), expected);
        }
    }

    #[test]
    fn origins_hold_no_secret() {
        let cases = [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
                "https://hooks.slack.com",
            ),
            (
                "http://user:password@127.0.0.1:9099/hook?token=abc",
                "http://127.0.0.1:9099",
            ),
            ("https://example.com:443/x", "https://example.com"),
            ("not a url /secret", "an unparsable URL"),
        ];
        for (url, expected) in cases {
            assert_eq!(origin(url), expected, "{url}");
        }
    }
}
