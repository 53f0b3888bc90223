#!/usr/bin/env bash
# Run Switchyard locally (the README's "run" command):
#
#   1. make sure PostgreSQL and MariaDB run (scripts/ensure-databases.sh)
#   2. cargo build --release -p switchyard-proxy
#   3. start the proxy with configs/quickstart.yaml (PostgreSQL 127.0.0.1:6432,
#      MySQL 127.0.0.1:6033, admin 127.0.0.1:9187; user app, password app)
#   4. smoke test: psql `select version()` and pgbench -S for 5 s through it
#   5. print how to connect, then keep the proxy in the foreground until
#      Ctrl-C (with CI=true or no terminal on stdin: stop after the smoke)
#
# Environment: SWITCHYARD_CONFIG=FILE to use another config.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SY_LOG_TAG=demo
cd "$REPO_ROOT"

CONFIG=${SWITCHYARD_CONFIG:-$REPO_ROOT/configs/quickstart.yaml}
WORK=$(mktemp -d /tmp/switchyard-demo.XXXXXX)
LOG="$WORK/proxy.log"
PROXY_PID=""
TAIL_PID=""

cleanup() {
    local rc=$?
    [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
    if [ -n "$PROXY_PID" ]; then
        log "stopping switchyard-proxy (pid $PROXY_PID)"
        stop_pid "$PROXY_PID" switchyard-proxy 10 || true
    fi
    if [ "$rc" -eq 0 ]; then rm -rf "$WORK"; else log "proxy log kept: $LOG"; fi
    return "$rc"
}
trap cleanup EXIT
trap 'echo; exit 0' INT
trap 'exit 143' TERM

bash scripts/ensure-databases.sh

# The proxy reaches local servers over their Unix sockets when they have
# them (configs/quickstart.yaml reads these variables): no loopback TCP.
if [ -S /var/run/postgresql/.s.PGSQL.5432 ] && [ -z "${SWITCHYARD_PG_HOST:-}" ]; then
    export SWITCHYARD_PG_HOST=/var/run/postgresql
fi
if [ -S /run/mysqld/mysqld.sock ] && [ -z "${SWITCHYARD_MY_HOST:-}" ]; then
    export SWITCHYARD_MY_HOST=/run/mysqld/mysqld.sock
fi
log "backends: PostgreSQL at ${SWITCHYARD_PG_HOST:-127.0.0.1}, MariaDB at ${SWITCHYARD_MY_HOST:-127.0.0.1}"

if [ ! -f "$CONFIG" ]; then
    [ -z "${SWITCHYARD_CONFIG:-}" ] || die "config file $CONFIG does not exist"
    warn "configs/quickstart.yaml is missing; using an equivalent generated config"
    CONFIG="$WORK/quickstart.yaml"
    cat >"$CONFIG" <<'EOF'
listen: { postgres: 127.0.0.1:6432, mysql: 127.0.0.1:6033 }
admin: { listen: 127.0.0.1:9187 }
users:
  - { name: app, password: app }
backends:
  pg: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, password: "" }
  my: { kind: mysql, host: 127.0.0.1, port: 3306, user: root, password: "" }
routes: { postgres: pg, mysql: my }
EOF
fi

# Where the config says the proxy listens (flow or block YAML alike).
addr_of() { grep -oE "$1: *[0-9.]+:[0-9]+" "$CONFIG" | head -n 1 | sed -E "s/$1: *//"; }
PG_ADDR=$(addr_of postgres)
MY_ADDR=$(addr_of mysql)
ADMIN_ADDR=$(addr_of listen)
[ -n "$PG_ADDR" ] || die "$CONFIG has no PostgreSQL listener (listen: { postgres: HOST:PORT })"
[ -n "$ADMIN_ADDR" ] || die "$CONFIG has no admin listener (admin: { listen: HOST:PORT })"
for addr in "$PG_ADDR" $MY_ADDR "$ADMIN_ADDR"; do
    if port_open "${addr%:*}" "${addr##*:}"; then
        owner=$(port_owner "${addr##*:}")
        die "$addr is already in use${owner:+ by $owner}. Stop that process or edit $CONFIG."
    fi
done

log "building switchyard-proxy (release)"
cargo build --release -p switchyard-proxy
BIN="$(cargo_target_dir)/release/switchyard-proxy"

log "starting $BIN --config $CONFIG"
"$BIN" --config "$CONFIG" >"$LOG" 2>&1 &
PROXY_PID=$!
if ! wait_http "http://$ADMIN_ADDR/healthz" 30 "$PROXY_PID"; then
    tail -n 30 "$LOG" | sed 's/^/    | /' >&2
    die "switchyard-proxy did not become healthy on http://$ADMIN_ADDR/healthz (log above: $LOG)"
fi
log "proxy is healthy (pid $PROXY_PID)"

# ---- smoke test
PG_HOST=${PG_ADDR%:*}
PG_PORT=${PG_ADDR##*:}
APP_PASSWORD=${APP_PASSWORD:-app} # what configs/quickstart.yaml gives user app
export PGPASSWORD=$APP_PASSWORD
log "smoke: psql select version() through the proxy"
if ! version=$(psql "host=$PG_HOST port=$PG_PORT user=app dbname=test sslmode=disable connect_timeout=10" -X -w -At -c 'select version()'); then
    tail -n 20 "$LOG" | sed 's/^/    | /' >&2
    die "psql through the proxy failed"
fi
echo "    $version"
log "smoke: pgbench -i -s 1 test (directly on PostgreSQL), then pgbench -S -T 5 -c 4 through the proxy"
pgbench -i -s 1 -q -h 127.0.0.1 -p 5432 -U postgres test >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i on PostgreSQL failed"; }
if ! pgbench -n -S -T 5 -c 4 -j 2 -h "$PG_HOST" -p "$PG_PORT" -U app test >"$WORK/pgbench.log" 2>&1; then
    cat "$WORK/pgbench.log" >&2
    tail -n 20 "$LOG" | sed 's/^/    | /' >&2
    die "pgbench through the proxy failed"
fi
grep -E '^(number of transactions actually processed|number of failed transactions|latency average|tps)' "$WORK/pgbench.log" | sed 's/^/    /'

cat <<EOF

Switchyard is running (pid $PROXY_PID), config $CONFIG.
  PostgreSQL:  psql "host=$PG_HOST port=$PG_PORT user=app password=$APP_PASSWORD dbname=test sslmode=disable"
EOF
[ -n "$MY_ADDR" ] && echo "  MySQL:       mariadb -h ${MY_ADDR%:*} -P ${MY_ADDR##*:} -u app -p$APP_PASSWORD test"
cat <<EOF
  metrics:     curl http://$ADMIN_ADDR/metrics
  status:      curl http://$ADMIN_ADDR/status
EOF

if [ "${CI:-}" = "true" ] || [ ! -t 0 ]; then
    log "no terminal (or CI=true): stopping after the smoke test"
    exit 0
fi
echo
log "proxy in the foreground; Ctrl-C to stop. Its log follows."
tail -n +1 -f --pid="$PROXY_PID" "$LOG" &
TAIL_PID=$!
st=0
wait "$PROXY_PID" || st=$?
PROXY_PID=""
die "switchyard-proxy exited by itself with status $st"
