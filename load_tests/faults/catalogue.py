"""Bad input of every kind in docs/reliability.md (B1-B3, B5, B7), made from a good event, with the
reason code the consumer must quarantine it with.

    bad = CATALOGUE["negative_price"]
    data = bad.make(good_event_bytes)     # what goes into the stream, past the producer
    bad.reason                            # Reason.NEGATIVE_PRICE

`whole_record` kinds are Kinesis records the consumer refuses as a whole (a corrupt KPL
aggregate or compressed envelope, a decompression bomb: quarantined at sub-sequence "record");
the others are refused as one user record.
A conflicting duplicate (B5) is `conflicting_copy(good_event_bytes)`: the same event id, another
amount, otherwise valid; the copy sent second is quarantined as `duplicate_conflict`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from salesstream.core.kpl import MAGIC, MAX_INFLATED_BYTES, aggregate, compress
from salesstream.core.reasons import Reason

# Well-known test card numbers (Luhn-valid, issued to no one), spelt as tills print them.
TEST_CARD_NUMBERS: Final = (
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "340000000000009",
    "6011000000000004",
)
HUGE_LINES: Final = 10_000
_ENVELOPE_LEVEL: Final = 9  # any level reads the same; 9 makes the smallest bomb


@dataclass(frozen=True)
class BadInput:
    kind: str
    reason: Reason
    make: Callable[[bytes], bytes]
    whole_record: bool = False


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def make(raw: bytes) -> bytes:
        event = json.loads(raw)
        change(event)
        return json.dumps(event, separators=(",", ":")).encode()

    return make


def _one_line(quantity: Any, price: Any, total: Any) -> Callable[[dict[str, Any]], None]:
    def change(event: dict[str, Any]) -> None:
        event["lines"] = [{"sku": event["lines"][0]["sku"], "quantity": quantity, "unit_price_minor": price}]
        event["total_minor"] = total

    return change


def _bad_utf8(raw: bytes) -> bytes:
    head, marker, tail = raw.partition(b'"store_id":"')
    return head + marker + b"\xff\xfe" + tail


def _bad_checksum(raw: bytes) -> bytes:
    data = bytearray(aggregate([(str(json.loads(raw)["store_id"]), raw)]))
    data[-1] ^= 0x01  # one bit of the MD5 trailer
    return bytes(data)


def _broken_aggregate(raw: bytes) -> bytes:
    body = b"\x1a\xff\xff\xff\x0f" + raw[:8]  # a length-delimited field that runs past the end
    return MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum, made valid


def _corrupt_envelope(raw: bytes) -> bytes:
    """A compressed aggregate with one byte of its CRC-32 flipped (the inflated bytes are fine)."""
    data = bytearray(compress(aggregate([(str(json.loads(raw)["store_id"]), raw)]), _ENVELOPE_LEVEL))
    data[-8] ^= 0x01  # the trailer is CRC-32 then length, 4 bytes each
    return bytes(data)


def _compression_bomb(raw: bytes) -> bytes:
    """A ~2 KB envelope that inflates past the consumers' bound: the event, then 2 MiB of spaces
    in a valid aggregate (whitespace is valid JSON, so only the bound can refuse it)."""
    padded = raw + b" " * (2 * MAX_INFLATED_BYTES)
    return compress(aggregate([(str(json.loads(raw)["store_id"]), padded)]), _ENVELOPE_LEVEL)


def _huge(event: dict[str, Any]) -> None:
    event["lines"] = [{"sku": f"S{n}", "quantity": 1, "unit_price_minor": 1} for n in range(HUGE_LINES)]
    event["total_minor"] = HUGE_LINES


def _with_card(raw: bytes) -> bytes:
    event = json.loads(raw)
    number = int(hashlib.blake2b(raw, digest_size=2).hexdigest(), 16) % len(TEST_CARD_NUMBERS)
    event["note"] = f"paid with {TEST_CARD_NUMBERS[number]}"
    return json.dumps(event, separators=(",", ":")).encode()


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: event.pop(name)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda event: event.__setitem__(name, value)


def _one_unit_off(event: dict[str, Any]) -> None:
    event["total_minor"] += 1


_KINDS: Final = (
    # B1: not an event at all
    BadInput("not_json", Reason.NOT_JSON, lambda raw: b"till 7 says: " + raw[:20].replace(b"{", b"(")),
    BadInput("truncated", Reason.NOT_JSON, lambda raw: raw[: len(raw) // 2]),
    BadInput("bad_utf8", Reason.BAD_UTF8, _bad_utf8),
    BadInput("not_an_object", Reason.NOT_AN_OBJECT, lambda raw: b"[" + raw + b"]"),
    BadInput("bad_aggregate_checksum", Reason.BAD_AGGREGATE_CHECKSUM, _bad_checksum, whole_record=True),
    BadInput("broken_aggregate", Reason.BROKEN_AGGREGATE, _broken_aggregate, whole_record=True),
    BadInput("corrupt_envelope", Reason.CORRUPT_ENVELOPE, _corrupt_envelope, whole_record=True),
    BadInput("compression_bomb", Reason.ENVELOPE_OVERSIZE, _compression_bomb, whole_record=True),
    # B2: schema and business rules
    BadInput("missing_field", Reason.MISSING_FIELD, _edit(_drop("currency"))),
    BadInput("non_positive_quantity", Reason.NON_POSITIVE_QUANTITY, _edit(_one_line(0, 100, 0))),
    BadInput("negative_price", Reason.NEGATIVE_PRICE, _edit(_one_line(1, -5, -5))),
    BadInput("nan_price", Reason.WRONG_TYPE, _edit(_one_line(1, float("nan"), 1))),
    BadInput("unknown_currency", Reason.UNKNOWN_CURRENCY, _edit(_set("currency", "XXX"))),
    BadInput(
        "wrong_type",
        Reason.WRONG_TYPE,
        _edit(lambda event: event.__setitem__("total_minor", str(event["total_minor"]))),
    ),
    BadInput("unknown_field", Reason.UNKNOWN_FIELD, _edit(_set("coupon", "SAVE10"))),
    BadInput("bad_event_type", Reason.BAD_EVENT_TYPE, _edit(_set("event_type", "order_exploded"))),
    BadInput("bad_timestamp", Reason.BAD_TIMESTAMP, _edit(_set("occurred_at", "2026-11-23T10:15:00"))),
    BadInput("total_mismatch", Reason.TOTAL_MISMATCH, _edit(_one_unit_off)),
    # B3: huge but well-formed, refused by the size cap before a full parse
    BadInput("oversize", Reason.OVERSIZE, _edit(_huge)),
    # B7: a card number put straight into the stream
    BadInput("card_number", Reason.CARD_NUMBER, _with_card),
)
CATALOGUE: Final[dict[str, BadInput]] = {bad.kind: bad for bad in _KINDS}
KINDS: Final = tuple(CATALOGUE)


def kind_for(number: int) -> BadInput:
    """The n-th malformed record of a run (0-based): every kind in turn."""
    return _KINDS[number % len(_KINDS)]


def conflicting_copy(raw: bytes) -> bytes:
    """The same event id with another amount (a line's price one unit up, the total with it):
    valid on its own, a conflict against the original (B5)."""
    event = json.loads(raw)
    line = event["lines"][0]
    line["unit_price_minor"] += 1
    event["total_minor"] += line["quantity"]
    return json.dumps(event, separators=(",", ":")).encode()
