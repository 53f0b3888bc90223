#!/usr/bin/env bash
# sysbench oltp_point_select and oltp_read_only against MariaDB directly,
# through switchyard-proxy's MySQL listener (release build) and through
# haproxy in TCP mode (a relay that parses nothing: the floor), with server-side
# prepared statements (--db-ps-mode=auto) and without (disable); 8 threads for
# throughput and 1 for the latency the hop adds. Each relay runs twice, once
# per transport of its backend leg: TCP to 127.0.0.1:3306 and the Unix socket
# /run/mysqld/mysqld.sock (clients always reach the relays over TCP). Targets
# are interleaved within every round (their order rotates); beside every
# figure, the relay's own CPU per transaction (user and system, from
# /proc/PID/stat over the run). The table shows medians over rounds with the
# spread and is appended to benches/RESULTS.md.
#
# The routing comparison (BENCH_TARGETS="switchyard routed"): `routed` is the
# same proxy binary with a migration of sbtest1 to an identical copy
# (sbtest1_copy, recreated by this script) in read_ramp, 50% of the keys to
# the copy sticky by id. Reads of sbtest1 are parsed, routed per execution
# and half of them rewritten (reads of sbtest2..N pass as before); the table
# then also shows each target's ratio to switchyard's passthrough over the
# same transport. After every routed run the script checks on the proxy's
# /metrics that reads did go to the copy.
#
# Usage: benches/sysbench.sh
#        BENCH_TARGETS="switchyard routed" BENCH_TRANSPORTS=tcp benches/sysbench.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [10]  BENCH_CLIENTS ["8 1"] (sysbench threads)
#   BENCH_TESTS ["oltp_point_select oltp_read_only"]  BENCH_PS_MODES ["auto disable"]
#   BENCH_TABLES [4]  BENCH_TABLE_SIZE [100000]
#   BENCH_TARGETS ["direct switchyard haproxy"]; also `routed`, `shadowed`
#                 (`routed` with shadow.percent 5, compared with `routed`)
#   BENCH_TRANSPORTS ["tcp unix"]  backend legs of the relays
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
TRANSPORTS=(${BENCH_TRANSPORTS:-tcp unix})
MY_SOCKET=/run/mysqld/mysqld.sock
DB=sy_bench
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
check_positive_int BENCH_TABLES "$TABLES"
check_positive_int BENCH_TABLE_SIZE "$TABLE_SIZE"
for t in "${TARGETS[@]}"; do
    case "$t" in direct | switchyard | routed | shadowed | haproxy) ;; *) die "unknown target \`$t\` (direct, switchyard, routed, shadowed, haproxy)" ;; esac
done
for t in "${TRANSPORTS[@]}"; do
    case "$t" in tcp | unix) ;; *) die "unknown transport \`$t\` (tcp, unix)" ;; esac
done
REPORT_ARGS=($(comparison_args))
# The routed target's migration: sbtest1 to an identical copy.
MIGRATION=bench_sbtest1_copy
COPY_TABLE=sbtest1_copy

bash "$REPO_ROOT/scripts/ensure-databases.sh" mysql
bash "$REPO_ROOT/scripts/ensure-tools.sh" sysbench
if has_target haproxy; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" haproxy
fi
PROXY=$(build_proxy_release)

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
# Each relay's process (for CPU readings and cleanup) and port, by target name.
declare -A PID_OF=() PORT_OF=()
cleanup() {
    local rc=$?
    for t in "${!PID_OF[@]}"; do
        stop_pid "${PID_OF[$t]}" "$t" 10 || true
    done
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
if migrated; then
    # Recreated every time: a new prepare replaces sbtest1, not the copy.
    log "copying sbtest1 to $COPY_TABLE"
    my_direct -D "$DB" -e "DROP TABLE IF EXISTS $COPY_TABLE; CREATE TABLE $COPY_TABLE LIKE sbtest1;
        INSERT INTO $COPY_TABLE SELECT * FROM sbtest1; ANALYZE TABLE sbtest1, $COPY_TABLE" >/dev/null
fi

mapfile -t PORTS < <(free_ports $((5 * ${#TRANSPORTS[@]})))
next_port=0
take_port() {
    PORT_OF[$1]=${PORTS[$next_port]}
    next_port=$((next_port + 1))
}

# ---- switchyard-proxy: MySQL listener only, user app/app; with a third
# argument `routed` or `shadowed`, plus the migration of sbtest1
# (shadowing SHADOW_PERCENT% of its reads for `shadowed`)
start_switchyard_my() {
    local name=$1 transport=$2 routed=${3:-} dir="$WORK/$1" backend shadow=""
    [ "$routed" != shadowed ] || shadow=", shadow: { percent: $SHADOW_PERCENT }"
    mkdir -p "$dir"
    take_port "$name"
    take_port "$name/admin"
    backend="host: 127.0.0.1, port: 3306"
    [ "$transport" = unix ] && backend="host: $MY_SOCKET"
    switchyard_config "$dir/switchyard.yaml" mysql "${PORT_OF[$name]}" "${PORT_OF[$name/admin]}" "$backend"
    if [ -n "$routed" ]; then
        cat >>"$dir/switchyard.yaml" <<EOF
migrations:
  - id: $MIGRATION
    backend: my
    source: { database: $DB, table: sbtest1, primary_key: [id] }
    target: { table: $COPY_TABLE }
    phase: read_ramp
    reads: { strategy: percentage, percent: $ROUTED_PERCENT, sticky_by: "column:id"$shadow }
EOF
    fi
    start_switchyard "$PROXY" "$dir/switchyard.yaml" "${PORT_OF[$name/admin]}"
    PID_OF[$name]=$PROXY_PID
    if [ -n "$routed" ]; then
        wait_catalog_ready "${PORT_OF[$name/admin]}" "$MIGRATION" 30
        log "$name: migration $MIGRATION catalog ready ($ROUTED_PERCENT% of id keys to $COPY_TABLE)"
    fi
    if ! MYSQL_PWD=app timeout 15 mariadb --protocol=tcp -h 127.0.0.1 -P "${PORT_OF[$name]}" -u app -D "$DB" \
        --connect-timeout=5 -Nse 'select 1' >"$dir/probe.out" 2>&1; then
        cat "$dir/probe.out" >&2
        tail -n 20 "$dir/proxy.log" | sed 's/^/    | /' >&2
        die "switchyard-proxy ($name) on 127.0.0.1:${PORT_OF[$name]} does not answer a query as app/app (proxy log: $dir/proxy.log)"
    fi
    log "switchyard-proxy up, MySQL on 127.0.0.1:${PORT_OF[$name]}, backend over $transport ($PROXY)"
}

RUN_TARGETS=()
for t in "${TARGETS[@]}"; do
    if [ "$t" = direct ]; then
        RUN_TARGETS+=(direct)
        continue
    fi
    for transport in "${TRANSPORTS[@]}"; do
        name="$t/$transport"
        RUN_TARGETS+=("$name")
        case "$t" in
        switchyard) start_switchyard_my "$name" "$transport" ;;
        routed | shadowed) start_switchyard_my "$name" "$transport" "$t" ;;
        haproxy)
            take_port "$name"
            server=127.0.0.1:3306
            [ "$transport" = unix ] && server="$MY_SOCKET"
            start_haproxy "$WORK/$t-$transport" "${PORT_OF[$name]}" "$server"
            PID_OF[$name]=$HAPROXY_PID
            ;;
        esac
    done
done

target_args() {
    case "$1" in
    direct) echo "--mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root --mysql-password=" ;;
    switchyard/* | routed/* | shadowed/*) echo "--mysql-host=127.0.0.1 --mysql-port=${PORT_OF[$1]} --mysql-user=app --mysql-password=app" ;;
    haproxy/*) echo "--mysql-host=127.0.0.1 --mysql-port=${PORT_OF[$1]} --mysql-user=root --mysql-password=" ;;
    esac
}

# ---- the runs
RUNS="$WORK/runs.tsv"
: >"$RUNS"
SHARES=() # the target share of routed reads observed in every routed run
total=$((ROUNDS * ${#CLIENT_COUNTS[@]} * ${#TESTS[@]} * ${#PS_MODES[@]} * ${#RUN_TARGETS[@]}))
n=0
log "$total runs of ${SECONDS_PER_RUN}s (about $((total * (SECONDS_PER_RUN + 1) / 60 + 1)) min)"
for ((round = 0; round < ROUNDS; round++)); do
    for threads in "${CLIENT_COUNTS[@]}"; do
        for test in "${TESTS[@]}"; do
            for ps in "${PS_MODES[@]}"; do
                for ((k = 0; k < ${#RUN_TARGETS[@]}; k++)); do
                    target=${RUN_TARGETS[$(((k + round) % ${#RUN_TARGETS[@]}))]}
                    n=$((n + 1))
                    out="$WORK/run-$n.log"
                    cpu_before=$(cpu_ticks "${PID_OF[$target]:-}")
                    routes=""
                    ! is_migrated "$target" || routes=1
                    [ -z "$routes" ] || reads_before=$(read_counts "${PORT_OF[$target/admin]}")
                    if ! timeout $((SECONDS_PER_RUN + 60)) sysbench "$test" "${SB_COMMON[@]}" $(target_args "$target") \
                        --threads="$threads" --time="$SECONDS_PER_RUN" --events=0 --db-ps-mode="$ps" run >"$out" 2>&1; then
                        tail -n 30 "$out" >&2
                        die "sysbench $test against $target failed (round $((round + 1)), ps-mode $ps, $threads threads)"
                    fi
                    cpu_after=$(cpu_ticks "${PID_OF[$target]:-}")
                    share=""
                    if [ -n "$routes" ]; then
                        share=$(check_routed "$target" "$reads_before" "$(read_counts "${PORT_OF[$target/admin]}")")
                        check_not_rolled_back "$target" "${PORT_OF[$target/admin]}"
                        SHARES+=("$share")
                        share="  target share ${share}%"
                    fi
                    figures=$(sysbench_figures "$out")
                    read -r tps tx lat _ <<<"$figures"
                    cpu=$(cpu_per_tx "$cpu_before" "$cpu_after" "$tx")
                    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$test ps=$ps" "$threads" "$tps" "$lat" "$cpu" >>"$RUNS"
                    printf '[%d/%d] round %d %-16s %-18s ps=%-7s t=%d  tps %10.1f  latency %.3f ms  cpu/tx %s%s\n' \
                        "$n" "$total" "$((round + 1))" "$target" "$test" "$ps" "$threads" "$tps" "$lat" "${cpu//$'\t'/ }" "$share"
                done
            done
        done
    done
done

details="$WORK/details.md"
{
    echo "- MariaDB $(my_direct -Nse 'select version()') on 127.0.0.1:3306; sysbench $(sysbench --version | awk '{ print $2 }'), $TABLES tables × $TABLE_SIZE rows, database $DB"
    echo "- targets: ${RUN_TARGETS[*]} (relay/transport of its backend leg: tcp = 127.0.0.1:3306, unix = $MY_SOCKET; clients reach every relay over TCP); direct as root; switchyard-proxy (release build) MySQL listener, user app$(has_target haproxy && echo "; haproxy $(haproxy -v | head -n 1 | awk '{ print $3 }') TCP mode, $(nproc) threads, as root")"
    echo "- relay CPU/tx: the relay process's user and system CPU over the run (/proc/PID/stat) divided by its transactions"
    if has_target shadowed; then
        echo "- shadowed: $(shadowed_details "${PORT_OF[shadowed/${TRANSPORTS[-1]}/admin]}")"
    fi
    if migrated; then
        echo "- routed: the same switchyard-proxy with migration $MIGRATION (sbtest1 → $COPY_TABLE, an identical copy: CREATE TABLE ... LIKE, same rows; sbtest2..$TABLES not migrated), phase read_ramp, percentage $ROUTED_PERCENT% sticky by column:id; share of its routed reads the copy answered, lowest–highest over the runs (switchyard_reads_total on /metrics): $(share_range "${SHARES[@]}")"
    fi
    echo "- $ROUNDS rounds × ${SECONDS_PER_RUN} s per run, threads ${CLIENT_COUNTS[*]}, targets interleaved, medians over rounds; mode = sysbench test and --db-ps-mode"
} >"$details"
append_results "sysbench$(comparison_title)" "$details" "$RUNS" "${REPORT_ARGS[@]}"
