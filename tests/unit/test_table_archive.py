"""The archiver on the orders table's stream, pure: a batch of stream records -> one archive
object in the Kinesis records' format, read back by the batch layer's own reader to the same
verdicts the aggregator's decode gives (the one decode step, `read_change`)."""

from __future__ import annotations

import json

import pytest

from consumers.archive.archive import table_archive_object
from consumers.archive.handler import ShardUnknown, table_shard_of
from consumers.batch.archive_reader import read_back
from salesstream.core.order_items import order_item
from salesstream.core.table_records import ChangeKind, decode_table_records, read_change
from tests.unit.test_contract import valid_event
from tests.unit.test_table_records import EXPIRES, stream_record

SHARD = "shardId-00000001764720000000-0a1b2c3d"


def item(**overrides: object) -> dict[str, object]:
    return order_item(valid_event(**overrides), expires_at=EXPIRES)


def test_each_kind_of_record_is_read_once_for_both_consumers() -> None:
    counted, changed = item(event_id="e-1"), item(event_id="e-1", store_id="store-9")
    assert [
        read_change(record).kind
        for record in (
            stream_record("INSERT", 1, counted),
            stream_record("MODIFY", 2, counted, counted),
            stream_record("MODIFY", 3, changed, counted),
            stream_record("REMOVE", 4, old=counted),
            stream_record("REMOVE", 5, old=counted, by_ttl=True),
            stream_record("INSERT", 6, {**counted, "lines": {"NS": ["1"]}}),
        )
    ] == [
        ChangeKind.INSERTED,
        ChangeKind.UNCHANGED,
        ChangeKind.CONFLICT,
        ChangeKind.REMOVED,
        ChangeKind.EXPIRED,
        ChangeKind.UNREADABLE,
    ]


def test_new_items_are_archived_as_their_events_and_judged_as_the_aggregator_judged_them() -> None:
    good, wrong_total = item(event_id="e-1"), item(event_id="e-2", total_minor=1)
    records = [
        stream_record("INSERT", 1, good),
        stream_record("INSERT", 2, wrong_total),
        stream_record("MODIFY", 3, item(event_id="e-1", store_id="store-9"), good),  # a conflict
        stream_record("REMOVE", 4, old=good),
        stream_record("INSERT", 5, {**item(event_id="e-3"), "total_minor": {"N": "2899.5"}}),
    ]
    made = table_archive_object(SHARD, records)
    assert made is not None
    archived, body = made
    assert archived.records == 3  # the three INSERTs: a change or a removal is no event
    assert archived.key.endswith(f"{SHARD}-{1001:060d}-{1005:060d}.jsonl.gz")

    read = read_back(body, archived.key)
    aggregator = decode_table_records(records).batch
    assert read.shard_id == SHARD
    assert [sighting[0] for sighting in read.sightings] == [
        event["event_id"] for event, *_ in aggregator.accepted
    ]
    assert read.sightings[0][1] == 1_764_720_001_000  # the creation time: the aggregator's window
    assert sorted(reason for _, reason in read.refused) == ["total_mismatch", "wrong_type"]
    assert sorted(r.reason.value for r in aggregator.refused) == [
        "duplicate_conflict",
        "total_mismatch",
        "wrong_type",
    ]


def test_a_replayed_batch_makes_the_same_object_and_a_batch_without_new_items_none() -> None:
    records = [stream_record("INSERT", n, item(event_id=f"e-{n}")) for n in range(1, 4)]
    assert table_archive_object(SHARD, records) == table_archive_object(SHARD, list(records))
    assert table_archive_object(SHARD, [stream_record("REMOVE", 9, old=item())]) is None


def test_a_card_number_in_an_item_is_masked_in_the_archive_and_refused_when_read() -> None:
    carded = item(event_id="e-1", order_id="ord 4111 1111 1111 1111")
    made = table_archive_object(SHARD, [stream_record("INSERT", 1, carded)])
    assert made is not None
    archived, body = made
    assert archived.masked == 1
    assert b"4111" not in json.dumps(read_back(body).refused).encode()
    assert read_back(body).refused[0][1] == "card_number"


def test_only_a_windowed_event_names_its_shard() -> None:
    assert table_shard_of({"shardId": SHARD, "Records": []}) == SHARD
    with pytest.raises(ShardUnknown, match="TumblingWindowInSeconds"):
        table_shard_of({"Records": []})
