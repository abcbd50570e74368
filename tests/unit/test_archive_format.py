"""The event archive's format: keys partitioned by arrival hour, deterministic objects holding the
Kinesis records as received; the archiver's object for a batch (a replay writes the same key
and bytes); the batch layer's read-back, decoded by the aggregator's own pipeline; card numbers
masked before they are stored, and found by the data-protection scan when they are not."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from consumers.archive.archive import archive_object
from consumers.batch.archive_reader import read_back
from load_tests.faults.security import card_numbers_in
from salesstream.core.aggregation import effect_of
from salesstream.core.archive import (
    ArchivedRecord,
    ArchiveFormatError,
    ArchiveKey,
    archive_key,
    encode_object,
    read_object,
    screen,
    stored_payloads,
)
from salesstream.core.kpl import aggregate, compress
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.reasons import Reason
from salesstream.core.records import decode_records
from salesstream.core.sharding import HASH_KEY_MAX, hash_key
from salesstream.core.sharding import Shard as KinesisShard
from tests.window_events import T0_MS, Shard, order

SHARD = "shardId-000000000007"
WHOLE = KinesisShard(SHARD, 0, HASH_KEY_MAX)
CARD = b"4111111111111111"
LONG_SEQUENCE = "49590338271490256608559692538361571095921575989136588898"


def test_keys_are_partitioned_by_arrival_hour_and_name_the_batch() -> None:
    key = archive_key(SHARD, T0_MS + 3_599_999, LONG_SEQUENCE, "9")
    assert key.startswith("archive/2026/11/23/10/shardId-000000000007-")
    assert key.endswith(".jsonl.gz")
    parsed = ArchiveKey.parse(key)
    assert (parsed.shard_id, parsed.first_sequence, parsed.last_sequence) == (SHARD, LONG_SEQUENCE, "9")
    assert parsed.hour_start_ms == T0_MS
    assert parsed.hour_end_ms == T0_MS + 3_600_000
    assert archive_key(SHARD, T0_MS + 3_600_000, "1", "2").startswith("archive/2026/11/23/11/")
    with pytest.raises(ArchiveFormatError):
        ArchiveKey.parse("archive/2026/11/23/nonsense.jsonl.gz")


def test_an_object_is_a_header_and_the_records_exactly_as_received() -> None:
    records = [
        ArchivedRecord(LONG_SEQUENCE, 1795428001.234, 'store "7" é', "eyJhIjoxfQ=="),
        ArchivedRecord("12", 1795428001.2359998, "store-1", 'not "base64"\n at all {', masked=(0,)),
    ]
    body = encode_object(WHOLE, records)
    lines = gzip.decompress(body).splitlines()
    assert json.loads(lines[0]) == {
        "format": "kinesis-records/1",
        "shard": SHARD,
        "hash_range": ["0", str(HASH_KEY_MAX)],  # 128-bit: text, not a JSON number
    }
    assert json.loads(lines[1])["data"] == "eyJhIjoxfQ=="
    archived = read_object(body)
    assert archived.shard == WHOLE
    assert archived.records == records  # the float arrival round-trips exactly
    assert body == encode_object(WHOLE, list(records))  # deterministic: gzip header time 0


def test_anything_this_format_did_not_write_is_refused_with_the_key() -> None:
    old_format = gzip.compress(
        b'{"shard":"x","sequence_number":"1","subsequence":0,"arrival_ms":1,"event":{}}\n'
    )
    with pytest.raises(ArchiveFormatError, match="archive/old"):
        read_object(old_format, "archive/old")
    missing_field = gzip.compress(gzip.decompress(encode_object(WHOLE, [])) + b'{"sequence_number":"1"}\n')
    with pytest.raises(ArchiveFormatError):
        read_object(missing_field)


def test_a_replayed_invocation_writes_the_same_key_and_bytes() -> None:
    shard = Shard(shard_id=SHARD)
    records = [
        shard.put(aggregate([("store-1", order("store-1", 100 + n).to_json_bytes())])) for n in range(3)
    ]
    event = KinesisTimeWindowEvent.model_validate(shard.event(records))
    first, body = archive_object(WHOLE, event.Records)
    again, replayed = archive_object(
        WHOLE, KinesisTimeWindowEvent.model_validate(shard.event(records)).Records
    )
    assert (again.key, replayed) == (first.key, body)
    assert first.key == archive_key(
        SHARD, records[0].arrival_ms, str(records[0].sequence), str(records[-1].sequence)
    )
    assert (first.records, first.masked) == (3, 0)
    # one line per Kinesis record, the event's base64 text itself
    assert [r.data for r in read_object(body).records] == [r.kinesis.data for r in event.Records]


def test_the_read_back_decodes_as_the_aggregator_does_every_record_counted_where_it_landed() -> None:
    stores = [f"store-{i}" for i in range(12)]
    middle = (HASH_KEY_MAX + 1) // 2
    low = KinesisShard(SHARD, 0, middle - 1)
    orders = [order(store, 100 + i) for i, store in enumerate(stores)]
    shard = Shard(shard_id=SHARD)
    # mixed keys in one aggregate, as aws-kinesis-agg's RecordAggregator writes them: about half
    # hash outside the shard's range, and all of them are counted here, where they landed
    aggregated = shard.put(aggregate([(o.store_id, o.to_json_bytes()) for o in orders]))
    refused = shard.put(b"not json")
    plain = shard.put(order("store-0", 777).to_json_bytes())
    event = KinesisTimeWindowEvent.model_validate(shard.event([aggregated, refused, plain]))
    _, body = archive_object(low, event.Records)

    read = read_back(body)

    aggregator = decode_records(event.Records)  # what the aggregator made of the same batch
    assert [(s[3], s[4], s[5]) for s in read.sightings] == [
        (aggregator.records[i].sequence_number, sub, effect_of(ev)) for ev, _, i, sub in aggregator.accepted
    ]
    assert any(hash_key(s) >= middle for s in stores)  # the case is real: some keys are not the shard's
    assert [s[0] for s in read.sightings] == [o.event_id for o in orders] + [
        json.loads(plain.data)["event_id"]
    ]
    assert read.refused == [(refused.arrival_ms, Reason.NOT_JSON.value)]
    assert {s[1] for s in read.sightings if s[3] == str(aggregated.sequence)} == {aggregated.arrival_ms}
    counts = read.counts(horizon_ms=plain.arrival_ms)  # the plain record is the next snapshot's
    assert (counts["refused"], counts["refused_not_json"], counts["user_records_after_horizon"]) == (1, 1, 1)
    assert counts["user_records"] == len(stores) + 2


def test_a_card_number_is_masked_in_a_plain_record_and_refused_when_read() -> None:
    carrier = json.dumps(
        {**json.loads(order("store-1", 100).to_json_bytes()), "note": "paid with 4111 1111 1111 1111"}
    )
    shard = Shard(shard_id=SHARD)
    records = [shard.put(carrier.encode()), shard.put(b"junk")]
    event = KinesisTimeWindowEvent.model_validate(shard.event(records))
    event.Records[1].kinesis.partitionKey = CARD.decode()  # a card number as the partition key
    archived, body = archive_object(WHOLE, event.Records)

    assert archived.masked == 2
    assert all(card_numbers_in(data, [CARD]) == [] for data in stored_payloads(body))
    assert [r.masked for r in read_object(body).records] == [(0,), ()]  # the junk itself held none
    assert read_object(body).records[1].partition_key == "#" * 16
    read = read_back(body)
    assert read.sightings == []
    assert sorted(reason for _, reason in read.refused) == [Reason.CARD_NUMBER.value, Reason.NOT_JSON.value]


def test_a_card_number_in_an_aggregate_masks_that_user_record_only() -> None:
    good = [order(f"store-{n}", 100 + n) for n in range(3)]
    carrier = json.dumps({**json.loads(good[1].to_json_bytes()), "event_id": "4111-1111-1111-1111"}).encode()
    users = [(o.store_id, o.to_json_bytes()) for o in good]
    users.insert(1, ("store-1", carrier))
    shard = Shard(shard_id=SHARD)
    record = shard.put(aggregate(users, explicit_hash_key="7"))
    event = KinesisTimeWindowEvent.model_validate(shard.event([record]))

    kinesis = event.Records[0].kinesis
    stored = screen(kinesis.sequenceNumber, kinesis.approximateArrivalTimestamp, "store-0", kinesis.data)
    assert stored.masked == (1,)
    assert stored.data != kinesis.data
    _, body = archive_object(WHOLE, event.Records)
    assert all(card_numbers_in(data, [CARD]) == [] for data in stored_payloads(body))

    read = read_back(body)
    aggregator = decode_records(event.Records)
    assert [s[4] for s in read.sightings] == [0, 2, 3]
    assert [s[5] for s in read.sightings] == [effect_of(ev) for ev, *_ in aggregator.accepted]
    assert [r.reason for r in aggregator.refused] == [Reason.CARD_NUMBER]
    assert read.refused == [(record.arrival_ms, Reason.CARD_NUMBER.value)]


def test_a_card_number_inside_a_compressed_aggregate_is_found_and_masked() -> None:
    good = [order(f"store-{n}", 100 + n) for n in range(3)]
    carrier = json.dumps({**json.loads(good[1].to_json_bytes()), "event_id": CARD.decode()}).encode()
    users = [(o.store_id, o.to_json_bytes()) for o in good] + [("store-1", carrier)]
    shard = Shard(shard_id=SHARD)
    record = shard.put(compress(aggregate(users, explicit_hash_key="7"), 6))
    event = KinesisTimeWindowEvent.model_validate(shard.event([record]))

    kinesis = event.Records[0].kinesis
    stored = screen(kinesis.sequenceNumber, kinesis.approximateArrivalTimestamp, "store-0", kinesis.data)
    assert stored.masked == (3,)
    _, body = archive_object(WHOLE, event.Records)
    assert all(card_numbers_in(data, [CARD]) == [] for data in stored_payloads(body))
    read = read_back(body)
    assert [s[4] for s in read.sightings] == [0, 1, 2]
    assert read.refused == [(record.arrival_ms, Reason.CARD_NUMBER.value)]
    assert [r.reason for r in decode_records(event.Records).refused] == [Reason.CARD_NUMBER]


def test_the_protection_scan_reads_inside_base64_and_aggregates() -> None:
    carrier = json.dumps({"note": f"paid with {CARD.decode()}"}).encode()
    data = aggregate([("store-1", b"{}"), ("store-1", carrier)])
    unscreened = ArchivedRecord("1", 1.0, "store-1", base64.b64encode(data).decode())  # not via `screen`
    body = encode_object(WHOLE, [unscreened])
    assert card_numbers_in(gzip.decompress(body), [CARD]) == []  # base64 hides it from a plain scan
    assert any(card_numbers_in(payload, [CARD]) == [CARD] for payload in stored_payloads(body))


def test_a_card_number_glued_to_an_aggregates_framing_is_masked_in_the_archive() -> None:
    # a 52-byte payload: the length byte "4" sits against the card's first digit in the aggregate
    good = order("store-1", 100)
    users = [("store-1", good.to_json_bytes()), ("store-1", b"4111111111111111" + b" " * 36)]
    shard = Shard(shard_id=SHARD)
    record = shard.put(aggregate(users, explicit_hash_key="7"))
    event = KinesisTimeWindowEvent.model_validate(shard.event([record]))
    kinesis = event.Records[0].kinesis
    stored = screen(kinesis.sequenceNumber, kinesis.approximateArrivalTimestamp, "store-1", kinesis.data)
    assert stored.masked == (1,)
    assert b"4111111111111111" not in base64.b64decode(stored.data)
    assert [r.reason for r in decode_records(event.Records).refused] == [Reason.CARD_NUMBER]


def test_an_aggregate_of_real_world_ids_is_archived_as_received() -> None:
    # EAN-13 SKUs that pass Luhn alert the conservative scan; no user record holds a card number
    event_json = json.loads(order("store-1", 100).to_json_bytes())
    event_json["lines"][0]["sku"] = "4006381333924"
    users = [("store-1", json.dumps(event_json).encode()), ("store-2", order("store-2", 5).to_json_bytes())]
    shard = Shard(shard_id=SHARD)
    record = shard.put(aggregate(users, explicit_hash_key="7"))
    event = KinesisTimeWindowEvent.model_validate(shard.event([record]))
    kinesis = event.Records[0].kinesis
    stored = screen(kinesis.sequenceNumber, kinesis.approximateArrivalTimestamp, "store-1", kinesis.data)
    assert (stored.data, stored.masked) == (kinesis.data, ())
