#!/usr/bin/env bash
# pgbench -S (select-only) against PostgreSQL directly, through
# switchyard-proxy (release build), through pgbouncer (session pooling) and
# through haproxy in TCP mode (a relay that parses nothing: the floor), in
# the simple and prepared query modes; 8 clients for throughput and 1 client
# for the latency each hop adds. Targets are interleaved within every round
# (their order rotates from round to round) so drift in the machine's speed
# hits all of them alike; the table shows medians over rounds and is appended to
# benches/RESULTS.md.
#
# Usage: benches/pgbench.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [10]  BENCH_CLIENTS ["8 1"]
#   BENCH_MODES ["simple prepared"]  BENCH_SCALE [10]
#   BENCH_TARGETS ["direct switchyard pgbouncer haproxy"]
#   PROXY_BIN     use this proxy binary instead of building the release one
#   BENCH_NO_RECORD=1  print the table without appending it to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded section (e.g. what else ran)
# Lists from the environment split on spaces on purpose (SC2206, SC2046).
# shellcheck disable=SC2206,SC2046
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=bench-pgbench

ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENT_COUNTS=(${BENCH_CLIENTS:-8 1})
MODES=(${BENCH_MODES:-simple prepared})
SCALE=${BENCH_SCALE:-10}
TARGETS=(${BENCH_TARGETS:-direct switchyard pgbouncer haproxy})
DB=sy_bench
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
check_positive_int BENCH_SCALE "$SCALE"
for t in "${TARGETS[@]}"; do
    case "$t" in direct | switchyard | pgbouncer | haproxy) ;; *) die "unknown target \`$t\` (direct, switchyard, pgbouncer, haproxy)" ;; esac
done
[ "${TARGETS[0]}" = direct ] || [[ " ${TARGETS[*]} " == *" direct "* ]] ||
    warn "no \`direct\` target: ratios and added latency will read n/a"

bash "$REPO_ROOT/scripts/ensure-databases.sh" postgres
if [[ " ${TARGETS[*]} " == *" pgbouncer "* ]]; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" pgbouncer
fi
if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" haproxy
fi
if [[ " ${TARGETS[*]} " == *" switchyard "* ]]; then
    PROXY=$(build_proxy_release)
fi

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
chmod 755 "$WORK"
PROXY_PID=""
BOUNCER_PID=""
HAPROXY_PID=""
cleanup() {
    local rc=$?
    [ -z "$HAPROXY_PID" ] || stop_pid "$HAPROXY_PID" haproxy 10 || true
    [ -z "$PROXY_PID" ] || stop_pid "$PROXY_PID" switchyard-proxy 10 || true
    [ -z "$BOUNCER_PID" ] || stop_pid "$BOUNCER_PID" pgbouncer 10 || true
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- data: pgbench_* at the requested scale in a dedicated database
have_scale=$(pg_direct -d "$DB" -Atc 'select count(*) from pgbench_branches' 2>/dev/null || echo none)
if [ "$have_scale" != "$SCALE" ]; then
    log "initialising $DB with pgbench -i -s $SCALE"
    pg_direct -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    pgbench -i -s "$SCALE" -q -h 127.0.0.1 -p 5432 -U postgres "$DB" >"$WORK/init.log" 2>&1 ||
        { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
else
    log "$DB already holds scale $SCALE"
fi
pg_direct -d "$DB" -c 'VACUUM ANALYZE' >/dev/null

mapfile -t PORTS < <(free_ports 4)
PX_PORT=${PORTS[0]} ADMIN_PORT=${PORTS[1]} BOUNCER_PORT=${PORTS[2]} HAPROXY_PORT=${PORTS[3]}

# ---- switchyard-proxy: PostgreSQL listener only, SCRAM user app/app
if [ -n "${PROXY:-}" ]; then
    cat >"$WORK/switchyard.yaml" <<EOF
listen: { postgres: 127.0.0.1:$PX_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
users:
  - { name: app, password: app }
backends:
  pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: "" }
routes: { postgres: pg }
EOF
    start_switchyard "$PROXY" "$WORK/switchyard.yaml" "$ADMIN_PORT"
    log "switchyard-proxy up on 127.0.0.1:$PX_PORT ($PROXY)"
fi

# ---- pgbouncer: session pooling, md5 user app/app; never runs as root
if [[ " ${TARGETS[*]} " == *" pgbouncer "* ]]; then
    B="$WORK/pgbouncer"
    mkdir -p "$B"
    cat >"$B/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=5432 dbname=$DB user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = md5
auth_file = $B/userlist.txt
pool_mode = session
default_pool_size = 20
max_client_conn = 200
logfile = $B/pgbouncer.log
pidfile = $B/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
    echo '"app" "app"' >"$B/userlist.txt"
    as_user=()
    if is_root; then
        chown -R postgres: "$B"
        as_user=(-u postgres)
    fi
    pgbouncer "${as_user[@]}" "$B/pgbouncer.ini" >"$B/stdout.log" 2>&1 &
    BOUNCER_PID=$!
    wait_port "$BOUNCER_PORT" 10 "$BOUNCER_PID" ||
        { cat "$B/stdout.log" "$B/pgbouncer.log" 2>/dev/null | tail -n 20 >&2; die "pgbouncer did not start"; }
    log "pgbouncer $(pgbouncer --version | head -n 1 | awk '{ print $2 }') up on 127.0.0.1:$BOUNCER_PORT"
fi

if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
    start_haproxy "$WORK/haproxy" "$HAPROXY_PORT" 5432
fi

target_args() {
    case "$1" in
    direct) echo "-h 127.0.0.1 -p 5432 -U postgres" ;;
    switchyard) echo "-h 127.0.0.1 -p $PX_PORT -U app" ;;
    pgbouncer) echo "-h 127.0.0.1 -p $BOUNCER_PORT -U app" ;;
    haproxy) echo "-h 127.0.0.1 -p $HAPROXY_PORT -U postgres" ;;
    esac
}

for t in "${TARGETS[@]}"; do
    PGPASSWORD=app psql -X -w -At $(target_args "$t") -d "$DB" -c 'select count(*) from pgbench_branches' >/dev/null ||
        die "target $t does not answer a query (see $WORK)"
done

# ---- the runs
RUNS="$WORK/runs.tsv"
: >"$RUNS"
total=$((ROUNDS * ${#CLIENT_COUNTS[@]} * ${#MODES[@]} * ${#TARGETS[@]}))
n=0
log "$total runs of ${SECONDS_PER_RUN}s (about $((total * (SECONDS_PER_RUN + 1) / 60 + 1)) min)"
for ((round = 0; round < ROUNDS; round++)); do
    for clients in "${CLIENT_COUNTS[@]}"; do
        threads=$((clients < 2 ? clients : 2))
        for mode in "${MODES[@]}"; do
            for ((k = 0; k < ${#TARGETS[@]}; k++)); do
                target=${TARGETS[$(((k + round) % ${#TARGETS[@]}))]}
                n=$((n + 1))
                out="$WORK/run-$n.log"
                if ! PGPASSWORD=app pgbench -n -S -M "$mode" -c "$clients" -j "$threads" -T "$SECONDS_PER_RUN" \
                    $(target_args "$target") "$DB" >"$out" 2>&1; then
                    cat "$out" >&2
                    die "pgbench against $target failed (round $((round + 1)), $mode, $clients clients)"
                fi
                tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
                lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
                failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
                [ -n "$tps" ] && [ -n "$lat" ] || { cat "$out" >&2; die "could not read tps/latency from pgbench output"; }
                [ "${failed:-0}" = 0 ] || { cat "$out" >&2; die "$target: $failed failed transactions"; }
                printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$mode" "$clients" "$tps" "$lat" >>"$RUNS"
                printf '[%d/%d] round %d %-10s %-8s c=%d  tps %10.1f  latency %.3f ms\n' \
                    "$n" "$total" "$((round + 1))" "$target" "$mode" "$clients" "$tps" "$lat"
            done
        done
    done
done

pg_version=$(pg_direct -d postgres -Atc 'show server_version')
details="$WORK/details.md"
{
    echo "- PostgreSQL $pg_version on 127.0.0.1:5432; pgbench -S -s $SCALE, database $DB"
    echo "- targets: ${TARGETS[*]}$([ -n "${PROXY:-}" ] && echo "; switchyard-proxy (release build), SCRAM user app")$([ -n "$BOUNCER_PID" ] && echo "; pgbouncer $(pgbouncer --version | head -n 1 | awk '{ print $2 }') session mode, md5 user app")$([ -n "$HAPROXY_PID" ] && echo "; haproxy $(haproxy -v | head -n 1 | awk '{ print $3 }') TCP mode, $(nproc) threads")"
    echo "- $ROUNDS rounds × ${SECONDS_PER_RUN} s per run, clients ${CLIENT_COUNTS[*]} (-j 2, or 1 for one client), targets interleaved, medians over rounds"
} >"$details"
append_results "pgbench -S" "$details" "$RUNS"
