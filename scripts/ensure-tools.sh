#!/usr/bin/env bash
# Install the extra tools Switchyard's tests and benchmarks use, when missing.
#
# Usage: scripts/ensure-tools.sh [pgbouncer] [haproxy] [sysbench] [percona] [python] ...
#   (no argument: all of them)
#
#   pgbouncer  Debian package pgbouncer (benches/pgbench.sh compares against it)
#   haproxy    Debian package haproxy (both benches: a TCP relay that parses
#              nothing, the least a hop between client and server can cost)
#   sysbench   Debian package sysbench (tests/e2e/my_sysbench.sh, benches/sysbench.sh)
#   percona    Debian package percona-toolkit (pt-table-checksum and friends)
#   python     .venv/ in the repository with tests/requirements.txt installed
#              (psycopg 3, PyMySQL, pytest); pip is skipped when the venv
#              already satisfies the file.
#
# Debian packages are installed as root with apt-get (update once per run);
# without root the script names the command to run instead.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

VENV="$REPO_ROOT/.venv"
REQS="$REPO_ROOT/tests/requirements.txt"

ensure_deb() { # ensure_deb COMMAND PACKAGE
    if have "$1"; then
        log "$2: ok ($(command -v "$1"))"
    else
        apt_install "$2"
        have "$1" || die "$2 installed but \`$1\` is still not on PATH"
        log "$2: installed ($(command -v "$1"))"
    fi
}

ensure_python() {
    [ -f "$REQS" ] || die "$REQS is missing"
    have python3 || apt_install python3 python3-venv
    if [ ! -x "$VENV/bin/python" ]; then
        log "python: creating $VENV"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 needs python3-venv for ensurepip.
            rm -rf "$VENV"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    # The stamp records which requirements the venv was last built from; the
    # import check catches a venv broken since (e.g. python3 upgraded).
    local stamp="$VENV/.switchyard-requirements.sha256" want
    want=$(sha256sum "$REQS" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
        "$VENV/bin/python" -c 'import psycopg, pymysql, pytest, cryptography' 2>/dev/null; then
        log "python: ok ($VENV satisfies tests/requirements.txt)"
        return
    fi
    log "python: installing tests/requirements.txt into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQS" ||
        die "pip install -r tests/requirements.txt failed (is PyPI reachable?)"
    "$VENV/bin/python" -c 'import psycopg, pymysql, pytest' ||
        die "the venv still cannot import psycopg, pymysql and pytest after pip install"
    echo "$want" >"$stamp"
    log "python: ok ($("$VENV/bin/python" -c 'import psycopg, pymysql, pytest; from importlib.metadata import version as v; print(*(f"{p} {v(p)}" for p in ("psycopg", "PyMySQL", "pytest")), sep=" / ")'))"
}

[ "$#" -gt 0 ] || set -- pgbouncer haproxy sysbench percona python
for tool in "$@"; do
    case "$tool" in
    pgbouncer) ensure_deb pgbouncer pgbouncer ;;
    haproxy) ensure_deb haproxy haproxy ;;
    sysbench) ensure_deb sysbench sysbench ;;
    percona | percona-toolkit) ensure_deb pt-table-checksum percona-toolkit ;;
    python | venv) ensure_python ;;
    -h | --help)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown tool \`$tool\` (expected pgbouncer, haproxy, sysbench, percona, python)" ;;
    esac
done
