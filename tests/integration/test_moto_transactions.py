"""The embedded emulator isolates transactions as DynamoDB does: several writers adding to one
item at once, some of their transactions cancelled, lose no update (salesstream/emulator/moto_fixes.py).

Segments of several shards add to one store's running totals when producers mix partition keys
in their aggregates; a cancelled transaction's rollback must not undo another one's ADD."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

WRITERS = 6
TRANSACTIONS = 40


def test_concurrent_transactions_on_one_item_lose_no_update_when_some_are_cancelled(
    make_stack: Any, endpoint: Any
) -> None:
    template, _ = make_stack()
    table = template.physical_name("AggregatesTable")
    key = {"pk": {"S": "STORE#shared"}, "sk": {"S": "DAY#2026-12-03#EUR"}}

    def writer(number: int) -> int:
        dynamodb = endpoint.client("dynamodb")
        applied = 0
        for attempt in range(TRANSACTIONS):
            cancel = attempt % 2 == 1  # every other one fails its last item's condition
            try:
                dynamodb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": table,
                                "Key": key,
                                "UpdateExpression": "ADD n :one",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {
                            "Put": {
                                "TableName": table,
                                "Item": {"pk": {"S": f"W#{number}"}, "sk": {"S": str(attempt)}},
                                "ConditionExpression": "attribute_exists(pk)"
                                if cancel
                                else "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
                applied += 1
            except dynamodb.exceptions.TransactionCanceledException:
                assert cancel
        return applied

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        applied = sum(pool.map(writer, range(WRITERS)))

    item = endpoint.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert applied == WRITERS * TRANSACTIONS // 2
    assert int(item["n"]["N"]) == applied
