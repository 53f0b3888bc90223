#!/usr/bin/env bash
# Backfill throughput, idle: `switchyard backfill` against one plain
# `INSERT ... SELECT` (the floor no chunked, locking copy can beat) on
# PostgreSQL and MariaDB, and against pt-online-schema-change's copy (a
# no-op `ENGINE=InnoDB` alter) on MariaDB. Runs are interleaved, the order
# rotating each round; medians over rounds are appended to
# benches/RESULTS.md (unless BENCH_NO_RECORD=1).
#
# Usage: benches/backfill.sh   (env: ROWS=1000000 ROUNDS=3 ENGINES="pg my"
#        SWITCHYARD_BIN=path/to/switchyard, else a release build)
# Needs: PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306
# (scripts/ensure-databases.sh), pt-online-schema-change
# (scripts/ensure-tools.sh percona).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-3}
ENGINES=${ENGINES:-pg my}
DB=sy_bench_backfill
check_positive_int ROWS "$ROWS"
check_positive_int ROUNDS "$ROUNDS"
have pt-online-schema-change || die "pt-online-schema-change is missing: run scripts/ensure-tools.sh percona"

if [ -n "${SWITCHYARD_BIN:-}" ]; then
    BIN=$SWITCHYARD_BIN
else
    (cd "$REPO_ROOT" && nice -n 10 cargo build --release -q -p switchyard-controller --bin switchyard)
    BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/switchyard"
fi
[ -x "$BIN" ] || die "$BIN is not executable"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUNS="$WORK/runs.tsv"
: >"$RUNS"

psql_() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
my_() { mysql -h 127.0.0.1 -uroot --batch --skip-column-names "$@"; }
now() { date +%s.%N; }

setup_pg() {
    psql_ -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    psql_ -d $DB <<SQL
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text);
CREATE TABLE items_v2 (id bigint PRIMARY KEY, title text, price numeric(12,2), note text);
INSERT INTO items SELECT g, 'name ' || g, g % 10000 * 1.5, md5(g::text) FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE items;
SQL
    cat >"$WORK/pg.yaml" <<YAML
listen: { postgres: 127.0.0.1:0 }
users: [ { name: app, password: app } ]
backends: { pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: "" } }
routes: { postgres: pg }
migrations:
  - { id: items_v2, backend: pg, source: { database: $DB, schema: public, table: items, primary_key: [id] },
      target: { table: items_v2 }, columns: { name: title }, phase: dual_write }
YAML
}

setup_my() {
    my_ -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"
    my_ $DB <<SQL
CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, price DECIMAL(10,2), note TEXT) ENGINE=InnoDB;
CREATE TABLE items_v2 (id BIGINT PRIMARY KEY, title VARCHAR(64), price DECIMAL(12,2), note TEXT) ENGINE=InnoDB;
INSERT INTO items SELECT seq, CONCAT('name ', seq), seq % 10000 * 1.5, MD5(seq) FROM seq_1_to_$ROWS;
ANALYZE TABLE items;
SQL
    cat >"$WORK/my.yaml" <<YAML
listen: { mysql: 127.0.0.1:0 }
users: [ { name: app, password: app } ]
backends: { my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: "" } }
routes: { mysql: my }
migrations:
  - { id: items_v2, backend: my, source: { database: $DB, table: items, primary_key: [id] },
      target: { table: items_v2 }, columns: { name: title }, phase: dual_write }
YAML
}

# empty ENGINE: the target empty and no checkpoint, before every run.
empty() {
    case $1 in
        pg) psql_ -d $DB -c "TRUNCATE items_v2" -c "DROP TABLE IF EXISTS switchyard_backfill" -c "CHECKPOINT" ;;
        my) my_ $DB -e "TRUNCATE items_v2; DROP TABLE IF EXISTS switchyard_backfill" ;;
    esac
}

# check ENGINE METHOD: the copy is whole and equal (plain SQL).
check() {
    local diff
    case $1 in
        pg) diff=$(psql_ -d $DB -c "SELECT count(*) FROM (SELECT id, name, price, note FROM items EXCEPT SELECT id, title, price, note FROM items_v2) d") ;;
        my) diff=$(my_ $DB -e "SELECT count(*) FROM items s LEFT JOIN items_v2 t ON s.id = t.id AND s.name <=> t.title AND s.price <=> t.price AND s.note <=> t.note WHERE t.id IS NULL") ;;
    esac
    [ "$diff" = 0 ] || die "$1 $2: $diff rows missing or different after the copy"
}

# run ENGINE METHOD ROUND: time one copy and append "engine method round seconds".
run() {
    local engine=$1 method=$2 start end
    [ "$method" = pt-osc ] || empty "$engine"
    start=$(now)
    case $engine/$method in
        pg/insert-select) psql_ -d $DB -c "INSERT INTO items_v2 SELECT id, name, price, note FROM items" ;;
        my/insert-select) my_ $DB -e "INSERT INTO items_v2 SELECT id, name, price, note FROM items" ;;
        */switchyard) "$BIN" -c "$WORK/$engine.yaml" backfill items_v2 >"$WORK/out.txt" ;;
        my/pt-osc) pt-online-schema-change --alter "ENGINE=InnoDB" --recursion-method=none --execute \
            h=127.0.0.1,u=root,D=$DB,t=items >"$WORK/out.txt" 2>&1 ;;
    esac
    end=$(now)
    [ "$method" = pt-osc ] || check "$engine" "$method"
    printf '%s\t%s\t%s\t%s\n' "$engine" "$method" "$3" "$(echo "$end - $start" | bc)" >>"$RUNS"
    log "$engine $method round $3: $(tail -n 1 "$RUNS" | cut -f4) s"
}

for engine in $ENGINES; do
    "setup_$engine"
    methods=(insert-select switchyard)
    [ "$engine" = my ] && methods+=(pt-osc)
    for round in $(seq 1 "$ROUNDS"); do
        n=${#methods[@]}
        for i in $(seq 0 $((n - 1))); do
            run "$engine" "${methods[$(((i + round) % n))]}" "$round"
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
section=$(
    echo
    echo "## Backfill, idle: switchyard vs INSERT ... SELECT vs pt-online-schema-change — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    machine_lines
    echo "- $ROWS rows (bigint key, a renamed text column, a decimal, a 32-character text), target empty before every run; $ROUNDS rounds interleaved (order rotating), medians over rounds"
    echo "- switchyard: \`switchyard backfill\` with its defaults (chunks adapted to 0.5 s, share-locked INSERT ... SELECT skipping keys the target has, a checkpoint committed with each chunk), binary $(basename "$BIN") from ${BIN%/*}"
    echo "- pt-osc: pt-online-schema-change --alter ENGINE=InnoDB (its defaults: 0.5 s chunks, INSERT LOW_PRIORITY IGNORE ... LOCK IN SHARE MODE), timed whole (new table, triggers, copy, swap)"
    echo "- ratios: the named copy's median time over the row's (the row's speed relative to it; above 1: the row is faster)"
    if [ -n "${BENCH_NOTE:-}" ]; then echo "- note: $BENCH_NOTE"; fi
    echo
    echo "$table"
)
record_section "$section"
