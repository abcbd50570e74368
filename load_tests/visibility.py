"""When does a window's result become visible to a reader? A probe polls for it during the run.

A probe implements `VisibilityProbe`: `poll()` returns the window segments that became visible
since the last poll (each stamped with the time it was first seen) and `counted()` the events
visible so far. What exists now:

- `AggregatesTableProbe`: the speed layer's aggregates table, as any reader of it sees it. One
  BatchGetItem of every shard's COUNTERS item per poll; while a shard's `segments` counter is
  ahead of the SEGMENT items seen, a Query for the new ones (without the per-store payload). A
  segment persisted in several transactions of 100 items moves the counter in the first and
  writes its SEGMENT item in the last, so the probe keeps looking until the item is there.

The serving API plugs in here when it lands: a probe that reads GET /shards (or /sales) and
reports each segment the first time the API shows it, with the same `Sighting`s; pass it to
`run_load_test(..., probes=[...])` and the report gains its own "window end -> visible"
percentiles under its `name`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from salesstream.core.positions import Position
from salesstream.core.windows import parse_rfc3339

_BATCH_GET_LIMIT: Final = 100
_SEGMENT_ATTRIBUTES: Final = (
    "sk",
    "window_start",
    "window_end",
    "first_sequence",
    "first_subsequence",
    "last_sequence",
    "last_subsequence",
    "events",
    "terminated_early",
)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A window segment as a reader first saw it."""

    shard_id: str
    key: str  # the segment's sort key: window start + first position
    window_start_ms: int
    window_end_ms: int
    first: Position
    last: Position
    events: int
    terminated_early: bool
    seen_at: float  # epoch seconds


class VisibilityProbe(Protocol):
    name: str

    def poll(self, now: float) -> list[Sighting]: ...

    def counted(self) -> int: ...


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def sighting_of(shard_id: str, item: dict[str, Any], seen_at: float) -> Sighting:
    """A SEGMENT item of the aggregates table (consumers/aggregator/persistence.py) as a Sighting."""
    return Sighting(
        shard_id=shard_id,
        key=_text(item, "sk"),
        window_start_ms=parse_rfc3339(_text(item, "window_start")),
        window_end_ms=parse_rfc3339(_text(item, "window_end")),
        first=Position.of(_text(item, "first_sequence"), _number(item, "first_subsequence")),
        last=Position.of(_text(item, "last_sequence"), _number(item, "last_subsequence")),
        events=_number(item, "events"),
        terminated_early=bool(item.get("terminated_early", {}).get("BOOL", False)),
        seen_at=seen_at,
    )


class AggregatesTableProbe:
    name = "aggregates table"

    def __init__(self, dynamodb: Any, table: str, shard_ids: list[str]) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._shards = list(shard_ids)
        self._segments: dict[str, int] = {}  # shard -> segments counter last read
        self._found: dict[str, int] = {}  # shard -> SEGMENT items seen
        self._events: dict[str, int] = {}  # shard -> events counter last seen
        self._last_key: dict[str, str] = {}  # shard -> newest segment key seen

    def set_shards(self, shard_ids: list[str]) -> None:
        self._shards = list(shard_ids)

    def counted(self) -> int:
        return sum(self._events.values())

    def poll(self, now: float) -> list[Sighting]:
        for start in range(0, len(self._shards), _BATCH_GET_LIMIT):
            keys = [
                {"pk": {"S": f"SHARD#{shard}"}, "sk": {"S": "COUNTERS"}}
                for shard in self._shards[start : start + _BATCH_GET_LIMIT]
            ]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = self._dynamodb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    shard = _text(item, "pk").removeprefix("SHARD#")
                    self._segments[shard] = _number(item, "segments")
                    self._events[shard] = _number(item, "events")
                request = answer.get("UnprocessedKeys") or {}
        behind = [shard for shard, count in self._segments.items() if count > self._found.get(shard, 0)]
        return [sighting for shard in behind for sighting in self.segments_after(shard, now)]

    def segments_after(self, shard: str, now: float) -> list[Sighting]:
        """The shard's segments newer than the last one seen, stamped `now`."""
        names = {f"#a{i}": name for i, name in enumerate(_SEGMENT_ATTRIBUTES)}
        values: dict[str, Any] = {":pk": {"S": f"SEGMENT#{shard}"}}
        condition = "pk = :pk"
        if shard in self._last_key:
            condition += " AND sk > :after"
            values[":after"] = {"S": self._last_key[shard]}
        found: list[Sighting] = []
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ExpressionAttributeNames=names,
            ProjectionExpression=", ".join(names),
            ConsistentRead=True,
        )
        for page in pages:
            found.extend(sighting_of(shard, item, now) for item in page["Items"])
        if found:
            self._last_key[shard] = max(s.key for s in found)
            self._found[shard] = self._found.get(shard, 0) + len(found)
        return found
