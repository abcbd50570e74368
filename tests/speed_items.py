"""The speed layer's running totals as tests read them: DAYS# items of the aggregates table
scanned through boto3's TypeDeserializer (`Binary` documents), decoded by the layout's own reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from consumers.speed import layout


def raw(item: dict[str, Any]) -> dict[str, Any]:
    """The attributes a DAYS# item's reader needs, back in their raw DynamoDB form."""
    return {"sk": {"S": item["sk"]}, layout.STORE_TOTALS: {"B": bytes(item[layout.STORE_TOTALS])}}


def store_day_amounts(item: dict[str, Any]) -> Iterator[tuple[str, str, str, list[int]]]:
    """(store, currency, business day, amounts) of a deserialized item; nothing for an item that
    is not a DAYS# item."""
    if str(item["pk"]).startswith(layout.DAYS_PREFIX):
        yield from layout.store_day_amounts(raw(item))


def lose_an_order(endpoint: Any, table: str, item: dict[str, Any]) -> tuple[str, str, str]:
    """One store's day in a DAYS# item loses an order (as a faulty writer would do it, under the
    item's version); returns (store, business day, currency)."""
    document = layout.decode_store_totals(raw(item))
    key = sorted(document)[0]
    document[key][0] -= 1
    endpoint.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
        UpdateExpression="SET #doc = :doc ADD #version :one",
        ExpressionAttributeNames={"#doc": layout.STORE_TOTALS, "#version": layout.VERSION},
        ExpressionAttributeValues={":doc": {"B": layout.encode_store_totals(document)}, ":one": {"N": "1"}},
    )
    store, _, currency = key.rpartition("/")
    return store, str(item["sk"]), currency
