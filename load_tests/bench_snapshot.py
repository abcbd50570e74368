"""The snapshot job on a big archive: wall time and peak memory for N archived events.

An archive of N events is written to the embedded emulator's S3 exactly as the archiver writes
it (one gzip JSON-lines object per 100 Kinesis records, each a KPL aggregate of 100 events as the
producer sends them, keyed per shard and arrival hour), from the simulator's fleet (1,000
stores, 1-5 line baskets), over 4 shards and the hour before now, with 2% of the events sent
twice (a producer resend, at another position). The snapshot decodes every record with the
aggregator's pipeline. Then, each in a fresh
child process (so its peak RSS is its own; the emulator runs in another child):
- baseline: the plain read of the same archive (LIST, GET, gunzip, split lines) and nothing else;
- snapshot: `SnapshotJob.run()`, the whole job: horizon, scan, partitions, reduce, finish.
The ratio snapshot / plain read is the comparable figure (2 shared cores: absolute times move).
Peak RSS is measured for two archive sizes to show that memory does not grow with N.

    python -m load_tests.bench_snapshot [--events 1000000] [--repeat 3]   # writes reports/bench_snapshot.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from base64 import b64encode
from pathlib import Path
from typing import Any, Final

from load_tests.bench import Figure
from producer.simulator import Fleet, FleetConfig
from salesstream.core.archive import ArchivedRecord, archive_key, encode_object
from salesstream.core.kpl import aggregate
from salesstream.core.sharding import HASH_KEY_MAX, Shard
from salesstream.deploy.template import Template
from salesstream.emulator.embedded import EmbeddedEmulator
from salesstream.emulator.provision import provision
from salesstream.emulator.targets import Endpoint

REPORT: Final = Path("reports") / "bench_snapshot.json"
SHARDS: Final = 4
EVENTS_PER_RECORD: Final = 100  # the producer's KPL aggregates
RECORDS_PER_OBJECT: Final = 100  # BatchSize
RESENT: Final = 0.02
SPAN_MS: Final = 3_000_000  # the events arrived over the 50 minutes before now
SMALL_EVENTS: Final = 250_000


def _template(endpoint: Endpoint) -> Template:
    return Template.load(
        parameters={"Stage": "b" + uuid.uuid4().hex[:8], "Target": "local", "ShardCount": SHARDS},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def write_archive(endpoint: Endpoint, template: Template, events: int, seed: int = 11) -> dict[str, int]:
    """N distinct events (plus 2% resent) archived as the archiver would have archived them."""
    rng = random.Random(seed)
    fleet = Fleet(FleetConfig(stores=1_000, seed=seed))
    s3 = endpoint.client("s3")
    bucket = template.physical_name("ArchiveBucket")
    width = (HASH_KEY_MAX + 1) // SHARDS
    shards = [Shard(f"shardId-{n:012d}", n * width, (n + 1) * width - 1) for n in range(SHARDS)]
    start = time.time_ns() // 1_000_000 - SPAN_MS - 60_000
    sequence = {shard.shard_id: 0 for shard in shards}
    users: dict[str, list[bytes]] = {shard.shard_id: [] for shard in shards}
    records: dict[str, list[ArchivedRecord]] = {shard.shard_id: [] for shard in shards}
    objects = written = 0

    def put_record(shard: Shard, arrival_ms: int) -> None:
        nonlocal objects
        sequence[shard.shard_id] += 1
        data = aggregate([("store", raw) for raw in users[shard.shard_id]], shard.explicit_hash_key)
        users[shard.shard_id].clear()
        kept = records[shard.shard_id]
        kept.append(
            ArchivedRecord(
                str(sequence[shard.shard_id]), arrival_ms / 1000, "store", b64encode(data).decode()
            )
        )
        if len(kept) >= RECORDS_PER_OBJECT:
            flush(shard)

    def flush(shard: Shard) -> None:
        nonlocal objects
        kept = records[shard.shard_id]
        if kept:
            first_ms = round(kept[0].arrival * 1000)
            key = archive_key(shard.shard_id, first_ms, kept[0].sequence_number, kept[-1].sequence_number)
            s3.put_object(Bucket=bucket, Key=key, Body=encode_object(shard, kept))
            kept.clear()
            objects += 1

    produced = 0
    arrival = start
    while produced < events:
        batch = fleet.events(min(50_000, events - produced))
        resends = [event for event in batch if rng.random() < RESENT]
        for raw in batch + resends:
            shard = shards[rng.randrange(SHARDS)]
            users[shard.shard_id].append(raw)
            arrival = start + SPAN_MS * written // round(events * (1 + RESENT))
            written += 1
            if len(users[shard.shard_id]) >= EVENTS_PER_RECORD:
                put_record(shard, arrival)
        produced += len(batch)
    for shard in shards:
        if users[shard.shard_id]:
            put_record(shard, arrival)
        flush(shard)
    return {"events": events, "user_records": written, "objects": objects}


_CHILD = """
import json, resource, sys, time
from salesstream.emulator.targets import Endpoint, Target
from salesstream.deploy.template import Template
from consumers.batch.resources import BatchResources
endpoint = Endpoint(Target.EMBEDDED, sys.argv[2])
template = Template.load(parameters=json.loads(sys.argv[3]), region="us-east-1",
                         account_id=endpoint.account_id(), endpoint_url=endpoint.url)
resources = BatchResources.from_template(endpoint, template)
started = time.perf_counter()
if sys.argv[1] == "snapshot":
    from consumers.batch.snapshot import SnapshotJob
    outcome = SnapshotJob(resources).run()
    counts = outcome.snapshot.counts
else:
    import gzip
    s3, bucket, lines = resources.s3, resources.settings.archive_bucket, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="archive/"):
        for entry in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            lines += len(gzip.decompress(body).splitlines())
    counts = {"archive_lines": lines}
elapsed = time.perf_counter() - started
# VmHWM: this program's own high-water mark (ru_maxrss keeps the forking parent's across exec)
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "peak_rss_mib": peak, "counts": counts}))
"""


def _child(mode: str, endpoint: Endpoint, template: Template) -> dict[str, Any]:
    parameters = {name: template.parameters[name] for name in ("Stage", "Target", "ShardCount")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _CHILD, mode, endpoint.url or "", json.dumps(parameters)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(events: int, repeat: int) -> dict[str, Any]:
    with EmbeddedEmulator(in_subprocess=True) as endpoint:
        endpoint.activate()
        template = _template(endpoint)
        provision(template, endpoint)
        generated = time.perf_counter()
        archive: dict[str, Any] = {**write_archive(endpoint, template, events)}
        archive["write_seconds"] = round(time.perf_counter() - generated, 1)
        reads, snapshots = [], []
        for _ in range(repeat):  # interleaved: both see the same neighbours on the machine
            reads.append(_child("read", endpoint, template))
            snapshots.append(_child("snapshot", endpoint, template))
        assert all(s["counts"]["events"] == events for s in snapshots), snapshots[0]["counts"]
        return {"archive": archive, "reads": reads, "snapshots": snapshots}


def _figures(events: int, measured: dict[str, Any]) -> list[Figure]:
    label = f"{events:,} archived events"

    def figure(what: str, unit: str, values: list[float], baseline: str = "", base: float = 0) -> Figure:
        return Figure(
            benchmark="snapshot",
            metric=f"{label}: {what}",
            unit=unit,
            best=min(values),
            median=statistics.median(values),
            runs=len(values),
            baseline=baseline or None,
            ratio=min(values) / base if base else None,
        )

    reads = [r["seconds"] for r in measured["reads"]]
    snaps = [s["seconds"] for s in measured["snapshots"]]
    rss = [s["peak_rss_mib"] for s in measured["snapshots"]]
    read_rss = [r["peak_rss_mib"] for r in measured["reads"]]
    return [
        figure("plain archive read", "s", reads),
        figure("snapshot job", "s", snaps, "plain archive read", min(reads)),
        figure("snapshot peak RSS", "MiB", rss, "plain read's peak RSS", min(read_rss)),
    ]


def run(repeat: int) -> list[Figure]:
    """`make bench`: 1,000,000 events and 250,000 events (memory must not grow with N)."""
    runs = max(1, min(repeat, 3))
    results = {events: measure(events, runs) for events in (SMALL_EVENTS, 1_000_000)}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2))
    return [figure for events, measured in results.items() for figure in _figures(events, measured)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="+", default=[SMALL_EVENTS, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for events in args.events:
        measured = measure(events, args.repeat)
        results[str(events)] = measured
        for figure in _figures(events, measured):
            ratio = f"  ({figure.ratio:.2f}x {figure.baseline})" if figure.ratio is not None else ""
            print(f"{figure.metric}: best {figure.best:.2f} {figure.unit}, median {figure.median:.2f}{ratio}")
        print(f"  archive: {measured['archive']}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {"command": " ".join(["python -m load_tests.bench_snapshot", *sys.argv[1:]]), "results": results},
            indent=2,
        )
    )
    print(f"written to {REPORT}")


if __name__ == "__main__":
    main()
