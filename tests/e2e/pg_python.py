#!/usr/bin/env python3
"""psycopg 3 through the proxy's PostgreSQL listener.

Covers what drivers lean on: the extended protocol with parameters, named
prepared statements, pipeline mode, COPY, transactions, LISTEN/NOTIFY, query
cancellation, errors, ParameterStatus, TLS and the proxy's three auth methods
(checked also at the wire level, for the SQLSTATE).

Run through tests/e2e/run.sh (which sets SY_*), or by hand:
    .venv/bin/pytest -q tests/e2e/pg_python.py
"""

import base64
import datetime as dt
import hashlib
import hmac
import os
import socket
import struct
import threading
import time
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors, pq
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from conftest import DB, HOST, PG_PASSWORD, PG_PORT, PG_USER, TLS_CERT, proxy_only


def conninfo(**overrides):
    params = dict(
        host=HOST,
        port=PG_PORT,
        user=PG_USER,
        password=PG_PASSWORD,
        dbname=DB,
        sslmode="disable",
        connect_timeout=10,
    )
    params.update(overrides)
    return make_conninfo(**params)


def connect(**overrides):
    autocommit = overrides.pop("autocommit", False)
    prepare_threshold = overrides.pop("prepare_threshold", 5)
    return psycopg.connect(conninfo(**overrides), autocommit=autocommit, prepare_threshold=prepare_threshold)


@pytest.fixture
def conn():
    with connect() as c:
        yield c


@pytest.fixture
def aconn():
    """An autocommit connection."""
    with connect(autocommit=True) as c:
        yield c


# ------------------------------------------------------------------ queries


def test_simple_query(aconn):
    cur = aconn.cursor()
    cur.execute("select 1, 'two'")
    assert cur.fetchone() == (1, "two")
    # No parameters: psycopg sends a simple Query, so several statements work.
    cur.execute("select 1; select 2")
    assert cur.fetchall() == [(1,)]
    assert cur.nextset()
    assert cur.fetchall() == [(2,)]


def test_empty_query(aconn):
    cur = aconn.execute("-- nothing to do")
    assert cur.pgresult.status == pq.ExecStatus.EMPTY_QUERY
    assert aconn.execute("select 'after empty'").fetchone() == ("after empty",)


def test_server_side_parameters_text_and_binary(aconn):
    when = dt.datetime(2024, 2, 29, 12, 34, 56, 789000, tzinfo=dt.timezone.utc)
    params = (1, 2, "héllo ✓ wörld", b"\x00\x01\xfe\xff", Decimal("12345.6789"), Jsonb({"a": [1, None, "x"]}), when, None)
    query = "select %s::int + %s::int, %s::text, %s::bytea, %s::numeric, %s::jsonb, %s::timestamptz, %s::text is null"
    want = (3, "héllo ✓ wörld", b"\x00\x01\xfe\xff", Decimal("12345.6789"), {"a": [1, None, "x"]}, when, True)
    for binary in (False, True):
        cur = aconn.cursor(binary=binary)
        cur.execute(query, params)
        assert cur.fetchone() == want, f"binary={binary}"


def test_command_tags_and_rowcount(aconn, unique):
    t = f"tags_{unique}"
    cur = aconn.cursor()
    cur.execute(f"create table {t} (id int primary key, v text)")
    assert cur.statusmessage == "CREATE TABLE"
    cur.execute(f"insert into {t} values (%s, %s), (%s, %s)", (1, "a", 2, "b"))
    assert (cur.statusmessage, cur.rowcount) == ("INSERT 0 2", 2)
    cur.execute(f"update {t} set v = %s where id > %s", ("z", 0))
    assert (cur.statusmessage, cur.rowcount) == ("UPDATE 2", 2)
    cur.execute(f"delete from {t} where id = %s returning v", (1,))
    assert (cur.statusmessage, cur.fetchall()) == ("DELETE 1", [("z",)])


def test_prepared_statements_many_executions(unique):
    with connect(autocommit=True) as c:
        c.execute(f"create table prep_{unique} (id int primary key, v int)")
        for i in range(200):
            c.execute(f"insert into prep_{unique} values (%s, %s)", (i, i * 2), prepare=True)
        for i in range(0, 200, 7):
            assert c.execute(f"select v from prep_{unique} where id = %s", (i,), prepare=True).fetchone() == (i * 2,)
        assert c.execute(f"select count(*), sum(v) from prep_{unique}").fetchone() == (200, 39800)


def test_prepare_threshold_zero_prepares_everything(unique):
    # Every statement, even with no parameters, becomes a named server-side
    # prepared statement, re-used across transactions and after an error.
    with connect(prepare_threshold=0) as c:
        for i in range(50):
            assert c.execute("select %s::int * 3", (i,)).fetchone() == (i * 3,)
        with pytest.raises(errors.DivisionByZero):
            c.execute("select 1 / %s::int", (0,))
        c.rollback()
        for i in range(50):
            assert c.execute("select %s::int * 3", (i,)).fetchone() == (i * 3,)
        c.commit()


def test_executemany(aconn, unique):
    t = f"em_{unique}"
    aconn.execute(f"create table {t} (id int primary key, v text)")
    cur = aconn.cursor()
    cur.executemany(f"insert into {t} (id, v) values (%s, %s)", [(i, f"v{i}") for i in range(1000)])
    assert aconn.execute(f"select count(*), min(v), max(id) from {t}").fetchone() == (1000, "v0", 999)
    cur.executemany(f"update {t} set v = %s where id = %s returning id", [("x", 1), ("y", 2)], returning=True)
    got = []
    while True:
        got.extend(cur.fetchall())
        if not cur.nextset():
            break
    assert got == [(1,), (2,)]


def test_pipeline_mode(aconn, unique):
    t = f"pl_{unique}"
    aconn.execute(f"create table {t} (id int primary key)")
    with aconn.pipeline():
        for i in range(300):
            aconn.execute(f"insert into {t} values (%s)", (i,))
        cur = aconn.execute(f"select count(*) from {t}")
    assert cur.fetchone() == (300,)


def test_pipeline_error_then_connection_works(aconn, unique):
    t = f"ple_{unique}"
    aconn.execute(f"create table {t} (id int primary key)")
    aconn.execute(f"insert into {t} values (1)")
    with pytest.raises(errors.UniqueViolation):
        with aconn.pipeline():
            aconn.execute(f"insert into {t} values (%s)", (2,))
            aconn.execute(f"insert into {t} values (%s)", (1,))
            aconn.execute(f"insert into {t} values (%s)", (3,))
    # One Sync closes the pipeline: its statements form one implicit
    # transaction, so the error rolled back the insert of 2 as well.
    assert aconn.execute(f"select array_agg(id order by id) from {t}").fetchone() == ([1],)
    assert aconn.execute("select 'pipeline recovered'").fetchone() == ("pipeline recovered",)


def test_large_result_and_server_side_cursor(conn):
    cur = conn.execute("select i, md5(i::text) from generate_series(1, 200000) i")
    rows = cur.fetchall()
    assert len(rows) == 200000
    assert rows[-1] == (200000, hashlib.md5(b"200000").hexdigest())
    with conn.cursor(name="sy_big") as named:  # DECLARE / FETCH under the hood
        named.itersize = 1000
        named.execute("select i from generate_series(1, 50000) i")
        assert sum(r[0] for r in named) == 50000 * 50001 // 2
    conn.commit()


# ------------------------------------------------------------------ COPY


def test_copy_in_and_out(aconn, unique):
    t = f"cp_{unique}"
    aconn.execute(f"create table {t} (id int primary key, name text, qty int)")
    cur = aconn.cursor()
    with cur.copy(f"copy {t} (id, name, qty) from stdin") as copy:
        for i in range(10000):
            copy.write_row((i, f"name\t{i}", i % 13))
    assert cur.rowcount == 10000
    assert aconn.execute(f"select count(*), sum(qty) from {t}").fetchone() == (10000, sum(i % 13 for i in range(10000)))
    with cur.copy(f"copy (select id, name, qty from {t} order by id) to stdout") as copy:
        copy.set_types(["int4", "text", "int4"])
        rows = list(copy.rows())
    assert rows == [(i, f"name\t{i}", i % 13) for i in range(10000)]


def test_copy_binary(aconn, unique):
    t = f"cpb_{unique}"
    aconn.execute(f"create table {t} (id int, data bytea, at timestamptz)")
    when = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cur = aconn.cursor()
    with cur.copy(f"copy {t} from stdin (format binary)") as copy:
        copy.set_types(["int4", "bytea", "timestamptz"])
        for i in range(2000):
            copy.write_row((i, bytes([i % 256]) * 100, when))
    with cur.copy(f"copy (select * from {t} order by id) to stdout (format binary)") as copy:
        copy.set_types(["int4", "bytea", "timestamptz"])
        rows = list(copy.rows())
    assert len(rows) == 2000
    assert rows[257] == (257, bytes([1]) * 100, when)


def test_copy_error_then_connection_works(aconn, unique):
    t = f"cpe_{unique}"
    aconn.execute(f"create table {t} (id int primary key)")
    cur = aconn.cursor()
    with pytest.raises(errors.UniqueViolation):
        with cur.copy(f"copy {t} from stdin") as copy:
            for i in list(range(100)) + [5]:
                copy.write_row((i,))
    assert aconn.execute(f"select count(*) from {t}").fetchone() == (0,)
    # An exception inside the block makes psycopg send CopyFail; the server
    # answers with an error and psycopg re-raises the original exception.
    with pytest.raises(RuntimeError):
        with cur.copy(f"copy {t} from stdin") as copy:
            copy.write_row((1,))
            raise RuntimeError("client gives up")
    assert aconn.execute("select 'copy recovered'").fetchone() == ("copy recovered",)


# ------------------------------------------------------------------ transactions


def test_transactions_commit_and_rollback(unique):
    t = f"tx_{unique}"
    with connect() as c:
        c.execute(f"create table {t} (id int primary key)")
        c.commit()
        c.execute(f"insert into {t} values (1)")
        assert c.info.transaction_status == pq.TransactionStatus.INTRANS
        c.rollback()
        assert c.info.transaction_status == pq.TransactionStatus.IDLE
        c.execute(f"insert into {t} values (2)")
        c.commit()
        with c.transaction():
            c.execute(f"insert into {t} values (3)")
            with pytest.raises(errors.UniqueViolation):
                with c.transaction():  # a savepoint
                    c.execute(f"insert into {t} values (2)")
            c.execute(f"insert into {t} values (4)")
        c.commit()
    with connect() as other:
        assert other.execute(f"select array_agg(id order by id) from {t}").fetchone() == ([2, 3, 4],)


def test_failed_transaction_status(conn):
    with pytest.raises(errors.DivisionByZero):
        conn.execute("select 1/0")
    assert conn.info.transaction_status == pq.TransactionStatus.INERROR
    with pytest.raises(errors.InFailedSqlTransaction):
        conn.execute("select 1")
    conn.rollback()
    assert conn.execute("select 1").fetchone() == (1,)


def test_duplicate_key_then_connection_works(aconn, unique):
    t = f"dk_{unique}"
    aconn.execute(f"create table {t} (id int primary key)")
    aconn.execute(f"insert into {t} values (%s)", (1,))
    with pytest.raises(errors.UniqueViolation) as info:
        aconn.execute(f"insert into {t} values (%s)", (1,))
    assert info.value.sqlstate == "23505"
    assert info.value.diag.constraint_name == f"{t}_pkey"
    with pytest.raises(errors.UniqueViolation):
        aconn.execute(f"insert into {t} values (1)")  # simple protocol too
    assert aconn.execute(f"select count(*) from {t}").fetchone() == (1,)


# ------------------------------------------------------------------ async messages


def test_listen_notify_across_connections():
    with connect(autocommit=True) as listener, connect(autocommit=True) as notifier:
        listener.execute("listen sy_chan")
        notifier.execute("notify sy_chan, 'hello'")
        got = list(listener.notifies(timeout=5, stop_after=1))
        assert [(n.channel, n.payload) for n in got] == [("sy_chan", "hello")]
        # A notification that arrives while the listener is idle is delivered
        # with its next query's response.
        seen = []
        listener.add_notify_handler(lambda n: seen.append(n.payload))
        notifier.execute("select pg_notify('sy_chan', 'while idle')")
        time.sleep(0.5)
        listener.execute("select 1")
        assert seen == ["while idle"]


def test_notice_delivered(aconn):
    notices = []
    aconn.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary)))
    aconn.execute("DO $$BEGIN RAISE NOTICE 'hello'; END$$")
    assert notices == [("NOTICE", "hello")]


def test_parameter_status_follows_set(aconn):
    assert aconn.info.parameter_status("server_version")
    assert aconn.info.encoding == "utf-8"
    aconn.execute("set timezone to 'Asia/Tokyo'")
    assert str(aconn.info.timezone) == "Asia/Tokyo"
    aconn.execute("set application_name to 'sy_py'")
    assert aconn.info.parameter_status("application_name") == "sy_py"
    assert aconn.execute("show application_name").fetchone() == ("sy_py",)


def test_backend_key_data_present(aconn):
    assert aconn.info.backend_pid != 0


# ------------------------------------------------------------------ cancel


@pytest.mark.parametrize("sslmode", ["disable", pytest.param("require", marks=proxy_only)])
@pytest.mark.parametrize("method", ["cancel", "cancel_safe"])
def test_cancel_long_query(sslmode, method):
    with connect(autocommit=True, sslmode=sslmode) as c:
        cancel_errors = []

        def later():
            time.sleep(1)
            try:
                getattr(c, method)()
            except Exception as e:  # the cancel request itself failed
                cancel_errors.append(e)

        t = threading.Thread(target=later)
        t.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(errors.QueryCanceled):
                c.execute("select pg_sleep(30)")
        finally:
            t.join()
        elapsed = time.monotonic() - t0
        assert not cancel_errors, f"conn.{method}() raised: {cancel_errors[0]!r}"
        assert elapsed < 10, f"cancel took {elapsed:.1f}s"
        assert c.execute("select 'after cancel'").fetchone() == ("after cancel",)


def test_cancel_does_not_hit_other_sessions():
    with connect(autocommit=True) as a, connect(autocommit=True) as b:
        result = {}

        def run_b():
            result["b"] = b.execute("select pg_sleep(2), 'b done'").fetchone()[1]

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(0.5)
        a.cancel()  # a is idle: nothing to cancel, and b must not be hit
        t.join()
        assert result.get("b") == "b done"


# ------------------------------------------------------------------ TLS


@proxy_only
def test_tls_require():
    with connect(sslmode="require") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 'over tls'").fetchone() == ("over tls",)


@proxy_only
def test_tls_verify_full():
    with connect(sslmode="verify-full", sslrootcert=TLS_CERT, host="localhost") as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("select 1").fetchone() == (1,)


def test_sslmode_disable_is_plaintext():
    with connect(sslmode="disable") as c:
        assert not c.pgconn.ssl_in_use


# ------------------------------------------------------------------ auth


@proxy_only
def test_wrong_password():
    with pytest.raises(psycopg.OperationalError) as info:
        connect(password="wrong")
    assert 'password authentication failed for user "app"' in str(info.value)


@proxy_only
def test_wrong_password_sqlstate_scram():
    fields = raw_login("app", "wrong")
    assert fields.get("C") == "28P01", fields
    assert fields.get("S") == "FATAL", fields


@proxy_only
def test_wrong_password_sqlstate_md5():
    fields = raw_login("app_md5", "wrong")
    assert fields.get("C") == "28P01", fields


@proxy_only
def test_scram_server_signature_verifies():
    assert raw_login("app", "app") == {}


@proxy_only
def test_unknown_user():
    with pytest.raises(psycopg.OperationalError) as info:
        connect(user="sy_nobody", password="app")
    msg = str(info.value)
    assert "sy_nobody" in msg, msg
    assert any(s in msg for s in ("password authentication failed", "does not exist", "not known", "not allowed", "unknown")), msg


@proxy_only
def test_md5_user():
    with connect(user="app_md5", password="app") as c:
        assert c.execute("select 1").fetchone() == (1,)


@proxy_only
def test_trust_user():
    with connect(user="app_trust", password="") as c:
        assert c.execute("select 1").fetchone() == (1,)


# A minimal PostgreSQL client for the startup phase, to see what the proxy
# sends at the wire level (psycopg folds connection errors into a message).


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _recv_msg(sock):
    head = _recv_exact(sock, 5)
    kind, length = head[:1], struct.unpack("!I", head[1:])[0]
    return kind, _recv_exact(sock, length - 4)


def _send(sock, kind, body):
    sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)


def _error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def raw_login(user, password):
    """Log in and return the ErrorResponse's fields, or {} after ReadyForQuery.

    Speaks SCRAM-SHA-256 (checking the server's signature), md5 and cleartext.
    """
    with socket.create_connection((HOST, PG_PORT), timeout=10) as s:
        params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", DB))) + b"\0"
        body = struct.pack("!I", 196608) + params
        s.sendall(struct.pack("!I", len(body) + 4) + body)
        scram = None
        while True:
            kind, msg = _recv_msg(s)
            if kind == b"E":
                return _error_fields(msg)
            if kind == b"Z":
                _send(s, b"X", b"")
                return {}
            if kind != b"R":
                continue
            code = struct.unpack("!I", msg[:4])[0]
            if code == 0:  # AuthenticationOk
                continue
            if code == 3:  # cleartext
                _send(s, b"p", password.encode() + b"\0")
            elif code == 5:  # md5
                inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                _send(s, b"p", b"md5" + hashlib.md5(inner + msg[4:8]).hexdigest().encode() + b"\0")
            elif code == 10:  # SASL
                assert b"SCRAM-SHA-256" in msg[4:].split(b"\0"), msg
                nonce = base64.b64encode(os.urandom(18)).decode()
                first_bare = f"n=,r={nonce}"
                payload = ("n,," + first_bare).encode()
                _send(s, b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(payload)) + payload)
                scram = {"first_bare": first_bare, "nonce": nonce}
            elif code == 11:  # SASLContinue
                server_first = msg[4:].decode()
                attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
                assert attrs["r"].startswith(scram["nonce"]), server_first
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
                client_key = hmac.new(salted, b"Client Key", "sha256").digest()
                stored_key = hashlib.sha256(client_key).digest()
                without_proof = f"c=biws,r={attrs['r']}"
                auth_msg = f"{scram['first_bare']},{server_first},{without_proof}".encode()
                signature = hmac.new(stored_key, auth_msg, "sha256").digest()
                proof = bytes(a ^ b for a, b in zip(client_key, signature))
                server_key = hmac.new(salted, b"Server Key", "sha256").digest()
                scram["server_sig"] = hmac.new(server_key, auth_msg, "sha256").digest()
                _send(s, b"p", f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
            elif code == 12:  # SASLFinal
                final = msg[4:].decode()
                assert final == "v=" + base64.b64encode(scram["server_sig"]).decode(), f"bad server signature: {final}"
            else:
                raise AssertionError(f"unexpected authentication request {code}")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
