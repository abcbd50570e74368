"""Where the speed layer keeps things: the aggregates table's keys, and its running totals read
back from raw items. No AWS call here, so a reader (the API, the batch layer, `salesstream
report`) imports the layout without the writer (segments.py) and its permissions.

AGGREGATES_TABLE (single table, pk/sk strings; what each item holds: segments.py):

| pk                  | sk                                   | what |
|---------------------|--------------------------------------|------|
| `SEGMENT#<shardId>` | `<window start ms:015d>#<first pos>` | one window segment (written once) |
| `SHARD#<shardId>`   | `COUNTERS`                           | the shard's running counters |
| `SHARD#<shardId>`   | `TOTAL#<currency>`                   | the shard's running totals per currency |
| `STORE#<storeId>`   | `DAY#<business day>#<currency>`      | a store's running totals per business day |
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

SEGMENT_PREFIX: Final = "SEGMENT#"
SHARD_PREFIX: Final = "SHARD#"
STORE_PREFIX: Final = "STORE#"
COUNTERS: Final = "COUNTERS"
TOTAL_PREFIX: Final = "TOTAL#"
DAY_PREFIX: Final = "DAY#"
WATERMARK_PREFIX: Final = "wm#"

AMOUNTS: Final = ("orders", "refunds", "gross_minor", "refunds_minor")
SHARD_COUNTERS: Final = ("events", "duplicates", "conflicts", "quarantined", "segments")


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _add(into: dict[str, int], item: dict[str, Any]) -> None:
    for name in AMOUNTS:
        into[name] = into.get(name, 0) + _number(item, name)
    into["net_sales_minor"] = into["gross_minor"] - into["refunds_minor"]


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
        if pk.startswith(STORE_PREFIX) and sk.startswith(DAY_PREFIX):
            _add(stores.setdefault(_text(item, "store_id"), {}).setdefault(_text(item, "currency"), {}), item)
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
