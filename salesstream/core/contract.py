"""The order-event contract: the public, versioned format POS terminals send.

Wire format (JSON, UTF-8), schema_version 1:

    {"schema_version": 1, "event_id": "...", "event_type": "order_placed" | "order_refunded",
     "order_id": "...", "store_id": "...", "terminal_id": "...",
     "occurred_at": "2026-11-23T10:15:00+01:00", "currency": "EUR",
     "lines": [{"sku": "...", "quantity": 2, "unit_price_minor": 1250}],
     "total_minor": 2500}

Money is integer minor units. A refund carries the refunded lines and a positive total; the
reducers subtract it. `parse_order` is the only way bytes become an `OrderEvent`, on the
producer and on the consumer alike, and it names every refusal with a `Reason`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from typing_extensions import TypedDict

from salesstream.core.cards import card_number_field, contains_card_number
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
    SCHEMA_VERSION,
    SKU_PATTERN,
)
from salesstream.core.reasons import Reason, RejectedEvent

if TYPE_CHECKING:
    from collections.abc import Sequence
from datetime import date, datetime

Identifier = Annotated[str, Field(min_length=1, max_length=MAX_IDENTIFIER_CHARS, pattern=ID_PATTERN)]
Sku = Annotated[str, Field(min_length=1, max_length=MAX_SKU_CHARS, pattern=SKU_PATTERN)]


# A Literal is checked inside pydantic-core (no Python call per event). For type checkers
# it is a str; the set of codes is data (currencies.py), not something to spell out twice.
if TYPE_CHECKING:
    Currency = str
else:
    Currency = Literal[tuple(sorted(CURRENCIES))]


def check_total(lines: Any, total_minor: int) -> None:
    """The one business rule that spans fields: the total is the sum of its lines."""
    if sum(quantity * price for quantity, price in lines) != total_minor:
        raise PydanticCustomError("total_mismatch", "total_minor does not equal the sum of its lines")


class EventType(StrEnum):
    ORDER_PLACED = "order_placed"
    ORDER_REFUNDED = "order_refunded"


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sku: Sku
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
    unit_price_minor: Annotated[int, Field(ge=0, le=MAX_UNIT_PRICE_MINOR)]


class OrderEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    schema_version: Literal[1]
    event_id: Identifier
    event_type: EventType
    order_id: Identifier
    store_id: Identifier
    terminal_id: Identifier
    occurred_at: AwareDatetime
    currency: Currency
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_LINES)]
    total_minor: Annotated[int, Field(ge=0, le=MAX_TOTAL_MINOR)]

    @model_validator(mode="after")
    def _total_matches_lines(self) -> OrderEvent:
        check_total(((line.quantity, line.unit_price_minor) for line in self.lines), self.total_minor)
        return self

    @property
    def is_refund(self) -> bool:
        return self.event_type is EventType.ORDER_REFUNDED

    @property
    def business_day(self) -> date:
        """The sale's calendar day at the terminal (its own UTC offset)."""
        return self.occurred_at.date()

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()


# --- bytes -> OrderEvent, with a reason for every refusal -------------------------------------

_LOC_REASONS: dict[str, Reason] = {
    "schema_version": Reason.UNSUPPORTED_SCHEMA_VERSION,
    "event_type": Reason.BAD_EVENT_TYPE,
    "currency": Reason.UNKNOWN_CURRENCY,
    "occurred_at": Reason.BAD_TIMESTAMP,
}
_TYPE_REASONS: dict[str, Reason] = {
    "extra_forbidden": Reason.UNKNOWN_FIELD,
    "missing": Reason.MISSING_FIELD,
    "total_mismatch": Reason.TOTAL_MISMATCH,
    "string_pattern_mismatch": Reason.BAD_IDENTIFIER,
    "string_too_short": Reason.BAD_IDENTIFIER,
    "string_too_long": Reason.BAD_IDENTIFIER,
    "model_type": Reason.NOT_AN_OBJECT,
    "model_attributes_type": Reason.NOT_AN_OBJECT,
    "dict_type": Reason.NOT_AN_OBJECT,  # the same refusal on the hot path (TypedDict)
}
_OBJECT_TYPES = frozenset({"model_type", "dict_type"})  # at the top level only; nested, a wrong type
_WRONG_TYPE_SUFFIX = "_type"


def _reason_for(error: ErrorDetails) -> Reason:
    loc = tuple(str(part) for part in error["loc"])
    kind = error["type"]
    field = loc[-1] if loc else ""
    if kind in _TYPE_REASONS and not (kind in _OBJECT_TYPES and loc):
        return _TYPE_REASONS[kind]
    if kind.endswith(_WRONG_TYPE_SUFFIX) and field not in _LOC_REASONS:
        return Reason.WRONG_TYPE
    if loc and loc[0] in _LOC_REASONS:
        return _LOC_REASONS[loc[0]]
    if loc == ("lines",):
        return Reason.EMPTY_ORDER if kind == "too_short" else Reason.TOO_MANY_LINES
    if field == "quantity":
        return Reason.NON_POSITIVE_QUANTITY if kind == "greater_than" else Reason.AMOUNT_OUT_OF_RANGE
    if field == "unit_price_minor":
        return Reason.NEGATIVE_PRICE if kind == "greater_than_equal" else Reason.AMOUNT_OUT_OF_RANGE
    if field == "total_minor":
        return Reason.AMOUNT_OUT_OF_RANGE
    return Reason.WRONG_TYPE


def rejection_from(error: ValidationError, raw: bytes) -> RejectedEvent:
    """Translate pydantic's first error into our reason code; never echo the input value."""
    first = error.errors(include_url=False, include_input=False)[0]
    if first["type"] == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return RejectedEvent(Reason.BAD_UTF8, "payload is not valid UTF-8")
        return RejectedEvent(Reason.NOT_JSON, first["msg"])
    field = json_path(first["loc"])
    reason = _reason_for(first)
    message = "not an ISO 4217 currency code" if reason is Reason.UNKNOWN_CURRENCY else first["msg"]
    return RejectedEvent(reason, f"{field or 'event'}: {message}", field)


def json_path(loc: Sequence[int | str]) -> str | None:
    """pydantic's error location as a JSON path: ("lines", 2, "sku") -> "lines[2].sku"."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


def _screen(raw: bytes) -> None:
    if len(raw) > MAX_EVENT_BYTES:
        raise RejectedEvent(Reason.OVERSIZE, f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    if contains_card_number(raw):
        field = card_number_field(raw)  # the refusal path only: parses the payload once more
        raise RejectedEvent(Reason.CARD_NUMBER, f"card number in {field}", field)


def screen(raw: bytes) -> None:
    """The size cap and the card scan alone, or `RejectedEvent`: for bytes whose schema is known
    good already (a validated `OrderEvent`'s own JSON)."""
    _screen(raw)


def screen_many(raws: Sequence[bytes]) -> bool:
    """True when every payload is within the size cap and none holds a card number: one scan
    over all of them (a newline between payloads, so no digit run spans two), after which each
    can be validated with `screened=True`. False means: screen them one by one to name the bad one."""
    return all(len(raw) <= MAX_EVENT_BYTES for raw in raws) and not contains_card_number(b"\n".join(raws))


def parse_order(raw: bytes) -> OrderEvent:
    """Validate raw wire bytes into an `OrderEvent` or raise `RejectedEvent`.

    Order of checks is deliberate: size first (cheap, bounds all later work), then the card
    scan on the raw bytes (so a card number in an unknown field is still caught), then the
    strict schema."""
    _screen(raw)
    try:
        return OrderEvent.model_validate_json(raw)
    except ValidationError as error:
        raise rejection_from(error, raw) from None


def new_order(
    *,
    event_id: str,
    store_id: str,
    terminal_id: str,
    order_id: str,
    occurred_at: datetime,
    currency: str,
    lines: list[tuple[str, int, int]],
    refund: bool = False,
) -> OrderEvent:
    """Build a valid event from Python values (the simulator and tests use this)."""
    return OrderEvent.model_validate(
        {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "event_type": EventType.ORDER_REFUNDED if refund else EventType.ORDER_PLACED,
            "order_id": order_id,
            "store_id": store_id,
            "terminal_id": terminal_id,
            "occurred_at": occurred_at,
            "currency": currency,
            "lines": [OrderLine(sku=s, quantity=q, unit_price_minor=p) for s, q, p in lines],
            "total_minor": sum(q * p for _, q, p in lines),
        }
    )


# --- the consumer's hot path ------------------------------------------------------------------
# The same contract, validated into plain dicts instead of model instances: pydantic-core does all
# the work in Rust, which is ~30% cheaper per event than building an OrderEvent. The TypedDicts are
# derived from the models above, so the contract is still written exactly once (a unit test checks
# that both paths accept and refuse the same bytes with the same reason).


def _typed_dict_of(model: type[BaseModel], nested: dict[type, Any]) -> Any:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        for model_type, dict_type in nested.items():
            if annotation == list[model_type]:  # type: ignore[valid-type]
                annotation = list[dict_type]  # type: ignore[valid-type]
        if info.metadata:
            annotation = Annotated.__class_getitem__((annotation, *info.metadata))  # type: ignore[attr-defined]
        fields[name] = annotation
    typed_dict: Any = TypedDict
    derived = typed_dict(f"{model.__name__}Wire", fields)
    derived.__pydantic_config__ = ConfigDict(extra="forbid", strict=True)
    return derived


OrderLineWire = _typed_dict_of(OrderLine, {})
OrderEventWire = _typed_dict_of(OrderEvent, {OrderLine: OrderLineWire})
_WIRE: TypeAdapter[dict[str, Any]] = TypeAdapter(OrderEventWire)
# pydantic-core's validator itself: TypeAdapter.validate_json's Python wrapper costs ~0.2 us per call
_VALIDATE_WIRE_JSON = _WIRE.validator.validate_json


def validate_wire(raw: bytes, *, screened: bool = False) -> dict[str, Any]:
    """`parse_order` for the hot path: the same checks, a dict instead of a model.

    Keys are the contract's field names; `occurred_at` is an aware datetime, `event_type` the
    string value. `screened=True` skips the size cap and the card scan when the caller has
    already run them on a whole KPL aggregate at once (one scan instead of one per event)."""
    if not screened:
        _screen(raw)
    try:
        event: dict[str, Any] = _VALIDATE_WIRE_JSON(raw)
    except ValidationError as error:
        raise rejection_from(error, raw) from None
    total = 0
    for line in event["lines"]:
        total += line["quantity"] * line["unit_price_minor"]
    if total != event["total_minor"]:
        raise RejectedEvent(Reason.TOTAL_MISMATCH, "event: total_minor does not equal the sum of its lines")
    return event
