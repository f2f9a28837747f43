#!/usr/bin/env python3
"""A Faktory Gateway worker in plain Python, with stock grpcio stubs.

It shows everything a worker in any language has to do on the ``Work`` stream:

* send ``Hello`` (queues, job types, window, and in ``holding`` every job it still holds from an
  earlier stream) and read the ``Welcome`` (the window in force and the heartbeat interval);
* run the jobs of each ``JobBatch`` on a thread pool; the gateway never has more unfinished jobs
  here than the window, and the worker checks that it keeps to it;
* send results in batches: acks and fails collected for a few milliseconds go out as one
  ``Acks`` and one ``Fails`` message, each result reopening one slot of the window;
* keep every result until the gateway answers it: ``Settled`` (Faktory has it) or
  ``ResultRejected`` (it cannot be applied; logged, not sent again). A pong proves only that a
  result arrived, not that Faktory has it;
* answer the gateway's heartbeat pings with pongs and send its own pings at the interval the
  welcome asks for;
* on ``Drain`` (or SIGTERM/SIGINT, or after ``--expect`` acks are settled): start nothing new,
  release the jobs it has not started, finish the running ones, send their results, wait until
  every result is settled or rejected (up to the drain's deadline, or ``--shutdown-grace`` on a
  local stop), close the stream;
* when the stream is lost, keep everything and reconnect with backoff: running jobs go on,
  buffered jobs stay buffered and run later, and the next stream sends the unanswered results
  first (to whichever gateway: any gateway forwards a result to Faktory by jid). Its hello lists
  all of these jids in ``holding``, so the gateway that delivered them keeps them for this
  worker during its reconnect grace instead of redelivering them. A buffered job whose Faktory
  reservation ended meanwhile is not run (Faktory retries it). A local stop that finds the
  stream lost still reconnects to deliver what it holds, until its deadline.

What survives a stream lives in ``holdings.py`` beside this file; the job handlers in
``handlers.py``.

Job types: ``add`` adds ``a`` and ``b`` of its one argument ``{"a": 1, "b": 2}``; ``fail`` raises (Faktory applies the job's retry policy).

    python3 worker.py --gateway http://127.0.0.1:7421 --concurrency 8
    python3 worker.py --expect 1000 --timeout 60 --jids-out done.txt   # used by the checks

Prints one JSON summary line at the end (``acked``: distinct jobs whose ack Faktory has;
``resent``: results sent again on a later stream; ``unanswered``, ``held_jobs``: what was still
held when it stopped); exits 0 when it stopped as asked, 1 on timeout or when the gateway broke
the window, 2 on a fatal stream error.
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
from handlers import HANDLERS, ReservationEnded, run_job
from holdings import Holdings, Result

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

    acked: set = field(default_factory=set)  # jids whose ack Faktory has (settled), unique
    failed: int = 0  # fails settled
    settled: int = 0  # results the gateway answered with Settled
    rejected: int = 0  # results the gateway answered with ResultRejected
    resent: int = 0  # results sent again on a later stream
    released: int = 0
    releases_refused: int = 0  # releases of jobs the gateway did not deliver
    expired: int = 0  # jobs not run: their reservation had ended before a thread was free
    deliveries: int = 0
    batches: int = 0
    duplicates: int = 0  # deliveries of a job held here already
    window_violations: int = 0
    max_unfinished: int = 0
    sessions: int = 0
    drains: int = 0
    last_rtt_ms: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self, outcome: str, holdings: Holdings) -> dict:
        return {"outcome": outcome, "acked": len(self.acked), "failed": self.failed,
                "settled": self.settled, "rejected": self.rejected, "resent": self.resent,
                "released": self.released, "releases_refused": self.releases_refused,
                "expired": self.expired, "unanswered": holdings.unanswered(),
                "held_jobs": holdings.jobs_held(), "deliveries": self.deliveries,
                "batches": self.batches, "duplicates": self.duplicates,
                "window_violations": self.window_violations,
                "max_unfinished": self.max_unfinished, "sessions": self.sessions,
                "drains": self.drains, "last_rtt_ms": self.last_rtt_ms}


class Worker:
    """What consecutive streams share: the thread pool, the holdings, the counters, the stop."""

    def __init__(self, args, stub, pool: ThreadPoolExecutor):
        self.args = args
        self.stub = stub
        self.pool = pool
        self.holdings = Holdings()
        self.totals = Totals()
        self.stop = threading.Event()  # set by a signal, --expect or --timeout: finish and exit
        self._stop_deadline: float | None = None

    def stop_deadline(self) -> float:
        """Wall-clock time by which a requested stop gives up on what is still held."""
        if self._stop_deadline is None:
            self._stop_deadline = time.time() + self.args.shutdown_grace
        return self._stop_deadline

    def start_job(self, delivery) -> None:
        jid = delivery.job.jid
        future = self.pool.submit(run_job, delivery, self.args.work_ms / 1000)
        self.holdings.started(jid, future)
        future.add_done_callback(lambda f: self.on_job_done(jid, f))

    def on_job_done(self, jid: str, future: Future) -> None:
        """Runs on the job's thread: its result waits in the holdings, whatever stream is open."""
        if future.cancelled():
            return  # released, see Session.finish
        error = future.exception()
        if isinstance(error, ReservationEnded):
            with self.totals.lock:
                self.totals.expired += 1
            self.holdings.finished(jid, None)
            return
        failure = None
        if error is not None:
            lines = traceback.format_exception(type(error), error, error.__traceback__)
            failure = pb.JobFailure(jid=jid, errtype=type(error).__name__, message=str(error),
                                    backtrace=lines[-10:])
        self.holdings.finished(jid, Result(jid, failure))

    def pause(self, seconds: float) -> None:
        """Waits before reconnecting; cut short once a requested stop has nothing left to do."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            if not self.stop.is_set():
                self.stop.wait(left)
                continue
            left = min(left, self.stop_deadline() - time.time())
            if left <= 0:
                return
            with self.holdings.cond:
                if self.holdings.cond.wait_for(self.holdings.idle, timeout=left):
                    return


# ---------------------------------------------------------------------------------------------
# One Work stream


class Session:
    """One ``Work`` stream: its window, its heartbeats, and sending what the worker holds."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.args = worker.args
        self.holdings = worker.holdings
        self.totals = worker.totals
        self.outbox: Queue = Queue(maxsize=OUTBOX_CAPACITY)
        self.lock = threading.Lock()
        self.window = self.args.window
        self.heartbeat_interval = 5.0
        self.finishing = False  # no new job starts; new deliveries are released
        self.closed = threading.Event()  # set once the request side is half-closed
        self.ended = threading.Event()  # set once the response side has ended
        self.outcome = "lost"
        self.welcomed = False
        self.stream = 0  # this stream's number in the holdings
        self.ping_ids = itertools.count(1)
        self.pings: dict[int, float] = {}
        self.call = None

    # -- sending ------------------------------------------------------------------------------

    def hello(self):
        stopping = self.worker.stop.is_set()
        return pb.Hello(
            worker_id=self.args.worker_id,
            hostname=socket.gethostname(),
            labels=["python", "example"],
            queues=self.args.queues,
            jobtypes=self.args.jobtypes,
            # Stopping, the stream only delivers results: ask for as little as possible.
            window=1 if stopping else self.args.window,
            max_message_bytes=gateway_stubs.MAX_MESSAGE_BYTES,
            holding=self.holdings.holding(),
        )

    def requests(self, hello):
        """The request stream: the hello, then whatever the other threads put in the outbox."""
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

    def ping(self) -> None:
        ping_id = next(self.ping_ids)
        with self.lock:
            self.pings[ping_id] = time.monotonic()
        self.send(pb.WorkerMessage(heartbeat=pb.Heartbeat(ping_id=ping_id)))

    # -- receiving ----------------------------------------------------------------------------

    def run(self) -> str:
        """Runs the stream until it ends; returns why: finished, drained, lost or fatal."""
        self.stream, again = self.holdings.new_stream()
        hello = self.hello()
        if again:
            log(f"{again} results sent on the last stream were not answered; they go again")
            with self.totals.lock:
                self.totals.resent += again
        self.call = self.worker.stub.Work(self.requests(hello),
                                          metadata=gateway_stubs.auth_metadata(self.args.token))
        threads = [threading.Thread(target=self.flush_loop, daemon=True),
                   threading.Thread(target=self.heartbeat_loop, daemon=True),
                   threading.Thread(target=self.watch_stop, daemon=True)]
        try:
            for message in self.call:
                kind = message.WhichOneof("kind")
                if kind == "welcome":
                    self.on_welcome(message.welcome, len(hello.holding))
                    self.welcomed = True
                    for thread in threads:
                        thread.start()
                elif kind == "jobs":
                    self.on_jobs(message.jobs)
                elif kind == "settled":
                    self.on_settled(message.settled)
                elif kind == "rejected":
                    self.on_rejected(message.rejected)
                elif kind == "heartbeat":
                    self.on_heartbeat(message.heartbeat)
                elif kind == "drain":
                    self.on_drain(message.drain)
        except grpc.RpcError as error:
            if not self.closed.is_set():
                log(f"stream error: {error.code().name}: {error.details()}")
                if error.code() in FATAL_CODES:
                    self.outcome = "fatal"
        finally:
            # Nothing is dropped: running jobs go on, and every result not answered on this
            # stream goes out again on the next one.
            self.ended.set()
            self.holdings.wake()
            try:
                self.outbox.put_nowait(_CLOSE)  # unblocks the request generator
            except Full:
                pass
            for thread in threads:
                if thread.is_alive():
                    thread.join(timeout=2)
        if not self.welcomed and self.outcome == "lost":
            log("stream ended before the welcome")
        return self.outcome

    def on_welcome(self, welcome, holding: int) -> None:
        self.window = welcome.window or self.args.window
        if welcome.heartbeat_interval_ms:
            self.heartbeat_interval = welcome.heartbeat_interval_ms / 1000
        with self.totals.lock:
            self.totals.sessions += 1
        log(f"session {welcome.session_id}: window {self.window} (max {welcome.max_window}), "
            f"heartbeat every {self.heartbeat_interval:.1f}s, holding {holding} jobs")

    def on_jobs(self, batch) -> None:
        to_release: list[str] = []
        to_start = []
        duplicates = 0
        for delivery in batch.deliveries:
            if not self.holdings.accept(delivery.job.jid):
                duplicates += 1
            elif self.finishing:
                to_release.append(delivery.job.jid)
            else:
                to_start.append(delivery)
        unfinished = self.holdings.outstanding()
        with self.totals.lock:
            self.totals.batches += 1
            self.totals.deliveries += len(batch.deliveries)
            self.totals.duplicates += duplicates
            self.totals.max_unfinished = max(self.totals.max_unfinished, unfinished)
            if unfinished > self.window:
                self.totals.window_violations += 1
                log(f"gateway broke the window: {unfinished} unfinished > window {self.window}")
        for delivery in to_start:
            self.worker.start_job(delivery)
        if to_release:
            self.release(to_release)

    def on_settled(self, settled) -> None:
        results = [r for r in map(self.holdings.answered, settled.jids) if r is not None]
        with self.totals.lock:
            self.totals.settled += len(results)
            self.totals.acked.update(r.jid for r in results if r.is_ack)
            self.totals.failed += sum(1 for r in results if not r.is_ack)

    def on_rejected(self, rejected) -> None:
        for item in rejected.results:
            if self.holdings.answered(item.jid) is None:
                what, counter = "release", "releases_refused"
            else:
                what, counter = "result", "rejected"
            with self.totals.lock:
                setattr(self.totals, counter, getattr(self.totals, counter) + 1)
            log(f"gateway rejected the {what} for {item.jid}: {item.reason}")

    def on_heartbeat(self, heartbeat) -> None:
        if heartbeat.ping_id:
            self.send(pb.WorkerMessage(heartbeat=pb.Heartbeat(pong_id=heartbeat.ping_id)))
        if heartbeat.pong_id:
            with self.lock:
                sent = self.pings.pop(heartbeat.pong_id, None)
            if sent is not None:
                with self.totals.lock:
                    self.totals.last_rtt_ms = round((time.monotonic() - sent) * 1000, 3)

    def on_drain(self, drain) -> None:
        log(f"drain: {drain.reason or 'no reason given'}")
        with self.totals.lock:
            self.totals.drains += 1
        deadline = drain.deadline_unix_ms / 1000 if drain.deadline_unix_ms else time.time() + 30
        threading.Thread(target=self.finish, args=("drained", deadline), daemon=True).start()

    # -- background loops ---------------------------------------------------------------------

    def flush_loop(self) -> None:
        """Sends results in batches: waits for the first, lingers briefly to collect more.
        Results held from earlier streams are waiting already, so they go first."""
        linger = self.args.result_linger_ms / 1000
        cond = self.holdings.cond
        while not self.ended.is_set():
            with cond:
                cond.wait_for(lambda: self.holdings.unsent_count() or self.ended.is_set(),
                              timeout=0.5)
            pending = self.holdings.unsent_count()
            if not pending or self.ended.is_set():
                continue
            if pending < self.args.result_batch and linger:
                time.sleep(linger)
            self.flush()

    def flush(self) -> None:
        results = self.holdings.take(self.stream, self.args.result_batch)
        acks = [r.jid for r in results if r.is_ack]
        fails = [r.failure for r in results if not r.is_ack]
        # If the stream ends before the gateway answers, these go again on the next one.
        if acks:
            self.send(pb.WorkerMessage(acks=pb.Acks(jids=acks)))
        if fails:
            self.send(pb.WorkerMessage(fails=pb.Fails(failures=fails)))

    def release(self, jids: list[str]) -> None:
        self.send(pb.WorkerMessage(releases=pb.Releases(jids=jids)))
        with self.totals.lock:
            self.totals.released += len(jids)

    def heartbeat_loop(self) -> None:
        while not self.ended.wait(self.heartbeat_interval):
            self.ping()

    def watch_stop(self) -> None:
        """Turns a local stop request (signal, --expect, --timeout) into a graceful finish."""
        while not self.ended.is_set():
            if self.worker.stop.wait(0.2):
                self.finish("finished", self.worker.stop_deadline())
                return

    # -- ending -------------------------------------------------------------------------------

    def finish(self, outcome: str, deadline: float) -> None:
        """Drains this session: release unstarted jobs, finish running ones, wait until the
        gateway has answered every result, close."""
        with self.lock:
            if self.finishing:
                return
            self.finishing = True
        unstarted = self.holdings.cancel_unstarted()
        if unstarted:
            self.release(unstarted)
        cond = self.holdings.cond
        with cond:
            cond.wait_for(lambda: self.holdings.idle() or self.ended.is_set(),
                          timeout=max(0.0, deadline - time.time()))
        if self.ended.is_set():
            return  # the stream broke first: what is left goes on the next one
        if not self.holdings.idle():
            log(f"at the deadline {self.holdings.jobs_held()} jobs are not finished and "
                f"{self.holdings.unanswered()} results are unanswered; closing anyway")
        self.outcome = outcome
        self.closed.set()
        self.send(_CLOSE)
        # The gateway ends the stream once we half-close; don't wait for it forever.
        if not self.ended.wait(timeout=5) and self.call is not None:
            self.call.cancel()


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
    p.add_argument("--expect", type=int, default=0,
                   help="stop once Faktory has the acks of this many distinct jobs")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (exit 1)")
    p.add_argument("--shutdown-grace", type=float, default=25.0,
                   help="seconds a local stop gets to finish running jobs and have every result settled")
    p.add_argument("--jids-out", help="write the acked jids here, one per line")
    args = p.parse_args()
    args.window = args.window or args.concurrency + args.prefetch
    if args.concurrency < 1 or args.window < 1:
        p.error("--concurrency and --window must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    stub = pb_grpc.GatewayStub(gateway_stubs.channel(args.gateway))
    pool = ThreadPoolExecutor(max_workers=args.concurrency)
    worker = Worker(args, stub, pool)
    totals, holdings, stop = worker.totals, worker.holdings, worker.stop
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
                reached = args.expect and len(totals.acked) >= args.expect
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
    while True:
        # A requested stop still delivers what is held, on a new stream if need be, until
        # its deadline.
        if stop.is_set() and holdings.idle():
            break
        if stop.is_set() and time.time() >= worker.stop_deadline():
            log(f"stop deadline passed with {holdings.jobs_held()} jobs not finished and "
                f"{holdings.unanswered()} results unanswered")
            break
        session = Session(worker)
        outcome = session.run()
        if outcome in ("fatal", "finished"):
            break
        if outcome == "drained" or session.welcomed:
            backoff = 0.2  # the stream worked: come back soon, this gateway or its successor
        delay = backoff * random.uniform(0.5, 1.5)
        log(f"stream {outcome}; reconnecting in {delay:.2f}s")
        worker.pause(delay)
        backoff = min(backoff * 2, 5.0)
    # Jobs still waiting for a thread (left only when the stop deadline passed) are not run:
    # their gateway, or Faktory once the reservation ends, hands them out again.
    pool.shutdown(wait=False, cancel_futures=True)

    elapsed = time.monotonic() - started
    if args.jids_out:
        with open(args.jids_out, "w") as out:
            out.writelines(jid + "\n" for jid in sorted(totals.acked))
    why = "fatal" if outcome == "fatal" else reason["why"]
    summary = totals.summary(why, holdings)
    summary["seconds"] = round(elapsed, 3)
    print(json.dumps(summary), flush=True)
    if why == "fatal":
        return 2
    if why == "timeout" or totals.window_violations:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
