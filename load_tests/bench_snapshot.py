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

Then the recompute alone, in memory (no S3): 1M archived events decoded, routed to partitions,
chunked and reduced, as events per CPU-second of this thread, against the same steps before they
were made faster (load_tests/legacy_archive.py), interleaved.

    python -m load_tests.bench_snapshot [--events N ...] [--recompute N] [--repeat 3]
    # writes reports/bench_snapshot.json; `--events` with no value: the recompute only
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from base64 import b64encode
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

from consumers.batch.archive_reader import read_back
from load_tests import legacy_archive
from load_tests.bench import Figure
from producer.simulator import Fleet, FleetConfig
from salesstream.core.archive import ArchivedRecord, archive_key, encode_object
from salesstream.core.kpl import aggregate
from salesstream.core.recompute import PartitionResult, Sighting, decode_sightings, reduce_partition, route
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
RECOMPUTE_EVENTS: Final = 1_000_000
RECOMPUTE_PARTITIONS: Final = 10  # 100,000 sightings each, the job's default partition size
HORIZON_OPEN: Final = 2**62  # every archived event is before it


def _template(endpoint: Endpoint) -> Template:
    return Template.load(
        parameters={"Stage": "b" + uuid.uuid4().hex[:8], "Target": "local", "ShardCount": SHARDS},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )


def archive_objects(
    events: int, seed: int = 11, tally: dict[str, int] | None = None
) -> Iterator[tuple[str, bytes]]:
    """N distinct events (plus 2% resent) as the archiver would have archived them: (key, body)
    of each object, in the order the archiver would have written them; `tally` gets the number of
    user records (the resends included)."""
    rng = random.Random(seed)
    fleet = Fleet(FleetConfig(stores=1_000, seed=seed))
    width = (HASH_KEY_MAX + 1) // SHARDS
    shards = [Shard(f"shardId-{n:012d}", n * width, (n + 1) * width - 1) for n in range(SHARDS)]
    start = time.time_ns() // 1_000_000 - SPAN_MS - 60_000
    sequence = {shard.shard_id: 0 for shard in shards}
    users: dict[str, list[bytes]] = {shard.shard_id: [] for shard in shards}
    records: dict[str, list[ArchivedRecord]] = {shard.shard_id: [] for shard in shards}
    written = 0

    def put_record(shard: Shard, arrival_ms: int) -> Iterator[tuple[str, bytes]]:
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
            yield from flush(shard)

    def flush(shard: Shard) -> Iterator[tuple[str, bytes]]:
        kept = records[shard.shard_id]
        if kept:
            first_ms = round(kept[0].arrival * 1000)
            key = archive_key(shard.shard_id, first_ms, kept[0].sequence_number, kept[-1].sequence_number)
            yield key, encode_object(shard, kept)
            kept.clear()

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
                yield from put_record(shard, arrival)
        produced += len(batch)
    for shard in shards:
        if users[shard.shard_id]:
            yield from put_record(shard, arrival)
        yield from flush(shard)
    if tally is not None:
        tally["user_records"] = written


def write_archive(endpoint: Endpoint, template: Template, events: int, seed: int = 11) -> dict[str, int]:
    """The archive of `archive_objects` in the stack's bucket."""
    s3 = endpoint.client("s3")
    bucket = template.physical_name("ArchiveBucket")
    objects, tally = 0, {"user_records": 0}
    for key, body in archive_objects(events, seed, tally):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        objects += 1
    return {"events": events, "user_records": tally["user_records"], "objects": objects}


# --- the recompute in memory, per CPU-second -----------------------------------------------


class _Recompute(NamedTuple):
    read_back: Callable[[bytes], Any]
    route: Callable[[Any, int, list[list[str]]], int]
    decode_sightings: Callable[[str], Iterable[Sighting]]
    reduce_partition: Callable[..., PartitionResult]


NOW = _Recompute(read_back, route, decode_sightings, reduce_partition)
BEFORE = _Recompute(
    legacy_archive.read_back,
    legacy_archive.route,
    legacy_archive.decode_sightings,
    legacy_archive.reduce_partition,
)


def recompute(objects: list[bytes], path: _Recompute, partitions: int = RECOMPUTE_PARTITIONS) -> int:
    """The snapshot's scan and reduce on archive objects in memory (no S3, no cursor): every
    object decoded and its sightings routed, each partition's lines gzip'd as a chunk, then each
    chunk decoded and its partition reduced. The events counted."""
    buffers: list[list[str]] = [[] for _ in range(partitions)]
    for body in objects:
        read = path.read_back(body)
        path.route(read.sightings, HORIZON_OPEN, buffers)
        read.counts(HORIZON_OPEN)
    chunks = [gzip.compress("".join(lines).encode(), 1) for lines in buffers]
    buffers.clear()
    events = 0
    for chunk in chunks:
        reduced = path.reduce_partition(
            path.decode_sightings(gzip.decompress(chunk).decode()),
            window_ms=60_000,
            dedup_horizon_ms=3_600_000,
        )
        events += reduced.counts["events"]
    return events


def measure_recompute(events: int, repeat: int) -> dict[str, Any]:
    """Events per CPU-second of this thread, today's path and the one before, interleaved."""
    objects = [body for _, body in archive_objects(events)]
    rates: dict[str, list[float]] = {"now": [], "before": []}
    for _ in range(repeat):
        for name, path in (("now", NOW), ("before", BEFORE)):
            started = time.thread_time()
            counted = recompute(objects, path)
            rates[name].append(events / (time.thread_time() - started))
            assert counted == events, (name, counted)
    return {"events": events, "objects": len(objects), "rates": rates}


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
time_before = time.process_time()
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
cpu = time.process_time() - time_before  # this process only: the emulator runs in another
# VmHWM: this program's own high-water mark (ru_maxrss keeps the forking parent's across exec)
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": peak, "counts": counts}))
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
    per_cpu_second = [events / s["cpu_seconds"] for s in measured["snapshots"]]
    return [
        figure("plain archive read", "s", reads),
        figure("snapshot job", "s", snaps, "plain archive read", min(reads)),
        figure("snapshot peak RSS", "MiB", rss, "plain read's peak RSS", min(read_rss)),
        Figure(
            benchmark="snapshot",
            metric=f"{label}: snapshot job, events per CPU-second of its process (the emulator's apart)",
            unit="events/s",
            best=max(per_cpu_second),
            median=statistics.median(per_cpu_second),
            runs=len(per_cpu_second),
        ),
    ]


def _recompute_figure(measured: dict[str, Any]) -> Figure:
    now, before = measured["rates"]["now"], measured["rates"]["before"]
    return Figure(
        benchmark="snapshot",
        metric=(
            f"recompute of {measured['events']:,} archived events in memory (decode, route, "
            "partition chunks, reduce): events per CPU-second"
        ),
        unit="events/s",
        best=round(max(now)),
        median=round(statistics.median(now)),
        runs=len(now),
        baseline="the recompute before (load_tests/legacy_archive.py)",
        ratio=round(max(now) / max(before), 2),
        note=f"before: best {max(before):,.0f}, median {statistics.median(before):,.0f}",
    )


def run(repeat: int) -> list[Figure]:
    """`make bench`: 1,000,000 events and 250,000 events (memory must not grow with N), and the
    recompute of 1,000,000 events in memory against the code before."""
    runs = max(1, min(repeat, 3))
    results: dict[str, Any] = {str(events): measure(events, runs) for events in (SMALL_EVENTS, 1_000_000)}
    recomputed = measure_recompute(RECOMPUTE_EVENTS, runs)
    results["recompute"] = recomputed
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(results, indent=2))
    figures = [
        figure for events in (SMALL_EVENTS, 1_000_000) for figure in _figures(events, results[str(events)])
    ]
    return [*figures, _recompute_figure(recomputed)]


def _print(figure: Figure) -> None:
    ratio = f"  ({figure.ratio:.2f}x {figure.baseline})" if figure.ratio is not None else ""
    print(f"{figure.metric}: best {figure.best:,.2f} {figure.unit}, median {figure.median:,.2f}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, nargs="*", default=[SMALL_EVENTS, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--recompute",
        type=int,
        default=RECOMPUTE_EVENTS,
        metavar="EVENTS",
        help="archived events for the in-memory recompute against the code before (0: none)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for events in args.events:
        measured = measure(events, args.repeat)
        results[str(events)] = measured
        for figure in _figures(events, measured):
            _print(figure)
        print(f"  archive: {measured['archive']}")
    if args.recompute:
        results["recompute"] = measure_recompute(args.recompute, args.repeat)
        _print(_recompute_figure(results["recompute"]))
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
