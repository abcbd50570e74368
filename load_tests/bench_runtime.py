"""How fast the event-source-mapping runtime feeds a no-op handler on the embedded emulator.

4 shards, the template's windowed mapping (BatchSize 100, 1 s batching window), records of
~250 bytes (an order event). Three figures, measured in the same run on the same stream:
- baseline: the same records read with plain GetRecords, one thread per shard (what the
  emulator can serve; no events, no invocations, no checkpoints);
- threaded: `Runtime.start()` as the CLI runs it (a worker thread per shard);
- stepped: `Runtime.run_until_idle()` in one thread (tests, demos).
Ratios to the baseline are the comparable numbers: this machine's 2 cores are shared, so
absolute figures move from run to run. The emulator runs in a child process (its own core), so
this process's CPU time is the reader's alone: µs of CPU per record, for the runtime and for
plain GetRecords (botocore's parsing), is the figure least disturbed by neighbours.

A fourth figure needs no emulator: the runtime's own CPU per record on one GetRecords answer of
1,000 records (its read off the wire, the StreamRecord, its share of the event), against
botocore's parse of the same answer alone, for ~250 B records and for 25 KB ones (the size of
the load test's KPL aggregates); best of 7, thread time.

    python -m load_tests.bench_runtime [--quick]
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Final

import botocore.session
from botocore.parsers import create_parser

from load_tests.bench import Figure
from salesstream.core.windows import Window
from salesstream.deploy.template import Template
from salesstream.emulator.embedded import EmbeddedEmulator
from salesstream.emulator.provision import provision
from salesstream.runtime import Runtime, RuntimeOptions, VirtualClock, WallClock
from salesstream.runtime.events import Source, build_event, stream_record
from salesstream.runtime.kinesis import WIRE_RECORDS, records_as_on_the_wire
from salesstream.runtime.model import Batch, WireRecord

_MEASURED: Final = "AggregatorFunction"  # the mapping whose feed rate is measured

SHARDS = 4
REPORT = Path("reports") / "bench_runtime.json"
_ORDER = {
    "schema_version": 1,
    "event_type": "order_placed",
    "order_id": "ord-000000",
    "store_id": "store-0007",
    "terminal_id": "till-2",
    "occurred_at": "2026-11-23T10:15:00+01:00",
    "currency": "EUR",
    "lines": [{"sku": "SKU-000123", "quantity": 2, "unit_price_minor": 1250}],
    "total_minor": 2500,
}


def _no_op(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"state": event["state"], "batchItemFailures": []}


def _fill(kinesis: Any, stream: str, per_shard: int) -> dict[str, int]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    keys = [int(s["HashKeyRange"]["StartingHashKey"]) + 1 for s in shards]
    placed: dict[str, int] = {s["ShardId"]: 0 for s in shards}
    for start in range(0, per_shard * len(shards), 500):
        entries = []
        for i in range(start, min(start + 500, per_shard * len(shards))):
            data = json.dumps({**_ORDER, "event_id": f"evt-{i:08d}"}).encode()
            entries.append(
                {"Data": data, "PartitionKey": f"k{i}", "ExplicitHashKey": str(keys[i % len(keys)])}
            )
        for entry in kinesis.put_records(StreamName=stream, Records=entries)["Records"]:
            placed[entry["ShardId"]] += 1
    return placed


def _raw_read(kinesis: Any, stream: str, shard_ids: list[str]) -> float:
    """Seconds to read every shard to its end with GetRecords, a thread per shard."""

    def drain(shard_id: str) -> None:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            response = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            iterator = response["NextShardIterator"]
            if not response["Records"]:
                return

    threads = [threading.Thread(target=drain, args=(shard_id,)) for shard_id in shard_ids]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _template(endpoint: Any) -> Template:
    return Template.load(
        parameters={"Stage": "b" + uuid.uuid4().hex[:8], "ShardCount": SHARDS, "Target": "local"},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def _threaded(
    template: Template, endpoint: Any, placed: dict[str, int]
) -> tuple[float, dict[str, float], Runtime]:
    """Seconds until every record was delivered, and until each shard's were."""
    runtime = Runtime(
        template,
        endpoint,
        handlers={_MEASURED: _no_op},
        functions=[_MEASURED],  # the archiver's mapping would deliver every record again
        clock=WallClock(),
        options=RuntimeOptions(poll_interval_seconds=0.05),
    )
    done: dict[str, float] = {}
    started = time.perf_counter()
    runtime.start()
    while len(done) < len(placed):
        for shard in runtime.stats().shards:
            if shard.shard_id not in done and shard.records_delivered >= placed[shard.shard_id]:
                done[shard.shard_id] = time.perf_counter() - started
        time.sleep(0.005)
    runtime.stop()
    return max(done.values()), done, runtime


def _stepped(
    template: Template, endpoint: Any, placed: dict[str, int]
) -> tuple[float, dict[str, float], Runtime]:
    """One thread steps every shard in turn: each shard is done when all are."""
    runtime = Runtime(
        template, endpoint, handlers={_MEASURED: _no_op}, functions=[_MEASURED], clock=VirtualClock()
    )
    started = time.perf_counter()
    runtime.run_until_idle()
    elapsed = time.perf_counter() - started
    assert runtime.stats().totals()["records_delivered"] == sum(placed.values())
    return elapsed, dict.fromkeys(placed, elapsed), runtime


def _get_records_answer(data_bytes: int, count: int) -> bytes:
    """A GetRecords answer's body as the emulator writes it."""
    order = json.dumps({**_ORDER, "event_id": "evt-00000000"}).encode()
    data = base64.b64encode((order * (data_bytes // len(order) + 1))[:data_bytes]).decode("ascii")
    first = 49590338271490256608559692538361571095921575989136588898
    records = [
        {
            "SequenceNumber": str(first + i),
            "ApproximateArrivalTimestamp": 1_764_770_000.123 + i / 1000,
            "Data": data,
            "PartitionKey": f"store-{i % 1000:04d}",
            "EncryptionType": "NONE",
        }
        for i in range(count)
    ]
    return json.dumps({"Records": records, "NextShardIterator": "AAAA", "MillisBehindLatest": 0}).encode()


def per_record_cpu(data_bytes: int, count: int = 1_000) -> dict[str, float]:
    """µs of CPU per record: botocore's parse of a GetRecords answer, and the runtime's work on
    the same answer (its read off the wire, the StreamRecord, the event), best of 7."""
    body = _get_records_answer(data_bytes, count)
    output_shape = botocore.session.get_session().get_service_model("kinesis").operation_model("GetRecords")
    shape = output_shape.output_shape
    source = Source("shardId-000000000001", "arn:aws:kinesis:us-east-1:0:stream/s", "us-east-1", "arn:role")

    def botocore_parse() -> None:
        create_parser("json").parse({"status_code": 200, "headers": {}, "body": body}, shape)

    def runtime_work() -> None:
        response = {"status_code": 200, "headers": {}, "body": body}
        custom: dict[str, Any] = {}
        records_as_on_the_wire(response, custom)
        parsed = create_parser("json").parse(response, shape)
        raws = [
            WireRecord(
                r["SequenceNumber"],
                round(r["ApproximateArrivalTimestamp"] * 1000),
                r["Data"],
                r["PartitionKey"],
            )
            for r in custom[WIRE_RECORDS]
        ]
        assert parsed["NextShardIterator"] == "AAAA"
        records = [stream_record(raw, source, 0) for raw in raws]
        window = Window.containing(raws[0].arrival_ms, 60)
        for start in range(0, count, 100):  # the template's BatchSize
            build_event(Batch(tuple(records[start : start + 100]), window), source, "{}")

    def best(work: Any) -> float:
        times = []
        for _ in range(7):
            started = time.thread_time()
            work()
            times.append(time.thread_time() - started)
        return round(min(times) / count * 1e6, 1)

    botocore_us, runtime_us = best(botocore_parse), best(runtime_work)
    return {
        "record_bytes": data_bytes,
        "botocore_parse_us": botocore_us,
        "runtime_us": runtime_us,
        "ratio_to_botocore_parse": round(runtime_us / botocore_us, 3),
    }


def run(repeat: int) -> list[Figure]:
    """`make bench`'s interface: one measurement (it drives the emulator for ~30 s), as figures."""
    measured = measure(quick=False)
    figures = []
    for name, run_figures in measured["runs"].items():
        per_shard = run_figures["per_shard_records_per_second"].values()
        figures += [
            Figure(
                benchmark="runtime",
                metric=f"records/s fed to a no-op handler, {SHARDS} shards, {name}",
                unit="records/s",
                best=run_figures["records_per_second"],
                median=run_figures["records_per_second"],
                runs=1,
                baseline="plain GetRecords",
                ratio=run_figures["ratio_to_baseline"],
                note=f"per shard {min(per_shard):,}-{max(per_shard):,}/s",
            ),
        ]
    for cost in measured["per_record_cpu"]:
        figures.append(
            Figure(
                benchmark="runtime",
                metric=f"the runtime's own CPU per record of {cost['record_bytes']:,} B, no network",
                unit="µs/record",
                best=cost["runtime_us"],
                median=cost["runtime_us"],
                runs=7,
                baseline="botocore's parse of the same GetRecords answer",
                ratio=cost["ratio_to_botocore_parse"],
                note=f"botocore's parse {cost['botocore_parse_us']} µs/record",
            )
        )
    return figures


def measure(quick: bool) -> dict[str, Any]:
    per_shard = 1_000 if quick else 5_000
    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        endpoint.activate()
        results: dict[str, Any] = {"shards": SHARDS, "records_per_shard": per_shard}
        runs: dict[str, Any] = {}
        for name, drive in (("threaded", _threaded), ("stepped", _stepped)):
            template = _template(endpoint)  # a fresh stream each: the same work for each figure
            provision(template, endpoint)
            kinesis = endpoint.client("kinesis")
            stream = template.streams()[0].name
            placed = _fill(kinesis, stream, per_shard)
            total = sum(placed.values())
            cpu_started = time.process_time()
            baseline = _raw_read(kinesis, stream, sorted(placed))
            baseline_cpu = time.process_time() - cpu_started
            cpu_started = time.process_time()
            elapsed, done, runtime = drive(template, endpoint, placed)
            runtime_cpu = time.process_time() - cpu_started
            stats = runtime.stats()
            runs[name] = {
                "records": total,
                "seconds": round(elapsed, 3),
                "records_per_second": round(total / elapsed),
                "per_shard_records_per_second": {
                    shard_id: round(placed[shard_id] / seconds) for shard_id, seconds in sorted(done.items())
                },
                "invocations": stats.totals()["invocations"],
                "baseline_get_records_per_second": round(total / baseline),
                "ratio_to_baseline": round(baseline / elapsed, 3),
                "cpu_us_per_record": round(runtime_cpu / total * 1e6, 1),
                "baseline_cpu_us_per_record": round(baseline_cpu / total * 1e6, 1),
            }
        results["runs"] = runs
    results["per_record_cpu"] = [per_record_cpu(250), per_record_cpu(25_000)]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(results, indent=2))
    for name, figures in runs.items():
        print(
            f"runtime {name:8s}: {figures['records_per_second']:>7} records/s in total over {SHARDS} shards "
            f"({figures['records']} records, {figures['invocations']} invocations, {figures['seconds']} s); "
            f"plain GetRecords {figures['baseline_get_records_per_second']} records/s; "
            f"ratio {figures['ratio_to_baseline']}"
        )
        print(
            f"  CPU per record: runtime {figures['cpu_us_per_record']} µs, "
            f"plain GetRecords {figures['baseline_cpu_us_per_record']} µs"
        )
        print(
            "  per shard:",
            ", ".join(f"{k[-3:]}={v}/s" for k, v in figures["per_shard_records_per_second"].items()),
        )
    for figures in results["per_record_cpu"]:
        print(
            f"runtime's own CPU per record of {figures['record_bytes']:,} B, no network: "
            f"{figures['runtime_us']} µs; botocore's parse of the same GetRecords answer "
            f"{figures['botocore_parse_us']} µs; ratio {figures['ratio_to_botocore_parse']}"
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
