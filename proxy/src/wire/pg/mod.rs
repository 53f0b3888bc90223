//! PostgreSQL protocol 3.0 codec.

pub mod auth;
