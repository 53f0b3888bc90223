#!/usr/bin/env bash
# sysbench through the proxy's MySQL listener: prepare (DDL + bulk inserts),
# oltp_read_write and oltp_point_select with server-side prepared statements
# (--db-ps-mode=auto: COM_STMT_PREPARE/EXECUTE, binary protocol) and without
# (disable: text protocol), then cleanup. Short runs: a fixed event count.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TABLES=2
TABLE_SIZE=5000
EVENTS=${SY_SYSBENCH_EVENTS:-2000}
SB=(sysbench --db-driver=mysql --mysql-host="$SY_HOST" --mysql-port="$SY_MY_PORT"
    --mysql-user="${SY_MY_USER:-app}" --mysql-password="${SY_MY_PASSWORD-app}" --mysql-db="$SY_DB"
    --tables="$TABLES" --table-size="$TABLE_SIZE")

# sb NAME ARGS...: run sysbench; check exit 0 and, for `run`, that every event
# became a transaction. Ignored errors (InnoDB deadlocks that sysbench retries)
# are reported, not failed: they come from the server, not the proxy.
sb() {
    local name=$1
    shift
    capture timeout 180 "${SB[@]}" "$@"
    if [ "$RC" -ne 0 ]; then
        fail "$name" "sysbench exit status $RC" "$(tail -n 20 <<<"$ERR")" "$(tail -n 30 <<<"$OUT")"
        return
    fi
    if [ "${*: -1}" != run ]; then
        pass "$name"
        return
    fi
    local tx ignored reconnects tps
    tx=$(sed -n 's/^ *transactions: *\([0-9]*\).*/\1/p' <<<"$OUT")
    tps=$(sed -n 's/^ *transactions: *[0-9]* *(\([0-9.]*\) per sec.).*/\1/p' <<<"$OUT")
    ignored=$(sed -n 's/^ *ignored errors: *\([0-9]*\).*/\1/p' <<<"$OUT")
    reconnects=$(sed -n 's/^ *reconnects: *\([0-9]*\).*/\1/p' <<<"$OUT")
    if [ "$tx" != "$EVENTS" ]; then
        fail "$name" "transactions [$tx], expected [$EVENTS]" "$OUT"
    elif [ "$reconnects" != 0 ]; then
        fail "$name" "reconnects [$reconnects], expected 0" "$OUT"
    else
        pass "$name ($tx transactions, $tps tps, ignored errors $ignored)"
    fi
}

sb prepare oltp_read_write prepare
capture my_db_direct -e "select count(*) from sbtest1; select count(*) from sbtest$TABLES"
expect prepare_rows_direct "$TABLE_SIZE
$TABLE_SIZE"

for mode in auto disable; do
    sb "oltp_read_write_ps_$mode" oltp_read_write --threads=4 --events="$EVENTS" --time=120 --db-ps-mode="$mode" run
    sb "oltp_point_select_ps_$mode" oltp_point_select --threads=4 --events="$EVENTS" --time=120 --db-ps-mode="$mode" run
done

# oltp_read_write deletes and re-inserts the same ids: table sizes are unchanged.
capture my_db_direct -e "select count(*) from sbtest1; select count(*) from sbtest$TABLES"
expect rows_unchanged_direct "$TABLE_SIZE
$TABLE_SIZE"

sb cleanup oltp_read_write cleanup
capture my_db_direct -e "select count(*) from information_schema.tables where table_schema = database() and table_name like 'sbtest%'"
expect cleanup_dropped_tables "0"

finish
