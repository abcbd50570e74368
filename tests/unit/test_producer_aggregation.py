"""Per-shard KPL aggregation: exact format, every user record on its own shard, one payload unit each."""

from __future__ import annotations

import base64
import gzip
from itertools import pairwise

import pytest
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given, settings
from hypothesis import strategies as st

from load_tests.bench_producer import sized_events
from producer.aggregation import PAYLOAD_UNIT_BYTES, Accepted, AggregateBuilder, Entry, envelope
from producer.encoder import Encoder, accept
from producer.shards import HASH_KEY_MAX, Shard, ShardMap, hash_key
from salesstream.core.contract import MAX_EVENT_BYTES
from salesstream.core.kpl import GZIP_MAGIC, aggregate, compress, deaggregate, unwrap
from tests.unit.test_producer_shards import even_shards


def event(store_id: str, raw: bytes, number: int = 0) -> Accepted:
    return Accepted(raw, f"e.{number}", store_id, "EUR", False, 100)


def all_entries(encoder: Encoder, events: list[Accepted]) -> list[Entry]:
    entries = [entry for e in events if (entry := encoder.add(e)) is not None]
    return entries + encoder.drain()


# A shard map with random split points, and events from a pool of stores.
split_points = st.lists(st.integers(1, HASH_KEY_MAX), max_size=6, unique=True).map(sorted)
user_events = st.lists(
    st.tuples(st.integers(0, 40), st.binary(min_size=1, max_size=3000)), min_size=1, max_size=200
)


def map_from(points: list[int]) -> ShardMap:
    bounds = [0, *points, HASH_KEY_MAX + 1]
    return ShardMap(Shard(f"shard-{i}", low, high - 1) for i, (low, high) in enumerate(pairwise(bounds)))


@settings(max_examples=150, deadline=None)
@given(split_points, user_events, st.sampled_from([2_000, 8_000, PAYLOAD_UNIT_BYTES]))
def test_aggregates_deaggregate_to_the_input_in_order_per_shard(
    points: list[int], raw_events: list[tuple[int, bytes]], limit: int
) -> None:
    shard_map = map_from(points)
    encoder = Encoder(unit_bytes=limit)
    encoder.route(shard_map)
    events = [event(f"store-{store}", data, n) for n, (store, data) in enumerate(raw_events)]

    entries = all_entries(encoder, events)

    received: dict[str, list[tuple[str, bytes]]] = {}
    for entry in entries:
        assert entry.size <= limit or len(entry.events) == 1  # only a lone oversize record may exceed it
        shard = shard_map.shards[entry.shard_id or ""]
        assert shard.holds(int(entry.explicit_hash_key or "-1"))
        records = deaggregate(entry.data, entry.partition_key)
        assert [(r.partition_key, r.data) for r in records] == [(e.store_id, e.raw) for e in entry.events]
        for record in records:
            assert shard.holds(hash_key(record.partition_key)), "a user record off its shard"
        received.setdefault(shard.shard_id, []).extend((r.partition_key, r.data) for r in records)
    expected: dict[str, list[tuple[str, bytes]]] = {}
    for e in events:
        expected.setdefault(shard_map.shard_for(e.store_id).shard_id, []).append((e.store_id, e.raw))
    assert received == expected


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 20_000)), min_size=1, max_size=60))
def test_the_tracked_size_is_the_serialised_size(records: list[tuple[int, int]]) -> None:
    builder = AggregateBuilder(Shard("s", 0, HASH_KEY_MAX), limit=1024 * 1024)
    for number, (store, length) in enumerate(records):
        assert builder.add(event(f"store-{store}", b"x" * length, number)) is None
    tracked = builder.size
    entry = builder.take()
    assert entry is not None
    assert tracked == entry.size


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 20_000)), min_size=1, max_size=60))
def test_the_aggregate_is_byte_for_byte_what_protobuf_serialises(records: list[tuple[int, int]]) -> None:
    builder = AggregateBuilder(Shard("s", 0, HASH_KEY_MAX), limit=1024 * 1024)
    pairs = [
        (f"store-{store}", bytes([number % 256]) * length) for number, (store, length) in enumerate(records)
    ]
    for number, (store_id, data) in enumerate(pairs):
        assert builder.add(event(store_id, data, number)) is None
    entry = builder.take()
    assert entry is not None
    assert entry.data == aggregate(pairs)  # the reference encoder: aws-kinesis-agg's protobuf schema
    assert entry.partition_key == pairs[0][0]


def test_the_fast_envelope_is_a_deterministic_gzip_member_the_consumers_open() -> None:
    aggregated = aggregate([(f"store-{n % 7}", raw) for n, raw in enumerate(sized_events(250, 400))])
    data = envelope(aggregated, 1)  # ISA-L's deflate
    assert data[:8] == GZIP_MAGIC + b"\x00\x00\x00\x00\x00"  # no flags, mtime 0
    assert envelope(aggregated, 1) == data
    assert gzip.decompress(data) == aggregated == unwrap(data)
    assert len(data) < 1.05 * len(compress(aggregated, 1))  # as small as zlib's level 1, give or take
    assert unwrap(envelope(aggregated, 6)) == aggregated  # the other levels: zlib
    with pytest.raises(ValueError, match="KPL aggregate"):
        envelope(sized_events(250, 1)[0], 1)


def test_a_payload_unit_is_filled() -> None:
    builder = AggregateBuilder(Shard("s", 0, HASH_KEY_MAX))
    entries = []
    for n in range(2_000):
        if (entry := builder.add(event(f"store-{n % 37}", b"x" * (100 + n % 300), n))) is not None:
            entries.append(entry)
    assert len(entries) > 5
    for entry in entries:
        assert entry.size <= PAYLOAD_UNIT_BYTES
        assert entry.payload_units == 1
        assert entry.size > PAYLOAD_UNIT_BYTES - 420  # the next record (<= 400 B + framing) did not fit


def test_at_least_95_events_of_250_bytes_per_payload_unit() -> None:
    encoder = Encoder()
    encoder.route(ShardMap(even_shards(1)))
    sized = sized_events(250, 5_000)
    assert {len(raw) for raw in sized} == {250}
    events = [accept(raw) for raw in sized]
    entries = all_entries(encoder, events)
    full = entries[:-1]  # the last one is what the flush found
    assert all(entry.payload_units == 1 for entry in entries)
    assert min(len(entry.events) for entry in full) >= 95


def test_the_largest_event_fits_one_aggregate() -> None:
    builder = AggregateBuilder(Shard("s", 0, HASH_KEY_MAX))
    assert builder.add(event("k" * 128, b"x" * MAX_EVENT_BYTES)) is None
    entry = builder.take()
    assert entry is not None
    assert entry.size <= PAYLOAD_UNIT_BYTES


def test_the_reference_library_reads_our_aggregates() -> None:
    encoder = Encoder()
    encoder.route(ShardMap(even_shards(1)))
    events = [event(f"store-{n % 3}", f'{{"n":{n}}}'.encode(), n) for n in range(10)]
    (entry,) = all_entries(encoder, events)
    lambda_record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": entry.partition_key,
            "sequenceNumber": "1",
            "approximateArrivalTimestamp": 1.0,
            "data": base64.b64encode(entry.data).decode(),
        }
    }
    decoded = deaggregate_records([lambda_record])
    assert [base64.b64decode(r["kinesis"]["data"]) for r in decoded] == [e.raw for e in events]
    assert [r["kinesis"]["partitionKey"] for r in decoded] == [e.store_id for e in events]


def test_without_aggregation_each_event_is_a_record_keyed_by_its_store() -> None:
    encoder = Encoder(aggregate=False)
    events = [event(f"store-{n}", b"{}", n) for n in range(3)]
    entries = all_entries(encoder, events)
    assert [(e.partition_key, e.data, e.explicit_hash_key) for e in entries] == [
        (f"store-{n}", b"{}", None) for n in range(3)
    ]


def test_a_new_shard_map_routes_buffered_events_again() -> None:
    encoder = Encoder()
    events = [event(f"store-{n}", b"{}", n) for n in range(50)]
    for e in events:
        assert encoder.add(e) is None  # no map yet: held
    assert encoder.buffered == 50
    assert encoder.route(ShardMap(even_shards(1))) == []
    assert encoder.buffered == 50
    encoder.route(ShardMap(even_shards(4)))
    entries = encoder.drain()
    assert sorted(e.event_id for entry in entries for e in entry.events) == sorted(e.event_id for e in events)
    for entry in entries:
        assert all(ShardMap(even_shards(4)).belongs(e.store_id, entry.shard_id or "") for e in entry.events)
