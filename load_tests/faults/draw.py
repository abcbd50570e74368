"""Seeded draws that replay exactly, whatever the threads' timing.

A draw is a pure function of (seed, kind, what is drawn for, how many times it was drawn for
before): the same traffic under the same seed meets the same faults, even when shards run in
threads and calls interleave differently. The occurrence count lets a retried call have its
own chance instead of failing forever.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Final

_SCALE: Final = float(2**64)


class Draws:
    def __init__(self, seed: int) -> None:
        self._seed = seed.to_bytes(8, "big", signed=True)
        self._seen: Counter[tuple[str, bytes]] = Counter()
        self._lock = threading.Lock()

    def uniform(self, kind: str, key: bytes) -> float:
        """A number in [0, 1) for the n-th draw of `kind` on `key`."""
        ident = hashlib.blake2b(key, digest_size=16).digest()  # remembered: short, whatever `key` is
        with self._lock:
            occurrence = self._seen[(kind, ident)]
            self._seen[(kind, ident)] = occurrence + 1
        digest = hashlib.blake2b(
            ident,
            digest_size=8,
            key=self._seed,
            person=kind.encode()[:16],
            salt=occurrence.to_bytes(16, "big"),
        ).digest()
        return int.from_bytes(digest, "big") / _SCALE

    def hit(self, kind: str, key: bytes, share: float) -> bool:
        return share > 0 and self.uniform(kind, key) < share
