#!/usr/bin/env bash
# pgbench -S (select-only) against PostgreSQL directly, through
# switchyard-proxy (release build), through pgbouncer (session pooling) and
# through haproxy in TCP mode (a relay that parses nothing: the floor), in
# the simple, extended and prepared query modes; 8 clients for throughput and
# 1 client for the latency each hop adds. Each relay runs twice, once per
# transport of its backend leg: TCP to 127.0.0.1:5432 and the Unix socket in
# /var/run/postgresql (clients always reach the relays over TCP). Targets are
# interleaved within every round (their order rotates from round to round)
# so drift in the machine's speed hits all of them alike. Beside every
# figure, the relay's own CPU per transaction (user and system, from
# /proc/PID/stat over the run). The table shows medians over rounds with the
# spread and is appended to benches/RESULTS.md.
#
# The routing comparison (BENCH_TARGETS="switchyard routed"): `routed` is the
# same proxy binary with a migration of pgbench_accounts to an identical copy
# (pgbench_accounts_copy, recreated by this script) in read_ramp, 50% of the
# keys to the copy sticky by aid. Its reads are parsed, routed per execution
# and half of them rewritten; the table then also shows each target's ratio
# to switchyard's passthrough over the same transport. After every routed run
# the script checks on the proxy's /metrics that reads did go to the copy,
# and on /migrations that the guard did not roll them back.
#
# The shadow's cost (BENCH_TARGETS="routed shadowed"): `shadowed` is `routed`
# with `shadow: { percent: 5 }`, so one routed read in twenty is also run on
# both tables by the proxy's own connections and compared; the table then
# shows its ratio to `routed`, the same rule without shadow.
#
# Usage: benches/pgbench.sh
#        BENCH_TARGETS="switchyard routed" BENCH_TRANSPORTS=tcp benches/pgbench.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [10]  BENCH_CLIENTS ["8 1"]
#   BENCH_MODES ["simple extended prepared"]  BENCH_SCALE [10]
#   BENCH_TARGETS ["direct switchyard pgbouncer haproxy"]; also `routed`,
#                 `shadowed`
#   BENCH_TRANSPORTS ["tcp unix"]  backend legs of the relays
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
MODES=(${BENCH_MODES:-simple extended prepared})
TRANSPORTS=(${BENCH_TRANSPORTS:-tcp unix})
PG_SOCKET_DIR=/var/run/postgresql
SCALE=${BENCH_SCALE:-10}
TARGETS=(${BENCH_TARGETS:-direct switchyard pgbouncer haproxy})
DB=sy_bench
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
check_positive_int BENCH_SCALE "$SCALE"
for t in "${TARGETS[@]}"; do
    case "$t" in direct | switchyard | routed | shadowed | pgbouncer | haproxy) ;; *) die "unknown target \`$t\` (direct, switchyard, routed, shadowed, pgbouncer, haproxy)" ;; esac
done
for t in "${TRANSPORTS[@]}"; do
    case "$t" in tcp | unix) ;; *) die "unknown transport \`$t\` (tcp, unix)" ;; esac
done
has_target direct || warn "no \`direct\` target: ratios to direct and added latency will read n/a"
REPORT_ARGS=($(comparison_args))
# The routed target's migration: pgbench_accounts to an identical copy.
MIGRATION=bench_accounts_copy
COPY_TABLE=pgbench_accounts_copy

bash "$REPO_ROOT/scripts/ensure-databases.sh" postgres
if [[ " ${TARGETS[*]} " == *" pgbouncer "* ]]; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" pgbouncer
fi
if [[ " ${TARGETS[*]} " == *" haproxy "* ]]; then
    bash "$REPO_ROOT/scripts/ensure-tools.sh" haproxy
fi
if has_target switchyard || migrated; then
    PROXY=$(build_proxy_release)
fi

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
chmod 755 "$WORK"
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
if migrated; then
    # Recreated every time: pgbench -i replaces pgbench_accounts, not the copy.
    log "copying pgbench_accounts to $COPY_TABLE"
    pg_direct -d "$DB" -c "DROP TABLE IF EXISTS $COPY_TABLE" \
        -c "CREATE TABLE $COPY_TABLE (LIKE pgbench_accounts INCLUDING ALL)" \
        -c "INSERT INTO $COPY_TABLE SELECT * FROM pgbench_accounts" >/dev/null
fi
pg_direct -d "$DB" -c 'VACUUM ANALYZE' >/dev/null

# backend_host TRANSPORT: the server as a relay's backend leg reaches it.
backend_host() {
    if [ "$1" = unix ]; then echo "$PG_SOCKET_DIR"; else echo 127.0.0.1; fi
}

mapfile -t PORTS < <(free_ports $((6 * ${#TRANSPORTS[@]})))
next_port=0
take_port() {
    PORT_OF[$1]=${PORTS[$next_port]}
    next_port=$((next_port + 1))
}

# ---- switchyard-proxy: PostgreSQL listener only, SCRAM user app/app; with
# a third argument `routed` or `shadowed`, plus the migration of
# pgbench_accounts (shadowing SHADOW_PERCENT% of its reads for `shadowed`)
start_switchyard_pg() {
    local name=$1 transport=$2 routed=${3:-} dir="$WORK/$1" shadow=""
    [ "$routed" != shadowed ] || shadow=", shadow: { percent: $SHADOW_PERCENT }"
    mkdir -p "$dir"
    take_port "$name"
    take_port "$name/admin"
    switchyard_config "$dir/switchyard.yaml" postgres "${PORT_OF[$name]}" "${PORT_OF[$name/admin]}" \
        "host: $(backend_host "$transport"), port: 5432"
    if [ -n "$routed" ]; then
        cat >>"$dir/switchyard.yaml" <<EOF
migrations:
  - id: $MIGRATION
    backend: pg
    source: { database: $DB, schema: public, table: pgbench_accounts, primary_key: [aid] }
    target: { table: $COPY_TABLE }
    phase: read_ramp
    reads: { strategy: percentage, percent: $ROUTED_PERCENT, sticky_by: "column:aid"$shadow }
EOF
    fi
    start_switchyard "$PROXY" "$dir/switchyard.yaml" "${PORT_OF[$name/admin]}"
    PID_OF[$name]=$PROXY_PID
    if [ -n "$routed" ]; then
        wait_catalog_ready "${PORT_OF[$name/admin]}" "$MIGRATION" 30
        log "$name: migration $MIGRATION catalog ready ($ROUTED_PERCENT% of aid keys to $COPY_TABLE)"
    fi
    log "switchyard-proxy up on 127.0.0.1:${PORT_OF[$name]}, backend over $transport ($PROXY)"
}

# ---- pgbouncer: session pooling, md5 user app/app; never runs as root
start_pgbouncer() {
    local name=$1 transport=$2 B="$WORK/$1"
    mkdir -p "$B"
    take_port "$name"
    cat >"$B/pgbouncer.ini" <<EOF
[databases]
$DB = host=$(backend_host "$transport") port=5432 dbname=$DB user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT_OF[$name]}
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
    local as_user=()
    if is_root; then
        chown -R postgres: "$B"
        as_user=(-u postgres)
    fi
    pgbouncer "${as_user[@]}" "$B/pgbouncer.ini" >"$B/stdout.log" 2>&1 &
    PID_OF[$name]=$!
    wait_port "${PORT_OF[$name]}" 10 "${PID_OF[$name]}" ||
        { cat "$B/stdout.log" "$B/pgbouncer.log" 2>/dev/null | tail -n 20 >&2; die "pgbouncer did not start"; }
    log "pgbouncer $(pgbouncer --version | head -n 1 | awk '{ print $2 }') up on 127.0.0.1:${PORT_OF[$name]}, backend over $transport"
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
        switchyard) start_switchyard_pg "$name" "$transport" ;;
        routed | shadowed) start_switchyard_pg "$name" "$transport" "$t" ;;
        pgbouncer) start_pgbouncer "$name" "$transport" ;;
        haproxy)
            take_port "$name"
            server=127.0.0.1:5432
            [ "$transport" = unix ] && server="$PG_SOCKET_DIR/.s.PGSQL.5432"
            start_haproxy "$WORK/$t-$transport" "${PORT_OF[$name]}" "$server"
            PID_OF[$name]=$HAPROXY_PID
            ;;
        esac
    done
done

target_args() {
    case "$1" in
    direct) echo "-h 127.0.0.1 -p 5432 -U postgres" ;;
    switchyard/* | routed/* | shadowed/* | pgbouncer/*) echo "-h 127.0.0.1 -p ${PORT_OF[$1]} -U app" ;;
    haproxy/*) echo "-h 127.0.0.1 -p ${PORT_OF[$1]} -U postgres" ;;
    esac
}

for t in "${RUN_TARGETS[@]}"; do
    PGPASSWORD=app psql -X -w -At $(target_args "$t") -d "$DB" -c 'select count(*) from pgbench_branches' >/dev/null ||
        die "target $t does not answer a query (see $WORK)"
done

# ---- the runs
RUNS="$WORK/runs.tsv"
: >"$RUNS"
SHARES=() # the target share of routed reads observed in every routed run
total=$((ROUNDS * ${#CLIENT_COUNTS[@]} * ${#MODES[@]} * ${#RUN_TARGETS[@]}))
n=0
log "$total runs of ${SECONDS_PER_RUN}s (about $((total * (SECONDS_PER_RUN + 1) / 60 + 1)) min)"
for ((round = 0; round < ROUNDS; round++)); do
    for clients in "${CLIENT_COUNTS[@]}"; do
        threads=$((clients < 2 ? clients : 2))
        for mode in "${MODES[@]}"; do
            for ((k = 0; k < ${#RUN_TARGETS[@]}; k++)); do
                target=${RUN_TARGETS[$(((k + round) % ${#RUN_TARGETS[@]}))]}
                n=$((n + 1))
                out="$WORK/run-$n.log"
                cpu_before=$(cpu_ticks "${PID_OF[$target]:-}")
                routes=""
                ! is_migrated "$target" || routes=1
                [ -z "$routes" ] || reads_before=$(read_counts "${PORT_OF[$target/admin]}")
                if ! PGPASSWORD=app pgbench -n -S -M "$mode" -c "$clients" -j "$threads" -T "$SECONDS_PER_RUN" \
                    $(target_args "$target") "$DB" >"$out" 2>&1; then
                    cat "$out" >&2
                    die "pgbench against $target failed (round $((round + 1)), $mode, $clients clients)"
                fi
                cpu_after=$(cpu_ticks "${PID_OF[$target]:-}")
                share=""
                if [ -n "$routes" ]; then
                    share=$(check_routed "$target" "$reads_before" "$(read_counts "${PORT_OF[$target/admin]}")")
                    check_not_rolled_back "$target" "${PORT_OF[$target/admin]}"
                    SHARES+=("$share")
                    share="  target share ${share}%"
                fi
                figures=$(pgbench_figures "$out")
                read -r tps tx lat failed <<<"$figures"
                [ "$failed" = 0 ] || { cat "$out" >&2; die "$target: $failed failed transactions"; }
                cpu=$(cpu_per_tx "$cpu_before" "$cpu_after" "$tx")
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$mode" "$clients" "$tps" "$lat" "$cpu" >>"$RUNS"
                printf '[%d/%d] round %d %-16s %-8s c=%d  tps %10.1f  latency %.3f ms  cpu/tx %s%s\n' \
                    "$n" "$total" "$((round + 1))" "$target" "$mode" "$clients" "$tps" "$lat" "${cpu//$'\t'/ }" "$share"
            done
        done
    done
done

pg_version=$(pg_direct -d postgres -Atc 'show server_version')
details="$WORK/details.md"
{
    echo "- PostgreSQL $pg_version on 127.0.0.1:5432; pgbench -S -s $SCALE, database $DB"
    echo "- targets: ${RUN_TARGETS[*]} (relay/transport of its backend leg: tcp = 127.0.0.1:5432, unix = $PG_SOCKET_DIR; clients reach every relay over TCP)$([ -n "${PROXY:-}" ] && echo "; switchyard-proxy (release build), SCRAM user app")$(has_target pgbouncer && echo "; pgbouncer $(pgbouncer --version | head -n 1 | awk '{ print $2 }') session mode, md5 user app")$(has_target haproxy && echo "; haproxy $(haproxy -v | head -n 1 | awk '{ print $3 }') TCP mode, $(nproc) threads")"
    echo "- relay CPU/tx: the relay process's user and system CPU over the run (/proc/PID/stat) divided by its transactions"
    if has_target shadowed; then
        echo "- shadowed: $(shadowed_details "${PORT_OF[shadowed/${TRANSPORTS[-1]}/admin]}")"
    fi
    if migrated; then
        echo "- routed: the same switchyard-proxy with migration $MIGRATION (pgbench_accounts → $COPY_TABLE, an identical copy: LIKE ... INCLUDING ALL, same rows), phase read_ramp, percentage $ROUTED_PERCENT% sticky by column:aid; share of its routed reads the copy answered, lowest–highest over the runs (switchyard_reads_total on /metrics): $(share_range "${SHARES[@]}")"
    fi
    echo "- $ROUNDS rounds × ${SECONDS_PER_RUN} s per run, clients ${CLIENT_COUNTS[*]} (-j 2, or 1 for one client), targets interleaved, medians over rounds"
} >"$details"
append_results "pgbench -S$(comparison_title)" "$details" "$RUNS" "${REPORT_ARGS[@]}"
