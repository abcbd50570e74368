"""The event archive's format: keys partitioned by arrival hour, deterministic objects, lines
that hold the event exactly as received, misplaced markers; and the archiver's lines for a batch
(accepted events archived, refused and misplaced ones not)."""

from __future__ import annotations

import gzip
import json

import pytest

from consumers.archiver.handler import archive_lines
from consumers.records import decode_records
from salesstream.core.archive import (
    ArchivedLine,
    ArchiveFormatError,
    ArchiveKey,
    archive_key,
    encode_object,
    event_line,
    misplaced_line,
    parse_line,
    read_object,
)
from salesstream.core.kpl import aggregate
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.positions import Position
from salesstream.core.sharding import HASH_KEY_MAX, hash_key
from salesstream.core.sharding import Shard as KinesisShard
from tests.window_events import T0_MS, Shard, order

SHARD = "shardId-000000000007"


def test_keys_are_partitioned_by_arrival_hour_and_name_the_batch() -> None:
    first, last = (
        Position.of("49590338271490256608559692538361571095921575989136588898", 0),
        Position.of("9", 3),
    )
    key = archive_key(SHARD, T0_MS + 3_599_999, first, last)
    assert key.startswith("archive/2026/11/23/10/shardId-000000000007-")
    assert key.endswith(".jsonl.gz")
    parsed = ArchiveKey.parse(key)
    assert (parsed.shard_id, parsed.first, parsed.last) == (SHARD, first, last)
    assert parsed.hour_start_ms == T0_MS
    assert parsed.hour_end_ms == T0_MS + 3_600_000
    assert archive_key(SHARD, T0_MS + 3_600_000, first, last).startswith("archive/2026/11/23/11/")
    with pytest.raises(ArchiveFormatError):
        ArchiveKey.parse("archive/2026/11/23/nonsense.jsonl.gz")


def test_a_line_holds_the_event_exactly_as_received_and_is_json() -> None:
    raw = order("store-1", 1250).to_json_bytes()
    line = event_line(SHARD, "12345678901234567890123456789012345678901234567890123456", 4, T0_MS + 7, raw)
    assert line.endswith(raw + b"}")
    document = json.loads(line)
    assert document["sequence_number"] == "12345678901234567890123456789012345678901234567890123456"
    assert (document["shard"], document["subsequence"], document["arrival_ms"]) == (SHARD, 4, T0_MS + 7)
    assert document["event"] == json.loads(raw)
    parsed = parse_line(line)
    assert parsed.raw == raw
    assert parsed.position == Position.of("12345678901234567890123456789012345678901234567890123456", 4)


def test_line_breaks_between_tokens_become_spaces_and_nothing_else_changes() -> None:
    raw = json.dumps(json.loads(order("store-1", 100).to_json_bytes()), indent=2).encode()
    assert b"\n" in raw
    parsed = parse_line(event_line(SHARD, "1", 0, T0_MS, raw))
    assert parsed.raw == raw.replace(b"\n", b" ")
    assert json.loads(parsed.raw or b"") == json.loads(raw)


def test_misplaced_markers_keep_only_the_event_id() -> None:
    assert parse_line(misplaced_line(SHARD, "5", 2, T0_MS, "evt-1")) == ArchivedLine(
        SHARD, "5", 2, T0_MS, None, "evt-1"
    )
    assert parse_line(misplaced_line(SHARD, "5", 3, T0_MS, None)).misplaced_event_id is None
    with pytest.raises(ArchiveFormatError):
        parse_line(b'{"shard":"x"}')


def test_an_object_is_gzip_json_lines_and_the_same_lines_give_the_same_bytes() -> None:
    lines = [
        event_line(SHARD, str(n), 0, T0_MS + n, order("store-1", 100 + n).to_json_bytes()) for n in range(3)
    ]
    body = encode_object(lines)
    assert body == encode_object(list(lines))  # a replayed invocation writes the same bytes
    assert gzip.decompress(body).count(b"\n") == 3
    assert [line.sequence_number for line in read_object(body)] == ["0", "1", "2"]
    assert list(read_object(encode_object([]))) == []


def test_the_archiver_archives_accepted_events_and_marks_misplaced_ones_in_stream_order() -> None:
    stores = [f"store-{i}" for i in range(12)]
    middle = (HASH_KEY_MAX + 1) // 2
    low = KinesisShard(SHARD, 0, middle - 1)
    orders = [order(store, 100 + i) for i, store in enumerate(stores)]
    shard = Shard(shard_id=SHARD)
    aggregated = shard.put(aggregate([(o.store_id, o.to_json_bytes()) for o in orders]))
    refused = shard.put(b"not json")
    plain = shard.put(order("store-0", 777).to_json_bytes())
    event = KinesisTimeWindowEvent.model_validate(shard.event([aggregated, refused, plain]))
    batch = decode_records(event.Records, low)

    lines = [parse_line(line) for line in archive_lines(SHARD, event.Records, batch)]

    owned = [i for i, s in enumerate(stores) if hash_key(s) < middle]
    elsewhere = [i for i, s in enumerate(stores) if hash_key(s) >= middle]
    assert owned
    assert elsewhere
    first_record = [line for line in lines if line.sequence_number == str(aggregated.sequence)]
    assert [line.subsequence for line in first_record] == list(range(len(stores)))  # stream order
    assert [line.raw for line in first_record if line.raw is not None] == [
        orders[i].to_json_bytes() for i in owned
    ]
    assert [line.misplaced_event_id for line in first_record if line.raw is None] == [
        orders[i].event_id for i in elsewhere
    ]
    assert all(line.sequence_number != str(refused.sequence) for line in lines)  # refused: not archived
    assert lines[-1].raw == plain.data
    assert {line.arrival_ms for line in first_record} == {aggregated.arrival_ms}
