"""Flow control: how many jobs the worker asks the gateway to keep in flight.

The same rules as the Rust SDK (``worker-sdk/src/flow.rs``). The window is
``concurrency + prefetch``: ``concurrency`` keeps every handler slot busy, ``prefetch`` hides
the time a finished slot's credit takes to come back as a new job, which is the link's round
trip plus the result flush delay plus a small floor. Prefetch tracks that bandwidth-delay
product: measured completion rate x (RTT + flush delay + ``MIN_COVER``) x ``HEADROOM``, capped
by ``max_prefetch`` and by what the gateway accepts.

While the window limits throughput the rate is ``window / RTT``, so the target prefetch is
``HEADROOM x window`` and the window grows geometrically; when handlers are slow the rate is
``concurrency / job time`` and prefetch falls, so long jobs are not hoarded here.
"""

from __future__ import annotations

import math
from typing import Optional

#: How much more than the measured bandwidth-delay product to prefetch.
HEADROOM = 2.0
#: Added to the time a slot's credit is away (scheduling, the gateway's turnaround).
MIN_COVER = 0.001
#: Buffered jobs are only given back once the oldest waited this long (or four RTTs).
MIN_STALE = 1.0
#: The shortest period over which a completion rate is measured, in seconds.
SAMPLE_PERIOD = 0.2

_U32_MAX = 2**32 - 1


class FlowControl:
    """Adaptive window state; persists across reconnects. Times are seconds (monotonic)."""

    def __init__(self, concurrency: int, max_prefetch: int, flush_delay: float, now: float):
        self.concurrency = max(1, concurrency)
        self.max_prefetch = max_prefetch
        self.max_window = _U32_MAX
        self.flush_delay = flush_delay
        self.srtt: Optional[float] = None
        self.rate = 0.0
        self._completed_in_sample = 0
        self._sample_start = now
        self._advertised: Optional[int] = None

    def set_max_window(self, max_window: int) -> None:
        """The gateway's largest accepted window (from ``Welcome``)."""
        if max_window > 0:
            self.max_window = max_window

    def on_rtt(self, rtt: float) -> None:
        """Records a round-trip measurement (TCP-style EWMA, gain 1/8)."""
        self.srtt = rtt if self.srtt is None else (self.srtt * 7 + rtt) / 8

    def on_completed(self, n: int = 1) -> None:
        self._completed_in_sample += n

    def sample(self, now: float) -> None:
        """Folds completions into the rate once ``SAMPLE_PERIOD`` has passed: rises quickly
        (gain 0.5), falls slowly (0.2), since too low a rate costs throughput at once."""
        elapsed = now - self._sample_start
        if elapsed < SAMPLE_PERIOD:
            return
        measured = self._completed_in_sample / elapsed
        gain = 0.5 if measured > self.rate else 0.2
        self.rate += gain * (measured - self.rate)
        self._completed_in_sample = 0
        self._sample_start = now

    def prefetch(self) -> int:
        """Enough jobs for the whole time a slot's credit is away."""
        if self.srtt is None:
            return 0
        away = self.srtt + self.flush_delay + MIN_COVER
        bdp = math.ceil(self.rate * away * HEADROOM)
        room = max(0, self.max_window - self.concurrency)
        return max(0, min(bdp, _U32_MAX, self.max_prefetch, room))

    def window(self) -> int:
        """``concurrency + prefetch``, at least 1 and at most the gateway's maximum."""
        return max(1, min(self.concurrency + self.prefetch(), max(1, self.max_window)))

    def excess(self, buffered: int, oldest_wait: float) -> int:
        """How many unstarted jobs to give back: the excess over the prefetch, once the oldest
        has waited long enough to show handlers are slower than the buffer assumed."""
        if self.srtt is None or oldest_wait < max(self.srtt * 4, MIN_STALE):
            return 0
        return max(0, buffered - self.prefetch())

    def advertised(self, window: int) -> None:
        """The gateway was told ``window`` (in ``Hello`` or an update)."""
        self._advertised = window

    def take_update(self) -> Optional[int]:
        """A new window worth telling the gateway: it differs from the advertised one by at
        least an eighth, or reaches a bound exactly."""
        current = self._advertised
        if current is None:
            return None
        target = self.window()
        delta = abs(target - current)
        at_bound = target in (min(self.concurrency, self.max_window),
                              self.concurrency + self.max_prefetch)
        if delta == 0 or (delta < max(current // 8, 1) and not at_bound):
            return None
        self._advertised = target
        return target
