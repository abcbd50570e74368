"""After a fault run: no card number anywhere it could have landed (docs/reliability.md B7).

`stored_everywhere` yields every DynamoDB item (and the zlib-inflated content of its binary
attributes) of the given tables and every object (key and body) of the given buckets, an archive
object decoded too (its records are base64 and may be KPL aggregates: salesstream/core/archive.py
`stored_payloads`);
`LogCapture` keeps a copy of what the process writes to stdout/stderr and what the given loggers
log while inside; `card_numbers_in` says which of the run's card numbers some bytes hold,
however they were grouped or escaped. (A generic Luhn scan would flag the 13-digit epoch
milliseconds stored everywhere: a tenth of them pass Luhn. So the check looks for the numbers
the run put into the stream.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from load_tests.faults.catalogue import TEST_CARD_NUMBERS
from salesstream.core.archive import ARCHIVE_PREFIX, stored_payloads

CARD_DIGITS = tuple(card.replace(" ", "").replace("-", "").encode() for card in TEST_CARD_NUMBERS)


def card_numbers_in(data: bytes, cards: Iterable[bytes] = CARD_DIGITS) -> list[bytes]:
    unescaped = data.decode("unicode_escape", errors="replace").encode("utf-8", errors="replace")
    squeezed = [variant.translate(None, b" -") for variant in (data, unescaped)]
    return [card for card in cards if any(card in variant for variant in squeezed)]


def _binaries(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes | bytearray):
        yield bytes(value)
        with contextlib.suppress(zlib.error):  # not compressed: scanned as it is
            yield zlib.decompress(value)
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _binaries(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _binaries(inner)


def stored_everywhere(
    dynamodb: Any, s3: Any, tables: Iterable[str], buckets: Iterable[str]
) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) for every item of `tables` and every object of `buckets`."""
    for table in tables:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                where = f"{table} {item.get('pk', {}).get('S', '?')} {item.get('sk', {}).get('S', '')}"
                yield where, repr(item).encode()
                for data in _binaries(item):
                    yield where, data
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                where = f"s3://{bucket}/{entry['Key']}"
                yield where, entry["Key"].encode()
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                for data in _binaries(body):
                    yield where, data
                if entry["Key"].startswith(ARCHIVE_PREFIX):
                    for data in stored_payloads(body):
                        yield where, data


def scan(sources: Iterable[tuple[str, bytes]], cards: Iterable[bytes] = CARD_DIGITS) -> tuple[int, list[str]]:
    """How many sources were scanned, and where a card number was found."""
    cards = tuple(cards)
    scanned, found = 0, []
    for where, data in sources:
        scanned += 1
        if card_numbers_in(data, cards):
            found.append(where)
    return scanned, found


def file_source(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.exists():
        yield str(path.name), path.read_bytes()


class _Tee(io.TextIOBase):
    def __init__(self, original: TextIO, sink: io.StringIO, lock: threading.Lock) -> None:
        self._original, self._sink, self._lock = original, sink, lock

    def write(self, text: str) -> int:
        with self._lock:
            self._sink.write(text)
        return self._original.write(text)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()


class LogCapture:
    """Inside: a copy of stdout and stderr (handlers created inside bind to the copies: the Lambda
    handlers' loggers, made on their first invocation), and of the given loggers' records."""

    def __init__(self, *loggers: logging.Logger | Any) -> None:
        """`loggers`: stdlib or powertools loggers (both take `addHandler`)."""
        self._sink = io.StringIO()
        self._lock = threading.Lock()
        self._loggers = loggers
        self._handler = logging.StreamHandler(self._sink)
        self._saved: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> LogCapture:
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self._sink, self._lock)
        sys.stderr = _Tee(sys.stderr, self._sink, self._lock)
        for logger in self._loggers:
            logger.addHandler(self._handler)
        return self

    def __exit__(self, *_: object) -> None:
        for logger in self._loggers:
            logger.removeHandler(self._handler)
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved

    def text(self) -> str:
        with self._lock:
            return self._sink.getvalue()
