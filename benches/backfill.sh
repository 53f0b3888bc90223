#!/usr/bin/env bash
# Backfill throughput on PostgreSQL and MariaDB, in one of two modes; the
# medians over rounds are appended to benches/RESULTS.md (unless
# BENCH_NO_RECORD=1).
#
# MODE=idle (the default): `switchyard backfill` against one plain
# `INSERT ... SELECT` (the floor no chunked, locking copy can beat) on both
# engines, and against pt-online-schema-change's copy (a no-op
# `ENGINE=InnoDB` alter) on MariaDB, with nothing else running. Runs are
# interleaved, the order rotating each round.
#
# MODE=load: the backfill under a concurrent write load through a
# switchyard-proxy (release build) that mirrors the table (the migration in
# dual_write; `switchyard init` installs the control store and, the
# migration mirroring, its guard). Each round: the backfill alone (its idle
# rate, same table and proxy), the load alone for LOAD_SECONDS (baseline
# tps), then the load again with the backfill started WARMUP seconds in; the
# load stops when the backfill ends. The drop compares the load's
# per-second tps inside the backfill's window with the baseline's after
# WARMUP. The issue's targets, reported and never asserted: drop ≤ 20%
# while the backfill keeps ≥ half its idle rate. The load is one
# transaction by pgbench (PostgreSQL) or sysbench (MariaDB, a Lua script):
# UPDATE a random existing row, upsert a random key above ROWS. During both
# load runs the database's sessions are sampled twice a second
# (pg_stat_activity; MariaDB's processlist joined to INNODB_TRX, and
# Threads_running) to say where the load and the backfill spend their time.
#
# In both modes the target is emptied and the checkpoint dropped before
# every backfill, and after it plain SQL compares the tables both ways (in
# MODE=load the repair queue must be empty too); the script fails loudly
# otherwise.
#
# Usage: benches/backfill.sh
#        MODE=load ROWS=100000 ROUNDS=1 ENGINES=pg BENCH_NO_RECORD=1 benches/backfill.sh
# Environment (defaults in brackets):
#   MODE [idle]  ROWS [1000000]  ROUNDS [3]  ENGINES ["pg my"]
#   SWITCHYARD_BIN  the controller binary, else a release build
#   MODE=load only: CLIENTS [4] (pgbench clients, sysbench threads)
#     LOAD_SECONDS [15] the baseline run   WARMUP [3] load before the backfill
#     BACKFILL_ARGS  extra `switchyard backfill` options (e.g. --chunk-time-ms 100)
#     PROXY_BIN  the proxy binary, else a release build
#   BENCH_NO_RECORD=1  print the table without appending it to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded section
# Needs: PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306
# (scripts/ensure-databases.sh); MODE=idle pt-online-schema-change
# (scripts/ensure-tools.sh percona); MODE=load pgbench and sysbench
# (scripts/ensure-tools.sh sysbench).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MODE=${MODE:-idle}
ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
ENGINES=${ENGINES:-pg my}
CLIENTS=${CLIENTS:-4}
LOAD_SECONDS=${LOAD_SECONDS:-15}
WARMUP=${WARMUP:-3}
BACKFILL_ARGS=${BACKFILL_ARGS:-}
DB=sy_bench_backfill
check_positive_int ROWS "$ROWS"
check_positive_int ROUNDS "$ROUNDS"
check_positive_int CLIENTS "$CLIENTS"
check_positive_int LOAD_SECONDS "$LOAD_SECONDS"
check_positive_int WARMUP "$WARMUP"
for engine in $ENGINES; do
    case $engine in pg | my) ;; *) die "unknown engine \`$engine\` (pg, my)" ;; esac
done
case $MODE in
idle)
    [[ " $ENGINES " != *" my "* ]] || have pt-online-schema-change ||
        die "pt-online-schema-change is missing (MODE=idle compares with it on MariaDB): run scripts/ensure-tools.sh percona, or ENGINES=pg"
    ;;
load)
    have pgbench || die "pgbench is missing (it comes with PostgreSQL's client packages)"
    have sysbench || die "sysbench is missing: run scripts/ensure-tools.sh sysbench"
    ;;
*) die "MODE must be \`idle\` or \`load\`, got \`$MODE\`" ;;
esac

if [ -n "${SWITCHYARD_BIN:-}" ]; then
    BIN=$SWITCHYARD_BIN
else
    (cd "$REPO_ROOT" && nice -n 10 cargo build --release -q -p switchyard-controller --bin switchyard)
    BIN="$(cargo_target_dir)/release/switchyard"
fi
[ -x "$BIN" ] || die "$BIN is not executable"
PROXY=""
[ "$MODE" = idle ] || PROXY=$(build_proxy_release)

WORK=$(mktemp -d /tmp/switchyard-bench-backfill.XXXXXX)
# What MODE=load leaves running, stopped on any exit.
PROXY_PID="" LOAD_PID="" SAMPLER_PID=""
cleanup() {
    local rc=$?
    stop_pid "$SAMPLER_PID" sampler 5 || true
    stop_pid "$LOAD_PID" load 5 || true
    stop_pid "$PROXY_PID" switchyard-proxy 10 || true
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RUNS="$WORK/runs.tsv"
: >"$RUNS"
read -r PORT ADMIN_PORT < <(free_ports 2 | paste -sd' ')

psql_() { PGOPTIONS="-c client_min_messages=warning" pg_direct -d "$DB" -At "$@"; }
my_() { my_direct --batch --skip-column-names "$DB" "$@"; }
now() { date +%s.%N; }

# config ENGINE: the file `switchyard` and the proxy share: a listener on
# PORT, the admin API on ADMIN_PORT, and migration items_v2 in dual_write.
config() {
    local dir="$WORK/$1" source
    mkdir -p "$dir"
    case $1 in
    pg)
        switchyard_config "$dir/switchyard.yaml" postgres "$PORT" "$ADMIN_PORT" "host: 127.0.0.1, port: 5432"
        source="{ database: $DB, schema: public, table: items, primary_key: [id] }"
        ;;
    my)
        switchyard_config "$dir/switchyard.yaml" mysql "$PORT" "$ADMIN_PORT" "host: 127.0.0.1, port: 3306"
        source="{ database: $DB, table: items, primary_key: [id] }"
        ;;
    esac
    cat >>"$dir/switchyard.yaml" <<YAML
migrations:
  - { id: items_v2, backend: $1, source: $source,
      target: { table: items_v2 }, columns: { name: title }, phase: dual_write }
YAML
}

setup_pg() {
    pg_direct -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    psql_ <<SQL
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text);
CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text, price numeric(12,2), note text);
INSERT INTO items SELECT g, 'name ' || g, g % 10000 * 1.5, md5(g::text) FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE items;
SQL
    config pg
}

setup_my() {
    my_direct -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    my_ <<SQL
CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, price DECIMAL(10,2), note TEXT) ENGINE=InnoDB;
CREATE TABLE items_v2 (id BIGINT PRIMARY KEY, title VARCHAR(64), price DECIMAL(12,2), note TEXT) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('name ', seq), seq % 10000 * 1.5, MD5(seq) FROM seq_1_to_$ROWS;
ANALYZE TABLE items;
SQL
    config my
}

# empty ENGINE: before every copy, the target empty and no checkpoint; the
# source back to its ROWS rows (the load adds keys above), and in MODE=load
# the repair queue empty (the guard queues the keys of that DELETE, a write
# that bypassed the proxy).
empty() {
    local queue=()
    case $1 in
    pg)
        [ "$MODE" = idle ] || queue=(-c "TRUNCATE switchyard_repair_queue")
        psql_ -c "DELETE FROM items WHERE id > $ROWS" -c "TRUNCATE items_v2" -c "DROP TABLE IF EXISTS switchyard_backfill" \
            "${queue[@]}" -c "VACUUM items" -c "CHECKPOINT"
        ;;
    my)
        [ "$MODE" = idle ] || queue=("TRUNCATE switchyard_repair_queue;")
        my_ -e "DELETE FROM items WHERE id > $ROWS; TRUNCATE items_v2; DROP TABLE IF EXISTS switchyard_backfill; ${queue[*]}"
        ;;
    esac
}

# check ENGINE WHAT: the copy is whole and equal, both ways (plain SQL),
# and in MODE=load nothing waits in the repair queue; else fail, showing
# what differs.
check() {
    local diff queued=0
    case $1 in
    pg)
        diff='(SELECT id, name, price, note FROM items EXCEPT SELECT id, title, price, note FROM items_v2)
            UNION ALL (SELECT id, title, price, note FROM items_v2 EXCEPT SELECT id, name, price, note FROM items)'
        [ "$MODE" = idle ] || queued=$(psql_ -c "SELECT count(*) FROM switchyard_repair_queue")
        [ "$(psql_ -c "SELECT count(*) FROM ($diff) d")" = 0 ] && [ "$queued" = 0 ] && return 0
        psql_ -c "SELECT * FROM ($diff) d ORDER BY id LIMIT 10" >&2
        ;;
    my)
        diff="SELECT 'source', s.id FROM items s LEFT JOIN items_v2 t ON $MY_SAME WHERE t.id IS NULL
            UNION ALL SELECT 'target', t.id FROM items_v2 t LEFT JOIN items s ON $MY_SAME WHERE s.id IS NULL"
        [ "$MODE" = idle ] || queued=$(my_ -e "SELECT count(*) FROM switchyard_repair_queue")
        [ "$(my_ -e "SELECT count(*) FROM ($diff) d")" = 0 ] && [ "$queued" = 0 ] && return 0
        my_ -e "$diff LIMIT 10" >&2
        ;;
    esac
    [ -z "$PROXY_PID" ] || proxy_log_summary "$WORK/$1/proxy.log"
    die "$1 $2: items and items_v2 differ after the copy (rows only on one side or different are shown above); $queued keys in the repair queue"
}
MY_SAME='s.id <=> t.id AND BINARY s.name <=> BINARY t.title AND s.price <=> t.price AND BINARY s.note <=> BINARY t.note'

# backfill ENGINE OUT: `switchyard backfill` (its JSON progress into OUT),
# timed; prints "seconds rows" (rows: the source rows it went over).
backfill() {
    local start end rows
    start=$(now)
    # BACKFILL_ARGS splits on spaces on purpose.
    # shellcheck disable=SC2086
    local rc=0
    timeout 900 "$BIN" --json -c "$WORK/$1/switchyard.yaml" backfill items_v2 $BACKFILL_ARGS >"$2" || rc=$?
    [ "$rc" -eq 0 ] || { tail -n 5 "$2" >&2; die "$1: switchyard backfill failed (exit status $rc)"; }
    end=$(now)
    rows=$(tail -n 1 "$2" | sed -n 's/.*"rows_copied":\([0-9]*\).*/\1/p')
    [ -n "$rows" ] || die "$1: no rows_copied in the backfill's last line: $(tail -n 1 "$2")"
    echo "$(echo "$end - $start" | bc) $rows"
}

# ---- MODE=idle: switchyard backfill vs INSERT ... SELECT vs pt-osc

# idle_run ENGINE METHOD ROUND: time one copy and append "engine method round seconds".
idle_run() {
    local engine=$1 method=$2 start end
    [ "$method" = pt-osc ] || empty "$engine"
    start=$(now)
    case $engine/$method in
    pg/insert-select) psql_ -c "INSERT INTO items_v2 SELECT id, name, price, note FROM items" ;;
    my/insert-select) my_ -e "INSERT INTO items_v2 SELECT id, name, price, note FROM items" ;;
    */switchyard) backfill "$engine" "$WORK/out.txt" >/dev/null ;;
    my/pt-osc) pt-online-schema-change --alter "ENGINE=InnoDB" --recursion-method=none --execute \
        h=127.0.0.1,u=root,D=$DB,t=items >"$WORK/out.txt" 2>&1 ;;
    esac
    end=$(now)
    [ "$method" = pt-osc ] || check "$engine" "$method"
    printf '%s\t%s\t%s\t%s\n' "$engine" "$method" "$3" "$(echo "$end - $start" | bc)" >>"$RUNS"
    log "$engine $method round $3: $(tail -n 1 "$RUNS" | cut -f4) s"
}

idle_mode() {
    local engine round n i methods table
    for engine in $ENGINES; do
        "setup_$engine"
        methods=(insert-select switchyard)
        [ "$engine" = my ] && methods+=(pt-osc)
        for round in $(seq 1 "$ROUNDS"); do
            n=${#methods[@]}
            for i in $(seq 0 $((n - 1))); do
                idle_run "$engine" "${methods[$(((i + round) % n))]}" "$round"
            done
        done
    done
    table=$(python3 - "$RUNS" "$ROWS" <<'PY'
import statistics, sys
rows = int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    engine, method, _, secs = line.split("\t")
    runs.setdefault((engine, method), []).append(float(secs))
print("| engine | copy | median s (lowest–highest) | rows/s | ratio to INSERT ... SELECT | ratio to pt-osc |")
print("|---|---|---:|---:|---:|---:|")
for (engine, method), secs in runs.items():
    med = statistics.median(secs)
    base = statistics.median(runs[(engine, "insert-select")])
    pt = runs.get((engine, "pt-osc"))
    vs_pt = f"{statistics.median(pt) / med:.2f}" if pt else "—"
    print(f"| {engine} | {method} | {med:.2f} ({min(secs):.2f}–{max(secs):.2f}) | {rows / med:,.0f} | {base / med:.2f} | {vs_pt} |")
PY
    )
    record_section "$(
        echo
        echo "## Backfill, idle: switchyard vs INSERT ... SELECT vs pt-online-schema-change — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        machine_lines
        echo "- $ROWS rows (bigint key, a renamed text column, a decimal, a 32-character text), target empty before every run; $ROUNDS rounds interleaved (order rotating), medians over rounds"
        echo "- switchyard: \`switchyard backfill\` with its defaults (chunks adapted to \`--chunk-time-ms\`, 100 ms by default, 500 ms in the runs recorded before that default, share-locked INSERT ... SELECT skipping keys the target has, a checkpoint committed with each chunk)${BACKFILL_ARGS:+ and $BACKFILL_ARGS}, binary $(basename "$BIN") from ${BIN%/*}"
        echo "- pt-osc: pt-online-schema-change --alter ENGINE=InnoDB (its defaults: 0.5 s chunks, INSERT LOW_PRIORITY IGNORE ... LOCK IN SHARE MODE), timed whole (new table, triggers, copy, swap)"
        echo "- ratios: the named copy's median time over the row's (the row's speed relative to it; above 1: the row is faster)"
        if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
        echo
        echo "$table"
    )"
}

# ---- MODE=load: the backfill under a write load through the proxy

# write_load_scripts: the load's transaction, once per tool. The UPDATE
# keys are the backfill's (1..ROWS); the upserted keys (ROWS, 2 ROWS]
# are new rows the backfill meets at its end (already mirrored, so its copy
# skips them). Every transaction locks one key of each range in that order,
# so on PostgreSQL the load never deadlocks with itself; on MariaDB two
# upserts into one gap can (next-key locks), and sysbench retries them
# (the table's load errors).
write_load_scripts() {
    cat >"$WORK/load.pgbench" <<'SQL'
\set id random(1, :rows)
\set nid random(:rows + 1, 2 * :rows)
BEGIN;
UPDATE items SET price = price + 1, note = md5(random()::text) WHERE id = :id;
INSERT INTO items (id, name, price, note) VALUES (:nid, 'name ' || :nid, 1, 'new')
    ON CONFLICT (id) DO UPDATE SET price = items.price + 1;
END;
SQL
    cat >"$WORK/load.lua" <<'LUA'
-- sysbench: the same transaction as load.pgbench; BENCH_ROWS from the environment.
local rows = tonumber(os.getenv("BENCH_ROWS"))
function thread_init()
    con = sysbench.sql.driver():connect()
end
function thread_done()
    con:disconnect()
end
function event()
    local id = sysbench.rand.uniform(1, rows)
    local nid = sysbench.rand.uniform(rows + 1, 2 * rows)
    con:query("BEGIN")
    con:query("UPDATE items SET price = price + 1, note = MD5(RAND()) WHERE id = " .. id)
    con:query(string.format("INSERT INTO items (id, name, price, note) VALUES (%d, 'name %d', 1, 'new')"
        .. " ON DUPLICATE KEY UPDATE price = price + 1", nid, nid))
    con:query("COMMIT")
end
LUA
}

# start_proxy ENGINE: `switchyard init` (store, checkpoint table, and the
# guard: the migration mirrors), then the proxy, its catalog ready. Sets
# PROXY_PID.
start_proxy() {
    "$BIN" -c "$WORK/$1/switchyard.yaml" init >"$WORK/$1/init.txt" ||
        die "$1: switchyard init failed: $(cat "$WORK/$1/init.txt")"
    start_switchyard "$PROXY" "$WORK/$1/switchyard.yaml" "$ADMIN_PORT"
    wait_catalog_ready "$ADMIN_PORT" items_v2 30
    log "$1: $(cat "$WORK/$1/init.txt"); switchyard-proxy up on 127.0.0.1:$PORT, items_v2 in dual_write"
}

# start_load ENGINE SECONDS OUT: the load through the proxy in the
# background, its tps reported every second into OUT. Sets LOAD_PID and
# LOAD_START. stdbuf: sysbench's reports must reach OUT even when it is
# stopped before its end.
start_load() {
    local engine=$1 secs=$2 out=$3
    LOAD_START=$(now)
    if [ "$engine" = pg ]; then
        PGPASSWORD=app pgbench -n -f "$WORK/load.pgbench" -D rows="$ROWS" -c "$CLIENTS" -j $((CLIENTS < 2 ? CLIENTS : 2)) \
            -T "$secs" -P 1 -h 127.0.0.1 -p "$PORT" -U app "$DB" >"$out" 2>&1 &
    else
        BENCH_ROWS=$ROWS stdbuf -oL sysbench "$WORK/load.lua" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$PORT" \
            --mysql-user=app --mysql-password=app --mysql-db="$DB" --threads="$CLIENTS" --time="$secs" --events=0 \
            --report-interval=1 run >"$out" 2>&1 &
    fi
    LOAD_PID=$!
}

# end_load ENGINE OUT [stop]: wait for the load to end (or stop it first),
# and fail when a client of it failed.
end_load() {
    local rc=0
    if [ "${3:-}" = stop ]; then
        kill -TERM "$LOAD_PID" 2>/dev/null || true
        wait "$LOAD_PID" 2>/dev/null || true
    else
        wait "$LOAD_PID" || rc=$?
    fi
    LOAD_PID=""
    if [ "$rc" -ne 0 ] || grep -Eq 'aborted|FATAL|ERROR' "$2"; then
        grep -E 'aborted|FATAL|ERROR' "$2" | head -n 5 >&2
        proxy_log_summary "$WORK/$1/proxy.log"
        die "$1: the load failed (exit status $rc; output $2)"
    fi
}

# load_series ENGINE OUT: the load's per-second reports as "second tps errors".
load_series() {
    case $1 in
    pg) sed -n 's/^progress: \([0-9.]*\) s, \([0-9.]*\) tps.*, \([0-9]*\) failed$/\1 \2 \3/p' "$2" ;;
    my) sed -n 's/^\[ *\([0-9]*\)s \] thds: [0-9]* tps: \([0-9.]*\) .* err\/s: \([0-9.]*\) .*/\1 \2 \3/p' "$2" ;;
    esac
}

# mean_tps ENGINE OUT FROM TO: the load's mean tps over [FROM, TO] (seconds
# since it started), each reported second weighted by how much of it lies
# inside, and the errors (failed or retried transactions) there, as "tps
# errors". Fails when less than one second of reports covers the window.
mean_tps() {
    load_series "$1" "$2" | awk -v a="$3" -v b="$4" '
        {
            lo = $1 - 1 > a ? $1 - 1 : a; hi = $1 < b ? $1 : b
            if (hi > lo) { s += (hi - lo) * $2; e += (hi - lo) * $3; w += hi - lo }
        }
        END { if (w >= 1) printf "%.1f %.0f\n", s / w, e; else exit 1 }' ||
        die "$1: less than one second of load reports in [$3, $4] s of $2: raise ROWS (the backfill ran too briefly) or LOAD_SECONDS"
}

# start_sampler ENGINE OUT: one client that samples the database's busy
# sessions twice a second into OUT, as "role<TAB>state" lines (role:
# backfill when the session's query is the backfill's, else load) and a
# "tick" line per sample. Sets SAMPLER_PID. stdbuf: what it sampled must
# reach OUT when it is stopped.
start_sampler() {
    local sql
    case $1 in
    pg)
        sql="SELECT CASE WHEN query ~ 'switchyard_(source|chunk|backfill)|wait_event_type = ''Lock''' THEN 'backfill' ELSE 'load' END,
            CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'on CPU') ELSE state END
            FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND backend_type = 'client backend' AND state <> 'idle';
            SELECT 'tick', '' FROM pg_sleep(0.5);"
        yes "$sql" | PGOPTIONS="-c client_min_messages=warning" stdbuf -oL \
            psql -X -q -At -F $'\t' -h 127.0.0.1 -p "${SY_PG_DIRECT_PORT:-5432}" -U postgres -d "$DB" >"$2" 2>&1 &
        ;;
    my)
        # A session between statements shows no query: counted as load.
        sql="SELECT IF(p.INFO REGEXP 'switchyard_(source|chunk|backfill)|Threads_running', 'backfill', 'load'),
            CASE WHEN t.trx_state = 'LOCK WAIT' THEN 'lock wait' WHEN p.COMMAND = 'Query' THEN CONCAT_WS(': ', 'running', NULLIF(p.STATE, ''))
                WHEN t.trx_id IS NOT NULL THEN 'idle in transaction' END AS st
            FROM information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
            WHERE p.DB = '$DB' AND p.ID <> CONNECTION_ID() HAVING st IS NOT NULL;
            SELECT 'tick', VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'THREADS_RUNNING';
            DO SLEEP(0.5);"
        yes "$sql" | stdbuf -oL mariadb -h 127.0.0.1 -P "${SY_MY_DIRECT_PORT:-3306}" -uroot --batch --skip-column-names "$DB" >"$2" 2>&1 &
        ;;
    esac
    SAMPLER_PID=$!
}

stop_sampler() {
    stop_pid "$SAMPLER_PID" sampler 5 || true
    SAMPLER_PID=""
}

# cpu_reading: the machine's busy and total CPU time so far (/proc/stat
# ticks, all cores; iowait counts as idle), as "busy total".
cpu_reading() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# cpu_busy BEFORE AFTER: the percentage of the machine's CPU time that was
# busy between two cpu_reading readings.
cpu_busy() {
    awk -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " "); printf "%.0f", 100 * (y[1] - x[1]) / (y[2] - x[2]) }'
}

# load_round ENGINE ROUND: the backfill idle, the load alone, then both;
# appends "engine round idle_s idle_rows base_tps base_errors loaded_s
# loaded_rows during_tps during_errors throttled base_cpu% during_cpu%" to
# RUNS.
load_round() {
    local engine=$1 round=$2 w="$WORK/$1/round-$2" idle base bf_start bf_end loaded during throttled cpu0 cpu1 cpu2 cpu3
    empty "$engine"
    idle=$(backfill "$engine" "$w-idle.json")
    check "$engine" "idle backfill, round $round"

    empty "$engine"
    start_sampler "$engine" "$w-base.samples"
    start_load "$engine" "$LOAD_SECONDS" "$w-base.out"
    sleep "$WARMUP"
    cpu0=$(cpu_reading)
    end_load "$engine" "$w-base.out"
    cpu1=$(cpu_reading)
    stop_sampler
    base=$(mean_tps "$engine" "$w-base.out" "$WARMUP" "$LOAD_SECONDS")

    empty "$engine"
    start_sampler "$engine" "$w-loaded.samples"
    start_load "$engine" 900 "$w-loaded.out"
    sleep "$WARMUP"
    bf_start=$(echo "$(now) - $LOAD_START" | bc)
    cpu2=$(cpu_reading)
    loaded=$(backfill "$engine" "$w-loaded.json")
    cpu3=$(cpu_reading)
    bf_end=$(echo "$(now) - $LOAD_START" | bc)
    # One more second of load, so the backfill's last second is reported.
    sleep 1.2
    end_load "$engine" "$w-loaded.out" stop
    stop_sampler
    check "$engine" "backfill under load, round $round"
    during=$(mean_tps "$engine" "$w-loaded.out" "$bf_start" "$bf_end")
    throttled=$(grep -c '"state":"throttled"' "$w-loaded.json" || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$engine" "$round" "${idle/ /$'\t'}" "${base/ /$'\t'}" \
        "${loaded/ /$'\t'}" "${during/ /$'\t'}" "$throttled" "$(cpu_busy "$cpu0" "$cpu1")" "$(cpu_busy "$cpu2" "$cpu3")" >>"$RUNS"
    log "$engine round $round: backfill idle $idle (s rows), under load $loaded; load tps alone ${base% *}, during the backfill ${during% *}"
}

# wait_summary FILES...: where the sampled sessions were, per role: the
# mean number of sessions in each state per sample, busiest first; MariaDB
# also the mean Threads_running.
wait_summary() {
    cat "$@" | awk -F'\t' '
        $1 == "tick" { ticks++; if ($2 != "") { tr += $2; trn++ } next }
        $1 == "backfill" || $1 == "load" { c[$1 "\t" $2]++ }
        END {
            if (!ticks) { print "none\t0\tno samples"; exit }
            for (k in c) { split(k, p, "\t"); printf "%s\t%.2f\t%s\n", p[1], c[k] / ticks, p[2] }
            if (trn) printf "server\t%.2f\tThreads_running\n", tr / trn
        }' | sort -k1,1 -k2,2nr | awk -F'\t' '
        $1 != role { if (role != "") printf "; "; role = $1; printf "%s: ", role; n = 0 }
        { if (n++ < 5) printf "%s%s %s", (n > 1 ? ", " : ""), $2, $3 }
        END { print "" }'
}

# run_median ENGINE COLUMN: the median over ENGINE's rounds of one RUNS
# column (the lower middle one for an even count).
run_median() {
    awk -F'\t' -v e="$1" -v c="$2" '$1 == e { print $c }' "$RUNS" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

load_details() {
    local engine=$1
    if [ "$engine" = pg ]; then
        echo "- PostgreSQL $(pg_direct -d postgres -Atc 'show server_version'); load: $(pgbench --version | awk '{ print $1, $3 }') -c $CLIENTS -j $((CLIENTS < 2 ? CLIENTS : 2)) -n -f (BEGIN; UPDATE items SET price = price + 1, note = md5(random()::text) WHERE id = random(1, ROWS); INSERT ... VALUES (random(ROWS + 1, 2 ROWS), ...) ON CONFLICT (id) DO UPDATE SET price = items.price + 1; END)"
    else
        echo "- MariaDB $(my_direct -Nse 'select version()'); load: sysbench $(sysbench --version | awk '{ print $2 }') --threads=$CLIENTS, a Lua script with the same transaction (MD5(RAND()), INSERT ... ON DUPLICATE KEY UPDATE), sysbench's default ignored errors (deadlock, lock wait timeout) retried"
    fi
    echo "  - the machine's CPU busy (all $(nproc) cores, median over rounds): $(run_median "$engine" 12)% during the load alone, $(run_median "$engine" 13)% while the backfill ran under it"
    echo "  - backfill progress reports while held back for the server's load (max load $([ "$engine" = pg ] && echo "10 sessions waiting for a lock" || echo "25 Threads_running")), all rounds: $(awk -F'\t' -v e="$engine" '$1 == e { s += $11 } END { print s + 0 }' "$RUNS")"
    echo "  - sessions sampled twice a second during the load runs (mean sessions in each state per sample; $([ "$engine" = pg ] && echo "pg_stat_activity, wait_event_type:wait_event, \`idle in transaction\`: waiting for the client through the proxy" || echo "processlist and INNODB_TRX; a session between statements counts as load"))"
    echo "    - load alone: $(wait_summary "$WORK/$engine"/round-*-base.samples)"
    echo "    - load with the backfill: $(wait_summary "$WORK/$engine"/round-*-loaded.samples)"
}

load_table() {
    python3 - "$RUNS" <<'PY'
import statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    rounds.setdefault(f[0], []).append(f)
def spread(values, fmt):
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"
n = lambda v: f"{v:,.0f}"
pct = lambda v: f"{v:.0f}%"
print("| engine | backfill idle rows/s | backfill under load rows/s | kept of idle rate | load tps alone | load tps during backfill | drop | load errors alone / during | targets met |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for engine, rs in rounds.items():
    idle = [int(r[3]) / float(r[2]) for r in rs]
    loaded = [int(r[7]) / float(r[6]) for r in rs]
    kept = [100 * l / i for l, i in zip(loaded, idle)]
    base = [float(r[4]) for r in rs]
    during = [float(r[8]) for r in rs]
    drop = [100 * (1 - d / b) for d, b in zip(during, base)]
    med_drop, med_kept = statistics.median(drop), statistics.median(kept)
    met = []
    met.append(("drop ≤ 20%: yes" if med_drop <= 20 else "drop ≤ 20%: **no**"))
    met.append(("rate ≥ 50%: yes" if med_kept >= 50 else "rate ≥ 50%: **no**"))
    errors = f"{sum(int(r[5]) for r in rs)} / {sum(int(r[9]) for r in rs)}"
    print(f"| {engine} | {spread(idle, n)} | {spread(loaded, n)} | {spread(kept, pct)} | {spread(base, n)} "
          f"| {spread(during, n)} | {spread(drop, pct)} | {errors} | {'; '.join(met)} |")
PY
}

load_mode() {
    local engine round
    write_load_scripts
    for engine in $ENGINES; do
        "setup_$engine"
        start_proxy "$engine"
        for round in $(seq 1 "$ROUNDS"); do
            load_round "$engine" "$round"
        done
        stop_pid "$PROXY_PID" switchyard-proxy 10 || true
        PROXY_PID=""
    done
    record_section "$(
        echo
        echo "## Backfill under a write load through the proxy — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        machine_lines
        echo "- $ROWS rows in items (bigint key, a text column renamed in items_v2, a decimal, a 32-character text); switchyard-proxy (release build) with migration items_v2 in dual_write, the store and the guard installed by \`switchyard init\`; the load connects to the proxy (user app), the backfill to the server"
        echo "- per round: the source back to ROWS rows, the target and the repair queue empty, no checkpoint, then (1) \`switchyard backfill\` alone (idle rate); (2) the load alone for ${LOAD_SECONDS} s (baseline: its per-second tps after the first ${WARMUP} s); (3) the load again, \`switchyard backfill\` started ${WARMUP} s in, the load stopped after it (during: its per-second tps over the backfill's run); after (1) and (3) items and items_v2 agreed both ways (plain SQL) and the repair queue was empty"
        echo "- backfill: \`switchyard backfill\` with its defaults (chunks adapted to \`--chunk-time-ms\`, 100 ms by default, 500 ms in the runs recorded before that default, share-locked INSERT ... SELECT skipping keys the target has, a checkpoint committed with each chunk)${BACKFILL_ARGS:+, plus $BACKFILL_ARGS}; under load its rows include the load's new keys above ROWS (already mirrored, so skipped)"
        echo "- targets (the issue's, reported, not asserted): the load's drop ≤ 20% while the backfill keeps ≥ 50% of its idle rate; $ROUNDS rounds, medians over rounds (lowest–highest)"
        for engine in $ENGINES; do load_details "$engine"; done
        if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
        echo
        load_table
    )"
}

"${MODE}_mode"
