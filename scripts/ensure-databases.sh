#!/usr/bin/env bash
# Make sure the two database servers Switchyard's tests, demo and benchmarks
# use are installed, running and reachable the way we rely on:
#
#   PostgreSQL  127.0.0.1:5432, user postgres with trust auth (TCP and local
#               socket), database `test`, pgbench available
#   MariaDB     127.0.0.1:3306, user root with an empty password over TCP
#               (root@localhost and root@127.0.0.1), database `test`
#
#   TLS         both servers also accept TLS with a certificate for
#               `localhost` signed by a test CA in $SWITCHYARD_TEST_TLS_DIR
#               (default /var/lib/switchyard/test-tls: ca.crt, server.crt),
#               for the backend-TLS tests (as root only; plain connections
#               are unaffected)
#
# Usage: scripts/ensure-databases.sh [--configure] [postgres] [mysql]
#   (no server named: both)
#
# Idempotent and fast when all is well: a server that already answers as
# expected is never touched. Missing packages are installed with apt-get (as
# root). A stopped server is started. Authentication and listen settings are
# only changed on a server this run installed (or whose cluster it created), or
# when --configure is given (implied by CI=true, where machines are throwaway):
# on a developer's own server we say what is wrong instead of loosening its
# authentication behind their back.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_PORT=5432
MY_PORT=3306
CONFIGURE=0
[ "${CI:-}" = "true" ] && CONFIGURE=1
want_pg=0
want_my=0
for arg in "$@"; do
    case "$arg" in
    --configure) CONFIGURE=1 ;;
    postgres | pg | postgresql) want_pg=1 ;;
    mysql | mariadb | my) want_my=1 ;;
    -h | --help)
        sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument \`$arg\` (expected --configure, postgres, mysql)" ;;
    esac
done
if [ "$want_pg" -eq 0 ] && [ "$want_my" -eq 0 ]; then
    want_pg=1
    want_my=1
fi

# ---------------------------------------------------------------- PostgreSQL

pg_answers() {
    PGCONNECT_TIMEOUT=5 psql -X -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "${1:-postgres}" \
        -Atc 'select 1' 2>/dev/null | grep -qx 1
}

pg_installed() {
    have psql && have pgbench && have pg_ctlcluster && have pg_isready &&
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

pg_version() {
    # The newest version that has a `main` cluster, else the newest installed.
    local v
    for v in $(ls /etc/postgresql 2>/dev/null | sort -rV); do
        [ -d "/etc/postgresql/$v/main" ] && { echo "$v"; return; }
    done
    ls /usr/lib/postgresql 2>/dev/null | sort -rV | head -1
}

pg_wait_ready() {
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0
        sleep 1
    done
    return 1
}

pg_configure() {
    local ver=$1 dir="/etc/postgresql/$1/main"
    local hba="$dir/pg_hba.conf"
    log "PostgreSQL: configuring $dir for local development (trust on 127.0.0.1, ::1 and the local socket; listen 127.0.0.1:$PG_PORT)"
    if ! grep -q 'switchyard: local development' "$hba"; then
        cp -p "$hba" "$hba.switchyard.bak"
        {
            echo '# switchyard: local development (scripts/ensure-databases.sh); first match wins'
            echo 'local   all   all                  trust'
            echo 'host    all   all   127.0.0.1/32   trust'
            echo 'host    all   all   ::1/128        trust'
            echo
            cat "$hba.switchyard.bak"
        } >"$hba"
    fi
    local settings="listen_addresses = '127.0.0.1'
port = $PG_PORT"
    if grep -Eq "^[[:space:]]*include_dir[[:space:]]*=[[:space:]]*'conf.d'" "$dir/postgresql.conf"; then
        mkdir -p "$dir/conf.d"
        printf '# switchyard: local development (scripts/ensure-databases.sh)\n%s\n' "$settings" >"$dir/conf.d/switchyard.conf"
    elif ! grep -q 'switchyard: local development' "$dir/postgresql.conf"; then
        printf '\n# switchyard: local development (scripts/ensure-databases.sh)\n%s\n' "$settings" >>"$dir/postgresql.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
}

ensure_postgres() {
    if pg_installed && pg_answers test; then
        log "PostgreSQL: ok (127.0.0.1:$PG_PORT, user postgres, database test)"
        return
    fi
    local fresh=0 ver
    if ! pg_installed; then
        apt_install postgresql postgresql-contrib postgresql-client
        fresh=1
    fi
    ver=$(pg_version)
    [ -n "$ver" ] || die "PostgreSQL: no version found under /usr/lib/postgresql after install"
    if [ ! -d "/etc/postgresql/$ver/main" ]; then
        is_root || die "PostgreSQL $ver has no cluster. Run: sudo pg_createcluster $ver main --start"
        log "PostgreSQL: creating cluster $ver/main"
        pg_createcluster "$ver" main -p "$PG_PORT"
        fresh=1
    fi
    if ! pg_lsclusters -h "$ver" main 2>/dev/null | grep -q online; then
        is_root || die "PostgreSQL $ver/main is stopped. Run: sudo pg_ctlcluster --skip-systemctl-redirect $ver main start"
        log "PostgreSQL: starting cluster $ver/main"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
            die "PostgreSQL $ver/main did not start; see /var/log/postgresql/postgresql-$ver-main.log"
    fi
    if ! pg_wait_ready && [ "$fresh" -eq 0 ] && [ "$CONFIGURE" -eq 0 ]; then
        die "PostgreSQL $ver/main runs but does not answer on 127.0.0.1:$PG_PORT (listen_addresses/port in /etc/postgresql/$ver/main/postgresql.conf). Rerun with --configure to set them."
    fi
    if ! pg_answers postgres; then
        if [ "$fresh" -eq 0 ] && [ "$CONFIGURE" -eq 0 ]; then
            die "PostgreSQL on 127.0.0.1:$PG_PORT refuses user postgres without a password. Switchyard's scripts expect trust auth for 127.0.0.1 (pg_hba.conf). Rerun with --configure to add it (it prepends trust lines to /etc/postgresql/$ver/main/pg_hba.conf, keeping a .switchyard.bak copy)."
        fi
        is_root || die "configuring PostgreSQL needs root: sudo $0 --configure"
        pg_configure "$ver"
        pg_wait_ready || die "PostgreSQL did not come back after reconfiguring; see /var/log/postgresql/postgresql-$ver-main.log"
        pg_answers postgres || die "PostgreSQL still refuses user postgres on 127.0.0.1:$PG_PORT after configuring pg_hba.conf"
    fi
    if ! pg_answers test; then
        log "PostgreSQL: creating database test"
        psql -X -w -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c 'CREATE DATABASE test'
    fi
    pg_answers test || die "PostgreSQL: database test is still not reachable"
    log "PostgreSQL: ok (127.0.0.1:$PG_PORT, user postgres, database test)"
}

# ---------------------------------------------------------------- MariaDB

MARIADBD=/usr/sbin/mariadbd

my_answers() {
    mariadb --connect-timeout=5 -h 127.0.0.1 -P "$MY_PORT" -uroot ${1:+"$1"} -Nse 'select 1' 2>/dev/null | grep -qx 1
}

my_installed() { [ -x "$MARIADBD" ] && have mariadb && have mariadb-admin; }

my_alive() {
    # `ping` exits 0 when the server runs, even if it denies us access.
    mariadb-admin --connect-timeout=2 -h 127.0.0.1 -P "$MY_PORT" ping >/dev/null 2>&1 ||
        mariadb-admin --connect-timeout=2 --protocol=socket ping >/dev/null 2>&1
}

my_wait_alive() {
    local i
    for ((i = 0; i < 60; i++)); do
        my_alive && return 0
        sleep 1
    done
    return 1
}

my_start() {
    is_root || die "MariaDB is stopped. Run: sudo start-stop-daemon --start --oknodo --background --exec $MARIADBD"
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    log "MariaDB: starting $MARIADBD"
    start-stop-daemon --start --oknodo --background --exec "$MARIADBD"
    my_wait_alive || die "MariaDB did not start within 60 s; see the error log (/var/log/mysql/error.log or journalctl)"
}

my_configure() {
    log "MariaDB: configuring root@localhost and root@127.0.0.1 with an empty password over TCP, database test"
    # As OS root we get in through the unix socket (Debian's default for root).
    mariadb --protocol=socket -uroot <<'SQL'
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS test;
FLUSH PRIVILEGES;
SQL
}

ensure_mariadb() {
    if my_installed && my_answers test; then
        log "MariaDB: ok (127.0.0.1:$MY_PORT, user root, database test)"
        return
    fi
    local fresh=0
    if ! my_installed; then
        apt_install mariadb-server mariadb-client
        fresh=1
    fi
    if [ ! -d /var/lib/mysql/mysql ]; then
        is_root || die "MariaDB's data directory is not initialised. Run: sudo mariadb-install-db --user=mysql --datadir=/var/lib/mysql"
        log "MariaDB: initialising /var/lib/mysql"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
        fresh=1
    fi
    if ! my_alive; then my_start; fi
    if ! port_open 127.0.0.1 "$MY_PORT"; then
        if [ "$fresh" -eq 0 ] && [ "$CONFIGURE" -eq 0 ]; then
            die "MariaDB runs but does not listen on 127.0.0.1:$MY_PORT (bind-address/port, skip-networking in /etc/mysql). Rerun with --configure to set them."
        fi
        is_root || die "configuring MariaDB needs root: sudo $0 --configure"
        log "MariaDB: setting bind-address=127.0.0.1, port=$MY_PORT and restarting"
        printf '# switchyard: local development (scripts/ensure-databases.sh)\n[mysqld]\nbind-address = 127.0.0.1\nport = %s\nskip-networking = 0\n' \
            "$MY_PORT" >/etc/mysql/mariadb.conf.d/99-switchyard.cnf
        mariadb-admin --protocol=socket -uroot shutdown
        my_start
    fi
    if ! my_answers; then
        if [ "$fresh" -eq 0 ] && [ "$CONFIGURE" -eq 0 ]; then
            die "MariaDB on 127.0.0.1:$MY_PORT refuses root with an empty password (Debian's root uses unix_socket auth by default). Rerun with --configure to allow it (ALTER USER root@localhost ... OR mysql_native_password, CREATE USER root@127.0.0.1)."
        fi
        is_root || die "configuring MariaDB needs root: sudo $0 --configure"
        my_configure
        my_answers || die "MariaDB still refuses root with an empty password on 127.0.0.1:$MY_PORT"
    fi
    if ! my_answers test; then
        log "MariaDB: creating database test"
        mariadb -h 127.0.0.1 -P "$MY_PORT" -uroot -e 'CREATE DATABASE IF NOT EXISTS test'
    fi
    my_answers test || die "MariaDB: database test is still not reachable"
    log "MariaDB: ok (127.0.0.1:$MY_PORT, user root, database test)"
}


# ---------------------------------------------------------------- test TLS

TLS_DIR="${SWITCHYARD_TEST_TLS_DIR:-/var/lib/switchyard/test-tls}"
TLS_FRESH=0 # 1 when this run made new files: servers must reload them

# A CA and a server certificate for `localhost` only (no IP address), so a
# test can connect by 127.0.0.1 to see verify-full refuse a wrong name.
# Generated once and kept: the servers read them at every (re)start.
tls_files() {
    if [ ! -s "$TLS_DIR/ca.crt" ] || [ ! -s "$TLS_DIR/server.crt" ] || [ ! -s "$TLS_DIR/server.key" ]; then
        have openssl || apt_install openssl
        log "TLS: generating a test CA and a server certificate for localhost in $TLS_DIR"
        mkdir -p "$TLS_DIR"
        chmod 755 "$TLS_DIR"
        local tmp
        tmp=$(mktemp -d)
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj '/CN=Switchyard test CA' \
            -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' \
            -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/ext"
        openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
            -days 3650 -extfile "$tmp/ext" -out "$tmp/server.crt" 2>/dev/null
        install -m 644 "$tmp/ca.crt" "$TLS_DIR/ca.crt"
        install -m 644 "$tmp/server.crt" "$TLS_DIR/server.crt"
        install -m 600 "$tmp/server.key" "$TLS_DIR/server.key"
        rm -rf "$tmp" "$TLS_DIR/pg.key" "$TLS_DIR/my.key"
        TLS_FRESH=1
    fi
}

# tls_key FILE OWNER: a copy of the server key owned by OWNER (each server
# insists on owning its key file).
tls_key() {
    [ -s "$TLS_DIR/$1" ] || install -m 600 -o "$2" -g "$2" "$TLS_DIR/server.key" "$TLS_DIR/$1"
}

# PostgreSQL reloads its TLS files on SIGHUP, so this never restarts it;
# ALTER SYSTEM keeps the setting in postgresql.auto.conf, beside the
# cluster's own configuration.
pg_tls() {
    is_root || return 0
    tls_files
    tls_key pg.key postgres
    local psql_=(psql -X -w -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc)
    if [ "$("${psql_[@]}" 'show ssl_cert_file')" = "$TLS_DIR/server.crt" ] && [ "$("${psql_[@]}" 'show ssl')" = on ]; then
        if [ "$TLS_FRESH" -eq 1 ]; then "${psql_[@]}" "SELECT pg_reload_conf()" >/dev/null; fi
        return
    fi
    log "PostgreSQL: serving TLS with the test certificate ($TLS_DIR)"
    "${psql_[@]}" "ALTER SYSTEM SET ssl = on"
    "${psql_[@]}" "ALTER SYSTEM SET ssl_cert_file = '$TLS_DIR/server.crt'"
    "${psql_[@]}" "ALTER SYSTEM SET ssl_key_file = '$TLS_DIR/pg.key'"
    "${psql_[@]}" "SELECT pg_reload_conf()" >/dev/null
    sleep 1
}

# MariaDB reads ssl_cert / ssl_key only at start, so the first run adds them
# to its configuration and restarts it once; later runs find TLS on.
my_tls() {
    is_root || return 0
    tls_files
    tls_key my.key mysql
    if [ "$(mariadb -h 127.0.0.1 -P "$MY_PORT" -uroot -Nse "SELECT @@ssl_cert")" = "$TLS_DIR/server.crt" ]; then
        if [ "$TLS_FRESH" -eq 1 ]; then mariadb -h 127.0.0.1 -P "$MY_PORT" -uroot -e "FLUSH SSL"; fi
        return
    fi
    local cnf=/etc/mysql/my.cnf
    [ -f /etc/mysql/mariadb.conf.d/50-server.cnf ] && cnf=/etc/mysql/mariadb.conf.d/99-switchyard-tls.cnf
    log "MariaDB: serving TLS with the test certificate ($TLS_DIR); restarting it once ($cnf)"
    if ! grep -q 'switchyard: test TLS' "$cnf" 2>/dev/null; then
        printf '\n# switchyard: test TLS (scripts/ensure-databases.sh)\n[mariadbd]\nssl_cert = %s/server.crt\nssl_key = %s/my.key\nssl_ca = %s/ca.crt\n' \
            "$TLS_DIR" "$TLS_DIR" "$TLS_DIR" >>"$cnf"
    fi
    mariadb-admin --protocol=socket -uroot shutdown
    my_start
    my_answers test || die "MariaDB did not come back after enabling TLS; see /var/log/mysql/error.log"
}

# (Called from `if` bodies, not `&&` lists, so `set -e` stays in force inside.)
if [ "$want_pg" -eq 1 ]; then
    ensure_postgres
    pg_tls
fi
if [ "$want_my" -eq 1 ]; then
    ensure_mariadb
    my_tls
fi
