#!/usr/bin/env bash
# Checks the project's Faktory test server with independent Faktory clients, which were written
# against real Faktory: PyPI `faktory` (third-party-clients/faktory_python.py) and npm
# `faktory-worker` (third-party-clients/faktory_worker_node.js). Each runs push, fetch, ack and
# fail round trips and compares INFO's counters with what real Faktory reports.
#
# Needs cargo, python3 (pip) and node (npm); installs the pinned clients if missing. Closing
# line: "check-third-party-clients: N passed, N failed" (each client prints its own lines too).

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS="$EXAMPLES/third-party-clients"

build_binaries faktory-test-server
ensure_python_requirements "$CLIENTS/requirements.txt"
ensure_node_modules "$CLIENTS"

# A fresh server per client, so each one's counters start from zero.
start_test_server faktory-test-server-python
if FAKTORY_URL="$FAKTORY_URL" timeout 120 python3 "$CLIENTS/faktory_python.py"; then
    pass "PyPI faktory client against the test server"
else
    fail "PyPI faktory client against the test server"
fi

start_test_server faktory-test-server-node
if FAKTORY_URL="$FAKTORY_URL" timeout 120 node "$CLIENTS/faktory_worker_node.js"; then
    pass "npm faktory-worker client against the test server"
else
    fail "npm faktory-worker client against the test server"
fi

finish check-third-party-clients
