#!/usr/bin/env bash
# psql through the proxy's PostgreSQL listener: simple-query protocol, COPY
# both ways, transactions, errors, notices, parameters, TLS and the three auth
# methods. Every check compares exact text.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# ---- basics
capture px_psql -c 'select 1'
expect connect "1"
capture px_psql -c 'select current_database()'
expect current_database "$SY_DB"

capture px_psql <<'SQL'
create table items (id int primary key, name text not null, qty int not null default 0);
insert into items values (1, 'one', 10), (2, 'two', 20), (3, 'three', 30);
select count(*), sum(qty) from items;
SQL
expect ddl_and_insert "3|60"

capture px_psql <<'SQL'
select id, name, qty from items order by id;
SQL
expect select_rows "1|one|10
2|two|20
3|three|30"

# ---- transactions
capture px_psql <<'SQL'
begin;
insert into items values (4, 'four', 40);
select count(*) from items;
rollback;
select count(*) from items;
SQL
expect transaction_rollback "4
3"

capture px_psql <<'SQL'
begin;
update items set qty = qty + 1 where id = 1;
commit;
select qty from items where id = 1;
SQL
expect transaction_commit "11"

capture px_psql <<'SQL'
begin;
insert into items values (5, 'five', 50);
savepoint s1;
insert into items values (6, 'six', 60);
rollback to savepoint s1;
commit;
select string_agg(id::text, ',' order by id) from items;
SQL
expect savepoint_rollback "1,2,3,5"

# ---- multi-statement simple queries (one Query message with several statements)
capture px_psql -c 'select 1; select 2'
expect multi_statement_selects "1
2"
capture px_psql -c "insert into items values (7, 'seven', 70); update items set qty = qty + 1 where id = 7; select qty from items where id = 7"
expect multi_statement_dml "71"
capture px_psql -c 'select 1; select 1/0; select 3'
if [ "$RC" -ne 0 ] && [ "$OUT" = "1" ] && grep -qF 'ERROR:  division by zero' <<<"$ERR"; then
    pass multi_statement_error_stops
else
    fail multi_statement_error_stops "expected exit!=0, stdout [1] and 'division by zero'" "rc=$RC stdout=[$OUT]" "stderr: $ERR"
fi

# ---- an error, then more work on the same connection
capture px_psql -v ON_ERROR_STOP=0 <<'SQL'
select 1/0;
select 'still alive';
begin;
select nosuchcolumn from items;
select 1;
rollback;
select 'after rollback';
SQL
expect error_then_query "still alive
after rollback"
expect_in error_division_by_zero 'ERROR:  division by zero' "$ERR"
expect_in error_undefined_column 'ERROR:  column "nosuchcolumn" does not exist' "$ERR"
expect_in error_aborted_transaction 'ERROR:  current transaction is aborted, commands ignored until end of transaction block' "$ERR"

capture px_psql -v ON_ERROR_STOP=0 <<'SQL'
insert into items values (1, 'dup', 0);
select count(*) from items;
SQL
expect duplicate_key_then_query "5"
expect_in duplicate_key_error 'ERROR:  duplicate key value violates unique constraint "items_pkey"' "$ERR"

# ---- COPY: 10k rows in and out
seq 1 10000 | awk '{ printf "%d\titem %d\t%d\n", $1, $1, $1 % 97 }' >copy_in.tsv
want_sum=$(awk -F'\t' '{ s += $3 } END { print s }' copy_in.tsv)
capture px_psql -c 'create table big (id int primary key, name text, qty int)'
expect copy_table "";
capture px_psql -c "\\copy big from 'copy_in.tsv'"
expect copy_from_stdin ""
capture px_psql -c 'select count(*), sum(qty) from big'
expect copy_from_counts "10000|$want_sum"
capture db_direct -c 'select count(*), sum(qty) from big'
expect copy_from_counts_direct "10000|$want_sum"
capture px_psql -c "\\copy (select * from big order by id) to 'copy_out.tsv'"
expect copy_to_stdout ""
if cmp -s copy_in.tsv copy_out.tsv; then pass copy_roundtrip_identical; else
    fail copy_roundtrip_identical "copy_out.tsv differs from copy_in.tsv" "$(wc -l copy_in.tsv copy_out.tsv)" "$(cmp copy_in.tsv copy_out.tsv 2>&1)"
fi
capture px_psql -c 'copy (select * from big order by id) to stdout'
expect_eq copy_to_stdout_md5 "$(md5sum <copy_in.tsv | cut -d' ' -f1)" "$(printf '%s\n' "$OUT" | md5sum | cut -d' ' -f1)"
capture px_psql -c "\\copy big to 'copy_out.csv' with (format csv, header)"
expect copy_csv_out ""
capture px_psql -c 'create table big2 (like big)' -c "\\copy big2 from 'copy_out.csv' with (format csv, header)" -c 'select count(*), sum(qty) from big2'
expect copy_csv_in "10000|$want_sum"

# A COPY that fails half-way (bad row 5000) leaves the connection usable.
awk -F'\t' 'NR == 5000 { $3 = "oops" } { OFS = "\t"; print }' copy_in.tsv >copy_bad.tsv
capture px_psql -v ON_ERROR_STOP=0 <<'SQL'
create table big3 (like big);
\copy big3 from 'copy_bad.tsv'
select 'alive after copy error', count(*) from big3;
SQL
expect copy_error_then_query "alive after copy error|0"
expect_in copy_error_message 'invalid input syntax for type integer: "oops"' "$ERR"

# ---- notices, warnings
capture px_psql -c "DO \$\$BEGIN RAISE NOTICE 'hello'; END\$\$"
expect notice_no_stdout ""
expect_in notice_hello 'NOTICE:  hello' "$ERR"
capture px_psql -c "DO \$\$BEGIN RAISE WARNING 'careful'; END\$\$"
expect_in warning_careful 'WARNING:  careful' "$ERR"

# ---- session parameters
capture px_psql <<'SQL'
SET application_name = 'sy_e2e_app';
SHOW application_name;
SQL
expect set_application_name "sy_e2e_app"
capture px_psql application_name=sy_startup_app -- -c 'show application_name'
expect startup_application_name "sy_startup_app"
capture px_psql options='-c\ statement_timeout=1234' -- -c 'show statement_timeout'
expect startup_options "1234ms"
capture px_psql <<'SQL'
SET TimeZone = 'Asia/Kathmandu';
select to_char(timestamptz '2024-01-01 00:00:00+00', 'YYYY-MM-DD HH24:MI TZH:TZM');
SQL
expect set_timezone "2024-01-01 05:45 +05:45"
capture px_psql <<'SQL'
create temp table scratch_t (x int);
insert into scratch_t values (1), (2);
select sum(x) from scratch_t;
SQL
expect temp_table_in_session "3"

# ---- SQL-level prepared statements and psql's extended-protocol \gdesc
capture px_psql <<'SQL'
prepare add_one(int) as select $1 + 1;
execute add_one(41);
deallocate add_one;
SQL
expect sql_prepare_execute "42"
capture px_psql <<'SQL'
select 1 as a, 'x'::text as b \gdesc
SQL
expect gdesc_extended_describe "a|integer
b|text"

# ---- large results
sql='select i, md5(i::text) from generate_series(1, 100000) i'
capture px_psql -c "$sql"
got=$(printf '%s\n' "$OUT" | md5sum | cut -d' ' -f1)
want=$(db_direct -c "$sql" | md5sum | cut -d' ' -f1)
[ "$RC" -eq 0 ] || fail large_result "psql failed" "$ERR"
expect_eq large_result_100k_rows "$want" "$got"
capture px_psql -c "select repeat('x', 5000000)"
expect_eq large_datarow_5mb 5000000 "${#OUT}"

# ---- TLS
capture px_psql sslmode=require -- -c '\conninfo'
if [ "$RC" -eq 0 ] && grep -q 'SSL connection (protocol: TLS' <<<"$OUT"; then pass tls_require; else
    fail tls_require "expected an SSL connection" "rc=$RC stdout: $OUT" "stderr: $ERR"
fi
capture px_psql sslmode=verify-full "sslrootcert=$SY_TLS_CERT" host=localhost -- -c 'select 42'
expect tls_verify_full "42"
capture px_psql sslmode=disable -- -c '\conninfo'
if [ "$RC" -eq 0 ] && ! grep -q 'SSL connection' <<<"$OUT"; then pass tls_disable_plaintext; else
    fail tls_disable_plaintext "expected a plaintext connection" "rc=$RC stdout: $OUT" "stderr: $ERR"
fi

# ---- authentication
capture px_psql user=app_md5 -- -c 'select 1'
expect auth_md5_user "1"
PGPASSWORD='' capture px_psql user=app_trust -- -c 'select 1'
expect auth_trust_user "1"
PGPASSWORD=wrong capture px_psql -c 'select 1'
expect_status auth_wrong_password_fails 2
expect_in auth_wrong_password_message 'password authentication failed for user "app"' "$ERR"
PGPASSWORD=wrong capture px_psql user=app_md5 -- -c 'select 1'
expect_in auth_md5_wrong_password_message 'password authentication failed for user "app_md5"' "$ERR"
PGPASSWORD=app capture px_psql user=sy_nobody -- -c 'select 1'
expect_status auth_unknown_user_fails 2
if grep -qE 'sy_nobody' <<<"$ERR" && grep -qE 'password authentication failed|does not exist|not known|not allowed|unknown' <<<"$ERR"; then
    pass auth_unknown_user_message
else
    fail auth_unknown_user_message "expected an error naming user sy_nobody" "stderr: $ERR"
fi
capture px_psql -c 'select 1'
expect still_serving_after_auth_failures "1"

finish
