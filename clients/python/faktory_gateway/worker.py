"""[`Worker`]: registration, the reconnect loop around sessions (``worker-sdk/src/worker.rs``)
and why it stopped. Which gateway each attempt goes to is decided in ``gateways.py``."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import grpc
import grpc.aio

from . import connect
from .errors import WorkerRefused
from .gateways import Backoff, Gateways
from .session import End, Session
from .settings import worker_settings
from .state import WorkerState
from .v1 import gateway_pb2 as pb
from .v1 import gateway_pb2_grpc as pb_grpc

log = logging.getLogger("faktory_gateway.worker")

#: How long the gateway may take to answer ``Hello``.
WELCOME_TIMEOUT = 10.0
#: Statuses retrying cannot fix.
FATAL_CODES = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
               grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED,
               grpc.StatusCode.FAILED_PRECONDITION}


@dataclass(frozen=True)
class StopReason:
    """Why :meth:`Worker.run` returned.

    ``clean`` is True when every started job finished and every result was confirmed by the
    gateway; otherwise the shutdown timeout ran out with ``abandoned`` jobs still running
    (reported failed with errtype ``WorkerShutdownTimeout`` if a stream was open) and
    ``unconfirmed`` results the gateway had not confirmed (it redelivers those jobs).
    """

    clean: bool
    abandoned: int = 0
    unconfirmed: int = 0


class _Transient(Exception):
    """Opening a stream failed in a way worth retrying."""


class Worker:
    """A worker process's connection to one or more Faktory Gateways.

    Arguments win over the environment (``GATEWAY_URL``, ``GATEWAY_WORKER_TOKEN``,
    ``GATEWAY_TLS_CA``, ``GATEWAY_TLS_DOMAIN``, ``WORKER_CONCURRENCY``, ``WORKER_QUEUES``,
    ``WORKER_LABELS``, ``WORKER_MAX_PREFETCH``, ``WORKER_ID``). ``gateway`` is one URL, a
    comma-separated string or a list: the worker spreads over them and fails over from one to
    the next. Raises :class:`~faktory_gateway.ConfigError` on a bad setting.
    """

    def __init__(self, gateway: Union[str, Sequence[str], None] = None,
                 queues: Optional[Sequence[str]] = None, concurrency: Optional[int] = None,
                 token: Optional[str] = None, **options):
        self.settings = worker_settings(gateway=gateway, queues=queues, concurrency=concurrency,
                                        token=token, **options)
        for url in self.settings.connection.gateways:
            connect.target(url)  # validates now rather than at the first connection
        self.handlers: dict[str, Callable] = {}
        self._state: Optional[WorkerState] = None
        self._session: Optional[Session] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_requested = threading.Event()

    @property
    def worker_id(self) -> str:
        return self.settings.worker_id

    def register(self, jobtype: str, handler: Optional[Callable] = None):
        """Registers the handler of ``jobtype``; usable as ``@worker.register("add")``.

        The handler is called with the job's args as positional arguments; ``async def``
        handlers run on the worker's event loop, plain ones on its threads. Returning means
        success; an exception fails the job (errtype: the exception's class name).
        """
        def add(fn: Callable) -> Callable:
            if not callable(fn):
                raise TypeError(f"the handler of {jobtype!r} is not callable")
            self.handlers[jobtype] = fn
            return fn

        return add if handler is None else add(handler)

    def stats(self) -> dict:
        """The worker's counters (jobs delivered, succeeded, failed, settled, ...)."""
        if self._state is None:
            return {}
        return self._state.stats.snapshot(self._state)

    def stop(self) -> None:
        """Asks a running worker to drain and stop; safe from any thread or a signal handler."""
        self._stop_requested.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._on_stop)
            except RuntimeError:
                pass  # the loop closed meanwhile: the worker has stopped

    def run(self) -> StopReason:
        """Runs until SIGTERM or SIGINT (or :meth:`stop`), then drains: no new job starts,
        unstarted ones go back to the gateway, running ones finish within the shutdown
        timeout and their results are confirmed. A second signal stops at once.

        Raises :class:`~faktory_gateway.WorkerRefused` when the gateway refuses the worker.
        """
        return asyncio.run(self.run_async(handle_signals=True))

    async def run_async(self, handle_signals: bool = False) -> StopReason:
        """:meth:`run` inside a running event loop; signals are handled only if asked."""
        if not self.handlers:
            raise ValueError("no handler registered")
        loop = asyncio.get_running_loop()
        self._loop = loop
        state = WorkerState(self.settings, dict(self.handlers), loop)
        self._state = state
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal)
        if self._stop_requested.is_set():
            self._on_stop()
        settings = self.settings
        gateways = Gateways(settings.connection.gateways, settings.worker_id,
                            Backoff(settings.reconnect_min, settings.reconnect_max))
        log.info("worker %s starting: gateways %s, concurrency %d", settings.worker_id,
                 gateways.urls, settings.concurrency)
        try:
            while True:
                reason = self._stopped_while_disconnected(state)
                if reason is not None:
                    return reason
                url = gateways.target()
                outcome = await self._one_stream(state, gateways, url)
                if isinstance(outcome, StopReason):
                    return outcome
                await self._pause(state, outcome)
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            state.close()
            self._loop = None

    async def _one_stream(self, state: WorkerState, gateways: Gateways,
                          url: str) -> Union[float, StopReason]:
        """Opens a stream to ``url`` and runs it to its end; returns the delay before the next
        attempt, or why the worker stopped."""
        channel = connect.aio_channel(self.settings.connection, url)
        try:
            try:
                call, welcome = await self._open(channel, state)
            except _Transient as error:
                delay = gateways.refused()
                log.warning("cannot open a work stream to %s (%s); retrying in %.2fs",
                            url, error, delay)
                return delay
            gateways.opened()
            session = Session(state, call, welcome)
            self._session = session
            try:
                end = await session.run()
            finally:
                self._session = None
            if end.kind is End.FINISHED:
                return StopReason(clean=True)
            if end.kind is End.TIMED_OUT:
                return StopReason(False, end.abandoned, end.unconfirmed)
            if end.kind is End.DRAINED:
                log.info("drained for the gateway %s; moving to the next", url)
                return gateways.drained()
            log.warning("work stream to %s lost (%s); retrying this gateway once", url, end.reason)
            return gateways.lost()
        finally:
            await channel.close(grace=None)

    async def _open(self, channel: grpc.aio.Channel, state: WorkerState):
        hello = self._hello(state)
        stub = pb_grpc.GatewayStub(channel)
        call = stub.Work(metadata=connect.metadata(self.settings.connection.token))
        try:
            await asyncio.wait_for(call.write(pb.WorkerMessage(hello=hello)), WELCOME_TIMEOUT)
            first = await asyncio.wait_for(call.read(), WELCOME_TIMEOUT)
        except asyncio.TimeoutError:
            call.cancel()
            raise _Transient("no welcome") from None
        except grpc.aio.AioRpcError as error:
            if error.code() in FATAL_CODES:
                raise WorkerRefused(error.code().name, error.details() or "") from error
            raise _Transient(f"{error.code().name}: {error.details()}") from None
        except (grpc.aio.UsageError, asyncio.InvalidStateError) as error:
            raise _Transient(str(error)) from None
        if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
            call.cancel()
            raise _Transient("the stream ended before the welcome")
        return call, first.welcome

    def _hello(self, state: WorkerState):
        settings = self.settings
        # Shutting down, the stream only delivers results: ask for as little as possible.
        window = 1 if state.shutting_down() else state.flow.window()
        state.flow.advertised(window)
        return pb.Hello(worker_id=settings.worker_id, hostname=settings.hostname,
                        labels=settings.labels, queues=settings.queues,
                        jobtypes=sorted(state.handlers), window=window,
                        max_message_bytes=settings.connection.max_message_bytes,
                        holding=state.holding())

    @staticmethod
    def _stopped_while_disconnected(state: WorkerState) -> Optional[StopReason]:
        """While no stream is open: stop when a shutdown has nothing left to report, or when
        its time is up."""
        if not state.shutting_down():
            return None
        if not state.running and state.results.is_settled():
            return StopReason(clean=True)
        if time.monotonic() < state.shutdown_deadline:
            return None
        abandoned = state.time_out_running()
        return StopReason(False, abandoned, state.results.unconfirmed())

    @staticmethod
    async def _pause(state: WorkerState, delay: float) -> None:
        """Waits before reconnecting; cut short once a shutdown has nothing left to deliver,
        or by its deadline. Finished jobs' results are collected meanwhile."""
        until = time.monotonic() + delay
        while True:
            if state.shutting_down():
                if not state.running and state.results.is_settled():
                    return
                until = min(until, state.shutdown_deadline)
            left = until - time.monotonic()
            if left <= 0:
                return
            state.changed.clear()
            try:
                await asyncio.wait_for(state.changed.wait(), left)
            except asyncio.TimeoutError:
                return

    def _on_signal(self) -> None:
        if self._state is not None and self._state.shutting_down():
            log.warning("second stop signal: stopping now")
            self._state.shutdown_deadline = time.monotonic()
            return
        log.info("stop signal: draining")
        self._on_stop()

    def _on_stop(self) -> None:
        state = self._state
        if state is None or state.shutting_down():
            return
        state.request_shutdown()
        if self._session is not None:
            self._session.on_shutdown()

