//! Catalog helpers both end-to-end binaries share: waiting for a
//! migration's catalog state and reading its mapping.

use std::time::Duration;

use switchyard_proxy::catalog::mapping::Mapping;
use switchyard_proxy::route::routing::CatalogState;
use switchyard_proxy::server::Running;

/// Long enough for a refused migration's periodic re-read (5 s) and a
/// slow first load.
pub const CATALOG_DEADLINE: Duration = Duration::from_secs(15);

/// Polls the routing of `running` until migration `id`'s catalog state
/// satisfies `wanted`, and returns it; panics with the last state seen.
pub async fn catalog_until(
    running: &Running,
    id: &str,
    wanted: impl Fn(&CatalogState) -> bool,
) -> CatalogState {
    let deadline = tokio::time::Instant::now() + CATALOG_DEADLINE;
    loop {
        let state = running
            .shared
            .routing()
            .migration(id)
            .unwrap_or_else(|| panic!("no migration `{id}` in the routing"))
            .catalog
            .clone();
        if wanted(&state) {
            return state;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("migration `{id}`: catalog still {state:?} after {CATALOG_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a ready catalog and returns its mapping.
pub async fn ready(running: &Running, id: &str) -> std::sync::Arc<Mapping> {
    match catalog_until(running, id, |s| !matches!(s, CatalogState::Pending(_))).await {
        CatalogState::Ready(mapping) => mapping,
        other => panic!("migration `{id}`: expected a ready catalog, got {other:?}"),
    }
}

/// Waits for a refused catalog and returns the reason.
pub async fn refused(running: &Running, id: &str) -> String {
    match catalog_until(running, id, |s| !matches!(s, CatalogState::Pending(_))).await {
        CatalogState::Refused(reason) => reason,
        other => panic!("migration `{id}`: expected a refused catalog, got {other:?}"),
    }
}

/// Waits for a pending catalog whose reason mentions `needle` (the first
/// state is pending too, "not loaded yet").
pub async fn pending(running: &Running, id: &str, needle: &str) -> String {
    match catalog_until(
        running,
        id,
        |s| !matches!(s, CatalogState::Pending(r) if !r.contains(needle)),
    )
    .await
    {
        CatalogState::Pending(reason) => reason,
        other => panic!("migration `{id}`: expected a pending catalog, got {other:?}"),
    }
}

/// The mapping's pairs as (source, target, cast), for one assertion.
pub fn pairs(mapping: &Mapping) -> Vec<(String, String, Option<String>)> {
    mapping
        .columns
        .iter()
        .map(|p| (p.source.clone(), p.target.clone(), p.cast.clone()))
        .collect()
}

/// A local TCP port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound address").port()
}
