"""The speed layer fed from the orders table against the same fed from the Kinesis stream.

The same seeded fleet's events, on the embedded emulator (a child process), one shard each:
- kinesis (the baseline, measured in the same run): the producer (compressed KPL aggregates)
  into the stream, the runtime stepping the real aggregator on a virtual clock until every
  window is closed;
- table: the table writer (one item per event, batch_write_item by 25) into the orders table,
  the runtime stepping the same aggregator on the table's stream.
Each run's totals are checked against its writer's tally to the cent before a figure is kept.
Figures: events/s through the speed layer (writing excluded), invocations per million events,
and the modelled AWS cost per million events of what differs between the two sources (writes
and stream reads, Lambda requests; Lambda duration is not modelled here): prices from
load_tests/prices.yaml. DynamoDB Streams reads made by Lambda are free (DynamoDB Developer
Guide, "Evaluate your DynamoDB streams usage"); a table write is one write unit per KB of item.

First, the emulator's own GetRecords before and after salesstream/emulator/moto_fixes.py's
plain-JSON answer: the same table's stream read to its tip (Limit 1,000) by moto's serializer
as shipped and by the fix, interleaved round by round on an in-process emulator, best of
ROUNDS; CPU of this process (client and server: both are in it).

    python -m load_tests.bench_table_source [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Final

from consumers.speed.layout import AMOUNTS, DAYS_PREFIX, store_day_amounts
from load_tests.cost import Prices
from producer.producer import Producer
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.settings import ProducerSettings
from producer.simulator import Fleet, FleetConfig
from salesstream.cli.table_writer import TableWriter
from salesstream.core.checks import compare_totals
from salesstream.deploy.template import Template
from salesstream.emulator import moto_fixes
from salesstream.emulator.embedded import EmbeddedEmulator
from salesstream.emulator.provision import provision
from salesstream.runtime import Runtime, VirtualClock

REPORT = Path("reports") / "bench_table_source.json"
MILLION: Final = 1_000_000
_KB: Final = 1024
ROUNDS: Final = 5
_QUIET_HANDLERS: Final = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}


def _template(endpoint: Any, table: bool) -> Template:
    return Template.load(
        parameters={
            "Stage": "b" + uuid.uuid4().hex[:8],
            "ShardCount": 1,
            "WindowSeconds": 60,
            "Target": "local",
            "OrdersTableSource": "on" if table else "off",
        },
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def _events(count: int) -> list[bytes]:
    return Fleet(FleetConfig(stores=50, terminals_per_store=3, seed=11, refund_share=0.03)).events(count)


def _counted(endpoint: Any, template: Template) -> dict[str, dict[str, dict[str, int]]]:
    counted: dict[str, dict[str, dict[str, int]]] = {}
    paginator = endpoint.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=template.physical_name("AggregatesTable")):
        for item in page["Items"]:
            if item["pk"]["S"].startswith(DAYS_PREFIX):
                for store, currency, _, amounts in store_day_amounts(item):
                    row = counted.setdefault(store, {}).setdefault(currency, {})
                    for name, amount in zip(AMOUNTS, amounts, strict=True):
                        row[name] = row.get(name, 0) + amount
    return counted


def _consume(template: Template, endpoint: Any) -> tuple[float, Runtime]:
    clock = VirtualClock()
    runtime = Runtime(template, endpoint, clock=clock, functions=["AggregatorFunction"])
    # imported once the runtime has set the function's environment (its loggers read it)
    from consumers.speed.handler import aggregator

    aggregator.cache_clear()  # a cold start on this stack's environment
    started = time.perf_counter()
    runtime.run_until_idle()
    clock.set(max(clock.now_ms(), time.time_ns() // 1_000_000))
    clock.advance(61 + runtime.options.window_close_grace_seconds)
    runtime.run_until_idle()
    return time.perf_counter() - started, runtime


def _check(tally: list[Any], endpoint: Any, template: Template, runtime: Runtime) -> None:
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for row in tally:
        expected.setdefault(row.store_id, {})[row.currency] = row.model_dump()
    if errors := runtime.stats().errors:
        raise AssertionError(f"consumer errors: {errors[:3]}")
    if mismatches := compare_totals(expected, _counted(endpoint, template)):
        raise AssertionError(f"{len(mismatches)} mismatches, first {mismatches[0]}")


def _kinesis_run(endpoint: Any, events: list[bytes], prices: Prices) -> dict[str, Any]:
    template = _template(endpoint, table=False)
    provision(template, endpoint)
    spool = Path("reports") / f"bench-table-source-{uuid.uuid4().hex[:6]}.jsonl"
    spool.parent.mkdir(parents=True, exist_ok=True)
    producer = Producer(
        endpoint.client("kinesis", PRODUCER_CLIENT_CONFIG),
        template.physical_name("OrdersStream"),
        spool,
        settings=ProducerSettings(),
    )
    started = time.perf_counter()
    with producer:
        producer.submit_many(events)
    written = time.perf_counter() - started
    spool.unlink(missing_ok=True)
    result = producer.result
    consumed, runtime = _consume(template, endpoint)
    _check(result.tally, endpoint, template, runtime)
    invocations = runtime.stats().totals()["invocations"]
    units = sum(count.payload_units for count in result.shards.values())
    scale = MILLION / result.sent
    cost = {
        "Kinesis PUT payload units": units * scale * prices.kinesis.put_payload_units_per_million / MILLION,
        "Lambda requests": invocations * scale * prices.lambda_.requests_per_million / MILLION,
    }
    return {
        "events": result.sent,
        "write_seconds": round(written, 3),
        "consume_seconds": round(consumed, 3),
        "events_per_second": round(result.sent / consumed),
        "invocations_per_million": round(invocations * scale),
        "cost_per_million_usd": {k: round(v, 6) for k, v in cost.items()},
        "cost_note": f"plus {prices.kinesis.shard_hour} USD per shard-hour, whatever the volume",
    }


def _raw_table_read(endpoint: Any, table: str) -> float:
    """Seconds to read the table's stream to its tip with plain GetRecords (no runtime, no
    handler): what the emulator itself costs."""
    arn = endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = endpoint.client("dynamodbstreams")
    started = time.perf_counter()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            iterator = response["NextShardIterator"]
            if not response["Records"]:
                break
    return time.perf_counter() - started


def _read_to_tip(endpoint: Any, table: str) -> tuple[int, float, float]:
    """(records, CPU seconds of this process, wall seconds) of one plain read of the stream."""
    cpu, wall = time.process_time(), time.perf_counter()
    arn = endpoint.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = endpoint.client("dynamodbstreams")
    records = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += len(response["Records"])
            iterator = response.get("NextShardIterator") if response["Records"] else None
    return records, time.process_time() - cpu, time.perf_counter() - wall


def _new_orders_table(endpoint: Any) -> str:
    template = _template(endpoint, table=True)
    provision(template, endpoint)
    return template.physical_name("OrdersTable")


def _best(runs: dict[str, list[tuple[float, float]]], count: int) -> dict[str, Any]:
    best = {variant: min(samples) for variant, samples in runs.items()}
    (shipped, _), (fixed, _) = best.values()
    return {
        **{
            variant: {
                "cpu_seconds": round(cpu, 4),
                "cpu_ms_per_record": round(cpu * 1000 / count, 4),
                "wall_seconds": round(wall, 4),
            }
            for variant, (cpu, wall) in best.items()
        },
        "cpu_ratio_shipped_to_fixed": round(shipped / fixed, 2),
    }


def emulator_before_after(events: list[bytes]) -> dict[str, Any]:
    """Plain GetRecords of the same stream by moto as shipped and with the fix, interleaved."""
    reads: dict[str, list[tuple[float, float]]] = {"moto as shipped": [], "plain JSON (the fix)": []}
    with EmbeddedEmulator() as endpoint:  # in this process: the patch is switched here
        table = _new_orders_table(endpoint)
        TableWriter(endpoint.client("dynamodb"), table).submit_many(events)
        try:
            for _ in range(ROUNDS):
                for variant, samples in reads.items():
                    moto_fixes.apply_stream_patches(fast_get_records=variant == "plain JSON (the fix)")
                    records, cpu, wall = _read_to_tip(endpoint, table)
                    if records != len(events):
                        raise AssertionError(f"{variant}: {records} records read, {len(events)} written")
                    samples.append((cpu, wall))
        finally:
            moto_fixes.apply_stream_patches()
    return {"records": len(events), "rounds": ROUNDS, "get_records": _best(reads, len(events))}


def _table_run(endpoint: Any, events: list[bytes], prices: Prices) -> dict[str, Any]:
    template = _template(endpoint, table=True)
    provision(template, endpoint)
    writer = TableWriter(endpoint.client("dynamodb"), template.physical_name("OrdersTable"))
    started = time.perf_counter()
    writer.submit_many(events)
    written = time.perf_counter() - started
    raw = _raw_table_read(endpoint, template.physical_name("OrdersTable"))
    consumed, runtime = _consume(template, endpoint)
    _check(writer.result.tally, endpoint, template, runtime)
    result = writer.result
    invocations = sum(s.invocations for s in runtime.stats().shards if s.mapping.endswith("TableMapping"))
    # a write unit per KB of item (attribute names and values): an item is a bit larger than its
    # event's JSON; ceil per item, as DynamoDB bills
    write_units = sum(math.ceil((len(raw) + 64) / _KB) for raw in events)
    scale = MILLION / result.sent
    cost = {
        "DynamoDB write units (orders table)": write_units
        * scale
        * prices.dynamodb.write_request_units_per_million
        / MILLION,
        "DynamoDB Streams reads by Lambda": 0.0,
        "Lambda requests": invocations * scale * prices.lambda_.requests_per_million / MILLION,
    }
    return {
        "events": result.sent,
        "write_seconds": round(written, 3),
        "consume_seconds": round(consumed, 3),
        "events_per_second": round(result.sent / consumed),
        "invocations_per_million": round(invocations * scale),
        "write_units_per_million": round(write_units * scale),
        "plain_get_records_seconds": round(raw, 3),
        "share_of_consume_in_plain_get_records": round(raw / consumed, 3),
        "cost_per_million_usd": {k: round(v, 6) for k, v in cost.items()},
        "cost_note": "plus table storage (items expire after 30 days by TTL)",
    }


def measure(quick: bool) -> dict[str, Any]:
    count = 2_000 if quick else 10_000
    # the handlers' per-invocation log line and EMF metrics, as in the demo: noise here
    os.environ.update(_QUIET_HANDLERS)
    prices = Prices.load()
    events = _events(count)
    emulator = emulator_before_after(events[: count // 5])
    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        endpoint.activate()
        kinesis = _kinesis_run(endpoint, events, prices)
        table = _table_run(endpoint, events, prices)
    results = {
        "events": count,
        "emulator_before_after": emulator,
        "kinesis": kinesis,
        "table": table,
        "ratio_events_per_second_table_to_kinesis": round(
            table["events_per_second"] / kinesis["events_per_second"], 3
        ),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(results, indent=2))
    reads = emulator["get_records"]
    shipped, fixed = reads["moto as shipped"], reads["plain JSON (the fix)"]
    print(
        f"the emulator's GetRecords read to the tip, {emulator['records']} records, best of {ROUNDS}: "
        f"moto as shipped {shipped['cpu_ms_per_record']} ms CPU per record, the fix "
        f"{fixed['cpu_ms_per_record']} ms: {reads['cpu_ratio_shipped_to_fixed']}x less"
    )
    for name in ("kinesis", "table"):
        run = results[name]
        cost = sum(run["cost_per_million_usd"].values())
        print(
            f"{name:7s}: {run['events_per_second']:>6} events/s through the speed layer "
            f"({run['events']} events, consumed in {run['consume_seconds']} s, "
            f"written in {run['write_seconds']} s); "
            f"{run['invocations_per_million']} invocations per million events; "
            f"modelled source cost {cost:.6f} USD per million events ({run['cost_note']})"
        )
    print(f"ratio table/kinesis (events/s): {results['ratio_events_per_second_table_to_kinesis']}")
    print(
        f"the emulator's GetRecords alone (no runtime, no handler) read the table's stream in "
        f"{table['plain_get_records_seconds']} s: {table['share_of_consume_in_plain_get_records']:.0%} "
        "of the table source's consume time"
    )
    print(f"written to {REPORT}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    measure(parser.parse_args().quick)


if __name__ == "__main__":
    main()
