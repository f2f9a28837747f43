"""[`Job`]: what a handler can learn about the job it runs, and how an exception becomes the
``JobFailure`` Faktory records."""

from __future__ import annotations

import contextvars
import json
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from .v1 import gateway_pb2 as pb

_current: contextvars.ContextVar["Job"] = contextvars.ContextVar("faktory_gateway_job")


@dataclass(frozen=True)
class Job:
    """One delivered job. Handlers get its ``args`` as positional arguments and can reach the
    whole job with :func:`current_job`."""

    jid: str
    jobtype: str
    queue: str
    args: list
    custom: dict
    #: Faktory's failure counter if the job failed before (0 after the first failure), else None.
    retry_count: Optional[int]
    #: 1 for the first delivery through the gateway, higher after a redelivery.
    attempt: int
    #: When Faktory's reservation ends (UTC); finish well before it.
    reservation_deadline: Optional[datetime]
    #: How many backtrace lines Faktory keeps for this job's failures.
    backtrace_lines: int

    @classmethod
    def from_delivery(cls, delivery: "pb.Delivery") -> "Job":
        """Decodes a delivery; raises ``ValueError`` when its args or custom are not JSON."""
        job = delivery.job
        args = json.loads(job.args) if job.args else []
        custom = json.loads(job.custom) if job.custom else {}
        if not isinstance(args, list):
            raise ValueError("args is not a JSON array")
        deadline = None
        if delivery.reservation_deadline_unix_ms:
            deadline = datetime.fromtimestamp(delivery.reservation_deadline_unix_ms / 1000,
                                              tz=timezone.utc)
        return cls(
            jid=job.jid, jobtype=job.jobtype, queue=job.queue, args=args,
            custom=custom if isinstance(custom, dict) else {},
            retry_count=job.failure.retry_count if job.HasField("failure") else None,
            attempt=delivery.attempt, reservation_deadline=deadline,
            backtrace_lines=max(0, job.backtrace),
        )

    def reservation_ended(self) -> bool:
        return (self.reservation_deadline is not None
                and datetime.now(timezone.utc) >= self.reservation_deadline)


def current_job() -> Job:
    """The job the calling handler runs (plain or ``async def``).

    Raises ``LookupError`` outside a handler.
    """
    return _current.get()


def set_current(job: Job) -> None:
    _current.set(job)


def failure(jid: str, error: BaseException, keep_lines: int) -> "pb.JobFailure":
    """The failure Faktory records for a handler that raised ``error``: errtype is the
    exception's class name, the message its text, and the backtrace the traceback's frames,
    innermost first (as Faktory shows them), at most ``keep_lines`` of them (the job's
    ``backtrace`` field: Faktory keeps no more)."""
    frames = traceback.extract_tb(error.__traceback__)
    lines = [f'File "{frame.filename}", line {frame.lineno}, in {frame.name}'
             + (f": {frame.line}" if frame.line else "") for frame in reversed(frames)]
    return pb.JobFailure(jid=jid, errtype=type(error).__name__ or "Error",
                         message=str(error), backtrace=lines[:keep_lines])

