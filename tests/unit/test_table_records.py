"""The orders table's stream records -> order events: one decode step into the Kinesis decode's
shape, and the rules for INSERT, MODIFY and REMOVE."""

from __future__ import annotations

import json
from typing import Any

import pytest

from salesstream.core.lambda_events import DynamodbEventRecord
from salesstream.core.order_items import event_bytes, order_item, plain, typed
from salesstream.core.reasons import Reason
from salesstream.core.table_records import decode_table_records
from tests.unit.test_contract import valid_event

EXPIRES = 1_800_000_000


def stream_record(
    name: str,
    sequence: int,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    *,
    by_ttl: bool = False,
) -> DynamodbEventRecord:
    image = new or old or {}
    return DynamodbEventRecord.model_validate(
        {
            "eventID": f"id-{sequence}",
            "eventName": name,
            "awsRegion": "eu-west-1",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2026-12-03T00:00:00",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_764_720_000.0 + sequence,
                "Keys": {"event_id": image.get("event_id", {"S": "x"})},
                **({"NewImage": new} if new is not None else {}),
                **({"OldImage": old} if old is not None else {}),
                "SequenceNumber": str(1000 + sequence),
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            **(
                {"userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
                if by_ttl
                else {}
            ),
        }
    )


def test_typed_and_plain_are_inverse_for_an_order_event() -> None:
    event = valid_event()
    item = order_item(event, expires_at=EXPIRES)
    assert item["total_minor"] == {"N": "2899"}
    assert item["lines"]["L"][0] == {
        "M": {"sku": {"S": "SKU-1"}, "quantity": {"N": "2"}, "unit_price_minor": {"N": "1250"}}
    }
    assert item["expires_at"] == {"N": str(EXPIRES)}
    assert json.loads(event_bytes(item)) == event  # the TTL attribute is the table's, not the event's
    assert plain({"N": "2.5"}) == 2.5
    assert typed(None) == {"NULL": True}


def test_an_insert_becomes_the_same_event_the_contract_validates() -> None:
    item = order_item(valid_event(), expires_at=EXPIRES)
    decoded = decode_table_records([stream_record("INSERT", 1, item)])
    ((event, raw, index, subsequence),) = decoded.batch.accepted
    assert (event["event_id"], event["total_minor"], index, subsequence) == ("evt-0001", 2899, 0, 0)
    assert json.loads(raw) == valid_event()
    (info,) = decoded.batch.records
    assert (info.sequence_number, info.arrival_ms, info.partition_key) == (
        "1001",
        1_764_720_001_000,
        "evt-0001",
    )
    assert decoded.batch.refused == []


def test_an_insert_the_contract_refuses_is_quarantined_with_its_reason() -> None:
    bad_total = order_item(valid_event(total_minor=1), expires_at=EXPIRES)
    fraction = order_item(valid_event(), expires_at=EXPIRES)
    fraction["total_minor"] = {"N": "2899.5"}
    a_set = order_item(valid_event(event_id="evt-3"), expires_at=EXPIRES)
    a_set["store_id"] = {"SS": ["a", "b"]}
    decoded = decode_table_records(
        [
            stream_record("INSERT", 1, bad_total),
            stream_record("INSERT", 2, fraction),
            stream_record("INSERT", 3, a_set),
        ]
    )
    assert decoded.batch.accepted == []
    assert [(r.record, r.reason) for r in decoded.batch.refused] == [
        (0, Reason.TOTAL_MISMATCH),
        (1, Reason.WRONG_TYPE),
        (2, Reason.WRONG_TYPE),
    ]
    assert decoded.batch.refused[0].event_id == "evt-0001"


def test_a_modify_that_changes_the_event_is_a_conflict_and_one_that_does_not_is_counted() -> None:
    original = order_item(valid_event(), expires_at=EXPIRES)
    changed = order_item(
        valid_event(lines=[{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 1250}], total_minor=1250),
        expires_at=EXPIRES,
    )
    ttl_moved = order_item(valid_event(), expires_at=EXPIRES + 60)
    decoded = decode_table_records(
        [
            stream_record("MODIFY", 1, changed, original),
            stream_record("MODIFY", 2, ttl_moved, original),
            stream_record("MODIFY", 3, original, original),  # the same item put again
        ]
    )
    assert decoded.batch.accepted == []
    (conflict,) = decoded.batch.refused
    assert (conflict.record, conflict.reason, conflict.event_id) == (0, Reason.DUPLICATE_CONFLICT, "evt-0001")
    assert json.loads(conflict.raw)["total_minor"] == 1250  # the new image is what is quarantined
    assert decoded.unchanged == 2
    assert len(decoded.batch.records) == 3  # every record keeps its position


def test_removals_are_ignored_and_counted_ttl_expiry_apart() -> None:
    item = order_item(valid_event(), expires_at=EXPIRES)
    decoded = decode_table_records(
        [stream_record("REMOVE", 1, old=item), stream_record("REMOVE", 2, old=item, by_ttl=True)]
    )
    assert (decoded.removed, decoded.expired) == (1, 1)
    assert decoded.batch.accepted == decoded.batch.refused == []
    assert [info.sequence_number for info in decoded.batch.records] == ["1001", "1002"]


def test_a_record_without_a_new_image_is_refused_with_a_reason() -> None:
    record = stream_record("INSERT", 1, order_item(valid_event(), expires_at=EXPIRES))
    record.dynamodb.NewImage = None
    (refusal,) = decode_table_records([record]).batch.refused
    assert refusal.reason is Reason.MISSING_FIELD
    assert "NEW_AND_OLD_IMAGES" in refusal.detail


@pytest.mark.parametrize("value", [{"X": 1}, {"S": "a", "N": "1"}, "bare"])
def test_a_value_that_is_not_a_typed_attribute_is_refused(value: Any) -> None:
    item = order_item(valid_event(), expires_at=EXPIRES)
    item["order_id"] = value
    (refusal,) = decode_table_records([stream_record("INSERT", 1, item)]).batch.refused
    assert refusal.reason is Reason.WRONG_TYPE
