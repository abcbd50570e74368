"""Handler contract tests, bad input (B1, B2, B3, B5): exact quarantine contents; the rest of the
batch goes on; a record that cannot even be quarantined is redelivered, never lost."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from consumers.common.retry import Backoff
from consumers.speed.aggregate import QuarantineUnavailable
from salesstream.core.aggregation import Totals
from salesstream.core.cards import contains_card_number
from salesstream.core.positions import sequence_key
from tests.integration.conftest import AggregatorStack, answer_with_error, error
from tests.window_events import Shard, kpl, order

StackFactory = Callable[..., AggregatorStack]
CARD = b"4111 1111 1111 1111"


def quarantined(stack: AggregatorStack) -> dict[tuple[str, int | str], dict[str, Any]]:
    """(sequence number, sub-sequence or 'record') -> item."""
    return {
        (item["sequence_number"], int(item["subsequence"]) if "subsequence" in item else "record"): item
        for item in stack.items(stack.quarantine_table)
    }


def good_event(store: str, amount: int) -> dict[str, Any]:
    return json.loads(order(store, amount).to_json_bytes())


def with_fields(**changes: Any) -> bytes:
    event = good_event("store-9", 100)
    event.update(changes)
    return json.dumps(event).encode()


BAD_PAYLOADS: dict[str, bytes] = {
    # B1: not an event at all
    "not_json": b"hello, this is a test",
    "truncated": order("store-9", 100).to_json_bytes()[:40],
    "bad_utf8": b'{"event_id": "\xff\xfe"}',
    # B2: schema and business rules
    "missing_field": json.dumps(
        {k: v for k, v in good_event("store-9", 1).items() if k != "currency"}
    ).encode(),
    "non_positive_quantity": with_fields(
        lines=[{"sku": "A", "quantity": 0, "unit_price_minor": 100}], total_minor=0
    ),
    "negative_price": with_fields(
        lines=[{"sku": "A", "quantity": 1, "unit_price_minor": -5}], total_minor=-5
    ),
    "nan_price": with_fields(lines=[{"sku": "A", "quantity": 1, "unit_price_minor": float("nan")}]),
    "unknown_currency": with_fields(currency="XXX"),
    "wrong_type": with_fields(total_minor="100"),
    "unknown_field": with_fields(coupon="SAVE10"),
    # B3: huge but well-formed: 10k lines, refused by the size cap before any parse
    "huge": with_fields(
        lines=[{"sku": f"S{n}", "quantity": 1, "unit_price_minor": 1} for n in range(10_000)],
        total_minor=10_000,
    ),
    # B7 on the consumer side: a card number in any field
    "card_number": with_fields(terminal_id="till-1", note=CARD.decode()),
}
EXPECTED_REASONS = {
    "not_json": "not_json",
    "truncated": "not_json",
    "bad_utf8": "bad_utf8",
    "missing_field": "missing_field",
    "non_positive_quantity": "non_positive_quantity",
    "negative_price": "negative_price",
    "nan_price": "wrong_type",  # pydantic reads NaN, then the strict schema refuses a non-integer price
    "unknown_currency": "unknown_currency",
    "wrong_type": "wrong_type",
    "unknown_field": "unknown_field",
    "huge": "oversize",
    "card_number": "card_number",
}


def test_b1_b2_b3_every_bad_user_record_is_quarantined_and_the_batch_goes_on(
    aggregator_stack: StackFactory,
) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    names = list(BAD_PAYLOADS)
    plain = shard.put(BAD_PAYLOADS["huge"])  # a plain record: too big for any aggregate
    mixed = shard.put(
        kpl(order("store-1", 100), *(BAD_PAYLOADS[n] for n in names if n != "huge"), order("store-2", 7))
    )
    response = stack.invoke(shard.event([plain, mixed]))
    assert response["batchItemFailures"] == []

    items = quarantined(stack)
    expected_keys = {(str(plain.sequence), 0)} | {(str(mixed.sequence), n + 1) for n in range(len(names) - 1)}
    assert set(items) == expected_keys
    for number, name in enumerate(n for n in names if n != "huge"):
        item = items[(str(mixed.sequence), number + 1)]
        assert item["reason"] == EXPECTED_REASONS[name], name
        assert item["sk"] == f"{sequence_key(str(mixed.sequence))}#{number + 1:06d}"
        assert item["shard_id"] == shard.shard_id
        assert int(item["arrival_ms"]) == mixed.arrival_ms
        assert item["window_start"] == "2026-11-23T10:00:00Z"
        assert item["detail"]
        if name == "card_number":
            assert not contains_card_number(bytes(item["raw"]))
            assert b"till-1" in bytes(item["raw"])
            # the field that held it, for the operator; the detail names it, never the value
            assert (item["field"], item["detail"]) == ("note", "card number in note")
        else:
            assert bytes(item["raw"]) == BAD_PAYLOADS[name]
    assert items[(str(mixed.sequence), names.index("missing_field") + 1)]["field"] == "currency"
    # the refused fields' event ids are kept when they can be read
    assert items[(str(mixed.sequence), names.index("unknown_currency") + 1)]["event_id"].startswith("evt-")

    # B3: the 10k-line payload is too big for an item: its bytes are in the bucket
    huge = items[(str(plain.sequence), 0)]
    assert huge["reason"] == "oversize"
    assert "raw" not in huge
    body = stack.endpoint.client("s3").get_object(Bucket=stack.bucket, Key=huge["raw_s3_key"])["Body"].read()
    assert body == BAD_PAYLOADS["huge"]
    assert int(huge["raw_bytes"]) == len(body)

    state = response["state"]
    assert state["n"] == 2
    assert state["q"] == {
        reason: list(EXPECTED_REASONS.values()).count(reason) for reason in set(EXPECTED_REASONS.values())
    }
    window = shard.window_of(plain)
    stack.invoke(shard.event([], state, window=window, final=True))
    assert stack.store_totals() == {
        ("store-1", "EUR"): Totals(orders=1, gross_minor=100),
        ("store-2", "EUR"): Totals(orders=1, gross_minor=7),
    }
    assert stack.shard_item(shard.shard_id, "COUNTERS")["quarantined"] == len(BAD_PAYLOADS)


def test_b1_a_broken_aggregate_is_quarantined_whole(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    data = bytearray(kpl(order("store-1", 100), order("store-1", 200)))
    data[-3] ^= 0x01  # a bit flipped in the MD5 trailer
    broken = shard.put(bytes(data))
    fine = shard.put(kpl(order("store-2", 5)))
    body = b"\x1a\xff\xff\xff\x0f"
    unparsable = shard.put(bytes(data[:4]) + body + hashlib.md5(body).digest())  # noqa: S324 - the format's checksum
    response = stack.invoke(shard.event([broken, fine, unparsable]))
    items = quarantined(stack)
    assert set(items) == {(str(broken.sequence), "record"), (str(unparsable.sequence), "record")}
    assert items[(str(broken.sequence), "record")]["reason"] == "bad_aggregate_checksum"
    assert items[(str(broken.sequence), "record")]["whole_record"] is True
    assert bytes(items[(str(broken.sequence), "record")]["raw"]) == bytes(data)
    assert items[(str(unparsable.sequence), "record")]["reason"] == "broken_aggregate"
    assert response["state"]["n"] == 1


def test_b5_a_resend_counts_once_and_a_changed_amount_is_a_conflict(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    sale = order("store-1", 1000, event_id="evt-b5-same")
    disputed = order("store-1", 1000, event_id="evt-b5-conflict")
    first = shard.put(kpl(sale, disputed))
    resend = shard.put(sale)
    changed = shard.put(order("store-1", 9999, event_id="evt-b5-conflict"))
    state = stack.invoke(shard.event([first, resend, changed]))["state"]
    assert (state["n"], state["dup"], state["q"]) == (2, 1, {"duplicate_conflict": 1})
    (conflict,) = stack.items(stack.quarantine_table)
    assert (conflict["reason"], conflict["event_id"], conflict["sequence_number"]) == (
        "duplicate_conflict",
        "evt-b5-conflict",
        str(changed.sequence),
    )
    assert f"sequence {first.sequence}, sub-sequence 1" in conflict["detail"]
    assert b"9999" in bytes(conflict["raw"])
    stack.invoke(shard.event([], state, window=shard.window_of(first), final=True))
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=2, gross_minor=2000)}
    counters = stack.shard_item(shard.shard_id, "COUNTERS")
    assert (counters["duplicates"], counters["conflicts"]) == (1, 1)


def test_a_record_that_cannot_be_quarantined_is_redelivered_not_lost(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    before = shard.put(order("store-1", 100))
    bad = shard.put(kpl(order("store-1", 20), b"junk"))
    after = shard.put(order("store-1", 3))
    stack.app.quarantine.backoff = Backoff(sleep=lambda _: None)
    fault = answer_with_error(
        stack.app.quarantine.dynamodb, "BatchWriteItem", error("ThrottlingException"), times=1000
    )
    response = stack.invoke(shard.event([before, bad, after]))
    # Lambda checkpoints before the failed record and redelivers from it; only `before` is folded
    assert response["batchItemFailures"] == [{"itemIdentifier": str(bad.sequence)}]
    assert response["state"]["n"] == 1
    assert response["state"]["pos"][2] == str(before.sequence)
    fault.remove()
    state = stack.invoke(shard.event([bad, after], response["state"]))["state"]
    assert (state["n"], state["q"]) == (3, {"not_json": 1})
    stack.invoke(shard.event([], state, window=shard.window_of(before), final=True))
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=3, gross_minor=123)}
    assert [item["reason"] for item in stack.items(stack.quarantine_table)] == ["not_json"]


def test_unprocessed_quarantine_items_are_written_again(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    records = [shard.put(b"junk %d" % n) for n in range(30)]
    pauses: list[float] = []
    stack.app.quarantine.backoff = Backoff(sleep=pauses.append)
    client = stack.app.quarantine.dynamodb
    first_call: list[dict[str, Any]] = []

    def remember_the_first_request(params: dict[str, Any], **_: Any) -> None:
        if not first_call:
            first_call.append(json.loads(params["body"])["RequestItems"][stack.quarantine_table][-1])

    def answer_one_item_unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        # as DynamoDB does under load: 200, with one item of the batch left unprocessed
        if len(first_call) == 1:
            parsed["UnprocessedItems"] = {stack.quarantine_table: [first_call[0]]}
            first_call.append({})

    client.meta.events.register("before-call.dynamodb.BatchWriteItem", remember_the_first_request)
    client.meta.events.register("after-call.dynamodb.BatchWriteItem", answer_one_item_unprocessed)
    response = stack.invoke(shard.event(records))
    assert response["batchItemFailures"] == []
    assert len(stack.items(stack.quarantine_table)) == 30
    assert len(pauses) == 1


def test_a_final_invocation_cannot_close_with_an_unquarantined_record(aggregator_stack: StackFactory) -> None:
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    window = shard.window_of(shard.put(order("store-1", 100)))
    state = stack.invoke(shard.event(shard.records))["state"]
    stack.app.quarantine.backoff = Backoff(sleep=lambda _: None)
    fault = answer_with_error(
        stack.app.quarantine.dynamodb, "BatchWriteItem", error("ThrottlingException"), times=1000
    )
    final = shard.event([shard.put(b"junk")], state, window=window, final=True)
    with pytest.raises(QuarantineUnavailable):
        stack.invoke(final)
    assert stack.segments() == []
    fault.remove()
    stack.invoke(final)
    assert stack.store_totals() == {("store-1", "EUR"): Totals(orders=1, gross_minor=100)}
    assert len(stack.items(stack.quarantine_table)) == 1


@pytest.mark.parametrize(("disabled", "printed"), [("true", False), ("false", True)])
def test_quarantine_metrics_are_printed_only_when_metrics_are_on(
    aggregator_stack: StackFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    disabled: str,
    printed: bool,
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", disabled)
    stack, shard = aggregator_stack(ShardCount=1), Shard()
    capsys.readouterr()
    stack.invoke(shard.event([shard.put(with_fields(currency="XXX"))]))
    assert ('"Quarantined"' in capsys.readouterr().out) is printed
