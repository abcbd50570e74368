"""Where the speed layer keeps things: the aggregates table's keys, and its running totals read
back from raw items. No AWS call here, so a reader (the API, the batch layer, `salesstream
report`) imports the layout without the writer (segments.py) and its permissions.

AGGREGATES_TABLE (single table, pk/sk strings; what each item holds: segments.py):

| pk                  | sk                                   | what |
|---------------------|--------------------------------------|------|
| `SEGMENT#<shardId>` | `<window start ms:015d>#<first pos>` | one window segment (written once) |
| `SHARD#<shardId>`   | `COUNTERS`                           | the shard's running counters |
| `SHARD#<shardId>`   | `TOTAL#<currency>`                   | the shard's running totals per currency |
| `DAYS#<shardId>`    | `<business day>`                     | the shard's stores' running totals that day |

A DAYS# item holds every store the shard saw on one business day (the terminal's own calendar
day) in one compressed document (`stores_zjson`: `{"<store>/<currency>": [orders, refunds,
gross_minor, refunds_minor]}`), so a window boundary writes one item per shard and business day,
not one per store. A store's total for a day is the sum over the shards' DAYS# items of that day
(a store moves to another shard when the stream is resharded).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

SEGMENT_PREFIX: Final = "SEGMENT#"
SHARD_PREFIX: Final = "SHARD#"
DAYS_PREFIX: Final = "DAYS#"
COUNTERS: Final = "COUNTERS"
TOTAL_PREFIX: Final = "TOTAL#"
WATERMARK_PREFIX: Final = "wm#"
STORE_TOTALS: Final = "stores_zjson"  # a DAYS# item's document
VERSION: Final = "version"  # a DAYS# item's write count: every rewrite is conditional on it

AMOUNTS: Final = ("orders", "refunds", "gross_minor", "refunds_minor")
SHARD_COUNTERS: Final = ("events", "duplicates", "conflicts", "quarantined", "segments")


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _add(into: dict[str, int], item: dict[str, Any]) -> None:
    _add_amounts(into, [_number(item, name) for name in AMOUNTS])


def _add_amounts(into: dict[str, int], amounts: Sequence[int]) -> None:
    for name, amount in zip(AMOUNTS, amounts, strict=True):
        into[name] = into.get(name, 0) + amount
    into["net_sales_minor"] = into["gross_minor"] - into["refunds_minor"]


def days_key(shard_id: str, business_day: str) -> dict[str, dict[str, str]]:
    """The key of a shard's DAYS# item for one business day."""
    return {"pk": {"S": DAYS_PREFIX + shard_id}, "sk": {"S": business_day}}


def store_key(store_id: str, currency: str) -> str:
    """`<store>/<currency>`: the key of a store's amounts in a DAYS# item."""
    return f"{store_id}/{currency}"


def encode_store_totals(totals: Mapping[str, Sequence[int]]) -> bytes:
    """A DAYS# item's document: `{"<store>/<currency>": [orders, refunds, gross, refunds]}`."""
    return zlib.compress(json.dumps(totals, sort_keys=True, separators=(",", ":")).encode())


def decode_store_totals(item: dict[str, Any]) -> dict[str, list[int]]:
    """The document of a raw DAYS# item (`{"B": bytes}`); an item without one holds nothing."""
    blob = item.get(STORE_TOTALS, {}).get("B")
    if blob is None:
        return {}
    document: dict[str, list[int]] = json.loads(zlib.decompress(blob))
    return document


def store_day_amounts(item: dict[str, Any]) -> Iterator[tuple[str, str, str, list[int]]]:
    """(store, currency, business day, [orders, refunds, gross_minor, refunds_minor]) of a raw
    DAYS# item."""
    day = _text(item, "sk")
    for key, amounts in sorted(decode_store_totals(item).items()):
        store, _, currency = key.rpartition("/")
        yield store, currency, day, amounts


def report_from_items(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The running totals from raw DynamoDB items (`{"S": ...}` / `{"N": ...}` attribute values):

    {"stores": {store_id: {currency: {orders, refunds, gross_minor, refunds_minor, net_sales_minor}}},
     "shards": {shard_id: {"currencies": {currency: {...same...}}, "events", "duplicates",
                           "conflicts", "quarantined", "segments", "last_window_end"}},
     "currencies": {currency: {...same, over every shard...}}}
    """
    stores: dict[str, dict[str, dict[str, int]]] = {}
    shards: dict[str, dict[str, Any]] = {}
    currencies: dict[str, dict[str, int]] = {}
    for item in items:
        pk, sk = _text(item, "pk"), _text(item, "sk")
        if pk.startswith(DAYS_PREFIX):
            for store, currency, _, amounts in store_day_amounts(item):
                _add_amounts(stores.setdefault(store, {}).setdefault(currency, {}), amounts)
        elif pk.startswith(SHARD_PREFIX):
            shard = shards.setdefault(pk.removeprefix(SHARD_PREFIX), {"currencies": {}})
            if sk == COUNTERS:
                shard.update({name: _number(item, name) for name in SHARD_COUNTERS})
                shard["last_window_end"] = _text(item, "last_window_end")
            elif sk.startswith(TOTAL_PREFIX):
                currency = sk.removeprefix(TOTAL_PREFIX)
                _add(shard["currencies"].setdefault(currency, {}), item)
                _add(currencies.setdefault(currency, {}), item)
    return {"stores": stores, "shards": shards, "currencies": currencies}
