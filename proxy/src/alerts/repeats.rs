//! Repeat suppression: a breach that lasts is judged again at every
//! verdict, but an operator wants to hear of it once per repeat window, not
//! once per verdict. Pure: the clock is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Alert, AlertKind};

/// When each (migration, kind, reason) was last announced. A warning and a
/// rollback are different kinds, so a warning never silences the rollback
/// that follows it.
#[derive(Debug, Default)]
pub struct Repeats {
    /// Announcement time and the repeat window it opened, by alert identity.
    /// Entries leave once their window has passed, so the map only holds
    /// breaches announced recently.
    last: HashMap<(String, AlertKind, &'static str), (Instant, Duration)>,
}

impl Repeats {
    /// Whether `alert` is announced at `now`. When it is, its repeat window
    /// opens; when it is not, the window stays where the last announcement
    /// put it, so a breach that never ends is announced once per window.
    pub fn admit(&mut self, alert: &Alert, now: Instant) -> bool {
        self.last
            .retain(|_, (at, window)| now.saturating_duration_since(*at) < *window);
        let key = (alert.migration.clone(), alert.kind, alert.reason);
        if self.last.contains_key(&key) {
            return false;
        }
        self.last.insert(key, (now, alert.repeat_window));
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::alerts::Figures;

    fn alert(migration: &str, kind: AlertKind, reason: &'static str, window_ms: u64) -> Alert {
        Alert {
            migration: migration.to_string(),
            kind,
            reason,
            text: String::new(),
            figures: Figures::default(),
            at: SystemTime::UNIX_EPOCH,
            webhooks: vec![],
            repeat_window: Duration::from_millis(window_ms),
        }
    }

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        use AlertKind::{Rollback, Warn};
        // (ms since start, migration, kind, reason, window ms, announced?)
        let steps = [
            (0, "a", Warn, "error_rate", 1000, true),
            (10, "a", Warn, "error_rate", 1000, false),
            (20, "a", Rollback, "error_rate", 1000, true),
            (30, "a", Warn, "latency", 1000, true),
            (40, "b", Warn, "error_rate", 1000, true),
            (999, "a", Warn, "error_rate", 1000, false),
            (1000, "a", Warn, "error_rate", 1000, true),
            (1500, "a", Warn, "error_rate", 1000, false),
            (1500, "a", Rollback, "error_rate", 1000, true),
            (1600, "c", Warn, "timeouts", 0, true),
            (1600, "c", Warn, "timeouts", 0, true),
        ];
        let start = Instant::now();
        let mut repeats = Repeats::default();
        for (ms, migration, kind, reason, window, expected) in steps {
            let now = start + Duration::from_millis(ms);
            let got = repeats.admit(&alert(migration, kind, reason, window), now);
            assert_eq!(
                got, expected,
                "at {ms} ms: {migration} {kind:?} {reason} (window {window} ms)"
            );
        }
    }

    #[test]
    fn announcements_leave_the_map_once_their_window_passed() {
        let start = Instant::now();
        let mut repeats = Repeats::default();
        for migration in ["a", "b", "c"] {
            repeats.admit(&alert(migration, AlertKind::Warn, "latency", 100), start);
        }
        assert_eq!(repeats.last.len(), 3);
        let later = start + Duration::from_millis(100);
        repeats.admit(&alert("d", AlertKind::Warn, "latency", 100), later);
        assert_eq!(repeats.last.len(), 1);
    }
}
