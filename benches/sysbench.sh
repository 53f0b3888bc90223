#!/usr/bin/env bash
# sysbench oltp_point_select and oltp_read_only against MariaDB directly,
# through switchyard-proxy's MySQL listener (release build) and through
# haproxy in TCP mode (a relay that parses nothing: the floor), with server-side
# prepared statements (--db-ps-mode=auto) and without (disable); 8 threads for
# throughput and 1 for the latency the hop adds. Targets are interleaved
# within every round (their order rotates), the table shows medians over
# rounds and is appended to benches/RESULTS.md.
#
# Usage: benches/sysbench.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [10]  BENCH_CLIENTS ["8 1"] (sysbench threads)
#   BENCH_TESTS ["oltp_point_select oltp_read_only"]  BENCH_PS_MODES ["auto disable"]
#   BENCH_TABLES [4]  BENCH_TABLE_SIZE [100000]
#   BENCH_TARGETS ["direct switchyard haproxy"]
#   PROXY_BIN     use this proxy binary instead of building the release one
#   BENCH_NO_RECORD=1  print the table without appending it to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded section (e.g. what else ran)
# Lists from the environment split on spaces on purpose (SC2206, SC2046).
# shellcheck disable=SC2206,SC2046
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=bench-sysbench

ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENT_COUNTS=(${BENCH_CLIENTS:-8 1})
TESTS=(${BENCH_TESTS:-oltp_point_select oltp_read_only})
PS_MODES=(${BENCH_PS_MODES:-auto disable})
TABLES=${BENCH_TABLES:-4}
TABLE_SIZE=${BENCH_TABLE_SIZE:-100000}
TARGETS=(${BENCH_TARGETS:-direct switchyard haproxy})
DB=sy_bench
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
check_positive_int BENCH_TABLES "$TABLES"
check_positive_int BENCH_TABLE_SIZE "$TABLE_SIZE"
for t in "${TARGETS[@]}"; do
    case "$t" in direct | switchyard | haproxy) ;; *) die "unknown target \`$t\` (direct, switchyard, haproxy)" ;; esac
done

bash "$REPO_ROOT/scripts/ensure-databases.sh" mysql
bash "$REPO_ROOT/scripts/ensure-tools.sh" sysbench
if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" haproxy
fi
PROXY=$(build_proxy_release)

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
PROXY_PID=""
HAPROXY_PID=""
cleanup() {
    local rc=$?
    [ -z "$HAPROXY_PID" ] || stop_pid "$HAPROXY_PID" haproxy 10 || true
    [ -z "$PROXY_PID" ] || stop_pid "$PROXY_PID" switchyard-proxy 10 || true
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SB_COMMON=(--db-driver=mysql --tables="$TABLES" --table-size="$TABLE_SIZE" --mysql-db="$DB")

# ---- data: sbtest1..N in a dedicated database, prepared directly
have=$(my_direct -D "$DB" -Nse "select count(*) from sbtest$TABLES" 2>/dev/null || echo none)
if [ "$have" != "$TABLE_SIZE" ]; then
    log "preparing $DB: $TABLES tables × $TABLE_SIZE rows"
    my_direct -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
        --mysql-password= --threads=2 prepare >"$WORK/prepare.log" 2>&1 ||
        { tail -n 20 "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }
else
    log "$DB already holds $TABLES tables × $TABLE_SIZE rows"
fi

# ---- switchyard-proxy: MySQL listener only, user app/app
mapfile -t PORTS < <(free_ports 3)
MY_PORT=${PORTS[0]}
ADMIN_PORT=${PORTS[1]}
cat >"$WORK/switchyard.yaml" <<EOF
listen: { mysql: 127.0.0.1:$MY_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
users:
  - { name: app, password: app }
backends:
  my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: "" }
routes: { mysql: my }
EOF
start_switchyard "$PROXY" "$WORK/switchyard.yaml" "$ADMIN_PORT"
if ! MYSQL_PWD=app timeout 15 mariadb --protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -u app -D "$DB" \
    --connect-timeout=5 -Nse 'select 1' >"$WORK/probe.out" 2>&1; then
    cat "$WORK/probe.out" >&2
    tail -n 20 "$WORK/proxy.log" | sed 's/^/    | /' >&2
    die "switchyard-proxy's MySQL listener on 127.0.0.1:$MY_PORT does not answer a query as app/app (is the MySQL side implemented yet? proxy log: $WORK/proxy.log)"
fi
log "switchyard-proxy up, MySQL on 127.0.0.1:$MY_PORT ($PROXY)"

if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
    HAPROXY_PORT=${PORTS[2]}
    start_haproxy "$WORK/haproxy" "$HAPROXY_PORT" 3306
fi

target_args() {
    case "$1" in
    direct) echo "--mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root --mysql-password=" ;;
    switchyard) echo "--mysql-host=127.0.0.1 --mysql-port=$MY_PORT --mysql-user=app --mysql-password=app" ;;
    haproxy) echo "--mysql-host=127.0.0.1 --mysql-port=$HAPROXY_PORT --mysql-user=root --mysql-password=" ;;
    esac
}

# ---- the runs
RUNS="$WORK/runs.tsv"
: >"$RUNS"
total=$((ROUNDS * ${#CLIENT_COUNTS[@]} * ${#TESTS[@]} * ${#PS_MODES[@]} * ${#TARGETS[@]}))
n=0
log "$total runs of ${SECONDS_PER_RUN}s (about $((total * (SECONDS_PER_RUN + 1) / 60 + 1)) min)"
for ((round = 0; round < ROUNDS; round++)); do
    for threads in "${CLIENT_COUNTS[@]}"; do
        for test in "${TESTS[@]}"; do
            for ps in "${PS_MODES[@]}"; do
                for ((k = 0; k < ${#TARGETS[@]}; k++)); do
                    target=${TARGETS[$(((k + round) % ${#TARGETS[@]}))]}
                    n=$((n + 1))
                    out="$WORK/run-$n.log"
                    if ! timeout $((SECONDS_PER_RUN + 60)) sysbench "$test" "${SB_COMMON[@]}" $(target_args "$target") \
                        --threads="$threads" --time="$SECONDS_PER_RUN" --events=0 --db-ps-mode="$ps" run >"$out" 2>&1; then
                        tail -n 30 "$out" >&2
                        die "sysbench $test against $target failed (round $((round + 1)), ps-mode $ps, $threads threads)"
                    fi
                    tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' "$out")
                    lat=$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' "$out" | head -n 1)
                    [ -n "$tps" ] && [ -n "$lat" ] || { cat "$out" >&2; die "could not read tps/latency from sysbench output"; }
                    printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$test ps=$ps" "$threads" "$tps" "$lat" >>"$RUNS"
                    printf '[%d/%d] round %d %-10s %-18s ps=%-7s t=%d  tps %10.1f  latency %.3f ms\n' \
                        "$n" "$total" "$((round + 1))" "$target" "$test" "$ps" "$threads" "$tps" "$lat"
                done
            done
        done
    done
done

details="$WORK/details.md"
{
    echo "- MariaDB $(my_direct -Nse 'select version()') on 127.0.0.1:3306; sysbench $(sysbench --version | awk '{ print $2 }'), $TABLES tables × $TABLE_SIZE rows, database $DB"
    echo "- targets: ${TARGETS[*]}; direct as root; switchyard-proxy (release build) MySQL listener, user app$([ -n "$HAPROXY_PID" ] && echo "; haproxy $(haproxy -v | head -n 1 | awk '{ print $3 }') TCP mode, $(nproc) threads, as root")"
    echo "- $ROUNDS rounds × ${SECONDS_PER_RUN} s per run, threads ${CLIENT_COUNTS[*]}, targets interleaved, medians over rounds; mode = sysbench test and --db-ps-mode"
} >"$details"
append_results "sysbench" "$details" "$RUNS"
