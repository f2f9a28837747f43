#!/usr/bin/env bash
# Installs the Python package (clients/python) into a fresh venv, runs its own tests, and runs
# the Python and Node examples against a live gateway in front of the Faktory test server,
# checking that every job they pushed completed:
#
#   0. the package's committed gRPC stubs are up to date with proto/ (generate_stubs.py
#      --check), and its pytest suite passes (a real gateway binary and the test server, over
#      real sockets: handlers, fails, tokens, failover, a gateway restart, a worker killed
#      mid-run, SIGTERM draining, the clients);
#   1. the gateway answers gRPC health (grpc.health.v1) with SERVING, and the Docker image's
#      HEALTHCHECK command (`faktory-gateway health`) agrees (once the binary has it);
#   2. the gateway killed (SIGKILL) and restarted while the package's example worker holds a
#      full window: its running and buffered jobs survive, their results reach Faktory through
#      the new gateway, every job runs once and nothing stays reserved;
#   3. Python producer -> Python worker: the worker runs exactly the jids the producer was
#      given, each once, and Faktory (INFO) then counts every job processed with nothing left
#      queued or reserved;
#   4. Node producer -> Python worker: the same;
#   5. across languages: the Rust SDK's add_producer feeds the Python worker $RUST_TO_PY_JOBS
#      jobs (20,000 by default: every job, by its argument, runs exactly once) and the Python
#      producer feeds the Rust SDK's add_worker (no job fails to parse; Faktory settles), and
#      add_worker exits 0 on SIGINT;
#   6. SIGTERM to the gateway while a slow worker holds a full window: the worker is told to
#      drain, the gateway exits 0, nothing stays reserved in Faktory, and every pushed job was
#      either run by the worker or released back to Faktory (never both).
#
# Needs cargo, python3 (venv, pip) and node (npm). Every step has a time limit; background
# processes are killed on exit. Closing line: "check-other-languages: N passed, N failed".
#
#   examples/check-other-languages.sh     # PY_JOBS=2000 NODE_JOBS=1000 RUST_TO_PY_JOBS=20000

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY_JOBS="${PY_JOBS:-2000}"
NODE_JOBS="${NODE_JOBS:-1000}"
RUST_TO_PY_JOBS="${RUST_TO_PY_JOBS:-20000}"
PY="$EXAMPLES/python"
PACKAGE="$ROOT/clients/python"
# No check passes a token; the Rust examples' GATEWAY_*_TOKEN variables are emptied so that a
# caller's environment cannot add one.

build_binaries faktory-test-server faktory-gateway
log "cargo build -p faktory-gateway-worker --example add_producer --example add_worker"
(cd "$ROOT" && cargo build --quiet -p faktory-gateway-worker --example add_producer --example add_worker)
ensure_node_modules "$EXAMPLES/node"

# 0. The package: a fresh venv, `pip install ./clients/python`, its tests.
log "python3 -m venv; pip install ./clients/python pytest -r examples/python/requirements.txt"
# Debian's python3 has venv (ensurepip) in a separate package.
if ! python3 -m venv "$WORK/venv" >/dev/null 2>&1; then
    rm -rf "$WORK/venv"
    if command -v apt-get >/dev/null; then
        log "apt-get install python3-venv"
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$WORK/venv"
fi
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check "$PACKAGE" pytest -r "$PY/requirements.txt"
python3 -m venv "$WORK/stubs-venv"
"$WORK/stubs-venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "grpcio-tools==$(sed -n 's/^GRPCIO_TOOLS_VERSION = "\(.*\)"$/\1/p' "$PACKAGE/generate_stubs.py")"
if "$WORK/stubs-venv/bin/python" "$PACKAGE/generate_stubs.py" --check; then
    pass "the package's gRPC stubs are up to date with proto/"
else
    fail "the package's gRPC stubs are up to date with proto/"
fi
# The tests import the installed package, not the source tree: run them from elsewhere.
if (cd "$WORK" && FAKTORY_GATEWAY_REQUIRE_BINARIES=1 \
    FAKTORY_GATEWAY_BIN="$TARGET_DIR/debug/faktory-gateway" \
    FAKTORY_TEST_SERVER_BIN="$TARGET_DIR/debug/faktory-test-server" \
    timeout 600 "$VPY" -m pytest -q -p no:cacheprovider --rootdir "$PACKAGE" "$PACKAGE/tests" \
    >"$WORK/pytest.log" 2>&1); then
    pass "the package's tests: $(tail -n 1 "$WORK/pytest.log")"
else
    fail "the package's tests: $(tail -n 1 "$WORK/pytest.log")"
    tail -n 40 "$WORK/pytest.log"
fi

start_test_server faktory-test-server
GATEWAY_PORT="$(free_port)"
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
# start_gateway NAME: starts a gateway on $GATEWAY_PORT (log NAME.log); sets GATEWAY_PID.
start_gateway() {
    start_bg "$1" env RUST_LOG="${RUST_LOG:-info}" "$TARGET_DIR/debug/faktory-gateway" \
        --faktory-url "$FAKTORY_URL" --listen "127.0.0.1:$GATEWAY_PORT" --metrics-listen off
    GATEWAY_PID="${BG_PIDS[-1]}"
    wait_port "$GATEWAY_PORT" 60
}
start_gateway gateway
log "gateway at $GATEWAY_URL"

# 1. Health.
if timeout 60 "$VPY" "$PY/health.py" --gateway "$GATEWAY_URL" --wait 30; then
    pass "gateway gRPC health is SERVING"
else
    fail "gateway gRPC health is SERVING"
fi

# The Docker image's HEALTHCHECK runs `faktory-gateway health`, which asks grpc.health.v1 on the
# port from GATEWAY_LISTEN. Checked here against the live gateway and against a closed port.
GATEWAY_BIN="$TARGET_DIR/debug/faktory-gateway"
if "$GATEWAY_BIN" health --help >/dev/null 2>&1; then
    if GATEWAY_LISTEN="0.0.0.0:$GATEWAY_PORT" timeout 20 "$GATEWAY_BIN" health >"$WORK/health.log" 2>&1; then
        pass "docker HEALTHCHECK command (faktory-gateway health) passes on a live gateway"
    else
        fail "docker HEALTHCHECK command (faktory-gateway health) passes on a live gateway"
        cat "$WORK/health.log"
    fi
    if GATEWAY_LISTEN="127.0.0.1:$(free_port)" timeout 20 "$GATEWAY_BIN" health >/dev/null 2>&1; then
        fail "docker HEALTHCHECK command fails when nothing listens"
    else
        pass "docker HEALTHCHECK command fails when nothing listens"
    fi
else
    log "NOT CHECKED: faktory-gateway has no 'health' subcommand yet; docker/Dockerfile's HEALTHCHECK needs it"
fi

# start_py_worker NAME ARGS...: starts the package's example worker (log NAME-worker.log,
# record $WORK/NAME-done.txt: "jid a" per job run); sets WORKER_PID. `timeout --foreground`
# hands a SIGTERM to the worker once; without it timeout also signals its whole process group,
# so the worker could get a second SIGTERM ("stopping now", or killed once it had drained).
start_py_worker() {
    local name="$1"; shift
    start_bg "$name-worker" env GATEWAY_URL="$GATEWAY_URL" timeout --foreground 300 "$VPY" "$PY/worker.py" \
        --record "$WORK/$name-done.txt" "$@"
    WORKER_PID="${BG_PIDS[-1]}"
}

# stop_py_worker NAME: SIGTERM to the worker; passes if it drained cleanly (exit 0).
stop_py_worker() {
    local status=0
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    wait "$WORKER_PID" || status=$?
    if [[ $status -eq 0 ]]; then
        pass "$1: the worker drained and exited 0 on SIGTERM ($(grep '^{' "$WORK/$1-worker.log" | tail -n 1))"
    else
        fail "$1: the worker drained and exited 0 on SIGTERM (exit $status)"
        tail -n 20 "$WORK/$1-worker.log"
    fi
}

# check_ran_once NAME PUSHED_FILE: the worker's record names every pushed jid exactly once.
check_ran_once() {
    local ran
    ran="$(cut -d' ' -f1 "$WORK/$1-done.txt" 2>/dev/null | sort)"
    if [[ "$ran" == "$(sort "$2")" ]] && [[ -z "$(uniq -d <<<"$ran")" ]]; then
        pass "$1: every pushed job ran exactly once ($(wc -l <"$2") jobs)"
    else
        fail "$1: every pushed job ran exactly once (pushed $(wc -l <"$2"), runs $(wc -l <<<"$ran"), distinct $(sort -u <<<"$ran" | wc -l))"
    fi
}

# wait_settled NAME PROCESSED: Faktory processed PROCESSED jobs in all, nothing queued or reserved.
wait_settled() {
    local info
    if info="$(timeout 150 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" \
        --wait-processed "$2" --timeout 120)"; then
        pass "$1: Faktory processed every job, nothing queued or reserved"
    else
        fail "$1: Faktory processed every job, nothing queued or reserved ($info)"
    fi
}

# 2. The gateway killed (no drain) while the Python worker runs a full window, and started again
#    on the same port: the worker keeps its running and buffered jobs, lists them in its next
#    hello, sends the results that finished meanwhile to the new gateway (which has never seen
#    those jobs and forwards the acks to Faktory by jid), and every job runs exactly once.
#    Slow jobs (600 ms, 4 at a time, at most 4 prefetched) leave nothing unstarted at Faktory.
#    Runs first: a gateway that has served no worker yet has no FETCH waiting at Faktory, so it
#    holds no job it has not delivered (a killed gateway leaves those to Faktory's reservation
#    expiry).
RESTART_JOBS=12
timeout 60 "$VPY" "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$RESTART_JOBS" \
    --jids-out "$WORK/restart-pushed.txt" >"$WORK/restart-producer.log" 2>&1 ||
    cat "$WORK/restart-producer.log"
WORKER_CONCURRENCY=4 WORKER_MAX_PREFETCH=4 start_py_worker restart --work-ms 600
# Kill while the first four jobs run, so that they finish while no gateway is up.
timeout 30 bash -c "until grep -q 'work stream open' '$WORK/restart-worker.log'; do sleep 0.02; done" ||
    log "the restart worker opened no stream in 30 s; killing the gateway anyway"
sleep 0.2
kill -KILL "$GATEWAY_PID"
wait "$GATEWAY_PID" 2>/dev/null || true
sleep 0.6
start_gateway gateway-restarted
wait_settled "gateway killed and restarted mid-run" "$RESTART_JOBS"
stop_py_worker restart
check_ran_once restart "$WORK/restart-pushed.txt"
if [[ "$(grep '^{' "$WORK/restart-worker.log" | tail -n 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["sessions"])' 2>/dev/null)" -ge 2 ]]; then
    pass "the restart worker reconnected to the new gateway"
else
    fail "the restart worker reconnected to the new gateway"
fi
PROCESSED=$RESTART_JOBS

# run_round NAME JOBS PRODUCER...: a Python worker runs what the producer (which must write the
# jids it got to $WORK/NAME-pushed.txt) pushes; then the checks.
run_round() {
    local name="$1" jobs="$2"; shift 2
    WORKER_CONCURRENCY=8 start_py_worker "$name"
    if ! timeout 120 "$@" --gateway "$GATEWAY_URL" --count "$jobs" \
        --jids-out "$WORK/$name-pushed.txt" >"$WORK/$name-producer.log" 2>&1; then
        fail "$name: producer pushed $jobs jobs, all accepted"
        cat "$WORK/$name-producer.log"
        return
    fi
    pass "$name: producer pushed $jobs jobs, all accepted ($(tail -n 1 "$WORK/$name-producer.log"))"
    PROCESSED=$((PROCESSED + jobs))
    wait_settled "$name" "$PROCESSED"
    stop_py_worker "$name"
    check_ran_once "$name" "$WORK/$name-pushed.txt"
}

# 3. Python producer -> Python worker.
run_round python "$PY_JOBS" "$VPY" "$PY/producer.py" --batch 250 --parallel 4
# 4. Node producer -> Python worker.
run_round node "$NODE_JOBS" node "$EXAMPLES/node/producer.js" --batch 250 --parallel 4

# faktory_failures: INFO's total_failures.
faktory_failures() {
    python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["faktory"]["total_failures"])'
}

# 5. Across languages, both ways: the Rust SDK's example producer feeds the Python worker, and
#    the Python producer feeds the Rust SDK's example worker. Same `add` job shape everywhere;
#    a job one side could not parse would show up as a failure. add_producer prints no jids;
#    its jobs carry a = 0..N-1, so "every job ran once" is every a exactly once under N
#    distinct jids.
failures_before="$(faktory_failures)"
WORKER_CONCURRENCY=50 start_py_worker rust-to-python
started=$SECONDS
if timeout 300 env GATEWAY_PRODUCER_TOKEN= "$TARGET_DIR/debug/examples/add_producer" \
    --gateway "$GATEWAY_URL" --jobs "$RUST_TO_PY_JOBS" --batch 500 >"$WORK/add_producer.log" 2>&1; then
    pass "Rust add_producer pushed $RUST_TO_PY_JOBS jobs ($(tail -n 1 "$WORK/add_producer.log"))"
else
    fail "Rust add_producer pushed $RUST_TO_PY_JOBS jobs"
    tail -n 5 "$WORK/add_producer.log"
fi
PROCESSED=$((PROCESSED + RUST_TO_PY_JOBS))
wait_settled "Rust add_producer -> Python worker ($((SECONDS - started)) s)" "$PROCESSED"
stop_py_worker rust-to-python
if python3 - "$WORK/rust-to-python-done.txt" "$RUST_TO_PY_JOBS" <<'PY'
import sys
runs = [line.split() for line in open(sys.argv[1])]
n = int(sys.argv[2])
jids, values = {jid for jid, _ in runs}, sorted(int(a) for _, a in runs)
sys.exit(0 if len(runs) == n and len(jids) == n and values == list(range(n))
         else f"{len(runs)} runs, {len(jids)} distinct jids, arguments 0..{n - 1} each once: "
              f"{values == list(range(n))}")
PY
then
    pass "Rust add_producer -> Python worker: every one of the $RUST_TO_PY_JOBS jobs ran exactly once"
else
    fail "Rust add_producer -> Python worker: every one of the $RUST_TO_PY_JOBS jobs ran exactly once"
fi
if [[ "$(faktory_failures)" == "$failures_before" ]]; then
    pass "Rust add_producer -> Python worker: no job failed"
else
    fail "Rust add_producer -> Python worker: no job failed"
fi

RUST_JOBS="${RUST_JOBS:-1000}"
start_bg add_worker env WORKER_CONCURRENCY=8 GATEWAY_WORKER_TOKEN= \
    "$TARGET_DIR/debug/examples/add_worker" --gateway "$GATEWAY_URL"
add_worker_pid="${BG_PIDS[-1]}"
if timeout 60 "$VPY" "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$RUST_JOBS" \
    >"$WORK/python-to-rust-producer.log" 2>&1 &&
    timeout 90 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" \
        --wait-processed "$((PROCESSED + RUST_JOBS))" --timeout 60 >/dev/null &&
    [[ "$(faktory_failures)" == "$failures_before" ]]; then
    pass "Python producer -> Rust add_worker: $RUST_JOBS jobs processed, none failed, Faktory settled"
else
    fail "Python producer -> Rust add_worker: $RUST_JOBS jobs processed, none failed, Faktory settled"
    tail -n 5 "$WORK/python-to-rust-producer.log" "$WORK/add_worker.log"
fi
PROCESSED=$((PROCESSED + RUST_JOBS))
# The example worker stops gracefully on SIGINT (the image's STOPSIGNAL; see docker/Dockerfile).
kill -INT "$add_worker_pid"
add_worker_status=0
timeout 40 tail --pid="$add_worker_pid" -f /dev/null || add_worker_status=timeout
wait "$add_worker_pid" || add_worker_status=$?
if [[ "$add_worker_status" == 0 ]]; then
    pass "Rust add_worker exits 0 on SIGINT"
else
    fail "Rust add_worker exits 0 on SIGINT (status $add_worker_status)"
    tail -n 5 "$WORK/add_worker.log"
fi

# 6. Graceful shutdown with jobs in flight: SIGTERM to the gateway while a slow worker holds a
#    full window. The worker must get a drain notice; the gateway must exit 0; afterwards every
#    pushed job was either run by the worker (its results settled before it closed the drained
#    stream) or is back in Faktory, never both, never reserved.
DRAIN_JOBS=400
WORKER_CONCURRENCY=4 start_py_worker drain --work-ms 100
DRAIN_WORKER_PID="$WORKER_PID"
if ! timeout 60 "$VPY" "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$DRAIN_JOBS" \
    --jids-out "$WORK/drain-pushed.txt" >"$WORK/drain-producer.log" 2>&1; then
    cat "$WORK/drain-producer.log"
fi
# Wait until the worker has finished a few jobs, so the drain has running and buffered ones.
timeout 60 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" --timeout 30 \
    --wait-processed "$((PROCESSED + 8))" --allow-pending >/dev/null ||
    log "the drain worker has not finished 8 jobs yet; draining anyway"
kill -TERM "$GATEWAY_PID"
gateway_status=0
# The gateway's default shutdown grace is 25 s; allow it plus a margin.
if timeout 60 tail --pid="$GATEWAY_PID" -f /dev/null; then
    wait "$GATEWAY_PID" || gateway_status=$?
else
    gateway_status=timeout
fi
if [[ "$gateway_status" == 0 ]]; then
    pass "gateway exits 0 on SIGTERM"
else
    fail "gateway exits 0 on SIGTERM (status $gateway_status)"
fi
kill -TERM "$DRAIN_WORKER_PID" 2>/dev/null || true
wait "$DRAIN_WORKER_PID" 2>/dev/null || true
if grep -q "gateway asked to drain: shutdown" "$WORK/drain-worker.log"; then
    pass "the worker received a drain notice (reason shutdown)"
else
    fail "the worker received a drain notice (reason shutdown)"
    tail -n 20 "$WORK/drain-worker.log"
fi
busy="$(python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["faktory"]["tasks"]["Busy"]["size"])')"
if [[ "$busy" == 0 ]]; then
    pass "after the gateway stopped, no job is left reserved in Faktory"
else
    fail "after the gateway stopped, no job is left reserved in Faktory ($busy reserved)"
fi
if timeout 90 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" --take-all default --timeout 60 \
    --jids-out "$WORK/drain-returned.txt" >/dev/null; then
    cut -d' ' -f1 "$WORK/drain-done.txt" | sort >"$WORK/drain-done.sorted"
    sort -u "$WORK/drain-returned.txt" >"$WORK/drain-returned.sorted"
    both="$(comm -12 "$WORK/drain-done.sorted" "$WORK/drain-returned.sorted" | wc -l)"
    missing="$(sort -u "$WORK/drain-done.sorted" "$WORK/drain-returned.sorted" |
        comm -23 <(sort -u "$WORK/drain-pushed.txt") - | wc -l)"
    counts="run by the worker $(wc -l <"$WORK/drain-done.sorted"), released back to Faktory $(wc -l <"$WORK/drain-returned.sorted"), both $both, neither $missing"
    if [[ "$both" == 0 && "$missing" == 0 ]]; then
        pass "every job pushed before the shutdown was run or released back to Faktory, none both ($counts)"
    else
        fail "every job pushed before the shutdown was run or released back to Faktory, none both ($counts)"
    fi
else
    fail "the released jobs came back to Faktory's queue"
fi

finish check-other-languages
