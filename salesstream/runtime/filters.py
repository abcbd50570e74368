"""FilterCriteria of an event source mapping: which Kinesis or DynamoDB Streams records reach
the function.

The subset of the event-pattern grammar the Lambda developer guide documents for event
filtering (invocation-eventfiltering), applied the way it describes for Kinesis
(with-kinesis-filtering):

- the pattern is matched against the record's `kinesis` metadata (partitionKey, sequenceNumber,
  approximateArrivalTimestamp, kinesisSchemaVersion) and `data`, base64-decoded and parsed as
  UTF-8 JSON; a record whose data is not JSON never matches a pattern that names `data` (so a
  KPL aggregate never does: Lambda does not de-aggregate before filtering);
- the filters of a mapping are ORed; the keys of one pattern are ANDed; the values listed for a
  key are ORed; a pattern key whose event value is an array matches if any element does;
- value rules: an exact string, number, boolean or null (`""` is the empty string), and
  objects with `prefix`, `suffix`, `equals-ignore-case`, `numeric` (=, <, <=, >, >= and
  ranges), `exists` (true/false) and `anything-but` (a value, a list of values, or a prefix).

For a DynamoDB table's stream (with-ddb-filtering) the pattern is matched against the record as
the event carries it: `eventName`, `dynamodb` with `Keys`, `NewImage` and `OldImage` in their
typed form (`{"dynamodb": {"NewImage": {"store_id": {"S": ["s-1"]}}}}`), and the other fields;
there is no `data` to decode.

Not supported, refused when the pattern is compiled: `wildcard`, `cidr`, `$or`, and
`anything-but` with suffix / equals-ignore-case / wildcard.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from salesstream.core.lambda_events import DynamodbEventRecord

Matcher = Callable[[Any, bool], bool]  # (value, present) -> matched
_ABSENT: Final = object()
_NUMERIC_OPERATORS: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterPatternError(ValueError):
    """A FilterCriteria pattern the runtime cannot evaluate exactly as AWS would."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _equals(expected: Any) -> Matcher:
    if _is_number(expected):
        return lambda value, present: present and _is_number(value) and value == expected
    return lambda value, present: present and type(value) is type(expected) and value == expected


def _numeric(spec: Any) -> Matcher:
    if not isinstance(spec, list) or not spec or len(spec) % 2:
        raise FilterPatternError(f"numeric needs operator/number pairs, got {spec!r}")
    tests: list[tuple[Callable[[float, float], bool], float]] = []
    for operator, operand in zip(spec[::2], spec[1::2], strict=True):
        if operator not in _NUMERIC_OPERATORS or not _is_number(operand):
            raise FilterPatternError(f"numeric: bad comparison {operator!r} {operand!r}")
        tests.append((_NUMERIC_OPERATORS[operator], operand))
    return lambda value, present: (
        present and _is_number(value) and all(test(value, operand) for test, operand in tests)
    )


def _string_test(name: str, operand: Any) -> Callable[[str], bool]:
    if not isinstance(operand, str):
        raise FilterPatternError(f"{name} needs a string, got {operand!r}")
    match name:
        case "prefix":
            return lambda text: text.startswith(operand)
        case "suffix":
            return lambda text: text.endswith(operand)
        case _:
            folded = operand.casefold()
            return lambda text: text.casefold() == folded


def _anything_but(spec: Any) -> Matcher:
    if isinstance(spec, dict):
        if set(spec) != {"prefix"}:
            raise FilterPatternError(f"anything-but supports a value list or a prefix here, got {spec!r}")
        starts = _string_test("prefix", spec["prefix"])
        return lambda value, present: present and isinstance(value, str) and not starts(value)
    excluded = [_equals(item) for item in (spec if isinstance(spec, list) else [spec])]
    return lambda value, present: present and not any(test(value, True) for test in excluded)


def _rule(rule: Any) -> Matcher:
    if not isinstance(rule, dict):
        if isinstance(rule, list | Mapping):
            raise FilterPatternError(f"a rule is a value or an operator object, got {rule!r}")
        return _equals(rule)
    if len(rule) != 1:
        raise FilterPatternError(f"one operator per rule object, got {rule!r}")
    ((name, operand),) = rule.items()
    match name:
        case "prefix" | "suffix" | "equals-ignore-case":
            test = _string_test(name, operand)
            return lambda value, present: present and isinstance(value, str) and test(value)
        case "numeric":
            return _numeric(operand)
        case "exists":
            if not isinstance(operand, bool):
                raise FilterPatternError(f"exists needs true or false, got {operand!r}")
            return lambda value, present: present is operand
        case "anything-but":
            return _anything_but(operand)
    raise FilterPatternError(f"the local runtime does not support the {name!r} filter operator")


def _any_element(matcher: Matcher) -> Matcher:
    """A rule against an array value holds if it holds for one of its elements."""

    def match(value: Any, present: bool) -> bool:
        if present and isinstance(value, list):
            return any(matcher(item, True) for item in value)
        return matcher(value, present)

    return match


def _one_of(matchers: list[Matcher]) -> Matcher:
    return lambda value, present: any(matcher(value, present) for matcher in matchers)


def _nested(pattern: Callable[[Any], bool]) -> Matcher:
    def match(value: Any, present: bool) -> bool:
        if present and isinstance(value, list):  # an array of objects: one of them must match
            return any(pattern(item) for item in value)
        return pattern(value if present else {})  # an absent object: every field is absent

    return match


def _compile(pattern: Mapping[str, Any]) -> Callable[[Any], bool]:
    checks: list[tuple[str, Matcher]] = []
    for key, spec in pattern.items():
        if key.startswith("$"):
            raise FilterPatternError(f"the local runtime does not support {key!r} in a filter pattern")
        if isinstance(spec, dict):
            checks.append((key, _nested(_compile(spec))))
        elif isinstance(spec, list) and spec:
            checks.append((key, _any_element(_one_of([_rule(rule) for rule in spec]))))
        else:
            raise FilterPatternError(f"{key!r}: a pattern value is a non-empty list or an object")

    def match(subject: Any) -> bool:
        for key, matcher in checks:
            value = subject.get(key, _ABSENT) if isinstance(subject, dict) else _ABSENT
            if not matcher(value, value is not _ABSENT):
                return False
        return True

    return match


def _decode_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return _ABSENT


class RecordFilter:
    """The mapping's FilterCriteria; with no filters every record matches."""

    def __init__(self, patterns: list[dict[str, Any]]) -> None:
        self._patterns = [(_compile(pattern), "data" in pattern) for pattern in patterns]
        self._needs_data = any(names_data for _, names_data in self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def accepts(self, record: Mapping[str, Any] | DynamodbEventRecord) -> bool:
        """Whether the record, in its event form, passes the filters (either source): a Kinesis
        record as the event's JSON, a table's record as its model."""
        if not isinstance(record, DynamodbEventRecord):
            return self.matches(record["kinesis"])
        return self.matches_table_record(record.model_dump(mode="json", exclude_none=True))

    def matches_table_record(self, record: Mapping[str, Any]) -> bool:
        """`record` is a DynamoDB Streams record as in the event."""
        return not self._patterns or any(pattern(dict(record)) for pattern, _ in self._patterns)

    def matches(self, kinesis: Mapping[str, Any]) -> bool:
        """`kinesis` is the record's `kinesis` object as in the event (data base64)."""
        if not self._patterns:
            return True
        subject = {key: value for key, value in kinesis.items() if key != "data"}
        data: Any = _ABSENT
        if self._needs_data:
            data = _decode_json(base64.b64decode(kinesis["data"]))
            if data is not _ABSENT:
                subject["data"] = data
        # a pattern that names `data` never matches a record whose data is not JSON
        readable = data is not _ABSENT
        return any(pattern(subject) for pattern, names_data in self._patterns if readable or not names_data)
