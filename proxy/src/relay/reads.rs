//! Metrics of the read switch, shared by both protocols' sessions: each
//! routed read of a migrated table is counted by migration, path, arm and
//! outcome and timed by migration and path when its response ends; a read
//! the rule sent to the target that had to stay on the source is counted
//! by reason. Labels never carry SQL text, key values or user names.

use std::collections::HashMap;
use std::time::Instant;

use switchyard_core::config::ReadPath;
use switchyard_core::names;

use crate::route::ReadRoute;

/// Reads in flight on one session, by the token their response carries.
#[derive(Debug, Default)]
pub struct ReadMeters {
    /// Token → the read and when it was sent.
    open: HashMap<u32, (ReadRoute, Instant)>,
    /// The next token.
    next: u32,
}

impl ReadMeters {
    /// Starts timing a read; returns the token its response carries.
    /// Counts the read as unroutable first when it is.
    pub fn start(&mut self, read: &ReadRoute) -> u32 {
        if let Some(reason) = read.unroutable {
            metrics::counter!(names::UNROUTABLE_TOTAL, "migration" => read.migration.to_string(), "reason" => reason)
                .increment(1);
        }
        let token = self.next;
        self.next = self.next.wrapping_add(1);
        self.open.insert(token, (read.clone(), Instant::now()));
        token
    }

    /// The response of read `token` ended.
    pub fn finish(&mut self, token: u32, ok: bool) {
        let Some((read, started)) = self.open.remove(&token) else {
            return;
        };
        let path = path_label(read.path);
        let migration = read.migration.to_string();
        metrics::counter!(
            names::READS_TOTAL,
            "migration" => migration.clone(),
            "path" => path,
            "arm" => read.arm.unwrap_or_default(),
            "outcome" => if ok { "ok" } else { "error" },
        )
        .increment(1);
        metrics::histogram!(names::READ_DURATION_SECONDS, "migration" => migration, "path" => path)
            .record(started.elapsed().as_secs_f64());
    }
}

/// The `path` label value.
pub fn path_label(path: ReadPath) -> &'static str {
    match path {
        ReadPath::Source => "source",
        ReadPath::Target => "target",
    }
}
