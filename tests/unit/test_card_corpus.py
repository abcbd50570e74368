"""The card detector against its corpus: every card number found (every brand, length, layout,
embedding), no realistic identifier refused, and no valid GTIN in `sku` ever taken for a card."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from load_tests import card_corpus
from producer import identifiers
from salesstream.core.cards import (
    brand_of,
    card_number_field,
    contains_card_number,
    gtin_valid,
    may_hold_card_number,
    redact_card_numbers,
    redact_framed,
)

CORPUS = list(card_corpus.cards(seed=20261203))


def test_the_corpus_covers_every_brand_length_layout_and_embedding() -> None:
    brands = {brand for brand, _, _ in CORPUS}
    assert brands == {brand for brand, _, _ in card_corpus.BRANDS}
    assert {len(number) for _, number, _ in CORPUS} == set(range(13, 20))
    assert len(CORPUS) > 5_000


def test_no_card_number_of_the_corpus_is_missed_and_each_is_masked() -> None:
    missed = [raw for _, _, raw in CORPUS if not contains_card_number(raw)]
    assert missed == []
    unmasked = [raw for _, number, raw in CORPUS if number.encode() in redact_card_numbers(raw)]
    assert unmasked == []
    assert not any(contains_card_number(redact_card_numbers(raw)) for _, _, raw in CORPUS)


def test_the_conservative_scan_flags_every_card_of_the_corpus() -> None:
    assert [raw for _, _, raw in CORPUS if not may_hold_card_number(raw)] == []


def test_every_card_number_of_the_corpus_has_a_brand() -> None:
    assert all(brand_of(number.encode()) is not None for _, number, _ in CORPUS)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        (b"4111111111111111", "visa"),
        (b"2221000000000009", "mastercard"),
        (b"378282246310005", "amex"),
        (b"6011000990139424", "discover"),
        (b"3530111333300000", "jcb"),
        (b"30569309025904", "diners"),
        (b"6200000000000005", "unionpay"),
        (b"6759649826438453", "maestro"),
        (b"2200000000000004", "mir"),
        (b"9111111111111111", None),
        (b"2721000000000006", None),  # just past the 2-series
        (b"222100000000000", None),  # a Mastercard prefix, 15 digits
    ],
)
def test_brands_by_iin_range(number: bytes, brand: str | None) -> None:
    assert brand_of(number) == brand


def test_no_realistic_identifier_is_refused() -> None:
    refused = [
        (category, raw)
        for category, raw in card_corpus.realistic(seed=7, count=60_000)
        if contains_card_number(raw)
    ]
    assert refused == []


GTIN_MAKERS = [identifiers.ean13, identifiers.upc_a, identifiers.ean8, identifiers.gtin14]


@given(st.sampled_from(GTIN_MAKERS), st.integers(0, 2**32))
def test_a_valid_gtin_in_sku_is_never_a_card(make: object, seed: int) -> None:
    sku = make(random.Random(seed))  # type: ignore[operator]
    assert gtin_valid(sku.encode())
    basket = {"lines": [{"sku": sku, "quantity": 1, "unit_price_minor": 199}] * 3}
    assert not contains_card_number(json.dumps(basket).encode())
    assert not contains_card_number(json.dumps(basket, separators=(",", ":")).encode())


@given(st.text("0123456789", min_size=12, max_size=13))
def test_any_gtin_13_or_14_with_its_check_digit_is_a_product_code_in_sku(body: str) -> None:
    sku = body + identifiers.gtin_check_digit(body)
    assert not contains_card_number(f'{{"sku": "{sku}", "quantity": 1}}'.encode())


def test_the_gtin_rule_holds_only_for_a_whole_sku_value_with_a_valid_check_digit() -> None:
    gtin_and_card = "4006381333924"  # a valid EAN-13 that also passes Luhn as a 13-digit Visa
    assert not contains_card_number(f'{{"sku":"{gtin_and_card}"}}'.encode())
    assert contains_card_number(f'{{"note":"{gtin_and_card}"}}'.encode())  # another field
    assert contains_card_number(f'{{"sku":"SKU {gtin_and_card}"}}'.encode())  # not the whole value
    assert contains_card_number(b'{"sku":"4111111111111111"}')  # 16 digits: no GTIN length


@pytest.mark.parametrize(
    "text",
    [
        b"S038-2880162690",  # store-prefixed receipt number
        b'{"order_id":"S038-2880162690"}',
        b"9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
        b"c0a8e1f2-4221-1769-3224-0b5e6932240d",  # a UUID of digit groups
        b"a0342-2117-6932240b",  # "42-2117-6932240" inside a hex token
        b"x42-2117-6932240",
        b"+4915112345678",  # E.164
        b"DE89 3704 0044 0532 0130 00",
        b"DE89370400440532013000",
        b"GB29 NWBK 6016 1331 9268 19",
        b"NL91 ABNA 4111 1111 1111 1111",  # card-shaped digits in an IBAN's body
        b"ORD-4111111111111111",  # dash-joined to letters
        b"4111111111111111-ab12",
        b"41111111111111111111",  # 20 digits
        b"4111 1111 1111 1112",  # Luhn-invalid
        b"9111111111111111",  # no brand starts with 9
        b"4111 11111111 1111",  # not a layout people type
        b"4111 1111-1111 1111",  # mixed separators
    ],
)
def test_identifiers_that_are_not_card_numbers(text: bytes) -> None:
    assert not contains_card_number(text)
    assert redact_card_numbers(text) == text


@pytest.mark.parametrize(
    "text",
    [
        b"4111 1111 1111 1111 exp 12/26",
        b"card 4111 1111 1111 1111 12 26",  # the group after is not part of the layout
        b'{"note":"line one\\n4111111111111111"}',  # a JSON escape before it is no glue
        b"[4111111111111111]",
        b"card:4111111111111111",
        b"3782 822463 10005",  # Amex 4-6-5
        b"3056 930902 5904",  # Diners 4-6-4
        b"6011-0009-9013-9424",
        b"2221 0000 0000 0009",  # Mastercard 2-series
        b"4222 2222 22222",  # Visa 13 as 4-4-5
        b"6759 6498 2643 8453 123",  # Maestro 19 as 4-4-4-4-3
        b"2200 0000 0000 0004",  # Mir
    ],
)
def test_card_numbers_as_people_type_them(text: bytes) -> None:
    assert contains_card_number(text), text
    redacted = redact_card_numbers(text)
    assert b"#" * 13 in redacted.replace(b" ", b"#").replace(b"-", b"#")
    assert not contains_card_number(redacted)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"order_id":"4111111111111111"}', "order_id"),
        (b'{"lines":[{"sku":"a"},{"sku":"b"},{"sku":"4111 1111 1111 1111"}]}', "lines[2].sku"),
        (b'{"coupon":{"code":"5555555555554444"}}', "coupon.code"),
        (b'{"4111111111111111":1}', "(key)"),
        (b'{"ref":4111111111111111}', "ref"),
        (b'{"note":"\\u0034111111111111111"}', "note"),
        (b"paid with 4111111111111111", "(payload)"),
        (b"4111111111111111", "(payload)"),
    ],
)
def test_the_field_holding_the_number_is_named_never_the_value(raw: bytes, field: str) -> None:
    assert contains_card_number(raw)
    assert card_number_field(raw) == field


@given(
    st.sampled_from([number for _, number, _ in CORPUS[::40]]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
def test_a_card_between_words_is_found_and_masked_whatever_text_surrounds_it(
    number: str, before: str, after: str
) -> None:
    raw = f"{before} paid {number} thanks {after}".encode()
    assert contains_card_number(raw)
    assert number.encode() not in redact_card_numbers(raw)
    assert not contains_card_number(redact_card_numbers(raw))


def test_the_conservative_scan_finds_a_card_glued_to_framing_bytes() -> None:
    assert may_hold_card_number(b"\x1a\x344111111111111111\x1a")  # a length byte of '4'
    assert may_hold_card_number(b"\x1aA4111111111111111\x8b7")  # 'A', then an MD5 digit
    assert not contains_card_number(b"\x1aA4111111111111111")
    assert not may_hold_card_number(b'{"sku":"S038-28801","quantity":2}')


def test_a_joined_scan_gives_the_verdict_of_its_payloads() -> None:
    # the GTIN rule never reaches across the newline between two payloads
    gtin_and_card = b"4006381333924"
    first, second = b'{"sku":', b'"' + gtin_and_card + b'"}'
    assert contains_card_number(second)
    assert contains_card_number(b"\n".join([first, second]))
    payloads = [raw for _, raw in card_corpus.realistic(seed=3, count=2_000)]
    assert not contains_card_number(b"\n".join(payloads))
    with_card = [*payloads[:700], b'{"note":"4111 1111 1111 1111"}', *payloads[700:]]
    assert contains_card_number(b"\n".join(with_card))


def test_broken_framing_is_masked_by_the_conservative_scan() -> None:
    framed = b"\x0a\x07store-1\x1aA4111111111111111\x1a\x344000000000000002\x8b"
    masked = redact_framed(framed)
    assert b"4111111111111111" not in masked
    assert b"4000000000000002" not in masked
    assert len(masked) == len(framed)
    assert b"store-1" in masked


def test_a_huge_digit_stretch_costs_the_conservative_scan_no_window_search() -> None:
    blob = b"\x1a" + b"1234567890" * 100_000 + b"\x1a"
    assert may_hold_card_number(blob)  # flagged at once: each payload is then examined exactly
    assert not contains_card_number(blob)  # one 1,000,000-digit run: no card length
    assert set(redact_framed(blob)[1:-1]) == {ord("#")}


_PIECES = st.one_of(
    st.sampled_from([number for _, number, _ in CORPUS[::97]]),
    st.sampled_from(["4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "4222 2222 22222"]),
    st.text('0123456789 -+abcXY\\n":u', max_size=8),
)


@given(st.lists(_PIECES, max_size=6))
def test_redaction_masks_exactly_what_the_scan_finds(pieces: list[str]) -> None:
    raw = "".join(pieces).encode()
    redacted = redact_card_numbers(raw)
    assert not contains_card_number(redacted)
    assert (redacted == raw) is not contains_card_number(raw)
