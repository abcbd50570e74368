"""The load test's schedule: flat, ramp and a compressed business day (load_tests/profile.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from load_tests.profile import LoadProfile, Shape, demand, store_activity


@dataclass(frozen=True)
class Store:
    weight: float
    utc_offset_hours: int


FLEET = [Store(0.5, 1), Store(0.3, -5), Store(0.2, 9)]


def test_a_flat_profile_schedules_rate_times_duration_in_even_slots() -> None:
    slots = list(LoadProfile(Shape.FLAT, rate=1_000, duration=3).slots())
    assert len(slots) == 60  # 50 ms each
    assert {slot.count for slot in slots} == {50}
    assert [slot.start for slot in slots[:3]] == pytest.approx([0.0, 0.05, 0.1])
    assert all(slot.activity is None for slot in slots)


def test_a_rate_that_does_not_divide_evenly_still_sums_exactly() -> None:
    profile = LoadProfile(Shape.FLAT, rate=333, duration=7)
    assert profile.planned_events() == 333 * 7
    assert {slot.count for slot in profile.slots()} <= {16, 17}


def test_a_ramp_climbs_from_its_start_to_the_rate() -> None:
    slots = list(LoadProfile(Shape.RAMP, rate=2_000, duration=10, ramp_from=0).slots())
    assert sum(slot.count for slot in slots) == 10_000  # the mean of 0 and 2,000 for 10 s
    assert slots[0].count < slots[len(slots) // 2].count < slots[-1].count
    assert slots[-1].count == pytest.approx(2_000 * 0.05, abs=2)


def test_stores_open_from_eight_to_nine_in_their_own_time_zone() -> None:
    assert demand(7.99) == demand(21) == demand(3) == 0
    assert demand(12) == demand(18) == 1.0  # lunch and the early evening
    assert 0 < demand(8) < demand(10) < demand(12)
    assert store_activity(FLEET, utc_hour=11) == [demand(12), 0.0, demand(20)]


def test_a_day_follows_the_open_stores_and_peaks_at_the_rate() -> None:
    profile = LoadProfile(Shape.DAY, rate=1_000, duration=24)
    slots = list(profile.slots(FLEET))
    per_second = [sum(s.count for s in slots[i : i + 20]) for i in range(0, len(slots), 20)]
    assert max(per_second) == pytest.approx(1_000, rel=0.05)  # one second of run = one hour of day
    assert min(per_second) < 0.3 * max(per_second)  # the night is quiet
    assert sum(per_second) < 1_000 * 24
    changes = [slot.activity for slot in slots if slot.activity is not None]
    assert len(changes) == 96  # every 15 simulated minutes
    assert all(len(activity) == len(FLEET) for activity in changes)


def test_the_day_needs_the_fleet_and_a_profile_needs_a_rate() -> None:
    with pytest.raises(ValueError, match="stores"):
        list(LoadProfile(Shape.DAY, rate=10, duration=1).slots())
    with pytest.raises(ValueError, match="rate"):
        LoadProfile(Shape.FLAT, rate=0, duration=1)


def test_the_schedule_is_the_same_on_every_run() -> None:
    profile = LoadProfile(Shape.DAY, rate=500, duration=12)
    assert list(profile.slots(FLEET)) == list(profile.slots(FLEET))
