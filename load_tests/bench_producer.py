"""The producer's encode path, without network: validate (size cap, card scan, strict schema),
route to the shard, aggregate, cut into PutRecords calls.

Figures (events per CPU-second of one thread, i.e. per core):
- baseline: `json.loads` of the same events, measured in the same run;
- encode path with aggregation on and off;
- the two ways to write the KPL format: aws-kinesis-agg's RecordAggregator (per shard, as the
  producer would have to use it) against our builder driving the protobuf schema directly;
- events per 25 KB PUT payload unit (not timed) for 250-byte events and for the simulator's
  events, with plain aggregates and with compressed ones;
- compression: the encode path with compressed aggregates against plain ones (same run), and the
  consumers' decode path (`decode_records`: base64, envelope, de-aggregation, card scan,
  validation) on compressed records against plain aggregates of the same events;
- the parts, each against what it replaced: the compiled contract (`wire.decode_event`) against
  the pydantic dict path, ISA-L's deflate against zlib's, and the path past validation;
- the simulator's own generation rate.

`python -m load_tests.bench_producer --versus DIR` runs the encode path of an earlier checkout
(DIR, e.g. `git archive COMMIT | tar -x -C DIR`) and of this tree in alternating subprocesses,
and prints the medians and their ratio; `--breakdown` prints the microseconds per event of the
whole path and of each part.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aws_kinesis_agg.aggregator import RecordAggregator

from load_tests.bench import Figure, per_second
from load_tests.bench_aggregator import T0_MS, kinesis_record
from producer.aggregation import (
    PAYLOAD_UNIT_BYTES,
    Accepted,
    AggregateBuilder,
    Compression,
    Entry,
    envelope,
)
from producer.encoder import Encoder, accept, accept_many
from producer.sender import calls
from producer.shards import Shard, ShardMap
from producer.simulator import CHUNK, Fleet, FleetConfig
from salesstream.core.contract import screen_many, validate_wire
from salesstream.core.kpl import aggregate, compress, deaggregate, unwrap
from salesstream.core.lambda_events import KinesisEventRecord
from salesstream.core.records import decode_records
from salesstream.core.wire import decode_event

NAME: Final = "producer"
EVENTS: Final = 20_000
SHARDS: Final = 4


def encode(events: list[bytes], *, aggregate: bool, compress: bool = False) -> list[list[Entry]]:
    """The whole encode path: what `Producer.submit_many` does before it calls PutRecords, in
    chunks of the simulator's size (the size cap and card scan once per chunk, then per event the
    schema, the route and the aggregate)."""
    encoder = Encoder(aggregate=aggregate, compression=Compression() if compress else None)
    encoder.route(ShardMap.uniform(SHARDS))
    entries = []
    for start in range(0, len(events), CHUNK):
        accepted, refused = accept_many(events[start : start + CHUNK])
        if refused:
            raise RuntimeError(f"the benchmark's events are refused: {refused[0][1]}")
        entries += encoder.add_many(accepted)
    entries.extend(encoder.drain())
    return list(calls(entries))


def with_record_aggregator(routed: list[tuple[Shard, Accepted]]) -> list[bytes]:
    """aws-kinesis-agg's RecordAggregator, one per destination shard (routing done beforehand)."""
    aggregators: dict[str, RecordAggregator] = {}
    out = []
    for shard, event in routed:
        aggregator = aggregators.get(shard.shard_id)
        if aggregator is None:
            aggregator = aggregators[shard.shard_id] = RecordAggregator(max_size=PAYLOAD_UNIT_BYTES)
        full = aggregator.add_user_record(event.store_id, event.raw)
        if full is not None:
            out.append(full.get_contents()[2])
    out.extend(agg.get_contents()[2] for a in aggregators.values() if (agg := a.clear_and_get()) is not None)
    return out


def with_protobuf_schema(routed: list[tuple[Shard, Accepted]]) -> list[bytes]:
    """Our AggregateBuilder (the schema's body written by hand), one per destination shard
    (routing done beforehand)."""
    builders: dict[str, AggregateBuilder] = {}
    out = []
    for shard, event in routed:
        builder = builders.get(shard.shard_id)
        if builder is None:
            builder = builders[shard.shard_id] = AggregateBuilder(shard)
        if (entry := builder.add(event)) is not None:
            out.append(entry.data)
    out.extend(entry.data for b in builders.values() if (entry := b.take()) is not None)
    return out


def _per_shard(aggregates: list[bytes], shard_map: ShardMap) -> dict[str, list[bytes]]:
    """The user records in these aggregates, in order per destination shard."""
    records: dict[str, list[bytes]] = {}
    for data in aggregates:
        for record in deaggregate(data, "unused"):
            records.setdefault(shard_map.shard_for(record.partition_key).shard_id, []).append(record.data)
    return records


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def sized_events(size: int, count: int) -> list[bytes]:
    """Valid events of exactly `size` bytes from 20 stores: compact ids, one line (size >= 250
    for up to 46,656 events)."""
    out = []
    for number in range(count):
        event = {
            "schema_version": 1,
            "event_id": "",
            "event_type": "order_placed",
            "order_id": "o1",
            "store_id": f"s{'abcdefghijklmnopqrst'[number % 20]}",
            "terminal_id": "t1",
            "occurred_at": "2026-11-23T10:15:00Z",
            "currency": "EUR",
            "lines": [{"sku": "G42", "quantity": 2, "unit_price_minor": 1250}],
            "total_minor": 2500,
        }
        base = len(json.dumps(event, separators=(",", ":")))
        event["event_id"] = _base36(number).ljust(size - base, "x")
        raw = json.dumps(event, separators=(",", ":")).encode()
        if len(raw) != size:
            raise ValueError(f"cannot make {count} distinct events of {size} bytes")
        out.append(raw)
    return out


def events_per_unit(events: list[bytes]) -> tuple[float, float]:
    """(mean events per full aggregate, mean event size); every aggregate is one payload unit."""
    full = [call_entry for call in encode(events, aggregate=True) for call_entry in call]
    full = [entry for entry in full if entry.size > PAYLOAD_UNIT_BYTES * 0.9]  # not the flush leftovers
    assert all(entry.payload_units == 1 for entry in full)
    return sum(len(e.events) for e in full) / len(full), sum(map(len, events)) / len(events)


def compressed_events_per_unit(events: list[bytes]) -> tuple[float, float]:
    """(events per payload unit over every compressed record cut on the way, the first ones cut
    before the ratio was known included; mean compression ratio). The final drain's partly
    filled records are left out, as for plain aggregates."""
    encoder = Encoder(compression=Compression())
    encoder.route(ShardMap.uniform(SHARDS))
    cut = [entry for raw in events if (entry := encoder.add(accept(raw))) is not None]
    plain = sum(len(unwrap(e.data)) for e in cut)
    return sum(len(e.events) for e in cut) / sum(e.payload_units for e in cut), plain / sum(
        len(e.data) for e in cut
    )


def _decode_figures(events: list[bytes], repeat: int) -> list[Figure]:
    """The consumers' decode path over the producer's records, plain aggregates vs compressed."""

    def records(compress: bool) -> list[KinesisEventRecord]:
        entries = [entry for call in encode(events, aggregate=True, compress=compress) for entry in call]
        return [kinesis_record(entry.data, n, T0_MS + n) for n, entry in enumerate(entries)]

    plain, packed = records(compress=False), records(compress=True)
    decoded = [sorted(raw for _, raw, *_ in decode_records(rs).accepted) for rs in (plain, packed)]
    if decoded[0] != decoded[1] or decoded[1] != sorted(events):
        raise RuntimeError("compressed and plain records do not decode to the same events")
    reference = _timed(
        "decode path, plain aggregates, simulator events", len(events), lambda: decode_records(plain), repeat
    )
    compressed = _timed(
        "decode path, compressed aggregates, simulator events",
        len(events),
        lambda: decode_records(packed),
        repeat,
    )
    return [
        reference.model_copy(update={"note": f"{len(plain)} records"}),
        compressed.model_copy(
            update={
                "baseline": "plain aggregates",
                "ratio": compressed.best / reference.best,
                "note": f"{len(packed)} records",
            }
        ),
    ]


def _timed(metric: str, events: int, work: Callable[[], object], repeat: int) -> Figure:
    best, median = per_second(events, work, repeat)
    return Figure(benchmark=NAME, metric=metric, unit="events/s", best=best, median=median, runs=repeat)


def _timed_together(events: int, works: dict[str, Callable[[], object]], repeat: int) -> dict[str, Figure]:
    """Each work once per round, round after round: a figure and its baseline see the same
    neighbours on a shared machine (per_second's back-to-back runs of one work do not)."""
    rates: dict[str, list[float]] = {metric: [] for metric in works}
    for _ in range(repeat):
        for metric, work in works.items():
            started = time.thread_time()
            work()
            rates[metric].append(events / (time.thread_time() - started))
    return {
        metric: Figure(
            benchmark=NAME,
            metric=metric,
            unit="events/s",
            best=max(values),
            median=statistics.median(values),
            runs=repeat,
        )
        for metric, values in rates.items()
    }


def _versus(figure: Figure, baseline: Figure, name: str) -> Figure:
    """The figure with its ratio to a baseline of the same run (best / best; the note gives the
    ratio of the medians)."""
    return figure.model_copy(
        update={
            "baseline": name,
            "ratio": figure.best / baseline.best,
            "note": f"median ratio {figure.median / baseline.median:.2f}x",
        }
    )


def _encode_figures(label: str, events: list[bytes], repeat: int) -> list[Figure]:
    """The encode path on these events, each figure against json.loads of the same events,
    all interleaved."""
    mean_size = sum(map(len, events)) / len(events)
    figures = _timed_together(
        len(events),
        {
            f"baseline: json.loads, {label}": lambda: [json.loads(raw) for raw in events],
            f"encode path, aggregated, {label}": lambda: encode(events, aggregate=True),
            f"encode path, aggregated + compressed, {label}": lambda: encode(
                events, aggregate=True, compress=True
            ),
            f"encode path, not aggregated, {label}": lambda: encode(events, aggregate=False),
            f"validation only (one event at a time), {label}": lambda: [accept(raw) for raw in events],
        },
        repeat,
    )
    baseline, aggregated, compressed, plain, validation = figures.values()
    return [
        baseline.model_copy(update={"note": f"mean event {mean_size:.0f} B"}),
        _versus(aggregated, baseline, "json.loads"),
        _versus(compressed, baseline, "json.loads"),
        _versus(plain, baseline, "json.loads"),
        _versus(validation, baseline, "json.loads"),
    ]


def _part_figures(events: list[bytes], repeat: int) -> list[Figure]:
    """The parts of the path on simulator events, each against what it replaced (same run,
    interleaved): the compiled contract against the pydantic dict path, ISA-L's deflate against
    zlib's; and what the path costs past validation."""
    count = len(events)
    accepted = [accept(raw) for raw in events]

    def past_validation() -> None:
        encoder = Encoder(compression=Compression())
        encoder.route(ShardMap.uniform(SHARDS))
        entries = []
        for start in range(0, count, CHUNK):
            entries += encoder.add_many(accepted[start : start + CHUNK])
        list(calls(entries + encoder.drain()))

    # aggregates of the size the compressed path closes them at (~9x one payload unit)
    aggregates = [
        aggregate([(a.store_id, a.raw) for a in accepted[n : n + 550]]) for n in range(0, count, 550)
    ]
    if any(unwrap(envelope(data, 1)) != data for data in aggregates):
        raise RuntimeError("an ISA-L envelope does not open to its aggregate")
    figures = _timed_together(
        count,
        {
            "validation only: pydantic dict path (contract.validate_wire, before)": lambda: [
                validate_wire(raw) for raw in events
            ],
            "validation only: compiled contract (wire.decode_event, kept)": lambda: [
                decode_event(raw) for raw in events
            ],
            "route + aggregate + compress + cut, events already validated": past_validation,
            "compression: zlib level 1 (before)": lambda: [compress(data, 1) for data in aggregates],
            "compression: ISA-L level 1 (kept)": lambda: [envelope(data, 1) for data in aggregates],
        },
        repeat,
    )
    pydantic_path, compiled, past, zlib_level_1, isal_level_1 = figures.values()
    return [
        pydantic_path,
        _versus(compiled, pydantic_path, "pydantic dict path"),
        past,
        zlib_level_1,
        _versus(isal_level_1, zlib_level_1, "zlib level 1"),
    ]


def run(repeat: int) -> list[Figure]:
    events = Fleet(FleetConfig(stores=200, seed=1)).events(EVENTS)
    figures = [
        *_encode_figures("250-byte events", sized_events(250, EVENTS), repeat),
        *_encode_figures("simulator events", events, repeat),
        *_part_figures(events, repeat),
    ]

    shard_map = ShardMap.uniform(SHARDS)
    routed = [(shard_map.shard_for(event.store_id), event) for event in map(accept, events)]
    ours, theirs = with_protobuf_schema(routed), with_record_aggregator(routed)
    if _per_shard(ours, shard_map) != _per_shard(theirs, shard_map):
        raise RuntimeError("the two KPL writers disagree on the user records")
    reference = _timed(
        "KPL format: aws-kinesis-agg RecordAggregator",
        EVENTS,
        lambda: with_record_aggregator(routed),
        repeat,
    )
    figures.append(reference)
    driven = _timed(
        "KPL format: protobuf body written by hand (kept)",
        EVENTS,
        lambda: with_protobuf_schema(routed),
        repeat,
    )
    figures.append(
        driven.model_copy(update={"baseline": "RecordAggregator", "ratio": driven.best / reference.best})
    )

    for label, sample in (
        ("250-byte events", sized_events(250, 5_000)),
        ("simulator, 1-line baskets", Fleet(FleetConfig(stores=200, seed=2, max_lines=1)).events(5_000)),
        ("simulator, 1-5 lines", events[:5_000]),
    ):
        per_unit, size = events_per_unit(sample)
        figures.append(
            Figure(
                benchmark=NAME,
                metric=f"events per 25 KB payload unit, {label}",
                unit="events",
                best=per_unit,
                median=per_unit,
                runs=1,
                note=f"mean event {size:.0f} B; unit = {PAYLOAD_UNIT_BYTES} B of data + partition key",
            )
        )

    for label, sample in (
        ("250-byte events", sized_events(250, EVENTS)),
        ("simulator, 1-line baskets", Fleet(FleetConfig(stores=200, seed=2, max_lines=1)).events(EVENTS)),
        ("simulator, 1-5 lines", events),
    ):
        per_unit, ratio = compressed_events_per_unit(sample)
        figures.append(
            Figure(
                benchmark=NAME,
                metric=f"events per 25 KB payload unit, compressed, {label}",
                unit="events",
                best=per_unit,
                median=per_unit,
                runs=1,
                note=f"compression ratio {ratio:.1f}; target >= 95",
            )
        )
    figures += _decode_figures(events, repeat)

    generator = Fleet(FleetConfig(stores=1_000, seed=3))
    figures.append(_timed("simulator generation", EVENTS, lambda: generator.events(EVENTS), repeat))
    return figures


# --- this code against an earlier checkout, interleaved ----------------------------------------
# The encode path of another tree (a `git archive` of an earlier commit) and of this one, in
# alternating subprocesses on the same events and interpreter: "today's code measured in the
# same run". Only `encode` and the simulator are used, which every version has.

_VERSUS_CHILD: Final = """
import json, sys, time
from load_tests.bench_producer import encode
from producer.simulator import Fleet, FleetConfig
events = Fleet(FleetConfig(stores=200, seed=1)).events(20_000)
rates = {}
for label, compress in (("aggregated", False), ("aggregated + compressed", True)):
    for _ in range(int(sys.argv[1])):
        started = time.thread_time()
        encode(events, aggregate=True, compress=compress)
        rates.setdefault(label, []).append(len(events) / (time.thread_time() - started))
started = time.thread_time()
[json.loads(raw) for raw in events]
rates["json.loads"] = [len(events) / (time.thread_time() - started)]
print(json.dumps(rates))
"""


def versus(other: Path, rounds: int, repeat: int) -> dict[str, dict[str, float]]:
    """Median events/s per figure for each tree, `rounds` alternations of `repeat` runs each."""
    trees = {"earlier": other.resolve(), "this": Path(__file__).resolve().parents[1]}
    rates: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            done = subprocess.run(  # noqa: S603 - our own interpreter and snippet
                [sys.executable, "-c", _VERSUS_CHILD, str(repeat)],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                capture_output=True,
                text=True,
                check=True,
            )
            for label, values in json.loads(done.stdout).items():
                rates[name].setdefault(label, []).extend(values)
    return {name: {label: statistics.median(v) for label, v in by.items()} for name, by in rates.items()}


def breakdown(repeat: int) -> dict[str, float]:
    """Microseconds per simulator event (CPU time, median of `repeat`) of the whole path and of
    each of its parts, run one after the other in each round."""
    events = Fleet(FleetConfig(stores=200, seed=1)).events(10_000)
    chunks = [events[start : start + CHUNK] for start in range(0, len(events), CHUNK)]
    accepted = [accept(raw) for raw in events]
    aggregates = [
        aggregate([(a.store_id, a.raw) for a in accepted[n : n + 550]]) for n in range(0, len(events), 550)
    ]

    def route_aggregate_cut() -> None:
        encoder = Encoder()
        encoder.route(ShardMap.uniform(SHARDS))
        entries = []
        for start in range(0, len(accepted), CHUNK):
            entries += encoder.add_many(accepted[start : start + CHUNK])
        list(calls(entries + encoder.drain()))

    parts: dict[str, Callable[[], object]] = {
        "whole path, aggregated + compressed": lambda: encode(events, aggregate=True, compress=True),
        "json.loads (the baseline)": lambda: [json.loads(raw) for raw in events],
        "size cap + card scan, once per chunk (screen_many)": lambda: [screen_many(c) for c in chunks],
        "validation, screened (wire.decode_event)": lambda: [
            decode_event(raw, screened=True) for raw in events
        ],
        "validation + Accepted (accept), screened": lambda: [accept(raw, screened=True) for raw in events],
        "route + aggregate + cut, plain aggregates (MD5 included)": route_aggregate_cut,
        "MD5 of the aggregates alone": lambda: [hashlib.md5(data).digest() for data in aggregates],  # noqa: S324
        "ISA-L envelopes of the aggregates": lambda: [envelope(data, 1) for data in aggregates],
    }
    costs: dict[str, list[float]] = {label: [] for label in parts}
    for _ in range(repeat):
        for label, work in parts.items():
            started = time.thread_time()
            work()
            costs[label].append((time.thread_time() - started) / len(events) * 1e6)
    return {label: statistics.median(values) for label, values in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description="the encode path's parts, or this tree against an earlier one"
    )
    parser.add_argument(
        "--versus", type=Path, help="an earlier tree (git archive of a commit) to run interleaved"
    )
    parser.add_argument("--breakdown", action="store_true", help="microseconds per event of each part")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.breakdown:
        for label, micros in breakdown(args.repeat).items():
            print(f"{label:58} {micros:6.2f} us/event (median)")
    if args.versus is not None:
        medians = versus(args.versus, args.rounds, args.repeat)
        for label, this in medians["this"].items():
            earlier = medians["earlier"][label]
            print(
                f"{label:26} earlier {earlier:>9,.0f}/s this {this:>9,.0f}/s {this / earlier:.2f}x (median)"
            )


if __name__ == "__main__":
    main()
