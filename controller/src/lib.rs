//! Switchyard's control plane: what carries a migration from planned to
//! complete, and the operator's `switchyard` command.
//!
//! Map of the modules:
//! - [`backfill`]: the backfill runner: key-range chunks sized to a chunk
//!   time, throttles, a checkpoint per chunk, resume, progress.
//! - [`live`]: a migration resolved against its live servers (tables
//!   loaded, mapping checked) and connections to either side.
//! - [`phase`]: the phase machine, a pure `step(state, event) -> (state,
//!   actions)` with the refusals that say what must happen first.
//! - [`proxies`]: the proxies' admin API, as the controller calls it.
//! - [`cmd`]: one module per CLI command; each prints a report and returns
//!   the exit code (0 ok, 1 not ok, 2 error).

pub mod backfill;
pub mod cmd;
pub mod executor;
pub mod live;
pub mod phase;
pub mod proxies;
