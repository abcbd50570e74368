"""Quarantine items carry the raw bytes with every card number masked, keyed by position."""

from __future__ import annotations

import pytest

from consumers.common.quarantine import Quarantine, quarantine_sort_key, redacted
from salesstream.core.cards import contains_card_number, redact_card_numbers
from salesstream.core.kpl import aggregate
from salesstream.core.reasons import Reason
from salesstream.core.records import WHOLE_RECORD, RecordInfo, Refusal
from salesstream.core.windows import Window
from tests.window_events import T0_MS

RECORD = RecordInfo("49590338271490256608559692538361571095921575989136588898", T0_MS + 1_500, "store-1", 3)
WINDOW = Window(T0_MS, T0_MS + 60_000)


def refusal(
    raw: bytes, subsequence: int = 2, reason: Reason = Reason.CARD_NUMBER, event_id: str | None = None
) -> Refusal:
    return Refusal(0, subsequence, reason, "a Luhn-valid 13-19 digit number is present", raw, event_id)


def item(refused: Refusal) -> dict:
    # small raw bytes never touch S3, so no client is needed to build the item
    return Quarantine(dynamodb=None, s3=None, table="q", bucket="b")._item(
        "shardId-000000000003", WINDOW, RECORD, refused
    )


@pytest.mark.parametrize(
    "card",
    [b"4111111111111111", b"4111 1111 1111 1111", b"4111-1111-1111-1111", b"\\u00341111111111111111"],
)
def test_a_user_records_card_number_never_reaches_the_item(card: bytes) -> None:
    raw = b'{"event_id":"evt-1","note":"' + card + b'","store_id":"store-1"}'
    stored = item(refusal(raw))["raw"]["B"]
    assert not contains_card_number(stored)
    assert b"store-1" in stored  # the rest stays readable for the operator


def test_a_card_glued_to_protobuf_framing_in_a_broken_aggregate_is_masked() -> None:
    # a 53-byte user record: its length byte is "5", which glues onto the card's first digit
    data = bytearray(aggregate([("store-1", b"4111111111111111" + b"x" * 37)], explicit_hash_key="1"))
    data[-1] ^= 0xFF  # bad checksum: the whole record is quarantined
    assert b"54111111111111111" in data
    assert b"4111111111111111" in redact_card_numbers(bytes(data))  # Luhn of the glued run fails
    stored = redacted(refusal(bytes(data), WHOLE_RECORD, Reason.BAD_AGGREGATE_CHECKSUM))
    assert b"1111111111111" not in stored
    assert len(stored) == len(data)


def test_the_item_layout() -> None:
    raw = b'{"event_id":"evt-9","lines":[]}'
    stored = item(refusal(raw, reason=Reason.EMPTY_ORDER, event_id="evt-9"))
    assert stored["pk"] == {"S": "shardId-000000000003"}
    assert stored["sk"] == {"S": "0000" + RECORD.sequence_number + "#000002"}
    assert stored["sequence_number"] == {"S": RECORD.sequence_number}  # a string: 56 digits
    assert stored["subsequence"] == {"N": "2"}
    assert stored["reason"] == {"S": "empty_order"}
    assert stored["event_id"] == {"S": "evt-9"}
    assert stored["arrival"] == {"S": "2026-11-23T10:00:01.500Z"}
    assert (stored["window_start"], stored["window_end"]) == (
        {"S": "2026-11-23T10:00:00Z"},
        {"S": "2026-11-23T10:01:00Z"},
    )
    assert stored["raw"] == {"B": raw}
    assert stored["raw_bytes"] == {"N": str(len(raw))}


def test_a_whole_record_is_marked_as_such() -> None:
    stored = item(refusal(b"\xf3\x89\x9a\xc2broken", WHOLE_RECORD, Reason.BROKEN_AGGREGATE))
    assert stored["sk"]["S"].endswith("#record")
    assert stored["whole_record"] == {"BOOL": True}
    assert "subsequence" not in stored


def test_sort_keys_follow_the_stream() -> None:
    keys = [
        quarantine_sort_key("99", 0),
        quarantine_sort_key("99", 1),
        quarantine_sort_key("99", WHOLE_RECORD),
        quarantine_sort_key("100", 0),
    ]
    assert sorted(keys) == keys


def test_the_item_names_the_field_that_held_the_card_number() -> None:
    raw = b'{"event_id":"evt-1","lines":[{"sku":"4111111111111111"}]}'
    refused = Refusal(0, 2, Reason.CARD_NUMBER, "card number in lines[0].sku", raw, "evt-1", "lines[0].sku")
    stored = item(refused)
    assert stored["field"] == {"S": "lines[0].sku"}
    assert stored["detail"] == {"S": "card number in lines[0].sku"}
    assert b"4111111111111111" not in stored["raw"]["B"]
    assert "field" not in item(refusal(b"not json", reason=Reason.NOT_JSON))
