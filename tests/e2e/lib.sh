# shellcheck shell=bash
# Helpers for the shell end-to-end suites (sourced, not a suite).
#
# A suite runs checks and keeps going after a failed one, so one run shows
# every difference; `finish` prints the tally and sets the exit status.
# run.sh exports SY_* (ports, database, scratch dir); a suite can also be run
# by hand with those set.

. "${SY_REPO:?run this through tests/e2e/run.sh}/scripts/lib.sh"
SY_LOG_TAG=${SY_SUITE:-e2e}
: "${SY_DB:?}" "${SY_PG_PORT:?}" "${SY_MY_PORT:?}"
SY_HOST=${SY_HOST:-127.0.0.1}
CHECKS=0
CHECK_FAILS=0
FAILED_NAMES=()

pass() {
    CHECKS=$((CHECKS + 1))
    echo "ok   $1"
}

fail() { # fail NAME WHY [DETAIL...]
    CHECKS=$((CHECKS + 1))
    CHECK_FAILS=$((CHECK_FAILS + 1))
    FAILED_NAMES+=("$1")
    echo "FAIL $1: $2"
    shift 2
    local d
    for d in "$@"; do
        [ -n "$d" ] && printf '%s\n' "$d" | head -n 40 | sed 's/^/       /'
    done
    return 0
}

# capture CMD...: run CMD; its stdout in OUT, stderr in ERR, exit status in RC.
# Never fails, so `set -e` does not end the suite on an expected error.
capture() {
    local errf
    errf=$(mktemp)
    OUT=$("$@" 2>"$errf") && RC=0 || RC=$?
    ERR=$(cat "$errf")
    rm -f "$errf"
}

# expect NAME EXPECTED: the last capture succeeded and printed exactly EXPECTED.
expect() {
    if [ "$RC" -ne 0 ]; then
        fail "$1" "exit status $RC (expected 0)" "stderr: $ERR" "stdout: $OUT"
    elif [ "$OUT" != "$2" ]; then
        fail "$1" "output differs" "$(diff <(printf '%s\n' "$2") <(printf '%s\n' "$OUT") | sed '1d' | sed 's/^</expected:/; s/^>/actual:  /')" "stderr: $ERR"
    else
        pass "$1"
    fi
}

# expect_status NAME STATUS: the last capture exited with STATUS.
expect_status() {
    if [ "$RC" -eq "$2" ]; then pass "$1"; else fail "$1" "exit status $RC (expected $2)" "stderr: $ERR" "stdout: $OUT"; fi
}

# expect_in NAME NEEDLE TEXT: TEXT contains NEEDLE (fixed string).
expect_in() {
    if grep -qF -- "$2" <<<"$3"; then pass "$1"; else fail "$1" "missing: $2" "in: $3"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi
}

finish() {
    echo "$SY_LOG_TAG: $((CHECKS - CHECK_FAILS)) of $CHECKS checks passed"
    if [ "$CHECK_FAILS" -gt 0 ]; then
        echo "$SY_LOG_TAG: failed: ${FAILED_NAMES[*]}"
        exit 1
    fi
    exit 0
}

# px_psql [CONNINFO-OVERRIDE... --] ARGS...: psql through the proxy as app/app to
# the suite's database, never prompting for a password.
px_psql() {
    local conn="host=$SY_HOST port=$SY_PG_PORT user=${SY_PG_USER:-app} dbname=$SY_DB sslmode=disable connect_timeout=10"
    if [[ " $* " == *" -- "* ]]; then
        while [ "$1" != "--" ]; do
            conn+=" $1"
            shift
        done
        shift
    fi
    PGPASSWORD=${PGPASSWORD-${SY_PG_PASSWORD:-app}} psql "$conn" -X -w -q -At -v ON_ERROR_STOP=1 "$@"
}

# db_direct ARGS...: psql straight to PostgreSQL (superuser) in the suite's database.
db_direct() { pg_direct -d "$SY_DB" -At "$@"; }

# px_my [OPTION...]: the mariadb client through the proxy's MySQL listener as
# app/app to the suite's database, batch output without column names.
px_my() {
    MYSQL_PWD=${MYSQL_PWD-${SY_MY_PASSWORD-app}} mariadb --protocol=tcp -h "$SY_HOST" -P "$SY_MY_PORT" \
        -u "${SY_MY_USER:-app}" -D "$SY_DB" --connect-timeout=10 -B -N "$@"
}

# my_db_direct ARGS...: mariadb straight to MariaDB (root) in the suite's database.
my_db_direct() { my_direct -D "$SY_DB" -B -N "$@"; }
