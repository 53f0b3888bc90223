#!/usr/bin/env bash
# The dual write's cost: a write-heavy load on a table that a migration
# mirrors to a reshaped copy, with the mirror done three ways side by side.
# `mirrored`: switchyard-proxy (release build) with the migration in phase
# dual_write, the control store and the migration's guard installed, so
# every write of the table through the proxy is also applied to the copy by
# row image in the client's own transaction. `triggers`: the same proxy
# with no migration (a plain relay) and row triggers on the table doing the
# same job, pt-online-schema-change style (each written row upserted into,
# or deleted from, the copy). `direct`: the server directly with no mirror,
# for reference; optionally `switchyard`: the proxy with no migration and
# no mirror.
#
# PostgreSQL: pgbench's built-in TPC-B-like script (-b tpcb-like) in the
# simple and prepared query modes; pgbench_accounts mirrored to
# pgbench_accounts_v2 (abalance renamed balance, same key aid). MariaDB:
# sysbench oltp_write_only on one table with --db-ps-mode auto and
# disable; sbtest1 mirrored to sbtest1_v2 (c renamed c_text, same key id).
#
# Before every run the copy is made equal to the table again (truncated
# and copied; on PostgreSQL then a CHECKPOINT, so no run pays for the
# copy's writes) and only the running target's mirror is installed: the
# guard for `mirrored` (DDL printed by proxy/examples/store_ddl.rs from
# core::store, never copied here), the triggers for `triggers`. After every
# mirrored and triggers run, plain SQL compares the two tables both ways and
# the script fails loudly when they differ or when the repair queue holds a
# key: the speed of a mirror that loses writes is not worth reporting.
# Targets are interleaved within every round (their order rotates); beside
# every figure, the relay's own CPU per transaction. One section per engine
# is appended to benches/RESULTS.md: medians over rounds with the spread,
# each target's ratio to direct and to triggers (the headline: mirrored
# over triggers, target ≥ 0.95).
#
# Usage: benches/dualwrite.sh
#        BENCH_ENGINES=postgres BENCH_ROUNDS=1 BENCH_SECONDS=3 BENCH_NO_RECORD=1 benches/dualwrite.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_SECONDS [10]  BENCH_CLIENTS [8] (pgbench clients, sysbench threads)
#   BENCH_ENGINES ["postgres mysql"]
#   BENCH_TARGETS ["direct triggers mirrored"]; also `switchyard`
#   BENCH_MODES ["simple prepared"]   pgbench query modes
#   BENCH_PS_MODES ["auto disable"]   sysbench --db-ps-mode
#   BENCH_SCALE [10]  pgbench scale   BENCH_TABLE_SIZE [10000]  rows of sbtest1
#   PROXY_BIN      use this proxy binary instead of building the release one
#   STORE_DDL_BIN  use this store_ddl example binary instead of building it
#   BENCH_NO_RECORD=1  print the tables without appending them to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded sections (e.g. what else ran)
# Lists from the environment split on spaces on purpose (SC2206, SC2046).
# shellcheck disable=SC2206,SC2046
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=bench-dualwrite

ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-8}
ENGINES=(${BENCH_ENGINES:-postgres mysql})
TARGETS=(${BENCH_TARGETS:-direct triggers mirrored})
MODES=(${BENCH_MODES:-simple prepared})
PS_MODES=(${BENCH_PS_MODES:-auto disable})
SCALE=${BENCH_SCALE:-10}
TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
DB=sy_bench_dualwrite
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_SECONDS "$SECONDS_PER_RUN"
check_positive_int BENCH_CLIENTS "$CLIENTS"
check_positive_int BENCH_SCALE "$SCALE"
check_positive_int BENCH_TABLE_SIZE "$TABLE_SIZE"
for e in "${ENGINES[@]}"; do
    case "$e" in postgres | mysql) ;; *) die "unknown engine \`$e\` (postgres, mysql)" ;; esac
done
for t in "${TARGETS[@]}"; do
    case "$t" in direct | switchyard | triggers | mirrored) ;; *) die "unknown target \`$t\` (direct, switchyard, triggers, mirrored)" ;; esac
done
for m in "${MODES[@]}"; do
    case "$m" in simple | extended | prepared) ;; *) die "unknown pgbench mode \`$m\` (simple, extended, prepared)" ;; esac
done
has_target direct || warn "no \`direct\` target: ratios to direct will read n/a"
has_target triggers || warn "no \`triggers\` target: ratios to triggers will read n/a"

# The migrations of the `mirrored` target, and the triggers' names.
PG_MIGRATION=bench_accounts_v2
MY_MIGRATION=bench_sbtest1_v2
TRIGGER=bench_mirror

engine_on() { [[ " ${ENGINES[*]} " == *" $1 "* ]]; }
engine_on postgres && bash "$REPO_ROOT/scripts/ensure-databases.sh" postgres
engine_on mysql && bash "$REPO_ROOT/scripts/ensure-databases.sh" mysql
engine_on mysql && bash "$REPO_ROOT/scripts/ensure-tools.sh" sysbench
PROXY=""
if has_target switchyard || has_target triggers || has_target mirrored; then
    PROXY=$(build_proxy_release)
fi
STORE_DDL=""
if has_target mirrored; then
    if [ -n "${STORE_DDL_BIN:-}" ]; then
        [ -x "$STORE_DDL_BIN" ] || die "STORE_DDL_BIN=$STORE_DDL_BIN is not executable"
        STORE_DDL=$STORE_DDL_BIN
    else
        log "building the store_ddl example (release)"
        (cd "$REPO_ROOT" && cargo build --release -p switchyard-proxy --example store_ddl >&2) ||
            die "cargo build --release --example store_ddl failed"
        STORE_DDL="$(cargo_target_dir)/release/examples/store_ddl"
    fi
fi

WORK=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
# Each relay's process (for CPU readings and cleanup) and port, by target name.
declare -A PID_OF=() PORT_OF=()
ENGINE="" # the engine whose runs are under way, for cleanup
cleanup() {
    local rc=$?
    for t in "${!PID_OF[@]}"; do
        stop_pid "${PID_OF[$t]}" "$t" 10 || true
    done
    # Never leave a mirror behind on the benchmark's table: later runs of
    # any target would pay for it.
    case "$ENGINE" in
    postgres) pg_mirror_off triggers && pg_mirror_off mirrored ;;
    mysql) my_mirror_off triggers && my_mirror_off mirrored ;;
    esac >/dev/null 2>&1 || true
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(free_ports 12)
next_port=0
take_port() {
    PORT_OF[$1]=${PORTS[$next_port]}
    next_port=$((next_port + 1))
}

# start_proxy ENGINE TARGET [MIGRATION_ID MIGRATION_YAML]: a
# switchyard-proxy for one target, its listener ENGINE's protocol, the
# backend over TCP; with a migration, wait until its catalog is ready.
start_proxy() {
    local engine=$1 target=$2 id=${3:-} migration=${4:-} dir="$WORK/$1-$2" fields
    mkdir -p "$dir"
    take_port "$target"
    take_port "$target/admin"
    fields="host: 127.0.0.1, port: 5432"
    [ "$engine" = mysql ] && fields="host: 127.0.0.1, port: 3306"
    switchyard_config "$dir/switchyard.yaml" "$engine" "${PORT_OF[$target]}" "${PORT_OF[$target/admin]}" "$fields"
    [ -z "$migration" ] || printf '%s\n' "$migration" >>"$dir/switchyard.yaml"
    start_switchyard "$PROXY" "$dir/switchyard.yaml" "${PORT_OF[$target/admin]}"
    PID_OF[$target]=$PROXY_PID
    if [ -n "$migration" ]; then
        wait_catalog_ready "${PORT_OF[$target/admin]}" "$id" 30
    fi
    log "$target: switchyard-proxy ($engine) up on 127.0.0.1:${PORT_OF[$target]}${id:+, migration $id in dual_write}"
}

# restart_proxy ENGINE TARGET ID: the same proxy again, same config and
# ports, its catalog loaded now. The MySQL mirror refuses writes unless its
# catalog found the guard, and the guard is on only for mirrored runs.
restart_proxy() {
    local engine=$1 target=$2 id=$3
    stop_pid "${PID_OF[$target]}" "$target" 10 || true
    start_switchyard "$PROXY" "$WORK/$engine-$target/switchyard.yaml" "${PORT_OF[$target/admin]}"
    PID_OF[$target]=$PROXY_PID
    wait_catalog_ready "${PORT_OF[$target/admin]}" "$id" 30
}

# stop_proxies: stop the current engine's proxies before the next engine's.
stop_proxies() {
    for t in "${!PID_OF[@]}"; do
        stop_pid "${PID_OF[$t]}" "$t" 10 || true
    done
    PID_OF=()
}

# load_failed ENGINE TARGET WHAT EXIT_STATUS OUT: show why a load run
# failed (its output, the proxy's distinct log messages), then fail.
load_failed() {
    local engine=$1 target=$2 what=$3 rc=$4 out=$5 why
    why="failed (exit status $rc)"
    [ "$rc" -ne 124 ] || why="did not finish within $((SECONDS_PER_RUN + 60)) s: its clients hung"
    tail -n 30 "$out" >&2
    [ "$target" = direct ] || proxy_log_summary "$WORK/$engine-$target/proxy.log"
    die "$what against $target $why"
}

# ---- PostgreSQL: pgbench tpcb-like, pgbench_accounts → pgbench_accounts_v2

# Quiet: the store's DDL is idempotent and tells of every object it skips.
pg() { PGOPTIONS="-c client_min_messages=warning" pg_direct -d "$DB" "$@"; }

pg_setup() {
    local have
    have=$(pg -Atc 'select count(*) from pgbench_branches' 2>/dev/null || echo none)
    if [ "$have" != "$SCALE" ]; then
        log "initialising $DB with pgbench -i -s $SCALE"
        pg_direct -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
        pgbench -i -s "$SCALE" -q -h 127.0.0.1 -p 5432 -U postgres "$DB" >"$WORK/pg-init.log" 2>&1 ||
            { cat "$WORK/pg-init.log" >&2; die "pgbench -i failed"; }
    else
        log "$DB already holds scale $SCALE"
    fi
    pg_mirror_off triggers
    pg -c "DROP TABLE IF EXISTS pgbench_accounts_v2" \
        -c "CREATE TABLE pgbench_accounts_v2 (LIKE pgbench_accounts INCLUDING ALL)" \
        -c "ALTER TABLE pgbench_accounts_v2 RENAME COLUMN abalance TO balance" >/dev/null
    if has_target mirrored; then
        "$STORE_DDL" postgres install "$PG_MIGRATION" public public pgbench_accounts aid >"$WORK/pg-guard-install.sql"
        "$STORE_DDL" postgres drop "$PG_MIGRATION" public public pgbench_accounts aid >"$WORK/pg-guard-drop.sql"
        # The store's tables stay; the guard is on only for mirrored runs.
        pg -f "$WORK/pg-guard-install.sql" -f "$WORK/pg-guard-drop.sql" >/dev/null
        start_proxy postgres mirrored "$PG_MIGRATION" "migrations:
  - id: $PG_MIGRATION
    backend: pg
    source: { database: $DB, schema: public, table: pgbench_accounts, primary_key: [aid] }
    target: { table: pgbench_accounts_v2 }
    columns: { abalance: balance }
    phase: dual_write"
    fi
    for t in switchyard triggers; do
        ! has_target "$t" || start_proxy postgres "$t"
    done
    pg -c 'VACUUM ANALYZE' >/dev/null
}

# pg_reset: every run starts from equal tables, with no checkpoint due.
pg_reset() {
    pg -c "TRUNCATE pgbench_history, pgbench_accounts_v2$(has_target mirrored && echo ", switchyard_repair_queue")" \
        -c "INSERT INTO pgbench_accounts_v2 (aid, bid, balance, filler) SELECT aid, bid, abalance, filler FROM pgbench_accounts" \
        -c "VACUUM pgbench_branches, pgbench_tellers" \
        -c "ANALYZE pgbench_accounts_v2" \
        -c "CHECKPOINT" >/dev/null
}

# pg_mirror_on TARGET / pg_mirror_off TARGET: install or remove that
# target's mirror (none for direct and switchyard).
pg_mirror_on() {
    case "$1" in
    mirrored) pg -f "$WORK/pg-guard-install.sql" >/dev/null ;;
    triggers)
        pg >/dev/null <<SQL
BEGIN;
CREATE FUNCTION $TRIGGER() RETURNS trigger LANGUAGE plpgsql AS \$mirror\$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND NEW.aid IS DISTINCT FROM OLD.aid) THEN
        DELETE FROM pgbench_accounts_v2 WHERE aid = OLD.aid;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    INSERT INTO pgbench_accounts_v2 (aid, bid, balance, filler)
        VALUES (NEW.aid, NEW.bid, NEW.abalance, NEW.filler)
        ON CONFLICT (aid) DO UPDATE
        SET bid = EXCLUDED.bid, balance = EXCLUDED.balance, filler = EXCLUDED.filler;
    RETURN NEW;
END
\$mirror\$;
CREATE TRIGGER $TRIGGER AFTER INSERT OR UPDATE OR DELETE ON pgbench_accounts
    FOR EACH ROW EXECUTE FUNCTION $TRIGGER();
COMMIT;
SQL
        ;;
    esac
}
pg_mirror_off() {
    case "$1" in
    mirrored) pg -f "$WORK/pg-guard-drop.sql" >/dev/null ;;
    triggers) pg -c "DROP TRIGGER IF EXISTS $TRIGGER ON pgbench_accounts" -c "DROP FUNCTION IF EXISTS $TRIGGER()" >/dev/null ;;
    esac
}

# pg_check TARGET: the two tables hold the same rows (EXCEPT both ways)
# and nothing waits in the repair queue; else fail, showing what differs.
pg_check() {
    local diff='(SELECT aid, bid, abalance, filler FROM pgbench_accounts
            EXCEPT SELECT aid, bid, balance, filler FROM pgbench_accounts_v2)
        UNION ALL
        (SELECT aid, bid, balance, filler FROM pgbench_accounts_v2
            EXCEPT SELECT aid, bid, abalance, filler FROM pgbench_accounts)' differ queued=0
    differ=$(pg -Atc "SELECT count(*) FROM ($diff) d")
    has_target mirrored && queued=$(pg -Atc "SELECT count(*) FROM switchyard_repair_queue")
    [ "$differ" = 0 ] && [ "$queued" = 0 ] && return 0
    pg -c "SELECT * FROM ($diff) d ORDER BY aid LIMIT 10" -c "SELECT * FROM switchyard_repair_queue LIMIT 10" >&2 || true
    proxy_log_summary "$WORK/postgres-$1/proxy.log"
    die "$1: pgbench_accounts and pgbench_accounts_v2 differ after the run: $differ rows (EXCEPT both ways), $queued keys in the repair queue"
}

# pg_load TARGET MODE OUT: one pgbench run; prints "tps tx latency_ms".
pg_load() {
    local target=$1 mode=$2 out=$3 conn figures
    conn=(-h 127.0.0.1 -p 5432 -U postgres)
    [ "$target" = direct ] || conn=(-h 127.0.0.1 -p "${PORT_OF[$target]}" -U app)
    PGPASSWORD=app timeout $((SECONDS_PER_RUN + 60)) pgbench -n -b tpcb-like -M "$mode" -c "$CLIENTS" \
        -j $((CLIENTS < 2 ? CLIENTS : 2)) -T "$SECONDS_PER_RUN" "${conn[@]}" "$DB" >"$out" 2>&1 ||
        load_failed postgres "$target" "pgbench tpcb-like -M $mode" $? "$out"
    figures=$(pgbench_figures "$out")
    [ "${figures##* }" = 0 ] || { cat "$out" >&2; die "$target: ${figures##* } failed transactions"; }
    echo "${figures% *}"
}

pg_details() {
    echo "- PostgreSQL $(pg_direct -d postgres -Atc 'show server_version') on 127.0.0.1:5432; $(pgbench --version), -b tpcb-like -s $SCALE -c $CLIENTS -j $((CLIENTS < 2 ? CLIENTS : 2)) -n, database $DB; pgbench_accounts ($((SCALE * 100000)) rows) mirrored to pgbench_accounts_v2 (LIKE ... INCLUDING ALL, abalance renamed balance, key aid)"
    echo "- mirrored: switchyard-proxy (release build, SCRAM user app) with migration $PG_MIGRATION in phase dual_write (on_mirror_error repair), the control store and the guard installed (core::store::pg::install and install_guard, printed by proxy/examples/store_ddl.rs); every write of pgbench_accounts becomes one writable-CTE statement that also upserts the row image into the copy"
    echo "- triggers: the same proxy with no migration, and one plpgsql AFTER INSERT OR UPDATE OR DELETE row trigger that upserts the new row into the copy (INSERT ... ON CONFLICT (aid) DO UPDATE) or deletes the old one; direct: PostgreSQL as postgres, no mirror; clients reach the proxies over TCP, their backend leg is TCP to 127.0.0.1:5432"
    echo "- before every run: pgbench_history and pgbench_accounts_v2 truncated, the copy filled from pgbench_accounts, branches and tellers vacuumed, CHECKPOINT; only the running target's mirror installed (guard or triggers), dropped after the run; after each of the $CHECKS mirrored and triggers runs the tables agreed (EXCEPT both ways: 0 rows) and the repair queue was empty"
}

# ---- MariaDB: sysbench oltp_write_only, sbtest1 → sbtest1_v2

my() { my_direct -D "$DB" "$@"; }
SB_COMMON=(--db-driver=mysql --tables=1 --table-size="$TABLE_SIZE" --mysql-db="$DB")

my_setup() {
    local have
    have=$(my -Nse "select count(*) from sbtest1" 2>/dev/null || echo none)
    if [ "$have" != "$TABLE_SIZE" ]; then
        log "preparing $DB: sbtest1 × $TABLE_SIZE rows"
        my_direct -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
        sysbench oltp_write_only "${SB_COMMON[@]}" --mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root \
            --mysql-password= prepare >"$WORK/my-prepare.log" 2>&1 ||
            { tail -n 20 "$WORK/my-prepare.log" >&2; die "sysbench prepare failed"; }
    else
        log "$DB already holds sbtest1 × $TABLE_SIZE rows"
    fi
    my_mirror_off triggers
    my -e "DROP TABLE IF EXISTS sbtest1_v2; CREATE TABLE sbtest1_v2 LIKE sbtest1;
        ALTER TABLE sbtest1_v2 RENAME COLUMN c TO c_text"
    if has_target mirrored; then
        "$STORE_DDL" mysql install "$MY_MIGRATION" "$DB" "$DB" sbtest1 id >"$WORK/my-guard-install.sql"
        "$STORE_DDL" mysql drop "$MY_MIGRATION" "$DB" "$DB" sbtest1 id >"$WORK/my-guard-drop.sql"
        my <"$WORK/my-guard-install.sql"
        my <"$WORK/my-guard-drop.sql"
        start_proxy mysql mirrored "$MY_MIGRATION" "migrations:
  - id: $MY_MIGRATION
    backend: my
    source: { database: $DB, table: sbtest1, primary_key: [id] }
    target: { table: sbtest1_v2 }
    columns: { c: c_text }
    phase: dual_write"
    fi
    for t in switchyard triggers; do
        ! has_target "$t" || start_proxy mysql "$t"
    done
}

my_reset() {
    my -e "TRUNCATE sbtest1_v2; INSERT INTO sbtest1_v2 (id, k, c_text, pad) SELECT id, k, c, pad FROM sbtest1;
        $(has_target mirrored && echo "TRUNCATE switchyard_repair_queue;") ANALYZE TABLE sbtest1, sbtest1_v2" >/dev/null
}

# my_mirror_on TARGET / my_mirror_off TARGET: as pg_mirror_on/off. The
# triggers are pt-online-schema-change's: REPLACE the new row, DELETE
# IGNORE the old key.
my_mirror_on() {
    case "$1" in
    mirrored)
        my <"$WORK/my-guard-install.sql"
        restart_proxy mysql mirrored "$MY_MIGRATION"
        ;;
    triggers)
        my <<SQL
DELIMITER //
CREATE TRIGGER ${TRIGGER}_insert AFTER INSERT ON sbtest1 FOR EACH ROW
    REPLACE INTO sbtest1_v2 (id, k, c_text, pad) VALUES (NEW.id, NEW.k, NEW.c, NEW.pad)//
CREATE TRIGGER ${TRIGGER}_update AFTER UPDATE ON sbtest1 FOR EACH ROW
BEGIN
    DELETE IGNORE FROM sbtest1_v2 WHERE !(OLD.id <=> NEW.id) AND sbtest1_v2.id <=> OLD.id;
    REPLACE INTO sbtest1_v2 (id, k, c_text, pad) VALUES (NEW.id, NEW.k, NEW.c, NEW.pad);
END//
CREATE TRIGGER ${TRIGGER}_delete AFTER DELETE ON sbtest1 FOR EACH ROW
    DELETE IGNORE FROM sbtest1_v2 WHERE sbtest1_v2.id <=> OLD.id//
DELIMITER ;
SQL
        ;;
    esac
}
my_mirror_off() {
    case "$1" in
    mirrored) my <"$WORK/my-guard-drop.sql" ;;
    triggers) my -e "DROP TRIGGER IF EXISTS ${TRIGGER}_insert; DROP TRIGGER IF EXISTS ${TRIGGER}_update; DROP TRIGGER IF EXISTS ${TRIGGER}_delete" ;;
    esac
}

# my_check TARGET: as pg_check, with a NULL-safe join both ways (strings
# compared as bytes).
my_check() {
    local on='s.id <=> t.id AND s.k <=> t.k AND BINARY s.c <=> BINARY t.c_text AND BINARY s.pad <=> BINARY t.pad'
    local differ queued=0
    differ=$(my -Nse "SELECT (SELECT count(*) FROM sbtest1 s LEFT JOIN sbtest1_v2 t ON $on WHERE t.id IS NULL)
        + (SELECT count(*) FROM sbtest1_v2 t LEFT JOIN sbtest1 s ON $on WHERE s.id IS NULL)")
    has_target mirrored && queued=$(my -Nse "SELECT count(*) FROM switchyard_repair_queue")
    [ "$differ" = 0 ] && [ "$queued" = 0 ] && return 0
    my -e "SELECT s.*, t.* FROM sbtest1 s LEFT JOIN sbtest1_v2 t ON $on WHERE t.id IS NULL LIMIT 10;
        SELECT t.*, s.* FROM sbtest1_v2 t LEFT JOIN sbtest1 s ON $on WHERE s.id IS NULL LIMIT 10;
        SELECT * FROM switchyard_repair_queue LIMIT 10" >&2 || true
    proxy_log_summary "$WORK/mysql-$1/proxy.log"
    die "$1: sbtest1 and sbtest1_v2 differ after the run: $differ rows (NULL-safe join both ways), $queued keys in the repair queue"
}

# my_load TARGET PS_MODE OUT: one sysbench run; prints "tps tx latency_ms".
my_load() {
    local target=$1 ps=$2 out=$3 conn figures
    conn=(--mysql-host=127.0.0.1 --mysql-port=3306 --mysql-user=root --mysql-password=)
    [ "$target" = direct ] || conn=(--mysql-host=127.0.0.1 --mysql-port="${PORT_OF[$target]}" --mysql-user=app --mysql-password=app)
    timeout $((SECONDS_PER_RUN + 60)) sysbench oltp_write_only "${SB_COMMON[@]}" "${conn[@]}" \
        --threads="$CLIENTS" --time="$SECONDS_PER_RUN" --events=0 --db-ps-mode="$ps" run >"$out" 2>&1 ||
        load_failed mysql "$target" "sysbench oltp_write_only --db-ps-mode=$ps" $? "$out"
    figures=$(sysbench_figures "$out")
    echo "${figures% *}"
}

my_details() {
    echo "- MariaDB $(my_direct -Nse 'select version()') on 127.0.0.1:3306; sysbench $(sysbench --version | awk '{ print $2 }') oltp_write_only, 1 table × $TABLE_SIZE rows, $CLIENTS threads, database $DB; sbtest1 mirrored to sbtest1_v2 (CREATE TABLE ... LIKE, c renamed c_text, key id)"
    echo "- mirrored: switchyard-proxy (release build, user app) with migration $MY_MIGRATION in phase dual_write (on_mirror_error repair), the control store and the guard installed (core::store::mysql::install and install_guard, printed by proxy/examples/store_ddl.rs), the proxy restarted after the guard is put on for each mirrored run (its catalog must find the guard, or it refuses the writes); the client's write runs as it came, the guard collects its keys, and the proxy then syncs them (DELETE + INSERT ... ON DUPLICATE KEY UPDATE)"
    echo "- triggers: the same proxy with no migration, and pt-online-schema-change's three AFTER row triggers (REPLACE INTO the copy, DELETE IGNORE the old key); direct: MariaDB as root, no mirror; clients reach the proxies over TCP, their backend leg is TCP to 127.0.0.1:3306"
    echo "- before every run: sbtest1_v2 truncated and filled from sbtest1; only the running target's mirror installed (guard or triggers), dropped after the run; after each of the $CHECKS mirrored and triggers runs the tables agreed (NULL-safe join both ways, strings as bytes) and the repair queue was empty; sysbench's ignored errors (deadlocks it retried and the like) over all runs: $(ignored_errors)"
}

# ignored_errors: "target N, ..." from the sysbench outputs in WORK.
declare -A IGNORED=()
ignored_errors() {
    local t
    for t in "${TARGETS[@]}"; do
        printf '%s %s\n' "$t" "${IGNORED[$t]:-0}"
    done | paste -sd, - | sed 's/,/, /g'
}

# ---- the runs: per engine, every round runs every mode on every target,
# in an order that rotates from round to round.
CHECKS=0
run_engine() {
    local engine=$1 e modes title tool round mode k target n=0 total out cpu_before cpu_after figures tps tx lat cpu
    ENGINE=$engine
    e=pg
    modes=("${MODES[@]}")
    title="pgbench tpcb-like"
    tool=pgbench
    if [ "$engine" = mysql ]; then
        e=my
        modes=("${PS_MODES[@]}")
        title="sysbench oltp_write_only"
        tool=sysbench
    fi
    "${e}_setup"
    RUNS="$WORK/$engine-runs.tsv"
    : >"$RUNS"
    CHECKS=0
    total=$((ROUNDS * ${#modes[@]} * ${#TARGETS[@]}))
    log "$engine: $total runs of ${SECONDS_PER_RUN}s"
    for ((round = 0; round < ROUNDS; round++)); do
        for mode in "${modes[@]}"; do
            for ((k = 0; k < ${#TARGETS[@]}; k++)); do
                target=${TARGETS[$(((k + round) % ${#TARGETS[@]}))]}
                n=$((n + 1))
                out="$WORK/$engine-run-$n.log"
                "${e}_reset"
                "${e}_mirror_on" "$target"
                cpu_before=$(cpu_ticks "${PID_OF[$target]:-}")
                figures=$("${e}_load" "$target" "$mode" "$out")
                cpu_after=$(cpu_ticks "${PID_OF[$target]:-}")
                "${e}_mirror_off" "$target"
                read -r tps tx lat <<<"$figures"
                if [ "$target" = mirrored ] || [ "$target" = triggers ]; then
                    "${e}_check" "$target"
                    CHECKS=$((CHECKS + 1))
                fi
                if [ "$tool" = sysbench ]; then
                    IGNORED[$target]=$((${IGNORED[$target]:-0} + $(sysbench_figures "$out" | awk '{ print $4 }')))
                fi
                cpu=$(cpu_per_tx "$cpu_before" "$cpu_after" "$tx")
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$mode" "$CLIENTS" "$tps" "$lat" "$cpu" >>"$RUNS"
                printf '[%s %d/%d] round %d %-10s %-8s tps %9.1f  latency %7.3f ms  cpu/tx %s\n' \
                    "$engine" "$n" "$total" "$((round + 1))" "$target" "$mode" "$tps" "$lat" "${cpu//$'\t'/ }" >&2
            done
        done
    done
    stop_proxies
    details="$WORK/$engine-details.md"
    {
        "${e}_details"
        echo "- relay CPU/tx: the relay process's user and system CPU over the run (/proc/PID/stat) divided by its transactions; \`relay CPU/tx vs triggers\`: the proxy's extra CPU for mirroring"
        echo "- $ROUNDS rounds × ${SECONDS_PER_RUN} s per run, targets ${TARGETS[*]} interleaved (order rotating), medians over rounds; mode = $([ "$tool" = pgbench ] && echo "pgbench -M" || echo "sysbench --db-ps-mode")"
    } >"$details"
    append_results "Dual write, $title: mirrored vs triggers" "$details" "$RUNS" --against triggers
    ENGINE=""
}

for engine in "${ENGINES[@]}"; do
    run_engine "$engine"
done
