"""Refused events are counted by reason and never reach the sender; the tally counts event ids once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from producer import Producer, producer_client
from producer.aggregation import Accepted
from producer.result import Tally
from salesstream.core.reasons import Reason
from tests.unit.test_contract import valid_event


def raw(**overrides: Any) -> bytes:
    return json.dumps(valid_event(**overrides)).encode()


REFUSED = [
    (b"not json", Reason.NOT_JSON),
    (b"\xff\xfe{}", Reason.BAD_UTF8),
    (b"[1, 2]", Reason.NOT_AN_OBJECT),
    (raw(coupon="X"), Reason.UNKNOWN_FIELD),
    (raw(total_minor="2899"), Reason.WRONG_TYPE),
    (raw(currency="XYZ"), Reason.UNKNOWN_CURRENCY),
    (raw(total_minor=1), Reason.TOTAL_MISMATCH),
    (raw(lines=[], total_minor=0), Reason.EMPTY_ORDER),
    (raw(note="card 4111 1111 1111 1111"), Reason.CARD_NUMBER),
    (raw(terminal_id="4111111111111111"), Reason.CARD_NUMBER),
    (b"{" + b" " * 20_000 + b"}", Reason.OVERSIZE),
]


def test_every_refusal_is_returned_and_counted_by_reason_and_nothing_is_sent(tmp_path: Path) -> None:
    # The endpoint is a closed port and unit tests cannot open sockets: a send would fail the test.
    client = producer_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    producer = Producer(client, "orders", tmp_path / "spool.jsonl")
    with producer:
        for payload, reason in REFUSED:
            refusal = producer.submit(payload)
            assert refusal is not None
            assert refusal.reason is reason
            assert "4111" not in str(refusal)  # a refusal never repeats the card number
    result = producer.result
    assert result.accepted == 0
    assert result.sent == 0
    assert result.spooled == 0
    assert result.rejected == dict(sorted(Counter(reason.value for _, reason in REFUSED).items()))
    assert result.rejected_total == len(REFUSED)
    assert not (tmp_path / "spool.jsonl").exists()


def test_the_tally_counts_each_event_id_once_and_keeps_currencies_apart() -> None:
    tally = Tally()
    sale = Accepted(b"", "e.1", "store-1", "EUR", False, 1250)
    tally.add(sale)
    tally.add(sale)  # the same event acknowledged twice (a resend)
    tally.add(Accepted(b"", "e.2", "store-1", "EUR", True, 250))
    tally.add(Accepted(b"", "e.3", "store-1", "USD", False, 999))
    rows = {(row.store_id, row.currency): row for row in tally.rows()}
    eur = rows[("store-1", "EUR")]
    assert (eur.orders, eur.refunds, eur.gross_minor, eur.refunds_minor) == (1, 1, 1250, 250)
    assert eur.net_minor == 1000
    assert rows[("store-1", "USD")].net_minor == 999


def test_settings_come_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from producer import ProducerSettings

    monkeypatch.setenv("SALESSTREAM_PRODUCER_LINGER_SECONDS", "0.5")
    assert ProducerSettings().linger_seconds == 0.5
    assert ProducerSettings(linger_seconds=0.2).linger_seconds == 0.2


def test_a_closed_producer_refuses_more_events(tmp_path: Path) -> None:
    from producer.producer import ProducerClosed

    client = producer_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    producer = Producer(client, "orders", tmp_path / "spool.jsonl")
    result = producer.close()
    assert producer.close() is result  # closing twice is harmless
    with pytest.raises(ProducerClosed):
        producer.submit(raw())


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (raw(note="card 4111 1111 1111 1111"), "note"),
        (raw(terminal_id="4111111111111111"), "terminal_id"),
        (
            raw(lines=[{"sku": "5555 5555 5555 4444", "quantity": 1, "unit_price_minor": 2899}]),
            "lines[0].sku",
        ),
        (raw(total_minor="2899"), "total_minor"),
    ],
)
def test_the_producers_refusal_names_the_field_never_the_value(
    tmp_path: Path, payload: bytes, field: str
) -> None:
    client = producer_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    with Producer(client, "orders", tmp_path / "spool.jsonl") as producer:
        refusal = producer.submit(payload)
    assert refusal is not None
    assert refusal.field == field
    assert refusal.detail.startswith((f"card number in {field}", f"{field}: "))
    assert "4111" not in str(refusal)
    assert "5555" not in str(refusal)


def test_real_world_identifiers_are_accepted_by_the_producer(tmp_path: Path) -> None:
    client = producer_client(endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
    real = raw(
        event_id="9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
        order_id="S038-2880162690",
        lines=[{"sku": "4006381333924", "quantity": 1, "unit_price_minor": 2899}],
    )
    producer = Producer(client, "orders", tmp_path / "spool.jsonl")
    assert producer.submit(real) is None
    assert producer.result.rejected == {}


def test_an_order_event_is_screened_for_card_numbers_and_size_but_not_validated_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from producer import encoder
    from salesstream.core.contract import OrderEvent

    def validator_called(raw: bytes, *, screened: bool = False) -> None:
        raise AssertionError("a built OrderEvent went through the validator again")

    monkeypatch.setattr(encoder, "decode_event", validator_called)
    sale = OrderEvent.model_validate_json(raw())
    carrier = OrderEvent.model_validate_json(
        raw(terminal_id="4111111111111111")
    )  # the model has no card scan
    huge = OrderEvent.model_validate_json(
        raw(lines=[{"sku": "S" * 64, "quantity": 1, "unit_price_minor": 1}] * 200, total_minor=200)
    )
    accepted, refused = encoder.accept_many([sale, carrier, huge])
    assert [event.event_id for event in accepted] == [sale.event_id]
    assert accepted[0] == (
        sale.to_json_bytes(),
        sale.event_id,
        sale.store_id,
        sale.currency,
        False,
        sale.total_minor,
    )
    assert [(index, refusal.reason) for index, refusal in refused] == [
        (1, Reason.CARD_NUMBER),
        (2, Reason.OVERSIZE),
    ]
    assert refused[0][1].field == "terminal_id"


def test_a_chunk_names_each_refusal_by_position_and_keeps_the_order_of_the_rest() -> None:
    from producer.encoder import accept_many

    good = [raw(event_id=f"e.{n}") for n in range(5)]
    chunk = [good[0], REFUSED[0][0], good[1], good[2], raw(note="4111 1111 1111 1111"), *good[3:]]
    accepted, refused = accept_many(chunk)
    assert [event.raw for event in accepted] == good
    assert [(index, refusal.reason) for index, refusal in refused] == [
        (1, Reason.NOT_JSON),
        (4, Reason.CARD_NUMBER),
    ]
