#!/usr/bin/env bash
# pgbench through the proxy: initialisation (DDL + COPY FROM STDIN), then the
# TPC-B-like write mix and the select-only mix in the simple, extended and
# prepared query modes, plus one run that reconnects for every transaction.
# Afterwards the books must balance when read straight from PostgreSQL.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLIENTS=4
THREADS=2
TX=200
export PGPASSWORD=${SY_PG_PASSWORD:-app}
PGB=(pgbench -h "$SY_HOST" -p "$SY_PG_PORT" -U "${SY_PG_USER:-app}")

# bench NAME EXPECTED_TX ARGS...: run pgbench; check exit 0, every transaction
# processed and none failed.
bench() {
    local name=$1 want=$2
    shift 2
    capture "${PGB[@]}" -n "$@" "$SY_DB"
    if [ "$RC" -ne 0 ]; then
        fail "$name" "pgbench exit status $RC" "$ERR" "$OUT"
        return
    fi
    local processed failed tps
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\/[0-9]*\).*/\1/p' <<<"$OUT")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$OUT")
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$OUT")
    if [ "$processed" != "$want/$want" ]; then
        fail "$name" "processed [$processed], expected [$want/$want]" "$OUT" "$ERR"
    elif [ "$failed" != "0" ]; then
        fail "$name" "number of failed transactions: [$failed], expected 0" "$OUT" "$ERR"
    else
        pass "$name ($processed, tps $tps)"
    fi
}

capture "${PGB[@]}" -i -s 1 -q "$SY_DB"
if [ "$RC" -eq 0 ] && grep -q '^done in' <<<"$ERR$OUT"; then pass "init -s 1"; else
    fail "init -s 1" "pgbench -i exit status $RC" "$ERR" "$OUT"
    finish
fi
capture db_direct -c 'select count(*) from pgbench_accounts'
expect init_accounts_direct "100000"

total=$((CLIENTS * TX))
writes=0
for mode in simple extended prepared; do
    bench "tpcb_$mode" "$total" -M "$mode" -c "$CLIENTS" -j "$THREADS" -t "$TX"
    writes=$((writes + total))
done
for mode in simple extended prepared; do
    bench "select_only_$mode" "$total" -S -M "$mode" -c "$CLIENTS" -j "$THREADS" -t "$TX"
done
bench "select_only_reconnect_each_tx" $((CLIENTS * 50)) -S -C -M prepared -c "$CLIENTS" -j "$THREADS" -t 50

# Every TPC-B transaction adds the same delta to one account, teller and
# branch and logs it in pgbench_history, so all four sums agree.
capture db_direct -c 'select count(*) from pgbench_history'
expect history_rows_direct "$writes"
capture db_direct <<'SQL'
select (select sum(abalance) from pgbench_accounts) = (select coalesce(sum(delta), 0) from pgbench_history),
       (select sum(tbalance) from pgbench_tellers) = (select coalesce(sum(delta), 0) from pgbench_history),
       (select sum(bbalance) from pgbench_branches) = (select coalesce(sum(delta), 0) from pgbench_history);
SQL
expect balances_match_history_direct "t|t|t"
capture px_psql -c 'select count(*) from pgbench_history'
expect history_rows_via_proxy "$writes"

finish
