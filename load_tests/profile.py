"""The shape of a load test over time: a constant rate, a ramp, or a business day compressed into
the run, as a deterministic schedule of small slots.

The schedule depends only on the profile, never on how fast the machine is: slot k starts at
k * slot seconds into the run and holds round(E(end)) - round(E(start)) events, where E is the
expected number of events so far. A generator that falls behind sends the next slots at once;
the events, their stores and their ids stay the same.

The `day` shape: the run stands for one UTC day (00:00 at its start, 24:00 at its end). Each
store is open from 08:00 to 21:00 in its own time zone, busiest around lunch and in the early
evening, so its activity at a moment depends on its UTC offset; the fleet's rate follows the sum
of its stores' activities, scaled so that the busiest moment of the day is `rate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

SLOT_SECONDS: Final = 0.05
DAY_STEPS: Final = 96  # the day's activity changes every 15 simulated minutes
# Demand of an open store by local hour (08:00 opening .. 21:00 closing), interpolated linearly.
_DEMAND_BY_HOUR: Final = {
    8: 0.3, 9: 0.5, 10: 0.7, 11: 0.9, 12: 1.0, 13: 0.9, 14: 0.6,
    15: 0.6, 16: 0.7, 17: 0.9, 18: 1.0, 19: 0.8, 20: 0.5, 21: 0.0,
}  # fmt: skip
OPENING_HOUR: Final = 8
CLOSING_HOUR: Final = 21


class Shape(StrEnum):
    FLAT = "flat"
    RAMP = "ramp"
    DAY = "day"


class StoreLike(Protocol):
    @property
    def weight(self) -> float: ...

    @property
    def utc_offset_hours(self) -> int: ...


def demand(local_hour: float) -> float:
    """How busy an open store is at a local hour of the day (0 when closed), peak 1."""
    hour = local_hour % 24
    if not OPENING_HOUR <= hour < CLOSING_HOUR:
        return 0.0
    whole = math.floor(hour)
    low, high = _DEMAND_BY_HOUR[whole], _DEMAND_BY_HOUR[whole + 1]
    return low + (high - low) * (hour - whole)


def store_activity(stores: Sequence[StoreLike], utc_hour: float) -> list[float]:
    return [demand(utc_hour + store.utc_offset_hours) for store in stores]


@dataclass(frozen=True, slots=True)
class Slot:
    start: float  # seconds into the run when it is due
    count: int  # events it holds
    activity: tuple[float, ...] | None  # new per-store activity from this slot on; None = unchanged


@dataclass(frozen=True)
class LoadProfile:
    shape: Shape
    rate: float  # events/s: the constant rate, the ramp's end, or the day's busiest moment
    duration: float  # seconds
    ramp_from: float = 0.0  # events/s at the start of a ramp

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.duration <= 0 or self.ramp_from < 0:
            raise ValueError("a load profile needs rate > 0, duration > 0 and ramp_from >= 0")

    def slots(self, stores: Sequence[StoreLike] = (), slot_seconds: float = SLOT_SECONDS) -> Iterator[Slot]:
        """The schedule; `stores` (with weight and UTC offset) is needed for the `day` shape."""
        steps = self._steps(stores)
        count = max(1, math.ceil(self.duration / slot_seconds - 1e-9))
        expected = 0.0
        step_index = -1
        for k in range(count):
            start = k * slot_seconds
            end = min(self.duration, start + slot_seconds)
            middle = (start + end) / 2
            activity = None
            if steps:
                index = min(len(steps) - 1, int(middle / self.duration * len(steps)))
                rate = steps[index][0]
                if index != step_index:
                    step_index, activity = index, steps[index][1]
            else:
                rate = self.rate_at(middle)
            before = round(expected)
            expected += rate * (end - start)
            yield Slot(start, round(expected) - before, activity)

    def rate_at(self, t: float) -> float:
        """The target rate t seconds into the run (flat and ramp shapes)."""
        if self.shape is Shape.RAMP:
            return self.ramp_from + (self.rate - self.ramp_from) * min(1.0, max(0.0, t / self.duration))
        return self.rate

    def _steps(self, stores: Sequence[StoreLike]) -> list[tuple[float, tuple[float, ...]]]:
        """For the day shape: per step, the fleet's rate and every store's activity."""
        if self.shape is not Shape.DAY:
            return []
        if not stores:
            raise ValueError("the day shape needs the fleet's stores (weights and UTC offsets)")
        activities = [
            tuple(store_activity(stores, (step + 0.5) * 24 / DAY_STEPS)) for step in range(DAY_STEPS)
        ]
        loads = [sum(s.weight * a for s, a in zip(stores, levels, strict=True)) for levels in activities]
        peak = max(loads)
        if peak <= 0:
            raise ValueError("no store is ever open")
        # a step where every store is closed has rate 0; its activity falls back to the store sizes
        # only so that the fleet always has a store to choose from
        return [
            (self.rate * load / peak, levels if load > 0 else tuple(s.weight for s in stores))
            for load, levels in zip(loads, activities, strict=True)
        ]

    def planned_events(self, stores: Sequence[StoreLike] = ()) -> int:
        return sum(slot.count for slot in self.slots(stores))
