"""Compressed aggregates: the producer's gzip envelope and the shared decode path that opens it.

Round trip through the real encoder and `decode_records`; a corrupt, truncated or padded envelope
and a decompression bomb refused whole with their reason codes and the bytes as received; plain
events and plain KPL aggregates read exactly as before; the sizing policy that lets an aggregate
grow with the compression ratio without ever leaving the record limit."""

from __future__ import annotations

import gzip
import os
import zlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.aggregation import MAX_RECORD_BYTES, PAYLOAD_UNIT_BYTES, Compression, Entry
from producer.encoder import Encoder, accept
from producer.settings import ProducerSettings
from producer.shards import ShardMap
from producer.simulator import Fleet, FleetConfig
from salesstream.core.contract import OrderEvent
from salesstream.core.kpl import (
    GZIP_MAGIC,
    MAX_INFLATED_BYTES,
    BrokenAggregate,
    aggregate,
    compress,
    deaggregate,
    is_compressed,
    payloads,
    unwrap,
)
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.reasons import Reason
from salesstream.core.records import WHOLE_RECORD, DecodedBatch, decode_records
from tests.window_events import Shard, kpl, order

CARD = b"4111 1111 1111 1111"
BASKETS = Fleet(FleetConfig(stores=40, seed=11)).events(3_000)


def decode(*datas: bytes) -> DecodedBatch:
    shard = Shard()
    event = KinesisTimeWindowEvent.model_validate(shard.event([shard.put(data) for data in datas]))
    return decode_records(event.Records)


def encoded(events: list[bytes], compression: Compression | None, shards: int = 2) -> list[Entry]:
    encoder = Encoder(compression=compression)
    encoder.route(ShardMap.uniform(shards))
    entries = [entry for raw in events if (entry := encoder.add(accept(raw))) is not None]
    return entries + encoder.drain()


def envelope(*events: bytes | OrderEvent, level: int = 6) -> bytes:
    return compress(kpl(*events), level)


# --- the format ----------------------------------------------------------------------------


def test_the_envelope_is_one_gzip_member_holding_the_aggregate() -> None:
    aggregated = kpl(order("store-1", 100), order("store-2", 250))
    data = compress(aggregated, 1)
    assert data[:3] == GZIP_MAGIC
    assert data[3:8] == b"\x00\x00\x00\x00\x00"  # no flags, mtime 0: the same aggregate, the same bytes
    assert gzip.decompress(data) == aggregated  # any gzip reader opens it
    assert unwrap(data) == aggregated
    assert compress(aggregated, 1) == data


def test_only_a_kpl_aggregate_is_put_in_an_envelope() -> None:
    with pytest.raises(ValueError, match="KPL aggregate"):
        compress(order().to_json_bytes(), 1)


def test_plain_records_are_read_exactly_as_before() -> None:
    plain, aggregated = order("store-1", 100).to_json_bytes(), kpl(order("store-2", 200))
    assert unwrap(plain) is plain
    assert unwrap(aggregated) is aggregated
    assert not is_compressed(plain)
    assert not is_compressed(aggregated)
    batch = decode(plain, aggregated, b"till 7 says: (")
    assert [(record, sub) for _, _, record, sub in batch.accepted] == [(0, 0), (1, 0)]
    assert [(r.record, r.subsequence, r.reason) for r in batch.refused] == [(2, 0, Reason.NOT_JSON)]


def test_a_compressed_aggregate_decodes_like_the_plain_one() -> None:
    events = [order(f"store-{n % 3}", 100 + n) for n in range(20)]
    plain, packed = decode(kpl(*events)), decode(envelope(*events))
    assert packed.accepted == plain.accepted
    assert packed.records[0].user_records == 20
    assert packed.refused == []
    assert [r.data for r in deaggregate(envelope(*events), "k")] == [e.to_json_bytes() for e in events]


def test_the_card_scan_reads_the_inflated_aggregate() -> None:
    good = order("store-1", 100)
    with_card = good.to_json_bytes().replace(b'"till-1"', b'"till-1","note":"' + CARD + b'"')
    data = envelope(good, with_card)
    assert CARD not in data  # compressed, the number is not there to be seen
    batch = decode(data)
    assert [e["event_id"] for e, *_ in batch.accepted] == [good.event_id]
    assert [(r.subsequence, r.reason) for r in batch.refused] == [(1, Reason.CARD_NUMBER)]


# --- refused whole -------------------------------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


ONE = envelope(*(order(f"store-{n}", 100 + n) for n in range(30)))
CORRUPTIONS = {
    "truncated in the deflate data": ONE[: len(ONE) // 2],
    "truncated in the trailer": ONE[:-3],
    "header only": ONE[:10],
    "the magic alone": GZIP_MAGIC,
    "a flipped CRC-32 bit": _flip(ONE, len(ONE) - 8),
    "a flipped length bit": _flip(ONE, len(ONE) - 1),
    "a flipped deflate bit": _flip(ONE, 12),
    "bytes after the member": ONE + b"\x00\x00",
    "a second member": ONE + ONE,
    "a bad header flag": ONE[:3] + b"\xe0" + ONE[4:],
    "an event, not an aggregate": gzip.compress(order().to_json_bytes(), mtime=0),
    "an envelope in an envelope": gzip.compress(ONE, mtime=0),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_envelope_is_refused_whole_with_the_bytes_as_received(corruption: str) -> None:
    data = CORRUPTIONS[corruption]
    good = order("store-9", 900)
    batch = decode(data, good.to_json_bytes())
    assert [e["event_id"] for e, *_ in batch.accepted] == [good.event_id]  # the batch goes on
    [refusal] = batch.refused
    assert (refusal.record, refusal.subsequence, refusal.reason) == (0, WHOLE_RECORD, Reason.CORRUPT_ENVELOPE)
    assert refusal.raw == data
    assert batch.records[0].user_records == 0


def test_a_broken_aggregate_inside_a_sound_envelope_keeps_its_own_reason() -> None:
    aggregated = bytearray(kpl(order(), order()))
    aggregated[-1] ^= 0x01  # the MD5 trailer
    with pytest.raises(BrokenAggregate) as refused:
        payloads(compress(bytes(aggregated), 1))
    assert refused.value.reason is Reason.BAD_AGGREGATE_CHECKSUM


def test_inflation_stops_at_the_bound() -> None:
    aggregated = aggregate([("k", b" " * 5_000)])
    data = compress(aggregated, 9)
    assert unwrap(data, limit=len(aggregated)) == aggregated
    with pytest.raises(BrokenAggregate) as refused:
        unwrap(data, limit=len(aggregated) - 1)
    assert refused.value.reason is Reason.ENVELOPE_OVERSIZE


def test_a_decompression_bomb_is_refused_whole() -> None:
    bomb = compress(aggregate([("k", b"{" + b" " * (64 * MAX_INFLATED_BYTES))]), 9)  # 64 MiB inflated
    assert len(bomb) < MAX_INFLATED_BYTES // 8
    batch = decode(bomb)
    assert [(r.subsequence, r.reason, r.raw) for r in batch.refused] == [
        (WHOLE_RECORD, Reason.ENVELOPE_OVERSIZE, bomb)
    ]
    assert batch.accepted == []


# --- round trips ---------------------------------------------------------------------------


def test_the_simulators_baskets_round_trip_through_the_encoder_and_the_decode_path() -> None:
    entries = encoded(BASKETS, Compression())
    assert all(is_compressed(entry.data) for entry in entries)
    batch = decode(*(entry.data for entry in entries))
    assert batch.refused == []
    assert Counter(raw for _, raw, _, _ in batch.accepted) == Counter(BASKETS)  # each once
    for index, entry in enumerate(entries):  # and in each record, in the order added
        in_record = [raw for _, raw, record, _ in batch.accepted if record == index]
        assert in_record == [e.raw for e in entry.events]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["store-1", "s-2", "x" * 128]), st.binary(min_size=0, max_size=2_000)),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 9),
)
def test_any_aggregate_round_trips_through_the_envelope(records: list[tuple[str, bytes]], level: int) -> None:
    aggregated = aggregate(records)
    data = compress(aggregated, level)
    assert unwrap(data) == aggregated
    assert [(r.partition_key, r.data) for r in deaggregate(data, "unused")] == records


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 400),
    st.integers(1, 4),
    st.integers(1, 9),
    st.integers(1, 3),
)
def test_any_list_of_events_round_trips_compressed(
    seed: int, count: int, shards: int, level: int, units: int
) -> None:
    events = Fleet(FleetConfig(stores=25, seed=seed)).events(count)
    entries = encoded(events, Compression(level, units), shards)
    assert sum(len(entry.events) for entry in entries) == count
    batch = decode(*(entry.data for entry in entries))
    assert batch.refused == []
    assert Counter(raw for _, raw, _, _ in batch.accepted) == Counter(events)


# --- sizing --------------------------------------------------------------------------------


def test_aggregates_grow_with_the_ratio_and_fill_their_payload_unit() -> None:
    compression = Compression()
    entries = encoded(BASKETS * 4, compression, shards=1)
    full = entries[:-1]  # the last one is what the drain left
    assert compression.ratio > 5
    assert all(entry.payload_units == 1 for entry in full[1:])  # the first one was cut by the guess
    events_per_unit = sum(len(e.events) for e in full) / sum(e.payload_units for e in full)
    assert events_per_unit >= 95
    assert min(entry.size for entry in full[2:]) > 0.7 * PAYLOAD_UNIT_BYTES  # filled, not only under


def test_the_limit_starts_at_one_unit_and_never_passes_the_record_limit() -> None:
    compression = Compression(units=40)
    assert Compression().limit() == PAYLOAD_UNIT_BYTES  # before any aggregate: no guess
    compression.seal(aggregate([("k", b" " * 500_000)]))  # a ratio of ~1000
    assert compression.ratio > 100
    assert compression.limit() == MAX_RECORD_BYTES
    entries = encoded([raw for raw in BASKETS for _ in range(4)], compression, shards=1)
    assert all(entry.size <= MAX_RECORD_BYTES for entry in entries)


def test_an_envelope_that_does_not_pay_is_not_used() -> None:
    incompressible = aggregate([("k", os.urandom(4_000))])
    assert Compression().seal(incompressible) == incompressible


def test_settings_turn_compression_on_by_default_and_off_with_aggregation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = ProducerSettings().compression
    assert default is not None
    assert (default.level, default.units) == (1, 1)
    assert ProducerSettings(aggregate=False).compression is None
    monkeypatch.setenv("SALESSTREAM_PRODUCER_COMPRESS", "false")
    assert ProducerSettings().compression is None
    assert ProducerSettings(compress=True).compression is not None  # explicit wins
    with pytest.raises(ValueError, match="level"):
        Compression(level=0)
    assert Encoder(aggregate=False, compression=Compression()).compression is None


def test_the_encoder_keeps_user_records_whole_across_an_envelope() -> None:
    """zlib's own check, independent of ours: the bytes inflate to an aggregate of the events."""
    [entry] = encoded(BASKETS[:50], Compression(), shards=1)
    inflated = zlib.decompress(entry.data, wbits=31)
    assert [r.data for r in deaggregate(inflated, "k")] == [e.raw for e in entry.events]
