#!/usr/bin/env python3
"""Python worker vs Rust SDK worker across an emulated slow link, side by side.

Starts the Faktory test server and a gateway next to it, and the project's ``link-emulator``
in front of the gateway (``--rtt-ms`` round trip; each direction delayed by half). Then, for
``--rounds`` rounds, alternating which goes first, it pushes ``--jobs`` ``add`` jobs and lets
one worker run them across the link: the package's example worker
(``examples/python/worker.py``) or the Rust SDK's ``add_worker``, both with ``--concurrency``
slots. The rate is measured the same way for both, from Faktory's processed counter
(INFO polled every 20 ms), over the middle 80% of the jobs (the window's ramp-up and the last
stragglers excluded); the whole run's rate is printed too. Prints each run and the ratio
Python / Rust per round; nothing is asserted.

Needs release builds of the binaries (``cargo build --release -p faktory-gateway
-p faktory-test-server -p link-emulator`` and ``cargo build --release -p
faktory-gateway-worker --example add_worker``) and the package installed in the Python that
runs this script (``pip install ./clients/python``).

    python3 clients/python/bench/python_vs_rust.py --rtt-ms 50 --jobs 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "clients" / "python" / "tests"))
import faktory_info  # noqa: E402
from ports import free_port, wait_port  # noqa: E402

from faktory_gateway import Client  # noqa: E402


class Stack:
    """Faktory test server, gateway and link emulator, stopped by ``close``."""

    def __init__(self, args, logs: Path):
        bins = Path(args.target_dir) / args.profile
        self.procs = []
        faktory_port, gateway_port = free_port(), free_port()
        self.faktory = f"tcp://127.0.0.1:{faktory_port}"
        self.spawn(logs / "faktory.log", bins / "faktory-test-server",
                   "--listen", f"127.0.0.1:{faktory_port}", "--cost-model", args.cost_model)
        wait_port(faktory_port)
        self.gateway = f"http://127.0.0.1:{gateway_port}"
        self.spawn(logs / "gateway.log", bins / "faktory-gateway", "--faktory-url", self.faktory,
                   "--listen", f"127.0.0.1:{gateway_port}", "--metrics-listen", "off")
        wait_port(gateway_port)
        link = subprocess.Popen([str(bins / "link-emulator"), "--upstream",
                                 f"127.0.0.1:{gateway_port}", "--one-way-ms",
                                 str(args.rtt_ms // 2)], stdout=subprocess.PIPE, text=True)
        self.procs.append(link)
        self.remote = f"http://{link.stdout.readline().strip()}"
        self.add_worker = bins / "examples" / "add_worker"

    def spawn(self, log: Path, *argv) -> subprocess.Popen:
        proc = subprocess.Popen([str(a) for a in argv], stdout=open(log, "wb"),
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def processed(self) -> int:
        return faktory_info.info(self.faktory)["faktory"]["total_processed"]

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_once(stack: Stack, kind: str, args, logs: Path, client: Client) -> dict:
    base = stack.processed()
    for start in range(0, args.jobs, 1000):
        results = client.push_many({"jobtype": "add", "args": [{"a": i, "b": i}]}
                                   for i in range(start, min(start + 1000, args.jobs)))
        assert all(r.accepted for r in results)
    env = {**os.environ, "GATEWAY_URL": stack.remote, "WORKER_CONCURRENCY": str(args.concurrency),
           "RUST_LOG": "warn"}
    if kind == "python":
        argv = [sys.executable, REPO / "examples" / "python" / "worker.py"]
    else:
        argv = [stack.add_worker, "--concurrency", str(args.concurrency)]
    log = open(logs / f"{kind}.log", "ab")
    started = time.monotonic()
    worker = subprocess.Popen([str(a) for a in argv], env=env, stdout=log, stderr=subprocess.STDOUT)
    marks = {}
    targets = {"p10": args.jobs // 10, "p90": args.jobs * 9 // 10, "all": args.jobs}
    deadline = started + args.timeout
    while len(marks) < len(targets) and time.monotonic() < deadline:
        done = stack.processed() - base
        now = time.monotonic()
        for name, target in targets.items():
            if name not in marks and done >= target:
                marks[name] = now
        time.sleep(0.02)
    worker.send_signal(signal.SIGINT)
    _, _, usage = os.wait4(worker.pid, 0)
    worker.returncode = 0  # reaped above
    if len(marks) < len(targets):
        return {"kind": kind, "error": f"not done in {args.timeout}s"}
    middle = (targets["p90"] - targets["p10"]) / (marks["p90"] - marks["p10"])
    # The worker's CPU time over its whole life (start-up and drain included): how close it
    # came to using up a core, i.e. whether the worker or something else set the pace.
    cpu = usage.ru_utime + usage.ru_stime
    return {"kind": kind, "middle": middle, "whole": args.jobs / (marks["all"] - started),
            "cpu_share": cpu / (marks["all"] - started), "cpu_us_per_job": cpu / args.jobs * 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtt-ms", type=int, default=50)
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--cost-model", default="none", choices=["none", "faktory-1.10"],
                   help="the test server's service times (none: memory speed, so the workers "
                        "and the gateway are the limit)")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    p.add_argument("--profile", default="release")
    args = p.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="python-vs-rust."))
    stack = Stack(args, logs)
    print(f"link {args.rtt_ms} ms RTT, {args.jobs} jobs per run, concurrency {args.concurrency}, "
          f"test server cost model {args.cost_model}; logs in {logs}", flush=True)
    ratios = []
    try:
        with Client(stack.gateway) as client:
            for round_no in range(args.rounds):
                order = ("python", "rust") if round_no % 2 == 0 else ("rust", "python")
                rates = {}
                for kind in order:
                    result = run_once(stack, kind, args, logs, client)
                    if "error" in result:
                        print(f"round {round_no + 1} {kind}: {result['error']}", flush=True)
                        continue
                    rates[kind] = result
                    print(f"round {round_no + 1} {kind:6}: {result['middle']:8.0f} jobs/s "
                          f"(middle 80%), {result['whole']:8.0f} jobs/s (whole run); worker CPU "
                          f"{result['cpu_us_per_job']:.0f} us/job, {result['cpu_share']:.0%} of "
                          f"one core", flush=True)
                if len(rates) == 2:
                    ratio = rates["python"]["middle"] / rates["rust"]["middle"]
                    ratios.append(ratio)
                    print(f"round {round_no + 1} python/rust: {ratio:.2f}", flush=True)
    finally:
        stack.close()
    if ratios:
        print(f"python/rust over {len(ratios)} rounds: median {statistics.median(ratios):.2f}, "
              f"min {min(ratios):.2f}, max {max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
