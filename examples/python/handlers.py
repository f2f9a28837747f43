"""The job handlers of ``worker.py`` (``add``, ``fail``; ``--work-ms`` makes each sleep first, to
stand in for real work), and running one delivered job.
"""

from __future__ import annotations

import json
import time


class UnknownJobtype(Exception):
    """A delivered job's type has no handler here."""


def handle_add(job_args: list, work_seconds: float) -> int:
    """``add``: args ``[{"a": 1, "b": 2}]`` (the shape every example producer uses) or ``[1, 2]``."""
    if work_seconds:
        time.sleep(work_seconds)
    if len(job_args) == 1 and isinstance(job_args[0], dict):
        return job_args[0]["a"] + job_args[0]["b"]
    return sum(job_args)


def handle_fail(job_args: list, work_seconds: float) -> int:
    raise RuntimeError(f"failing on purpose with args {job_args}")


HANDLERS = {"add": handle_add, "fail": handle_fail}


class ReservationEnded(Exception):
    """The job's Faktory reservation ended before a thread was free for it (say, while the
    worker was disconnected): Faktory retries it, so running it here would run it twice."""


def run_job(delivery, work_seconds: float):
    """Runs one delivered job on the calling thread; returns the handler's value or raises."""
    deadline_ms = delivery.reservation_deadline_unix_ms
    if deadline_ms and time.time() * 1000 >= deadline_ms:
        raise ReservationEnded(delivery.job.jid)
    job = delivery.job
    handler = HANDLERS.get(job.jobtype)
    if handler is None:
        raise UnknownJobtype(f"no handler for jobtype {job.jobtype!r}")
    job_args = json.loads(job.args) if job.args else []
    return handler(job_args, work_seconds)
