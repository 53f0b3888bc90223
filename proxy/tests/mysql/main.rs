//! End-to-end tests of the MySQL proxy against the real MariaDB on
//! 127.0.0.1:3306, with mysql_async as the client (and a raw client for
//! malformed input). Each test creates its own database.

mod auth;
mod catalog;
mod clients;
mod common;
mod diff_load;
mod faults;
mod follow;
mod guard;
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
