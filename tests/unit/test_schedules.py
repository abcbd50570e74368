"""Schedule expressions as EventBridge defines them, and when the local runtime runs them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.deploy.template import FunctionSpec
from salesstream.runtime.schedules import (
    Cron,
    Rate,
    ScheduledRun,
    ScheduleExpressionError,
    parse_schedule,
)

MINUTE = 60_000


def at(text: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_rate_expressions() -> None:
    assert parse_schedule("rate(5 minutes)") == Rate(5 * MINUTE)
    assert parse_schedule("rate(1 hour)") == Rate(60 * MINUTE)
    assert parse_schedule("rate(2 days)") == Rate(2 * 24 * 60 * MINUTE)


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",  # EventBridge wants the singular for 1 ...
        "rate(5 minute)",  # ... and only for 1
        "rate(0 minutes)",
        "rate(5 seconds)",
        "every 5 minutes",
        "cron(0 10 * * *)",  # five fields
        "cron(0 10 * * * *)",  # day-of-month and day-of-week both given
        "cron(0 10 ? * ? *)",  # ... both '?'
        "cron(0 10 L * ? *)",  # last day of month: not run locally
        "cron(0 10 ? * 6#3 *)",  # third Friday: not run locally
        "cron(0 10 15W * ? *)",
        "cron(60 10 * * ? *)",  # minute out of range
        "cron(0/0 10 * * ? *)",  # no step
        "cron(0 10 * FOO ? *)",
    ],
)
def test_expressions_eventbridge_or_the_runtime_refuses(expression: str) -> None:
    with pytest.raises(ScheduleExpressionError):
        parse_schedule(expression)


def test_cron_fields_with_names_lists_ranges_and_steps() -> None:
    cron = parse_schedule("cron(0/15 8-10 ? JUL,DEC MON-FRI 2026-2027)")
    assert isinstance(cron, Cron)
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 9, 10}
    assert cron.months == {7, 12}  # JUL holds an "L" but is a name, not the last-day wildcard
    assert cron.days_of_week == {2, 3, 4, 5, 6}  # 1 = Sunday
    assert cron.days_of_month is None
    assert cron.years == {2026, 2027}


def test_cron_runs_at_the_next_matching_minute_in_utc() -> None:
    weekdays_at_ten = parse_schedule("cron(0 10 ? * MON-FRI *)")
    # Friday 2026-11-27 10:00 has passed: the next is Monday 2026-11-30 10:00
    assert weekdays_at_ten.first_after(at("2026-11-27T10:00:00")) == at("2026-11-30T10:00:00")
    assert weekdays_at_ten.first_after(at("2026-11-27T09:59:30")) == at("2026-11-27T10:00:00")
    first_of_month = parse_schedule("cron(30 0 1 * ? *)")
    assert first_of_month.first_after(at("2026-11-23T12:00:00")) == at("2026-12-01T00:30:00")
    every_ten_from_one = parse_schedule("cron(1/10 * * * ? *)")
    assert every_ten_from_one.first_after(at("2026-11-23T12:05:00")) == at("2026-11-23T12:11:00")


@given(
    every=st.integers(1, 24 * 60),
    start=st.integers(0, 2**41),
    late=st.integers(0, 10**9),
)
def test_a_rate_runs_on_its_grid_and_skips_what_it_missed(every: int, start: int, late: int) -> None:
    rate = Rate(every * MINUTE)
    first = rate.first_after(start)
    assert first == start + every * MINUTE
    now = first + late
    following = rate.next_after(first, now)
    assert now < following <= now + every * MINUTE
    assert (following - first) % (every * MINUTE) == 0


def scheduled(expression: str) -> ScheduledRun:
    function = FunctionSpec("SnapshotFunction", "dev-snapshot", "m.h", 900, 1024, {}, [], [], [])
    return ScheduledRun(function, "Snapshot", parse_schedule(expression), "arn:aws:events:::rule/r")


def test_a_failed_run_is_retried_twice_a_minute_and_then_two_minutes_later() -> None:
    run = scheduled("rate(5 minutes)")
    start = at("2026-11-23T10:00:00")
    assert not run.due(start)
    due = start + 5 * MINUTE
    assert not run.due(due - 1)
    assert run.due(due)
    assert run.event(due, "123456789012", "eu-west-1")["time"] == "2026-11-23T10:05:00Z"
    run.ran(due, error="boom")
    assert not run.due(due + MINUTE - 1)
    assert run.due(due + MINUTE)  # first retry
    run.ran(due + MINUTE, error="boom")
    assert not run.due(due + 3 * MINUTE - 1)
    assert run.due(due + 3 * MINUTE)  # second retry, two minutes after the first
    run.ran(due + 3 * MINUTE, error="boom")
    assert run.retry_ms is None  # no third retry
    assert not run.due(due + 5 * MINUTE - 1)
    assert run.due(due + 5 * MINUTE)  # the next scheduled run
    run.ran(due + 5 * MINUTE, error=None)
    assert (run.invocations, run.failures) == (4, 3)
    assert run.due_ms == due + 10 * MINUTE


def test_a_clock_that_jumps_runs_once_not_once_per_missed_period() -> None:
    run = scheduled("rate(1 minute)")
    start = at("2026-11-23T10:00:00")
    run.due(start)
    later = start + 60 * MINUTE + 30_000
    assert run.due(later)
    run.ran(later, error=None)
    assert not run.due(later)
    assert run.due_ms == start + 61 * MINUTE
