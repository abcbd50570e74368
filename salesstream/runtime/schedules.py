"""The template's `Schedule` events, run by the local runtime on its clock (EventBridge's job).

Expressions as EventBridge scheduled rules define them, in UTC, to the minute:
- `rate(value unit)`: unit minute|minutes|hour|hours|day|days, singular exactly when value is 1;
  the first run comes one period after the runtime starts (a rate rule starts when it is
  created), then every period;
- `cron(minutes hours day-of-month month day-of-week year)`: numbers, names (JAN-DEC, SUN-SAT,
  1 = SUNDAY), `*`, `,`, `-`, `/`; one of day-of-month and day-of-week must be `?`. `L`, `W`
  and `#` are refused at start-up rather than run differently from AWS.

A due schedule invokes its function once, however much time the clock skipped (EventBridge does
not catch up on missed runs), with a Scheduled Event. A failed invocation is retried twice, one
and then two minutes later by the clock (Lambda's asynchronous invocation retries).
"""

from __future__ import annotations

import calendar
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from salesstream.deploy.template import FunctionSpec, Template
from salesstream.runtime.model import RuntimeConfigError

_MINUTE_MS: Final = 60_000
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(([^()]+)\)$")
_UNIT_MS: Final = {"minute": _MINUTE_MS, "hour": 60 * _MINUTE_MS, "day": 24 * 60 * _MINUTE_MS}
_MONTHS: Final = {name: number for number, name in enumerate(calendar.month_abbr) if name}
_DAYS: Final = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_SEARCH_DAYS: Final = 366 * 5  # a cron with no run in five years is refused
RETRY_DELAYS_MS: Final = (60_000, 120_000)


class ScheduleExpressionError(RuntimeConfigError):
    """A schedule expression EventBridge would refuse, or one the local runtime cannot run."""


@dataclass(frozen=True)
class Rate:
    every_ms: int

    def first_after(self, start_ms: int) -> int:
        return start_ms + self.every_ms

    def next_after(self, previous_ms: int, now_ms: int) -> int:
        """The next run after `now_ms` on the grid of `previous_ms` (missed runs are skipped)."""
        missed = max(0, (now_ms - previous_ms) // self.every_ms)
        return previous_ms + (missed + 1) * self.every_ms


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int] | None  # None: `?`
    months: frozenset[int]
    days_of_week: frozenset[int] | None  # 1 = Sunday, as EventBridge counts
    years: frozenset[int]

    def first_after(self, start_ms: int) -> int:
        return self._after(start_ms)

    def next_after(self, previous_ms: int, now_ms: int) -> int:
        return self._after(max(previous_ms, now_ms))

    def _after(self, after_ms: int) -> int:
        """The first matching minute strictly after `after_ms`."""
        moment = datetime.fromtimestamp(after_ms / 1000, tz=UTC).replace(second=0, microsecond=0)
        day = moment.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._matches_day(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        candidate_ms = round(candidate.timestamp() * 1000)
                        if candidate_ms > after_ms:
                            return candidate_ms
            day += timedelta(days=1)
        raise ScheduleExpressionError("the cron expression has no run in the next five years")

    def _matches_day(self, day: datetime) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days_of_month is not None:
            return day.day in self.days_of_month
        weekday = (day.isoweekday() % 7) + 1  # isoweekday: Monday 1 .. Sunday 7 -> Sunday 1
        return self.days_of_week is not None and weekday in self.days_of_week


Expression = Rate | Cron


def parse_schedule(expression: str) -> Expression:
    text = expression.strip()
    rate = _RATE.match(text)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise ScheduleExpressionError(
                f"{expression!r}: EventBridge wants a positive value, with a singular unit for 1 only"
            )
        return Rate(value * _UNIT_MS[unit.rstrip("s")])
    cron = _CRON.match(text)
    if cron is None:
        raise ScheduleExpressionError(f"{expression!r} is neither rate(...) nor cron(...)")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"{expression!r}: a cron expression has six fields, not {len(fields)}")
    minutes, hours, dom, months, dow, years = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleExpressionError(
            f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'"
        )
    return Cron(
        minutes=_field(minutes, 0, 59, {}, expression),
        hours=_field(hours, 0, 23, {}, expression),
        days_of_month=None if dom == "?" else _field(dom, 1, 31, {}, expression),
        months=_field(months, 1, 12, _MONTHS, expression),
        days_of_week=None if dow == "?" else _field(dow, 1, 7, _DAYS, expression),
        years=_field(years, 1970, 2199, {}, expression),
    )


def _field(text: str, low: int, high: int, names: dict[str, int], expression: str) -> frozenset[int]:
    for name, number in names.items():
        text = re.sub(rf"\b{name}\b", str(number), text, flags=re.IGNORECASE)
    if any(mark in text.upper() for mark in ("L", "W", "#")):
        raise ScheduleExpressionError(
            f"{expression!r}: 'L', 'W' and '#' are not supported by the local runtime"
        )
    values: set[int] = set()
    for part in text.split(","):
        values |= _part(part, low, high, expression)
    return frozenset(values)


def _part(part: str, low: int, high: int, expression: str) -> set[int]:
    def number(token: str) -> int:
        if not token.isdigit():
            raise ScheduleExpressionError(f"{expression!r}: {token!r} is not a value of this field")
        if not low <= int(token) <= high:
            raise ScheduleExpressionError(f"{expression!r}: {token} is outside {low}-{high}")
        return int(token)

    span, slash, step_text = part.partition("/")
    if slash and not (step_text.isdigit() and int(step_text) > 0):
        raise ScheduleExpressionError(f"{expression!r}: {part!r} has no positive step")
    step = int(step_text) if slash else 1
    if span == "*":
        start, end = low, high
    elif "-" in span:
        first, last = span.split("-", 1)
        start, end = number(first), number(last)
    else:
        start = number(span)
        end = high if slash else start  # "1/10": from 1, every 10
    return set(range(start, end + 1, step))


@dataclass
class ScheduledRun:
    """One function's schedule event and when it is due next (by the runtime's clock)."""

    function: FunctionSpec
    event_name: str
    expression: Expression
    rule_arn: str
    due_ms: int | None = None  # fixed on the first look at the clock
    retry_ms: int | None = None  # a failed run's next attempt
    attempt: int = 0  # of the current run: 0, then 1 and 2 for the retries
    invocations: int = 0
    failures: int = 0
    last_error: str | None = None

    def due(self, now_ms: int) -> bool:
        if self.due_ms is None:
            self.due_ms = self.expression.first_after(now_ms)
        return now_ms >= self.due_ms or (self.retry_ms is not None and now_ms >= self.retry_ms)

    def event(self, now_ms: int, account: str, region: str) -> dict[str, object]:
        """The Scheduled Event EventBridge delivers (`time`: the minute it was scheduled for)."""
        scheduled = self.due_ms if self.due_ms is not None and now_ms >= self.due_ms else now_ms
        moment = datetime.fromtimestamp(scheduled / 1000, tz=UTC)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": f"{moment:%Y-%m-%dT%H:%M:%SZ}",
            "region": region,
            "resources": [self.rule_arn],
            "detail": {},
        }

    def ran(self, now_ms: int, *, error: str | None) -> None:
        """After an invocation (`error` None: it succeeded): when to run next."""
        self.invocations += 1
        due = self.due_ms if self.due_ms is not None else now_ms
        if now_ms >= due:  # the scheduled run (a retry still pending is superseded)
            self.due_ms = self.expression.next_after(due, now_ms)
            self.attempt = 0
        else:
            self.attempt += 1
        self.retry_ms = None
        if error is not None:
            self.failures += 1
            self.last_error = error
            if self.attempt < len(RETRY_DELAYS_MS):
                self.retry_ms = now_ms + RETRY_DELAYS_MS[self.attempt]

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function.logical_id,
            "event": self.event_name,
            "due_ms": self.due_ms,
            "retry_ms": self.retry_ms,
            "invocations": self.invocations,
            "failures": self.failures,
            "last_error": self.last_error,
        }


def schedules_of(template: Template, functions: Iterable[str] | None = None) -> list[ScheduledRun]:
    """The enabled Schedule events of the template's functions (all, or those named)."""
    wanted = set(functions) if functions is not None else None
    runs = []
    for function in template.functions():
        if wanted is not None and function.logical_id not in wanted:
            continue
        for event in function.schedule_events:
            if not event.enabled:
                continue
            try:
                expression = parse_schedule(event.expression)
            except ScheduleExpressionError as error:
                raise ScheduleExpressionError(f"{function.logical_id}.{event.name}: {error}") from None
            rule = f"arn:aws:events:{template.region}:{template.account_id}:rule/{function.name}-{event.name}"
            runs.append(ScheduledRun(function, event.name, expression, rule))
    return runs
