//! Switchyard's data plane: a wire-level proxy for PostgreSQL and
//! MySQL/MariaDB that applications connect to unmodified.
//!
//! Map of the modules:
//! - [`wire`]: protocol codecs, sans-IO (bytes in, frames out). Never imports tokio.
//! - [`route`]: statement classification and the per-statement decision. Pure:
//!   no IO and no clock but what is passed in.
//! - [`relay`]: listeners, sessions and backend connections; the only tokio code
//!   of the data plane.
//! - [`catalog`]: the live schemas of every migration's two tables, loaded
//!   over the proxy's own connections and checked against the mapping.
//! - [`control`]: following the control store: each migration's stored
//!   phase, rule and holding published into the routing, heartbeats, the
//!   lease, and rules and rollbacks written back for every replica.
//! - [`admin`]: the admin HTTP listener (`/metrics`, `/healthz`, `/status`).
//! - [`alerts`]: alert webhooks: read warnings and rollbacks posted to each
//!   migration's `alerts.webhooks`, off the sessions' path.
//! - [`mirror`]: row-image mirroring: the statements that make a
//!   secondary's rows for a set of keys equal to the primary's. Pure.
//! - [`shadow`]: shadow compare: routed reads also run on both paths on the
//!   proxy's own connections, in one snapshot, and the answers compared.
//! - [`state`]: what every session shares: the config snapshot, counters,
//!   the cancel-key registry.
//! - [`reload`]: config hot reload (file change and SIGHUP).
//! - [`server`]: starts the listeners and drains them on shutdown.

pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod control;
pub mod guard;
pub mod mirror;
pub mod relay;
pub mod reload;
pub mod route;
pub mod server;
pub mod shadow;
pub mod state;
pub mod wire;
