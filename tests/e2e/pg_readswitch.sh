#!/usr/bin/env bash
# The read switch with real clients: a migration is added to the running
# proxy's file (hot reload), then reads follow blue-green flips made through
# the admin API while pgbench -M prepared, psycopg with server-side prepared
# statements, psql, the mariadb CLI and sysbench --db-ps-mode=auto keep
# their connections and statements. The target's rows are marked `tgt`, so
# every check reads which table answered; the proxy's read counters must
# show both paths used by the prepared-statement clients.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ADMIN="http://127.0.0.1:$SY_ADMIN_PORT"
ORIGINAL=$(cat "$SY_CONFIG")
export PGPASSWORD=app
PY="$SY_REPO/.venv/bin/python"
# shellcheck disable=SC2317
restore() { printf '%s\n' "$ORIGINAL" >"$SY_CONFIG.tmp" && mv "$SY_CONFIG.tmp" "$SY_CONFIG"; }
trap restore EXIT

# The suite's PostgreSQL database is $SY_DB; its MariaDB one gets the same
# name (run.sh creates one per protocol; this suite makes its own).
my_direct -e "DROP DATABASE IF EXISTS \`$SY_DB\`; CREATE DATABASE \`$SY_DB\`"
db_direct -q -c "
    CREATE TABLE accounts (aid int PRIMARY KEY, abalance int NOT NULL, filler text);
    CREATE TABLE accounts_copy (aid int PRIMARY KEY, abalance int NOT NULL, filler text);
    INSERT INTO accounts SELECT g, g, 'src' FROM generate_series(1, 1000) g;
    INSERT INTO accounts_copy SELECT g, g, 'tgt' FROM generate_series(1, 1000) g;" >/dev/null
my_db_direct -e "
    CREATE TABLE sbtest1 (id int PRIMARY KEY, k int NOT NULL, c char(120) NOT NULL, pad char(60) NOT NULL);
    CREATE TABLE sbtest1_copy LIKE sbtest1;
    INSERT INTO sbtest1 SELECT seq, seq, 'src', 'p' FROM seq_1_to_1000;
    INSERT INTO sbtest1_copy SELECT seq, seq, 'tgt', 'p' FROM seq_1_to_1000;"

cat >>"$SY_CONFIG" <<EOF
migrations:
  - id: e2e_pg
    backend: pg
    source: { database: $SY_DB, schema: public, table: accounts, primary_key: [aid] }
    target: { table: accounts_copy }
    phase: read_ramp
    reads: { strategy: blue_green, path: source }
    rollback: { max_latency_ratio: 1000 }
  - id: e2e_my
    backend: my
    source: { database: $SY_DB, table: sbtest1, primary_key: [id] }
    target: { table: sbtest1_copy }
    phase: read_ramp
    reads: { strategy: blue_green, path: source }
    rollback: { max_latency_ratio: 1000 }
EOF

# ready ID: wait until the migration's catalog is loaded.
ready() {
    local _
    for _ in $(seq 1 100); do
        if curl -fsS "$ADMIN/migrations" | "$PY" -c "
import json, sys
ms = {m['id']: m for m in json.load(sys.stdin)['migrations']}
sys.exit(0 if ms.get('$1', {}).get('catalog') == 'ready' else 1)"; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}
# flip ID PATH: blue-green flip through the admin API.
flip() {
    curl -fsS -X PUT "$ADMIN/migrations/$1/reads" -d "{\"strategy\":\"blue_green\",\"path\":\"$2\"}" >/dev/null
}
# reads ID PATH: switchyard_reads_total of one migration and path, summed.
reads() {
    curl -fsS "$ADMIN/metrics" | awk -v m="migration=\"$1\"" -v p="path=\"$2\"" \
        '$0 ~ /^switchyard_reads_total\{/ && index($0, m) && index($0, p) { s += $NF } END { print s + 0 }'
}

if ready e2e_pg && ready e2e_my; then pass "catalogs ready after a hot reload"; else
    fail "catalogs ready after a hot reload" "$(curl -sS "$ADMIN/migrations")"
fi

# ---- PostgreSQL
capture px_psql -Atc "SELECT filler FROM accounts WHERE aid = 1"
expect "psql reads the source" "src"
flip e2e_pg target
capture px_psql -Atc "SELECT filler FROM accounts WHERE aid = 1"
expect "psql reads the target after a flip" "tgt"
capture px_psql -Atc "SELECT * FROM accounts WHERE aid = 2"
expect "psql: * keeps the source's columns" "2|2|tgt"
flip e2e_pg source

capture "$PY" - <<EOF
import json, urllib.request, psycopg
def flip(path):
    body = json.dumps({"strategy": "blue_green", "path": path}).encode()
    req = urllib.request.Request("$ADMIN/migrations/e2e_pg/reads", data=body, method="PUT")
    urllib.request.urlopen(req).read()
with psycopg.connect("host=$SY_HOST port=$SY_PG_PORT user=app password=app dbname=$SY_DB sslmode=disable", prepare_threshold=0, autocommit=True) as c:
    seen = []
    for path in ["source", "target", "source"]:
        flip(path)
        seen.append(c.execute("SELECT filler FROM accounts WHERE aid = %s", (7,), prepare=True).fetchone()[0])
    print(",".join(seen))
EOF
expect "psycopg's server-side prepared statement follows flips" "src,tgt,src"

before=$(reads e2e_pg target)
flip e2e_pg target
capture pgbench -n -M prepared -c 2 -j 2 -t 200 -h "$SY_HOST" -p "$SY_PG_PORT" -U app \
    -f <(printf '\\set aid random(1, 1000)\nSELECT abalance, filler FROM accounts WHERE aid = :aid;\n') "$SY_DB"
after=$(reads e2e_pg target)
if [ "$RC" -eq 0 ] && [ "$((after - before))" -ge 400 ]; then
    pass "pgbench -M prepared reads the target after a flip ($((after - before)) target reads)"
else
    fail "pgbench -M prepared reads the target after a flip" "exit $RC, target reads grew by $((after - before))" "$OUT" "$ERR"
fi
flip e2e_pg source

# ---- MariaDB
capture px_my -e "SELECT c FROM sbtest1 WHERE id = 1"
expect "mariadb reads the source" "src"
flip e2e_my target
capture px_my -e "SELECT c FROM sbtest1 WHERE id = 1"
expect "mariadb reads the target after a flip" "tgt"
before=$(reads e2e_my target)
capture sysbench oltp_point_select --db-driver=mysql --mysql-host="$SY_HOST" --mysql-port="$SY_MY_PORT" \
    --mysql-user=app --mysql-password=app --mysql-db="$SY_DB" --tables=1 --table-size=1000 \
    --db-ps-mode=auto --threads=2 --events=400 --time=0 run
after=$(reads e2e_my target)
if [ "$RC" -eq 0 ] && [ "$((after - before))" -ge 400 ]; then
    pass "sysbench --db-ps-mode=auto reads the target ($((after - before)) target reads)"
else
    fail "sysbench --db-ps-mode=auto reads the target" "exit $RC, target reads grew by $((after - before))" "$OUT" "$ERR"
fi
flip e2e_my source
capture px_my -e "SELECT c FROM sbtest1 WHERE id = 1"
expect "mariadb reads the source after flipping back" "src"

restore
my_direct -e "DROP DATABASE IF EXISTS \`$SY_DB\`"
finish
