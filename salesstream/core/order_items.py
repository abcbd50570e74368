"""Order events as items of the orders table: the contract's fields as DynamoDB typed attribute
values, the table's own TTL attribute beside them. Pure: the writer (`produce --to table`, any
integration) and the aggregator's decode both use it.

    order_item({"event_id": "e-1", "total_minor": 2500, ...}, expires_at=1767225600)
    -> {"event_id": {"S": "e-1"}, "total_minor": {"N": "2500"}, ..., "expires_at": {"N": "1767225600"}}
"""

from __future__ import annotations

import json
from typing import Any, Final

TTL_ATTRIBUTE: Final = "expires_at"  # the orders table's TimeToLiveSpecification
TABLE_ONLY_ATTRIBUTES: Final = frozenset({TTL_ATTRIBUTE})


class NotTypedValue(ValueError):
    """An image holds something that is not a DynamoDB attribute value."""


def plain(value: Any) -> Any:
    """A typed attribute value ({"S": "x"}, {"N": "2"}, {"L": [...]}, ...) as plain JSON. A
    number with a fraction stays a float, which the contract refuses where it wants an integer."""
    if not isinstance(value, dict) or len(value) != 1:
        raise NotTypedValue("not a typed attribute value")
    ((kind, inner),) = value.items()
    match kind:
        case "S" | "BOOL":
            return inner
        case "N":
            number = float(inner)
            return int(inner) if inner.lstrip("-").isdigit() else number
        case "NULL":
            return None
        case "M":
            return {name: plain(item) for name, item in inner.items()}
        case "L":
            return [plain(item) for item in inner]
        case "SS" | "NS" | "BS" | "B":
            raise NotTypedValue(f"a {kind} attribute has no place in an order event")
    raise NotTypedValue(f"unknown attribute type {kind!r}")


def typed(value: Any) -> dict[str, Any]:
    """The inverse of `plain`, for the JSON an order event is made of: what a writer puts."""
    match value:
        case bool():
            return {"BOOL": value}
        case str():
            return {"S": value}
        case int() | float():
            return {"N": str(value)}
        case None:
            return {"NULL": True}
        case dict():
            return {"M": {name: typed(item) for name, item in value.items()}}
        case list():
            return {"L": [typed(item) for item in value]}
    raise NotTypedValue(f"{type(value).__name__} has no place in an order event")


def order_item(event: dict[str, Any], *, expires_at: int) -> dict[str, Any]:
    """The orders table's item for an order event (its wire JSON, parsed): the event's fields as
    typed attributes and the TTL attribute (epoch seconds) after which DynamoDB deletes it."""
    return {**{name: typed(value) for name, value in event.items()}, TTL_ATTRIBUTE: {"N": str(expires_at)}}


def event_bytes(image: dict[str, Any]) -> bytes:
    """The event an item holds, as compact JSON: what the contract validates and the quarantine keeps."""
    event = {name: plain(value) for name, value in image.items() if name not in TABLE_ONLY_ATTRIBUTES}
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
