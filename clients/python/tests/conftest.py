"""Shared fixtures: the project's Faktory test server and a real gateway binary, over real
sockets on 127.0.0.1.

The binaries come from ``FAKTORY_GATEWAY_BIN`` and ``FAKTORY_TEST_SERVER_BIN``, else from
``$CARGO_TARGET_DIR/debug`` (or the repository's ``target/debug``); build them with
``cargo build -p faktory-gateway -p faktory-test-server``. Without them the tests that need
them are skipped, unless ``FAKTORY_GATEWAY_REQUIRE_BINARIES=1`` (as in the check script), which
makes a missing binary an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "examples"))
import faktory_info  # noqa: E402  (the checks' Faktory INFO helper)
from ports import free_port, wait_port  # noqa: E402,F401  (also used by the tests)


def _binary(variable: str, name: str) -> Path:
    given = os.environ.get(variable)
    if given:
        path = Path(given)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / name
    if not path.exists():
        message = f"{name} not found at {path} (set {variable} or build it with cargo)"
        if os.environ.get("FAKTORY_GATEWAY_REQUIRE_BINARIES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    """Polls ``condition`` until it returns something true; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """A child process whose output goes to a log file; stopped at teardown."""

    def __init__(self, args, log: Path, env=None):
        self.args = [str(a) for a in args]
        self.log = log
        self.out = open(log, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=env)

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()

    def output(self) -> str:
        self.out.flush()
        return self.log.read_text(errors="replace")


class Faktory:
    """The Faktory test server."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.process = Process([_binary("FAKTORY_TEST_SERVER_BIN", "faktory-test-server"),
                                "--listen", f"127.0.0.1:{self.port}", "--cost-model", "none"],
                               tmp / "faktory-test-server.log")
        wait_port(self.port)

    def info(self) -> dict:
        return faktory_info.info(self.url)["faktory"]

    def settled(self, processed: int) -> dict:
        """Faktory's counters once it has processed ``processed`` jobs and holds nothing queued
        or reserved (fails the test after 60 s)."""
        return wait_for(lambda: (lambda f: f if faktory_info.settled({"faktory": f}, processed, False)
                                 else None)(self.info()), 60, f"Faktory to process {processed}")


class Gateway:
    """A gateway in front of ``faktory``; ``restart()`` kills it and starts another on the
    same port."""

    def __init__(self, faktory: Faktory, tmp: Path, *extra: str):
        self.binary = _binary("FAKTORY_GATEWAY_BIN", "faktory-gateway")
        self.faktory = faktory
        self.tmp = tmp
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.starts = 0
        self.process = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        self.process = Process([self.binary, "--faktory-url", self.faktory.url,
                                "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", "off",
                                "--reconnect-grace-ms", "1000", *self.extra],
                               self.tmp / f"gateway-{self.port}.log", env=env)
        wait_port(self.port)

    def freeze(self) -> None:
        """Stops the gateway process (SIGSTOP): its sockets stay open, it answers nothing."""
        self.process.kill(signal.SIGSTOP)

    def restart(self, pause: float = 0.5) -> None:
        self.process.kill(signal.SIGKILL)
        self.process.wait(10)
        time.sleep(pause)
        self.start()


@pytest.fixture
def faktory(tmp_path):
    server = Faktory(tmp_path)
    yield server
    server.process.stop()


@pytest.fixture
def gateway(faktory, tmp_path):
    gw = Gateway(faktory, tmp_path)
    yield gw
    gw.process.stop()


@pytest.fixture
def start_gateway(faktory, tmp_path):
    """Starts further gateways (e.g. with tokens) beside the same Faktory."""
    started = []

    def start(*extra: str) -> Gateway:
        gw = Gateway(faktory, tmp_path, *extra)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.process.stop()


class RunningWorker:
    """A :class:`faktory_gateway.Worker` running on a thread of the test process."""

    def __init__(self, worker):
        import asyncio

        self.worker = worker
        self.result = None
        self.error = None

        def run():
            try:
                self.result = asyncio.run(worker.run_async())
            except BaseException as e:  # noqa: BLE001 - reported by stop()
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 30.0):
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def run_worker():
    running = []

    def start(worker) -> RunningWorker:
        rw = RunningWorker(worker)
        running.append(rw)
        return rw

    yield start
    for rw in running:
        if rw.thread.is_alive():
            rw.worker.stop()
            rw.thread.join(30)
