"""The shared decoding pipeline: base64, strict de-aggregation, card screen, size cap, contract."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.contract import MAX_EVENT_BYTES
from salesstream.core.kpl import MAGIC, BrokenAggregate, aggregate, deaggregate, messages_pb2, payloads
from salesstream.core.lambda_events import KinesisTimeWindowEvent
from salesstream.core.reasons import Reason
from salesstream.core.records import WHOLE_RECORD, decode_records, event_id_hint
from salesstream.core.wire import WireEvent
from tests.window_events import Shard, kpl, order

CARD = b"4111 1111 1111 1111"
BROKEN_BODY = b"\x1a\xff\xff\xff\x0f"  # a length-delimited field that claims 4 GB


def decode(*datas: bytes) -> tuple:
    shard = Shard()
    event = KinesisTimeWindowEvent.model_validate(shard.event([shard.put(data) for data in datas]))
    return decode_records(event.Records), event


def test_plain_and_aggregated_records() -> None:
    a, b, c = order("store-1", 100), order("store-2", 200), order("store-3", 300)
    batch, event = decode(a.to_json_bytes(), kpl(b, c))
    assert [(e["event_id"], raw, record, sub) for e, raw, record, sub in batch.accepted] == [
        (a.event_id, a.to_json_bytes(), 0, 0),
        (b.event_id, b.to_json_bytes(), 1, 0),
        (c.event_id, c.to_json_bytes(), 1, 1),
    ]
    assert [r.user_records for r in batch.records] == [1, 2]
    assert batch.records[1].sequence_number == event.Records[1].kinesis.sequenceNumber
    assert batch.records[1].last.subsequence == 1
    assert batch.refused == []


def test_bad_user_records_are_refused_one_by_one_and_the_rest_goes_on() -> None:
    good = order("store-1", 100)
    batch, _ = decode(kpl(b"not json", good, b'{"schema_version": 1}', b"\xff\xfe"))
    assert [e["event_id"] for e, *_ in batch.accepted] == [good.event_id]
    assert [(r.record, r.subsequence, r.reason) for r in batch.refused] == [
        (0, 0, Reason.NOT_JSON),
        (0, 2, Reason.MISSING_FIELD),
        (0, 3, Reason.BAD_UTF8),
    ]
    assert batch.refused[1].raw == b'{"schema_version": 1}'


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), Reason.BAD_AGGREGATE_CHECKSUM),
        (lambda data: data[: len(data) // 2], Reason.BAD_AGGREGATE_CHECKSUM),  # truncated
        (lambda data: MAGIC + BROKEN_BODY + hashlib.md5(BROKEN_BODY).digest(), Reason.BROKEN_AGGREGATE),  # noqa: S324
    ],
)
def test_a_broken_aggregate_is_refused_whole(corrupt: object, reason: Reason) -> None:
    data = kpl(order("store-1", 100), order("store-1", 200))
    broken = corrupt(data)  # type: ignore[operator]
    batch, _ = decode(broken, order("store-2", 5).to_json_bytes())
    (refusal,) = batch.refused
    assert (refusal.record, refusal.subsequence, refusal.reason, refusal.raw) == (
        0,
        WHOLE_RECORD,
        reason,
        broken,
    )
    assert batch.records[0].user_records == 0
    assert len(batch.accepted) == 1  # the next record goes on


def test_a_card_number_in_an_aggregate_is_found_in_its_own_user_record() -> None:
    clean = order("store-1", 100)
    with_card = order("store-1", 200).to_json_bytes().replace(b'"till-1"', b'"till-1","note":"' + CARD + b'"')
    batch, _ = decode(kpl(clean, with_card))
    assert [e["event_id"] for e, *_ in batch.accepted] == [clean.event_id]
    (refusal,) = batch.refused
    assert (refusal.subsequence, refusal.reason) == (1, Reason.CARD_NUMBER)


def test_the_size_cap_holds_inside_a_clean_aggregate() -> None:
    big = json.dumps({"pad": "x" * MAX_EVENT_BYTES}).encode()
    batch, _ = decode(kpl(order("store-1", 1), big))
    assert [(r.subsequence, r.reason) for r in batch.refused] == [(1, Reason.OVERSIZE)]
    assert batch.refused[0].event_id is None


def test_data_that_is_not_base64_is_refused_whole() -> None:
    shard = Shard()
    event = shard.event([shard.put(order("store-1", 1))])
    event["Records"][0]["kinesis"]["data"] = "not*base64"
    batch = decode_records(KinesisTimeWindowEvent.model_validate(event).Records)
    (refusal,) = batch.refused
    assert (refusal.subsequence, refusal.reason, refusal.raw) == (
        WHOLE_RECORD,
        Reason.NOT_JSON,
        b"not*base64",
    )


def test_event_id_hint() -> None:
    event = order("store-1", 1)
    assert (
        event_id_hint(event.to_json_bytes().replace(b'"total_minor":1', b'"total_minor":2')) == event.event_id
    )
    assert event_id_hint(b'{"event_id": "has space"}') is None
    assert event_id_hint(b'{"event_id": "4111111111111111"}') is None  # a card number is no id to keep
    assert event_id_hint(b"[1, 2]") is None
    assert event_id_hint(b"\xff") is None


def test_a_deeply_nested_payload_is_refused_not_a_crash() -> None:
    # within the size cap, thousands of levels: refused as not_json, and reading its event id
    # for the quarantine must not blow the interpreter's recursion limit (it failed every retry)
    nested = b'{"event_id": ' + b"[" * (MAX_EVENT_BYTES - 20)
    (refusal,) = decode(nested)[0].refused
    assert (refusal.reason, refusal.event_id) == (Reason.NOT_JSON, None)
    assert event_id_hint(nested) is None


user_payloads = st.lists(st.binary(min_size=0, max_size=200), min_size=1, max_size=30)


@given(user_payloads)
def test_payloads_is_deaggregate_without_the_objects(datas: list[bytes]) -> None:
    data = aggregate([("pk", d) for d in datas], explicit_hash_key="7")
    assert payloads(data) == [r.data for r in deaggregate(data, "pk")] == datas


def test_payloads_refuses_what_deaggregate_refuses() -> None:
    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.append("s")
    message.records.add(partition_key_index=0, explicit_hash_key_index=0, data=b"x")  # no hash key table
    body = message.SerializeToString()
    data = MAGIC + body + hashlib.md5(body).digest()  # noqa: S324
    for read in (payloads, lambda d: deaggregate(d, "s")):
        with pytest.raises(BrokenAggregate, match="explicit hash key index"):
            read(data)
    assert payloads(b'{"plain": 1}') == [b'{"plain": 1}']


def test_every_user_record_counts_where_it_landed_whatever_its_keys() -> None:
    # A foreign producer (aws-kinesis-agg's RecordAggregator, one for all stores) mixes partition
    # keys in one aggregate and sets no explicit hash key; Kinesis places it by the first key.
    # Each user record is accepted on the shard it was read from, at its own sub-sequence.
    stores = [f"store-{i}" for i in range(40)]
    orders = [order(store, 100 + i) for i, store in enumerate(stores)]
    shard = Shard()
    mixed = aggregate([(o.store_id, o.to_json_bytes()) for o in orders])
    pinned = aggregate([(o.store_id, o.to_json_bytes()) for o in orders[:3]], explicit_hash_key="0")
    event = KinesisTimeWindowEvent.model_validate(shard.event([shard.put(mixed), shard.put(pinned)]))

    batch = decode_records(event.Records)

    assert [(e["event_id"], i, sub) for e, _, i, sub in batch.accepted] == [
        *((o.event_id, 0, sub) for sub, o in enumerate(orders)),
        *((o.event_id, 1, sub) for sub, o in enumerate(orders[:3])),
    ]
    assert batch.refused == []


def test_a_poison_record_is_quarantined_and_the_rest_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # A record that breaks validation in an unforeseen way would fail every retry (B4).
    import salesstream.core.records as records

    poison, good = order("store-1", 100), order("store-2", 200)
    real = records.decode_event

    def breaks_on_poison(raw: bytes, *, screened: bool = False) -> WireEvent:
        if poison.event_id.encode() in raw:
            raise RecursionError("deep in a library")
        return real(raw, screened=screened)

    monkeypatch.setattr(records, "decode_event", breaks_on_poison)
    batch, _ = decode(kpl(poison, good))
    assert [e["event_id"] for e, _, _, _ in batch.accepted] == [good.event_id]
    (refusal,) = batch.refused
    assert (refusal.reason, refusal.detail, refusal.subsequence) == (
        Reason.POISON,
        "unexpected RecursionError",
        0,
    )


def test_a_card_number_glued_to_an_aggregates_framing_is_still_found_in_its_user_record() -> None:
    # a 52-byte payload: its protobuf length byte is "4", glued to the card's first digit in the
    # aggregate's bytes; the screen reads the payloads apart (joined by newlines), so it is found
    bare_card = b"4111111111111111" + b" " * 36
    data = kpl(order("store-1", 100), bare_card)
    assert b"44111111111111111" in data
    batch, _ = decode(data)
    assert [(r.subsequence, r.reason, r.field) for r in batch.refused] == [
        (1, Reason.CARD_NUMBER, "(payload)")
    ]


def test_a_refusal_names_the_field_that_held_the_card_number_never_the_value() -> None:
    line = {"sku": "4111 1111 1111 1111", "quantity": 1, "unit_price_minor": 100}
    event = json.loads(order("store-1", 100).to_json_bytes())
    event["lines"] = [event["lines"][0], line]
    batch, _ = decode(kpl(order("store-1", 100), json.dumps(event).encode()))
    (refusal,) = batch.refused
    assert (refusal.reason, refusal.field, refusal.detail) == (
        Reason.CARD_NUMBER,
        "lines[1].sku",
        "card number in lines[1].sku",
    )


def test_a_schema_refusal_names_its_field_from_the_validation_error() -> None:
    event = json.loads(order("store-1", 100).to_json_bytes())
    event["lines"][0]["quantity"] = -1
    batch, _ = decode(json.dumps(event).encode())
    assert [(r.reason, r.field) for r in batch.refused] == [
        (Reason.NON_POSITIVE_QUANTITY, "lines[0].quantity")
    ]


def test_real_world_ids_in_an_aggregate_are_accepted() -> None:
    event = json.loads(order("store-1", 100).to_json_bytes())
    event.update(event_id="c0a8e1f2-4221-4769-8224-0b5e6932240d", order_id="S038-2880162690")
    event["lines"][0]["sku"] = "4006381333924"  # a valid EAN-13 that also passes Luhn
    real = json.dumps(event).encode()
    batch, _ = decode(kpl(real, order("store-2", 5)))
    assert batch.refused == []
    assert batch.accepted[0][0]["order_id"] == "S038-2880162690"
