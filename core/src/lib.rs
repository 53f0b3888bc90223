//! Switchyard's shared vocabulary: the configuration and plan schema, the
//! migration phases, the names of every metric the system exports, and
//! the control store's schema as SQL text.
//!
//! Map of the modules:
//! - [`backfill`]: the backfill's SQL (checkpoint table, a chunk's upper
//!   bound, the locking, conflict-skipping chunk copy), per engine.
//! - [`config`]: the YAML configuration and migration plans, validated at load.
//! - [`names`]: every Prometheus metric name, once.
//! - [`schema`]: a migration's two tables as the catalogs describe them,
//!   and its column mapping checked against them.
//! - [`sql`]: identifiers and literals quoted per engine.
//! - [`store`]: the control store's DDL and each migration's guard trigger.
//! - [`sync`]: the row-image sync's statements, which every path that
//!   makes the secondary follow the primary runs (mirror, outbox applier,
//!   backfill, repair).
//!
//! This crate does no network IO: the store and the sync only write SQL
//! for others to run. The proxy, the controller and the consistency
//! engine all depend on it, so it stays small and stable.

pub mod backfill;
pub mod config;
pub mod names;
pub mod schema;
pub mod sql;
pub mod store;
pub mod sync;
