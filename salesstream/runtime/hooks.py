"""Fault injection around each invocation, for the reliability tests.

A `Hooks` object is asked before and after every invocation what should go wrong:
- before: CRASH (the worker dies before invoking) or DEFER (hold the shard: nothing is invoked
  this step; e.g. a final invocation that comes late);
- after: CRASH (the handler ran and returned, but the worker dies before the checkpoint is
  written: the batch is delivered again, with the state from before it) or REPLAY (the same
  event is delivered a second time at once, as at-least-once delivery allows).
A crash rebuilds the shard's worker from its persisted checkpoint, like a restarted poller.
`SeededFaults` draws these at random from a seed, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from salesstream.runtime.model import Batch, Outcome


class Fault(StrEnum):
    NONE = "none"
    CRASH = "crash"
    DEFER = "defer"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class Call:
    """One invocation about to happen (or just made)."""

    mapping: str
    shard_id: str
    batch: Batch
    event: dict[str, Any]


class Hooks:
    """No faults. Subclass and override either method."""

    def before_invoke(self, call: Call) -> Fault:
        return Fault.NONE

    def after_invoke(self, call: Call, outcome: Outcome) -> Fault:
        return Fault.NONE


class SeededFaults(Hooks):
    """Each fault with its own probability, drawn from one seeded generator."""

    def __init__(
        self,
        seed: int,
        *,
        crash_before: float = 0.0,
        crash_after: float = 0.0,
        replay: float = 0.0,
        defer_final: float = 0.0,
    ) -> None:
        self._random = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        self.crash_before, self.crash_after = crash_before, crash_after
        self.replay, self.defer_final = replay, defer_final
        self.injected: list[tuple[Fault, str, str, str | None]] = []  # what happened, for reports

    def _draw(self, probability: float, fault: Fault, call: Call) -> Fault:
        if probability and self._random.random() < probability:
            self.injected.append((fault, call.mapping, call.shard_id, call.batch.first_sequence))
            return fault
        return Fault.NONE

    def before_invoke(self, call: Call) -> Fault:
        if call.batch.final and self._draw(self.defer_final, Fault.DEFER, call) is Fault.DEFER:
            return Fault.DEFER
        return self._draw(self.crash_before, Fault.CRASH, call)

    def after_invoke(self, call: Call, outcome: Outcome) -> Fault:
        if self._draw(self.crash_after, Fault.CRASH, call) is Fault.CRASH:
            return Fault.CRASH
        return self._draw(self.replay, Fault.REPLAY, call)
