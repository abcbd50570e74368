"""The contract's bounds, in a module without pydantic: `contract.py` (the definition) and
`wire.py` (the compiled validator of the hot paths) both read them from here."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1
# Far below Kinesis's 1 MiB record limit: a 200-line basket is ~14 KiB. Checked before any parse,
# so a huge payload costs one len().
MAX_EVENT_BYTES: Final = 16 * 1024
MAX_LINES: Final = 200
MAX_QUANTITY: Final = 100_000
MAX_UNIT_PRICE_MINOR: Final = 1_000_000_000
# 12 digits at most: no legitimate amount can look like a 13-19 digit card number.
MAX_TOTAL_MINOR: Final = 999_999_999_999
MAX_IDENTIFIER_CHARS: Final = 128
MAX_SKU_CHARS: Final = 64

# Identifiers double as DynamoDB key parts and S3 key parts: no '#', '/', spaces or controls.
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
SKU_PATTERN: Final = r"^[^\x00-\x1f\x7f]+$"
