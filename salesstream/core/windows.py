"""Tumbling-window math, exactly as AWS Lambda applies it to Kinesis records.

A record belongs to the window holding its ApproximateArrivalTimestamp (arrival in the stream,
not the sale time). Windows are aligned to the Unix epoch in UTC: start = floor(t / W) * W.
All arithmetic is on integer milliseconds so a boundary never depends on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

MAX_WINDOW_SECONDS: Final = 900


def to_millis(epoch_seconds: float) -> int:
    """Kinesis arrival timestamps are epoch seconds with a millisecond fraction."""
    return round(epoch_seconds * 1000)


def rfc3339(epoch_ms: int) -> str:
    """The form AWS puts in the event's `window` ("2020-12-09T07:04:00Z")."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = epoch_ms % 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def parse_rfc3339(text: str) -> int:
    """Epoch milliseconds from an RFC 3339 UTC string as found in `window.start`."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1000)


@dataclass(frozen=True, order=True, slots=True)
class Window:
    start_ms: int
    end_ms: int

    @classmethod
    def containing(cls, arrival_ms: int, size_seconds: int) -> Window:
        if not 0 < size_seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window size must be 1..{MAX_WINDOW_SECONDS} s, got {size_seconds}")
        size_ms = size_seconds * 1000
        start = arrival_ms - arrival_ms % size_ms
        return cls(start, start + size_ms)

    @classmethod
    def from_event(cls, start: str, end: str) -> Window:
        return cls(parse_rfc3339(start), parse_rfc3339(end))

    def contains(self, arrival_ms: int) -> bool:
        return self.start_ms <= arrival_ms < self.end_ms

    def as_event(self) -> dict[str, str]:
        return {"start": rfc3339(self.start_ms), "end": rfc3339(self.end_ms)}

    @property
    def key(self) -> str:
        """Sortable text key: the start in RFC 3339 (used in table and object keys)."""
        return rfc3339(self.start_ms)
