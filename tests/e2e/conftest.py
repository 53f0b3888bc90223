"""Shared settings for the Python end-to-end suites (pg_python.py, my_python.py).

tests/e2e/run.sh exports SY_* for each suite: the proxy's ports, the suite's
own database, the TLS certificate. With SY_DIRECT=1 and the direct ports a
suite can be pointed at the real server to check the test itself; tests that
only make sense against the proxy (its users, its certificate) then skip.
"""

import os
import uuid

import pytest

HOST = os.environ.get("SY_HOST", "127.0.0.1")
DB = os.environ.get("SY_DB", "test")
PG_PORT = int(os.environ.get("SY_PG_PORT", "6432"))
MY_PORT = int(os.environ.get("SY_MY_PORT", "6033"))
PG_DIRECT_PORT = int(os.environ.get("SY_PG_DIRECT_PORT", "5432"))
MY_DIRECT_PORT = int(os.environ.get("SY_MY_DIRECT_PORT", "3306"))
TLS_CERT = os.environ.get("SY_TLS_CERT", "")
DIRECT = os.environ.get("SY_DIRECT") == "1"

# Who the client logs in as: the proxy's user app/app, or (SY_DIRECT=1) the
# server's own superuser.
PG_USER = os.environ.get("SY_PG_USER", "postgres" if DIRECT else "app")
PG_PASSWORD = os.environ.get("SY_PG_PASSWORD", "" if DIRECT else "app")
MY_USER = os.environ.get("SY_MY_USER", "root" if DIRECT else "app")
MY_PASSWORD = os.environ.get("SY_MY_PASSWORD", "" if DIRECT else "app")

proxy_only = pytest.mark.skipif(DIRECT, reason="tests the proxy's own users or certificate")


@pytest.fixture
def unique():
    """A fresh identifier suffix, so tests in one database never collide."""
    return uuid.uuid4().hex[:8]
