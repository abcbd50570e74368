"""The compiled validator (`wire.decode_event`) against the contract (`contract.parse_order`).

Kept for as long as both exist: on every input they give the same verdict; a refusal has the
same reason code, field and detail; an accepted event has the same values. Inputs: hypothesis
over valid events and mutated ones (types, missing and extra fields, currencies, timestamps,
numbers, totals, unicode and `\\u` escapes, duplicate keys, oversize), every refusal of the
test suite's corpora, the card-number corpus and the producer's realistic identifiers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from load_tests import card_corpus
from producer import identifiers
from salesstream.core.contract import (
    MAX_EVENT_BYTES,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_TOTAL_MINOR,
    MAX_UNIT_PRICE_MINOR,
    OrderEvent,
    OrderLine,
    parse_order,
)
from salesstream.core.currencies import CURRENCIES
from salesstream.core.reasons import RejectedEvent
from salesstream.core.wire import Screened, WireEvent, WireLine, decode_event, screen
from tests.unit import test_contract, test_producer_rejections
from tests.unit.test_contract import valid_event

Verdict = tuple[Any, ...]


def _line_values(line: Any) -> tuple[Any, ...]:
    return (line.sku, line.quantity, line.unit_price_minor)


def contract_verdict(raw: bytes) -> Verdict:
    try:
        event = parse_order(raw)
    except RejectedEvent as refused:
        return ("refused", refused.reason, refused.field, refused.detail)
    return (
        "accepted",
        event.event_id,
        event.event_type.value,
        event.order_id,
        event.store_id,
        event.terminal_id,
        event.occurred_at,
        event.occurred_at.utcoffset(),
        event.currency,
        tuple(map(_line_values, event.lines)),
        event.total_minor,
    )


def wire_verdict(raw: bytes, screened: bool | Screened = False) -> Verdict:
    try:
        event = decode_event(raw, screened=screened)
    except RejectedEvent as refused:
        return ("refused", refused.reason, refused.field, refused.detail)
    return wire_verdict_of(event)


def wire_verdict_of(event: WireEvent) -> Verdict:
    assert type(event.event_type) is str
    assert event.schema_version == 1
    return (
        "accepted",
        event.event_id,
        event.event_type,
        event.order_id,
        event.store_id,
        event.terminal_id,
        event.occurred_at,
        event.occurred_at.utcoffset(),
        event.currency,
        tuple(map(_line_values, event.lines)),
        event.total_minor,
    )


def assert_same(raw: bytes) -> Verdict:
    expected = contract_verdict(raw)
    assert wire_verdict(raw) == expected, raw[:300]
    # as the aggregator decodes an aggregate: what `screen` found over it is not checked again
    screened = screen([raw, b'{"event_id": "another payload of the aggregate"}'])
    if screened:
        assert wire_verdict(raw, screened) == expected, (screened, raw[:300])
    if expected[0] == "accepted":
        # the screened form (the caller ran the size cap and card scan) reads the same values
        event = decode_event(raw, screened=True)
        assert wire_verdict_of(event) == expected
        assert (event["store_id"], event.is_refund) == (expected[4], expected[2] == "order_refunded")
    return expected


# --- the structs are the models' fields ----------------------------------------------------------


def test_the_structs_have_the_models_fields_in_the_models_order() -> None:
    assert WireEvent.__struct_fields__ == tuple(OrderEvent.model_fields)
    assert WireLine.__struct_fields__ == tuple(OrderLine.model_fields)


# --- a JSON writer that spells strings in every legal way ------------------------------------------


def spell(value: Any, rng: random.Random, escape_share: float) -> str:
    """JSON text of `value`; each character of a string is `\\u`-escaped with `escape_share`."""
    if isinstance(value, str):
        return '"' + "".join(_spell_char(char, rng, escape_share) for char in value) + '"'
    if isinstance(value, dict):
        members = (
            f"{spell(key, rng, escape_share)}:{spell(item, rng, escape_share)}" for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(spell(item, rng, escape_share) for item in value) + "]"
    return json.dumps(value)


def _spell_char(char: str, rng: random.Random, escape_share: float) -> str:
    if char in '"\\' or ord(char) < 0x20 or rng.random() < escape_share:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}"
        return f"\\u{code:04x}" if rng.random() < 0.5 else f"\\u{code:04X}"
    return char


# --- strategies ---------------------------------------------------------------------------------

_rng = random.Random(13)
REALISTIC_IDS = [
    make(_rng) for make in (identifiers.uuid4, identifiers.uuid7, identifiers.ulid) for _ in range(20)
]
REALISTIC_IDS += [identifiers.hex_id(_rng) for _ in range(20)] + [
    identifiers.receipt_number(_rng) for _ in range(20)
]
REALISTIC_SKUS = [
    make(_rng)
    for make in (identifiers.ean13, identifiers.upc_a, identifiers.ean8, identifiers.gtin14)
    for _ in range(20)
]
REALISTIC_TIMES = [identifiers.iso_timestamp(_rng) for _ in range(60)]

identifier_texts = st.one_of(
    st.sampled_from(REALISTIC_IDS),
    st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:\-]{0,30}\Z"),
    st.text(max_size=12),
    st.just("x" * 128),
    st.just("x" * 129),
    st.just("ok\n"),
)
sku_texts = st.one_of(
    st.sampled_from(REALISTIC_SKUS),
    st.from_regex(r"\A[A-Z]{2,5}-[0-9]{1,5}\Z"),
    st.text(min_size=0, max_size=70),
    st.just("é" * 64),
    st.just("é" * 65),
    st.just("SKU\x7f"),
    st.just("SKU\n"),
)
quantities = st.one_of(st.integers(1, 50), st.integers(-3, MAX_QUANTITY + 3), st.just(MAX_QUANTITY))
prices = st.one_of(
    st.integers(0, 99_999),
    st.integers(-3, 3),
    st.just(MAX_UNIT_PRICE_MINOR),
    st.just(MAX_UNIT_PRICE_MINOR + 1),
)
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.one_of(st.just(UTC), offsets)
)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """`occurred_at` as terminals write it, and near misses."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.sampled_from(REALISTIC_TIMES))
    moment = draw(moments)
    if kind == 1:
        return moment.isoformat(
            sep=draw(st.sampled_from("T t_")),
            timespec=draw(st.sampled_from(["auto", "seconds", "minutes", "milliseconds", "microseconds"])),
        )
    if kind == 2:
        text = moment.replace(microsecond=0).isoformat()
        digits = draw(st.text("0123456789", min_size=1, max_size=10))
        text = text[:19] + draw(st.sampled_from(".,")) + digits + text[19:]
        return text.replace("+00:00", draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"])))
    if kind == 3:
        text = moment.isoformat()
        return text[:-3] + text[-2:] if draw(st.booleans()) else text[:-3]  # +0100 or +01
    if kind == 4:
        return moment.replace(tzinfo=None).isoformat()  # naive
    return draw(st.one_of(st.text(max_size=30), st.integers(), st.none(), st.floats()))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed event; its total is the sum of its lines."""
    lines = draw(
        st.lists(
            st.fixed_dictionaries({"sku": sku_texts, "quantity": quantities, "unit_price_minor": prices}),
            min_size=1,
            max_size=6,
        )
    )
    return {
        "schema_version": 1,
        "event_id": draw(identifier_texts),
        "event_type": draw(st.sampled_from(["order_placed", "order_refunded"])),
        "order_id": draw(identifier_texts),
        "store_id": draw(identifier_texts),
        "terminal_id": draw(identifier_texts),
        "occurred_at": draw(timestamps()),
        "currency": draw(st.one_of(st.sampled_from(sorted(CURRENCIES)), st.text(max_size=4))),
        "lines": lines,
        "total_minor": sum(line["quantity"] * line["unit_price_minor"] for line in lines),
    }


FIELDS = list(OrderEvent.model_fields)
LINE_FIELDS = list(OrderLine.model_fields)


@st.composite
def mutated(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    """The event with one thing changed that the contract has an opinion on."""
    event = json.loads(json.dumps(event))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        del event[draw(st.sampled_from(FIELDS))]
    elif kind == 1:
        event[draw(st.text(max_size=8))] = draw(json_values)
    elif kind == 2:
        event[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif kind == 3:
        line = draw(st.sampled_from(event["lines"]))
        field = draw(st.sampled_from(LINE_FIELDS))
        if draw(st.booleans()):
            line.pop(field)
        else:
            line[field] = draw(json_values)
    elif kind == 4:
        event["total_minor"] += draw(st.sampled_from([-1, 1, 10**6, MAX_TOTAL_MINOR, 10**30]))
    elif kind == 5:
        event["lines"] = event["lines"] * draw(st.sampled_from([0, MAX_LINES // len(event["lines"]) + 1]))
        event["total_minor"] = sum(line["quantity"] * line["unit_price_minor"] for line in event["lines"])
    elif kind == 6:
        event["schema_version"] = draw(st.sampled_from([0, 2, 1.0, "1", True, None]))
    elif kind == 7:
        event["event_type"] = draw(st.sampled_from(["ORDER_PLACED", "order_voided", "", 1]))
    elif kind == 8:
        big = draw(st.sampled_from([10**18, 2**63, 2**64, 10**40, -(2**63) - 1]))
        line = event["lines"][0]
        line["quantity" if draw(st.booleans()) else "unit_price_minor"] = big
        event["total_minor"] = sum(li["quantity"] * li["unit_price_minor"] for li in event["lines"])
    else:
        event["note"] = "card " + draw(
            st.sampled_from(["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"])
        )
    return event


@st.composite
def wire_bytes(draw: st.DrawFn, event: dict[str, Any]) -> bytes:
    """The event as bytes, spelled plainly, with `\\u` escapes, with duplicate keys, padded."""
    rng = draw(st.randoms(use_true_random=False))
    style = draw(st.integers(0, 5))
    if style == 0:
        return json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    if style in (1, 2):
        return spell(event, rng, 0.3 if style == 1 else 0.02).encode("utf-8", "surrogatepass")
    text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    if style == 3:  # a key twice: the last one counts, in both
        field = draw(st.sampled_from(FIELDS))
        return (text[:-1] + f',"{field}":{json.dumps(draw(json_values))}}}').encode()
    if style == 4:  # whitespace up to and beyond the size cap
        pad = draw(
            st.sampled_from(
                [0, MAX_EVENT_BYTES - len(text.encode()), MAX_EVENT_BYTES - len(text.encode()) + 1]
            )
        )
        return (" " * max(pad, 0) + text).encode()
    cut = draw(st.integers(0, len(text)))  # truncated, or with a stray byte
    return text[:cut].encode() + draw(st.sampled_from([b"", b"}", b"\xff", b"\\ud800", b"\x00"]))


_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@_SETTINGS
@given(st.data())
def test_valid_events_read_the_same(data: st.DataObject) -> None:
    event = data.draw(events())
    assert_same(data.draw(wire_bytes(event)))


@_SETTINGS
@given(st.data())
def test_mutated_events_get_the_same_verdict(data: st.DataObject) -> None:
    event = data.draw(mutated(data.draw(events())))
    assert_same(data.draw(wire_bytes(event)))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_get_the_same_verdict(raw: bytes) -> None:
    assert_same(raw)


# --- the corpora ----------------------------------------------------------------------------------


def _parametrized(test: Any, argument: str) -> Iterator[Any]:
    """The values a test of the suite is parametrized with (its refusal corpus)."""
    for mark in test.pytestmark:
        if mark.name == "parametrize":
            names = (
                [name.strip() for name in mark.args[0].split(",")]
                if isinstance(mark.args[0], str)
                else list(mark.args[0])
            )
            for case in mark.args[1]:
                values = case.values if hasattr(case, "values") else (case if len(names) > 1 else (case,))
                yield dict(zip(names, values, strict=True))[argument]


def refusal_corpus() -> Iterator[bytes]:
    yield from (
        test_contract.encode(event)
        for event in _parametrized(test_contract.test_every_refusal_names_its_reason, "event")
    )
    yield from _parametrized(test_contract.test_bytes_that_are_not_an_event, "raw")
    for identifier in _parametrized(
        test_contract.test_a_digit_run_inside_an_identifier_is_no_card_number, "identifier"
    ):
        yield test_contract.encode(valid_event(order_id=identifier))
    yield from (payload for payload, _ in test_producer_rejections.REFUSED)


def test_the_screen_names_what_it_found_over_the_whole_aggregate() -> None:
    clean = [test_contract.encode(valid_event(event_id=f"evt-{i}")) for i in range(20)]
    assert screen(clean) is Screened.PLAIN
    assert screen(
        [*clean, test_contract.encode(valid_event(occurred_at="2026-11-23T10:15:00.1234567Z"))]
    ) is (Screened.SIZE_AND_CARDS)
    assert screen([*clean, b'{"sku": "caf\\u00e9"}']) is Screened.SIZE_AND_CARDS
    assert screen([*clean, b'{"note": "4111 1111 1111 1111"}']) is Screened.NONE
    assert screen([*clean, b"{" + b" " * MAX_EVENT_BYTES + b"}"]) is Screened.NONE


def test_deep_nesting_gets_the_same_verdict() -> None:
    # within the size cap: msgspec raises RecursionError, pydantic's parser refuses it as not JSON
    for opening in (b"[", b'{"a":'):
        assert_same(b'{"event_id": "evt-nested", "x": ' + opening * (MAX_EVENT_BYTES // len(opening) - 40))
        assert_same(b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}")


def test_the_suites_refusal_corpus_gets_the_same_verdict() -> None:
    corpus = list(refusal_corpus())
    assert len(corpus) > 40
    verdicts = [assert_same(raw) for raw in corpus]
    assert sum(verdict[0] == "refused" for verdict in verdicts) >= 35


def test_the_card_corpus_gets_the_same_verdict() -> None:
    refused = 0
    for _, _, fragment in card_corpus.cards(seed=5, per_range=1):
        assert_same(fragment)
        merged = valid_event()
        try:
            merged.update(json.loads(fragment))
        except (ValueError, TypeError):
            continue  # not a JSON object: already compared as it is
        verdict = assert_same(json.dumps(merged).encode())
        refused += verdict[0] == "refused"
    assert refused > 100


def test_realistic_identifiers_get_the_same_verdict() -> None:
    accepted = 0
    for _, fragment in card_corpus.realistic(seed=3, count=400):
        merged = valid_event()
        ((field, value),) = json.loads(fragment).items()
        if field == "sku":
            merged["lines"][0]["sku"] = value  # a product code sits in a line
        else:
            merged[field] = value
        verdict = assert_same(json.dumps(merged).encode())
        accepted += verdict[0] == "accepted"
    assert accepted > 250  # skus, event and order ids, timestamps are accepted; unknown fields are not


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-11-23T23:59:59.9999999+01:00",  # msgspec would round into the next day
        "2026-11-23T10:15:00.1234567Z",
        "2026-11-23T10:15:00\\u002e1234567Z",
        "2026-11-23T10:15:00,5Z",
        "2026-11-23T10:15Z",
        "2026-11-23T10:15:60Z",
        "2026-11-23t10:15:00z",
    ],
)
def test_timestamps_msgspec_reads_otherwise_get_the_contracts_verdict(occurred_at: str) -> None:
    raw = test_contract.encode(valid_event()).replace(b"2026-11-23T10:15:00+01:00", occurred_at.encode())
    assert_same(raw)
