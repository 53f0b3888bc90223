//! Which path one read of a migrated table takes: the phase first, then the
//! migration's rule (`immediate`, `percentage`, `canary`, `ab`,
//! `blue_green`).
//!
//! Pure and deterministic: the same facts always give the same path, so a
//! client stays on its path from one statement to the next, and a ramp is
//! monotone (a key's bucket never changes; only the share that bounds it
//! grows). No IO, no clock, no randomness.

use std::net::IpAddr;

use switchyard_core::config::{Phase, ReadPath, Reads, StickyBy, Strategy};

/// Buckets per share: shares are in basis points.
pub const BUCKETS: u32 = 10_000;

/// What a rule may look at for one read.
#[derive(Clone, Copy, Debug)]
pub struct ReadFacts<'a> {
    /// The session's own stickiness key (stable for the connection).
    pub session: u64,
    /// The proxy user.
    pub user: &'a str,
    /// `application_name` (PostgreSQL) / `program_name` (MySQL).
    pub application: &'a str,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
    /// The statement's text, for comment tags.
    pub sql: &'a str,
    /// The sticky column's value in this read, when the rule is sticky by
    /// a column and the read has an equality on it.
    pub key: Option<&'a str>,
}

/// Where one read goes, and which A/B arm chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Source or target.
    pub path: ReadPath,
    /// The arm's name under `ab`; `None` otherwise.
    pub arm: Option<String>,
}

impl Choice {
    fn path(path: ReadPath) -> Choice {
        Choice { path, arm: None }
    }
}

/// The path of one read under `reads` in `phase`, for migration `id` (the
/// salt of every bucket, so two migrations split independently).
pub fn choose(id: &str, phase: Phase, reads: &Reads, facts: &ReadFacts<'_>) -> Choice {
    match phase {
        Phase::ReadRamp => {}
        Phase::ReadsOnTarget | Phase::WriteSwitch | Phase::Complete => {
            return Choice::path(ReadPath::Target)
        }
        _ => return Choice::path(ReadPath::Source),
    }
    match reads.strategy {
        Strategy::Immediate | Strategy::BlueGreen => Choice::path(reads.path),
        Strategy::Percentage => Choice::path(share(id, reads, facts)),
        Strategy::Canary if in_cohort(reads, facts) => Choice::path(ReadPath::Target),
        Strategy::Canary => Choice::path(share(id, reads, facts)),
        Strategy::Ab => arm(id, reads, facts),
    }
}

/// The share of reads the rule sends to the target in `phase`, in basis
/// points: what `switchyard_target_share` reports. Cohorts of a canary are
/// not counted (their size is unknown); A/B counts its target arms' weight.
pub fn target_share(phase: Phase, reads: &Reads) -> u32 {
    match phase {
        Phase::ReadRamp => {}
        Phase::ReadsOnTarget | Phase::WriteSwitch | Phase::Complete => return BUCKETS,
        _ => return 0,
    }
    match reads.strategy {
        Strategy::Immediate | Strategy::BlueGreen => match reads.path {
            ReadPath::Target => BUCKETS,
            ReadPath::Source => 0,
        },
        Strategy::Percentage | Strategy::Canary => reads.percent.basis_points(),
        Strategy::Ab => {
            let total: u64 = reads.arms.iter().map(|a| u64::from(a.weight)).sum();
            let target: u64 = reads
                .arms
                .iter()
                .filter(|a| a.path == ReadPath::Target)
                .map(|a| u64::from(a.weight))
                .sum();
            (target * u64::from(BUCKETS))
                .checked_div(total)
                .unwrap_or(0) as u32
        }
    }
}

/// `murmur3_32(salt ":" key) mod 10000`.
pub fn bucket(salt: &str, key: &str) -> u32 {
    let mut text = Vec::with_capacity(salt.len() + 1 + key.len());
    text.extend_from_slice(salt.as_bytes());
    text.push(b':');
    text.extend_from_slice(key.as_bytes());
    let hash = murmur3::murmur3_32(&mut std::io::Cursor::new(&text), 0)
        .expect("reading from memory cannot fail");
    hash % BUCKETS
}

/// The stickiness key of a read under `reads.sticky_by`.
fn sticky_key(reads: &Reads, facts: &ReadFacts<'_>) -> String {
    match &reads.sticky_by {
        StickyBy::User => facts.user.to_string(),
        StickyBy::Column(_) => match facts.key {
            Some(key) => key.to_string(),
            // A read without the column falls back to the session.
            None => format!("session:{}", facts.session),
        },
        StickyBy::Session => format!("session:{}", facts.session),
    }
}

fn share(id: &str, reads: &Reads, facts: &ReadFacts<'_>) -> ReadPath {
    if bucket(id, &sticky_key(reads, facts)) < reads.percent.basis_points() {
        ReadPath::Target
    } else {
        ReadPath::Source
    }
}

fn in_cohort(reads: &Reads, facts: &ReadFacts<'_>) -> bool {
    let canary = &reads.canary;
    canary.users.iter().any(|u| u == facts.user)
        || canary.applications.iter().any(|a| a == facts.application)
        || facts
            .client
            .is_some_and(|ip| canary.clients.iter().any(|c| c.contains(ip)))
        || canary
            .comment_tag
            .as_deref()
            .is_some_and(|tag| has_comment_tag(facts.sql, tag))
        || facts
            .key
            .is_some_and(|key| canary.keys.iter().any(|k| k == key))
}

/// Whether `sql` carries `tag` as a whole comment: `/* tag */` or `-- tag`,
/// spaces around the tag ignored. A tag inside a string literal or as part
/// of a longer comment does not count.
pub fn has_comment_tag(sql: &str, tag: &str) -> bool {
    let mut rest = sql;
    while let Some(start) = rest.find("/*") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("*/") else { break };
        if after[..end].trim() == tag {
            return true;
        }
        rest = &after[end + 2..];
    }
    sql.lines().any(|line| {
        line.find("--")
            .is_some_and(|at| line[at + 2..].trim() == tag)
    })
}

fn arm(id: &str, reads: &Reads, facts: &ReadFacts<'_>) -> Choice {
    let total: u64 = reads.arms.iter().map(|a| u64::from(a.weight)).sum();
    if total == 0 {
        return Choice::path(ReadPath::Source);
    }
    let point = u64::from(bucket(id, &sticky_key(reads, facts))) * total / u64::from(BUCKETS);
    let mut upto = 0;
    for arm in &reads.arms {
        upto += u64::from(arm.weight);
        if point < upto {
            return Choice {
                path: arm.path,
                arm: Some(arm.name.clone()),
            };
        }
    }
    Choice::path(ReadPath::Source)
}

#[cfg(test)]
mod tests {
    use switchyard_core::config::{Arm, Canary, Percent};

    use super::*;

    fn facts(session: u64) -> ReadFacts<'static> {
        ReadFacts {
            session,
            user: "app",
            application: "api",
            client: Some("10.1.2.3".parse().unwrap()),
            sql: "SELECT 1",
            key: None,
        }
    }

    fn percentage(bp: u32, sticky_by: StickyBy) -> Reads {
        Reads {
            strategy: Strategy::Percentage,
            percent: Percent::from_basis_points(bp).unwrap(),
            sticky_by,
            ..Reads::default()
        }
    }

    #[test]
    fn bucket_is_murmur3_of_salt_colon_key_mod_10000() {
        // Checked against the published algorithm, written out below, and
        // that against a published test vector.
        assert_eq!(reference_murmur3(b"hello"), 0x248b_fa47);
        for (salt, key) in [("m1", "42"), ("api_to_endpoints", "acme"), ("", "")] {
            let text = format!("{salt}:{key}");
            assert_eq!(
                bucket(salt, key),
                reference_murmur3(text.as_bytes()) % 10_000
            );
        }
    }

    /// MurmurHash3 x86_32 with seed 0, from the published algorithm.
    fn reference_murmur3(data: &[u8]) -> u32 {
        let (c1, c2) = (0xcc9e_2d51u32, 0x1b87_3593u32);
        let mut h = 0u32;
        let chunks = data.chunks_exact(4);
        let tail = chunks.remainder();
        for chunk in chunks {
            let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
            k = k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
            h ^= k;
            h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        }
        let mut k = 0u32;
        for (i, b) in tail.iter().enumerate() {
            k |= u32::from(*b) << (8 * i);
        }
        if !tail.is_empty() {
            h ^= k.wrapping_mul(c1).rotate_left(15).wrapping_mul(c2);
        }
        h ^= data.len() as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }

    #[test]
    fn the_phase_decides_before_the_rule() {
        let reads = Reads {
            strategy: Strategy::Immediate,
            path: ReadPath::Target,
            ..Reads::default()
        };
        let cases = [
            (Phase::Planned, ReadPath::Source),
            (Phase::DualWrite, ReadPath::Source),
            (Phase::Backfill, ReadPath::Source),
            (Phase::Validate, ReadPath::Source),
            (Phase::ReadRamp, ReadPath::Target),
            (Phase::ReadsOnTarget, ReadPath::Target),
            (Phase::WriteSwitch, ReadPath::Target),
            (Phase::Complete, ReadPath::Target),
            (Phase::RolledBack, ReadPath::Source),
        ];
        for (phase, want) in cases {
            assert_eq!(choose("m", phase, &reads, &facts(1)).path, want, "{phase}");
        }
        let source = Reads::default();
        assert_eq!(
            choose("m", Phase::ReadsOnTarget, &source, &facts(1)).path,
            ReadPath::Target
        );
    }

    #[test]
    fn percentage_lands_near_its_share_and_ramps_monotonically() {
        let keys: Vec<String> = (0..10_000).map(|k| k.to_string()).collect();
        let on_target = |bp: u32| -> Vec<bool> {
            let reads = percentage(bp, StickyBy::Column("id".into()));
            keys.iter()
                .map(|k| {
                    let f = ReadFacts {
                        key: Some(k),
                        ..facts(1)
                    };
                    choose("m", Phase::ReadRamp, &reads, &f).path == ReadPath::Target
                })
                .collect()
        };
        let mut previous = vec![false; keys.len()];
        for bp in [0, 500, 2_500, 5_000, 10_000] {
            let now = on_target(bp);
            let share = now.iter().filter(|t| **t).count() as f64 / keys.len() as f64;
            assert!(
                (share - f64::from(bp) / 10_000.0).abs() < 0.02,
                "{bp} bp gave {share}"
            );
            for (was, is) in previous.iter().zip(&now) {
                assert!(
                    !was || *is,
                    "a key left the target when the share grew to {bp}"
                );
            }
            previous = now;
        }
    }

    #[test]
    fn stickiness_keys() {
        let by_user = percentage(5_000, StickyBy::User);
        let a = choose("m", Phase::ReadRamp, &by_user, &facts(1));
        for session in 2..50 {
            assert_eq!(choose("m", Phase::ReadRamp, &by_user, &facts(session)), a);
        }
        // A column rule without the column in the read falls back to the
        // session: one session always gets one path.
        let by_column = percentage(5_000, StickyBy::Column("tenant".into()));
        let by_session = percentage(5_000, StickyBy::Session);
        for session in 0..50 {
            assert_eq!(
                choose("m", Phase::ReadRamp, &by_column, &facts(session)),
                choose("m", Phase::ReadRamp, &by_session, &facts(session))
            );
        }
        // Two migrations split independently (the id salts the bucket).
        let differs = (0..200)
            .filter(|s| {
                choose("m1", Phase::ReadRamp, &by_session, &facts(*s))
                    != choose("m2", Phase::ReadRamp, &by_session, &facts(*s))
            })
            .count();
        assert!(differs > 50, "{differs}");
    }

    #[test]
    fn canary_cohorts_then_the_percentage() {
        let canary = |c: Canary, bp: u32| Reads {
            strategy: Strategy::Canary,
            percent: Percent::from_basis_points(bp).unwrap(),
            canary: c,
            ..Reads::default()
        };
        let target = |reads: &Reads, f: &ReadFacts<'_>| {
            choose("m", Phase::ReadRamp, reads, f).path == ReadPath::Target
        };
        let users = canary(
            Canary {
                users: vec!["app".into()],
                ..Canary::default()
            },
            0,
        );
        assert!(target(&users, &facts(1)));
        assert!(!target(
            &users,
            &ReadFacts {
                user: "other",
                ..facts(1)
            }
        ));
        let apps = canary(
            Canary {
                applications: vec!["api".into()],
                ..Canary::default()
            },
            0,
        );
        assert!(target(&apps, &facts(1)));
        assert!(!target(
            &apps,
            &ReadFacts {
                application: "batch",
                ..facts(1)
            }
        ));
        let nets = canary(
            Canary {
                clients: vec!["10.1.0.0/16".parse().unwrap()],
                ..Canary::default()
            },
            0,
        );
        assert!(target(&nets, &facts(1)));
        assert!(!target(
            &nets,
            &ReadFacts {
                client: Some("10.2.0.1".parse().unwrap()),
                ..facts(1)
            }
        ));
        assert!(!target(
            &nets,
            &ReadFacts {
                client: None,
                ..facts(1)
            }
        ));
        let tags = canary(
            Canary {
                comment_tag: Some("switchyard:target".into()),
                ..Canary::default()
            },
            0,
        );
        let tagged = "/* switchyard:target */ SELECT * FROM api";
        assert!(target(
            &tags,
            &ReadFacts {
                sql: tagged,
                ..facts(1)
            }
        ));
        assert!(target(
            &tags,
            &ReadFacts {
                sql: "SELECT 1 -- switchyard:target",
                ..facts(1)
            }
        ));
        assert!(!target(
            &tags,
            &ReadFacts {
                sql: "SELECT '/* switchyard:target-x */'",
                ..facts(1)
            }
        ));
        assert!(!target(&tags, &facts(1)));
        let keys = canary(
            Canary {
                keys: vec!["acme".into()],
                ..Canary::default()
            },
            0,
        );
        assert!(target(
            &keys,
            &ReadFacts {
                key: Some("acme"),
                ..facts(1)
            }
        ));
        assert!(!target(
            &keys,
            &ReadFacts {
                key: Some("other"),
                ..facts(1)
            }
        ));
        // Everyone else by the percentage.
        let all = canary(Canary::default(), 10_000);
        assert!(target(
            &all,
            &ReadFacts {
                user: "other",
                ..facts(1)
            }
        ));
    }

    #[test]
    fn ab_arms_split_by_weight_and_name_the_arm() {
        let reads = Reads {
            strategy: Strategy::Ab,
            arms: vec![
                Arm {
                    name: "control".into(),
                    path: ReadPath::Source,
                    weight: 70,
                },
                Arm {
                    name: "candidate".into(),
                    path: ReadPath::Target,
                    weight: 30,
                },
            ],
            ..Reads::default()
        };
        let mut candidate = 0;
        for session in 0..10_000 {
            let choice = choose("m", Phase::ReadRamp, &reads, &facts(session));
            match choice.arm.as_deref() {
                Some("candidate") => {
                    assert_eq!(choice.path, ReadPath::Target);
                    candidate += 1;
                }
                Some("control") => assert_eq!(choice.path, ReadPath::Source),
                other => panic!("no arm: {other:?}"),
            }
        }
        assert!((2_800..3_200).contains(&candidate), "{candidate}");
        assert_eq!(target_share(Phase::ReadRamp, &reads), 3_000);
    }

    #[test]
    fn target_share_follows_phase_and_rule() {
        let pct = percentage(2_500, StickyBy::Session);
        assert_eq!(target_share(Phase::ReadRamp, &pct), 2_500);
        assert_eq!(target_share(Phase::Validate, &pct), 0);
        assert_eq!(target_share(Phase::RolledBack, &pct), 0);
        assert_eq!(target_share(Phase::ReadsOnTarget, &pct), 10_000);
        let flip = Reads {
            strategy: Strategy::BlueGreen,
            path: ReadPath::Target,
            ..Reads::default()
        };
        assert_eq!(target_share(Phase::ReadRamp, &flip), 10_000);
    }
}
