"""Identifiers a real retailer has, generated from a seeded `random.Random`: GTIN barcodes
(EAN-13, UPC-A, EAN-8, GTIN-14) across GS1 prefixes, UUID v4 and v7, ULIDs, hex ids,
store-prefixed receipt numbers, loyalty numbers, phone numbers, IBANs and ISO timestamps.

The simulator's "realistic" ids use them (UUID v4 event ids, store-prefixed hex order ids,
EAN-13 SKUs), and the card-number corpus (load_tests/card_corpus.py) measures the card
detector's false positives on them. Every generator is deterministic for the same generator state.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

# GS1 company prefixes by country (first three digits of an EAN-13): US/CA, FR, DE, JP, UK, CN,
# CH, IT, ES, NL, IN, AU, and the restricted/in-store ranges 020-029 and 200-299.
GS1_PREFIXES: Final = (
    *range(0, 140),
    *range(200, 300),
    *range(300, 380),
    *range(400, 441),
    *range(450, 460),
    *range(490, 500),
    *range(500, 510),
    *range(690, 700),
    *range(760, 770),
    *range(800, 840),
    *range(840, 850),
    *range(870, 880),
    890,
    *range(930, 940),
)
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
_YEAR_MS: Final = 365 * 86_400_000


def gtin_check_digit(body: str) -> str:
    """The GS1 check digit of `body` (weights 3 and 1 from the right)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return str(-total % 10)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def ean13(rng: random.Random) -> str:
    body = f"{rng.choice(GS1_PREFIXES):03d}{_digits(rng, 9)}"
    return body + gtin_check_digit(body)


def upc_a(rng: random.Random) -> str:
    body = f"{rng.choice((0, 1, 6, 7, 8))}{_digits(rng, 10)}"
    return body + gtin_check_digit(body)


def ean8(rng: random.Random) -> str:
    body = f"{rng.choice(GS1_PREFIXES):03d}{_digits(rng, 4)}"
    return body + gtin_check_digit(body)


def gtin14(rng: random.Random) -> str:
    """A case or pallet code: an indicator digit 1-8 before an EAN-13's first 12 digits."""
    body = f"{rng.randint(1, 8)}{ean13(rng)[:12]}"
    return body + gtin_check_digit(body)


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _millis(rng: random.Random) -> int:
    return int(_EPOCH.timestamp() * 1000) + rng.randrange(_YEAR_MS)


def uuid7(rng: random.Random) -> str:
    """RFC 9562 version 7: 48-bit Unix milliseconds, then random bits."""
    value = (_millis(rng) << 80) | rng.getrandbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    return str(uuid.UUID(int=value))


def ulid(rng: random.Random) -> str:
    value = (_millis(rng) << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 0x1F] for shift in range(125, -1, -5))


def hex_id(rng: random.Random, length: int | None = None) -> str:
    width = length or rng.choice((8, 12, 16, 24, 32, 40))
    return f"{rng.getrandbits(width * 4):0{width}x}"


def receipt_number(rng: random.Random, store: int | None = None) -> str:
    """Store-prefixed receipt numbers as POS systems print them: `S038-2880162690`,
    `S038-00417-0023`, `038-2026-000123456`."""
    store = rng.randrange(1000) if store is None else store
    style = rng.randrange(3)
    if style == 0:
        return f"S{store:03d}-{_digits(rng, 10)}"
    if style == 1:
        return f"S{store:03d}-{rng.randrange(100_000):05d}-{rng.randrange(10_000):04d}"
    return f"{store:03d}-{rng.randint(2020, 2027)}-{_digits(rng, 9)}"


def store_hex_order_id(rng: random.Random, store: int) -> str:
    """An order id of a store: its prefix and a hex serial, `S038-9f2c41d07a`."""
    return f"S{store:03d}-{hex_id(rng, 10)}"


def loyalty_number(rng: random.Random) -> str:
    """Loyalty cards: a programme prefix and the member number (`308342` + 10 digits, as a
    German multi-partner programme; `9` + 12 digits, ISO 7812's private range; `LY` + digits)."""
    style = rng.randrange(3)
    if style == 0:
        return "308342" + _digits(rng, 10)
    if style == 1:
        return "9" + _digits(rng, 12)
    return "LY" + _digits(rng, 10)


_PHONE_PLANS: Final = (("49", "15", 10), ("44", "7", 9), ("33", "6", 8), ("1", "415", 7), ("81", "90", 8))


def phone_number(rng: random.Random) -> str:
    """E.164 (`+4915112345678`, `+49 151 12345678`) and national (`0151 12345678`,
    `(415) 555-0123`) spellings."""
    country, prefix, rest = rng.choice(_PHONE_PLANS)
    subscriber = prefix + _digits(rng, rest)
    style = rng.randrange(4)
    if style == 0:
        return f"+{country}{subscriber}"
    if style == 1:
        return f"+{country} {subscriber[:3]} {subscriber[3:]}"
    if country == "1":
        return f"({subscriber[:3]}) {subscriber[3:6]}-{subscriber[6:]}"
    return f"0{subscriber[:3]} {subscriber[3:]}"


# (country, bank code letters, digits of the rest of the BBAN)
_IBAN_PLANS: Final = (
    ("DE", 0, 18),
    ("FR", 0, 23),
    ("GB", 4, 14),
    ("NL", 4, 10),
    ("AT", 0, 16),
    ("IT", 1, 22),
)


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(char, 36)) for char in rearranged))
    return f"{98 - number % 97:02d}"


def iban(rng: random.Random, spaced: bool | None = None) -> str:
    """An IBAN with valid check digits, printed in groups of four or not."""
    country, letters, digits = rng.choice(_IBAN_PLANS)
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(letters)) + _digits(rng, digits)
    code = country + _iban_check(country, bban) + bban
    if spaced if spaced is not None else rng.random() < 0.5:
        return " ".join(code[start : start + 4] for start in range(0, len(code), 4))
    return code


def iso_timestamp(rng: random.Random) -> str:
    moment = _EPOCH + timedelta(milliseconds=rng.randrange(_YEAR_MS))
    offset = timezone(timedelta(hours=rng.choice((-8, -5, 0, 1, 2, 9))))
    style = rng.randrange(3)
    if style == 0:
        return moment.astimezone(offset).isoformat(timespec="seconds")
    if style == 1:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y%m%dT%H%M%SZ")
