//! Switchyard's shared vocabulary: the configuration and plan schema, the
//! migration phases, the names of every metric the system exports, and
//! the control store's schema as SQL text.
//!
//! Map of the modules:
//! - [`config`]: the YAML configuration and migration plans, validated at load.
//! - [`names`]: every Prometheus metric name, once.
//! - [`sql`]: identifiers and literals quoted per engine.
//! - [`store`]: the control store's DDL and each migration's guard trigger.
//!
//! This crate does no network IO: the store only writes SQL for others to
//! run. The proxy, the controller and the consistency engine all depend on
//! it, so it stays small and stable.

pub mod config;
pub mod names;
pub mod sql;
pub mod store;
