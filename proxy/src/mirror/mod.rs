//! Row-image mirroring: every way Switchyard keeps a migration's
//! secondary table equal to its primary (the inline mirror, the outbox
//! applier, repair, backfill) reduces to [`sync::RowSync`], which makes
//! the secondary's rows for a set of primary keys equal to the primary's
//! current rows mapped to the secondary's columns.
//!
//! This module writes SQL; the caller runs it. It must never replay a
//! client's statement on the secondary (so `now()`, `random()`, sequences
//! and auto-increment values cannot diverge), never `REPLACE` (which
//! deletes rows clashing on other unique keys and fires their cascades),
//! and never write PostgreSQL's `ON CONFLICT` without its target.

pub mod outbox;
pub use switchyard_core::sync;
pub mod watch;
