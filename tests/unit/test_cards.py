from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salesstream.core.cards import contains_card_number, luhn_valid, redact_card_numbers

# Well-known test numbers of the card schemes (not real accounts).
TEST_CARDS = [
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "6011111111111117",
    "4012888888881881",
    "3530111333300000",
    "4222222222222",
]


@pytest.mark.parametrize("card", TEST_CARDS)
def test_test_card_numbers_are_found(card: str) -> None:
    assert luhn_valid(card.encode())
    assert contains_card_number(f'{{"note": "{card}"}}'.encode())


@pytest.mark.parametrize("spelling", ["4111 1111 1111 1111", "4111-1111-1111-1111"])
def test_grouped_card_numbers_are_found(spelling: str) -> None:
    assert contains_card_number(spelling.encode())


def test_card_number_hidden_behind_json_unicode_escapes() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in "4111111111111111")
    assert contains_card_number(f'{{"note": "{escaped}"}}'.encode())


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn-invalid
        "411111111111",  # 12 digits: too short
        "41111111111111111111",  # 20 digits: a longer run is not a card number
        '"total_minor": 999999999999',  # the largest amount has 12 digits
        "2026-11-23T10:15:00+01:00",
        "evt-01JD0000000000000000000001",
    ],
)
def test_things_that_are_not_card_numbers(text: str) -> None:
    assert not contains_card_number(text.encode())


def test_redaction_masks_only_the_number() -> None:
    redacted = redact_card_numbers(b'{"note": "card 4111 1111 1111 1111 ok"}')
    assert redacted == b'{"note": "card ################### ok"}'
    assert not contains_card_number(redacted)


@given(st.sampled_from(TEST_CARDS), st.text(max_size=30), st.text(max_size=30))
def test_redacted_bytes_never_hold_a_card_number(card: str, before: str, after: str) -> None:
    # words of letters on either side: a mixed letter+digit neighbour would make it an IBAN-like id
    raw = f"{before} card {card} ok {after}".encode()
    assert contains_card_number(raw)
    assert not contains_card_number(redact_card_numbers(raw))
