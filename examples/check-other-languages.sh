#!/usr/bin/env bash
# Runs the Python and Node examples against a live gateway in front of the Faktory test server
# and checks that every job they pushed completed:
#
#   1. the gateway answers gRPC health (grpc.health.v1) with SERVING, and the Docker image's
#      HEALTHCHECK command (`faktory-gateway health`) agrees (once the binary has it);
#   2. the gateway killed (SIGKILL) and restarted while the Python worker holds a full window:
#      the worker's running and buffered jobs survive, their results reach Faktory through the
#      new gateway, every job is acked once and nothing stays reserved;
#   3. Python producer -> Python worker: the worker acks exactly the jids the producer was given,
#      keeps within its window, has nothing rejected, and Faktory (INFO) then counts every job
#      processed with nothing left queued or reserved;
#   4. Node producer -> Python worker: the same;
#   5. across languages: the Rust SDK's add_producer feeds the Python worker and the Python
#      producer feeds the Rust SDK's add_worker (no job fails to parse; Faktory settles), and
#      add_worker exits 0 on SIGINT;
#   6. SIGTERM to the gateway while a slow worker holds a full window: the worker is told to
#      drain, the gateway exits 0, nothing stays reserved in Faktory, and every pushed job was
#      either acked by the worker or released back to Faktory (never both).
#
# Needs cargo, python3 (pip) and node (npm); installs the pinned Python and npm dependencies if
# missing. Every step has a time limit; background processes are killed on exit.
# Closing line: "check-other-languages: N passed, N failed".
#
#   examples/check-other-languages.sh            # PY_JOBS=2000 NODE_JOBS=1000 by default

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY_JOBS="${PY_JOBS:-2000}"
NODE_JOBS="${NODE_JOBS:-1000}"
PY="$EXAMPLES/python"

build_binaries faktory-test-server faktory-gateway
log "cargo build -p faktory-gateway-worker --example add_producer --example add_worker"
(cd "$ROOT" && cargo build --quiet -p faktory-gateway-worker --example add_producer --example add_worker)
ensure_python_requirements "$PY/requirements.txt"
ensure_node_modules "$EXAMPLES/node"
python3 "$PY/gateway_stubs.py" >/dev/null

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
if timeout 60 python3 "$PY/health.py" --gateway "$GATEWAY_URL" --wait 30; then
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

# 2. The gateway killed (no drain) while the Python worker runs a full window, and started again
#    on the same port: the worker keeps its running and buffered jobs, lists them in its next
#    hello, sends the results that finished meanwhile to the new gateway (which has never seen
#    those jobs and forwards the acks to Faktory by jid), and every job is acked exactly once.
#    Slow jobs (600 ms, 4 at a time, window 8) leave nothing in flight at the kill. Runs first:
#    a gateway that has served no worker yet has no FETCH waiting at Faktory, so it holds no
#    job it has not delivered (a killed gateway leaves those to Faktory's reservation expiry).
RESTART_JOBS=12
timeout 60 python3 "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$RESTART_JOBS" \
    --jids-out "$WORK/restart-pushed.txt" >"$WORK/restart-producer.log" 2>&1 ||
    cat "$WORK/restart-producer.log"
start_bg restart-worker timeout 60 python3 "$PY/worker.py" --gateway "$GATEWAY_URL" \
    --expect "$RESTART_JOBS" --timeout 45 --concurrency 4 --prefetch 4 --work-ms 600 \
    --jids-out "$WORK/restart-done.txt"
restart_worker_pid="${BG_PIDS[-1]}"
# Kill while the first four jobs run, so that they finish while no gateway is up.
timeout 30 bash -c "until grep -q '^\[worker\] session' '$WORK/restart-worker.log'; do sleep 0.02; done" ||
    log "the restart worker opened no stream in 30 s; killing the gateway anyway"
sleep 0.2
kill -KILL "$GATEWAY_PID"
wait "$GATEWAY_PID" 2>/dev/null || true
sleep 0.6
start_gateway gateway-restarted
restart_status=0
wait "$restart_worker_pid" || restart_status=$?
summary="$(grep '^{' "$WORK/restart-worker.log" | tail -n 1 || true)"
if [[ $restart_status -eq 0 ]] &&
    diff -q <(sort -u "$WORK/restart-pushed.txt") <(sort -u "$WORK/restart-done.txt") >/dev/null &&
    python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
problems = {k: s[k] for k in ("window_violations", "rejected", "failed", "duplicates") if s[k]}
if s["sessions"] < 2:
    problems["sessions"] = s["sessions"]
sys.exit(f"worker saw {problems}" if problems else 0)
PY
then
    pass "gateway killed and restarted mid-run: the Python worker acked all $RESTART_JOBS jobs, none twice ($summary)"
else
    fail "gateway killed and restarted mid-run: the Python worker acked all $RESTART_JOBS jobs, none twice (exit $restart_status: $summary)"
    tail -n 20 "$WORK/restart-worker.log"
fi
if info="$(timeout 60 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" \
    --wait-processed "$RESTART_JOBS" --timeout 20)"; then
    pass "after the restart Faktory processed every job, nothing queued or reserved"
else
    fail "after the restart Faktory processed every job, nothing queued or reserved ($info)"
fi
PROCESSED=$RESTART_JOBS

# run_round NAME JOBS PROCESSED_SO_FAR PRODUCER...: starts a Python worker expecting JOBS jobs,
# runs the producer (which must write the jids it got to $WORK/NAME-pushed.txt), then checks.
run_round() {
    local name="$1" jobs="$2" processed="$3"; shift 3
    start_bg "$name-worker" timeout 150 python3 "$PY/worker.py" --gateway "$GATEWAY_URL" \
        --expect "$jobs" --timeout 120 --concurrency 8 --jids-out "$WORK/$name-done.txt"
    local worker_pid="${BG_PIDS[-1]}"
    if ! timeout 120 "$@" --gateway "$GATEWAY_URL" --count "$jobs" \
        --jids-out "$WORK/$name-pushed.txt" >"$WORK/$name-producer.log" 2>&1; then
        fail "$name: producer pushed $jobs jobs, all accepted"
        cat "$WORK/$name-producer.log"
        kill "$worker_pid" 2>/dev/null || true
        return
    fi
    pass "$name: producer pushed $jobs jobs, all accepted ($(tail -n 1 "$WORK/$name-producer.log"))"

    local status=0
    wait "$worker_pid" || status=$?
    local summary
    summary="$(grep '^{' "$WORK/$name-worker.log" | tail -n 1 || true)"
    if [[ $status -eq 0 ]]; then
        pass "$name: worker acked $jobs jobs and exited cleanly ($summary)"
    else
        fail "$name: worker acked $jobs jobs and exited cleanly (exit $status: $summary)"
        tail -n 20 "$WORK/$name-worker.log"
        return
    fi

    if diff <(sort -u "$WORK/$name-pushed.txt") <(sort -u "$WORK/$name-done.txt") >"$WORK/$name.diff"; then
        pass "$name: the acked jids are exactly the pushed jids"
    else
        fail "$name: the acked jids are exactly the pushed jids ($(grep -c '^[<>]' "$WORK/$name.diff") differ)"
    fi

    if python3 - "$summary" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
problems = {k: s[k] for k in ("window_violations", "rejected", "failed", "duplicates") if s[k]}
sys.exit(f"worker saw {problems}" if problems else 0)
PY
    then
        pass "$name: window kept, no result rejected, no duplicate delivery"
    else
        fail "$name: window kept, no result rejected, no duplicate delivery"
    fi

    local info
    if info="$(timeout 60 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" \
        --wait-processed "$((processed + jobs))" --timeout 45)"; then
        pass "$name: Faktory processed every job, nothing queued or reserved"
    else
        fail "$name: Faktory processed every job, nothing queued or reserved ($info)"
    fi
}

# 3. Python producer -> Python worker.
run_round python "$PY_JOBS" "$PROCESSED" python3 "$PY/producer.py" --batch 250 --parallel 4
# 4. Node producer -> Python worker.
run_round node "$NODE_JOBS" "$((PROCESSED + PY_JOBS))" node "$EXAMPLES/node/producer.js" --batch 250 --parallel 4
PROCESSED=$((PROCESSED + PY_JOBS + NODE_JOBS))

# faktory_failures: INFO's total_failures.
faktory_failures() {
    python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["faktory"]["total_failures"])'
}

# 5. Across languages, both ways: the Rust SDK's example producer feeds the Python worker, and
#    the Python producer feeds the Rust SDK's example worker. Same `add` job shape everywhere;
#    a job one side could not parse would show up as a failure.
RUST_JOBS="${RUST_JOBS:-1000}"
start_bg rust-to-python-worker timeout 150 python3 "$PY/worker.py" --gateway "$GATEWAY_URL" \
    --expect "$RUST_JOBS" --timeout 120 --concurrency 8
worker_pid="${BG_PIDS[-1]}"
if timeout 120 "$TARGET_DIR/debug/examples/add_producer" --gateway "$GATEWAY_URL" \
    --jobs "$RUST_JOBS" --batch 250 >"$WORK/add_producer.log" 2>&1 &&
    wait "$worker_pid" &&
    grep -q '"failed": 0' "$WORK/rust-to-python-worker.log" &&
    timeout 60 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" \
        --wait-processed "$((PROCESSED + RUST_JOBS))" --timeout 45 >/dev/null; then
    pass "Rust add_producer -> Python worker: $RUST_JOBS jobs acked, none failed, Faktory settled"
else
    fail "Rust add_producer -> Python worker: $RUST_JOBS jobs acked, none failed, Faktory settled"
    tail -n 5 "$WORK/add_producer.log" "$WORK/rust-to-python-worker.log"
fi
PROCESSED=$((PROCESSED + RUST_JOBS))

failures_before="$(faktory_failures)"
start_bg add_worker env WORKER_CONCURRENCY=8 "$TARGET_DIR/debug/examples/add_worker" \
    --gateway "$GATEWAY_URL"
add_worker_pid="${BG_PIDS[-1]}"
if timeout 60 python3 "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$RUST_JOBS" \
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
#    pushed job is either acked by the worker or back in Faktory (never both, never reserved).
#    The worker is stopped after the gateway: --shutdown-grace bounds its attempts to deliver
#    results still unanswered.
DRAIN_JOBS=400
start_bg drain-worker timeout 150 python3 "$PY/worker.py" --gateway "$GATEWAY_URL" \
    --concurrency 4 --prefetch 60 --work-ms 100 --timeout 120 --shutdown-grace 1 \
    --jids-out "$WORK/drain-done.txt"
DRAIN_WORKER_PID="${BG_PIDS[-1]}"
if ! timeout 60 python3 "$PY/producer.py" --gateway "$GATEWAY_URL" --count "$DRAIN_JOBS" \
    --jids-out "$WORK/drain-pushed.txt" >"$WORK/drain-producer.log" 2>&1; then
    cat "$WORK/drain-producer.log"
fi
# Wait until the worker has finished a few jobs, so the drain has running and buffered ones.
timeout 60 python3 "$EXAMPLES/faktory_info.py" "$FAKTORY_URL" --timeout 30 \
    --wait-processed "$((PROCESSED + 8))" --allow-pending >/dev/null ||
    log "the drain worker has not acked 8 jobs yet; draining anyway"
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
if grep -q "drain: shutdown" "$WORK/drain-worker.log"; then
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
    sort -u "$WORK/drain-done.txt" >"$WORK/drain-done.sorted"
    sort -u "$WORK/drain-returned.txt" >"$WORK/drain-returned.sorted"
    both="$(comm -12 "$WORK/drain-done.sorted" "$WORK/drain-returned.sorted" | wc -l)"
    # Jobs neither settled at the worker nor returned: acks that reached the gateway whose
    # Settled never came back because the gateway ended the stream first. Nothing is reserved
    # or queued (checked above and by --take-all), so Faktory has them; the worker counts them
    # among its unanswered results.
    cut="$(sort -u "$WORK/drain-done.sorted" "$WORK/drain-returned.sorted" |
        comm -23 <(sort -u "$WORK/drain-pushed.txt") - | wc -l)"
    unanswered="$(grep '^{' "$WORK/drain-worker.log" | tail -n 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["unanswered"])' || echo 0)"
    counts="acked and settled $(wc -l <"$WORK/drain-done.sorted"), released back to Faktory $(wc -l <"$WORK/drain-returned.sorted"), acked but unanswered when the gateway stopped $cut (the worker held $unanswered unanswered)"
    if [[ "$both" == 0 && "$cut" -le "$unanswered" ]]; then
        pass "every job pushed before the shutdown was acked or released back to Faktory, none both ($counts)"
        if [[ "$cut" -gt 0 ]]; then
            log "NOTE: the gateway ended the drained stream before settling $cut results"
        fi
    else
        fail "every job pushed before the shutdown was acked or released back to Faktory, none both ($both both; pushed $(sort -u "$WORK/drain-pushed.txt" | wc -l); $counts)"
    fi
else
    fail "the released jobs came back to Faktory's queue"
fi

finish check-other-languages
