//! `GET /migrations` and `PUT /migrations/{id}/reads`: what each migration's
//! reads do now, and changing the rule at run time.
//!
//! A rule set here is live for the next statement of every session. With
//! a control store installed it is stored there (every replica follows
//! within a poll, and it survives restarts); without one it is this
//! proxy's and lasts until the file's `reads` for that migration changes
//! (the file wins again then). Changes need the bearer token when `admin.token` is
//! set, and come from loopback only when it is not.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_core::config::Reads;

use super::AdminState;
use crate::control::Outcome;
use crate::route::routing::{CatalogState, MigrationRoute, RuleOverride};
use crate::state::Shared;

/// `GET /migrations`.
pub async fn list(State(state): State<AdminState>) -> impl IntoResponse {
    let routing = state.shared.routing();
    let migrations: Vec<Value> = routing
        .migrations
        .iter()
        .map(|m| describe(&state.shared, m))
        .collect();
    Json(json!({ "generation": routing.generation, "migrations": migrations }))
}

/// One migration as `/migrations` and `/status` report it.
pub fn describe(shared: &Shared, m: &MigrationRoute) -> Value {
    let mismatches = shared
        .shadow
        .get()
        .map(|s| s.mismatches(&m.plan.id))
        .unwrap_or_default();
    let (catalog_reason, columns) = match &m.catalog {
        CatalogState::Pending(why) | CatalogState::Refused(why) => (Some(why.clone()), None),
        CatalogState::Ready(mapping) => (None, Some(mapping.columns.len())),
    };
    json!({
        "id": m.plan.id,
        "phase": m.phase,
        "reads": *m.reads,
        "rule_from": m.rule_from.as_str(),
        "target_share_basis_points": m.target_share(),
        "rollback": m.rolled_back.as_ref().map(|r| json!({
            "reason": r.reason,
            "verdict": r.text,
            "at": humantime::format_rfc3339_millis(r.at).to_string(),
        })),
        "verdict": shared.guards.verdict(m).to_string(),
        "shadow_mismatches": mismatches.len(),
        "last_mismatch": mismatches.last(),
        "store": m.stored.as_ref().map(|s| json!({
            "epoch": s.epoch,
            "phase": s.phase,
            "holding_writes": s.holding_writes,
            "rollback_reason": s.rollback_reason,
            "lease": if s.lapsed.is_some() { "lapsed" } else { "held" },
            "lapsed_because": s.lapsed,
        })),
        "catalog": m.catalog.as_str(),
        "catalog_reason": catalog_reason,
        "mapped_columns": columns,
    })
}

/// `PUT /migrations/{id}/reads` with a JSON body shaped like the YAML
/// `reads`.
pub async fn put_reads(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = authorize(&state, peer, &headers) {
        return refusal;
    }
    let routing = state.shared.routing();
    let Some(current) = routing.migration(&id) else {
        let known: Vec<_> = routing
            .migrations
            .iter()
            .map(|m| m.plan.id.as_str())
            .collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("no migration `{id}`; migrations are: {}", known.join(", ")),
        );
    };
    let reads: Reads = match serde_json::from_slice(&body) {
        Ok(reads) => reads,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("migration `{id}`: the body is not a `reads` rule ({e}); send JSON shaped like the file's `reads`, e.g. {{\"strategy\": \"percentage\", \"percent\": 25, \"sticky_by\": \"session\"}}"),
            )
        }
    };
    let problems = current.plan.check_reads(&reads);
    if !problems.is_empty() {
        let text: Vec<String> = problems
            .into_iter()
            .map(|(field, why)| format!("{field}: {why}"))
            .collect();
        return error(StatusCode::UNPROCESSABLE_ENTITY, text.join("; "));
    }
    let file = current.plan.reads.clone();
    drop(routing);
    // Stored first, so every replica follows and a restart keeps it; a
    // store that cannot be written changes nothing anywhere.
    let outcome = match state.shared.control.get() {
        Some(control) => match control.store_rule(&id, reads.clone()).await {
            Ok(outcome) => outcome,
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        None => Outcome::NoStore,
    };
    let stored = matches!(outcome, Outcome::Stored { .. });
    let reads = Arc::new(reads);
    state.shared.publish_routing(|runtime| {
        if !stored {
            runtime
                .overrides
                .insert(id.clone(), RuleOverride { file, reads });
        }
        // An operator's new rule lifts an automatic rollback.
        runtime.rollbacks.remove(&id);
    });
    tracing::info!(migration = %id, %peer, stored, "read rule changed through the admin API");
    let routing = state.shared.routing();
    match routing.migration(&id) {
        Some(m) => (StatusCode::OK, Json(describe(&state.shared, m))).into_response(),
        None => error(
            StatusCode::CONFLICT,
            format!("migration `{id}` was removed meanwhile"),
        ),
    }
}

/// `GET /migrations/{id}/mismatches`: the last shadow mismatches kept for
/// the migration, oldest first.
pub async fn mismatches(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    if state.shared.routing().migration(&id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no migration `{id}`"));
    }
    let samples = state
        .shared
        .shadow
        .get()
        .map(|s| s.mismatches(&id))
        .unwrap_or_default();
    Json(json!({ "migration": id, "mismatches": samples })).into_response()
}

/// `None` when the change may go ahead, else the refusal to send.
fn authorize(state: &AdminState, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let snapshot = state.shared.snapshot();
    match &snapshot.config.admin.token {
        Some(token) => {
            let given = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            (given != Some(token.as_str())).then(|| {
                error(
                    StatusCode::UNAUTHORIZED,
                    "changes need `Authorization: Bearer <admin.token>`".to_string(),
                )
            })
        }
        None if peer.ip().is_loopback() => None,
        None => Some(error(
            StatusCode::FORBIDDEN,
            format!("changes from {} need admin.token to be set; without a token only loopback may change rules", peer.ip()),
        )),
    }
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}
