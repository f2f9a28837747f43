"""[`Client`] and [`AsyncClient`]: push jobs through the gateway's batched ``Push`` rpc.

Both take the same arguments and answer one :class:`PushResult` per job, in order; a job the
gateway found invalid or Faktory refused never fails its neighbours. A whole call that fails
(bad token, gateway unreachable) raises :class:`~faktory_gateway.PushError`. Either is safe to
use from inside a handler: ``Client`` from a plain one (it blocks the handler's thread),
``AsyncClient`` from an ``async def`` one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import connect
from .errors import PushError
from .settings import connection
from .v1 import gateway_pb2 as pb
from .v1 import gateway_pb2_grpc as pb_grpc

#: Jobs per ``Push`` call when ``push_many`` is given more (the gateway's default limit is
#: 10000 per call; calls of 100 or more are spread over its Faktory connections).
PUSH_BATCH = 1000

_STATUS = {pb.PUSH_STATUS_ACCEPTED: "accepted", pb.PUSH_STATUS_INVALID: "invalid",
           pb.PUSH_STATUS_REJECTED: "rejected", pb.PUSH_STATUS_UNAVAILABLE: "unavailable"}


@dataclass(frozen=True)
class PushResult:
    """The outcome of one pushed job.

    ``status`` is ``accepted`` (Faktory holds the job), ``invalid`` (not sent; ``field`` names
    the offending field), ``rejected`` (Faktory refused it) or ``unavailable`` (Faktory's answer
    did not arrive: it may hold the job; pushing again with the same jid never loses it).
    """

    jid: str
    status: str
    field: str = ""
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def _rfc3339(at: Union[datetime, str]) -> str:
    if isinstance(at, str):
        return at
    if at.tzinfo is None:
        at = at.astimezone()  # a naive time is local time
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def job_message(jobtype: str, args: Sequence[Any] = (), *, queue: Optional[str] = None,
                at: Union[datetime, str, None] = None, retry: Optional[int] = None,
                custom: Optional[Mapping[str, Any]] = None, jid: Optional[str] = None,
                reserve_for: Optional[int] = None, backtrace: Optional[int] = None) -> "pb.Job":
    """The ``Job`` message for one job; args and custom are sent as JSON."""
    job = pb.Job(jobtype=jobtype, queue=queue or "", jid=jid or "",
                 args=json.dumps(list(args)).encode())
    if custom:
        job.custom = json.dumps(dict(custom)).encode()
    if at is not None:
        job.at = _rfc3339(at)
    if retry is not None:
        job.retry = retry
    if reserve_for is not None:
        job.reserve_for = reserve_for
    if backtrace is not None:
        job.backtrace = backtrace
    return job


def _jobs(specs: Iterable[Mapping[str, Any]]) -> list:
    jobs = []
    for spec in specs:
        spec = dict(spec)
        jobtype = spec.pop("jobtype")
        args = spec.pop("args", ())
        jobs.append(job_message(jobtype, args, **spec))
    return jobs


def _results(response, sent: int) -> list[PushResult]:
    if len(response.results) != sent:
        raise PushError("INTERNAL", f"{sent} jobs sent, {len(response.results)} results")
    return [PushResult(r.jid, _STATUS.get(r.status, "unspecified"), r.field, r.reason)
            for r in response.results]


def _push_error(error: grpc.RpcError) -> PushError:
    return PushError(error.code().name, error.details() or "")


class _Settings:
    def __init__(self, gateway, token, tls_ca, tls_domain, timeout):
        self.connection = connection(gateway, token, "GATEWAY_PRODUCER_TOKEN", tls_ca, tls_domain)
        for url in self.connection.gateways:
            connect.target(url)
        # One gateway per client, picked at random from a list: producers spread over them.
        self.url = random.choice(self.connection.gateways)
        self.metadata = connect.metadata(self.connection.token)
        self.timeout = timeout


class Client:
    """A blocking producer client. ``gateway`` and ``token`` fall back to ``GATEWAY_URL`` and
    ``GATEWAY_PRODUCER_TOKEN``; ``tls_ca`` and ``tls_domain`` to ``GATEWAY_TLS_CA`` and
    ``GATEWAY_TLS_DOMAIN``. ``timeout`` bounds each ``Push`` call, in seconds."""

    def __init__(self, gateway: Union[str, Sequence[str], None] = None,
                 token: Optional[str] = None, *, tls_ca: Optional[str] = None,
                 tls_domain: Optional[str] = None, timeout: float = 30.0):
        self._settings = _Settings(gateway, token, tls_ca, tls_domain, timeout)
        self._channel = connect.sync_channel(self._settings.connection, self._settings.url)
        self._stub = pb_grpc.GatewayStub(self._channel)

    def push(self, jobtype: str, *args: Any, **options: Any) -> PushResult:
        """Pushes one job: ``push("add", 1, 2, queue="critical", at=datetime, retry=3,
        custom={...})`` (also ``jid``, ``reserve_for``, ``backtrace``)."""
        return self._call([job_message(jobtype, args, **options)])[0]

    def push_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[PushResult]:
        """Pushes many jobs, each a mapping with ``jobtype``, ``args`` and any option of
        :meth:`push`, in calls of up to ``PUSH_BATCH``; one result per job, in order."""
        messages = _jobs(jobs)
        results: list[PushResult] = []
        for start in range(0, len(messages), PUSH_BATCH):
            results.extend(self._call(messages[start:start + PUSH_BATCH]))
        return results

    def _call(self, jobs: list) -> list[PushResult]:
        try:
            response = self._stub.Push(pb.PushRequest(jobs=jobs), timeout=self._settings.timeout,
                                       metadata=self._settings.metadata)
        except grpc.RpcError as error:
            raise _push_error(error) from None
        return _results(response, len(jobs))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


class AsyncClient:
    """:class:`Client` for asyncio code (``async def`` handlers included): the same arguments,
    ``await client.push(...)`` and ``await client.push_many(...)``. Create it inside the event
    loop that uses it."""

    def __init__(self, gateway: Union[str, Sequence[str], None] = None,
                 token: Optional[str] = None, *, tls_ca: Optional[str] = None,
                 tls_domain: Optional[str] = None, timeout: float = 30.0):
        self._settings = _Settings(gateway, token, tls_ca, tls_domain, timeout)
        self._channel = connect.aio_channel(self._settings.connection, self._settings.url)
        self._stub = pb_grpc.GatewayStub(self._channel)

    async def push(self, jobtype: str, *args: Any, **options: Any) -> PushResult:
        """See :meth:`Client.push`."""
        return (await self._call([job_message(jobtype, args, **options)]))[0]

    async def push_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[PushResult]:
        """See :meth:`Client.push_many`."""
        messages = _jobs(jobs)
        results: list[PushResult] = []
        for start in range(0, len(messages), PUSH_BATCH):
            results.extend(await self._call(messages[start:start + PUSH_BATCH]))
        return results

    async def _call(self, jobs: list) -> list[PushResult]:
        try:
            response = await self._stub.Push(pb.PushRequest(jobs=jobs),
                                             timeout=self._settings.timeout,
                                             metadata=self._settings.metadata)
        except grpc.RpcError as error:
            raise _push_error(error) from None
        return _results(response, len(jobs))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.close()
