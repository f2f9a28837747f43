"""Which gateway the worker connects to next, and the reconnect backoff.

The policy of the Rust SDK (``worker-sdk/src/gateways.rs``), over the configured URLs:

- **Spread**: the rotation starts at an index derived from the worker id (FNV-1a), so a fleet
  spreads evenly over the gateways.
- **Fail over**: a gateway that cannot be connected is left for the next.
- **Sticky**: after a lost stream the worker retries the same gateway once; after a drain (the
  gateway is shutting down) it moves on at once.
- **Backoff**: jittered and doubling; reset when a stream opens and when moving to a gateway
  not tried since the last stream opened, so it grows only once every gateway has failed.

Unlike the Rust SDK, a host name that resolves to several addresses is one gateway here: gRPC's
own resolver tries its addresses in turn.
"""

from __future__ import annotations

import random
from typing import Sequence


class Backoff:
    """Exponential backoff with "equal jitter": each delay is drawn from ``[d/2, d]`` where
    ``d`` doubles per attempt from ``minimum`` up to ``maximum``."""

    def __init__(self, minimum: float, maximum: float):
        self.minimum = minimum
        self.maximum = max(minimum, maximum)
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.minimum * (1 << min(self.attempt, 16)), self.maximum)
        self.attempt += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


def start_index(worker_id: str) -> int:
    """A stable hash of the worker id (64-bit FNV-1a)."""
    value = 0xCBF29CE484222325
    for byte in worker_id.encode():
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


class Gateways:
    """The worker's gateways and its place among them; see the module docs."""

    def __init__(self, urls: Sequence[str], worker_id: str, backoff: Backoff):
        if not urls:
            raise ValueError("no gateway URL given")
        self.urls = list(urls)
        self._start = start_index(worker_id)
        self._step = 0
        self._tried: set[int] = set()
        self.backoff = backoff

    def _index(self, step: int) -> int:
        return (self._start + step) % len(self.urls)

    def target(self) -> str:
        """The gateway to connect to now."""
        return self.urls[self._index(self._step)]

    def opened(self) -> None:
        """A stream opened: every gateway counts as untried again."""
        self.backoff.reset()
        self._tried.clear()

    def lost(self) -> float:
        """The stream was lost: retry the same gateway once. Returns the delay."""
        self._tried.add(self._index(self._step))
        return self.backoff.next_delay()

    def drained(self) -> float:
        """The gateway drained the stream: move on at once. Returns the delay."""
        return self.refused()

    def refused(self) -> float:
        """The gateway could not be connected: move on. Returns the delay."""
        self._tried.add(self._index(self._step))
        self._step = (self._step + 1) % len(self.urls)
        if self._index(self._step) not in self._tried:
            self.backoff.reset()
        return self.backoff.next_delay()
