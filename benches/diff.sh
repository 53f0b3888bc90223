#!/usr/bin/env bash
# The table diff's speed and exactness against what people use today:
# `switchyard diff` (release build) compares two 1,000,000-row tables on
# one server, once identical and once with 0.1% of the keys differing, and
# the field's tools do the same job on the same tables: on PostgreSQL two
# plain `EXCEPT` queries (source minus target, target minus source) run by
# psql; on MariaDB `pt-table-sync --print` (Debian's percona-toolkit), which
# prints the statements that would make the target equal to the source.
#
# Tables (database sy_bench_diff on each server, dropped and recreated on
# every run): `orders` (id bigint key, customer_id int, email varchar,
# name, status varchar, amount numeric(12,2), created_at timestamp, note
# text, a third of them NULL), 1,000,000 rows; `orders_same`, a copy;
# `orders_diff`, a copy in which the 1,000 keys with id % 1000 = 500 differ
# (k = id div 1000): k % 10 <= 6 one column changed (which one by k % 7:
# name + 'x', amount + 0.01, created_at + 1 s, note NULL <-> '', status in
# upper case, email + a trailing space, customer_id + 1), k % 10 = 7 missing
# in the target, k % 10 >= 8 extra in the target (the source skips those
# keys). On PostgreSQL the copies name `email` `email_address` (the
# migration maps it); on MariaDB the names stay, because pt-table-sync can
# only compare columns of the same name.
#
# Runs, interleaved within every round (their order rotates), each timed
# from process start to exit:
#   standard   `switchyard diff orders_same --level standard` (must exit 0:
#              clean, 1,000,000 source rows)
#   detailed   `switchyard diff orders_diff --level detailed --all-keys
#              --json` (must exit 1 and list exactly the 1,000 differing
#              keys, each with the right kind and, when changed, the right
#              column; the script fails loudly otherwise)
#   except / pt-table-sync on both pairs (must find nothing on the
#              identical pair and exactly the 1,000 keys on the other)
#   hash floor the checksum switchyard's standard level computes (the same
#              row expression and sum as consistency/src/diff/compared.rs),
#              over each whole table in one statement, both tables at once
#              from two clients: what the servers' hashing alone costs, so
#              the rest of `standard` is the tool's own (chunking, round
#              trips, start-up)
# The section appended to benches/RESULTS.md shows medians over rounds with
# the spread, rows/s (source rows over the median) and each switchyard run's
# time over the competitor's on the same pair (median of the round-by-round
# ratios, with their lowest and highest), then the issue's targets met or
# missed.
#
# Usage: benches/diff.sh
# Environment (defaults in brackets):
#   BENCH_ROUNDS [5]  BENCH_ENGINES ["postgres mariadb"]  BENCH_WORKERS [2]
#   SWITCHYARD_BIN     use this `switchyard` binary instead of building it
#   BENCH_NO_RECORD=1  print the section without appending it to RESULTS.md
#   BENCH_NOTE=TEXT    a note line for the recorded section
# Lists from the environment split on spaces on purpose (SC2206).
# shellcheck disable=SC2206
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=bench-diff

ROUNDS=${BENCH_ROUNDS:-5}
ENGINES=(${BENCH_ENGINES:-postgres mariadb})
WORKERS=${BENCH_WORKERS:-2}
DB=sy_bench_diff
ROWS=1000000
DIFFERING=1000
check_positive_int BENCH_ROUNDS "$ROUNDS"
check_positive_int BENCH_WORKERS "$WORKERS"
for e in "${ENGINES[@]}"; do
    case "$e" in postgres | mariadb) ;; *) die "unknown engine \`$e\` (postgres, mariadb)" ;; esac
done

has_engine() { [[ " ${ENGINES[*]} " == *" $1 "* ]]; }

if has_engine postgres; then bash "$REPO_ROOT/scripts/ensure-databases.sh" postgres; fi
if has_engine mariadb; then
    bash "$REPO_ROOT/scripts/ensure-databases.sh" mysql
    bash "$REPO_ROOT/scripts/ensure-tools.sh" percona
    need pt-table-sync "Install Debian's percona-toolkit (scripts/ensure-tools.sh percona)."
fi

# build_controller_release: print the path of a release `switchyard`
# (SWITCHYARD_BIN if set, else build it).
build_controller_release() {
    if [ -n "${SWITCHYARD_BIN:-}" ]; then
        [ -x "$SWITCHYARD_BIN" ] || die "SWITCHYARD_BIN=$SWITCHYARD_BIN is not executable"
        echo "$SWITCHYARD_BIN"
        return
    fi
    log "building switchyard (release)"
    (cd "$REPO_ROOT" && cargo build --release -p switchyard-controller >&2) ||
        die "cargo build --release -p switchyard-controller failed"
    echo "$(cargo_target_dir)/release/switchyard"
}
SY=$(build_controller_release)

WORK=$(mktemp -d /tmp/switchyard-bench-diff.XXXXXX)
cleanup() {
    local rc=$?
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "outputs kept in $WORK"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- data

# The differing keys, as SQL conditions on `id` (k = id div 1000).
DIFF_KEY="id % 1000 = 500"

setup_postgres() {
    log "PostgreSQL: creating $DB (3 tables of about $ROWS rows)"
    pg_direct -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
    pg_direct -d "$DB" <<EOF
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    email varchar(120) NOT NULL,
    name text NOT NULL,
    status varchar(16) NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL,
    note text
);
INSERT INTO orders
SELECT g, (g * 7919) % 50000, 'user' || g || '@example.com', md5(g::text),
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4],
       ((g * 37) % 100000) / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || (g % 997) END
FROM generate_series(1::bigint, $((ROWS + DIFFERING / 5))) g
WHERE NOT (g % 1000 = 500 AND ((g - 500) / 1000) % 10 >= 8);
CREATE TABLE orders_same (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    email_address varchar(120) NOT NULL,
    name text NOT NULL,
    status varchar(16) NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL,
    note text
);
CREATE TABLE orders_diff (LIKE orders_same INCLUDING ALL);
INSERT INTO orders_same SELECT * FROM orders;
INSERT INTO orders_diff SELECT * FROM orders;
UPDATE orders_diff SET
    name = CASE WHEN (id / 1000) % 7 = 0 THEN name || 'x' ELSE name END,
    amount = CASE WHEN (id / 1000) % 7 = 1 THEN amount + 0.01 ELSE amount END,
    created_at = CASE WHEN (id / 1000) % 7 = 2 THEN created_at + interval '1 second' ELSE created_at END,
    note = CASE WHEN (id / 1000) % 7 = 3 THEN CASE WHEN note IS NULL THEN '' ELSE NULL END ELSE note END,
    status = CASE WHEN (id / 1000) % 7 = 4 THEN upper(status) ELSE status END,
    email_address = CASE WHEN (id / 1000) % 7 = 5 THEN email_address || ' ' ELSE email_address END,
    customer_id = CASE WHEN (id / 1000) % 7 = 6 THEN customer_id + 1 ELSE customer_id END
WHERE $DIFF_KEY AND (id / 1000) % 10 <= 6;
DELETE FROM orders_diff WHERE $DIFF_KEY AND (id / 1000) % 10 = 7;
INSERT INTO orders_diff
SELECT g, 1, 'extra' || g || '@example.com', md5(g::text), 'new', 1.00, timestamptz '2024-06-01 00:00:00+00', NULL
FROM generate_series(500::bigint, 999500, 1000) g WHERE (g / 1000) % 10 >= 8;
VACUUM ANALYZE orders;
VACUUM ANALYZE orders_same;
VACUUM ANALYZE orders_diff;
CHECKPOINT;
EOF
}

setup_mariadb() {
    log "MariaDB: creating $DB (3 tables of about $ROWS rows)"
    my_direct >/dev/null <<EOF
DROP DATABASE IF EXISTS $DB;
CREATE DATABASE $DB;
USE $DB;
CREATE TABLE orders (
    id bigint NOT NULL PRIMARY KEY,
    customer_id int NOT NULL,
    email varchar(120) NOT NULL,
    name varchar(64) NOT NULL,
    status varchar(16) NOT NULL,
    amount decimal(12,2) NOT NULL,
    created_at datetime(6) NOT NULL,
    note text NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO orders
SELECT seq, (seq * 7919) % 50000, CONCAT('user', seq, '@example.com'), MD5(seq),
       ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'),
       ((seq * 37) % 100000) / 100,
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (seq * 17) SECOND,
       IF(seq % 3 = 0, NULL, CONCAT('note ', seq % 997))
FROM seq_1_to_$((ROWS + DIFFERING / 5))
WHERE NOT (seq % 1000 = 500 AND ((seq - 500) DIV 1000) % 10 >= 8);
CREATE TABLE orders_same LIKE orders;
INSERT INTO orders_same SELECT * FROM orders;
CREATE TABLE orders_diff LIKE orders;
INSERT INTO orders_diff SELECT * FROM orders;
UPDATE orders_diff SET
    name = IF((id DIV 1000) % 7 = 0, CONCAT(name, 'x'), name),
    amount = IF((id DIV 1000) % 7 = 1, amount + 0.01, amount),
    created_at = IF((id DIV 1000) % 7 = 2, created_at + INTERVAL 1 SECOND, created_at),
    note = IF((id DIV 1000) % 7 = 3, IF(note IS NULL, '', NULL), note),
    status = IF((id DIV 1000) % 7 = 4, UPPER(status), status),
    email = IF((id DIV 1000) % 7 = 5, CONCAT(email, ' '), email),
    customer_id = IF((id DIV 1000) % 7 = 6, customer_id + 1, customer_id)
WHERE $DIFF_KEY AND (id DIV 1000) % 10 <= 6;
DELETE FROM orders_diff WHERE $DIFF_KEY AND (id DIV 1000) % 10 = 7;
INSERT INTO orders_diff
SELECT seq, 1, CONCAT('extra', seq, '@example.com'), MD5(seq), 'new', 1.00, TIMESTAMP '2024-06-01 00:00:00', NULL
FROM seq_500_to_999500_step_1000 WHERE (seq DIV 1000) % 10 >= 8;
ANALYZE TABLE orders, orders_same, orders_diff;
EOF
}

# check_rows ENGINE: the source holds ROWS rows, the differing copy the
# ROWS - 100 + 200 the design says.
check_rows() {
    local counts
    case "$1" in
    postgres) counts=$(pg_direct -d "$DB" -Atc "SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM orders_same) || ' ' || (SELECT count(*) FROM orders_diff)") ;;
    mariadb) counts=$(my_direct -D "$DB" -Nse "SELECT CONCAT((SELECT COUNT(*) FROM orders), ' ', (SELECT COUNT(*) FROM orders_same), ' ', (SELECT COUNT(*) FROM orders_diff))") ;;
    esac
    [ "$counts" = "$ROWS $ROWS $((ROWS + 100))" ] ||
        die "$1: orders / orders_same / orders_diff hold $counts rows, expected $ROWS $ROWS $((ROWS + 100))"
}

# ---- switchyard's configuration: one backend, two migrations of `orders`
write_config() {
    local engine=$1 file=$2 backend columns="" schema=""
    case "$engine" in
    postgres)
        backend="pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: \"\", database: $DB }"
        columns="    columns: { email: email_address }"
        schema="schema: public, "
        ;;
    mariadb) backend="my: { kind: mariadb, host: 127.0.0.1, port: 3306, user: root, password: \"\" }" ;;
    esac
    {
        cat <<EOF
# Written by benches/diff.sh: the diff's two migrations of $DB.orders.
listen: { $([ "$engine" = postgres ] && echo postgres || echo mysql): 127.0.0.1:6999 }
users:
  - { name: app, password: app }
backends:
  $backend
routes: { $([ "$engine" = postgres ] && echo postgres || echo mysql): ${backend%%:*} }
migrations:
EOF
        for copy in orders_same orders_diff; do
            echo "  - id: $copy"
            echo "    backend: ${backend%%:*}"
            echo "    source: { database: $DB, ${schema}table: orders, primary_key: [id] }"
            echo "    target: { database: $DB, ${schema}table: $copy }"
            [ -z "$columns" ] || echo "$columns"
        done
    } >"$file"
}

# ---- the competitors and the hash floor

# The compared columns of each table, in the same order.
pg_columns() {
    case "$1" in
    orders) echo "id, customer_id, email, name, status, amount, created_at, note" ;;
    *) echo "id, customer_id, email_address, name, status, amount, created_at, note" ;;
    esac
}

# except_sql COPY: both EXCEPT queries, each row marked with its side.
except_sql() {
    echo "SELECT 's', * FROM (SELECT $(pg_columns orders) FROM orders EXCEPT SELECT $(pg_columns "$1") FROM $1) a;"
    echo "SELECT 't', * FROM (SELECT $(pg_columns "$1") FROM $1 EXCEPT SELECT $(pg_columns orders) FROM orders) b;"
}

# hash_sql ENGINE TABLE: switchyard's standard-level checksum of one whole
# table (compared.rs: PostgreSQL hash_record_extended of the row, MySQL
# the first 64 bits of MD5 over length-prefixed values, summed exactly),
# after the session settings the diff pins.
hash_sql() {
    local engine=$1 table=$2 cols c e=""
    case "$engine" in
    postgres)
        # Each value by its type's hash, numeric by its text (compared.rs
        # hashes as is only types whose hash is equal exactly when the
        # prints are).
        cols=$(pg_columns "$table" | sed -e 's/[a-z_][a-z_]*/s.&/g' -e 's/s\.amount/(s.amount)::text/')
        echo "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1;"
        echo "SELECT count(*) || ':' || coalesce(sum(hash_record_extended(ROW($cols), 0)), 0) FROM public.$table s;"
        ;;
    mariadb)
        for c in id customer_id email name status amount created_at note; do
            e="$e${e:+, }IFNULL(CONCAT(LENGTH(s.$c), ':', s.$c), '~')"
        done
        echo "SET time_zone = '+00:00';"
        echo "SELECT CONCAT(COUNT(*), ':', IFNULL(SUM(CAST(CONV(LEFT(MD5(CONCAT($e)), 16), 16, 10) AS UNSIGNED)), 0)) FROM $table s;"
        ;;
    esac
}

# sql_client ENGINE: a client reading SQL on stdin, one output row per line.
sql_client() {
    case "$1" in
    postgres) pg_direct -d "$DB" -At -F $'\t' ;;
    mariadb) my_direct -D "$DB" -N -B ;;
    esac
}

# ---- checking what each run found

# check_detailed JSON: the detailed report names exactly the 1,000
# differing keys, each with its kind and (changed) its one column.
check_detailed() {
    python3 - "$1" "$ROWS" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = int(sys.argv[2])
columns = ["name", "amount", "created_at", "note", "status", "email", "customer_id"]
want = {}
for k in range(1000):
    key = str(k * 1000 + 500)
    kind = k % 10
    if kind <= 6:
        want[key] = ("changed", columns[k % 7])
    elif kind == 7:
        want[key] = ("missing_in_target", None)
    else:
        want[key] = ("extra_in_target", None)
got = {}
problems = []
for d in report["differences"]:
    key = ",".join(d["key"])
    cols = sorted(c["column"] for c in d.get("columns", []))
    if key in got:
        problems.append(f"key {key} listed twice")
    got[key] = (d["kind"], cols[0] if len(cols) == 1 else (",".join(cols) or None))
for key, (kind, col) in want.items():
    if key not in got:
        problems.append(f"key {key} ({kind} {col or ''}) not reported")
    elif got[key] != (kind, col):
        problems.append(f"key {key}: expected {kind} {col}, reported {got[key][0]} {got[key][1]}")
for key in got.keys() - want.keys():
    problems.append(f"key {key} reported ({got[key][0]}) but does not differ")
counts = report["counts"]
expect_counts = {"missing_in_target": 100, "extra_in_target": 200, "changed": 700}
if {k: counts.get(k) for k in expect_counts} != expect_counts:
    problems.append(f"counts {counts}, expected {expect_counts}")
if report["source_rows"] != rows:
    problems.append(f"source_rows {report['source_rows']}, expected {rows}")
if report["clean"]:
    problems.append("report says clean")
if problems:
    print(f"{len(problems)} problems, first ones:", *problems[:10], sep="\n  ")
    sys.exit(1)
print(f"{len(got)} keys, {report['chunks']} chunks ({len(report['differing_chunks'])} differing), report {report['seconds']:.3f} s")
EOF
}

# check_standard JSON: clean, every source row compared.
check_standard() {
    python3 - "$1" "$ROWS" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
if not report["clean"] or report["source_rows"] != int(sys.argv[2]) or report["target_rows"] != int(sys.argv[2]):
    sys.exit(f"not clean or rows missed: clean {report['clean']}, source_rows {report['source_rows']}, target_rows {report['target_rows']}")
print(f"clean, {report['chunks']} chunks, report {report['seconds']:.3f} s")
EOF
}

# check_except OUT COPY: psql's rows of both EXCEPT queries name exactly
# the differing keys (none for the identical copy).
check_except() {
    local out=$1 copy=$2 lines keys
    lines=$(wc -l <"$out")
    keys=$(cut -f 2 "$out" | sort -u | wc -l)
    if [ "$copy" = orders_same ]; then
        [ "$lines" -eq 0 ] || die "EXCEPT on the identical copy returned $lines rows ($out)"
        echo "0 rows"
        return
    fi
    # Changed keys show on both sides, missing and extra on one.
    [ "$lines" -eq 1700 ] && [ "$keys" -eq "$DIFFERING" ] ||
        die "EXCEPT on orders_diff: $lines rows over $keys keys, expected 1700 over $DIFFERING ($out)"
    echo "$lines rows, $keys keys"
}

# check_pt OUT RC COPY: pt-table-sync printed nothing for the identical
# copy, and exactly one statement per differing key otherwise (700
# UPDATE, 100 INSERT, 200 DELETE; exit 2 = differences found).
check_pt() {
    local out=$1 rc=$2 copy=$3 counts keys
    if [ "$copy" = orders_same ]; then
        [ "$rc" -eq 0 ] && [ ! -s "$out" ] || die "pt-table-sync on the identical copy: exit $rc, $(wc -l <"$out") statements ($out)"
        echo "0 statements"
        return
    fi
    [ "$rc" -eq 2 ] || die "pt-table-sync on orders_diff exited $rc (expected 2: differences found; $out)"
    counts=$(awk '{ n[$1]++ } END { printf "%d %d %d %d", n["UPDATE"], n["INSERT"] + n["REPLACE"], n["DELETE"], NR }' "$out")
    # UPDATE and DELETE name the key as `id`='N'; INSERT as its first value.
    keys=$(sed -n -e "s/.*WHERE \`id\`='\([0-9]*\)'.*/\1/p" -e "s/^INSERT .* VALUES ('\([0-9]*\)'.*/\1/p" "$out" | sort -u | wc -l)
    [ "$counts" = "700 100 200 1000" ] && [ "$keys" -eq "$DIFFERING" ] ||
        die "pt-table-sync on orders_diff: UPDATE/INSERT/DELETE/all $counts over $keys keys, expected 700 100 200 1000 over $DIFFERING ($out)"
    echo "1000 statements (700 UPDATE, 100 INSERT, 200 DELETE), $keys keys"
}

# ---- one timed run

# run_one ENGINE RUN ROUND: runs RUN, checks what it found, and appends
# "engine run round seconds detail" to RUNS.
run_one() {
    local engine=$1 run=$2 round=$3 out="$WORK/$1-$2-$3.out" err="$WORK/$1-$2-$3.err" cfg="$WORK/$1.yaml"
    local t0 t1 rc=0 detail
    case "$run" in
    standard)
        t0=$EPOCHREALTIME
        "$SY" --config "$cfg" --json diff orders_same --level standard --workers "$WORKERS" >"$out" 2>"$err" || rc=$?
        t1=$EPOCHREALTIME
        [ "$rc" -eq 0 ] || { tail -n 20 "$err" "$out" >&2; die "$engine: switchyard diff --level standard exited $rc on identical tables (expected 0)"; }
        detail=$(check_standard "$out") || die "$engine standard: $detail ($out)"
        ;;
    detailed)
        t0=$EPOCHREALTIME
        "$SY" --config "$cfg" --json diff orders_diff --level detailed --all-keys --workers "$WORKERS" >"$out" 2>"$err" || rc=$?
        t1=$EPOCHREALTIME
        [ "$rc" -eq 1 ] || { tail -n 20 "$err" "$out" >&2; die "$engine: switchyard diff --level detailed exited $rc on the 0.1% pair (expected 1)"; }
        detail=$(check_detailed "$out") || die "$engine detailed did not find exactly the $DIFFERING differing keys: $detail ($out)"
        ;;
    except-same | except-diff)
        local copy=orders_${run#except-}
        except_sql "$copy" >"$WORK/except-$copy.sql"
        t0=$EPOCHREALTIME
        pg_direct -d "$DB" -At -F $'\t' -f "$WORK/except-$copy.sql" >"$out" 2>"$err" || rc=$?
        t1=$EPOCHREALTIME
        [ "$rc" -eq 0 ] || { cat "$err" >&2; die "psql EXCEPT on $copy exited $rc"; }
        detail=$(check_except "$out" "$copy")
        ;;
    pt-same | pt-diff)
        local copy=orders_${run#pt-} dsn="h=127.0.0.1,P=3306,u=root,D=$DB"
        t0=$EPOCHREALTIME
        pt-table-sync --print "$dsn,t=orders" "$dsn,t=$copy" >"$out" 2>"$err" || rc=$?
        t1=$EPOCHREALTIME
        [ "$rc" -le 2 ] || { cat "$err" >&2; die "pt-table-sync on $copy exited $rc"; }
        detail=$(check_pt "$out" "$rc" "$copy")
        ;;
    hash-floor)
        local pid rc2=0
        t0=$EPOCHREALTIME
        hash_sql "$engine" orders | sql_client "$engine" >"$out" 2>"$err" &
        pid=$!
        hash_sql "$engine" orders_same | sql_client "$engine" >"$out.2" 2>>"$err" || rc2=$?
        wait "$pid" || rc=$?
        t1=$EPOCHREALTIME
        [ "$rc" -eq 0 ] && [ "$rc2" -eq 0 ] || { cat "$err" >&2; die "$engine: the hash floor queries failed"; }
        [ "$(tail -n 1 "$out")" = "$(tail -n 1 "$out.2")" ] ||
            die "$engine: the identical tables hash differently: $(tail -n 1 "$out") vs $(tail -n 1 "$out.2")"
        detail="both $(tail -n 1 "$out")"
        ;;
    esac
    local secs
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\n' "$engine" "$run" "$round" "$secs" "$detail" >>"$RUNS"
    printf '  round %d %-8s %-11s %7.3f s  %s\n' "$round" "$engine" "$run" "$secs" "$detail" >&2
}

# ---- setup, then the rounds
declare -A VERSION=()
started=$EPOCHREALTIME
for engine in "${ENGINES[@]}"; do
    "setup_$engine"
    check_rows "$engine"
    write_config "$engine" "$WORK/$engine.yaml"
    case "$engine" in
    postgres) VERSION[$engine]="PostgreSQL $(pg_direct -d postgres -Atc 'show server_version') (shared_buffers $(pg_direct -d postgres -Atc 'show shared_buffers'), work_mem $(pg_direct -d postgres -Atc 'show work_mem'), max_parallel_workers_per_gather $(pg_direct -d postgres -Atc 'show max_parallel_workers_per_gather'))" ;;
    mariadb) VERSION[$engine]="MariaDB $(my_direct -Nse 'select version()') (innodb_buffer_pool_size $(my_direct -Nse 'select @@innodb_buffer_pool_size DIV 1048576') MiB); $(pt-table-sync --version)" ;;
    esac
done
log "setup done in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"

RUNS="$WORK/runs.tsv"
: >"$RUNS"
declare -A RUNS_OF=([postgres]="standard detailed except-same except-diff hash-floor" [mariadb]="standard detailed pt-same pt-diff hash-floor")
# A warm-up of each run (not recorded), so the first round does not pay
# for cold caches alone.
log "warm-up: each run once"
for engine in "${ENGINES[@]}"; do
    for run in ${RUNS_OF[$engine]}; do
        run_one "$engine" "$run" 0
    done
done
: >"$RUNS"
for ((round = 1; round <= ROUNDS; round++)); do
    log "round $round of $ROUNDS"
    for engine in "${ENGINES[@]}"; do
        runs=(${RUNS_OF[$engine]})
        for ((k = 0; k < ${#runs[@]}; k++)); do
            run_one "$engine" "${runs[$(((k + round) % ${#runs[@]}))]}" "$round"
        done
    done
done

# ---- the section
details="$WORK/details.md"
{
    for engine in "${ENGINES[@]}"; do
        echo "- ${VERSION[$engine]}; database $DB on 127.0.0.1"
    done
    echo "- tables: \`orders\` ($ROWS rows: id bigint key, customer_id int, email varchar(120), name, status varchar(16), amount numeric(12,2), created_at timestamp, note text a third NULL); \`orders_same\` a copy; \`orders_diff\` a copy with $DIFFERING keys (0.1%) differing: 700 one column changed (7 kinds: text + 'x', amount + 0.01, timestamp + 1 s, NULL ↔ '', upper case, trailing space, int + 1), 100 missing, 200 extra, spread evenly (every 1,000th key); on PostgreSQL the copies rename email to email_address (mapped by the migration's \`columns:\`)"
    echo "- switchyard $("$SY" --version | awk '{ print $2 }') (release build), --workers $WORKERS; every run timed from process start to exit, $ROUNDS rounds after one warm-up round, runs interleaved (order rotating), medians over rounds; rows/s = source rows ÷ median"
    echo "- standard: \`diff orders_same --level standard --json\` (checked: exit 0, clean, all rows counted); detailed: \`diff orders_diff --level detailed --all-keys --json\` (checked every round: exit 1, exactly the $DIFFERING keys with the right kind and column)"
    echo "- except: psql running \`SELECT ... FROM orders EXCEPT SELECT ... FROM copy\` and the reverse (checked: 0 rows / 1,700 rows over the $DIFFERING keys); pt-table-sync: \`pt-table-sync --print h=127.0.0.1,P=3306,u=root,D=$DB,t=orders ...,t=copy\` (checked: nothing / 700 UPDATE, 100 INSERT, 200 DELETE over the $DIFFERING keys)"
    echo "- hash floor: switchyard's standard checksum expression over each whole table in one statement, the two tables at once from two clients (psql / mariadb): the servers' hashing alone"
} >"$details"
table=$(python3 - "$RUNS" "$ROWS" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    engine, run, rnd, secs, _ = line.rstrip("\n").split("\t", 4)
    runs[(engine, run)][int(rnd)] = float(secs)
rows = int(sys.argv[2])
label = {
    "standard": ("switchyard diff --level standard", "identical"),
    "detailed": ("switchyard diff --level detailed --all-keys", "0.1% differ"),
    "except-same": ("psql EXCEPT both ways", "identical"),
    "except-diff": ("psql EXCEPT both ways", "0.1% differ"),
    "pt-same": ("pt-table-sync --print", "identical"),
    "pt-diff": ("pt-table-sync --print", "0.1% differ"),
    "hash-floor": ("hash floor (checksum SQL alone)", "identical"),
}
against = {"postgres": {"standard": "except-same", "detailed": "except-diff"},
           "mariadb": {"standard": "pt-same", "detailed": "pt-diff"}}
def ratio(engine, run, other):
    a, b = runs.get((engine, run), {}), runs.get((engine, other), {})
    rs = [a[r] / b[r] for r in a if r in b and b[r] > 0]
    if not rs:
        return None
    return statistics.median(rs), min(rs), max(rs)
print("| engine | run | pair | median (s) | min–max (s) | rows/s | ratio to competitor (min–max) | ratio to hash floor |")
print("|---|---|---|---:|---:|---:|---:|---:|")
verdicts = []
for engine in ("postgres", "mariadb"):
    for run in ("standard", "detailed", "except-same", "except-diff", "pt-same", "pt-diff", "hash-floor"):
        t = runs.get((engine, run))
        if not t:
            continue
        med = statistics.median(t.values())
        name, pair = label[run]
        other = against[engine].get(run)
        r = ratio(engine, run, other) if other else None
        rtext = f"{r[0]:.3f} ({r[1]:.3f}–{r[2]:.3f})" if r else "—"
        f = ratio(engine, run, "hash-floor") if run == "standard" else None
        ftext = f"{f[0]:.2f}" if f else "—"
        print(f"| {engine} | {name} | {pair} | {med:.3f} | {min(t.values()):.3f}–{max(t.values()):.3f} | {rows / med:,.0f} | {rtext} | {ftext} |")
        if run == "standard":
            ok = rows / med >= 1_000_000
            verdicts.append(f"- {engine}: standard on identical tables {rows / med:,.0f} rows/s (target ≥ 1,000,000 rows/s, ≤ 1 s): {'met' if ok else f'missed, {med:.2f} s = {med:.1f}× the 1 s budget'}")
        if run == "detailed" and r:
            if engine == "mariadb":
                ok = r[0] <= 0.1
                verdicts.append(f"- {engine}: detailed at 0.1% differing {1 / r[0]:.1f}× faster than pt-table-sync (target ≥ 10×): {'met' if ok else 'missed'}; every differing key found in every round")
            else:
                ok = r[0] < 1
                verdicts.append(f"- {engine}: detailed at 0.1% differing {1 / r[0]:.2f}× the speed of the two EXCEPT queries (target: faster): {'met' if ok else 'missed'}; every differing key found in every round")
        if run == "standard" and r and engine == "postgres":
            verdicts.append(f"- {engine}: standard on identical tables {1 / r[0]:.2f}× the speed of the two EXCEPT queries (target: faster): {'met' if r[0] < 1 else 'missed'}")
print()
print("Targets (issue 10):")
print()
print("\n".join(verdicts))
EOF
)
section=$(
    echo
    echo "## switchyard diff — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    machine_lines
    cat "$details"
    if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
    echo
    echo "$table"
)
record_section "$section"
log "done in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"
