#!/usr/bin/env bash
# The guard's reaction time: over repeated trials, readers hammer a migrated
# table whose reads all go to the target (an in-process proxy, release
# build), the target is renamed away, and the time from the moment the
# read window first holds a breach to the moment the routing every session
# reads its next statement from gives the target no share is measured
# (proxy/examples/rollback_reaction.rs). Also shown: the time from the
# break itself, which includes gathering `min_samples` failures. Target:
# breach → share 0 under 1 s at p99. The section is appended to
# benches/RESULTS.md.
#
# Usage: benches/rollback.sh
# Environment (defaults in brackets):
#   BENCH_TRIALS [30]  BENCH_READERS [4]
#   BENCH_NO_RECORD=1  print the section without appending it to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded section
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=bench-rollback

TRIALS=${BENCH_TRIALS:-30}
READERS=${BENCH_READERS:-4}
check_positive_int BENCH_TRIALS "$TRIALS"
check_positive_int BENCH_READERS "$READERS"

bash "$REPO_ROOT/scripts/ensure-databases.sh" postgres
log "building the rollback_reaction example (release)"
(cd "$REPO_ROOT" && cargo build --release -p switchyard-proxy --example rollback_reaction >&2) ||
    die "cargo build --release --example rollback_reaction failed"
out=$(mktemp /tmp/switchyard-rollback.XXXXXX)
trap 'rm -f "$out"' EXIT
"$(cargo_target_dir)/release/examples/rollback_reaction" "$TRIALS" "$READERS" | tee "$out" >&2

details=$(mktemp /tmp/switchyard-rollback-details.XXXXXX)
trap 'rm -f "$out" "$details"' EXIT
{
    echo "- PostgreSQL $(pg_direct -d postgres -Atc 'show server_version') on 127.0.0.1:5432; $READERS readers of simple-protocol point selects, rule immediate → target, rollback { window 10s, min_samples 50, max_error_rate 0.05 }; the target renamed away in each of $TRIALS trials"
    echo "- breach: the first probe (every 100 µs) at which the window's verdict is a breach; share 0: the first probe at which the published routing gives the target 0 (sessions read it at their next statement). A reaction of 0 means the guard acted within one probe interval."
    echo
    echo '```'
    grep -E '^(trial|reaction)' "$out"
    echo '```'
} >"$details"
section=$(
    echo
    echo "## Rollback reaction time — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    machine_lines
    cat "$details"
    if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
)
record_section "$section"
