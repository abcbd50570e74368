"""When does a window's result become visible to a reader? A probe polls for it during the run.

A probe implements `VisibilityProbe`: `poll()` returns the window segments that became visible
since the last poll (each stamped with the time it was first seen) and `counted()` the events
visible so far. What exists now:

- `AggregatesTableProbe`: the speed layer's aggregates table, as any reader of it sees it. One
  BatchGetItem of every shard's COUNTERS item per poll; while a shard's `segments` counter is
  ahead of the SEGMENT items seen, a Query for the new ones (without the per-store payload). A
  segment persisted in several transactions of 100 items moves the counter in the first and
  writes its SEGMENT item in the last, so the probe keeps looking until the item is there.

- `ApiShardsProbe`: the serving API (consumers/serving, served in-process by
  salesstream/emulator/local_api.py), through HTTP: GET /shards, which reads each shard's counters
  and running totals. It reports a
  shard's window the first time /shards shows it closed (`WindowSeen`: the API shows totals, not
  segment positions). To keep probing cheap on a shared machine it asks only while the aggregates
  table holds a segment the API has not shown yet (the API reads that table, so it cannot show one
  earlier); each poll is then one request, answered with one Query per shard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

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


@dataclass(frozen=True, slots=True)
class WindowSeen:
    """A shard's window as a reader of the API first saw it closed."""

    shard_id: str
    key: str  # the window end, zero-padded ms
    window_end_ms: int
    seen_at: float  # epoch seconds
    terminated_early: bool = False


class Seen(Protocol):
    """What every probe reports: when a shard's window (segment) became visible."""

    @property
    def shard_id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def window_end_ms(self) -> int: ...
    @property
    def seen_at(self) -> float: ...
    @property
    def terminated_early(self) -> bool: ...


class VisibilityProbe(Protocol):
    name: str

    def poll(self, now: float) -> Sequence[Seen]: ...

    def counted(self) -> int: ...


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def sighting_of(shard_id: str, item: dict[str, Any], seen_at: float) -> Sighting:
    """A SEGMENT item of the aggregates table (consumers/speed/segments.py) as a Sighting."""
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

    def segment_counts(self) -> dict[str, int]:
        """Per shard, the segments counter as last read."""
        return dict(self._segments)

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


class ApiProbeError(RuntimeError):
    """The API answered a probe with an error status or something that is not its JSON."""


class ApiShardsProbe:
    name = "api /shards"

    def __init__(
        self, url: str, table_segments: Callable[[], dict[str, int]], *, timeout: float = 10.0
    ) -> None:
        split = urlsplit(url)
        self._connection = HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=timeout)
        self._table_segments = table_segments
        self._segments: dict[str, int] = {}  # shard -> segments counter the API last showed
        self._events: dict[str, int] = {}
        self._asked = False
        self.requests = 0

    def counted(self) -> int:
        return sum(self._events.values())

    def poll(self, now: float) -> list[WindowSeen]:
        behind = any(count > self._segments.get(shard, 0) for shard, count in self._table_segments().items())
        if self._asked and not behind:
            return []
        self._asked = True
        shards = self._get("/shards")["shards"]
        seen_at = time.time()  # when the answer arrived: the request's time is part of it
        found = []
        for shard in shards:
            shard_id, segments = shard["shard_id"], int(shard["segments"])
            if segments == self._segments.get(shard_id, 0):
                continue
            self._segments[shard_id], self._events[shard_id] = segments, int(shard["events"])
            end = shard["last_window_end"]
            end_ms = parse_rfc3339(end) if end else None
            # a segment the state limit ended early shows before its window ends: wait for the last
            if end_ms is not None and seen_at * 1000 >= end_ms:
                found.append(WindowSeen(shard_id, f"{end_ms:015d}", end_ms, seen_at))
        return found

    def _get(self, path: str) -> dict[str, Any]:
        self.requests += 1
        try:
            self._connection.request("GET", path)
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, HTTPException):
            self._connection.close()  # the next request opens a new connection
            raise
        if response.status != 200:
            raise ApiProbeError(f"GET {path}: {response.status} {body[:200]!r}")
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError as error:
            raise ApiProbeError(f"GET {path}: not JSON: {body[:200]!r}") from error
        return answer

    def close(self) -> None:
        self._connection.close()
