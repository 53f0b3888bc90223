//! The runner's pure arithmetic: chunk sizes, rate pauses, ranges and
//! progress, table-driven.

use std::time::Duration;

use switchyard_core::backfill::Checkpoint;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn chunk_size_follows_the_chunk_time_by_at_most_double_or_half() {
    let settings = Settings {
        chunk_time: ms(500),
        ..Settings::default() // 100..=50_000 rows
    };
    let cases = [
        // (size, rows, took, next)
        (1_000, 1_000, ms(250), 2_000),    // twice as fast: double
        (1_000, 1_000, ms(10), 2_000),     // far faster: still only double
        (1_000, 1_000, ms(1_000), 500),    // twice as slow: half
        (1_000, 1_000, ms(10_000), 500),   // far slower: only half
        (1_000, 1_000, ms(400), 1_250),    // a little fast: a little more
        (40_000, 40_000, ms(100), 50_000), // the ceiling
        (150, 150, ms(5_000), 100),        // the floor
        (1_000, 1_000, ms(0), 2_000),      // too quick to time
    ];
    for (size, rows, took, want) in cases {
        assert_eq!(
            next_size(size, rows, took, &settings),
            want,
            "{size} rows in {took:?}"
        );
    }
}

#[test]
fn a_rate_ceiling_caps_the_chunk_and_pauses() {
    let settings = Settings {
        max_rows_per_sec: Some(1_000),
        chunk_time: ms(500),
        ..Settings::default()
    };
    // 1000 rows/s over a 500 ms chunk: 500 rows at most per chunk.
    assert_eq!(clamp_size(10_000, &settings), 500);
    assert_eq!(next_size(500, 500, ms(1), &settings), 500);
    let cases = [
        (500, ms(100), Some(ms(400))), // ahead of the ceiling: wait
        (500, ms(500), None),          // on it
        (500, ms(900), None),          // behind it
    ];
    for (rows, elapsed, want) in cases {
        assert_eq!(
            rate_pause(rows, elapsed, Some(1_000)),
            want,
            "{rows} in {elapsed:?}"
        );
    }
    assert_eq!(rate_pause(500, ms(1), None), None);
    assert_eq!(rate_pause(500, ms(1), Some(0)), None);
}

#[test]
fn ranges_name_both_bounds() {
    let key = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(range(None, &key(&["10"])), r#"(start, ["10"]]"#);
    assert_eq!(
        range(Some(&key(&["a", "1"])), &key(&["b", "2"])),
        r#"(["a","1"], ["b","2"]]"#
    );
}

#[test]
fn progress_reports_percent_rate_and_eta() {
    let start = Checkpoint {
        last_key: None,
        rows_copied: 0,
        chunk_size: 1_000,
        done: false,
    };
    let mut p = Progress::start("api_v2", 10_000, &start);
    assert_eq!(
        p.to_string(),
        "api_v2: 0.0% (0 of ~10000 rows), 0 rows/s, chunk 1000"
    );
    let after = Checkpoint {
        last_key: Some(vec!["4000".into()]),
        rows_copied: 4_000,
        chunk_size: 2_000,
        done: false,
    };
    p.update(&after, Duration::from_secs(2), 4_000);
    assert_eq!(
        p.to_string(),
        "api_v2: 40.0% (4000 of ~10000 rows), 2000 rows/s, chunk 2000, ETA 3s"
    );
    // An estimate below the truth stops short of 100 until done.
    p.update(
        &Checkpoint {
            rows_copied: 12_000,
            ..after.clone()
        },
        Duration::from_secs(4),
        12_000,
    );
    assert_eq!(p.percent(), 99.9);
    assert_eq!(p.eta, Some(Duration::ZERO));
    p.state = State::Throttled {
        load: 40,
        limit: 25,
    };
    assert_eq!(
        p.to_string(),
        "api_v2: 99.9% (12000 of ~10000 rows), paused: server load 40 is above 25"
    );
    assert_eq!(p.to_json()["load"], 40);
    p.state = State::Done;
    assert_eq!(p.to_json()["percent"], 100.0);
    assert_eq!(p.to_string(), "api_v2: 100.0% (12000 of ~10000 rows), done");
}
