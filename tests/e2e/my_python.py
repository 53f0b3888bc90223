#!/usr/bin/env python3
"""PyMySQL through the proxy's MySQL listener.

PyMySQL speaks the text protocol (parameters are interpolated client-side),
so this covers COM_QUERY result sets and OK/ERR packets, multi-statements,
LOAD DATA LOCAL INFILE, COM_INIT_DB, COM_PING, unbuffered large results,
KILL QUERY by the connection id the proxy handed out, TLS and auth.

Run through tests/e2e/run.sh (which sets SY_*), or by hand:
    .venv/bin/pytest -q tests/e2e/my_python.py
"""

import datetime as dt
import ssl
import threading
import time
from decimal import Decimal

import pymysql
import pymysql.cursors
import pytest
from pymysql.constants import CLIENT

from conftest import DB, HOST, MY_PASSWORD, MY_PORT, MY_USER, TLS_CERT, proxy_only


def connect(**overrides):
    params = dict(
        host=HOST,
        port=MY_PORT,
        user=MY_USER,
        password=MY_PASSWORD,
        database=DB,
        charset="utf8mb4",
        connect_timeout=10,
        read_timeout=60,
        autocommit=False,
    )
    params.update(overrides)
    return pymysql.connect(**params)


@pytest.fixture
def conn():
    c = connect()
    yield c
    c.close()


def one(c, sql, args=None):
    with c.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def test_simple_query(conn):
    assert one(conn, "select 1, 'two', null") == (1, "two", None)
    assert one(conn, "select database()") == (DB,)


def test_types_roundtrip(conn, unique):
    t = f"types_{unique}"
    with conn.cursor() as cur:
        cur.execute(
            f"create table {t} (i bigint, d decimal(10,4), s varchar(50), b varbinary(10), ts datetime(6), j json, n int)"
        )
        when = dt.datetime(2024, 2, 29, 12, 34, 56, 789000)
        row = (2**40, Decimal("12345.6789"), "héllo ✓ 🚀", b"\x00\x01\xfe\xff", when, '{"a": [1, null]}', None)
        cur.execute(f"insert into {t} values (%s, %s, %s, %s, %s, %s, %s)", row)
        cur.execute(f"select i, d, s, b, ts, j, n from {t}")
        got = cur.fetchone()
    conn.commit()
    assert got[:5] == row[:5]
    assert got[5].replace(" ", "") == '{"a":[1,null]}'
    assert got[6] is None


def test_executemany_and_rowcount(conn, unique):
    t = f"em_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"create table {t} (id int primary key, v varchar(20))")
        n = cur.executemany(f"insert into {t} (id, v) values (%s, %s)", [(i, f"v{i}") for i in range(2000)])
        assert n == 2000
        cur.execute(f"update {t} set v = 'x' where id < 10")
        assert cur.rowcount == 10
    conn.commit()
    assert one(conn, f"select count(*), max(id) from {t}") == (2000, 1999)


def test_last_insert_id(conn, unique):
    t = f"ai_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"create table {t} (id int auto_increment primary key, v varchar(10))")
        cur.execute(f"insert into {t} (v) values ('a'), ('b')")
        assert cur.lastrowid == 1  # first id of a multi-row insert
        cur.execute(f"insert into {t} (v) values ('c')")
        assert cur.lastrowid == 3
    conn.commit()


def test_transactions(unique):
    t = f"tx_{unique}"
    c = connect()
    try:
        with c.cursor() as cur:
            cur.execute(f"create table {t} (id int primary key) engine=InnoDB")
            cur.execute(f"insert into {t} values (1)")
            c.rollback()
            cur.execute(f"insert into {t} values (2)")
            c.commit()
            c.begin()
            cur.execute(f"insert into {t} values (3)")
            cur.execute("savepoint s1")
            cur.execute(f"insert into {t} values (4)")
            cur.execute("rollback to savepoint s1")
            c.commit()
        other = connect()
        assert one(other, f"select group_concat(id order by id) from {t}") == ("2,3",)
        other.close()
    finally:
        c.close()


def test_multi_statements(unique):
    c = connect(client_flag=CLIENT.MULTI_STATEMENTS, autocommit=True)
    try:
        with c.cursor() as cur:
            cur.execute(f"create table ms_{unique} (id int); insert into ms_{unique} values (1), (2); select sum(id) from ms_{unique}; select 'last'")
            results = []
            while True:
                if cur.description:
                    results.append(cur.fetchall())
                if not cur.nextset():
                    break
            assert results == [((3,),), (("last",),)]
            assert one(c, "select 'after multi'") == ("after multi",)
    finally:
        c.close()


def test_duplicate_key_then_connection_works(conn, unique):
    t = f"dk_{unique}"
    with conn.cursor() as cur:
        cur.execute(f"create table {t} (id int primary key)")
        cur.execute(f"insert into {t} values (1)")
        conn.commit()
        with pytest.raises(pymysql.err.IntegrityError) as info:
            cur.execute(f"insert into {t} values (1)")
        assert info.value.args[0] == 1062
        conn.rollback()
        with pytest.raises(pymysql.err.ProgrammingError) as info:
            cur.execute("select * from no_such_table")
        assert info.value.args[0] == 1146
        cur.execute(f"select count(*) from {t}")
        assert cur.fetchone() == (1,)


def test_warnings(conn):
    with conn.cursor() as cur:
        cur.execute("select cast('abc' as signed)")
        assert cur.fetchone() == (0,)
        assert cur.warning_count == 1
        cur.execute("show warnings")
        assert cur.fetchall() == (("Warning", 1292, "Truncated incorrect INTEGER value: 'abc'"),)


def test_large_unbuffered_result():
    c = connect(cursorclass=pymysql.cursors.SSCursor)
    try:
        with c.cursor() as cur:
            cur.execute("select seq, md5(seq) from seq_1_to_200000")
            n = total = 0
            for row in cur:
                n += 1
                total += row[0]
            assert (n, total) == (200000, 200000 * 200001 // 2)
        assert one(c, "select 'after big'") == ("after big",)
    finally:
        c.close()


def test_large_value(conn):
    assert one(conn, "select length(%s)", ("x" * 4_000_000,)) == (4_000_000,)
    assert len(one(conn, "select repeat('y', 5000000)")[0]) == 5_000_000


def test_load_data_local_infile_refused_by_default(tmp_path, unique):
    # It lets a server read files on the client's machine: the proxy refuses
    # it unless `mysql: { allow_local_infile: true }` (not in the test config).
    t = f"ld_{unique}"
    path = tmp_path / "rows.tsv"
    path.write_text("".join(f"{i}\tname {i}\n" for i in range(10000)))
    c = connect(local_infile=True, autocommit=True)
    try:
        with c.cursor() as cur:
            cur.execute(f"create table {t} (id int primary key, name varchar(30))")
            with pytest.raises(pymysql.err.OperationalError) as info:
                cur.execute(f"load data local infile %s into table {t}", (str(path),))
            assert info.value.args[0] == 1148, info.value
            assert "allow_local_infile" in info.value.args[1]
            cur.execute(f"select count(*) from {t}")
            assert cur.fetchone() == (0,)
    finally:
        c.close()


def test_init_db_and_ping(conn):
    conn.select_db("information_schema")
    assert one(conn, "select database()") == ("information_schema",)
    conn.select_db(DB)
    conn.ping(reconnect=False)
    assert one(conn, "select database()") == (DB,)


def test_session_variables(conn):
    with conn.cursor() as cur:
        cur.execute("set @@session.sql_mode = 'ANSI_QUOTES'")
        cur.execute("set @v = 'user variable'")
        cur.execute("select @@session.sql_mode, @v")
        assert cur.fetchone() == ("ANSI_QUOTES", "user variable")


def kill_query_interrupts(id_of):
    """KILL QUERY <id_of(victim)> from a second connection stops a SLEEP(30)."""
    victim = connect(autocommit=True)
    killer = connect(autocommit=True)
    try:
        tid = id_of(victim)
        assert one(victim, "select 1") == (1,)

        def later():
            time.sleep(1)
            with killer.cursor() as cur:
                cur.execute(f"KILL QUERY {tid}")

        t = threading.Thread(target=later)
        t.start()
        t0 = time.monotonic()
        try:
            result = one(victim, "select sleep(30)")
            assert result == (1,), result  # MySQL: SLEEP() returns 1 when interrupted
        except pymysql.err.OperationalError as e:
            assert e.args[0] == 1317, e  # MariaDB: "Query execution was interrupted"
        finally:
            t.join()
        elapsed = time.monotonic() - t0
        assert elapsed < 10, f"KILL QUERY took {elapsed:.1f}s"
        assert one(victim, "select 'after kill'") == ("after kill",)
    finally:
        victim.close()
        killer.close()


def test_kill_query_by_handshake_connection_id():
    # Clients cancel with `KILL QUERY <id>` on a second connection, where id
    # is what the handshake said (mariadb's Ctrl-C does exactly this).
    kill_query_interrupts(lambda c: c.thread_id())


def test_kill_query_by_server_connection_id():
    # Through the proxy CONNECTION_ID() is the server's thread id, which
    # differs from the handshake's; killing by it must work too.
    kill_query_interrupts(lambda c: one(c, "select connection_id()")[0])


@proxy_only
def test_tls():
    ctx = ssl.create_default_context(cafile=TLS_CERT)
    c = connect(ssl=ctx)
    try:
        assert c._sock.version() in ("TLSv1.2", "TLSv1.3")
        assert one(c, "select 'over tls'") == ("over tls",)
    finally:
        c.close()


@proxy_only
def test_wrong_password():
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(password="wrong")
    assert info.value.args[0] == 1045, info.value
    assert "Access denied for user 'app'" in info.value.args[1]


@proxy_only
def test_unknown_user():
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(user="sy_nobody", password="app")
    assert info.value.args[0] == 1045, info.value
    assert "sy_nobody" in info.value.args[1]


@proxy_only
def test_empty_password_rejected_for_app():
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(password="")
    assert info.value.args[0] == 1045, info.value


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
