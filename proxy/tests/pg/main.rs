//! End-to-end tests of the PostgreSQL proxy against the real server on
//! 127.0.0.1:5432, with tokio-postgres as the client. Each test creates its
//! own database.

mod auth;
mod catalog;
mod common;
mod diff_load;
mod faults;
mod follow;
mod guard;
mod lifecycle;
mod mirror;
mod mirror_load;
mod outbox;
mod protocol;
mod reads;
mod seams;
mod shadow;
mod store;
mod switched;
mod transport;
