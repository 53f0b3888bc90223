//! The last mismatches of each migration, kept for the admin API: enough
//! for an operator to find the row and see what differs, bounded so a
//! target that disagrees on every read costs a fixed amount of memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use super::compare::Difference;

/// One mismatch as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MismatchSample {
    /// The migration whose read it was.
    #[serde(serialize_with = "text")]
    pub migration: Arc<str>,
    /// The statement's shape (`route::fingerprint`), to group samples of
    /// one query without keeping its text or its values. Hex text, since
    /// JSON readers lose integers past 2^53.
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    /// When the mismatch was confirmed.
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// The first difference found.
    #[serde(flatten)]
    pub difference: Difference,
}

fn text<S: Serializer>(value: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value)
}

fn hex<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{value:016x}"))
}

fn rfc3339<S: Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_rfc3339_millis(*at).to_string())
}

/// Per migration, the last `capacity` mismatch samples, oldest first.
#[derive(Debug)]
pub struct Samples {
    /// How many samples a migration keeps.
    capacity: usize,
    /// The rings, by migration id.
    rings: Mutex<HashMap<Arc<str>, VecDeque<MismatchSample>>>,
}

impl Samples {
    pub fn new(capacity: usize) -> Samples {
        Samples {
            capacity,
            rings: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `sample`, dropping the migration's oldest past capacity.
    pub fn push(&self, sample: MismatchSample) {
        if self.capacity == 0 {
            return;
        }
        let mut rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let ring = rings.entry(sample.migration.clone()).or_default();
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The samples kept for `migration`, oldest first.
    pub fn of(&self, migration: &str) -> Vec<MismatchSample> {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings
            .get(migration)
            .map(|ring| ring.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::compare::DifferenceKind;

    fn sample(migration: &str, n: u64) -> MismatchSample {
        MismatchSample {
            migration: migration.into(),
            fingerprint: n,
            at: SystemTime::UNIX_EPOCH,
            difference: Difference {
                kind: DifferenceKind::Values,
                key: vec![("id".into(), Some(n.to_string()))],
                columns: Vec::new(),
                source_rows: 1,
                target_rows: 1,
            },
        }
    }

    #[test]
    fn keeps_the_last_samples_per_migration() {
        let samples = Samples::new(2);
        for n in 1..=3 {
            samples.push(sample("a", n));
        }
        samples.push(sample("b", 9));
        let kept: Vec<u64> = samples.of("a").iter().map(|s| s.fingerprint).collect();
        assert_eq!(kept, [2, 3]);
        assert_eq!(samples.of("b").len(), 1);
        assert!(samples.of("c").is_empty());
    }

    #[test]
    fn serializes_for_the_admin_api() {
        let json = serde_json::to_string(&sample("a", 255)).unwrap();
        expect_test::expect![[r#"{"migration":"a","fingerprint":"00000000000000ff","at":"1970-01-01T00:00:00.000Z","kind":"values","key":[["id","255"]],"columns":[],"source_rows":1,"target_rows":1}"#]]
        .assert_eq(&json);
    }
}
