# shellcheck shell=bash
# Shared shell helpers for the example checks (sourced, not run).
#
# Every background process started with `start_bg` is killed when the sourcing script exits;
# its output goes to $WORK/<name>.log and is shown when the script fails.

set -euo pipefail

EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$EXAMPLES/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/faktory-gateway-examples.XXXXXX")"
BG_PIDS=()
BG_NAMES=()
PASSED=0
FAILED=0

cleanup() {
    local status=$?
    local i
    for i in "${!BG_PIDS[@]}"; do
        kill "${BG_PIDS[$i]}" 2>/dev/null || true
    done
    # Give them up to 30 s to stop (the gateway drains on SIGTERM), then force it.
    local deadline=$((SECONDS + 30))
    for i in "${!BG_PIDS[@]}"; do
        while kill -0 "${BG_PIDS[$i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "${BG_PIDS[$i]}" 2>/dev/null || true
        wait "${BG_PIDS[$i]}" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for i in "${!BG_NAMES[@]}"; do
            echo "---- last lines of ${BG_NAMES[$i]}.log"
            tail -n 30 "$WORK/${BG_NAMES[$i]}.log" 2>/dev/null || true
        done
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%H:%M:%S)] $*"; }

# start_bg NAME COMMAND...: runs COMMAND in the background, logging to $WORK/NAME.log.
start_bg() {
    local name="$1"; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    BG_PIDS+=("$!")
    BG_NAMES+=("$name")
}

# free_port: prints a TCP port that was free on 127.0.0.1 a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT SECONDS: waits until something accepts connections on 127.0.0.1:PORT.
wait_port() {
    python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.1)
PY
}

# pass NAME / fail NAME: records one check's result.
pass() { log "ok   $1"; PASSED=$((PASSED + 1)); }
fail() { log "FAIL $1"; FAILED=$((FAILED + 1)); }

# finish PREFIX: prints the closing "PREFIX: N passed, N failed" line and sets the exit status.
finish() {
    echo "$1: $PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
}

# build_binaries PACKAGE...: debug build of the packages' binaries (cargo's own locking applies).
build_binaries() {
    local args=()
    local package
    for package in "$@"; do args+=(-p "$package"); done
    log "cargo build ${args[*]} --bins"
    (cd "$ROOT" && cargo build --quiet "${args[@]}" --bins)
}

# start_test_server [NAME]: starts the Faktory test server (log NAME.log); sets FAKTORY_PORT
# and FAKTORY_URL.
start_test_server() {
    FAKTORY_PORT="$(free_port)"
    FAKTORY_URL="tcp://127.0.0.1:$FAKTORY_PORT"
    start_bg "${1:-faktory-test-server}" "$TARGET_DIR/debug/faktory-test-server" \
        --listen "127.0.0.1:$FAKTORY_PORT"
    wait_port "$FAKTORY_PORT" 30
    log "faktory test server at $FAKTORY_URL"
}

# ensure_python_requirements FILE: pip-installs a pinned requirements file unless already satisfied.
ensure_python_requirements() {
    if ! python3 - "$1" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, wanted = line.split("==")
        if version(name) != wanted:
            sys.exit(1)
PY
    then
        log "pip install -r ${1#"$ROOT"/}"
        python3 -m pip install --quiet --disable-pip-version-check -r "$1"
    fi
}

# ensure_node_modules DIR: `npm ci` in DIR unless node_modules matches the lock file.
ensure_node_modules() {
    if [[ ! -f "$1/node_modules/.package-lock.json" || "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]]; then
        log "npm ci in ${1#"$ROOT"/}"
        (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}
