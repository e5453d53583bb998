#!/usr/bin/env bash
# Start or stop an MLflow tracking server on 127.0.0.1 for development and tests.
#
#   scripts/dev-mlflow-server.sh start FOLDER BACKEND_URI [PORT] [WORKERS]
#       serve runs from BACKEND_URI (e.g. postgresql://grindwatch@127.0.0.1:5433/mlflow)
#       on 127.0.0.1:PORT (default 5000) with WORKERS uvicorn workers (default 2),
#       storing artifacts under FOLDER/artifacts; log in FOLDER/mlflow-server.log
#   scripts/dev-mlflow-server.sh stop FOLDER
#       stop the server and every process it started
#
# `start` prints `MLFLOW_TRACKING_URI=http://127.0.0.1:PORT` on stdout once the server
# responds to /health. MLflow 3.17's server also starts huey consumer processes that
# outlive a server killed on its own, so the server runs in a session of its own
# (setsid), and `stop` signals that whole process group: SIGTERM, then SIGKILL to
# whatever is left after 30 s. MLFLOW names the mlflow program when it is not on PATH.
set -euo pipefail

STOP_WAIT_S=30
START_WAIT_S=120

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

fail() {
    echo "dev-mlflow-server: $*" >&2
    exit 1
}

group_alive() {
    pgrep -g "$1" >/dev/null 2>&1
}

start() {
    [ $# -ge 1 ] || usage
    local backend=$1 port=${2:-5000} workers=${3:-2}
    local mlflow=${MLFLOW:-mlflow}
    command -v "$mlflow" >/dev/null || fail "$mlflow not found; install mlflow or set MLFLOW"
    mkdir -p "$FOLDER/artifacts"
    if [ -f "$PID_FILE" ] && group_alive "$(cat "$PID_FILE")"; then
        fail "a server from $FOLDER already runs (process group $(cat "$PID_FILE"))"
    fi
    rm -f "$PID_FILE"
    # setsid makes bash the leader of a new session and process group. exec keeps
    # that pid for mlflow, so the pid written is also the group id that stop signals.
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$mlflow" server --backend-store-uri "$backend" \
        --artifacts-destination "$FOLDER/artifacts" \
        --host 127.0.0.1 --port "$port" --workers "$workers" \
        >"$FOLDER/mlflow-server.log" 2>&1 </dev/null &

    local deadline=$((SECONDS + START_WAIT_S))
    until curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
        if [ -f "$PID_FILE" ] && ! group_alive "$(cat "$PID_FILE")"; then
            tail -n 20 "$FOLDER/mlflow-server.log" >&2
            fail "the server exited; see $FOLDER/mlflow-server.log"
        fi
        if [ $SECONDS -ge $deadline ]; then
            stop
            fail "the server did not answer within ${START_WAIT_S} s; see" \
                "$FOLDER/mlflow-server.log"
        fi
        sleep 0.5
    done
    echo "MLFLOW_TRACKING_URI=http://127.0.0.1:$port"
}

stop() {
    if [ ! -f "$PID_FILE" ]; then
        echo "dev-mlflow-server: no $PID_FILE; nothing to stop" >&2
        return
    fi
    local group
    group=$(cat "$PID_FILE")
    kill -TERM -- "-$group" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_WAIT_S))
    while group_alive "$group" && [ $SECONDS -lt $deadline ]; do
        sleep 0.5
    done
    if group_alive "$group"; then
        echo "dev-mlflow-server: killing what is left of process group $group" >&2
        kill -KILL -- "-$group" 2>/dev/null || true
        sleep 0.5
    fi
    group_alive "$group" && fail "process group $group still runs: $(pgrep -g "$group")"
    rm -f "$PID_FILE"
    echo "dev-mlflow-server: stopped" >&2
}

[ $# -ge 2 ] || usage
COMMAND=$1
FOLDER=$(realpath -m "$2")
PID_FILE=$FOLDER/mlflow-server.pid
shift 2
case "$COMMAND" in
start) start "$@" ;;
stop) stop ;;
*) usage ;;
esac
