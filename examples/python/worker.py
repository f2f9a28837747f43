#!/usr/bin/env python3
"""A Faktory Gateway worker in plain Python, with stock grpcio stubs.

It shows everything a worker in any language has to do on the ``Work`` stream:

* send ``Hello`` (queues, job types, window) and read the ``Welcome`` (the window in force and
  the heartbeat interval);
* run the jobs of each ``JobBatch`` on a thread pool; the gateway never has more unfinished jobs
  here than the window, and the worker checks that it keeps to it;
* send results in batches: acks and fails collected for a few milliseconds go out as one
  ``Acks`` and one ``Fails`` message, each result reopening one slot of the window;
* answer the gateway's heartbeat pings with pongs and send its own pings at the interval the
  welcome asks for;
* on ``Drain`` (or SIGTERM/SIGINT, or after ``--expect`` jobs): start nothing new, release the
  jobs it has not started, finish the running ones, send the results, make sure the gateway has
  them (a ping whose pong comes back after everything sent before it), close the stream;
* reconnect with backoff when the stream is lost (the gateway redelivers that stream's
  unfinished jobs, so results still owed on the old stream are simply dropped).

Job types: ``add`` adds ``a`` and ``b`` of its one argument ``{"a": 1, "b": 2}``; ``fail`` raises (Faktory applies the job's retry policy).

    python3 worker.py --gateway http://127.0.0.1:7421 --concurrency 8
    python3 worker.py --expect 1000 --timeout 60 --jids-out done.txt   # used by the checks

Prints one JSON summary line at the end; exits 0 when it stopped as asked, 1 on timeout or when
the gateway broke the window, 2 on a fatal stream error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from queue import Full, Queue

import grpc

import gateway_stubs
from handlers import HANDLERS, run_job

pb, pb_grpc = gateway_stubs.load()

_CLOSE = object()  # outbox sentinel: half-close the request side of the stream
OUTBOX_CAPACITY = 1024  # messages; bounded so a dead stream cannot grow memory without limit
FATAL_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
               grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED}


def log(message: str) -> None:
    print(f"[worker] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# State that outlives one stream


@dataclass
class Totals:
    """Counters across all sessions; the summary printed at the end."""

    done: set = field(default_factory=set)  # jids acked (unique)
    failed: int = 0
    released: int = 0
    rejected: int = 0
    deliveries: int = 0
    batches: int = 0
    duplicates: int = 0
    window_violations: int = 0
    max_unfinished: int = 0
    sessions: int = 0
    drains: int = 0
    last_rtt_ms: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self, outcome: str) -> dict:
        return {"outcome": outcome, "acked": len(self.done), "failed": self.failed,
                "released": self.released, "rejected": self.rejected,
                "deliveries": self.deliveries, "batches": self.batches,
                "duplicates": self.duplicates, "window_violations": self.window_violations,
                "max_unfinished": self.max_unfinished, "sessions": self.sessions,
                "drains": self.drains, "last_rtt_ms": self.last_rtt_ms}


# ---------------------------------------------------------------------------------------------
# One Work stream


class Session:
    """One ``Work`` stream: its window, its unfinished jobs and the results it still owes."""

    def __init__(self, args, stub, pool: ThreadPoolExecutor, totals: Totals, stop: threading.Event):
        self.args = args
        self.stub = stub
        self.pool = pool
        self.totals = totals
        self.stop_requested = stop  # set by a signal, --expect or --timeout: finish and exit
        self.outbox: Queue = Queue(maxsize=OUTBOX_CAPACITY)
        self.cond = threading.Condition()
        self.unfinished: dict[str, Future | None] = {}  # delivered, result not yet sent
        self.acks: list[str] = []
        self.fails: list = []
        self.window = args.window
        self.heartbeat_interval = 5.0
        self.finishing = False  # no new job starts; new deliveries are released
        self.closed = threading.Event()  # set once the request side is half-closed
        self.ended = threading.Event()  # set once the response side has ended
        self.outcome = "lost"
        self.ping_ids = itertools.count(1)
        self.pings: dict[int, float] = {}
        self.pongs: dict[int, threading.Event] = {}
        self.call = None

    # -- sending ------------------------------------------------------------------------------

    def requests(self):
        """The request stream: the hello, then whatever the other threads put in the outbox."""
        hello = pb.Hello(
            worker_id=self.args.worker_id,
            hostname=socket.gethostname(),
            labels=["python", "example"],
            queues=self.args.queues,
            jobtypes=self.args.jobtypes,
            window=self.args.window,
            max_message_bytes=gateway_stubs.MAX_MESSAGE_BYTES,
        )
        yield pb.WorkerMessage(hello=hello)
        while True:
            message = self.outbox.get()
            if message is _CLOSE:
                return
            yield message

    def send(self, message) -> bool:
        """Queues a message for the stream; gives up when the stream has ended."""
        while not self.ended.is_set():
            try:
                self.outbox.put(message, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def ping(self) -> tuple[int, threading.Event]:
        ping_id = next(self.ping_ids)
        answered = threading.Event()
        with self.cond:
            self.pings[ping_id] = time.monotonic()
            self.pongs[ping_id] = answered
        self.send(pb.WorkerMessage(heartbeat=pb.Heartbeat(ping_id=ping_id)))
        return ping_id, answered

    # -- receiving ----------------------------------------------------------------------------

    def run(self) -> str:
        """Runs the stream until it ends; returns why: finished, drained, lost or fatal."""
        self.call = self.stub.Work(self.requests(),
                                   metadata=gateway_stubs.auth_metadata(self.args.token))
        threads = [threading.Thread(target=self.flush_loop, daemon=True),
                   threading.Thread(target=self.heartbeat_loop, daemon=True),
                   threading.Thread(target=self.watch_stop, daemon=True)]
        welcomed = False
        try:
            for message in self.call:
                kind = message.WhichOneof("kind")
                if kind == "welcome":
                    self.on_welcome(message.welcome)
                    welcomed = True
                    for thread in threads:
                        thread.start()
                elif kind == "jobs":
                    self.on_jobs(message.jobs)
                elif kind == "heartbeat":
                    self.on_heartbeat(message.heartbeat)
                elif kind == "drain":
                    self.on_drain(message.drain)
                elif kind == "rejected":
                    self.on_rejected(message.rejected)
        except grpc.RpcError as error:
            if not self.closed.is_set():
                log(f"stream error: {error.code().name}: {error.details()}")
                if error.code() in FATAL_CODES:
                    self.outcome = "fatal"
        finally:
            self.ended.set()
            self.abandon()
            try:
                self.outbox.put_nowait(_CLOSE)  # unblocks the request generator
            except Full:
                pass
            for thread in threads:
                if thread.is_alive():
                    thread.join(timeout=2)
        if not welcomed and self.outcome == "lost":
            log("stream ended before the welcome")
        return self.outcome

    def on_welcome(self, welcome) -> None:
        self.window = welcome.window or self.args.window
        if welcome.heartbeat_interval_ms:
            self.heartbeat_interval = welcome.heartbeat_interval_ms / 1000
        with self.totals.lock:
            self.totals.sessions += 1
        log(f"session {welcome.session_id}: window {self.window} (max {welcome.max_window}), "
            f"heartbeat every {self.heartbeat_interval:.1f}s")

    def on_jobs(self, batch) -> None:
        to_release: list[str] = []
        to_start = []
        with self.cond:
            for delivery in batch.deliveries:
                jid = delivery.job.jid
                if jid in self.unfinished:
                    # Already running here: never run one job twice at once.
                    with self.totals.lock:
                        self.totals.duplicates += 1
                    continue
                self.unfinished[jid] = None
                if self.finishing:
                    to_release.append(jid)
                else:
                    to_start.append(delivery)
            unfinished = len(self.unfinished)
        with self.totals.lock:
            self.totals.batches += 1
            self.totals.deliveries += len(batch.deliveries)
            self.totals.max_unfinished = max(self.totals.max_unfinished, unfinished)
            if unfinished > self.window:
                self.totals.window_violations += 1
                log(f"gateway broke the window: {unfinished} unfinished > window {self.window}")
        for delivery in to_start:
            future = self.pool.submit(run_job, delivery, self.args.work_ms / 1000)
            with self.cond:
                self.unfinished[delivery.job.jid] = future
            future.add_done_callback(lambda f, jid=delivery.job.jid: self.on_job_done(jid, f))
        if to_release:
            self.release(to_release)

    def on_job_done(self, jid: str, future: Future) -> None:
        if future.cancelled():
            return  # released, see finish()
        error = future.exception()
        with self.cond:
            if jid not in self.unfinished:
                return
            if error is None:
                self.acks.append(jid)
            else:
                lines = traceback.format_exception(type(error), error, error.__traceback__)
                self.fails.append(pb.JobFailure(jid=jid, errtype=type(error).__name__,
                                                message=str(error), backtrace=lines[-10:]))
            self.cond.notify_all()

    def on_heartbeat(self, heartbeat) -> None:
        if heartbeat.ping_id:
            self.send(pb.WorkerMessage(heartbeat=pb.Heartbeat(pong_id=heartbeat.ping_id)))
        if heartbeat.pong_id:
            with self.cond:
                sent = self.pings.pop(heartbeat.pong_id, None)
                answered = self.pongs.pop(heartbeat.pong_id, None)
            if sent is not None:
                with self.totals.lock:
                    self.totals.last_rtt_ms = round((time.monotonic() - sent) * 1000, 3)
            if answered is not None:
                answered.set()

    def on_drain(self, drain) -> None:
        log(f"drain: {drain.reason or 'no reason given'}")
        with self.totals.lock:
            self.totals.drains += 1
        deadline = drain.deadline_unix_ms / 1000 if drain.deadline_unix_ms else time.time() + 30
        threading.Thread(target=self.finish, args=("drained", deadline), daemon=True).start()

    def on_rejected(self, rejected) -> None:
        with self.totals.lock:
            self.totals.rejected += len(rejected.results)
        for result in rejected.results:
            log(f"gateway rejected result for {result.jid}: {result.reason}")

    # -- background loops ---------------------------------------------------------------------

    def flush_loop(self) -> None:
        """Sends results in batches: waits for the first, lingers briefly to collect more."""
        linger = self.args.result_linger_ms / 1000
        while not self.ended.is_set():
            with self.cond:
                self.cond.wait_for(lambda: self.acks or self.fails or self.ended.is_set(), timeout=0.5)
                pending = len(self.acks) + len(self.fails)
            if not pending:
                continue
            if pending < self.args.result_batch and linger:
                time.sleep(linger)
            self.flush()

    def flush(self) -> None:
        with self.cond:
            acks, self.acks = self.acks[: self.args.result_batch], self.acks[self.args.result_batch:]
            fails, self.fails = self.fails[: self.args.result_batch], self.fails[self.args.result_batch:]
            for jid in acks:
                self.unfinished.pop(jid, None)
            for failure in fails:
                self.unfinished.pop(failure.jid, None)
            self.cond.notify_all()
        if acks:
            self.send(pb.WorkerMessage(acks=pb.Acks(jids=acks)))
        if fails:
            self.send(pb.WorkerMessage(fails=pb.Fails(failures=fails)))
        with self.totals.lock:
            self.totals.done.update(acks)
            self.totals.failed += len(fails)

    def release(self, jids: list[str]) -> None:
        with self.cond:
            for jid in jids:
                self.unfinished.pop(jid, None)
            self.cond.notify_all()
        self.send(pb.WorkerMessage(releases=pb.Releases(jids=jids)))
        with self.totals.lock:
            self.totals.released += len(jids)

    def heartbeat_loop(self) -> None:
        while not self.ended.wait(self.heartbeat_interval):
            self.ping()

    def watch_stop(self) -> None:
        """Turns a local stop request (signal, --expect, --timeout) into a graceful finish."""
        while not self.ended.is_set():
            if self.stop_requested.wait(0.2):
                self.finish("finished", time.time() + self.args.shutdown_grace)
                return

    # -- ending -------------------------------------------------------------------------------

    def finish(self, outcome: str, deadline: float) -> None:
        """Drains this session: release unstarted jobs, finish running ones, confirm, close."""
        with self.cond:
            if self.finishing:
                return
            self.finishing = True
            unstarted = [jid for jid, fut in self.unfinished.items() if fut is not None and fut.cancel()]
        if unstarted:
            self.release(unstarted)
        # Wait for running jobs to finish and for their results to be sent.
        with self.cond:
            self.cond.wait_for(lambda: not self.unfinished or self.ended.is_set(),
                               timeout=max(0.0, deadline - time.time()))
            left = len(self.unfinished)
        if left:
            log(f"{left} jobs still unfinished at the drain deadline; the gateway releases them")
        # Everything sent before this ping has reached the gateway once its pong is back.
        _, answered = self.ping()
        if not answered.wait(timeout=max(1.0, min(10.0, deadline - time.time()))):
            log("no pong before closing; results may not have arrived")
        self.outcome = outcome
        self.closed.set()
        self.send(_CLOSE)
        # The gateway ends the stream once we half-close; don't wait for it forever.
        if not self.ended.wait(timeout=5) and self.call is not None:
            self.call.cancel()

    def abandon(self) -> None:
        """The stream is gone: cancel unstarted jobs; the gateway redelivers what we held."""
        with self.cond:
            for future in self.unfinished.values():
                if future is not None:
                    future.cancel()
            self.unfinished.clear()
            self.acks.clear()
            self.fails.clear()
            self.cond.notify_all()


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gateway_stubs.add_connection_args(p, "GATEWAY_WORKER_TOKEN")
    p.add_argument("--worker-id", default=f"python-{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--queues", nargs="+", default=["default"], help="queues, highest priority first")
    p.add_argument("--jobtypes", nargs="*", default=sorted(HANDLERS),
                   help="job types to ask for (default: those with a handler)")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "8")),
                   help="jobs run at once (env WORKER_CONCURRENCY)")
    p.add_argument("--prefetch", type=int, default=64,
                   help="jobs buffered beyond the running ones; covers the link's round trip")
    p.add_argument("--window", type=int, default=None, help="default: concurrency + prefetch")
    p.add_argument("--work-ms", type=float, default=0.0, help="simulated work per job")
    p.add_argument("--result-batch", type=int, default=500, help="most results per message")
    p.add_argument("--result-linger-ms", type=float, default=5.0,
                   help="how long to collect results before sending a batch")
    p.add_argument("--expect", type=int, default=0, help="stop after acking this many distinct jobs")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (exit 1)")
    p.add_argument("--shutdown-grace", type=float, default=25.0,
                   help="seconds running jobs get to finish on a local stop")
    p.add_argument("--jids-out", help="write the acked jids here, one per line")
    args = p.parse_args()
    args.window = args.window or args.concurrency + args.prefetch
    if args.concurrency < 1 or args.window < 1:
        p.error("--concurrency and --window must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    stub = pb_grpc.GatewayStub(gateway_stubs.channel(args.gateway))
    totals = Totals()
    stop = threading.Event()
    reason = {"why": "stopped"}

    def on_signal(signum, _frame):
        reason["why"] = "stopped"
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()

    def watchdog():
        while not stop.is_set():
            with totals.lock:
                reached = args.expect and len(totals.done) >= args.expect
            if reached:
                reason["why"] = "expected"
                stop.set()
            elif args.timeout and time.monotonic() - started > args.timeout:
                reason["why"] = "timeout"
                stop.set()
            time.sleep(0.02)

    threading.Thread(target=watchdog, daemon=True).start()

    backoff = 0.2
    outcome = "stopped"
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        while not stop.is_set():
            outcome = Session(args, stub, pool, totals, stop).run()
            if outcome == "fatal":
                break
            if outcome == "finished":
                break
            if outcome == "drained":
                backoff = 0.2  # the gateway is restarting or going quiet: come back later
            delay = backoff * random.uniform(0.5, 1.5)
            log(f"stream {outcome}; reconnecting in {delay:.2f}s")
            stop.wait(delay)
            backoff = min(backoff * 2, 5.0)

    elapsed = time.monotonic() - started
    if args.jids_out:
        with open(args.jids_out, "w") as out:
            out.writelines(jid + "\n" for jid in sorted(totals.done))
    why = "fatal" if outcome == "fatal" else reason["why"]
    summary = totals.summary(why)
    summary["seconds"] = round(elapsed, 3)
    print(json.dumps(summary), flush=True)
    if why == "fatal":
        return 2
    if why == "timeout" or totals.window_violations:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
