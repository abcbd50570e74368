"""`GET /sales` parameters: defaults, and a clear refusal for each kind of bad value."""

from __future__ import annotations

import pytest

from salesstream.core.query import (
    MAX_LIMIT,
    BadRequest,
    Granularity,
    decode_cursor,
    encode_cursor,
    parse_sales_query,
)
from salesstream.core.windows import parse_rfc3339, rfc3339

NOW = parse_rfc3339("2026-11-23T21:30:00Z")


def test_defaults_are_the_last_hour_of_windows() -> None:
    query = parse_sales_query(None, NOW)
    assert query.granularity is Granularity.WINDOW
    assert (rfc3339(query.from_ms), rfc3339(query.to_ms)) == ("2026-11-23T20:30:00Z", "2026-11-23T21:30:00Z")
    assert (query.store, query.limit, query.after) == (None, 1000, None)


def test_day_granularity_defaults_to_the_last_seven_business_days_including_today() -> None:
    query = parse_sales_query({"granularity": "day"}, NOW)
    assert (query.from_day, query.to_day) == ("2026-11-17", "2026-11-24")
    assert query.describe()["from"] == "2026-11-17"


def test_times_take_an_offset_or_a_date() -> None:
    query = parse_sales_query({"from": "2026-11-23T10:00:00+01:00", "to": "2026-11-24"}, NOW)
    assert query.from_ms == parse_rfc3339("2026-11-23T09:00:00Z")
    query = parse_sales_query({"from": "2026-11-22", "to": "2026-11-23T00:00:00Z", "store": "store-7"}, NOW)
    assert query.to_ms - query.from_ms == 86_400_000
    assert query.store == "store-7"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"granularity": "minute"}, "unknown granularity 'minute'; use one of window|hour|day"),
        ({"from": "2026-11-23T12:00:00Z", "to": "2026-11-23T11:00:00Z"}, "must be before to"),
        ({"from": "2026-11-23T12:00:00Z", "to": "2026-11-23T12:00:00Z"}, "must be before to"),
        ({"from": "yesterday"}, "from='yesterday' is not a time: use RFC 3339 with an offset"),
        ({"from": "2026-11-23T10:00:00 01:00"}, "must be sent as %2B"),
        ({"to": "2026-11-23T10:00:00"}, "has no offset: add Z or +hh:mm"),
        ({"from": "2026-02-30"}, "is not a calendar date"),
        ({"granularity": "day", "from": "2026-11-20T00:00:00Z"}, "granularity=day takes dates"),
        (
            {"from": "2026-11-20", "to": "2026-11-23"},
            "range too large: granularity=window covers at most 24 hours",
        ),
        ({"granularity": "hour", "from": "2026-01-01", "to": "2026-11-23"}, "covers at most 31 days"),
        ({"granularity": "day", "from": "2024-01-01", "to": "2026-11-23"}, "covers at most 366 days"),
        ({"stores": "s1"}, "unknown parameter(s) stores; this route takes store, from, to"),
        ({"store": "bad store"}, "store='bad store' is not a store id"),
        ({"limit": "0"}, f"a whole number of rows from 1 to {MAX_LIMIT}"),
        ({"limit": "many"}, "limit='many'"),
        ({"limit": str(MAX_LIMIT + 1)}, "limit="),
        ({"after": "not-a-cursor"}, "after= must be the `next` value of a previous answer"),
    ],
)
def test_bad_parameters_are_refused_with_a_message_naming_them(
    parameters: dict[str, str], message: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_sales_query(parameters, NOW)
    assert message in str(refused.value)


def test_a_cursor_round_trips() -> None:
    key = ("001795460400000", "store-1", "EUR")
    assert decode_cursor(encode_cursor(key)) == key


def test_the_window_starts_a_query_needs() -> None:
    bounds = {"from": "2026-11-23T10:00:00Z", "to": "2026-11-23T10:30:00Z"}
    window = parse_sales_query(bounds, NOW)
    assert window.window_starts() == (window.from_ms, window.to_ms)
    hour = parse_sales_query({**bounds, "granularity": "hour"}, NOW)  # the 10:00 hour runs to 11:00
    assert hour.window_starts() == (hour.from_ms, parse_rfc3339("2026-11-23T11:30:00Z"))
    assert parse_sales_query({"granularity": "day"}, NOW).window_starts() is None
