"""The card-number detector's corpus, deterministic from a seed.

- `realistic(seed, count)`: identifiers a retailer really has, each as the JSON field it sits in
  (a GTIN in `sku`, a UUID in `event_id`, a receipt number in `order_id`, ...), by category. Not
  one of them is a card number: every hit is a false positive.
- `cards(seed)`: card numbers of every brand, IIN range and length, in every layout people type,
  bare, in text, in JSON fields and keys, as JSON numbers and `\\u`-escaped. Every miss is a
  false negative.

Used by tests/unit/test_card_corpus.py and load_tests/bench_cards.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Final

from producer import identifiers as ids

# (category, JSON field, generator)
CATEGORIES: Final[tuple[tuple[str, str, Callable[[random.Random], str]], ...]] = (
    ("ean13", "sku", ids.ean13),
    ("upc_a", "sku", ids.upc_a),
    ("ean8", "sku", ids.ean8),
    ("gtin14", "sku", ids.gtin14),
    ("uuid4", "event_id", ids.uuid4),
    ("uuid7", "event_id", ids.uuid7),
    ("ulid", "event_id", ids.ulid),
    ("hex_id", "order_id", ids.hex_id),
    ("receipt_number", "order_id", ids.receipt_number),
    ("loyalty_number", "loyalty_id", ids.loyalty_number),
    ("phone_number", "phone", ids.phone_number),
    ("iban", "iban", ids.iban),
    ("iso_timestamp", "occurred_at", ids.iso_timestamp),
)

# (brand, IIN ranges as (first, last) prefixes of equal length, lengths), as the schemes publish them
BRANDS: Final[tuple[tuple[str, tuple[tuple[int, int], ...], tuple[int, ...]], ...]] = (
    ("visa", ((4, 4),), (13, 16, 19)),
    ("mastercard", ((51, 55), (2221, 2720)), (16,)),
    ("amex", ((34, 34), (37, 37)), (15,)),
    ("discover", ((6011, 6011), (644, 649), (65, 65), (622126, 622925)), (16, 17, 18, 19)),
    ("jcb", ((3528, 3589),), (16, 17, 18, 19)),
    ("diners", ((300, 305), (3095, 3095), (36, 36)), (14, 15, 16, 17, 18, 19)),
    ("diners-us", ((38, 39),), (16, 17, 18, 19)),
    ("unionpay", ((62, 62), (81, 81)), (16, 17, 18, 19)),
    ("maestro", tuple((p, p) for p in (5018, 5020, 5038, 5893, 6304, 6759, 676)), tuple(range(13, 20))),
    ("mir", ((2200, 2204),), (16, 17, 18, 19)),
)  # fmt: skip
# The groupings people type, by length (contiguous always applies)
GROUPINGS: Final[dict[int, tuple[tuple[int, ...], ...]]] = {
    13: ((4, 4, 5),),
    14: ((4, 6, 4),),
    15: ((4, 6, 5),),
    16: ((4, 4, 4, 4),),
    17: ((4, 4, 4, 4, 1),),
    18: ((4, 4, 4, 4, 2),),
    19: ((4, 4, 4, 4, 3),),
}
EMBEDDINGS: Final = ("bare", "text", "json_note", "json_id", "json_key", "json_number", "escaped", "basket")


def realistic(seed: int, count: int) -> Iterator[tuple[str, bytes]]:
    """`count` (category, JSON fragment) pairs, the categories in turn."""
    rng = random.Random(seed)
    for number in range(count):
        category, field, make = CATEGORIES[number % len(CATEGORIES)]
        yield category, json.dumps({field: make(rng)}).encode()


def luhn_check_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str(-total % 10)


def card_number(rng: random.Random, first: int, last: int, length: int) -> str:
    prefix = str(rng.randint(first, last))
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_check_digit(body)


def layouts(number: str) -> Iterator[str]:
    """The number as people type it: contiguous, then each grouping with spaces and with dashes."""
    yield number
    for grouping in GROUPINGS[len(number)]:
        groups, start = [], 0
        for width in grouping:
            groups.append(number[start : start + width])
            start += width
        yield " ".join(groups)
        yield "-".join(groups)


def embed(typed: str, how: str) -> bytes:
    if how == "bare":
        return typed.encode()
    if how == "text":
        return f"paid with card {typed}, thanks".encode()
    if how == "json_note":
        return json.dumps({"note": f"card: {typed}"}).encode()
    if how == "json_id":
        return json.dumps({"order_id": typed, "store_id": "store-1"}).encode()
    if how == "json_key":
        return json.dumps({typed: 1}).encode()
    if how == "json_number":
        return b'{"ref": ' + typed.replace(" ", "").replace("-", "").encode() + b"}"
    if how == "escaped":
        return ('{"note": "' + "".join(f"\\u{ord(char):04x}" for char in typed) + '"}').encode()
    if how == "basket":
        lines = [
            {"sku": ids.ean13(random.Random(typed)), "quantity": 1},
            {"sku": "SKU " + typed, "quantity": 2},
        ]
        return json.dumps({"event_id": "evt-1", "lines": lines}).encode()
    raise ValueError(f"unknown embedding {how!r}")


def cards(seed: int, per_range: int = 3) -> Iterator[tuple[str, str, bytes]]:
    """(brand, the card's digits, the bytes it sits in): every brand, IIN range, length, layout
    and embedding, `per_range` numbers of each range and length."""
    rng = random.Random(seed)
    for brand, ranges, lengths in BRANDS:
        for first, last in ranges:
            for length in lengths:
                for _ in range(per_range):
                    number = card_number(rng, first, last, length)
                    for typed in layouts(number):
                        for how in EMBEDDINGS:
                            yield brand, number, embed(typed, how)
