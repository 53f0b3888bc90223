# shellcheck shell=bash
# Helpers shared by benches/pgbench.sh and benches/sysbench.sh (sourced).
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
RESULTS="$REPO_ROOT/benches/RESULTS.md"

# check_positive_int NAME VALUE: VALUE is a whole number > 0, else fail naming NAME.
check_positive_int() {
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive whole number, got \`$2\`"
}

# machine_lines: the bullet lines that say where and on what a result was taken.
machine_lines() {
    local cpu commit dirty=""
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        dirty=" (with uncommitted changes)"
    fi
    echo "- machine: nproc $(nproc), CPU ${cpu:-unknown}, $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
    echo "- commit: $commit$dirty"
}

# append_results TITLE DETAILS_FILE RUNS_TSV [REPORT_ARG...]: append a dated
# section with the medians table to benches/RESULTS.md (unless
# BENCH_NO_RECORD=1) and print it; REPORT_ARGs go to report.py (e.g.
# `--against switchyard`).
append_results() {
    local title=$1 details=$2 runs=$3 section
    shift 3
    section=$(
        echo
        echo "## $title — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        machine_lines
        cat "$details"
        if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
        echo
        python3 "$REPO_ROOT/benches/report.py" "$@" <"$runs"
    )
    record_section "$section"
}

# record_section TEXT: print a results section and append it to RESULTS.md
# (unless BENCH_NO_RECORD=1).
record_section() {
    printf '%s\n' "$1"
    if [ "${BENCH_NO_RECORD:-0}" = "1" ]; then
        log "BENCH_NO_RECORD=1: not writing $RESULTS"
    else
        printf '%s\n' "$1" >>"$RESULTS"
        log "appended to $RESULTS"
    fi
}

# build_proxy_release: print the path of a release switchyard-proxy (PROXY_BIN
# if set, else build it).
build_proxy_release() {
    if [ -n "${PROXY_BIN:-}" ]; then
        [ -x "$PROXY_BIN" ] || die "PROXY_BIN=$PROXY_BIN is not executable"
        echo "$PROXY_BIN"
        return
    fi
    log "building switchyard-proxy (release)"
    (cd "$REPO_ROOT" && cargo build --release -p switchyard-proxy >&2) || die "cargo build --release -p switchyard-proxy failed"
    echo "$(cargo_target_dir)/release/switchyard-proxy"
}

# start_haproxy DIR LISTEN_PORT SERVER: start haproxy in TCP mode (one
# thread per core, as switchyard-proxy runs), relaying 127.0.0.1:LISTEN_PORT
# to SERVER (`127.0.0.1:5432`, or a Unix socket path) without parsing
# anything: the floor for what any proxy's extra hop costs on this machine.
# Sets HAPROXY_PID.
start_haproxy() {
    local dir=$1 port=$2 server=$3
    mkdir -p "$dir"
    cat >"$dir/haproxy.cfg" <<EOF
global
    maxconn 4096
    nbthread $(nproc)
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen relay
    bind 127.0.0.1:$port
    server db $server
EOF
    haproxy -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    wait_port "$port" 10 "$HAPROXY_PID" || { tail -n 20 "$dir/haproxy.log" >&2; die "haproxy did not start"; }
    log "haproxy $(haproxy -v | head -n 1 | awk '{ print $3 }') (TCP mode, $(nproc) threads) up on 127.0.0.1:$port, server $server"
}

# cpu_ticks PID: the process's user and system CPU time so far (all its
# threads), in clock ticks, as "user system"; "- -" for no process.
cpu_ticks() {
    if [ -z "$1" ] || [ ! -r "/proc/$1/stat" ]; then
        echo "- -"
        return
    fi
    # Fields after the command name (which may hold spaces): utime is the
    # 12th, stime the 13th.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'
}

# cpu_per_tx BEFORE AFTER TRANSACTIONS: user and system CPU in µs per
# transaction between two cpu_ticks readings, as "user<TAB>system".
cpu_per_tx() {
    local before=$1 after=$2 tx=$3
    if [ "${before%% *}" = - ] || [ "${after%% *}" = - ]; then
        printf -- '-\t-'
        return
    fi
    awk -v b="$before" -v a="$after" -v tx="$tx" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%.1f\t%.1f", (y[1] - x[1]) * 1e6 / hz / tx, (y[2] - x[2]) * 1e6 / hz / tx }'
}

# switchyard_config FILE PROTOCOL PORT ADMIN_PORT BACKEND_FIELDS: write a
# switchyard-proxy config with one listener (PROTOCOL `postgres` or `mysql`
# on 127.0.0.1:PORT), the admin API on ADMIN_PORT, user app/app, and one
# backend as the server's superuser (`pg` or `my`, at BACKEND_FIELDS such as
# `host: 127.0.0.1, port: 5432`) that the listener routes to. A
# `migrations:` section may be appended to FILE after it.
switchyard_config() {
    local file=$1 protocol=$2 port=$3 admin=$4 fields=$5 backend
    case "$protocol" in
    postgres) backend="pg: { kind: postgres, $fields, user: postgres, password: \"\" }" ;;
    mysql) backend="my: { kind: mysql, $fields, user: root, password: \"\" }" ;;
    *) die "switchyard_config: unknown protocol \`$protocol\`" ;;
    esac
    cat >"$file" <<EOF
listen: { $protocol: 127.0.0.1:$port }
admin: { listen: 127.0.0.1:$admin }
users:
  - { name: app, password: app }
backends:
  $backend
routes: { $protocol: ${backend%%:*} }
EOF
}

# start_switchyard BIN CONFIG ADMIN_PORT: start switchyard-proxy with CONFIG,
# logging to proxy.log beside it, and wait until its /healthz answers on
# ADMIN_PORT. Sets PROXY_PID.
start_switchyard() {
    local bin=$1 config=$2 admin=$3 log_file
    log_file="$(dirname "$config")/proxy.log"
    SWITCHYARD_LOG=${SWITCHYARD_LOG:-warn} "$bin" --config "$config" >"$log_file" 2>&1 &
    PROXY_PID=$!
    wait_http "http://127.0.0.1:$admin/healthz" 30 "$PROXY_PID" ||
        { tail -n 20 "$log_file" >&2; die "switchyard-proxy did not become healthy (log: $log_file)"; }
}

# proxy_log_summary LOG: print (to stderr) the distinct messages of a
# switchyard-proxy log with their counts, most frequent first: a session
# stuck in a loop can write millions of the same line.
proxy_log_summary() {
    [ -s "$1" ] || return 0
    log "distinct messages in $1 ($(wc -l <"$1") lines), most frequent first:"
    sed -E 's/^[0-9]{4}-[0-9T:.-]+Z +//' "$1" | sort | uniq -c | sort -rn | head -n 10 >&2
}

# wait_catalog_ready ADMIN_PORT MIGRATION SECONDS: wait until the proxy's
# `GET /migrations` shows MIGRATION with `"catalog":"ready"` (both tables'
# columns loaded and the mapping checked: reads can be routed). Fails at
# once when the catalog refused the mapping, or after SECONDS.
wait_catalog_ready() {
    local admin=$1 id=$2 secs=$3 i body=""
    for ((i = 0; i < secs * 10; i++)); do
        body=$(curl -fsS --max-time 2 "http://127.0.0.1:$admin/migrations" 2>/dev/null || true)
        case "$(python3 -c '
import json, sys
want = sys.argv[1]
try:
    doc = json.loads(sys.stdin.read())
except ValueError:
    sys.exit(0)
items = doc if isinstance(doc, list) else doc.get("migrations", [])
for m in items:
    if m.get("id") == want:
        print(m.get("catalog", ""))
' "$id" <<<"$body")" in
        ready) return 0 ;;
        refused) die "migration $id: catalog refused: $body" ;;
        esac
        sleep 0.1
    done
    die "migration $id: catalog not ready after ${secs}s (last /migrations: ${body:-no answer})"
}

# read_counts ADMIN_PORT: the proxy's routed reads so far, from
# switchyard_reads_total on /metrics, as "source target errors" (errors:
# reads on either path whose response was an error).
read_counts() {
    curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /^switchyard_reads_total\{/ {
            v = $NF
            if ($0 ~ /path="target"/) t += v; else if ($0 ~ /path="source"/) s += v
            if ($0 ~ /outcome="error"/) e += v
        }
        END { printf "%d %d %d\n", s, t, e }'
}

# check_routed NAME BEFORE AFTER: between two read_counts readings, the
# routed reads must have grown on the target path (fail loudly otherwise,
# and on any read that ended in an error). Prints the target share as a
# percentage.
check_routed() {
    local name=$1 before=$2 after=$3 s0 t0 e0 s1 t1 e1 ds dt
    read -r s0 t0 e0 <<<"$before"
    read -r s1 t1 e1 <<<"$after"
    ds=$((s1 - s0))
    dt=$((t1 - t0))
    [ "$dt" -gt 0 ] ||
        die "$name: no read went to the target during the run (switchyard_reads_total source +$ds, target +$dt): the migration did not route"
    [ "$e1" -eq "$e0" ] || die "$name: $((e1 - e0)) routed reads ended in an error during the run"
    awk -v s="$ds" -v t="$dt" 'BEGIN { printf "%.1f", 100 * t / (s + t) }'
}

# ---- the routing comparisons of pgbench.sh and sysbench.sh: `routed` runs
# the proxy with the benchmark table migrated to an identical copy, 50% of
# keys routed there; `shadowed` does the same and shadows 5% of the reads.
ROUTED_PERCENT=50
SHADOW_PERCENT=5

# has_target NAME: NAME is one of TARGETS.
has_target() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }

# migrated: some target runs the proxy with the benchmark's migration.
migrated() { has_target routed || has_target shadowed; }

# is_migrated RUN_TARGET: that run target (name/transport) has the migration.
is_migrated() { [[ "$1" == routed/* || "$1" == shadowed/* ]]; }

# comparison_args: report.py's `--against` for the targets chosen: shadowed
# against routed (the cost of shadow), else routed against switchyard (the
# cost of routing); warns when the peer is missing.
comparison_args() {
    if has_target shadowed; then
        has_target routed || warn "\`shadowed\` without \`routed\`: its ratio to routed will read n/a"
        echo "--against routed"
    elif has_target routed; then
        has_target switchyard || warn "\`routed\` without \`switchyard\`: its ratio to switchyard will read n/a"
        echo "--against switchyard"
    fi
}

# comparison_title: what the results section compares, for its heading.
comparison_title() {
    if has_target shadowed; then
        echo ": shadowed vs routed"
    elif has_target routed; then
        echo ": routed vs switchyard"
    fi
}

# shadowed_details ADMIN_PORT: the results line describing `shadowed`.
shadowed_details() {
    echo "routed plus shadow.percent $SHADOW_PERCENT (one routed read in $((100 / SHADOW_PERCENT)) also run on both tables by the proxy's own connections and compared); shadow outcomes over the runs, last transport: $(shadow_counts "$1")"
}

# check_not_rolled_back NAME ADMIN_PORT: the guard must not have taken the
# migration's reads off the copy during the run (its ratio would then be
# the passthrough's, not the routing's).
check_not_rolled_back() {
    local reason
    reason=$(curl -fsS --max-time 5 "http://127.0.0.1:$2/migrations" |
        python3 -c 'import json, sys; print(next((m["rollback"]["verdict"] for m in json.load(sys.stdin)["migrations"] if m.get("rollback")), ""))')
    [ -z "$reason" ] || die "$1: the guard rolled the migration's reads back during the run: $reason"
}

# shadow_counts ADMIN_PORT: "match N, mismatch N, skipped N, error N" from
# switchyard_shadow_compare_total on a proxy's /metrics.
shadow_counts() {
    curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk '
        /^switchyard_shadow_compare_total\{/ {
            match($0, /result="[a-z]+"/)
            r = substr($0, RSTART + 8, RLENGTH - 9)
            n[r] += $NF
        }
        END { printf "match %d, mismatch %d, skipped %d, error %d", n["match"], n["mismatch"], n["skipped"], n["error"] }'
}

# share_range PERCENT...: "lowest–highest%" of check_routed's shares.
share_range() {
    printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s%%", lo, hi }'
}

# pgbench_figures OUT: from pgbench's output file, "tps transactions
# latency_ms failed" (failed is 0 when this pgbench counts no failures).
# Fails, showing the output, when tps or latency are missing.
pgbench_figures() {
    local tps tx lat failed
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$1")
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$1")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$1")
    if [ -z "$tps" ] || [ -z "$lat" ]; then
        cat "$1" >&2
        die "could not read tps/latency from pgbench output $1"
    fi
    echo "$tps ${tx:-1} $lat ${failed:-0}"
}

# sysbench_figures OUT: from sysbench's output file, "tps transactions
# latency_ms ignored_errors" (ignored errors: deadlocks and the like that
# sysbench retried). Fails, showing the output, when tps or latency are
# missing.
sysbench_figures() {
    local tps tx lat ignored
    tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$1")
    tx=$(sed -n 's/^ *transactions: *\([0-9]*\) .*/\1/p' "$1")
    lat=$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' "$1" | head -n 1)
    ignored=$(sed -n 's/^ *ignored errors: *\([0-9]*\) .*/\1/p' "$1")
    if [ -z "$tps" ] || [ -z "$lat" ]; then
        cat "$1" >&2
        die "could not read tps/latency from sysbench output $1"
    fi
    echo "$tps ${tx:-1} $lat ${ignored:-0}"
}
