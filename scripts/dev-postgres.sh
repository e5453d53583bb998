#!/usr/bin/env bash
# Start or stop a PostgreSQL server on 127.0.0.1 for development and tests.
#
#   scripts/dev-postgres.sh start FOLDER [PORT]   initdb into FOLDER/data (first time),
#                                                 start on 127.0.0.1:PORT (default 5433),
#                                                 create databases optuna and mlflow
#   scripts/dev-postgres.sh stop FOLDER           fast shutdown of that server
#   scripts/dev-postgres.sh status FOLDER         exit 0 when it runs, 3 when it does not
#
# `start` prints shell assignments on stdout, for `eval "$(scripts/dev-postgres.sh
# start ...)"`:
#
#   GRINDWATCH_PG_PORT=5433
#   OPTUNA_STORAGE=postgresql+psycopg://grindwatch@127.0.0.1:5433/optuna
#   MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://grindwatch@127.0.0.1:5433/mlflow
#
# For development only: the server trusts every connection from this machine (no
# password) and listens on loopback alone. docs/scale-out.md shows the settings for
# real hosts. PostgreSQL refuses to run as root, so under root the server runs as
# the `postgres` user that Debian's package creates (or a system user
# `grindwatch-pg`, created here when neither exists), and FOLDER is handed to it.
# PG_BIN names the folder of initdb, pg_ctl and createdb when they are elsewhere.
set -euo pipefail

DB_USER=grindwatch
DATABASES=(optuna mlflow)

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

fail() {
    echo "dev-postgres: $*" >&2
    exit 1
}

find_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] || fail "PG_BIN=$PG_BIN has no initdb"
        echo "$PG_BIN"
        return
    fi
    # Debian keeps the server programs out of PATH, one folder per major version.
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then
        echo "$found"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        fail "PostgreSQL server programs (initdb, pg_ctl) not found; install them" \
            "(Debian: apt-get install postgresql) or set PG_BIN to their folder"
    fi
}

service_user() {
    if [ "$(id -u)" != 0 ]; then
        id -un
    elif id -u postgres >/dev/null 2>&1; then
        echo postgres
    else
        if ! id -u grindwatch-pg >/dev/null 2>&1; then
            useradd --system --no-create-home --shell /usr/sbin/nologin grindwatch-pg
        fi
        echo grindwatch-pg
    fi
}

# Run a PostgreSQL program as the service user (itself when not root).
as_service() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$SERVICE_USER" -- "$@"
    else
        "$@"
    fi
}

prepare_folder() {
    mkdir -p "$FOLDER"
    if [ "$(id -u)" = 0 ]; then
        chown -R "$SERVICE_USER" "$FOLDER"
        chmod 700 "$FOLDER"
        as_service test -w "$FOLDER" || fail "user $SERVICE_USER cannot write $FOLDER;" \
            "choose a folder whose parents it may enter (not under /root or a" \
            "0700 folder such as /tmp/pytest-of-root)"
    fi
}

start() {
    local port=${1:-5433}
    prepare_folder
    if [ ! -f "$FOLDER/data/PG_VERSION" ]; then
        as_service "$BIN/initdb" -D "$FOLDER/data" -U "$DB_USER" --auth=trust \
            --encoding=UTF8 --locale=C >"$FOLDER/initdb.log" 2>&1 ||
            fail "initdb failed; see $FOLDER/initdb.log"
    fi
    if as_service "$BIN/pg_ctl" -D "$FOLDER/data" status >/dev/null 2>&1; then
        port=$(cat "$FOLDER/port")
        echo "dev-postgres: already running on 127.0.0.1:$port" >&2
    else
        # No Unix socket: clients connect over TCP on loopback, so the socket folder
        # cannot clash with a system server's /var/run/postgresql.
        as_service "$BIN/pg_ctl" -D "$FOLDER/data" -l "$FOLDER/postgres.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port" \
            -o "-c unix_socket_directories='' -c max_connections=200" \
            start >/dev/null || fail "PostgreSQL did not start; see $FOLDER/postgres.log"
        echo "$port" >"$FOLDER/port"
    fi
    for database in "${DATABASES[@]}"; do
        if ! as_service "$BIN/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres \
            -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
            as_service "$BIN/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$database"
        fi
    done
    echo "GRINDWATCH_PG_PORT=$port"
    # The URLs name the psycopg 3 driver (extra 'postgres'). A bare postgresql://
    # means psycopg2 to SQLAlchemy 2.0 and psycopg to SQLAlchemy 2.1.
    echo "OPTUNA_STORAGE=postgresql+psycopg://$DB_USER@127.0.0.1:$port/optuna"
    echo "MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://$DB_USER@127.0.0.1:$port/mlflow"
}

stop() {
    [ -f "$FOLDER/data/PG_VERSION" ] || fail "$FOLDER/data is no PostgreSQL data folder"
    if ! as_service "$BIN/pg_ctl" -D "$FOLDER/data" status >/dev/null 2>&1; then
        echo "dev-postgres: not running" >&2
        return
    fi
    # pg_ctl signals the postmaster named in postmaster.pid and waits for it to exit.
    as_service "$BIN/pg_ctl" -D "$FOLDER/data" -m fast -w -t 60 stop >/dev/null
    echo "dev-postgres: stopped" >&2
}

status() {
    [ -f "$FOLDER/data/PG_VERSION" ] || exit 3
    as_service "$BIN/pg_ctl" -D "$FOLDER/data" status >/dev/null || exit 3
}

[ $# -ge 2 ] || usage
COMMAND=$1
FOLDER=$(realpath -m "$2")
shift 2
BIN=$(find_bin)
SERVICE_USER=$(service_user)
case "$COMMAND" in
start) start "$@" ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
