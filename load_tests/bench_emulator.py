"""What one window boundary costs the embedded emulator: TransactWriteItems of a real segment.

At each window boundary every shard persists its segment in one TransactWriteItems built by
`SegmentStore` (consumers/speed/segments.py): the shard's counters and per-currency totals
(guarded updates, conditional on the shard's watermark), its `DAYS#` item per business day (all
its stores, written over the version it read: one consistent GetItem before), and the segment's
put: about 4 items, whatever the number of stores. This benchmark starts the embedded moto
server in this process, provisions the template's aggregates table, and times those
transactions (wall time per call, as the aggregator sees it) with moto's expression code as
shipped and with each of `salesstream.emulator.moto_fixes.EXPRESSION_PATCHES` (alone and all together),
the variants interleaved round by round on the same table. In the same run: a plain PutItem and
a plain UpdateItem of the same guarded shape, the floor of one request. Then the server side of
the transactions is profiled (cProfile, in the server's request threads) with every patch on.

    python -m load_tests.bench_emulator [--quick]   # prints, writes reports/bench_emulator.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Final

from moto.dynamodb.responses import DynamoHandler
from rich.console import Console
from rich.table import Table

from consumers.speed.segments import SegmentStore
from load_tests.bench import Figure
from salesstream.core.aggregation import Segment, WindowState, segment_of
from salesstream.core.positions import Position
from salesstream.core.windows import Window
from salesstream.deploy.template import Template
from salesstream.emulator import moto_fixes
from salesstream.emulator.embedded import EmbeddedEmulator
from salesstream.emulator.provision import provision
from salesstream.emulator.targets import Endpoint

REPORT: Final = Path("reports") / "bench_emulator.json"
STORES_PER_SHARD: Final = 85  # 1,000 stores over 12 shards, one business day, one currency
SHARD: Final = "shardId-000000000003"
BASELINE_SHARD: Final = "shardId-000000000004"  # the plain UpdateItems' own watermark
WINDOW_MS: Final = 60_000
AS_SHIPPED: Final = "moto as shipped"
ALL_PATCHES: Final = "all expression patches"
PROFILED_TRANSACTIONS: Final = 20
PROFILE_ROWS: Final = 14


def segment(number: int, shard: str = SHARD) -> Segment:
    """The number-th window segment of a shard: STORES_PER_SHARD store-days with sales."""
    state = WindowState()
    day = date(2026, 11, 23).toordinal()
    for store in range(STORES_PER_SHARD):
        state.totals[(f"store-{store * 12:04d}", "EUR", day)] = [40 + number % 7, 2, 123_456, 1_999]
    state.events = 42 * STORES_PER_SHARD
    state.first, state.last = Position(10_000 * number + 1), Position(10_000 * number + 9_999)
    state.arrival_min_ms, state.arrival_max_ms = number * WINDOW_MS, number * WINDOW_MS + 59_000
    state.lateness.add(850)
    window = Window(number * WINDOW_MS, (number + 1) * WINDOW_MS)
    return segment_of(state, shard, window, terminated_early=False)


def variants() -> dict[str, list[str]]:
    """Variant name -> the expression patches in force."""
    every = list(moto_fixes.EXPRESSION_PATCHES)
    return {AS_SHIPPED: [], **{name: [name] for name in every}, ALL_PATCHES: every}


class Segments:
    """Consecutive segments of a shard: each one's watermark condition passes."""

    def __init__(self, shard: str = SHARD) -> None:
        self.shard = shard
        self.number = 0

    def next(self) -> Segment:
        self.number += 1
        return segment(self.number, self.shard)


def time_transactions(store: SegmentStore, segments: Segments, count: int) -> list[float]:
    """Milliseconds per transaction item of `count` persisted segments (one transaction each)."""
    per_item = []
    for _ in range(count):
        started = time.perf_counter()
        persisted = store.persist(segments.next())
        elapsed = time.perf_counter() - started
        if persisted.transactions != 1 or persisted.already_applied:
            raise RuntimeError(f"a benchmark segment was not one clean transaction: {persisted}")
        per_item.append(elapsed * 1000 / persisted.operations)
    return per_item


def time_plain_requests(store: SegmentStore, segments: Segments, count: int) -> dict[str, list[float]]:
    """Milliseconds per plain PutItem and per plain UpdateItem (one guarded store-day update)."""
    dynamodb, table = store.dynamodb, store.table
    times: dict[str, list[float]] = {"PutItem": [], "UpdateItem": []}
    for _ in range(count):
        number = segments.number
        put = {"pk": {"S": f"BENCH#{number}"}, "sk": {"S": "PUT"}, "n": {"N": str(number)}}
        started = time.perf_counter()
        dynamodb.put_item(TableName=table, Item=put)
        times["PutItem"].append((time.perf_counter() - started) * 1000)
        update = store.running_total_updates(segments.next())[-1]["Update"]
        del update["ReturnValuesOnConditionCheckFailure"]  # a transaction-only parameter
        started = time.perf_counter()
        dynamodb.update_item(**update)
        times["UpdateItem"].append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def server_profile() -> Iterator[cProfile.Profile]:
    """cProfile of moto's TransactWriteItems handler, in the server thread that answers it (the
    benchmark sends one request at a time, so one profiler is never on in two threads)."""
    profile = cProfile.Profile()
    handler = DynamoHandler.transact_write_items

    def profiled(self: DynamoHandler) -> Any:
        profile.enable()
        try:
            return handler(self)
        finally:
            profile.disable()

    DynamoHandler.transact_write_items = profiled  # type: ignore[method-assign]
    try:
        yield profile
    finally:
        DynamoHandler.transact_write_items = handler  # type: ignore[method-assign]


def profile_rows(profile: cProfile.Profile) -> dict[str, list[dict[str, Any]]]:
    """The top functions by own time and by cumulative time, each in % of the handler's time."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = max(cumulative for _, _, _, cumulative, _ in stats.values())

    def name(function: tuple[str, int, str]) -> str:
        path, line, func = function
        module = path.split("site-packages/")[-1].split("salesstream/")[-1]
        return f"{module}:{line}({func})"

    def rows(column: int) -> list[dict[str, Any]]:
        ranked = sorted(stats.items(), key=lambda item: item[1][column], reverse=True)[:PROFILE_ROWS]
        return [
            {
                "function": name(function),
                "calls": calls,
                "own_percent": round(100 * own / total, 1),
                "cumulative_percent": round(100 * cumulative / total, 1),
            }
            for function, (_, calls, own, cumulative, _) in ranked
        ]

    return {"by_own_time": rows(2), "by_cumulative_time": rows(3)}


def _summary(samples: list[float]) -> dict[str, float]:
    return {"best": round(min(samples), 3), "median": round(statistics.median(samples), 3)}


def _table(endpoint: Endpoint) -> str:
    template = Template.load(
        parameters={"Stage": "b" + uuid.uuid4().hex[:8], "Target": "local"},
        region=endpoint.region,
        account_id=endpoint.account_id(),
        endpoint_url=endpoint.url,
    )
    provision(template, endpoint)
    return template.physical_name("AggregatesTable")


def measure(quick: bool, repeat: int | None = None) -> dict[str, Any]:
    rounds = repeat or (3 if quick else 7)
    per_round = 3 if quick else 8
    with EmbeddedEmulator() as endpoint:  # in this process: the patches switch in the server too
        endpoint.activate()
        dynamodb = endpoint.client("dynamodb")
        table = _table(endpoint)
        store, segments, baseline = SegmentStore(dynamodb, table), Segments(), Segments(BASELINE_SHARD)
        store.persist(segments.next())  # the items exist from here on, as in a running pipeline
        timed: dict[str, list[float]] = {name: [] for name in variants()}
        plain: dict[str, list[float]] = {"PutItem": [], "UpdateItem": []}
        for _ in range(rounds):
            for name, patches in variants().items():
                with moto_fixes.only_expression_patches(patches):
                    timed[name] += time_transactions(store, segments, per_round)
            with moto_fixes.only_expression_patches(variants()[ALL_PATCHES]):
                for request, samples in time_plain_requests(store, baseline, per_round).items():
                    plain[request] += samples
        with moto_fixes.only_expression_patches(variants()[ALL_PATCHES]), server_profile() as profile:
            time_transactions(store, segments, PROFILED_TRANSACTIONS)
        items = len(store.running_total_updates(segment(1))) + 1
    shipped = min(timed[AS_SHIPPED])
    put = min(plain["PutItem"])
    return {
        "benchmark": "emulator",
        "items_per_transaction": items,
        "transactions": sum(map(len, timed.values())),
        "ms_per_transaction_item": {name: _summary(samples) for name, samples in timed.items()},
        "ratio_to_as_shipped": {name: round(min(s) / shipped, 3) for name, s in timed.items()},
        "ms_per_plain_request": {name: _summary(samples) for name, samples in plain.items()},
        "transaction_item_in_put_items": {name: round(min(s) / put, 2) for name, s in timed.items()},
        "ms_per_transaction_all_patches": round(min(timed[ALL_PATCHES]) * items, 1),
        "profile_all_patches": profile_rows(profile),
        "rounds": rounds,
        "transactions_per_round_and_variant": per_round,
    }


def run(repeat: int) -> list[Figure]:
    """`make bench`'s interface: the measurement as figures."""
    measured = measure(quick=False, repeat=repeat)
    runs = measured["rounds"] * measured["transactions_per_round_and_variant"]
    figures = [
        Figure(
            benchmark="emulator",
            metric=f"TransactWriteItems of a segment ({measured['items_per_transaction']} items), {name}",
            unit="ms/item",
            runs=runs,
            baseline=None if name == AS_SHIPPED else AS_SHIPPED,
            ratio=None if name == AS_SHIPPED else measured["ratio_to_as_shipped"][name],
            note=f"{measured['transaction_item_in_put_items'][name]}x one plain PutItem",
            **summary,
        )
        for name, summary in measured["ms_per_transaction_item"].items()
    ]
    figures += [
        Figure(benchmark="emulator", metric=f"plain {request}", unit="ms/request", runs=runs, **summary)
        for request, summary in measured["ms_per_plain_request"].items()
    ]
    return figures


def print_report(measured: dict[str, Any], console: Console) -> None:
    table = Table(
        "moto's expression code",
        "ms per item (best)",
        "median",
        "vs as shipped",
        "in plain PutItems",
        title=f"TransactWriteItems of one segment, {measured['items_per_transaction']} items, "
        f"{measured['transactions']} transactions",
    )
    for name, summary in measured["ms_per_transaction_item"].items():
        table.add_row(
            name,
            f"{summary['best']:.3f}",
            f"{summary['median']:.3f}",
            f"{measured['ratio_to_as_shipped'][name]:.2f}x",
            f"{measured['transaction_item_in_put_items'][name]:.1f}",
        )
    for request, summary in measured["ms_per_plain_request"].items():
        table.add_row(f"plain {request} (per request)", f"{summary['best']:.3f}", f"{summary['median']:.3f}")
    console.print(table)
    for order, rows in measured["profile_all_patches"].items():
        profile = Table(
            "function", "calls", "own %", "cumulative %", title=f"server side, all patches, {order}"
        )
        for row in rows:
            profile.add_row(
                row["function"], f"{row['calls']:,}", f"{row['own_percent']}", f"{row['cumulative_percent']}"
            )
        console.print(profile)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load_tests.bench_emulator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 transactions (default: 7 of 8)")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    measured = measure(args.quick)
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log: give the table room
    print_report(measured, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(measured, indent=2) + "\n")
    console.print(f"written to {args.out}", style="dim")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
