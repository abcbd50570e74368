"""The cost model of the orders table as the source (load_tests/cost.py, `source="table"`): the
table's write units and the stream's reads take the Kinesis lines' place."""

from __future__ import annotations

import pytest

from load_tests.cost import Prices, model_cost
from tests.unit.test_cost_model import usage

PRICES = Prices.load()


def test_the_table_source_pays_a_write_unit_per_item_and_nothing_for_lambdas_stream_reads() -> None:
    # a million orders: one write unit each into the orders table, 4,000 for the pipeline's tables
    table = model_cost(
        usage(
            source="table",
            payload_units=0,
            kinesis_records=0,
            dynamodb_write_units=1_004_000,
            orders_table_write_units=1_000_000,
            stream_read_requests=20_000,
        ),
        PRICES,
    )
    lines = {line.item: line for line in table.pipeline}
    assert not [item for item in lines if item.startswith("Kinesis")]
    assert lines["DynamoDB orders-table writes"].usd_per_million == pytest.approx(0.625)
    reads = lines["DynamoDB Streams reads (GetRecords by Lambda: free)"]
    assert (reads.quantity_per_million, reads.usd_per_million) == (20_000, 0.0)
    pipeline_writes = lines["DynamoDB writes (the pipeline's tables)"]
    assert pipeline_writes.quantity_per_million == 4_000


def test_the_kinesis_source_is_modelled_as_before() -> None:
    stream = model_cost(usage(), PRICES)
    items = [line.item for line in stream.pipeline]
    assert items[:2] == ["Kinesis shard-hours", "Kinesis PUT payload units"]
    assert "DynamoDB writes" in items
    assert (
        stream.pipeline_total
        < model_cost(
            usage(source="table", dynamodb_write_units=1_004_000, orders_table_write_units=1_000_000), PRICES
        ).pipeline_total
    )
