"""The batch layer's integration harness: the template's stack on the embedded moto server, the
real producer, the real aggregator and archiver driven through the stream by the local runtime
(virtual clock), and the real snapshot job and reconciliation."""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from consumers.batch.reconcile import Reconciler
from consumers.batch.repair import Repairer
from consumers.batch.resources import BatchResources
from consumers.batch.snapshot import SnapshotJob, SnapshotOutcome
from producer import Producer, ProducerResult, ProducerSettings, producer_client
from producer.simulator import Fleet, FleetConfig
from salesstream.core.aggregation import Totals
from salesstream.core.batch import Reconciliation, SnapshotInfo
from salesstream.runtime import Hooks, Runtime, RuntimeOptions, VirtualClock
from tests.runtime_support import sleep_into_next_window
from tests.speed_items import store_day_amounts

STREAM_FUNCTIONS = ("AggregatorFunction", "ArchiverFunction")
# small work units, so a test's few hundred events still make several chunks and partitions
SMALL = {"snapshot_horizon_grace_seconds": 0, "snapshot_chunk_lines": 40, "snapshot_partition_events": 50}


def manual_producer(endpoint: Any, stream: str, spool: Path) -> Producer:
    """A long-lived producer that sends only on flush() or close(), never sleeps (its backoff is
    recorded, not waited), with a seeded jitter: the tests decide when records land."""
    return Producer(
        producer_client(endpoint_url=endpoint.url, region_name=endpoint.region),
        stream,
        spool,
        settings=ProducerSettings(linger_seconds=3600),
        sleep=lambda _: None,
        rng=random.Random(0),
    )


def cold_start() -> None:
    """Every batch and stream handler forgets its process state (clients, settings, indexes)."""
    from consumers.archive.handler import archiver
    from consumers.batch.handler import resources
    from consumers.speed.handler import aggregator

    for cached in (aggregator, archiver, resources):
        cached.cache_clear()


@dataclass
class Pipeline:
    endpoint: Any
    template: Any
    spool: Path
    window_seconds: int
    handlers: dict[str, Any] = field(default_factory=dict)
    clock: VirtualClock = field(default_factory=VirtualClock)
    results: list[ProducerResult] = field(default_factory=list)
    hooks: Hooks = field(default_factory=Hooks)
    functions: tuple[str, ...] = STREAM_FUNCTIONS
    runtime: Any = None

    def __post_init__(self) -> None:
        self.runtime = Runtime(
            self.template,
            self.endpoint,
            clock=self.clock,
            options=RuntimeOptions(window_close_grace_seconds=0),
            functions=self.functions,
            handlers=self.handlers,
            hooks=self.hooks,
        )

    # --- traffic ----------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return str(self.template.physical_name("OrdersStream"))

    def fleet_events(self, count: int, *, seed: int = 7, stores: int = 6) -> list[bytes]:
        return Fleet(FleetConfig(stores=stores, seed=seed, refund_share=0.1)).events(count)

    def send(self, events: Iterable[bytes], *, aggregate: bool = True) -> ProducerResult:
        client = producer_client(endpoint_url=self.endpoint.url, region_name=self.endpoint.region)
        producer = Producer(client, self.stream, self.spool, settings=ProducerSettings(aggregate=aggregate))
        for event in events:
            assert producer.submit(event) is None
        result = producer.close()
        assert result.spooled == 0, result.error
        self.results.append(result)
        return result

    def put_raw(self, payloads: Iterable[bytes], partition_key: str = "store-x") -> None:
        """Bytes straight into the stream (what no producer would send: the bad-input cases)."""
        kinesis = self.endpoint.client("kinesis")
        answer = kinesis.put_records(
            StreamName=self.stream, Records=[{"Data": p, "PartitionKey": partition_key} for p in payloads]
        )
        assert answer["FailedRecordCount"] == 0

    def settle(self) -> None:
        """Consume everything, wait (real time) until the last window is over, close windows."""
        self.runtime.run_until_idle()
        sleep_into_next_window(self.window_seconds)
        self.clock.set(max(self.clock.now_ms(), time.time_ns() // 1_000_000) + 5_000)
        self.runtime.run_until_idle()

    # --- the batch layer --------------------------------------------------------------------

    def resources(self, **settings: Any) -> BatchResources:
        return BatchResources.from_template(self.endpoint, self.template, **{**SMALL, **settings})

    def snapshot(self, **settings: Any) -> SnapshotOutcome:
        outcome = SnapshotJob(self.resources(**settings)).run()
        assert outcome.finished
        return outcome

    def reconcile(self) -> Reconciliation:
        return Reconciler(self.resources()).reconcile()

    def repair(self, reconciliation: Reconciliation) -> Reconciliation:
        resources = self.resources()
        return Repairer(resources, Reconciler(resources), operator="tester").repair(reconciliation)

    # --- reading tables ---------------------------------------------------------------------

    def items(self, logical_id: str) -> list[dict[str, Any]]:
        deserialize = TypeDeserializer().deserialize
        table = self.template.physical_name(logical_id)
        found = []
        for page in self.endpoint.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            found += [{k: deserialize(v) for k, v in item.items()} for item in page["Items"]]
        return sorted(found, key=lambda item: (item["pk"], item["sk"]))

    def segments(self) -> list[dict[str, Any]]:
        return [item for item in self.items("AggregatesTable") if item["pk"].startswith("SEGMENT#")]

    def speed_totals(self) -> dict[tuple[str, str], Totals]:
        """(store, currency) -> the speed layer's running totals, summed over business days."""
        totals: dict[tuple[str, str], Totals] = {}
        for item in self.items("AggregatesTable"):
            for store, currency, _, amounts in store_day_amounts(item):
                totals[(store, currency)] = totals.get((store, currency), Totals()) + Totals(*amounts)
        return totals

    def batch_totals(self, snapshot: SnapshotInfo) -> dict[tuple[str, str], Totals]:
        """(store, currency) -> the snapshot's totals, summed over business days."""
        totals: dict[tuple[str, str], Totals] = {}
        for row in self.resources().views.store_day_rows(snapshot):
            key = (row.store_id, row.currency)
            totals[key] = totals.get(key, Totals()) + row.totals
        return totals

    def tally(self) -> dict[tuple[str, str], int]:
        """(store, currency) -> net minor units the producers had acknowledged, each event once."""
        net: dict[tuple[str, str], int] = {}
        for result in self.results:
            for row in result.tally:
                key = (row.store_id, row.currency)
                net[key] = net.get(key, 0) + row.net_minor
        return net

    def archive(self) -> list[str]:
        s3 = self.endpoint.client("s3")
        bucket = self.template.physical_name("ArchiveBucket")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="archive/")
        return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def corrupt_segment(pipeline: Pipeline, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Rewrite one segment's per-day totals in place; returns the segment's key attributes."""
    dynamodb = pipeline.endpoint.client("dynamodb")
    table = pipeline.template.physical_name("AggregatesTable")
    segment = pipeline.segments()[0]
    days = json.loads(zlib.decompress(segment["days_zjson"].value))
    change(days)
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": segment["pk"]}, "sk": {"S": segment["sk"]}},
        UpdateExpression="SET days_zjson = :days",
        ExpressionAttributeValues={":days": {"B": zlib.compress(json.dumps(days).encode())}},
    )
    return segment
