from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.positions import Position, sequence_key
from salesstream.core.windows import Window, parse_rfc3339, rfc3339, to_millis


def test_windows_are_epoch_aligned_in_utc() -> None:
    # 2020-12-09T07:04:35.5Z with a 120 s window -> [07:04:00, 07:06:00), as in the AWS example
    arrival = parse_rfc3339("2020-12-09T07:04:35.500Z")
    window = Window.containing(arrival, 120)
    assert window.as_event() == {"start": "2020-12-09T07:04:00Z", "end": "2020-12-09T07:06:00Z"}


def test_a_record_on_the_boundary_opens_the_next_window() -> None:
    boundary = parse_rfc3339("2026-11-23T10:01:00Z")
    assert Window.containing(boundary - 1, 60).end_ms == boundary
    assert Window.containing(boundary, 60).start_ms == boundary


def test_arrival_seconds_with_fraction_become_exact_millis() -> None:
    assert to_millis(1607497475.123) == 1607497475123


@pytest.mark.parametrize("size", [0, -1, 901])
def test_window_size_outside_aws_limits_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="window size"):
        Window.containing(0, size)


@given(st.integers(min_value=0, max_value=4_102_444_800_000), st.integers(min_value=1, max_value=900))
def test_every_arrival_falls_in_exactly_its_window(arrival_ms: int, size: int) -> None:
    window = Window.containing(arrival_ms, size)
    assert window.contains(arrival_ms)
    assert window.start_ms % (size * 1000) == 0
    assert window.end_ms - window.start_ms == size * 1000
    assert Window.from_event(**window.as_event()) == window


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_rfc3339_round_trips(epoch_ms: int) -> None:
    assert parse_rfc3339(rfc3339(epoch_ms)) == epoch_ms


@given(st.integers(min_value=0, max_value=10**56 - 1), st.integers(min_value=0, max_value=10**56 - 1))
def test_sequence_keys_sort_like_the_numbers(a: int, b: int) -> None:
    assert (sequence_key(str(a)) < sequence_key(str(b))) == (a < b)


def test_positions_order_by_sequence_then_subsequence() -> None:
    assert Position.of("9", 5) < Position.of("10", 0) < Position.of("10", 1)
    assert Position.of("49590338271490256608559692538361571095921575989136588898", 2).key.endswith(".000002")


def test_a_sequence_number_must_be_digits() -> None:
    with pytest.raises(ValueError, match="sequence number"):
        sequence_key("12a")
