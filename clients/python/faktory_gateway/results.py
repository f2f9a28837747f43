"""Job results on their way to the gateway: batching and confirmation tracking.

As in the Rust SDK (``worker-sdk/src/results.rs``): a result is *confirmed* once the gateway
answers it with ``Settled`` (Faktory has it) or ``ResultRejected`` (it cannot be applied).
Results not confirmed when a stream ends are sent again, first, on the next stream, to
whichever gateway that is: an ack sent twice is harmless at Faktory, a lost one would leave a
finished job to run again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Optional, Union

from .v1 import gateway_pb2 as pb

#: An ack is the jid; a fail is its ``JobFailure``.
Report = Union[str, "pb.JobFailure"]


def jid_of(report: Report) -> str:
    return report if isinstance(report, str) else report.jid


def _size(report: Report) -> int:
    """Rough encoded size, for splitting batches under the message limit."""
    if isinstance(report, str):
        return len(report) + 4
    return report.ByteSize() + 4


class Results:
    """Results not yet confirmed by the gateway. Times are monotonic seconds."""

    def __init__(self, flush_count: int, flush_delay: float):
        self.flush_count = max(1, flush_count)
        self.flush_delay = flush_delay
        self._unsent: "OrderedDict[str, Report]" = OrderedDict()
        self._oldest_unsent: Optional[float] = None
        # Sent on the current stream and not yet settled or rejected.
        self._sent: dict[str, Report] = {}

    def push(self, report: Report, now: float) -> None:
        """Queues a result for the next flush."""
        if self._oldest_unsent is None:
            self._oldest_unsent = now
        self._unsent[jid_of(report)] = report

    def flush_deadline(self) -> Optional[float]:
        """When the queued results must go out at the latest (None: nothing queued)."""
        if self._oldest_unsent is None:
            return None
        if len(self._unsent) >= self.flush_count:
            return self._oldest_unsent
        return self._oldest_unsent + self.flush_delay

    def take_messages(self, max_bytes: int) -> list:
        """Takes every queued result as ``WorkerMessage``s of at most about ``max_bytes``
        each (acks and fails separately), and remembers them as sent."""
        self._oldest_unsent = None
        messages = []
        acks: list[str] = []
        fails: list = []
        ack_bytes = fail_bytes = 0
        for jid, report in self._unsent.items():
            size = _size(report)
            if isinstance(report, str):
                if acks and ack_bytes + size > max_bytes:
                    messages.append(pb.WorkerMessage(acks=pb.Acks(jids=acks)))
                    acks, ack_bytes = [], 0
                acks.append(report)
                ack_bytes += size
            else:
                if fails and fail_bytes + size > max_bytes:
                    messages.append(pb.WorkerMessage(fails=pb.Fails(failures=fails)))
                    fails, fail_bytes = [], 0
                fails.append(report)
                fail_bytes += size
            self._sent[jid] = report
        self._unsent.clear()
        if acks:
            messages.append(pb.WorkerMessage(acks=pb.Acks(jids=acks)))
        if fails:
            messages.append(pb.WorkerMessage(fails=pb.Fails(failures=fails)))
        return messages

    def done(self, jid: str) -> Optional[Report]:
        """The gateway settled or rejected ``jid``'s result: forgets and returns it (None if
        it was not waiting)."""
        return self._sent.pop(jid, None)

    def requeue_unconfirmed(self, now: float) -> list[Report]:
        """A new stream opens: every result sent earlier and not confirmed goes to the front
        of the queue. Returns them."""
        again = list(self._sent.values())
        self._sent = {}
        if again:
            self._unsent = OrderedDict([*((jid_of(r), r) for r in again), *self._unsent.items()])
        if self._unsent:
            self._oldest_unsent = now
        return again

    def pending(self) -> Iterator[Report]:
        """Every result not confirmed yet, sent or not."""
        yield from self._unsent.values()
        yield from self._sent.values()

    def is_settled(self) -> bool:
        return not self._unsent and not self._sent

    def unconfirmed(self) -> int:
        return len(self._unsent) + len(self._sent)
