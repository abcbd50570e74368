"""The fault run: the load test with a `FaultProfile`'s faults injected, ending with a
Jepsen-style count (load_tests/faults/summary.py).

    report = FaultRun(profile, config, template, endpoint, meter, console, spool=...).run()
    report.faults.passed

Where each fault goes in:
- the load generator's child process (`FaultySender`): PutRecords entries failed and responses
  lost on the producer's own Kinesis client; malformed records of every kind of the catalogue
  and conflicting copies of acknowledged events put past the producer, each one's position in
  the stream kept so its quarantine item can be found; and good events written past it by a
  foreign producer (aws-kinesis-agg aggregates with mixed partition keys and no explicit hash key,
  load_tests/faults/foreign.py), which must be counted like every other, on the shard they land;
- this process: DynamoDB writes to the pipeline's tables throttled, cancelled or their response
  lost, on every client the Lambda handlers create (`ClientFaults.installed()` before their
  first invocation); batches replayed, invocations crashed after the write, finals held back
  (`RuntimeFaults`, the runtime's hooks); shards split through the Kinesis API as the run
  crosses a share of its events (the producer and the runtime follow).
After the run: the batch snapshot and the reconciliation, then the card-number check over every
table, object, captured log line and the producer's spool.

`python -m load_tests.faultrun compare CLEAN FAULTS [--out FILE]` prints the throughput and
latency of a fault run next to a clean run of the same size (two report.json files).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console
from rich.table import Table

from load_tests.faults.catalogue import CATALOGUE, conflicting_copy, kind_for
from load_tests.faults.clients import ClientFaults
from load_tests.faults.draw import Draws
from load_tests.faults.foreign import FOREIGN_SHAPES
from load_tests.faults.kinds import Injected
from load_tests.faults.profile import FaultProfile
from load_tests.faults.runtime import RuntimeFaults, Split, split_a_shard
from load_tests.faults.security import LogCapture, file_source, scan, stored_everywhere
from load_tests.faults.summary import FaultSummary, KindCheck
from load_tests.generator import GeneratorOutcome, GeneratorProcess, _Sender
from load_tests.loadtest import LoadTest, Monitor
from load_tests.report_model import Reconciled
from producer.encoder import accept
from producer.result import StoreTally, Tally
from salesstream.core.kpl import payloads
from salesstream.runtime.kinesis import list_shards
from salesstream.runtime.log import logger as runtime_logger

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from load_tests.meters import RequestMeter
    from load_tests.report_model import LoadTestReport

_QUARANTINE_SLACK_MS: Final = 5_000
_FOREIGN_ATTEMPTS: Final = 5
Position = tuple[str, str]  # (shard id, sequence number)


# --- the generator's side (runs in the load generator's child process) --------------------------


@dataclass
class FaultyOutcome(GeneratorOutcome):
    malformed: dict[int, str]  # event number -> bad-input kind
    positions: dict[int, Position]  # malformed event number -> where it landed
    conflicts: dict[int, Position]  # original event number -> where its conflicting copy landed
    conflicts_attempted: int
    client_faults: dict[str, int]
    foreign_sent: int  # good events a foreign producer wrote past ours (acknowledged)


@dataclass
class FaultySender(_Sender):
    profile: FaultProfile = field(default_factory=FaultProfile)
    malformed: dict[int, str] = field(default_factory=dict)
    stores: dict[int, str] = field(default_factory=dict)  # partition keys of what goes past the producer
    positions: dict[int, Position] = field(default_factory=dict)
    conflicts: dict[int, Position] = field(default_factory=dict)
    candidates: list[tuple[int, bytes]] = field(default_factory=list)
    conflicts_attempted: int = 0
    conflicts_not_sent: int = 0  # candidates whose original may sit on another shard (a reshard)
    landed_elsewhere_seen: int = 0  # the producer's count when the last copies were put
    foreign: list[tuple[int, bytes]] = field(default_factory=list)  # waiting to be written
    foreign_acknowledged: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.draws = Draws(self.profile.seed)
        self.client_faults = ClientFaults(
            self.draws,
            put_entry_failure=self.profile.put_entry_failure,
            lost_response=self.profile.lost_response,
        )

    def send(self, conn: Connection, meter: RequestMeter) -> FaultyOutcome:
        outcome = super().send(conn, meter)
        # the acknowledged sales, per store: ours (the producer's tally) and the foreign writer's
        tally = Tally()
        for raw in self.foreign_acknowledged:
            tally.add(accept(raw))
        outcome.result = outcome.result.model_copy(
            update={"tally": merged(outcome.result.tally, tally.rows())}
        )
        return FaultyOutcome(
            **vars(outcome),
            malformed=self.malformed,
            positions=self.positions,
            conflicts=self.conflicts,
            conflicts_attempted=self.conflicts_attempted,
            client_faults=self.client_faults.counts(),
            foreign_sent=len(self.foreign_acknowledged),
        )

    def _producer_client(self) -> Any:
        return self.client_faults.attach(super()._producer_client())

    def _set_aside_bad(
        self, first: int, events: list[bytes], every: int, pending: list[tuple[int, bytes]]
    ) -> list[bytes]:
        """Malformed events (drawn per event number) go past the producer; some good ones are
        remembered to be sent again later with another amount."""
        good = []
        for number, raw in enumerate(events, start=first):
            key = number.to_bytes(8, "big")
            if self.draws.hit(Injected.MALFORMED, key, self.profile.malformed):
                bad = kind_for(len(self.malformed))
                self.malformed[number] = bad.kind
                self.stores[number] = _store_of(raw)
                self.bad.add(number)
                pending.append((number, bad.make(raw)))
                continue
            if self.draws.hit(Injected.FOREIGN_MIXED_KEY, key, self.profile.foreign_mixed_key):
                self.foreign.append((number, raw))
                continue
            good.append(raw)
            if self.draws.hit(Injected.CONFLICTING_DUPLICATE, key, self.profile.conflicting_duplicate):
                self.candidates.append((number, raw))
        return good

    def _put_raw(self, kinesis: Any, pending: list[tuple[int, bytes]]) -> None:
        if self.candidates:
            # the originals must be in the stream before their copies: the copy is the conflict
            self.producer.flush()
            landed_elsewhere = self.producer.result.landed_elsewhere
            if landed_elsewhere == self.landed_elsewhere_seen:
                for number, raw in self.candidates:
                    self.stores[-number] = _store_of(raw)  # a copy is keyed by minus its original's number
                    pending = [*pending, (-number, conflicting_copy(raw))]
                self.conflicts_attempted += len(self.candidates)
            else:
                # a reshard while these originals were sent put some on a child shard their store's
                # hash does not name, so a copy could land on the other child; the two children are
                # read at the same time, and which of the pair is judged first is then a race no
                # expectation can call: these copies are not sent
                self.conflicts_not_sent += len(self.candidates)
            self.landed_elsewhere_seen = landed_elsewhere
            self.candidates = []
        super()._put_raw(kinesis, pending)
        if self.foreign:
            self._put_foreign(kinesis, self.foreign)
            self.foreign = []

    def _put_foreign(self, kinesis: Any, events: list[tuple[int, bytes]]) -> None:
        """One foreign producer's PutRecords: its own aggregates, with mixed keys, on a client
        without our faults (it has its own retries: failed entries are sent again as they were)."""
        numbers = {raw: number for number, raw in events}
        entries = FOREIGN_SHAPES["mixed_key_aggregate"].make([raw for _, raw in events], random.Random())
        for attempt in range(_FOREIGN_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * attempt)
            answer = kinesis.put_records(StreamName=self.stream, Records=entries)
            failed = []
            for entry, result in zip(entries, answer["Records"], strict=True):
                if result.get("ErrorCode"):
                    failed.append(entry)
                else:
                    inside = payloads(entry["Data"])
                    self.foreign_acknowledged += inside
                    self.raw_acknowledged += len(inside)
            entries = failed
            if not entries:
                return
        self.not_acknowledged.update(numbers[raw] for entry in entries for raw in payloads(entry["Data"]))

    def _partition_key(self, number: int, raw: bytes) -> str:
        return self.stores[number]

    def _stored_raw(self, number: int, shard_id: str, sequence_number: str) -> None:
        if number < 0:
            self.conflicts[-number] = (shard_id, sequence_number)
        else:
            self.positions[number] = (shard_id, sequence_number)


def _store_of(raw: bytes) -> str:
    return str(json.loads(raw)["store_id"])


def merged(*tallies: list[StoreTally]) -> list[StoreTally]:
    """Store tallies added up per (store, currency)."""
    rows: dict[tuple[str, str], StoreTally] = {}
    for tally in tallies:
        for row in tally:
            key = (row.store_id, row.currency)
            present = rows.get(key)
            rows[key] = (
                row.model_copy()
                if present is None
                else present.model_copy(
                    update={
                        "orders": present.orders + row.orders,
                        "refunds": present.refunds + row.refunds,
                        "gross_minor": present.gross_minor + row.gross_minor,
                        "refunds_minor": present.refunds_minor + row.refunds_minor,
                    }
                )
            )
    return [rows[key] for key in sorted(rows)]


# --- this process's side ------------------------------------------------------------------------


class FaultRun(LoadTest):
    def __init__(self, profile: FaultProfile, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile = profile
        self.draws = Draws(profile.seed)
        self.sender = partial(FaultySender, profile=profile)
        self.runtime_faults = RuntimeFaults(
            self.draws,
            replay=profile.replay_batch,
            crash_after=profile.crash_after_write,
            delay_final=profile.delay_final,
        )
        self.hooks = self.runtime_faults
        # the pipeline's own writes; the runtime's checkpoints stand for Lambda's and are left alone
        self.client_faults = ClientFaults(
            self.draws,
            lost_response=profile.lost_response,
            dynamodb_throttle=profile.dynamodb_throttle,
            transaction_cancel=profile.transaction_cancel,
            tables=frozenset({self.aggregates_table, self.quarantine_table}),
        )
        self.splits: list[Split] = []
        self.outcome: FaultyOutcome | None = None

    def run(self) -> LoadTestReport:
        stop = threading.Event()
        resharder = threading.Thread(
            target=self._reshard, args=(stop,), name="faultrun-resharder", daemon=True
        )
        # both before the first invocation: the handlers' loggers and clients are made then
        with LogCapture(runtime_logger) as logs, self.client_faults.installed():
            resharder.start()
            try:
                report = super().run()
            finally:
                stop.set()
                resharder.join(60)
        report.faults = self._summary(report, logs.text())
        return report

    def _send(self, generator: GeneratorProcess, monitor: Monitor) -> GeneratorOutcome:
        outcome = super()._send(generator, monitor)
        assert isinstance(outcome, FaultyOutcome)
        self.outcome = outcome
        return outcome

    # --- resharding -------------------------------------------------------------------------

    def _reshard(self, stop: threading.Event) -> None:
        """Split a shard each time the run crosses k / (reshards + 1) of its events."""
        planned = self.config.profile().planned_events(self.fleet.stores)
        marks = [planned * k // (self.profile.reshards + 1) for k in range(1, self.profile.reshards + 1)]
        for number, mark in enumerate(marks):
            while self.ledger.total < mark:
                if stop.wait(0.05):
                    return
            self.splits.append(split_a_shard(self._kinesis, self.stream, self.draws, number, time.time()))
            self._follow_shards()

    def _follow_shards(self) -> None:
        self.shard_ids = [s.shard_id for s in list_shards(self._kinesis, self.stream)]
        probe = self.probes[0]
        if hasattr(probe, "set_shards"):
            probe.set_shards(self.shard_ids)

    def _reckon(self, monitor: Monitor) -> Any:
        self._follow_shards()
        return super()._reckon(monitor)

    def _quarantined_ids(self) -> list[str]:
        """The event ids the quarantine holds, by position for what the run put past the producer
        (most malformed records have no readable id); a conflicting copy's item names its
        original, which is counted, not quarantined: left out."""
        assert self.outcome is not None
        malformed_at = {position: number for number, position in self.outcome.positions.items()}
        copies_at = set(self.outcome.conflicts.values())
        ids = []
        for item in self._scan(self.quarantine_table):
            position = (item["shard_id"]["S"], item["sequence_number"]["S"])
            if position in copies_at:
                continue
            if position in malformed_at:
                ids.append(self.fleet.event_id(malformed_at[position]))
            elif "event_id" in item:
                ids.append(item["event_id"]["S"])
        return ids

    # --- after the run ----------------------------------------------------------------------

    def _summary(self, report: LoadTestReport, logs: str) -> FaultSummary:
        outcome = self.outcome
        assert outcome is not None
        since_ms = round((self.ledger.first_sent_at or time.time()) * 1000) - _QUARANTINE_SLACK_MS
        reasons_at: dict[Position, str] = {}
        by_reason: Counter[str] = Counter()
        for item in self._scan(self.quarantine_table):
            if int(item["arrival_ms"]["N"]) < since_ms:
                continue  # an earlier run's (a reused stack)
            reasons_at[(item["shard_id"]["S"], item["sequence_number"]["S"])] = item["reason"]["S"]
            by_reason[item["reason"]["S"]] += 1
        malformed = {kind: KindCheck(expected_reason=bad.reason.value) for kind, bad in CATALOGUE.items()}
        for number, kind in sorted(outcome.malformed.items()):
            if self.ledger.acknowledged(number):
                _check(malformed[kind], reasons_at.get(outcome.positions.get(number, ("", ""))))
        conflicts = KindCheck(expected_reason="duplicate_conflict")
        for position in outcome.conflicts.values():
            _check(conflicts, reasons_at.get(position))
        injected = Counter(outcome.client_faults) + Counter(self.client_faults.counts())
        injected += Counter(self.runtime_faults.counts())
        injected[Injected.SHARD_SPLIT.value] = len(self.splits)
        injected[Injected.MALFORMED.value] = sum(c.injected for c in malformed.values())
        injected[Injected.CONFLICTING_DUPLICATE.value] = conflicts.injected
        injected[Injected.FOREIGN_MIXED_KEY.value] = outcome.foreign_sent
        with self.console.status(
            "looking for card numbers in every table, object, log line and the spool ..."
        ):
            scanned, found = scan(
                chain(
                    stored_everywhere(
                        self._dynamodb,
                        self._s3,
                        [table.name for table in self.template.tables()],
                        [bucket.name for bucket in self.template.buckets()],
                    ),
                    [("logs", logs.encode()), ("load generator logs", outcome.output.encode())],
                    file_source(self.spool),
                )
            )
        correctness = report.correctness
        reconciled = report.reconciliation
        unexplained = reconciled.unexplained if isinstance(reconciled, Reconciled) else None
        return FaultSummary(
            profile=self.profile,
            attempted=self.ledger.total + outcome.conflicts_attempted,
            acknowledged=correctness.acknowledged,
            counted=correctness.counted,
            expected_counted=correctness.expected_counted,
            archived=correctness.archived,
            quarantined=dict(sorted(by_reason.items())),
            lost=correctness.lost,
            duplicated=correctness.double_counted,
            bad_counted=correctness.bad_counted,
            good_quarantined=correctness.good_quarantined,
            totals_mismatches=correctness.totals_mismatches,
            malformed=malformed,
            conflicting_duplicates=conflicts,
            unexplained_differences=unexplained,
            reconciliation=(
                f"snapshot {reconciled.snapshot_id}: {reconciled.differences} difference(s), "
                f"{reconciled.unexplained} unexplained"
                if isinstance(reconciled, Reconciled)
                else reconciled.reason
            ),
            faults_injected={kind: n for kind, n in sorted(injected.items()) if n},
            card_numbers_found=found[:50],
            places_scanned=scanned,
        ).judge()


def _check(check: KindCheck, reason: str | None) -> None:
    check.injected += 1
    if reason is None:
        check.missing += 1
    elif reason == check.expected_reason:
        check.quarantined += 1
    else:
        check.wrong_reason[reason] = check.wrong_reason.get(reason, 0) + 1


# --- a fault run against a clean run -----------------------------------------------------------


def comparison(clean: dict[str, Any], faulty: dict[str, Any]) -> list[tuple[str, Any, Any, str]]:
    """(figure, clean, faults, faults / clean) from two report.json documents."""

    def figure(report: dict[str, Any], *path: str) -> Any:
        value: Any = report
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        return value

    def visible_p(report: dict[str, Any], p: str) -> Any:
        found = [v.get(p) for v in report["latency"]["window_end_to_visible_seconds"].values()]
        return max((v for v in found if v is not None), default=None)

    rows = [
        (
            "events acknowledged",
            figure(clean, "throughput", "acknowledged_events"),
            figure(faulty, "throughput", "acknowledged_events"),
        ),
        (
            "acknowledged events/s",
            figure(clean, "throughput", "acknowledged_per_second"),
            figure(faulty, "throughput", "acknowledged_per_second"),
        ),
        (
            "counted events/s (send + drain)",
            figure(clean, "throughput", "counted_per_second"),
            figure(faulty, "throughput", "counted_per_second"),
        ),
        (
            "send seconds",
            figure(clean, "throughput", "send_seconds"),
            figure(faulty, "throughput", "send_seconds"),
        ),
        (
            "drain seconds",
            figure(clean, "throughput", "drain_seconds"),
            figure(faulty, "throughput", "drain_seconds"),
        ),
        (
            "put -> counted p50 (s)",
            figure(clean, "latency", "put_to_counted_seconds", "p50"),
            figure(faulty, "latency", "put_to_counted_seconds", "p50"),
        ),
        (
            "put -> counted p95 (s)",
            figure(clean, "latency", "put_to_counted_seconds", "p95"),
            figure(faulty, "latency", "put_to_counted_seconds", "p95"),
        ),
        ("window end -> visible p50 (s)", visible_p(clean, "p50"), visible_p(faulty, "p50")),
        ("window end -> visible p95 (s)", visible_p(clean, "p95"), visible_p(faulty, "p95")),
        (
            "lost / double-counted",
            f"{figure(clean, 'correctness', 'lost')} / {figure(clean, 'correctness', 'double_counted')}",
            f"{figure(faulty, 'correctness', 'lost')} / {figure(faulty, 'correctness', 'double_counted')}",
        ),
    ]
    return [(name, a, b, _ratio(a, b)) for name, a, b in rows]


def _ratio(a: Any, b: Any) -> str:
    if isinstance(a, int | float) and isinstance(b, int | float) and a:
        return f"{b / a:.2f}x"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.faultrun")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="a fault run's throughput and latency next to a clean run's"
    )
    compare.add_argument("clean", type=Path, help="report.json of the clean run (--faults none)")
    compare.add_argument("faults", type=Path, help="report.json of the fault run")
    compare.add_argument("--out", type=Path, help="write the comparison here (JSON)")
    args = parser.parse_args(argv)
    clean, faulty = (json.loads(path.read_text()) for path in (args.clean, args.faults))
    rows = comparison(clean, faulty)
    table = Table(title="fault run vs clean run (same size)")
    for column in ("figure", "clean", "faults", "faults / clean"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name, a, b, ratio in rows:
        table.add_row(name, str(a), str(b), ratio)
    console = Console()
    console.print(table)
    for name, report in (("clean", clean), ("faults", faulty)):
        machine = report["run"]["machine"]
        console.print(
            f"{name}: {report['run']['command']}  (load average {machine['load_average_at_start']} -> "
            f"{machine['load_average_at_end']})"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "rows": [{"figure": n, "clean": a, "faults": b, "ratio": r} for n, a, b, r in rows],
                    "clean": {"command": clean["run"]["command"], "machine": clean["run"]["machine"]},
                    "faults": {"command": faulty["run"]["command"], "machine": faulty["run"]["machine"]},
                    "summary": faulty.get("faults"),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
