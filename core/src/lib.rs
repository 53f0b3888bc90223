//! Switchyard's shared vocabulary: the configuration and plan schema, the
//! migration phases, and the names of every metric the system exports.
//!
//! This crate does no network IO. The proxy, the controller and the
//! consistency engine all depend on it, so it stays small and stable.

pub mod config;
pub mod names;
