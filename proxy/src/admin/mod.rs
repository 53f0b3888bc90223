//! The admin HTTP listener: `/metrics` (Prometheus text), `/healthz`,
//! `/status` (JSON), and the migrations API (`GET /migrations`, `PUT
//! /migrations/{id}/reads`), the one place that changes what the proxy
//! does at run time besides the file.

mod migrations;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::state::Shared;

/// The process-wide Prometheus recorder, installed on first use.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Tests may start several proxies in one process; the first
            // recorder serves them all.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[derive(Clone)]
struct AdminState {
    shared: Arc<Shared>,
    metrics: PrometheusHandle,
}

/// Binds the admin listener and serves it in the background until the
/// process exits (it stays up while draining, so health checks see it).
pub async fn serve(shared: Arc<Shared>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("admin.listen: cannot listen on {addr}: {e}; pick a free address")
    })?;
    let local = listener.local_addr()?;
    let state = AdminState {
        shared,
        metrics: recorder(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/migrations", get(migrations::list))
        .route("/migrations/{id}/reads", put(migrations::put_reads))
        .route("/migrations/{id}/mismatches", get(migrations::mismatches))
        .with_state(state);
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "admin listener stopped");
        }
    });
    tracing::info!(%local, "admin listening");
    Ok(local)
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    state.metrics.run_upkeep();
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

async fn status(State(state): State<AdminState>) -> impl IntoResponse {
    let shared = &state.shared;
    let snapshot = shared.snapshot();
    let config = &snapshot.config;
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "draining": shared.is_draining(),
        "connections": {
            "active": shared.active_connections(),
            "accepted": shared.counters.accepted.load(std::sync::atomic::Ordering::Relaxed),
        },
        "config": {
            "generation": snapshot.generation,
            "listen": {
                "postgres": config.listen.postgres.map(|a| a.to_string()),
                "mysql": config.listen.mysql.map(|a| a.to_string()),
            },
            "migrations": config.migrations.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        },
        "migrations": shared.routing().migrations.iter().map(|m| migrations::describe(shared, m)).collect::<Vec<_>>(),
        "classifier_cache_entries": shared.classifier.len(),
    }))
}
