"""The order-event contract: what is accepted, and the exact reason for everything refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.contract import (
    MAX_EVENT_BYTES,
    MAX_LINES,
    OrderEvent,
    new_order,
    parse_order,
    validate_wire,
)
from salesstream.core.reasons import Reason, RejectedEvent

CET = timezone(timedelta(hours=1))


def valid_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "schema_version": 1,
        "event_id": "evt-0001",
        "event_type": "order_placed",
        "order_id": "ord-1",
        "store_id": "store-7",
        "terminal_id": "till-2",
        "occurred_at": "2026-11-23T10:15:00+01:00",
        "currency": "EUR",
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250},
            {"sku": "SKU-2", "quantity": 1, "unit_price_minor": 399},
        ],
        "total_minor": 2899,
    }
    event.update(overrides)
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def refusal(raw: bytes) -> tuple[Reason, Reason]:
    """The reason from both validation paths (model and hot-path dict); they must agree."""
    reasons = []
    for validate in (parse_order, validate_wire):
        with pytest.raises(RejectedEvent) as caught:
            validate(raw)
        reasons.append(caught.value.reason)
    return reasons[0], reasons[1]


def test_a_valid_event_round_trips() -> None:
    event = parse_order(encode(valid_event()))
    assert event.store_id == "store-7"
    assert event.total_minor == 2899
    assert event.business_day.isoformat() == "2026-11-23"
    assert parse_order(event.to_json_bytes()) == event


def test_both_paths_read_the_same_values() -> None:
    raw = encode(valid_event(event_type="order_refunded"))
    model, wire = parse_order(raw), validate_wire(raw)
    assert model.is_refund
    assert wire["event_type"] == "order_refunded"
    assert wire["occurred_at"] == model.occurred_at
    assert [line["quantity"] for line in wire["lines"]] == [line.quantity for line in model.lines]


def test_business_day_is_the_terminals_local_day() -> None:
    late_evening = parse_order(encode(valid_event(occurred_at="2026-11-23T23:30:00-05:00")))
    assert late_evening.business_day.isoformat() == "2026-11-23"  # already the 24th in UTC


def _without(field: str) -> dict[str, Any]:
    event = valid_event()
    del event[field]
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(valid_event(coupon="X1"), Reason.UNKNOWN_FIELD, id="unknown-field"),
        pytest.param(_without("store_id"), Reason.MISSING_FIELD, id="missing-field"),
        pytest.param(valid_event(total_minor="2899"), Reason.WRONG_TYPE, id="amount-as-string"),
        pytest.param(valid_event(total_minor=28.99), Reason.WRONG_TYPE, id="amount-as-float"),
        pytest.param(valid_event(store_id=7), Reason.WRONG_TYPE, id="id-as-number"),
        pytest.param(valid_event(lines={"sku": "x"}), Reason.WRONG_TYPE, id="lines-not-a-list"),
        pytest.param(valid_event(schema_version=2), Reason.UNSUPPORTED_SCHEMA_VERSION, id="future-schema"),
        pytest.param(valid_event(event_type="order_voided"), Reason.BAD_EVENT_TYPE, id="event-type"),
        pytest.param(valid_event(store_id=""), Reason.BAD_IDENTIFIER, id="empty-id"),
        pytest.param(valid_event(store_id="a#b"), Reason.BAD_IDENTIFIER, id="id-with-key-separator"),
        pytest.param(valid_event(event_id="x" * 129), Reason.BAD_IDENTIFIER, id="id-too-long"),
        pytest.param(valid_event(occurred_at="2026-11-23T10:15:00"), Reason.BAD_TIMESTAMP, id="no-offset"),
        pytest.param(valid_event(occurred_at="yesterday"), Reason.BAD_TIMESTAMP, id="not-a-time"),
        pytest.param(valid_event(occurred_at="2026-02-30T10:00:00Z"), Reason.BAD_TIMESTAMP, id="no-such-day"),
        pytest.param(valid_event(occurred_at=1763889300), Reason.BAD_TIMESTAMP, id="epoch-number"),
        pytest.param(valid_event(currency="XYZ"), Reason.UNKNOWN_CURRENCY, id="unknown-currency"),
        pytest.param(valid_event(currency="eur"), Reason.UNKNOWN_CURRENCY, id="lower-case-currency"),
        pytest.param(valid_event(lines=[], total_minor=0), Reason.EMPTY_ORDER, id="empty-order"),
        pytest.param(
            valid_event(
                lines=[{"sku": "a", "quantity": 1, "unit_price_minor": 1}] * (MAX_LINES + 1),
                total_minor=MAX_LINES + 1,
            ),
            Reason.TOO_MANY_LINES,
            id="too-many-lines",
        ),
        pytest.param(
            valid_event(lines=[{"sku": "a", "quantity": 0, "unit_price_minor": 5}], total_minor=0),
            Reason.NON_POSITIVE_QUANTITY,
            id="zero-quantity",
        ),
        pytest.param(
            valid_event(lines=[{"sku": "a", "quantity": -2, "unit_price_minor": 5}], total_minor=-10),
            Reason.NON_POSITIVE_QUANTITY,
            id="negative-quantity",
        ),
        pytest.param(
            valid_event(lines=[{"sku": "a", "quantity": 1, "unit_price_minor": -5}], total_minor=0),
            Reason.NEGATIVE_PRICE,
            id="negative-price",
        ),
        pytest.param(
            valid_event(lines=[{"sku": "a", "quantity": 1, "unit_price_minor": 10**12}], total_minor=10**12),
            Reason.AMOUNT_OUT_OF_RANGE,
            id="price-out-of-range",
        ),
        pytest.param(valid_event(total_minor=2900), Reason.TOTAL_MISMATCH, id="total-mismatch"),
        pytest.param(
            valid_event(lines=[{"sku": "a", "quantity": 1, "unit_price_minor": 5, "x": 1}], total_minor=5),
            Reason.UNKNOWN_FIELD,
            id="unknown-line-field",
        ),
    ],
)
def test_every_refusal_names_its_reason(event: dict[str, Any], reason: Reason) -> None:
    assert refusal(encode(event)) == (reason, reason)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", Reason.NOT_JSON),
        (b'{"schema_version": 1, "event_id": "e', Reason.NOT_JSON),  # truncated
        (b"\xff\xfe\x00garbage", Reason.BAD_UTF8),
        (b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
        (b'"just a string"', Reason.NOT_AN_OBJECT),
        (b"", Reason.NOT_JSON),
    ],
)
def test_bytes_that_are_not_an_event(raw: bytes, reason: Reason) -> None:
    assert refusal(raw) == (reason, reason)  # the hot path names the same reason


def test_nan_price_is_refused() -> None:
    raw = encode(valid_event()).replace(b'"unit_price_minor": 1250', b'"unit_price_minor": NaN')
    assert refusal(raw)[0] in (Reason.WRONG_TYPE, Reason.NOT_JSON)


def test_oversize_is_refused_before_parsing() -> None:
    # 10k lines of a well-formed basket: refused by the size cap, whatever else is wrong with it
    lines = [{"sku": f"SKU-{i}", "quantity": 1, "unit_price_minor": 1} for i in range(10_000)]
    raw = encode(valid_event(lines=lines, total_minor=10_000))
    assert len(raw) > MAX_EVENT_BYTES
    with pytest.raises(RejectedEvent) as caught:
        parse_order(raw)
    assert caught.value.reason is Reason.OVERSIZE


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("terminal_id", "terminal_id"),
        ("order_id", "order_id"),
        ("sku", "lines[0].sku"),
        ("unknown", "note"),
        ("key", "(key)"),
    ],
)
def test_a_card_number_anywhere_is_refused_with_its_field_named(where: str, field: str) -> None:
    card = "4111111111111111"
    event = valid_event()
    if where == "sku":
        event["lines"][0]["sku"] = f"SKU {card}"
    elif where == "unknown":
        event["note"] = f"paid with {card[:4]} {card[4:8]} {card[8:12]} {card[12:]}"
    elif where == "key":
        event[card] = 1
    else:
        event[where] = f"till:{card}"
    raw = encode(event)
    assert refusal(raw) == (Reason.CARD_NUMBER, Reason.CARD_NUMBER)
    with pytest.raises(RejectedEvent) as caught:
        parse_order(raw)
    assert (caught.value.field, caught.value.detail) == (field, f"card number in {field}")
    assert card not in str(caught.value)


@pytest.mark.parametrize(
    "identifier",
    ["x4111111111111111", "S038-2880162690", "c0a8e1f2-4221-1769-3224-0b5e6932240d", "ORD-4111111111111111"],
)
def test_a_digit_run_inside_an_identifier_is_no_card_number(identifier: str) -> None:
    assert parse_order(encode(valid_event(order_id=identifier))).order_id == identifier


def test_a_valid_gtin_sku_is_a_product_code_even_in_a_card_range() -> None:
    # 4006381333924 is a valid EAN-13 (GS1 Germany) that also passes Luhn as a 13-digit Visa
    event = valid_event()
    event["lines"][0]["sku"] = "4006381333924"
    assert parse_order(encode(event)).lines[0].sku == "4006381333924"


def test_other_refusals_name_the_field_from_the_validation_error() -> None:
    event = valid_event()
    event["lines"][1]["quantity"] = 0
    with pytest.raises(RejectedEvent) as caught:
        parse_order(encode(event))
    assert (caught.value.reason, caught.value.field) == (Reason.NON_POSITIVE_QUANTITY, "lines[1].quantity")


def test_refusal_details_never_echo_the_payload() -> None:
    with pytest.raises(RejectedEvent) as caught:
        parse_order(encode(valid_event(terminal_id="secret value with spaces")))
    assert "secret" not in str(caught.value)


def test_new_order_builds_a_valid_event() -> None:
    event = new_order(
        event_id="e-1",
        store_id="s-1",
        terminal_id="t-1",
        order_id="o-1",
        occurred_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        currency="JPY",
        lines=[("A", 3, 100)],
        refund=True,
    )
    assert isinstance(event, OrderEvent)
    assert event.total_minor == 300
    assert event.is_refund


amounts = st.integers(min_value=0, max_value=99_999)
line_strategy = st.tuples(
    st.from_regex(r"[A-Z]{2,5}-[0-9]{1,5}", fullmatch=True), st.integers(min_value=1, max_value=50), amounts
)


@given(
    lines=st.lists(line_strategy, min_size=1, max_size=20),
    refund=st.booleans(),
    offset=st.integers(min_value=-12, max_value=14),
)
def test_any_well_formed_event_survives_the_wire(
    lines: list[tuple[str, int, int]], refund: bool, offset: int
) -> None:
    event = new_order(
        event_id="e-1",
        store_id="s-1",
        terminal_id="t-1",
        order_id="o-1",
        occurred_at=datetime(2026, 11, 23, 9, 0, tzinfo=timezone(timedelta(hours=offset))),
        currency="EUR",
        lines=lines,
        refund=refund,
    )
    raw = event.to_json_bytes()
    assert parse_order(raw) == event
    assert validate_wire(raw)["total_minor"] == event.total_minor


@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_with_a_reason_never_a_crash(raw: bytes) -> None:
    for validate in (parse_order, validate_wire):
        with pytest.raises(RejectedEvent) as caught:
            validate(raw)
        assert isinstance(caught.value.reason, Reason)


def test_screen_many_passes_clean_chunks_and_flags_any_bad_one() -> None:
    from salesstream.core.contract import screen_many

    clean = [encode(valid_event(event_id=f"evt-{i}")) for i in range(50)]
    assert screen_many(clean)
    assert not screen_many([*clean, encode(valid_event(note="4111 1111 1111 1111"))])
    assert not screen_many([*clean, b"{" + b" " * MAX_EVENT_BYTES + b"}"])
    # digits at the end of one payload and the start of the next never join into a card number
    assert screen_many([b'{"a": "411111111"}', b"1111111 ok"])
