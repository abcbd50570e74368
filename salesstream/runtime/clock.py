"""The runtime's notion of now: the wall clock, or a virtual clock that tests move by hand.

Windows close, batching windows expire, polls fall due and records age by this clock only, so a
test can put records, jump a minute ahead and see the final invocation at once. (Record arrival
times come from Kinesis; a virtual clock starts at the real time so the two are comparable.)
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class VirtualClock:
    """Stands still until moved; thread-safe."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = WallClock().now_ms() if start_ms is None else start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("a clock never goes back")
        with self._lock:
            self._now += round(seconds * 1000)
            return self._now

    def set(self, epoch_ms: int) -> None:
        with self._lock:
            if epoch_ms < self._now:
                raise ValueError("a clock never goes back")
            self._now = epoch_ms
