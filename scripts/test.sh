#!/usr/bin/env bash
# Switchyard's test command (the README's; .ci/run runs it with CI=true).
#
#   1. databases and tools: scripts/ensure-databases.sh, scripts/ensure-tools.sh
#   2. cargo test --workspace (debug; RUST_TEST_THREADS=2 unless set)
#   3. cargo build -p switchyard-proxy (debug, re-using step 2's artifacts)
#   4. tests/e2e/run.sh with that binary
#   5. scripts/demo.sh on both engines with those binaries
#
# Ends with the line `N passed, M failed` counting the end-to-end suites, and
# exits non-zero when anything failed: cargo test, the build or a suite.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG="test"
cd "$REPO_ROOT"
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-2}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# A fresh clone builds once: the incremental cache would only cost disk.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
T0=$(date +%s)

stage() { printf '\n==== %s (+%ss)\n' "$*" "$(($(date +%s) - T0))"; }

stage "databases and tools"
df -h "$(cargo_target_dir | xargs dirname)" 2>/dev/null | tail -n 1 | awk '{print "disk free where the build goes: " $4}' || true
bash scripts/ensure-databases.sh
bash scripts/ensure-tools.sh python pgbouncer sysbench

stage "cargo test --workspace"
cargo_rc=0
cargo test --workspace </dev/null || cargo_rc=$?

stage "cargo build -p switchyard-proxy -p switchyard-controller"
build_rc=0
cargo build -p switchyard-proxy -p switchyard-controller </dev/null || build_rc=$?
PROXY_BIN="$(cargo_target_dir)/debug/switchyard-proxy"

passed=0
failed=0
e2e_rc=0
if [ "$build_rc" -eq 0 ]; then
    stage "end-to-end suites"
    e2e_log=$(mktemp)
    set +e
    bash tests/e2e/run.sh "$PROXY_BIN" </dev/null 2>&1 | tee "$e2e_log"
    e2e_rc=${PIPESTATUS[0]}
    set -e
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$e2e_log" | tail -n 1 || true)
    rm -f "$e2e_log"
    if [ -n "$summary" ]; then
        passed=${summary%% passed*}
        failed=$(sed 's/.*passed, \([0-9]*\) failed/\1/' <<<"$summary")
    fi
    # run.sh died before its summary (bad arguments, a database down, ...).
    if [ "$e2e_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
else
    failed=1
fi

# The README's main job, on both engines, with this build's binaries: a
# migration from planned to complete under the sample application's load
# (0 errors, a clean diff after the write switch, the source archived).
demo_failed=0
if [ "$build_rc" -eq 0 ] && [ "${SWITCHYARD_TEST_DEMO:-1}" = 1 ]; then
    for engine in "" --mysql; do
        stage "demo ${engine:---postgres}"
        if SWITCHYARD_BIN_DIR="$(dirname "$PROXY_BIN")" bash scripts/demo.sh $engine </dev/null; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            demo_failed=1
        fi
    done
fi

stage "summary"
[ "$cargo_rc" -eq 0 ] && echo "cargo test --workspace: ok" || echo "cargo test --workspace: FAILED (exit $cargo_rc)"
if [ "$build_rc" -ne 0 ]; then
    echo "cargo build -p switchyard-proxy: FAILED (exit $build_rc); end-to-end suites not run (counted as 1 failed)"
else
    echo "end-to-end suites: exit $e2e_rc"
    [ "$demo_failed" -eq 0 ] || echo "demo: FAILED (above)"
fi
echo "total time: $(($(date +%s) - T0))s"
echo "$passed passed, $failed failed"
[ "$cargo_rc" -eq 0 ] && [ "$build_rc" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$e2e_rc" -eq 0 ]
