"""BASELINE ONLY: the card-number detector as it was before brands, token boundaries and field
grammar (salesstream/core/cards.py today). Kept unchanged so load_tests/bench_cards.py can
measure the new detector's error rates and scan cost against it in the same run; nothing in the
pipeline imports it.

The old rule: payment card numbers must never enter the stream (PCI DSS scope).

A card number is a Luhn-valid run of 13 to 19 digits, optionally grouped by single spaces
or dashes ("4111 1111 1111 1111"); a run glued to further digits is not one. The scan runs on
raw bytes with one compiled regex, so it is cheap enough for every event on the hot path; the
Luhn check runs only on the rare long digit runs.
"""

from __future__ import annotations

import re

# A stretch of 13+ characters of digits, spaces and dashes: a cheap pre-filter (one simple
# character class, no groups, no look-arounds); the digit groups inside are examined in Python.
_RUN = re.compile(rb"[0-9][0-9 -]{11,}[0-9]")
_GROUP = re.compile(rb"[0-9]+")
# Pre-filter at C speed: map digits and separators to "1", everything else to "0", then look
# for 13 ones in a row. Typical events have no such stretch and never reach the regex.
_DIGIT_OR_SEPARATOR = bytes.maketrans(
    bytes(range(256)), bytes(0x31 if chr(i) in "0123456789 -" else 0x30 for i in range(256))
)
_LONG_STRETCH = b"1" * 13
# JSON may spell digits as \u00XX escapes; those are decoded before a second scan.
_UNICODE_ESCAPE = b"\\u"
_MIN_DIGITS, _MAX_DIGITS = 13, 19


def luhn_valid(digits: bytes) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = char - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _candidates(data: bytes) -> list[tuple[int, int]]:
    """Spans of card numbers: any consecutive groups of a run ("4111 1111 1111 1111",
    or "4111111111111111" followed by " 0") that hold 13-19 digits and pass Luhn."""
    if _LONG_STRETCH not in data.translate(_DIGIT_OR_SEPARATOR):
        return []
    spans = []
    for run in _RUN.finditer(data):
        groups = [
            (g.start() + run.start(), g.end() + run.start(), g.group()) for g in _GROUP.finditer(run.group())
        ]
        for first in range(len(groups)):
            digits = b""
            for last in range(first, len(groups)):
                if last > first and groups[last][0] - groups[last - 1][1] != 1:
                    break  # groups are joined by exactly one space or dash
                digits += groups[last][2]
                if len(digits) > _MAX_DIGITS:
                    break
                if len(digits) >= _MIN_DIGITS and luhn_valid(digits):
                    spans.append((groups[first][0], groups[last][1]))
    return spans


def contains_card_number(data: bytes) -> bool:
    """True if the bytes hold a Luhn-valid 13-19 digit run anywhere (keys, values, unknown fields)."""
    if _candidates(data):
        return True
    if _UNICODE_ESCAPE in data:
        decoded = data.decode("unicode_escape", errors="replace").encode("utf-8", errors="replace")
        return bool(_candidates(decoded))
    return False


def redact_card_numbers(data: bytes) -> bytes:
    """The same bytes with every card-number candidate masked by '#'. Used before anything
    that failed validation is stored (quarantine), so no table ever holds a card number."""
    spans = _candidates(data)
    if not spans and _UNICODE_ESCAPE in data:
        # the number hid behind \u escapes: store the decoded, masked form instead
        decoded = data.decode("unicode_escape", errors="replace").encode("utf-8", errors="replace")
        spans = _candidates(decoded)
        if spans:
            data = decoded
    if not spans:
        return data
    out = bytearray(data)
    for start, end in spans:
        out[start:end] = b"#" * (end - start)
    return bytes(out)
