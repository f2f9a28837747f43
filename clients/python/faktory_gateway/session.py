"""One ``Work`` stream from ``Welcome`` to its end (``worker-sdk/src/session.rs``): receiving
job batches, starting handlers as slots free up, sending batched results, heartbeats, window
updates and draining.

Three tasks share the stream: the reader handles each gateway message as it arrives, the
writer sends queued messages in order, and the ticker samples the completion rate, sends
heartbeats and watches the clocks. All run on the worker's event loop, so they never interleave
inside a handler of theirs; the session ends when any of them calls ``_end``.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from dataclasses import dataclass
from typing import Optional

import grpc
import grpc.aio

from .job import Job
from .state import WorkerState
from .v1 import gateway_pb2 as pb

log = logging.getLogger("faktory_gateway.worker")

#: How often completion rates are sampled, the window reconsidered and the clocks checked.
FLOW_TICK = 0.1
#: How long a closing stream waits for the gateway to end it, and how long a timed-out
#: shutdown waits for its last results to be confirmed.
CLOSE_GRACE = 2.0
#: Message size the gateway accepts when its ``Welcome`` does not say.
DEFAULT_GATEWAY_MAX_BYTES = 4 << 20

_CLOSE = object()  # outbox marker: half-close the request side


class End(enum.Enum):
    """How a stream ended."""

    LOST = "lost"  # broken, closed by the gateway or gone quiet: reconnect
    DRAINED = "drained"  # the gateway asked for a drain and it completed: reconnect elsewhere
    FINISHED = "finished"  # shutdown completed: every job finished, every result confirmed
    TIMED_OUT = "timed_out"  # shutdown ran out of time


@dataclass
class SessionEnd:
    kind: End
    reason: str = ""
    abandoned: int = 0
    unconfirmed: int = 0


class Drain(enum.Enum):
    GATEWAY = "gateway"  # shutdown or Faktory quiet at the gateway: finish, close, reconnect
    LOCAL = "local"  # this worker's shutdown: finish, close, stop


class Session:
    def __init__(self, state: WorkerState, call: grpc.aio.StreamStreamCall, welcome):
        self.state = state
        self.call = call
        settings = state.settings
        self.heartbeat_interval = settings.heartbeat_interval
        if welcome.heartbeat_interval_ms:
            self.heartbeat_interval = min(self.heartbeat_interval,
                                          welcome.heartbeat_interval_ms / 1000)
        if welcome.heartbeat_timeout_ms:
            self.quiet_bound = max(welcome.heartbeat_timeout_ms / 1000,
                                   self.heartbeat_interval * 2)
        else:
            self.quiet_bound = self.heartbeat_interval * 3
        self.max_message_bytes = welcome.max_message_bytes or DEFAULT_GATEWAY_MAX_BYTES
        self.drain: Optional[Drain] = None
        self.closing_since: Optional[float] = None
        self.abandoned = 0
        self.pings: dict[int, float] = {}
        self.next_ping = 1
        self.last_ping = 0.0
        self.last_inbound = time.monotonic()
        self._outbox: collections.deque = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._flush_timer: Optional[asyncio.TimerHandle] = None
        self._ended = asyncio.Event()
        self._end: Optional[SessionEnd] = None
        state.stats.add("sessions")
        state.flow.set_max_window(welcome.max_window)
        state.flow.advertised(welcome.window)
        state.stats.window = welcome.window
        log.info("work stream open: session %s, window %d (max %d)", welcome.session_id,
                 welcome.window, welcome.max_window)

    async def run(self) -> SessionEnd:
        state = self.state
        state.stream_seq += 1
        again = state.results.requeue_unconfirmed(time.monotonic())
        if again:
            log.info("re-sending %d unconfirmed results", len(again))
            state.stats.add("resent", len(again))
        # Everything still unconfirmed is from an earlier stream now.
        for report in list(state.results.pending()):
            state.carry(report)
        state.drop_expired_buffered()
        state.on_outcomes = self._after_outcomes
        tasks = [asyncio.ensure_future(coro) for coro in (self._reader(), self._writer(), self._ticker())]
        try:
            self._ping()  # at once: the round-trip time feeds the window
            if state.shutting_down():
                self.start_drain(Drain.LOCAL)
            self._after_outcomes()
            await self._ended.wait()
        finally:
            state.on_outcomes = None
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Jobs of this stream that finish from now on belong to an earlier one.
            state.stream_seq += 1
        assert self._end is not None
        return self._end

    def on_shutdown(self) -> None:
        """The worker's stop was requested."""
        self.start_drain(Drain.LOCAL)

    def _finish(self, end: SessionEnd) -> None:
        if self._end is None:
            self._end = end
            self._ended.set()

    def _lost(self, reason: str) -> None:
        self._finish(SessionEnd(End.LOST, reason))

    # -- the three tasks --------------------------------------------------------------------

    async def _reader(self) -> None:
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    break
                self.last_inbound = time.monotonic()
                self._on_message(message)
        except grpc.aio.AioRpcError as error:
            if self.closing_since is None:
                self._lost(f"{error.code().name}: {error.details()}")
                return
        if self.closing_since is None:
            self._lost("closed by the gateway")
        else:
            # We closed our side and the gateway finished: the drain is done.
            self._finish(self._end_of_drain())

    async def _writer(self) -> None:
        try:
            while True:
                await self._outbox_ready.wait()
                self._outbox_ready.clear()
                while self._outbox:
                    message = self._outbox.popleft()
                    if message is _CLOSE:
                        await self.call.done_writing()
                        return
                    await self.call.write(message)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as error:
            self._lost(f"request stream closed: {error}")

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(FLOW_TICK)
            now = time.monotonic()
            if now - self.last_inbound > self.quiet_bound:
                self._lost(f"nothing heard from the gateway for {now - self.last_inbound:.1f}s")
                return
            if now - self.last_ping >= self.heartbeat_interval:
                self._ping()
            self._on_flow_tick(now)
            deadline = self.state.shutdown_deadline
            if self.drain is Drain.LOCAL and deadline is not None and now >= deadline \
                    and self.state.running:
                self.abandoned += self.state.time_out_running()
                self._flush()
            give_up_at = self._give_up_at()
            if give_up_at is not None and now >= give_up_at:
                self._finish(self._end_of_drain())
                return
            self._progress_drain()

    # -- gateway messages -------------------------------------------------------------------

    def _on_message(self, message) -> None:
        kind = message.WhichOneof("kind")
        if kind == "jobs":
            self._on_jobs(message.jobs.deliveries)
        elif kind == "settled":
            self._on_answered(message.settled.jids, "settled")
        elif kind == "rejected":
            for result in message.rejected.results:
                log.debug("gateway rejected the result for %s: %s", result.jid, result.reason)
            self._on_answered([r.jid for r in message.rejected.results], "rejected")
        elif kind == "heartbeat":
            self._on_heartbeat(message.heartbeat)
        elif kind == "drain":
            log.info("gateway asked to drain: %s", message.drain.reason or "no reason given")
            self.start_drain(Drain.GATEWAY)

    def _on_jobs(self, deliveries) -> None:
        state = self.state
        state.stats.add("delivered", len(deliveries))
        release = []
        now = time.monotonic()
        for delivery in deliveries:
            jid = delivery.job.jid
            if jid in state.running:
                # Redelivered while it runs here (after a reconnect): its result settles it.
                continue
            carried = state.carried.pop(jid, None)
            if carried is not None:
                # Finished here, delivered on an earlier stream: repeat the result.
                state.results.push(carried, now)
            elif self.drain is not None or delivery.job.jobtype not in state.handlers:
                release.append(jid)
            else:
                try:
                    job = Job.from_delivery(delivery)
                except ValueError as error:
                    state.fail_invalid(jid, f"cannot decode the job: {error}")
                    continue
                state.buffered.append((job, now))
        self._release(release)
        self._after_outcomes()

    def _on_answered(self, jids, counter: str) -> None:
        answered = sum(1 for jid in jids if self.state.results.done(jid) is not None)
        self.state.stats.add(counter, answered)
        self._progress_drain()

    def _on_heartbeat(self, beat) -> None:
        if beat.ping_id:
            self._send(pb.WorkerMessage(heartbeat=pb.Heartbeat(pong_id=beat.ping_id)))
        if not beat.pong_id:
            return
        sent = self.pings.get(beat.pong_id)
        if sent is not None:
            self.state.flow.on_rtt(time.monotonic() - sent)
            self.state.stats.rtt_ms = round(self.state.flow.srtt * 1000, 3)
        self.pings = {i: t for i, t in self.pings.items() if i > beat.pong_id}

    # -- what this side does ----------------------------------------------------------------

    def _after_outcomes(self) -> None:
        """Jobs finished or arrived: start buffered jobs in free slots, see to the results."""
        state = self.state
        while self.drain is None and state.buffered and state.has_free_slot():
            job, _ = state.buffered.popleft()
            state.start(job)
        deadline = state.results.flush_deadline()
        if deadline is not None:
            # Flush at once when a slot is free and nothing is buffered to fill it: the
            # gateway sends more only as results return credit. Under load results batch.
            starved = not state.buffered and state.has_free_slot()
            if starved or deadline <= time.monotonic():
                self._flush()
            elif self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    max(0.0, deadline - time.monotonic()), self._flush)
        self._progress_drain()

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self.closing_since is not None:
            return
        for message in self.state.results.take_messages(self.max_message_bytes // 2):
            self._send(message)

    def _release(self, jids: list) -> None:
        if jids and self.closing_since is None:
            self.state.stats.add("released", len(jids))
            self._send(pb.WorkerMessage(releases=pb.Releases(jids=jids)))

    def _ping(self) -> None:
        if self.closing_since is not None:
            return
        ping_id = self.next_ping
        self.next_ping += 1
        self.last_ping = time.monotonic()
        self.pings[ping_id] = self.last_ping
        self._send(pb.WorkerMessage(heartbeat=pb.Heartbeat(ping_id=ping_id)))

    def _on_flow_tick(self, now: float) -> None:
        state = self.state
        state.flow.sample(now)
        if self.drain is not None:
            return
        window = state.flow.take_update()
        if window is not None:
            log.debug("window update: %d (rtt %s ms)", window, state.stats.rtt_ms)
            state.stats.window = window
            self._send(pb.WorkerMessage(window=pb.WindowUpdate(window=window)))
        oldest_wait = now - state.buffered[0][1] if state.buffered else 0.0
        excess = state.flow.excess(len(state.buffered), oldest_wait)
        if excess:
            log.debug("handlers are slow; giving back %d buffered jobs", excess)
            give_back = [state.buffered.pop()[0].jid for _ in range(excess)]
            self._release(give_back)

    def start_drain(self, kind: Drain) -> None:
        """Stops taking work: the window drops to its minimum, unstarted jobs go back."""
        if self.drain is Drain.LOCAL:
            return
        first = self.drain is None
        self.drain = kind
        if not first:
            return
        state = self.state
        log.info("draining (%s): %d running, %d unstarted", kind.value, len(state.running),
                 len(state.buffered))
        self._send(pb.WorkerMessage(window=pb.WindowUpdate(window=1)))
        unstarted = [job.jid for job, _ in state.buffered]
        state.buffered.clear()
        self._release(unstarted)
        self._progress_drain()

    def _progress_drain(self) -> None:
        """While draining: once nothing runs, send the last results; once they are confirmed,
        close our side of the stream."""
        state = self.state
        if self.drain is None or self.closing_since is not None or state.running:
            return
        if state.results.flush_deadline() is not None:
            self._flush()
        if state.results.is_settled():
            log.debug("drain complete, closing the stream")
            self._send(_CLOSE)
            self.closing_since = time.monotonic()

    def _give_up_at(self) -> Optional[float]:
        if self.closing_since is not None:
            return self.closing_since + CLOSE_GRACE
        deadline = self.state.shutdown_deadline
        if self.drain is Drain.LOCAL and deadline is not None:
            return deadline + CLOSE_GRACE
        return None

    def _end_of_drain(self) -> SessionEnd:
        state = self.state
        if self.drain is Drain.GATEWAY and self.closing_since is not None:
            return SessionEnd(End.DRAINED)
        if self.drain is Drain.LOCAL:
            if self.abandoned == 0 and state.results.is_settled():
                return SessionEnd(End.FINISHED)
            return SessionEnd(End.TIMED_OUT, abandoned=self.abandoned,
                              unconfirmed=state.results.unconfirmed())
        return SessionEnd(End.LOST, "stream ended while draining")

    def _send(self, message) -> None:
        self._outbox.append(message)
        self._outbox_ready.set()
