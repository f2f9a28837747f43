"""Faktory Gateway workers and producers for Python.

A worker opens one long-lived ``Work`` stream to a gateway beside Faktory and receives jobs in
batches; a producer pushes jobs in batches with ``Push``. The wire contract is
``proto/faktory_gateway/v1/gateway.proto``; its generated stubs ship in
``faktory_gateway.v1``.

    from faktory_gateway import Worker

    worker = Worker(queues=["default"], concurrency=20)

    @worker.register("add")
    def add(payload):
        print(payload["a"] + payload["b"])

    worker.run()  # until SIGTERM/SIGINT, then drains

Layout:

- ``worker.py``: :class:`Worker`, the reconnect loop, :class:`StopReason`;
- ``session.py``: one ``Work`` stream (jobs, results, heartbeats, window, drain);
- ``state.py``: what outlives a stream (running, buffered, results), handler threads;
- ``flow.py``: the window (concurrency + prefetch from measured rate x round trip);
- ``results.py``: result batching and confirmation; ``gateways.py``: failover and backoff;
- ``client.py``: :class:`Client` and :class:`AsyncClient`; ``job.py``: :class:`Job`;
- ``connect.py``: channels, TLS and tokens; ``settings.py``: arguments and environment;
- ``errors.py``: the exceptions; ``v1/``: the generated stubs (``generate_stubs.py``).
"""

from .client import AsyncClient, Client, PushResult
from .errors import ConfigError, FaktoryGatewayError, PushError, WorkerRefused
from .job import Job, current_job
from .worker import StopReason, Worker

__all__ = ["AsyncClient", "Client", "ConfigError", "FaktoryGatewayError", "Job", "PushError",
           "PushResult", "StopReason", "Worker", "WorkerRefused", "current_job"]
__version__ = "0.1.0"
