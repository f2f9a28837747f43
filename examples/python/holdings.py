"""What a worker holds across its ``Work`` streams, for ``worker.py``.

Two kinds of things: delivered jobs that have not finished (running, or waiting for a free
thread), and results the gateway has not answered yet. A result is done with only when the
gateway names it in ``Settled`` (Faktory has it) or ``ResultRejected`` (it cannot be applied);
a pong proves only that it arrived.

A broken stream loses nothing here: jobs keep running and their results wait. When the next
stream opens, results sent on an earlier one and not answered go out again, ahead of newer ones
(an ack sent twice is harmless at Faktory; a lost one would leave a finished job to run again),
and ``Hello.holding`` names every jid held, so that the gateway which delivered those jobs keeps
them for this worker instead of handing them to someone else.

Every method takes the one lock; ``cond`` is that lock, for callers that wait on a change.
"""

from __future__ import annotations

import threading
from itertools import islice
from concurrent.futures import Future
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One job's result: an ack when ``failure`` is None, else the ``JobFailure`` to send."""

    jid: str
    failure: object = None

    @property
    def is_ack(self) -> bool:
        return self.failure is None


class Holdings:
    """Jobs not finished and results not answered, shared by consecutive streams."""

    def __init__(self) -> None:
        self.cond = threading.Condition()  # an RLock underneath: methods may nest
        # Delivered and not finished, by jid; None until the job is handed to the thread pool.
        self._jobs: dict[str, Future | None] = {}
        # Finished, result not yet sent on the current stream; oldest first.
        self._unsent: dict[str, Result] = {}
        # Sent on the current stream, waiting for the gateway's answer.
        self._sent: dict[str, Result] = {}
        # Counts streams; results are only taken for the current one (see `take`).
        self._stream = 0

    # -- streams ---------------------------------------------------------------------------------

    def new_stream(self) -> tuple[int, int]:
        """A stream opens: unanswered results of earlier streams go first on it.

        Returns the stream's number (for `take`) and how many results go again.
        """
        with self.cond:
            self._stream += 1
            again, self._sent = self._sent, {}
            self._unsent = {**again, **self._unsent}
            self.cond.notify_all()
            return self._stream, len(again)

    def holding(self) -> list[str]:
        """Every jid held: jobs not finished and results not answered (``Hello.holding``)."""
        with self.cond:
            return sorted({*self._jobs, *self._unsent, *self._sent})

    def wake(self) -> None:
        """Wakes every waiter, e.g. because a stream ended."""
        with self.cond:
            self.cond.notify_all()

    # -- jobs ------------------------------------------------------------------------------------

    def accept(self, jid: str) -> bool:
        """Takes a delivered job. False when this worker holds it already: the job is running
        or waiting here (never run one job twice at once), or its result is not answered yet
        (the result then goes out again on this stream instead of the job running twice)."""
        with self.cond:
            if jid in self._jobs or jid in self._unsent:
                return False
            if jid in self._sent:
                self._unsent[jid] = self._sent.pop(jid)
                self.cond.notify_all()
                return False
            self._jobs[jid] = None
            return True

    def started(self, jid: str, future: Future) -> None:
        """The job was handed to the thread pool (unless it has finished already)."""
        with self.cond:
            if jid in self._jobs:
                self._jobs[jid] = future

    def finished(self, jid: str, result: Result | None) -> None:
        """The job ended; its result (None: no result, e.g. its reservation had ended) waits to
        be sent."""
        with self.cond:
            if self._jobs.pop(jid, False) is False:
                return  # released meanwhile
            if result is not None:
                self._unsent[jid] = result
            self.cond.notify_all()

    def cancel_unstarted(self) -> list[str]:
        """Withdraws every job that has not started; returns their jids (to release)."""
        with self.cond:
            jids = [jid for jid, fut in self._jobs.items() if fut is not None and fut.cancel()]
            for jid in jids:
                del self._jobs[jid]
            self.cond.notify_all()
            return jids

    # -- results ---------------------------------------------------------------------------------

    def take(self, stream: int, limit: int) -> list[Result]:
        """Up to ``limit`` results to send now, oldest first, counted as sent on ``stream``.
        Nothing for a stream that is no longer the current one: its results wait for the next.
        """
        with self.cond:
            if stream != self._stream:
                return []
            jids = list(islice(self._unsent, limit))
            results = [self._unsent.pop(jid) for jid in jids]
            self._sent.update((r.jid, r) for r in results)
            self.cond.notify_all()
            return results

    def answered(self, jid: str) -> Result | None:
        """The gateway settled or rejected ``jid``'s result: forgets it and returns it (None if
        no result for it was waiting)."""
        with self.cond:
            result = self._sent.pop(jid, None) or self._unsent.pop(jid, None)
            if result is not None:
                self.cond.notify_all()
            return result

    # -- counts ----------------------------------------------------------------------------------

    def unsent_count(self) -> int:
        with self.cond:
            return len(self._unsent)

    def outstanding(self) -> int:
        """What the gateway counts against the window: jobs held, and results not sent yet."""
        with self.cond:
            return len(self._jobs) + len(self._unsent)

    def jobs_held(self) -> int:
        with self.cond:
            return len(self._jobs)

    def unanswered(self) -> int:
        with self.cond:
            return len(self._unsent) + len(self._sent)

    def idle(self) -> bool:
        """Nothing held: every job finished and every result answered."""
        with self.cond:
            return not (self._jobs or self._unsent or self._sent)

