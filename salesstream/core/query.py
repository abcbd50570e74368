"""The query of `GET /sales`: parsed and checked once, at the edge, into a typed value.

Every refusal is a `BadRequest` whose message names the parameter and what is allowed, so the
API answers 400 with a sentence a person can act on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Final

from salesstream.core.windows import rfc3339

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 5000
KNOWN_PARAMETERS: Final = ("store", "from", "to", "granularity", "limit", "after")
_STORE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")  # the contract's identifier rule
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadRequest(ValueError):
    """A query the API refuses: answered with 400 and this message."""


class Granularity(StrEnum):
    WINDOW = "window"  # arrival windows (the aggregator's tumbling windows)
    HOUR = "hour"  # arrival windows grouped by the UTC hour their start falls in
    DAY = "day"  # business days: the calendar day of `occurred_at` in the terminal's own offset


# How far back `from` goes when it is left out, and the widest range one request may ask for.
DEFAULT_SPAN_MS: Final = {Granularity.WINDOW: HOUR_MS, Granularity.HOUR: DAY_MS, Granularity.DAY: 7 * DAY_MS}
MAX_SPAN_MS: Final = {
    Granularity.WINDOW: DAY_MS,
    Granularity.HOUR: 31 * DAY_MS,
    Granularity.DAY: 366 * DAY_MS,
}


@dataclass(frozen=True)
class SalesQuery:
    """`[from_ms, to_ms)` selects periods by their start: arrival-window starts for window and
    hour, business days (midnight UTC of the day) for day."""

    granularity: Granularity
    from_ms: int
    to_ms: int
    store: str | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str, str] | None = None  # the sort key of the last row of the previous page

    @property
    def from_day(self) -> str:
        return _day(self.from_ms)

    @property
    def to_day(self) -> str:
        return _day(self.to_ms)

    def window_starts(self) -> tuple[int, int] | None:
        """The arrival-window starts, [low, high), that can fall in the selected periods; None for
        business days: a day's sales may arrive any time after it."""
        match self.granularity:
            case Granularity.WINDOW:
                return self.from_ms, self.to_ms
            case Granularity.HOUR:  # an hour starting just before `to` holds windows up to an hour later
                return self.from_ms, self.to_ms + HOUR_MS
            case Granularity.DAY:
                return None

    def describe(self) -> dict[str, str | int | None]:
        bounds = (
            {"from": self.from_day, "to": self.to_day}
            if self.granularity is Granularity.DAY
            else {"from": rfc3339(self.from_ms), "to": rfc3339(self.to_ms)}
        )
        return {"granularity": self.granularity.value, **bounds, "store": self.store, "limit": self.limit}


def parse_sales_query(parameters: Mapping[str, str] | None, now_ms: int) -> SalesQuery:
    """The query from API Gateway's `queryStringParameters` (repeated names arrive joined by
    commas); `now_ms` fills in the defaults."""
    given = dict(parameters or {})
    unknown = sorted(set(given) - set(KNOWN_PARAMETERS))
    if unknown:
        raise BadRequest(
            f"unknown parameter(s) {', '.join(unknown)}; this route takes {', '.join(KNOWN_PARAMETERS)}"
        )
    granularity = _granularity(given.get("granularity", Granularity.WINDOW.value))
    as_dates = granularity is Granularity.DAY
    if as_dates:
        tomorrow = (datetime.fromtimestamp(now_ms / 1000, tz=UTC).date() + timedelta(days=1)).isoformat()
        to_ms = _instant("to", given.get("to", tomorrow), dates_only=True)
    else:
        to_ms = _instant("to", given["to"], dates_only=False) if "to" in given else now_ms
    from_ms = (
        _instant("from", given["from"], dates_only=as_dates)
        if "from" in given
        else to_ms - DEFAULT_SPAN_MS[granularity]
    )
    if from_ms >= to_ms:
        raise BadRequest(f"from ({given.get('from')}) must be before to ({given.get('to', 'now')})")
    span, widest = to_ms - from_ms, MAX_SPAN_MS[granularity]
    if span > widest:
        raise BadRequest(
            f"range too large: granularity={granularity.value} covers at most {_duration(widest)} per "
            f"request, asked for {_duration(span)}; narrow from/to"
            + ("" if granularity is Granularity.DAY else " or ask for a coarser granularity")
        )
    return SalesQuery(
        granularity=granularity,
        from_ms=from_ms,
        to_ms=to_ms,
        store=_store(given["store"]) if "store" in given else None,
        limit=_limit(given.get("limit", str(DEFAULT_LIMIT))),
        after=decode_cursor(given["after"]) if "after" in given else None,
    )


def _granularity(text: str) -> Granularity:
    try:
        return Granularity(text)
    except ValueError:
        allowed = "|".join(g.value for g in Granularity)
        raise BadRequest(f"unknown granularity {text!r}; use one of {allowed}") from None


def _instant(name: str, text: str, *, dates_only: bool) -> int:
    """Epoch ms of a date (midnight UTC) or, unless `dates_only`, an RFC 3339 timestamp."""
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"{name}={text!r} is not a calendar date") from None
        return round(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    if dates_only:
        raise BadRequest(f"{name}={text!r}: granularity=day takes dates (YYYY-MM-DD), business days")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = " (a '+' in a query string must be sent as %2B)" if " " in text else ""
        raise BadRequest(
            f"{name}={text!r} is not a time: use RFC 3339 with an offset, e.g. 2026-11-23T10:00:00Z, "
            f"or a date{hint}"
        ) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}={text!r} has no offset: add Z or +hh:mm")
    return round(moment.timestamp() * 1000)


def _store(text: str) -> str:
    if not _STORE.match(text):
        raise BadRequest(f"store={text!r} is not a store id (1-128 of A-Z a-z 0-9 . _ : -)")
    return text


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit={text!r}: a whole number of rows from 1 to {MAX_LIMIT}")
    return int(text)


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).date().isoformat()


def _duration(ms: int) -> str:
    return f"{ms / DAY_MS:g} days" if ms >= 2 * DAY_MS else f"{ms / HOUR_MS:g} hours"


# --- the page cursor: the sort key of the last row returned ---------------------------------------


def encode_cursor(key: tuple[str, str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str, str]:
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        key = None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(part, str) for part in key)):
        raise BadRequest("after= must be the `next` value of a previous answer, unchanged")
    return (key[0], key[1], key[2])
