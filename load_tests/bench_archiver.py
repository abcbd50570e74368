"""The archiver's per-event work beside the aggregator's, measured in one run, per core: what the
cost model in docs/deploy.md ("What it costs per million events") takes the archiver's Lambda
duration from.

- raw path: `consumers.archive.archive.archive_object`, the handler's whole work but the S3
  PUT: the event model, one card scan per Kinesis record's bytes, one JSON line per Kinesis
  record (its base64 text as received), gzip. No de-aggregation, no per-event work.
- decoded path (the archiver before, kept here as the baseline): the event model, the shared
  decode (strict de-aggregation, card screen, contract) and one JSON line per
  accepted event, gzip: the old archive format's lines.
- fold path: the aggregator's per-event work (load_tests/bench_aggregator.py).
- the archive write against today's code before it was made faster (load_tests/legacy_archive.py,
  the same handler work on the old encoding), on plain KPL aggregates and on compressed ones
  (gzip envelopes: what the producer sends by default).

All read the same invocations: 100 KPL aggregates of 100 orders each (BatchSize 100), plain or
each in its compressed envelope. Rates are events per CPU second of this thread, best and median
of `repeat` interleaved runs.

    python -m load_tests.bench_archiver [--repeat N]   # prints, writes reports/bench_archiver.json
"""

from __future__ import annotations

import argparse
import base64
import gc
import gzip
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from consumers.archive.archive import archive_object
from load_tests import legacy_archive
from load_tests.bench import Figure
from load_tests.bench_aggregator import SHARD, fold_path, order_payloads, windowed_invocations
from salesstream.core.kpl import compress
from salesstream.core.lambda_events import KinesisEvent, KinesisEventRecord
from salesstream.core.records import decode_records
from salesstream.core.sharding import Shard

EVENTS: Final = 100_000
WHOLE_RANGE: Final = Shard(SHARD, 0, 2**128 - 1)  # every record belongs to the shard it is read from
REPORT: Final = Path("reports/bench_archiver.json")


def raw_path(invocations: list[dict[str, Any]]) -> int:
    """The archiver's work on every invocation; the archived bytes."""
    written = 0
    for invocation in invocations:
        records = KinesisEvent.model_validate({"Records": invocation["Records"]}).Records
        archived, _ = archive_object(WHOLE_RANGE, records)
        written += archived.bytes
    return written


def legacy_raw_path(invocations: list[dict[str, Any]]) -> int:
    """The same work on the archive encoding as it was (load_tests/legacy_archive.py)."""
    written = 0
    for invocation in invocations:
        records = KinesisEvent.model_validate({"Records": invocation["Records"]}).Records
        written += len(legacy_archive.archive_object(WHOLE_RANGE, records)[2])
    return written


def enveloped(invocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same invocations with every aggregate in its compressed envelope (level 1, as the
    producer's default)."""

    def sealed(record: dict[str, Any]) -> dict[str, Any]:
        data = base64.b64encode(compress(base64.b64decode(record["kinesis"]["data"]), 1)).decode()
        return {**record, "kinesis": {**record["kinesis"], "data": data}}

    return [{**invocation, "Records": list(map(sealed, invocation["Records"]))} for invocation in invocations]


def decoded_path(invocations: list[dict[str, Any]]) -> int:
    """The archiver before raw records, on every invocation; the archived bytes."""
    written = 0
    for invocation in invocations:
        records = KinesisEvent.model_validate({"Records": invocation["Records"]}).Records
        written += len(decoded_object(records))
    return written


def decoded_object(records: Sequence[KinesisEventRecord]) -> bytes:
    """The old object: every record decoded, one line per accepted event (the old format, byte
    for byte), gzip level 6."""
    batch = decode_records(records)
    infos = batch.records
    lines = [
        b'{"shard":"%s","sequence_number":"%s","subsequence":%d,"arrival_ms":%d,"event":%s}\n'
        % (SHARD.encode(), infos[i].sequence_number.encode(), sub, infos[i].arrival_ms, raw)
        for _, raw, i, sub in batch.accepted
    ]
    return gzip.compress(b"".join(lines), compresslevel=6, mtime=0)


def measure(repeat: int) -> dict[str, Any]:
    events = order_payloads(EVENTS)
    invocations = windowed_invocations(events)
    compressed = enveloped(invocations)
    gc.collect()
    gc.freeze()  # the prepared events are the benchmark's: keep them out of the collector's passes
    paths: dict[str, Callable[[], object]] = {
        "raw path": lambda: raw_path(invocations),
        "raw path before": lambda: legacy_raw_path(invocations),
        "raw path, compressed": lambda: raw_path(compressed),
        "raw path before, compressed": lambda: legacy_raw_path(compressed),
        "decoded path": lambda: decoded_path(invocations),
        "fold path": lambda: fold_path([dict(i) for i in invocations]),
    }
    seen: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, work in paths.items():
            started = time.thread_time()
            work()
            seen[name].append(EVENTS / (time.thread_time() - started))
    gc.unfreeze()
    return {
        "events": EVENTS,
        "repeat": repeat,
        "mean_event_bytes": round(sum(map(len, events)) / EVENTS, 1),
        "best": {name: round(max(rates)) for name, rates in seen.items()},
        "median": {name: round(statistics.median(rates)) for name, rates in seen.items()},
        "archived_bytes_per_event": {
            "raw path": round(raw_path(invocations) / EVENTS, 1),
            "raw path before": round(legacy_raw_path(invocations) / EVENTS, 1),
            "raw path, compressed": round(raw_path(compressed) / EVENTS, 1),
            "raw path before, compressed": round(legacy_raw_path(compressed) / EVENTS, 1),
            "decoded path": round(decoded_path(invocations) / EVENTS, 1),
        },
    }


def run(repeat: int) -> list[Figure]:
    """`make bench`'s interface."""
    measured = measure(repeat)
    best, median = measured["best"], measured["median"]
    size = measured["archived_bytes_per_event"]
    return [
        *(
            Figure(
                benchmark="archiver",
                metric=f"archive write, {aggregates}: events per CPU-second",
                unit="events/s",
                best=best[path],
                median=median[path],
                runs=repeat,
                baseline=f"{before} (the encoding before)",
                ratio=round(best[path] / best[before], 2),
                note=(
                    f"{1e6 / best[path]:.2f} us/event; {size[path]:.1f} archived bytes/event; before: "
                    f"best {best[before]:,.0f}, median {median[before]:,.0f} events/s, "
                    f"{size[before]:.1f} bytes/event"
                ),
            )
            for path, before, aggregates in (
                (
                    "raw path, compressed",
                    "raw path before, compressed",
                    "compressed aggregates (the producer's default)",
                ),
                ("raw path", "raw path before", "plain KPL aggregates"),
            )
        ),
        Figure(
            benchmark="archiver",
            metric=(
                f"raw path (records as received, card scan, gzip), "
                f"{measured['mean_event_bytes']:.0f}-byte events"
            ),
            unit="events/s",
            best=best["raw path"],
            median=median["raw path"],
            runs=repeat,
            baseline="decoded path",
            ratio=round(best["raw path"] / best["decoded path"], 2),
            note=f"{1e6 / best['raw path']:.2f} us/event",
        ),
        Figure(
            benchmark="archiver",
            metric="decoded path (the archiver before: decode, a line per event, gzip)",
            unit="events/s",
            best=best["decoded path"],
            median=median["decoded path"],
            runs=repeat,
            baseline="fold path",
            ratio=round(best["decoded path"] / best["fold path"], 2),
            note=f"{1e6 / best['decoded path']:.2f} us/event",
        ),
        Figure(
            benchmark="archiver",
            metric="fold path (the aggregator's work on the same invocations)",
            unit="events/s",
            best=best["fold path"],
            median=median["fold path"],
            runs=repeat,
            note=f"{1e6 / best['fold path']:.2f} us/event",
        ),
        Figure(
            benchmark="archiver",
            metric="archived bytes per event: raw records (gzip JSON lines, base64 data)",
            unit="bytes",
            best=size["raw path"],
            median=size["raw path"],
            runs=1,
            baseline="decoded path's bytes",
            ratio=round(size["raw path"] / size["decoded path"], 2),
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench_archiver", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    figures = run(args.repeat)
    for figure in figures:
        ratio = f"  ({figure.ratio:.2f}x {figure.baseline})" if figure.ratio is not None else ""
        print(f"{figure.metric}: best {figure.best:,.1f} {figure.unit}, median {figure.median:,.1f}{ratio}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps([figure.model_dump() for figure in figures], indent=2) + "\n")
    print(f"written to {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
