"""The contract compiled for the hot paths: msgspec `Struct`s checked against `contract.py`.

`contract.OrderEvent` (pydantic) is the one definition of the order event. This module is the
same contract as a msgspec decoder, ~4x cheaper per event, for the paths that validate every
event (the aggregator's decode, the producer's encode). It decides only acceptance: whatever
it does not accept outright goes through the contract's own validator, which names the refusal
(reason code, field, detail) or, for the rare spelling only pydantic takes, accepts it. So a
refusal is the contract's by construction, and the one thing this module must get right is
never to accept what the contract refuses, with the values the contract would read:
`tests/unit/test_wire_differential.py` holds that on every input.

Where msgspec alone would be more lenient than pydantic, the fast path sends the payload to
the contract instead:

- patterns: the event's own identifiers (event and order id) are checked here with one
  `re.fullmatch` over the two joined by '/' (which neither may hold); a store's and a terminal's
  identifiers, which every event of theirs repeats, once per process (`_KNOWN_PLACES`); a sku
  can only hold a control character through a JSON escape or a raw DEL byte, so skus are
  checked only then;
- `occurred_at` with more than 6 fractional digits: msgspec rounds them, pydantic truncates
  (23:59:59.9999999 would change the business day);
- the total: the sum of the lines, as the contract's model validator says.

No pydantic is imported here: the contract is imported on the first refusal only, so a handler
that uses this module starts without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from salesstream.core.cards import contains_card_number
from salesstream.core.currencies import CURRENCIES
from salesstream.core.limits import (
    ID_PATTERN,
    MAX_EVENT_BYTES,
    MAX_IDENTIFIER_CHARS,
    MAX_LINES,
    MAX_QUANTITY,
    MAX_SKU_CHARS,
    MAX_TOTAL_MINOR,
    MAX_UNIT_PRICE_MINOR,
    SKU_PATTERN,
)

if TYPE_CHECKING:
    Currency = str
    EventTypeValue = str
else:
    Currency = Literal[tuple(sorted(CURRENCIES))]
    EventTypeValue = Literal["order_placed", "order_refunded"]

_Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
_Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SKU_CHARS)]

REFUND: Final = "order_refunded"


# gc=False: neither struct can be part of a reference cycle (strings, numbers, a datetime and a
# tuple of lines), so the collector need not track the ~2.6 of them made per event
class WireLine(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    sku: _Sku
    quantity: Annotated[int, msgspec.Meta(gt=0, le=MAX_QUANTITY)]
    unit_price_minor: Annotated[int, msgspec.Meta(ge=0, le=MAX_UNIT_PRICE_MINOR)]


class WireEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A validated order event as the hot paths read it: the contract's fields, `occurred_at`
    an aware datetime, `event_type` the string value. `event["store_id"]` reads like the dict
    `contract.validate_wire` returns."""

    schema_version: Literal[1]
    event_id: _Identifier
    event_type: EventTypeValue
    order_id: _Identifier
    store_id: _Identifier
    terminal_id: _Identifier
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    currency: Currency
    lines: Annotated[tuple[WireLine, ...], msgspec.Meta(min_length=1, max_length=MAX_LINES)]
    total_minor: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOTAL_MINOR)]

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    @property
    def is_refund(self) -> bool:
        return self.event_type == REFUND


_DECODE: Final = msgspec.json.Decoder(WireEvent).decode
_IDENTIFIER: Final = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))
# two identifiers joined by '/', which neither may contain: one match for both
_TWO_IDENTIFIERS: Final = re.compile("/".join([_IDENTIFIER.pattern] * 2))
# Store and terminal ids that matched the pattern: a fleet has a few thousand, each of its events
# repeats two of them, and a set lookup costs a fifth of the match. Bounded, since the ids come
# from the wire: past the bound the set starts over (a miss only means one match more).
_KNOWN_PLACES: Final[set[str]] = set()
_MAX_KNOWN_PLACES: Final = 65_536
_SKU: Final = re.compile(SKU_PATTERN.removeprefix("^").removesuffix("$"))
# a fraction of 7 digits or more, spelled plainly or with JSON escapes
_LONG_FRACTION: Final = re.compile(rb"(?:\.|\\u002[eE])(?:[0-9]|\\u003[0-9]){7}")
# the same without escapes, about 4x cheaper (the alternation is tried at every byte): where
# there is no backslash, no escaped spelling can match
_LONG_PLAIN_FRACTION: Final = re.compile(rb"\.[0-9]{7}")
_ESCAPE: Final = b"\\"
_DEL: Final = b"\x7f"
_DOT: Final = b"."


class Screened(IntEnum):
    """What the caller checked over a whole aggregate before decoding its payloads one by one
    (`screen`); `False` and `True` are `NONE` and `SIZE_AND_CARDS`."""

    NONE = 0
    SIZE_AND_CARDS = 1  # every payload within the size cap, no card number in any
    PLAIN = 2  # and no JSON escape, DEL byte or 7-digit fraction in any


_PLAIN: Final = Screened.PLAIN  # a module global: read for every event, cheaper than the class's


def screen(payloads: Sequence[bytes]) -> Screened:
    """One size check, one card scan and one look for escapes over many payloads (joined by
    newlines, so no digit run spans two). `NONE` means: decode them one by one unscreened, so
    the one at fault is named."""
    if max(map(len, payloads), default=0) > MAX_EVENT_BYTES:
        return Screened.NONE
    joined = b"\n".join(payloads)
    if contains_card_number(joined):
        return Screened.NONE
    plain = _ESCAPE not in joined and _DEL not in joined
    if plain and (_DOT not in joined or _LONG_PLAIN_FRACTION.search(joined) is None):
        return Screened.PLAIN
    return Screened.SIZE_AND_CARDS


def decode_event(raw: bytes, *, screened: bool | Screened = False) -> WireEvent:
    """The contract's verdict on raw wire bytes: a `WireEvent`, or `RejectedEvent` with the
    reason, field and detail `contract.parse_order` gives.

    `screened` says what `screen` (or `contract.screen_many`, for `True`) found over the whole
    aggregate: the checks it covered are skipped here. A refusal runs them again (the contract's
    model always does), which a screened payload passes."""
    if not screened and (len(raw) > MAX_EVENT_BYTES or contains_card_number(raw)):
        return _by_the_contract(raw)
    try:
        event = _DECODE(raw)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return _by_the_contract(raw)  # deep nesting too: the contract's parser bounds it
    total = 0
    for line in event.lines:
        total += line.quantity * line.unit_price_minor
    if (
        total != event.total_minor
        or _TWO_IDENTIFIERS.fullmatch(f"{event.event_id}/{event.order_id}") is None
        or (
            (event.store_id not in _KNOWN_PLACES or event.terminal_id not in _KNOWN_PLACES)
            and not _places(event)
        )
        or (screened is not _PLAIN and not _plain_enough(raw, event))
    ):
        return _by_the_contract(raw)
    return event


def _places(event: WireEvent) -> bool:
    """The store and terminal ids match the pattern; remembered when they do."""
    if _IDENTIFIER.fullmatch(event.store_id) is None or _IDENTIFIER.fullmatch(event.terminal_id) is None:
        return False
    if len(_KNOWN_PLACES) >= _MAX_KNOWN_PLACES:
        _KNOWN_PLACES.clear()
    _KNOWN_PLACES.update((event.store_id, event.terminal_id))
    return True


def _plain_enough(raw: bytes, event: WireEvent) -> bool:
    # a control character in a sku can only come from an escape or a raw DEL byte
    if (_ESCAPE in raw or _DEL in raw) and any(_SKU.fullmatch(line.sku) is None for line in event.lines):
        return False
    if _ESCAPE in raw:
        return _LONG_FRACTION.search(raw) is None
    return _DOT not in raw or _LONG_PLAIN_FRACTION.search(raw) is None


def _by_the_contract(raw: bytes) -> WireEvent:
    """The refusal path: the contract's model names the reason (or accepts a spelling the fast
    path leaves to it, such as a comma before the fraction). The model, not the contract's
    dict path, so the first error reported is the model's own."""
    from salesstream.core.contract import parse_order  # pydantic: only when a refusal needs it

    event = parse_order(raw)
    return WireEvent(
        schema_version=event.schema_version,
        event_id=event.event_id,
        event_type=event.event_type.value,
        order_id=event.order_id,
        store_id=event.store_id,
        terminal_id=event.terminal_id,
        occurred_at=event.occurred_at,
        currency=event.currency,
        lines=tuple(WireLine(line.sku, line.quantity, line.unit_price_minor) for line in event.lines),
        total_minor=event.total_minor,
    )
