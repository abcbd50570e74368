"""Why a record was refused. One closed vocabulary shared by the producer, the consumers,
the quarantine table and the reconciliation, so a reason code means the same thing everywhere."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # transport: the bytes are not an event at all
    NOT_JSON = "not_json"
    BAD_UTF8 = "bad_utf8"
    OVERSIZE = "oversize"
    NOT_AN_OBJECT = "not_an_object"
    # KPL aggregates (consumer side)
    BAD_AGGREGATE_CHECKSUM = "bad_aggregate_checksum"
    BROKEN_AGGREGATE = "broken_aggregate"
    # the gzip envelope of a compressed aggregate (consumer side)
    CORRUPT_ENVELOPE = "corrupt_envelope"
    ENVELOPE_OVERSIZE = "envelope_oversize"
    # schema
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_EVENT_TYPE = "bad_event_type"
    BAD_IDENTIFIER = "bad_identifier"
    BAD_TIMESTAMP = "bad_timestamp"
    UNKNOWN_CURRENCY = "unknown_currency"
    # business rules
    EMPTY_ORDER = "empty_order"
    TOO_MANY_LINES = "too_many_lines"
    NON_POSITIVE_QUANTITY = "non_positive_quantity"
    NEGATIVE_PRICE = "negative_price"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    TOTAL_MISMATCH = "total_mismatch"
    # data protection
    CARD_NUMBER = "card_number"
    # exactly-once
    DUPLICATE_CONFLICT = "duplicate_conflict"
    # the consumer gave up on a record that failed every time
    POISON = "poison"


class RejectedEvent(ValueError):
    """An event refused by the contract: `reason` is the code, `detail` says where and why,
    `field` names the field at fault as a JSON path (`lines[2].sku`) when it is known.

    `detail` never repeats field values, so it is safe to log even when the payload
    carried a card number."""

    def __init__(self, reason: Reason, detail: str = "", field: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        self.field = field
