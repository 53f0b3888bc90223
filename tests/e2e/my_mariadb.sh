#!/usr/bin/env bash
# The mariadb command-line client through the proxy's MySQL listener: text
# protocol queries, transactions, multiple result sets, errors and warnings,
# bulk inserts, LOAD DATA LOCAL INFILE refusal, session variables, TLS, auth.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# ---- basics
capture px_my -e 'select 1'
expect connect "1"
capture px_my -e 'select database()'
expect current_database "$SY_DB"

capture px_my <<'SQL'
create table items (id int primary key, name varchar(50) not null, qty int not null default 0) engine=InnoDB;
insert into items values (1, 'one', 10), (2, 'two', 20), (3, 'three', 30);
select count(*), sum(qty) from items;
SQL
expect ddl_and_insert "3	60"
capture px_my -e 'select id, name, qty from items order by id'
expect select_rows "1	one	10
2	two	20
3	three	30"
capture px_my -e "select 'a', null, ''"
expect null_and_empty "a	NULL	"

# ---- transactions
capture px_my <<'SQL'
begin;
insert into items values (4, 'four', 40);
select count(*) from items;
rollback;
select count(*) from items;
SQL
expect transaction_rollback "4
3"
capture px_my <<'SQL'
start transaction;
update items set qty = qty + 1 where id = 1;
commit;
select qty from items where id = 1;
SQL
expect transaction_commit "11"
capture px_my <<'SQL'
begin;
insert into items values (5, 'five', 50);
savepoint s1;
insert into items values (6, 'six', 60);
rollback to savepoint s1;
commit;
select group_concat(id order by id) from items;
SQL
expect savepoint_rollback "1,2,3,5"
capture px_my <<'SQL'
create table ai (id int auto_increment primary key, v varchar(10));
insert into ai (v) values ('a'), ('b');
insert into ai (v) values ('c');
select last_insert_id(), row_count();
SQL
expect last_insert_id "3	1"

# ---- several statements in one COM_QUERY: several result sets
capture px_my <<'SQL'
delimiter //
select 1; select 2; select 'three'//
SQL
expect multi_result_sets "1
2
three"
capture px_my --force <<'SQL'
delimiter //
select 1; select * from nosuch; select 3//
delimiter ;
select 'after multi error';
SQL
if [ "$OUT" = "1
after multi error" ] && grep -qF "ERROR 1146 (42S02)" <<<"$ERR"; then pass multi_statement_error_stops; else
    fail multi_statement_error_stops "expected [1, after multi error] and ERROR 1146" "stdout: $OUT" "stderr: $ERR"
fi

# ---- errors and warnings, then more work on the same connection
capture px_my --force <<'SQL'
select * from nosuch;
select 'still alive';
insert into items values (1, 'dup', 0);
select count(*) from items;
SQL
expect error_then_query "still alive
4"
expect_in error_no_such_table "ERROR 1146 (42S02) at line 1: Table '$SY_DB.nosuch' doesn't exist" "$ERR"
expect_in error_duplicate_key "ERROR 1062 (23000) at line 3: Duplicate entry '1' for key 'PRIMARY'" "$ERR"
capture px_my <<'SQL'
select cast('abc' as signed);
show warnings;
SQL
expect warnings "0
Warning	1292	Truncated incorrect INTEGER value: 'abc'"

# ---- session state
capture px_my <<'SQL'
set @@session.sql_mode = 'ANSI_QUOTES';
select @@session.sql_mode;
set @v = 'user variable';
select @v;
SQL
expect session_variables "ANSI_QUOTES
user variable"
capture px_my --default-character-set=utf8mb4 <<'SQL'
create table uni (s varchar(20)) character set utf8mb4;
insert into uni values ('héllo ✓ 🚀');
select s, hex(s) from uni;
SQL
expect utf8mb4_roundtrip "héllo ✓ 🚀	68C3A96C6C6F20E29C9320F09F9A80"
capture px_my <<'SQL'
use information_schema;
select database();
SQL
expect use_database "information_schema"
capture px_my <<'SQL'
prepare s from 'select ? + 1';
set @a = 41;
execute s using @a;
deallocate prepare s;
SQL
expect sql_prepare_execute "42"

# ---- 10k rows in 10 multi-row INSERTs (~150 KB per COM_QUERY), read back
seq 1 10000 | awk '{ printf "%d\titem %d\t%d\n", $1, $1, $1 % 97 }' >rows.tsv
want_sum=$(awk -F'\t' '{ s += $3 } END { print s }' rows.tsv)
awk -F'\t' '(NR - 1) % 1000 == 0 { printf "%sinsert into big values ", (NR > 1 ? ";\n" : "") }
    { printf "%s(%d, '\''%s'\'', %d)", ((NR - 1) % 1000 ? ", " : ""), $1, $2, $3 }
    END { print ";" }' rows.tsv >inserts.sql
capture px_my -e 'create table big (id int primary key, name varchar(50), qty int)'
expect big_table ""
capture px_my <inserts.sql
expect bulk_inserts ""
capture px_my -e 'select count(*), sum(qty) from big'
expect bulk_insert_counts "10000	$want_sum"
capture my_db_direct -e 'select count(*), sum(qty) from big'
expect bulk_insert_counts_direct "10000	$want_sum"
capture px_my -e 'select id, name, qty from big order by id'
expect_eq select_10k_rows_identical "$(md5sum <rows.tsv | cut -d' ' -f1)" "$(printf '%s\n' "$OUT" | md5sum | cut -d' ' -f1)"

# ---- LOAD DATA LOCAL INFILE lets a server read files on the client's
# machine, so the proxy refuses it unless its config says
# `mysql: { allow_local_infile: true }` (the test config does not): a clean
# error, and the connection goes on.
capture px_my --local-infile=1 --force <<'SQL'
create table big2 (like big);
load data local infile 'rows.tsv' into table big2;
select 'alive after refused load', count(*) from big2;
SQL
expect load_data_local_refused_then_query "alive after refused load	0"
expect_in load_data_local_refused_code "ERROR 1148" "$ERR"
expect_in load_data_local_refused_names_setting "allow_local_infile" "$ERR"

# ---- large results
sql='select seq, md5(seq) from seq_1_to_100000'
capture px_my -e "$sql"
got=$(printf '%s\n' "$OUT" | md5sum | cut -d' ' -f1)
want=$(my_db_direct -e "$sql" | md5sum | cut -d' ' -f1)
[ "$RC" -eq 0 ] || fail large_result "mariadb failed" "$ERR"
expect_eq large_result_100k_rows "$want" "$got"
capture px_my -e "select repeat('x', 5000000)"
expect_eq large_row_5mb 5000000 "${#OUT}"

# ---- TLS
capture px_my --ssl --ssl-ca="$SY_TLS_CERT" -e status
if [ "$RC" -eq 0 ] && grep -q 'Cipher in use is' <<<"$OUT"; then pass tls; else
    fail tls "expected an SSL connection" "rc=$RC stdout: $OUT" "stderr: $ERR"
fi
capture px_my --ssl --ssl-ca="$SY_TLS_CERT" --ssl-verify-server-cert -e 'select 42'
expect tls_verify_server_cert "42"
capture px_my --skip-ssl -e status
if [ "$RC" -eq 0 ] && grep -q 'SSL:.*Not in use' <<<"$OUT"; then pass plaintext; else
    fail plaintext "expected a plaintext connection" "rc=$RC stdout: $OUT" "stderr: $ERR"
fi

# ---- authentication
MYSQL_PWD=wrong capture px_my -e 'select 1'
expect_status auth_wrong_password_fails 1
expect_in auth_wrong_password_message "ERROR 1045 (28000): Access denied for user 'app'" "$ERR"
MYSQL_PWD=app SY_MY_USER=sy_nobody capture px_my -e 'select 1'
expect_status auth_unknown_user_fails 1
expect_in auth_unknown_user_message "Access denied for user 'sy_nobody'" "$ERR"
capture px_my -e 'select 1'
expect still_serving_after_auth_failures "1"

finish
