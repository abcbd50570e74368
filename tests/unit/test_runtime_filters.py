"""FilterCriteria: the documented subset of the event-pattern grammar, as Lambda applies it to
Kinesis records (data parsed as JSON, metadata alongside)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from salesstream.runtime.filters import FilterPatternError, RecordFilter


def kinesis(data: Any, *, partition_key: str = "store-1", raw: bytes | None = None) -> dict[str, Any]:
    payload = raw if raw is not None else json.dumps(data).encode()
    return {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": partition_key,
        "sequenceNumber": "42",
        "data": base64.b64encode(payload).decode(),
        "approximateArrivalTimestamp": 1_700_000_000.123,
    }


ORDER = {
    "store": "store-7",
    "total": 2500,
    "paid": True,
    "note": None,
    "tags": ["a", "vip"],
    "lines": [{"sku": "X"}],
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"data": {"store": ["store-7"]}}, True),
        ({"data": {"store": ["store-8", "store-7"]}}, True),  # values of a key are ORed
        ({"data": {"store": ["store-8"]}}, False),
        ({"data": {"total": [2500]}}, True),
        ({"data": {"total": ["2500"]}}, False),  # a string is not a number
        ({"data": {"paid": [True]}}, True),
        ({"data": {"note": [None]}}, True),
        ({"data": {"store": [""]}}, False),
        ({"data": {"store": [{"prefix": "store-"}]}}, True),
        ({"data": {"store": [{"suffix": "-7"}]}}, True),
        ({"data": {"store": [{"equals-ignore-case": "STORE-7"}]}}, True),
        ({"data": {"total": [{"numeric": [">", 1000, "<=", 2500]}]}}, True),
        ({"data": {"total": [{"numeric": ["<", 1000]}]}}, False),
        ({"data": {"total": [{"numeric": ["=", 2500]}]}}, True),
        ({"data": {"store": [{"numeric": [">", 0]}]}}, False),
        ({"data": {"refund": [{"exists": False}]}}, True),
        ({"data": {"store": [{"exists": True}]}}, True),
        ({"data": {"store": [{"exists": False}]}}, False),
        ({"data": {"store": [{"anything-but": ["store-1", "store-2"]}]}}, True),
        ({"data": {"store": [{"anything-but": "store-7"}]}}, False),
        ({"data": {"store": [{"anything-but": {"prefix": "store"}}]}}, False),
        ({"data": {"tags": ["vip"]}}, True),  # an array value matches if an element does
        ({"data": {"lines": {"sku": ["X"]}}}, True),  # nested objects, through arrays too
        ({"data": {"store": ["store-7"], "total": [1]}}, False),  # the keys of a pattern are ANDed
        ({"partitionKey": ["store-1"]}, True),  # metadata
        ({"partitionKey": [{"prefix": "store-2"}]}, False),
    ],
)
def test_one_pattern(pattern: dict[str, Any], matches: bool) -> None:
    assert RecordFilter([pattern]).matches(kinesis(ORDER)) is matches


def test_filters_are_ored() -> None:
    record_filter = RecordFilter([{"data": {"store": ["nope"]}}, {"data": {"total": [2500]}}])
    assert record_filter.matches(kinesis(ORDER))
    assert not RecordFilter([{"data": {"store": ["nope"]}}]).matches(kinesis(ORDER))


def test_no_filters_match_everything_even_binary_data() -> None:
    record_filter = RecordFilter([])
    assert not record_filter
    assert record_filter.matches(kinesis(None, raw=b"\xf3\x89\x9a\xc2 kpl aggregate"))


@pytest.mark.parametrize("raw", [b"\xf3\x89\x9a\xc2", b"not json", b'{"store": "store-7"'])
def test_a_pattern_on_data_never_matches_data_that_is_not_json(raw: bytes) -> None:
    assert not RecordFilter([{"data": {"store": [{"exists": False}]}}]).matches(kinesis(None, raw=raw))
    assert RecordFilter([{"partitionKey": ["store-1"]}]).matches(kinesis(None, raw=raw))


@pytest.mark.parametrize(
    "pattern",
    [
        {"$or": [{"data": {"a": [1]}}, {"data": {"b": [2]}}]},
        {"data": {"store": [{"wildcard": "store-*"}]}},
        {"data": {"ip": [{"cidr": "10.0.0.0/24"}]}},
        {"data": {"store": [{"anything-but": {"suffix": "-7"}}]}},
        {"data": {"total": [{"numeric": [">", "10"]}]}},
        {"data": {"total": [{"numeric": ["!=", 10]}]}},
        {"data": {"store": []}},
        {"data": {"store": "store-7"}},
        {"data": {"store": [{"exists": "yes"}]}},
        {"data": {"store": [{"prefix": 7}]}},
    ],
)
def test_what_is_not_supported_is_refused_when_the_mapping_is_read(pattern: dict[str, Any]) -> None:
    with pytest.raises(FilterPatternError):
        RecordFilter([pattern])
