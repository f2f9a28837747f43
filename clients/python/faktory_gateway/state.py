"""What outlives a single ``Work`` stream: running handlers, buffered jobs, results not yet
confirmed, flow-control measurements and the shutdown clock (``worker-sdk/src/state.rs``).

Everything here is touched only from the worker's event loop. Plain (non-``async``) handlers
run on a pool of ``concurrency`` threads; their outcomes come back to the loop in bursts, one
wake-up per burst rather than one per job.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import queue
import threading
import time
from typing import Callable, Optional

from .flow import FlowControl
from .job import Job, failure, set_current
from .results import Report, Results, jid_of
from .settings import WorkerSettings
from .v1 import gateway_pb2 as pb

log = logging.getLogger("faktory_gateway.worker")

#: Errtype of jobs still running when the shutdown timeout ran out.
SHUTDOWN_TIMEOUT_ERRTYPE = "WorkerShutdownTimeout"
#: Errtype of a delivery whose args or custom are not JSON.
INVALID_JOB_ERRTYPE = "InvalidJob"
#: The most results of earlier streams remembered.
MAX_CARRIED = 100_000


class Stats:
    """The worker's counters and gauges; ``snapshot()`` returns them as a dict."""

    COUNTERS = ("sessions", "delivered", "started", "succeeded", "failed", "settled",
                "rejected", "released", "resent", "expired", "timed_out")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.window = 0
        self.rtt_ms: Optional[float] = None

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def snapshot(self, state: "WorkerState") -> dict:
        return {**self.counts, "running": len(state.running), "prefetched": len(state.buffered),
                "unconfirmed": state.results.unconfirmed(), "window": self.window,
                "rtt_ms": self.rtt_ms}


class _Threads:
    """``concurrency`` threads running plain handlers; outcomes return to the loop in bursts."""

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop,
                 deliver: Callable[[list], None]):
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._outcomes: collections.deque = collections.deque()
        self._wake_pending = False
        self._loop = loop
        self._deliver = deliver
        self._size = size
        self._threads: list[threading.Thread] = []

    def submit(self, handler: Callable, job: Job) -> None:
        if len(self._threads) < self._size:
            thread = threading.Thread(target=self._run, name=f"faktory-gateway-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        self._jobs.put((handler, job))

    def _run(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            handler, job = item
            set_current(job)
            try:
                handler(*job.args)
                error = None
            except BaseException as e:  # noqa: BLE001 - every failure is the job's
                error = e
            self._outcomes.append((job, error))
            # One wake-up per burst: the loop clears the flag before it takes the outcomes,
            # so an outcome appended after that schedules a new wake-up.
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._drain)
                except RuntimeError:
                    return  # the loop is closed: the worker has stopped

    def _drain(self) -> None:
        self._wake_pending = False
        outcomes = []
        while self._outcomes:
            outcomes.append(self._outcomes.popleft())
        if outcomes:
            self._deliver(outcomes)

    def stop(self) -> None:
        """Lets idle threads end; a thread still in a handler ends after it returns."""
        for _ in self._threads:
            self._jobs.put(None)


class WorkerState:
    """State shared by consecutive streams of one worker."""

    def __init__(self, settings: WorkerSettings, handlers: dict, loop: asyncio.AbstractEventLoop):
        self.settings = settings
        self.handlers = handlers
        self.stats = Stats()
        self.loop = loop
        #: Running handlers by jid: (the asyncio task, or None on a thread; the stream number).
        self.running: dict[str, tuple[Optional[asyncio.Task], int]] = {}
        #: Delivered jobs waiting for a free slot, with their arrival time. Kept across a broken
        #: stream: the next hello lists them and the gateway that delivered them keeps them here.
        self.buffered: collections.deque = collections.deque()
        #: Counts up when a stream opens and when it ends.
        self.stream_seq = 0
        #: Results of jobs delivered on an earlier stream: repeated instead of running the job
        #: twice if the gateway hands the job out again.
        self.carried: dict[str, Report] = {}
        self.results = Results(settings.flush_count, settings.flush_delay)
        self.flow = FlowControl(settings.concurrency, settings.max_prefetch,
                                settings.flush_delay, time.monotonic())
        self.shutdown_deadline: Optional[float] = None
        #: Set on every finished job and on a stop request; the reconnect pause waits on it.
        self.changed = asyncio.Event()
        #: Called after finished jobs were absorbed (the open session's hook), if any.
        self.on_outcomes: Optional[Callable[[], None]] = None
        self._threads = _Threads(settings.concurrency, loop, self._absorb_all)

    # -- shutdown ------------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Starts the shutdown clock (once): running handlers have ``shutdown_timeout``."""
        if self.shutdown_deadline is None:
            self.shutdown_deadline = time.monotonic() + self.settings.shutdown_timeout
        self.changed.set()

    def shutting_down(self) -> bool:
        return self.shutdown_deadline is not None

    # -- jobs ----------------------------------------------------------------------------------

    def holding(self) -> list[str]:
        """Every jid held (running, buffered, result unconfirmed), for ``Hello.holding``."""
        jids = set(self.running)
        jids.update(job.jid for job, _ in self.buffered)
        jids.update(jid_of(r) for r in self.results.pending())
        return sorted(jids)

    def drop_expired_buffered(self) -> None:
        """Drops buffered jobs whose reservation ended while disconnected: Faktory retries
        them, so running them here would run them twice."""
        kept = collections.deque(item for item in self.buffered if not item[0].reservation_ended())
        expired = len(self.buffered) - len(kept)
        if expired:
            log.warning("%d buffered jobs' reservations ended while disconnected; "
                        "Faktory retries them", expired)
            self.stats.add("expired", expired)
            self.buffered = kept

    def has_free_slot(self) -> bool:
        return len(self.running) < self.settings.concurrency

    def start(self, job: Job) -> None:
        """Starts ``job``'s handler: ``async def`` ones as tasks on the loop, others on a thread."""
        handler = self.handlers[job.jobtype]
        task = None
        if inspect.iscoroutinefunction(handler):
            task = self.loop.create_task(_run_async(handler, job))
            task.add_done_callback(lambda t, job=job: self._task_done(job, t))
        else:
            self._threads.submit(handler, job)
        self.running[job.jid] = (task, self.stream_seq)
        self.stats.add("started")

    def _task_done(self, job: Job, task: asyncio.Task) -> None:
        if task.cancelled():
            return  # aborted by the shutdown timeout, already reported
        self._absorb_all([(job, task.exception())])

    def _absorb_all(self, outcomes: list) -> None:
        now = time.monotonic()
        for job, error in outcomes:
            self._absorb(job, error, now)
        self.changed.set()
        if self.on_outcomes is not None:
            self.on_outcomes()

    def _absorb(self, job: Job, error: Optional[BaseException], now: float) -> None:
        entry = self.running.pop(job.jid, None)
        if entry is None:
            return  # failed by the shutdown timeout meanwhile
        self.flow.on_completed(1)
        if error is None:
            self.stats.add("succeeded")
            report: Report = job.jid
        else:
            self.stats.add("failed")
            log.warning("job %s (%s) failed: %s: %s", job.jid, job.jobtype,
                        type(error).__name__, error)
            report = failure(job.jid, error, job.backtrace_lines)
        if entry[1] != self.stream_seq:
            self.carry(report)
        self.results.push(report, now)

    def fail_invalid(self, jid: str, reason: str) -> None:
        """Reports a delivery that cannot be decoded as failed (Faktory applies its retries)."""
        self.results.push(pb.JobFailure(jid=jid, errtype=INVALID_JOB_ERRTYPE, message=reason),
                          time.monotonic())

    def carry(self, report: Report) -> None:
        """Remembers the result of a job from an earlier stream (bounded: only an optimisation
        against running a job twice)."""
        if len(self.carried) >= MAX_CARRIED:
            self.carried.clear()
        self.carried[jid_of(report)] = report

    def time_out_running(self) -> int:
        """Reports every running job as failed with ``WorkerShutdownTimeout`` (async handlers
        are cancelled; a thread cannot be, and its late outcome is ignored). Returns how many."""
        now = time.monotonic()
        timed_out = list(self.running.items())
        self.running.clear()
        for jid, (task, _) in timed_out:
            if task is not None:
                task.cancel()
            log.warning("job %s still running at the shutdown timeout", jid)
            self.results.push(pb.JobFailure(
                jid=jid, errtype=SHUTDOWN_TIMEOUT_ERRTYPE,
                message=f"still running when the worker's shutdown timeout "
                        f"({self.settings.shutdown_timeout}s) ran out"), now)
        self.stats.add("timed_out", len(timed_out))
        return len(timed_out)

    def close(self) -> None:
        self._threads.stop()


async def _run_async(handler: Callable, job: Job) -> None:
    set_current(job)  # tasks run in a copy of the context: this stays with the task
    await handler(*job.args)
