//! The delivery task against real HTTP servers on loopback: what arrives,
//! how often, and what is counted. Backoff and repeat windows are a few
//! milliseconds so every test runs well under a second.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// One request a test webhook received, and what it answered.
#[derive(Debug)]
struct Received {
    method: Method,
    content_type: String,
    body: Value,
    answer: StatusCode,
}

/// A webhook on loopback that records every request. It answers the
/// scripted statuses first, then 200.
struct Hook {
    /// Its URL, with a path that stands for a secret token.
    url: String,
    /// Requests in arrival order.
    received: mpsc::UnboundedReceiver<Received>,
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<VecDeque<StatusCode>>>,
    received: mpsc::UnboundedSender<Received>,
}

impl Hook {
    async fn start(answers: &[u16]) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, received) = mpsc::unbounded_channel();
        let script = Script {
            answers: Arc::new(Mutex::new(
                answers
                    .iter()
                    .map(|code| StatusCode::from_u16(*code).unwrap())
                    .collect(),
            )),
            received: sender,
        };
        let app = Router::new().fallback(record).with_state(script);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook {
            url: format!("http://{addr}/services/T0/B0/secret-token"),
            received,
        }
    }

    /// The next request; fails the test when none comes within 2 s.
    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(2), self.received.recv())
            .await
            .expect("no request within 2 s")
            .expect("the test webhook stopped")
    }
}

async fn record(
    State(script): State<Script>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = script
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(StatusCode::OK);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = script.received.send(Received {
        method,
        content_type,
        body,
        answer,
    });
    answer
}

/// A URL whose server accepts connections and never answers.
async fn black_hole() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// A URL where nothing listens: connections are refused.
async fn refused() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}/hook", listener.local_addr().unwrap())
}

fn alert(migration: &str, kind: AlertKind, webhooks: &[&str]) -> Alert {
    Alert {
        migration: migration.to_string(),
        kind,
        reason: "error_rate",
        text: "target error rate 7.1% over 30s passed 5.0% (412 reads)".to_string(),
        figures: Figures {
            observed: 0.071,
            threshold: 0.05,
            samples: 412,
            window: Duration::from_secs(30),
        },
        at: SystemTime::now(),
        webhooks: webhooks.iter().map(|url| url.to_string()).collect(),
        repeat_window: Duration::from_millis(200),
    }
}

fn delivery() -> Delivery {
    Delivery {
        proxy: "proxy-test".to_string(),
        queue: 16,
        concurrency: 4,
        timeout: Duration::from_secs(5),
        retry: Retry {
            attempts: 3,
            first_delay: Duration::from_millis(10),
        },
    }
}

/// `switchyard_alerts_total` for these labels as `recorder` holds it.
fn counted(recorder: &PrometheusRecorder, migration: &str, kind: &str, outcome: &str) -> u64 {
    let labels = format!(r#"{{migration="{migration}",kind="{kind}",outcome="{outcome}"}}"#);
    let rendered = recorder.handle().render();
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(&format!("switchyard_alerts_total{labels} ")))
        .map(|value| value.parse().unwrap())
        .unwrap_or(0)
}

/// Waits until the count reaches `expected`: a delivery is counted after
/// the webhook has answered, so a little after the test saw the request.
async fn counted_eventually(
    recorder: &PrometheusRecorder,
    (migration, kind, outcome): (&str, &str, &str),
    expected: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = counted(recorder, migration, kind, outcome);
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{migration} {kind} {outcome}: counted {got}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// The tests run on tokio's current-thread runtime, so the delivery tasks
// run on the test's thread and count into its local recorder.

#[tokio::test]
async fn an_alert_arrives_once_with_its_fields() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let mut hook = Hook::start(&[]).await;
    let alerter = Alerter::spawn_with(delivery()).unwrap();

    alerter.send(alert("api_v2", AlertKind::Warn, &[&hook.url]));
    let got = hook.next().await;
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.content_type, "application/json");
    let body = &got.body;
    assert_eq!(body["migration"], "api_v2");
    assert_eq!(body["kind"], "warn");
    assert_eq!(body["reason"], "error_rate");
    assert_eq!(
        body["message"],
        "target error rate 7.1% over 30s passed 5.0% (412 reads)"
    );
    assert_eq!(body["proxy"], "proxy-test");
    assert_eq!(body["figures"]["samples"], 412);
    assert_eq!(body["figures"]["window_seconds"], 30.0);
    let at = body["at"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(at).is_ok(), "{at}");
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("`api_v2`") && text.contains("7.1%"), "{text}");

    // The next request is the next alert: the first one came once.
    alerter.send(alert("marker", AlertKind::Warn, &[&hook.url]));
    assert_eq!(hook.next().await.body["migration"], "marker");
    counted_eventually(&recorder, ("api_v2", "warn", "sent"), 1).await;
}

#[tokio::test]
async fn a_failing_webhook_gets_the_alert_after_retries() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let mut hook = Hook::start(&[500, 500]).await;
    let alerter = Alerter::spawn_with(delivery()).unwrap();

    alerter.send(alert("api_v2", AlertKind::Rollback, &[&hook.url]));
    let attempts = [hook.next().await, hook.next().await, hook.next().await];
    let answers = attempts.each_ref().map(|got| got.answer.as_u16());
    assert_eq!(answers, [500, 500, 200]);
    assert!(attempts.iter().all(|got| got.body == attempts[0].body));

    alerter.send(alert("marker", AlertKind::Warn, &[&hook.url]));
    assert_eq!(hook.next().await.body["migration"], "marker");
    counted_eventually(&recorder, ("api_v2", "rollback", "sent"), 1).await;
    assert_eq!(counted(&recorder, "api_v2", "rollback", "failed"), 0);
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_given_up() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let mut hook = Hook::start(&[503, 503, 503]).await;
    let alerter = Alerter::spawn_with(delivery()).unwrap();

    alerter.send(alert("api_v2", AlertKind::Rollback, &[&hook.url]));
    for _ in 0..3 {
        assert_eq!(hook.next().await.body["migration"], "api_v2");
    }
    counted_eventually(&recorder, ("api_v2", "rollback", "failed"), 1).await;

    // No fourth attempt came before the next alert.
    alerter.send(alert("marker", AlertKind::Warn, &[&hook.url]));
    assert_eq!(hook.next().await.body["migration"], "marker");
}

#[tokio::test]
async fn a_repeat_within_the_window_is_suppressed() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let mut hook = Hook::start(&[]).await;
    let alerter = Alerter::spawn_with(delivery()).unwrap();
    let url = hook.url.clone();
    let warn = || alert("api_v2", AlertKind::Warn, &[&url]);

    let first = Instant::now();
    alerter.send(warn());
    assert_eq!(hook.next().await.body["kind"], "warn");

    // A repeat is silent; a rollback is another kind and goes out.
    alerter.send(warn());
    alerter.send(alert("api_v2", AlertKind::Rollback, &[&url]));
    assert_eq!(hook.next().await.body["kind"], "rollback");
    counted_eventually(&recorder, ("api_v2", "warn", "suppressed"), 1).await;

    // Once the 200 ms window has passed, the warning goes out again.
    tokio::time::sleep_until((first + Duration::from_millis(250)).into()).await;
    alerter.send(warn());
    assert_eq!(hook.next().await.body["kind"], "warn");
    counted_eventually(&recorder, ("api_v2", "warn", "sent"), 2).await;
    assert_eq!(counted(&recorder, "api_v2", "warn", "suppressed"), 1);
}

#[tokio::test]
async fn every_webhook_receives_the_alert() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let (mut one, mut two) = (Hook::start(&[]).await, Hook::start(&[]).await);
    let alerter = Alerter::spawn_with(delivery()).unwrap();

    alerter.send(alert("api_v2", AlertKind::Rollback, &[&one.url, &two.url]));
    let (got_one, got_two) = (one.next().await, two.next().await);
    assert_eq!(got_one.body["migration"], "api_v2");
    assert_eq!(got_one.body, got_two.body);
    counted_eventually(&recorder, ("api_v2", "rollback", "sent"), 2).await;
}

#[tokio::test]
async fn a_dead_webhook_does_not_delay_a_live_one() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    let (silent, refusing) = (black_hole().await, refused().await);
    let mut live = Hook::start(&[]).await;
    let alerter = Alerter::spawn_with(delivery()).unwrap();

    // The silent webhook holds each post for the whole 5 s timeout.
    let started = Instant::now();
    alerter.send(alert(
        "api_v2",
        AlertKind::Rollback,
        &[&silent, &refusing, &live.url],
    ));
    assert_eq!(live.next().await.body["migration"], "api_v2");
    alerter.send(alert("other", AlertKind::Rollback, &[&silent, &live.url]));
    assert_eq!(live.next().await.body["migration"], "other");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    counted_eventually(&recorder, ("api_v2", "rollback", "failed"), 1).await;
}

#[test]
fn a_full_queue_drops_without_waiting() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _metrics = metrics::set_default_local_recorder(&recorder);
    // No task drains this queue: it fills after two alerts.
    let (alerter, mut queue) = Alerter::with_queue(2);
    let url = "http://127.0.0.1:9/hook";

    for _ in 0..5 {
        alerter.send(alert("api_v2", AlertKind::Warn, &[url]));
    }
    alerter.send(alert("quiet", AlertKind::Warn, &[]));
    assert!(queue.try_recv().is_ok());
    assert!(queue.try_recv().is_ok());
    assert!(queue.try_recv().is_err());
    assert_eq!(counted(&recorder, "api_v2", "warn", "dropped"), 3);
    assert_eq!(counted(&recorder, "quiet", "warn", "dropped"), 0);

    // A stopped task drops too.
    drop(queue);
    alerter.send(alert("api_v2", AlertKind::Rollback, &[url]));
    assert_eq!(counted(&recorder, "api_v2", "rollback", "dropped"), 1);
}

#[test]
fn backoff_doubles() {
    let retry = Retry::default();
    let delays: Vec<_> = (1..retry.attempts)
        .map(|attempt| retry.delay_after(attempt))
        .collect();
    let ms = |ms| Duration::from_millis(ms);
    assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(4000)]);
    assert_eq!(retry.delay_after(u32::MAX), ms(500 * 65536));
}
