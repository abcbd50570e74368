"""What one window boundary of the default load test costs the embedded emulator: the 12 shards'
segments persisted, with a shard's stores in one DAYS# item per business day (the layout) against
one guarded ADD per store and day (the layout before it, rebuilt here as the baseline).

At each boundary of the default load test (1,000 stores, 12 shards) every shard persists a
segment of ~85 stores. The baseline is what `SegmentStore` wrote before: one TransactWriteItems
of the counters, the totals per currency, one guarded update per store-day and the segment put.
The layout is `SegmentStore.persist` as it is: a consistent GetItem of the shard's DAYS# item,
then one TransactWriteItems of the counters, the totals, that item and the segment put. The
moto server runs in this process, so `time.process_time` counts the emulator's CPU and the
client's; the two layouts alternate boundary by boundary on one table, each on shards of its own.

    python -m load_tests.bench_boundary [--boundaries N]   # prints, writes reports/bench_boundary.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

from consumers.speed.segments import SegmentStore
from salesstream.core.aggregation import Segment, WindowState, segment_of
from salesstream.core.positions import Position
from salesstream.core.windows import Window
from salesstream.deploy.template import Template
from salesstream.emulator.embedded import EmbeddedEmulator
from salesstream.emulator.provision import provision

REPORT: Final = Path("reports") / "bench_boundary.json"
SHARDS: Final = 12
STORES: Final = 1_000
WINDOW_MS: Final = 60_000
DAY: Final = date(2026, 11, 23)


def segment(shard: str, number: int, stores: list[str]) -> Segment:
    """The number-th window segment of a shard, with sales of each of `stores`."""
    state = WindowState()
    for store in stores:
        state.totals[(store, "EUR", DAY.toordinal())] = [40 + number % 7, 2, 123_456, 1_999]
    state.events = 42 * len(stores)
    state.first, state.last = Position(10_000 * number + 1), Position(10_000 * number + 9_999)
    state.arrival_min_ms, state.arrival_max_ms = number * WINDOW_MS, number * WINDOW_MS + 59_000
    state.lateness.add(850)
    return segment_of(
        state, shard, Window(number * WINDOW_MS, (number + 1) * WINDOW_MS), terminated_early=False
    )


def per_store_persist(store: SegmentStore, segment: Segment) -> None:
    """The baseline: one guarded ADD per store and day (`STORE#<store>` / `DAY#<day>#<currency>`)
    with the counters, the totals and the segment put, in one TransactWriteItems."""
    store_days = [
        store._guarded_add(  # the same guarded update the layout before used
            segment,
            {"pk": "STORE#" + name, "sk": f"DAY#{day}#{currency}"},
            totals.as_dict(),
            {"store_id": name, "business_day": day, "currency": currency},
        )
        for (name, day, currency), totals in segment.result.by_store_day.items()
    ]
    operations = [*store.running_total_updates(segment), *store_days, store.segment_put(segment)]
    store.dynamodb.transact_write_items(TransactItems=operations)


def boundary(
    persist: Callable[[Segment], Any], shards: dict[str, list[str]], number: int
) -> tuple[float, float]:
    """Every shard's segment of one boundary persisted; (CPU ms, wall ms)."""
    cpu, wall = time.process_time(), time.perf_counter()
    for shard, stores in shards.items():
        persist(segment(shard, number, stores))
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--boundaries", type=int, default=15, help="boundaries per layout (default 15)")
    args = parser.parse_args(argv)
    stores = [f"store-{n:04d}" for n in range(STORES)]
    with EmbeddedEmulator() as endpoint:
        template = Template.load(
            parameters={"Stage": "b" + uuid.uuid4().hex[:8], "Target": "local"},
            region=endpoint.region,
            account_id=endpoint.account_id(),
            endpoint_url=endpoint.url,
        )
        provision(template, endpoint)
        table = template.physical_name("AggregatesTable")
        store = SegmentStore(endpoint.client("dynamodb"), table)
        layouts: dict[str, tuple[Callable[[Segment], Any], dict[str, list[str]]]] = {
            "one item per store and day (before)": (
                lambda s: per_store_persist(store, s),
                {f"before-{n:02d}": stores[n::SHARDS] for n in range(SHARDS)},
            ),
            "one DAYS# item per shard and day": (
                store.persist,
                {f"days-{n:02d}": stores[n::SHARDS] for n in range(SHARDS)},
            ),
        }
        figures: dict[str, dict[str, list[float]]] = {name: {"cpu_ms": [], "wall_ms": []} for name in layouts}
        for number in range(1, args.boundaries + 1):  # interleaved: both see the same machine
            for name, (persist, shards) in layouts.items():
                cpu, wall = boundary(persist, shards, number)
                figures[name]["cpu_ms"].append(cpu)
                figures[name]["wall_ms"].append(wall)
    summary = {
        name: {
            f"{metric} {how}": round(pick(values), 1)
            for metric, values in measured.items()
            for how, pick in (("median", statistics.median), ("best", min))
        }
        for name, measured in figures.items()
    }
    before, after = (summary[name] for name in layouts)
    ratios = {key: round(after[key] / before[key], 3) for key in before}
    report = {
        "what": f"one window boundary: {SHARDS} shards' segments, {STORES:,} stores, one business day",
        "boundaries_per_layout": args.boundaries,
        "layouts": summary,
        "ratio (DAYS# / per store)": ratios,
        "raw": figures,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "raw"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
