"""The event archive's format: one gzip JSON-lines object per archiver invocation.

Key, partitioned by arrival hour (UTC) as Kinesis Data Firehose writes it:

    archive/YYYY/MM/DD/HH/<shardId>-<first position>-<last position>.jsonl.gz

The hour is the arrival of the batch's first record; the positions (60-digit sequence number,
a dot, 6-digit sub-sequence number) are the batch's first and last user record. A replayed
invocation therefore writes the same key, and, gzip's header time fixed at 0, the same bytes.

One line per accepted user record, the event exactly as received as the last member:

    {"shard":"shardId-000000000000","sequence_number":"4959...","subsequence":0,
     "arrival_ms":1795428001234,"event":{...the producer's bytes...}}

(JSON allows line breaks only as whitespace between tokens, so an event sent with line breaks
is archived with spaces in their place, the one change ever made to the bytes.) A user record
that belongs to another shard (misplaced after a reshard; the producer resends it there) is not
archived; a marker line with its event id keeps the trace, so the batch layer can tell a resend
that never arrived:

    {"shard":"...","sequence_number":"...","subsequence":3,"arrival_ms":...,"misplaced_event_id":"evt-1"}
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from salesstream.core.positions import Position

ARCHIVE_PREFIX: Final = "archive/"
_SUFFIX: Final = ".jsonl.gz"
_HOUR_MS: Final = 3_600_000
# gzip level 6: the archiver writes each object once, the snapshot reads it at every run
_LEVEL: Final = 6
_EVENT = re.compile(
    rb'\{"shard":"([^"]+)","sequence_number":"(\d+)","subsequence":(\d+),"arrival_ms":(\d+),"event":'
)
_MISPLACED = re.compile(
    rb'\{"shard":"([^"]+)","sequence_number":"(\d+)","subsequence":(\d+),"arrival_ms":(\d+),'
    rb'"misplaced_event_id":(null|"[^"]*")\}$'
)


class ArchiveFormatError(ValueError):
    """An archive object or line that this format did not write."""


@dataclass(frozen=True, slots=True)
class ArchivedLine:
    """One line: an accepted event (`raw`) or a misplaced marker (`raw` None)."""

    shard_id: str
    sequence_number: str
    subsequence: int
    arrival_ms: int
    raw: bytes | None
    misplaced_event_id: str | None = None

    @property
    def position(self) -> Position:
        return Position.of(self.sequence_number, self.subsequence)


# --- keys -------------------------------------------------------------------------------------


def hour_prefix(arrival_ms: int) -> str:
    moment = datetime.fromtimestamp(arrival_ms / 1000, tz=UTC)
    return f"{ARCHIVE_PREFIX}{moment:%Y/%m/%d/%H}/"


def archive_key(shard_id: str, first_arrival_ms: int, first: Position, last: Position) -> str:
    return f"{hour_prefix(first_arrival_ms)}{shard_id}-{first.key}-{last.key}{_SUFFIX}"


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    """What a key says without reading the object."""

    key: str
    hour_start_ms: int
    shard_id: str
    first: Position
    last: Position

    @classmethod
    def parse(cls, key: str) -> ArchiveKey:
        try:
            hour, name = key.removeprefix(ARCHIVE_PREFIX).rsplit("/", 1)
            moment = datetime.strptime(hour, "%Y/%m/%d/%H").replace(tzinfo=UTC)
            shard_id, first, last = name.removesuffix(_SUFFIX).rsplit("-", 2)
            return cls(key, round(moment.timestamp() * 1000), shard_id, _position(first), _position(last))
        except ValueError as error:
            raise ArchiveFormatError(f"not an archive key: {key!r}") from error

    @property
    def hour_end_ms(self) -> int:
        return self.hour_start_ms + _HOUR_MS


def _position(text: str) -> Position:
    sequence, subsequence = text.split(".")
    return Position(int(sequence), int(subsequence))


# --- lines ------------------------------------------------------------------------------------


def _prefix(shard_id: str, sequence_number: str, subsequence: int, arrival_ms: int) -> bytes:
    return (
        f'{{"shard":{json.dumps(shard_id)},"sequence_number":"{sequence_number}",'
        f'"subsequence":{subsequence},"arrival_ms":{arrival_ms},'
    ).encode()


def event_line(shard_id: str, sequence_number: str, subsequence: int, arrival_ms: int, raw: bytes) -> bytes:
    event = raw.replace(b"\r", b" ").replace(b"\n", b" ")  # whitespace between tokens only
    return _prefix(shard_id, sequence_number, subsequence, arrival_ms) + b'"event":' + event + b"}"


def misplaced_line(
    shard_id: str, sequence_number: str, subsequence: int, arrival_ms: int, event_id: str | None
) -> bytes:
    marker = json.dumps(event_id).encode()
    return (
        _prefix(shard_id, sequence_number, subsequence, arrival_ms) + b'"misplaced_event_id":' + marker + b"}"
    )


def encode_object(lines: Iterable[bytes]) -> bytes:
    """The object's bytes: deterministic for the same lines (gzip header time 0)."""
    return gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=_LEVEL, mtime=0)


def parse_line(line: bytes) -> ArchivedLine:
    matched = _EVENT.match(line)
    if matched is not None and line.endswith(b"}"):
        shard, sequence, subsequence, arrival = matched.groups()
        return ArchivedLine(
            shard.decode(), sequence.decode(), int(subsequence), int(arrival), line[matched.end() : -1]
        )
    marker = _MISPLACED.match(line)
    if marker is not None:
        shard, sequence, subsequence, arrival, event_id = marker.groups()
        return ArchivedLine(
            shard.decode(), sequence.decode(), int(subsequence), int(arrival), None, json.loads(event_id)
        )
    raise ArchiveFormatError(f"not an archive line: {line[:80]!r}")


def read_object(data: bytes) -> Iterator[ArchivedLine]:
    for line in gzip.decompress(data).splitlines():
        if line:
            yield parse_line(line)
