"""Payment card numbers must never enter the stream (PCI DSS scope), and real sales must pass.

A card number here is a run of digits that

- has a card brand's IIN prefix and one of that brand's lengths (Visa, Mastercard with the
  2-series, Amex, Discover, JCB, Diners, UnionPay, Maestro, Mir), then passes Luhn;
- is typed the way people type card numbers: contiguous, or grouped by single spaces or single
  dashes in the brand's grouping (4-4-4-4, Amex 4-6-5, Diners 4-6-4, 4-4-5, 4-4-4-4-1..3);
- stands as a token of its own: a run glued to a letter, joined by a dash to a letter-bearing
  part (`S038-2880162690`, a UUID or hex id), right after '+' (an E.164 phone number), or next
  by one space to a mixed letter+digit token (an IBAN, `DE89 3704 ...`) is part of an
  identifier, not a card number;
- is not a product code: the whole string value of a JSON `"sku"` that is a valid GTIN-13 or
  GTIN-14 (GS1 check digit) is a barcode.

JSON `\\u00XX` escapes are decoded before a second scan. The scan runs on raw bytes, whole
payloads or `b"\\n".join(payloads)` at once; typical events never leave the C-speed pre-filter.
`may_hold_card_number` is the conservative form for framed binary (a KPL aggregate as archived),
where protobuf length bytes may sit right against a payload's digits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

# Pre-filter at C speed: map digits and separators to "1", everything else to "0", then look
# for 13 ones in a row. Typical events have no such stretch and never reach Python-level work.
_DIGIT_OR_SEPARATOR: Final = bytes.maketrans(
    bytes(range(256)), bytes(0x31 if chr(i) in "0123456789 -" else 0x30 for i in range(256))
)
_MIN_DIGITS, _MAX_DIGITS = 13, 19
_LONG_STRETCH: Final = b"1" * _MIN_DIGITS
# Inside a stretch of digits and separators: digit groups joined by single separators.
_RUN: Final = re.compile(rb"[0-9]+(?:[ -][0-9]+)*")
_GROUP: Final = re.compile(rb"[0-9]+")
_STRETCH: Final = re.compile(rb"[0-9][0-9 -]{11,}[0-9]")  # for masking framed binary
_MAX_FRAMED_DIGITS: Final = 64
# JSON may spell digits as \u00XX escapes; those are decoded before a second scan.
_UNICODE_ESCAPE: Final = b"\\u"
# looked for first: one byte is a memchr, ~10x faster over an aggregate than the two-byte search
_BACKSLASH: Final = b"\\"
# A JSON escape (\n, \t, ...) right before a run is a separator, not a letter glued to it.
_ESCAPE_LETTERS: Final = frozenset(b"bfnrt")
# Spaces and tabs only: a newline may be the one between two payloads of a joined scan.
_SKU_KEY: Final = re.compile(rb'"sku"[ \t]*:[ \t]*"$')
_SKU_LOOKBACK: Final = 16

# The groupings people type, by group lengths (a single group is the contiguous layout).
_LAYOUTS: Final = frozenset(
    {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 5), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3)}
)
_MAX_GROUPS: Final = 5

# (first prefix, last prefix, lengths): IIN ranges of the brands, prefixes of equal length.
_BRANDS: Final[dict[str, tuple[tuple[str, str, range], ...]]] = {
    "visa": (("4", "4", range(13, 20, 3)),),  # 13, 16, 19
    "mastercard": (("51", "55", range(16, 17)), ("2221", "2720", range(16, 17))),
    "amex": (("34", "34", range(15, 16)), ("37", "37", range(15, 16))),
    "discover": (
        ("6011", "6011", range(16, 20)),
        ("644", "649", range(16, 20)),
        ("65", "65", range(16, 20)),
        ("622126", "622925", range(16, 20)),
    ),
    "jcb": (("3528", "3589", range(16, 20)),),
    "diners": (("300", "305", range(14, 20)), ("3095", "3095", range(14, 20)), ("36", "36", range(14, 20))),
    "diners-us": (("38", "39", range(16, 20)),),
    "unionpay": (("62", "62", range(16, 20)), ("81", "81", range(16, 20))),
    "maestro": tuple(
        (prefix, prefix, range(13, 20)) for prefix in ("5018", "5020", "5038", "5893", "6304", "6759", "676")
    ),
    "mir": (("2200", "2204", range(16, 20)),),
}
# The same ranges indexed by their first digit: a number is compared with a handful at most.
_RANGES: Final[dict[int, tuple[tuple[bytes, bytes, int, range], ...]]] = {
    digit: tuple(
        (first.encode(), last.encode(), len(first), lengths)
        for ranges in _BRANDS.values()
        for first, last, lengths in ranges
        if first.encode()[0] == digit
    )
    for digit in b"0123456789"
}


# ASCII digits to their values, and to the digit sum of their double (Luhn): sums at C speed.
_VALUE: Final = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))


def luhn_valid(digits: bytes) -> bool:
    backwards = digits[::-1]
    return (sum(backwards[::2].translate(_VALUE)) + sum(backwards[1::2].translate(_DOUBLED))) % 10 == 0


def gtin_valid(digits: bytes) -> bool:
    """GS1 check digit (EAN-8, UPC-A, EAN-13, GTIN-14): weights 1 and 3 from the right."""
    backwards = digits[::-1]
    return (sum(backwards[::2].translate(_VALUE)) + 3 * sum(backwards[1::2].translate(_VALUE))) % 10 == 0


def brand_of(digits: bytes) -> str | None:
    """The brand whose IIN range and lengths the digits fit, or None."""
    for name, ranges in _BRANDS.items():
        for first, last, lengths in ranges:
            prefix = digits[: len(first)].decode()
            if len(digits) in lengths and first <= prefix <= last:
                return name
    return None


def _card_shaped(digits: bytes) -> bool:
    length = len(digits)
    for first, last, width, lengths in _RANGES[digits[0]]:
        if length in lengths and first <= digits[:width] <= last:
            return luhn_valid(digits)
    return False


def _is_alnum(byte: int) -> bool:
    return 48 <= byte <= 57 or 65 <= byte <= 90 or 97 <= byte <= 122


def _is_letter(byte: int) -> bool:
    return 65 <= byte <= 90 or 97 <= byte <= 122


def _glued_left(data: bytes, start: int) -> bool:
    """The run continues an identifier on its left: a letter, a dash after a letter or digit,
    or a '+' (E.164)."""
    if start == 0:
        return False
    before = data[start - 1]
    if _is_letter(before):
        return not (before in _ESCAPE_LETTERS and start >= 2 and data[start - 2] == 0x5C)
    if before == 0x2D:  # '-': joined to an alphanumeric part
        return start >= 2 and _is_alnum(data[start - 2])
    return before == 0x2B  # '+'


def _glued_right(data: bytes, end: int) -> bool:
    if end >= len(data):
        return False
    after = data[end]
    if _is_letter(after):
        return True
    return after == 0x2D and end + 1 < len(data) and _is_alnum(data[end + 1])


def _token_before(data: bytes, position: int) -> bytes:
    """The alphanumeric token ending at `position` (exclusive)."""
    start = position
    while start > 0 and _is_alnum(data[start - 1]):
        start -= 1
    return data[start:position]


def _token_after(data: bytes, position: int) -> bytes:
    end = position
    while end < len(data) and _is_alnum(data[end]):
        end += 1
    return data[position:end]


def _mixed(token: bytes) -> bool:
    return any(_is_letter(b) for b in token) and any(48 <= b <= 57 for b in token)


def _next_to_mixed_token(data: bytes, start: int, end: int) -> bool:
    """An IBAN-like neighbour one space away: `DE89 3704 ...`, or `NL91 ABNA 0417 ...` (a bank
    code of letters between the country part and the digits)."""
    if start >= 2 and data[start - 1] == 0x20:
        token = _token_before(data, start - 1)
        if _mixed(token):
            return True
        if len(token) == 4 and token.isupper() and token.isalpha():
            head_end = start - 1 - len(token) - 1
            if head_end > 0 and data[head_end] == 0x20 and _mixed(_token_before(data, head_end)):
                return True
    return end + 1 < len(data) and data[end] == 0x20 and _mixed(_token_after(data, end + 1))


def _is_sku_gtin(data: bytes, start: int, end: int, digits: bytes) -> bool:
    return (
        len(digits) in (13, 14)
        and end < len(data)
        and data[end] == 0x22  # the value ends here
        and _SKU_KEY.search(data, max(0, start - _SKU_LOOKBACK), start) is not None
        and gtin_valid(digits)
    )


def _stretches(data: bytes, mask: bytes | None = None) -> list[tuple[int, int]]:
    """Spans of the stretches of 13+ digits and separators, found in the translated bytes by
    substring search (C speed): typical events have none, a realistic one a few (its barcodes)."""
    if mask is None:
        mask = data.translate(_DIGIT_OR_SEPARATOR)
    position = mask.find(_LONG_STRETCH)
    if position < 0:
        return []
    found = []
    while position >= 0:
        start = mask.rfind(b"0", 0, position) + 1
        end = mask.find(b"0", position)
        if end < 0:
            end = len(mask)
        found.append((start, end))
        position = mask.find(_LONG_STRETCH, end)
    return found


def _spans(data: bytes, mask: bytes | None = None) -> list[tuple[int, int]]:
    """Spans of the card numbers in `data` (no escape decoding); `mask` is its translation."""
    spans: list[tuple[int, int]] = []
    for stretch_start, stretch_end in _stretches(data, mask):
        stretch = data[stretch_start:stretch_end]
        if stretch.isdigit():  # one contiguous run: a barcode, a bare number
            spans.extend(_run_spans(data, stretch_start, stretch_end, stretch))
            continue
        for run in _RUN.finditer(data, stretch_start, stretch_end):
            start, end = run.span()
            if end - start >= _MIN_DIGITS:
                spans.extend(_run_spans(data, start, end, run.group()))
    return spans


def _run_spans(data: bytes, start: int, end: int, text: bytes) -> Iterator[tuple[int, int]]:
    """The card numbers in one run of digit groups at data[start:end]."""
    if text.isdigit():  # contiguous: the common case, brand and Luhn first (most runs fail there)
        if (
            _card_shaped(text)
            and not _glued_left(data, start)
            and not _glued_right(data, end)
            and not _next_to_mixed_token(data, start, end)
            and not _is_sku_gtin(data, start, end, text)
        ):
            yield start, end
        return
    # an edge group glued to an identifier is part of it; a run whose edge group is glued to
    # letters and which goes on past a separator is the rest of a mixed token (an IBAN's body
    # after `DE89`, a receipt number after `S038-`): none of its groups is a card
    glued_left, glued_right = _glued_left(data, start), _glued_right(data, end)
    if (
        (glued_left and _is_letter(data[start - 1]))
        or (glued_right and _is_letter(data[end]))
        or _next_to_mixed_token(data, start, end)
    ):
        return
    yield from _grouped_spans(data, start, text, glued_left, glued_right)


def _grouped_spans(
    data: bytes, offset: int, run: bytes, skip_first: bool, skip_last: bool
) -> Iterator[tuple[int, int]]:
    """Consecutive groups of a run in a layout people type, with one kind of separator."""
    groups = [(g.start() + offset, g.end() + offset) for g in _GROUP.finditer(run)]
    first_usable, last_usable = int(skip_first), len(groups) - 1 - int(skip_last)
    for first in range(first_usable, last_usable + 1):
        for last in range(first, min(first + _MAX_GROUPS - 1, last_usable) + 1):
            window = groups[first : last + 1]
            separators = {data[group_end] for (_, group_end) in window[:-1]}
            if len(separators) > 1:
                break
            lengths = tuple(group_end - group_start for group_start, group_end in window)
            if len(window) == 1:
                if not _MIN_DIGITS <= lengths[0] <= _MAX_DIGITS:
                    continue
            elif lengths not in _LAYOUTS:
                continue
            span = (window[0][0], window[-1][1])
            digits = data[span[0] : span[1]].translate(None, b" -")
            if _card_shaped(digits) and not _is_sku_gtin(data, span[0], span[1], digits):
                yield span


def _decoded(data: bytes) -> bytes:
    return data.decode("unicode_escape", errors="replace").encode("utf-8", errors="replace")


def card_number_spans(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The card numbers' spans, and the bytes they index: `data` itself, or its JSON-unescaped
    form when the numbers hid behind `\\u` escapes."""
    if _UNICODE_ESCAPE in data:
        decoded = _decoded(data)
        spans = _spans(decoded)
        if spans:  # the decoded form shows every number, escaped or not
            return decoded, spans
    return data, _spans(data)


def contains_card_number(data: bytes) -> bool:
    """True if the bytes hold a card number anywhere (keys, values, unknown fields, non-JSON)."""
    if _BACKSLASH in data and _UNICODE_ESCAPE in data:
        return bool(card_number_spans(data)[1])
    mask = data.translate(_DIGIT_OR_SEPARATOR)
    return _LONG_STRETCH in mask and bool(_spans(data, mask))  # the first test is all most events cost


def redact_card_numbers(data: bytes) -> bytes:
    """The same bytes with every card number `contains_card_number` finds masked by '#'.
    When the numbers hid behind `\\u` escapes, the decoded form is returned, masked. Used
    before anything that failed validation is stored (quarantine), so no table holds one."""
    text, spans = card_number_spans(data)
    if not spans:
        return data
    out = bytearray(text)
    for start, end in spans:
        out[start:end] = b"#" * (end - start)
    return bytes(out)


def may_hold_card_number(data: bytes) -> bool:
    """Conservative scan for framed binary (a KPL aggregate): any 13-19 consecutive digits of a
    digit-and-separator stretch that fit a brand and Luhn, whatever sits around them. A superset
    of `contains_card_number` on each framed payload: True means "examine each payload"."""
    for stretch_start, stretch_end in _stretches(data):
        digits = data[stretch_start:stretch_end].translate(None, b" -")
        if len(digits) > _MAX_FRAMED_DIGITS:
            return True  # no id is this long: examining each payload costs less than every window
        for start in range(len(digits) - _MIN_DIGITS + 1):
            for length in range(_MIN_DIGITS, min(_MAX_DIGITS, len(digits) - start) + 1):
                if _card_shaped(digits[start : start + length]):
                    return True
    if _UNICODE_ESCAPE in data:
        decoded = _decoded(data)
        return decoded != data and may_hold_card_number(decoded)
    return False


def redact_framed(data: bytes) -> bytes:
    """Framed binary whose framing cannot be trusted (a broken aggregate) with every stretch of
    digits and separators that `may_hold_card_number` flags masked by '#'."""
    data = redact_card_numbers(data)
    return _STRETCH.sub(
        lambda stretch: (
            b"#" * len(stretch.group()) if may_hold_card_number(stretch.group()) else stretch.group()
        ),
        data,
    )


# --- which field holds it (computed on the refusal path only) ---------------------------------

PAYLOAD_FIELD: Final = "(payload)"
KEY_FIELD: Final = "(key)"


def card_number_field(raw: bytes) -> str:
    """The JSON path of the field holding the suspected card number (`order_id`,
    `lines[2].sku`, an unknown key's name), `(key)` when the number is a key, `(payload)` when
    the bytes are not JSON or no single field holds it. Never the value."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return PAYLOAD_FIELD
    found = _field_in(document, "")
    return found if found is not None else PAYLOAD_FIELD


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _field_in(node: Any, prefix: str) -> str | None:
    if isinstance(node, dict):
        for key, value in node.items():
            if contains_card_number(_json(key)):
                return _path(prefix, KEY_FIELD)
            if isinstance(value, dict | list):
                found = _field_in(value, _path(prefix, key))
                if found is not None:
                    return found
            elif contains_card_number(_json({key: value})):
                return _path(prefix, key)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _field_in(item, f"{prefix}[{index}]")
            if found is not None:
                return found
    elif contains_card_number(_json(node)):
        return prefix or PAYLOAD_FIELD
    return None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="replace")
