# shellcheck shell=bash
# Shared helpers for Switchyard's shell entry points. Source it; it sets nothing
# on its own but REPO_ROOT and SY_LOG_TAG.
#
#   . "$(dirname "$0")/lib.sh"          (from scripts/)
#   . "$REPO_ROOT/scripts/lib.sh"       (from elsewhere)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SY_LOG_TAG="${SY_LOG_TAG:-$(basename "$0" .sh)}"

log() { printf '[%s] %s\n' "$SY_LOG_TAG" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$SY_LOG_TAG" "$*" >&2; }
die() {
    printf '[%s] error: %s\n' "$SY_LOG_TAG" "$*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# need CMD HINT: fail with HINT when CMD is not on PATH.
need() {
    have "$1" || die "\`$1\` is not installed. $2"
}

# apt_install PKG...: install Debian packages non-interactively. Runs
# `apt-get update` once per process. Services are kept from starting during the
# install (a policy-rc.d that denies them, only if the machine has none), so a
# package such as pgbouncer never grabs a port behind our back; callers start
# what they need themselves.
SY_APT_UPDATED=0
apt_install() {
    if ! is_root; then
        die "need Debian packages: $*. Run as root, or: sudo apt-get update && sudo apt-get install -y $*"
    fi
    have apt-get || die "apt-get not found; install these packages by hand: $*"
    local policy=/usr/sbin/policy-rc.d added_policy=0 rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    if [ "$SY_APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
        SY_APT_UPDATED=1
    fi
    if [ "$rc" -eq 0 ]; then
        log "apt-get install $*"
        local out
        out=$(mktemp)
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >"$out" 2>&1 || rc=$?
        [ "$rc" -eq 0 ] || tail -n 30 "$out" >&2
        rm -f "$out"
    fi
    if [ "$added_policy" -eq 1 ]; then rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc) installing: $*"
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1, one per line. All
# sockets are held open until every port is chosen, so they are distinct.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# port_owner PORT: a human description of who listens on PORT (or nothing).
port_owner() {
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/\1/p' | head -1
}

# wait_http URL SECONDS [PID]: wait until URL answers 2xx. With PID, give up as
# soon as that process has exited.
wait_http() {
    local url=$1 secs=$2 pid=${3:-} i
    for ((i = 0; i < secs * 10; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# wait_port PORT SECONDS PID: wait until something accepts connections on
# 127.0.0.1:PORT; fail early when process PID has exited.
wait_port() {
    local port=$1 secs=$2 pid=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        port_open 127.0.0.1 "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# stop_pid PID NAME [SECONDS]: SIGTERM, wait up to SECONDS (default 10), then
# SIGKILL. Returns 0 when it exited on SIGTERM in time, 1 when it had to be
# killed, 0 when it was not running.
stop_pid() {
    local pid=$1 name=$2 secs=${3:-10} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    warn "$name (pid $pid) still running ${secs}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

# cargo_target_dir: where cargo puts build output (honours CARGO_TARGET_DIR and
# .cargo/config via `cargo metadata`).
cargo_target_dir() {
    (cd "$REPO_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null) |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
        echo "${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
}

# pg_direct ARGS...: psql to the real PostgreSQL as the superuser.
pg_direct() {
    PGCONNECT_TIMEOUT=10 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${SY_PG_DIRECT_PORT:-5432}" -U postgres "$@"
}

# my_direct ARGS...: mariadb client to the real MariaDB as root.
my_direct() {
    mariadb --connect-timeout=10 -h 127.0.0.1 -P "${SY_MY_DIRECT_PORT:-3306}" -uroot "$@"
}
