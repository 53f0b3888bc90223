#!/usr/bin/env bash
# End-to-end suites: real clients (psql, pgbench, psycopg, mariadb, PyMySQL,
# sysbench) through a real switchyard-proxy to the real PostgreSQL and MariaDB.
#
# Usage: tests/e2e/run.sh PROXY_BIN [SUITE...]
#   SUITE: pg_psql pg_pgbench pg_python my_mariadb my_python my_sysbench
#          (default: all)
#
# Environment:
#   SWITCHYARD_E2E_MYSQL=0   leave out the MySQL suites (they run by default)
#   SY_E2E_TIMEOUT=300       seconds one suite may take before it is killed
#   SY_E2E_KEEP=1            keep the scratch dir and the test databases
#   SWITCHYARD_LOG           the proxy's log filter (default: info)
#
# For each run: a scratch dir, a self-signed TLS cert, a config on free ports,
# one fresh database per suite (sy_e2e_<suite>_<pid>, in PostgreSQL for pg_*
# and in MariaDB for my_*), one proxy process (restarted if a suite kills it),
# then SIGTERM and a check that the proxy exits cleanly. Prints one line per
# suite and ends with `N passed, M failed`; exits 1 when anything failed.
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib.sh"
SY_LOG_TAG=e2e
E2E_DIR="$REPO_ROOT/tests/e2e"
VENV="$REPO_ROOT/.venv"
ALL_SUITES=(pg_psql pg_pgbench pg_python my_mariadb my_python my_sysbench pg_readswitch)

[ "$#" -ge 1 ] || die "usage: tests/e2e/run.sh PROXY_BIN [SUITE...]"
PROXY_BIN=$(realpath "$1")
shift
[ -x "$PROXY_BIN" ] || die "proxy binary \`$PROXY_BIN\` is missing or not executable (build it: cargo build -p switchyard-proxy)"
SUITES=("$@")
[ "${#SUITES[@]}" -gt 0 ] || SUITES=("${ALL_SUITES[@]}")
for s in "${SUITES[@]}"; do
    [[ " ${ALL_SUITES[*]} " == *" $s "* ]] || die "unknown suite \`$s\` (known: ${ALL_SUITES[*]})"
done
MYSQL_ON=0
[ "${SWITCHYARD_E2E_MYSQL:-1}" = "1" ] && MYSQL_ON=1
SUITE_TIMEOUT=${SY_E2E_TIMEOUT:-300}

need psql "Run scripts/ensure-databases.sh (installs PostgreSQL and its client)."
need pgbench "Run scripts/ensure-databases.sh (installs postgresql-contrib)."
need openssl "apt-get install openssl"
need curl "apt-get install curl"
[ -x "$VENV/bin/pytest" ] || die "$VENV has no pytest. Run: scripts/ensure-tools.sh python"
if [ "$MYSQL_ON" -eq 1 ]; then
    need mariadb "Run scripts/ensure-databases.sh (installs mariadb-client)."
    need sysbench "Run scripts/ensure-tools.sh sysbench"
fi
pg_direct -d postgres -Atc 'select 1' >/dev/null ||
    die "PostgreSQL does not answer on 127.0.0.1:5432 as postgres; run scripts/ensure-databases.sh"
if [ "$MYSQL_ON" -eq 1 ]; then
    my_direct -e 'select 1' >/dev/null ||
        die "MariaDB does not answer on 127.0.0.1:3306 as root; run scripts/ensure-databases.sh"
fi

# ------------------------------------------------------------------ scratch

SCRATCH=$(mktemp -d /tmp/switchyard-e2e.XXXXXX)
PROXY_PID=""
PROXY_LOG="$SCRATCH/proxy.log"
CONFIG="$SCRATCH/switchyard.yaml"
PG_DBS=()
MY_DBS=()
FAILED=0

cleanup() {
    local rc=$?
    if [ -n "$PROXY_PID" ]; then
        stop_pid "$PROXY_PID" switchyard-proxy 5 || true
    fi
    if [ "${SY_E2E_KEEP:-0}" = "1" ]; then
        log "kept scratch dir $SCRATCH and databases: ${PG_DBS[*]:-} ${MY_DBS[*]:-}"
        return "$rc"
    fi
    local db
    for db in "${PG_DBS[@]:+${PG_DBS[@]}}"; do
        pg_direct -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
            warn "could not drop PostgreSQL database $db"
    done
    for db in "${MY_DBS[@]:+${MY_DBS[@]}}"; do
        my_direct -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1 ||
            warn "could not drop MariaDB database $db"
    done
    # On failure the scratch dir stays (run.sh named it before its summary).
    if [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ]; then rm -rf "$SCRATCH"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(free_ports 3)
PG_PORT=${PORTS[0]} MY_PORT=${PORTS[1]} ADMIN_PORT=${PORTS[2]}
CERT="$SCRATCH/server.crt"
KEY="$SCRATCH/server.key"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$KEY" -out "$CERT" >/dev/null 2>&1 || die "openssl could not make a self-signed certificate"

cat >"$CONFIG" <<EOF
# Written by tests/e2e/run.sh for one end-to-end run.
listen: { postgres: 127.0.0.1:$PG_PORT, mysql: 127.0.0.1:$MY_PORT }
admin: { listen: 127.0.0.1:$ADMIN_PORT }
tls: { cert: $CERT, key: $KEY }
users:
  - { name: app, password: app }
  - { name: app_md5, password: app, auth: md5 }
  - { name: app_trust, password: "", auth: trust }
backends:
  pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: "" }
  my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: "" }
routes: { postgres: pg, mysql: my }
EOF

# ------------------------------------------------------------------ proxy

start_proxy() {
    echo "=== proxy start $(date -u +%H:%M:%S) ===" >>"$PROXY_LOG"
    SWITCHYARD_LOG="${SWITCHYARD_LOG:-info}" "$PROXY_BIN" --config "$CONFIG" >>"$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    if ! wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" 30 "$PROXY_PID"; then
        if kill -0 "$PROXY_PID" 2>/dev/null; then
            log "proxy (pid $PROXY_PID) runs but http://127.0.0.1:$ADMIN_PORT/healthz did not answer 2xx within 30 s"
            stop_pid "$PROXY_PID" switchyard-proxy 5 || true
        else
            local st=0
            wait "$PROXY_PID" 2>/dev/null || st=$?
            log "proxy exited during startup with status $st"
        fi
        PROXY_PID=""
        log "last lines of $PROXY_LOG:"
        tail -n 30 "$PROXY_LOG" | strip_ansi | sed 's/^/    /' >&2
        return 1
    fi
    log "proxy up (pid $PROXY_PID): postgres 127.0.0.1:$PG_PORT, mysql 127.0.0.1:$MY_PORT, admin 127.0.0.1:$ADMIN_PORT"
}

# The proxy colours its log even into a file; keep excerpts readable.
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }

proxy_alive() { [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; }

# ------------------------------------------------------------------ suites

declare -a RESULT_LINES=()
PASSED=0
SKIPPED=0

record() { # record STATUS NAME DETAIL
    RESULT_LINES+=("$(printf '%-4s %-12s %s' "$1" "$2" "$3")")
    case "$1" in
    PASS) PASSED=$((PASSED + 1)) ;;
    FAIL) FAILED=$((FAILED + 1)) ;;
    SKIP) SKIPPED=$((SKIPPED + 1)) ;;
    esac
    printf '%s %s: %s\n' "$1" "$2" "$3"
}

suite_file() {
    if [ -f "$E2E_DIR/$1.sh" ]; then echo "$E2E_DIR/$1.sh"; else echo "$E2E_DIR/$1.py"; fi
}

run_suite() {
    local name=$1 file db proto log_lines rc=0 t0 t1 note=""
    file=$(suite_file "$name")
    proto=${name%%_*}
    if [ "$proto" = my ] && [ "$MYSQL_ON" -eq 0 ]; then
        record SKIP "$name" "skipped: MySQL suites are off (set SWITCHYARD_E2E_MYSQL=1)"
        return
    fi
    echo
    echo "──── $name ($(basename "$file"))"
    if ! proxy_alive; then
        start_proxy || { record FAIL "$name" "proxy not running (could not start it)"; return; }
    fi
    db="sy_e2e_${name}_$$"
    if [ "$proto" = pg ]; then
        pg_direct -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null
        PG_DBS+=("$db")
    else
        my_direct -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4"
        MY_DBS+=("$db")
    fi
    mkdir -p "$SCRATCH/$name"
    log_lines=$(wc -l <"$PROXY_LOG")
    local -a cmd
    case "$file" in
    *.py) cmd=("$VENV/bin/pytest" -q -p no:cacheprovider -o console_output_style=classic "$file") ;;
    *) cmd=(bash "$file") ;;
    esac
    t0=$(date +%s)
    set +e
    (
        cd "$SCRATCH/$name"
        export SY_REPO="$REPO_ROOT" SY_SUITE="$name" SY_DB="$db" SY_SCRATCH="$SCRATCH/$name" \
            SY_PG_PORT="$PG_PORT" SY_MY_PORT="$MY_PORT" SY_ADMIN_PORT="$ADMIN_PORT" \
            SY_PG_DIRECT_PORT=5432 SY_MY_DIRECT_PORT=3306 SY_TLS_CERT="$CERT" SY_TLS_KEY="$KEY" \
            SY_PROXY_LOG="$PROXY_LOG" SY_CONFIG="$CONFIG" PYTHONDONTWRITEBYTECODE=1
        unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGSERVICE MYSQL_HOST MYSQL_TCP_PORT MYSQL_PWD
        timeout -k 10 "$SUITE_TIMEOUT" "${cmd[@]}"
    ) 2>&1 | tee "$SCRATCH/$name.log" | sed -u "s/^/  [$name] /"
    rc=${PIPESTATUS[0]}
    set -e
    t1=$(date +%s)
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        note="timed out after ${SUITE_TIMEOUT}s; "
    fi
    if ! proxy_alive && [ -n "$PROXY_PID" ]; then
        local st=0
        wait "$PROXY_PID" 2>/dev/null || st=$?
        note+="proxy exited during the suite (status $st); "
        PROXY_PID=""
        [ "$rc" -eq 0 ] && rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        record PASS "$name" "$((t1 - t0))s"
    else
        record FAIL "$name" "${note}exit $rc after $((t1 - t0))s (log: $SCRATCH/$name.log)"
        echo "  proxy log during $name (last 40 lines):"
        tail -n +"$((log_lines + 1))" "$PROXY_LOG" | tail -n 40 | strip_ansi | sed 's/^/    | /'
    fi
}

check_shutdown() {
    echo
    echo "──── shutdown (SIGTERM)"
    if ! proxy_alive; then
        record FAIL shutdown "proxy was not running at the end"
        return
    fi
    local pid=$PROXY_PID st=0 i
    PROXY_PID=""
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        record FAIL shutdown "proxy still running 10 s after SIGTERM (killed)"
        return
    fi
    wait "$pid" 2>/dev/null || st=$?
    if [ "$st" -eq 0 ]; then
        record PASS shutdown "exited with status 0 after SIGTERM"
    else
        record FAIL shutdown "exited with status $st after SIGTERM (expected a graceful exit 0)"
        tail -n 10 "$PROXY_LOG" | strip_ansi | sed 's/^/    | /'
    fi
}

log "proxy: $PROXY_BIN"
log "scratch: $SCRATCH"
for s in "${SUITES[@]}"; do
    run_suite "$s"
done
# The shutdown check needs a live proxy; when it died, its suite already failed.
if proxy_alive; then check_shutdown; fi

echo
echo "e2e results:"
printf '  %s\n' "${RESULT_LINES[@]}"
[ "$FAILED" -eq 0 ] || echo "scratch dir kept for inspection: $SCRATCH (proxy.log, switchyard.yaml, <suite>.log)"
[ "$SKIPPED" -eq 0 ] || echo "skipped: $SKIPPED (MySQL suites; set SWITCHYARD_E2E_MYSQL=1 to run them)"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
