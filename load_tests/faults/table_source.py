"""The fault run on the orders table (`salesstream loadtest --source table --faults PROFILE`).

The faults that apply to this source, and where they go in:
- throttled writes: the integration's batch writes answered ProvisionedThroughputExceeded or
  ThrottlingException (the profile's `dynamodb_throttle` share: the orders table is a DynamoDB
  table), and writes stored whose response is lost (`lost_response`): the table writer retries
  them, so the same item is put again, a MODIFY with equal images;
- conflicting duplicates (`conflicting_duplicate`): the item of an event already written is put
  again with another amount, a MODIFY the aggregator must quarantine as `duplicate_conflict`;
- a rolled shard (`reshards`: that many rolls, spread over the run like the Kinesis run's
  splits): the table stream's open shard is closed and a child takes the new records, as
  DynamoDB does by itself about every 4 hours. No AWS API asks for it, so only the embedded
  emulator does it, on request (salesstream/emulator/moto_fixes.py, `roll_stream`); on another
  target the run says so and the summary lists the fault as not exercised;
- replayed batches, crashes after the write, finals held back, DynamoDB writes of the pipeline's
  tables throttled, cancelled or their response lost: the Kinesis run's own (load_tests/faultrun.py),
  since they sit in the runtime and the handlers' clients, whatever the source.

What does not apply (docs/dynamodb-source.md, "The fault run on the table source"):
- the catalogue's malformed records: most of them are bytes (not JSON, bad UTF-8, broken KPL
  aggregates) that no item of typed attributes can hold; the contract's refusals of an item are
  the plain load test's corrupted events and tests/unit/test_table_records.py;
- a foreign producer's KPL aggregates, and PutRecords entries failed: Kinesis only.
Their shares are set to 0 in the run's profile (`for_the_table`), so the summary neither injects
nor expects them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from load_tests.faultrun import FaultRun, FaultyOutcome
from load_tests.faults.catalogue import conflicting_copy
from load_tests.faults.clients import ClientFaults
from load_tests.faults.draw import Draws
from load_tests.faults.kinds import Injected
from load_tests.faults.profile import FaultProfile
from load_tests.table_source import TableSender, table_shard_ids
from salesstream.emulator.embedded import roll_table_stream
from salesstream.emulator.targets import Target

if TYPE_CHECKING:
    import threading
    from multiprocessing.connection import Connection

    from load_tests.faults.summary import FaultSummary
    from load_tests.loadtest import LoadTestReport
    from load_tests.meters import RequestMeter


@dataclass
class TableFaultyOutcome(FaultyOutcome):
    conflict_numbers: list[int] = field(default_factory=list)  # originals whose item was changed


@dataclass
class TableFaultySender(TableSender):
    profile: FaultProfile = field(default_factory=FaultProfile)
    conflict_numbers: list[int] = field(default_factory=list)
    candidates: list[tuple[int, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.draws = Draws(self.profile.seed)
        self.client_faults = ClientFaults(
            self.draws,
            lost_response=self.profile.lost_response,
            dynamodb_throttle=self.profile.dynamodb_throttle,
            tables=frozenset({self.stream}),
        )

    def send(self, conn: Connection, meter: RequestMeter) -> TableFaultyOutcome:
        outcome = super().send(conn, meter)
        return TableFaultyOutcome(
            **vars(outcome),
            malformed={},
            positions={},
            conflicts={},
            conflicts_attempted=len(self.conflict_numbers),
            client_faults=self.client_faults.counts(),
            foreign_sent=0,
            conflict_numbers=self.conflict_numbers,
        )

    def _producer_client(self) -> Any:
        return self.client_faults.attach(super()._producer_client())

    def _set_aside_bad(
        self, first: int, events: list[bytes], every: int, pending: list[tuple[int, bytes]]
    ) -> list[bytes]:
        for number, raw in enumerate(events, start=first):
            if self.draws.hit(
                Injected.CONFLICTING_DUPLICATE, number.to_bytes(8, "big"), self.profile.conflicting_duplicate
            ):
                self.candidates.append((number, raw))
        return events

    def _put_raw(self, dynamodb: Any, pending: list[tuple[int, bytes]]) -> None:
        # the originals must be in the table before their changed items
        self.producer.flush()
        copies = [(-number, conflicting_copy(raw)) for number, raw in self.candidates]
        self.conflict_numbers += [number for number, _ in self.candidates]
        self.candidates = []
        super()._put_raw(dynamodb, [*pending, *copies])


def for_the_table(profile: FaultProfile) -> FaultProfile:
    """The profile without the faults that cannot apply to the table source (see above)."""
    return profile.model_copy(update={"put_entry_failure": 0.0, "malformed": 0.0, "foreign_mixed_key": 0.0})


class TableFaultRun(FaultRun):
    def __init__(self, profile: FaultProfile, *args: Any, **kwargs: Any) -> None:
        super().__init__(for_the_table(profile), *args, **kwargs)
        self.sender = partial(TableFaultySender, profile=self.profile)
        self.rolls: list[tuple[str, str]] = []  # (parent, child) of each roll

    def _reshard(self, stop: threading.Event) -> None:
        """Roll the table stream's open shard each time the run crosses k / (reshards + 1) of its
        events (the Kinesis run splits a shard there)."""
        if not self.profile.reshards:
            return
        if self.endpoint.target is not Target.EMBEDDED:
            self.console.print(
                f"[yellow]the table stream's shard is not rolled on {self.endpoint.target.value}: "
                "DynamoDB rolls shards by itself and only the embedded emulator does it on request[/]"
            )
            return
        planned = self.config.profile().planned_events(self.fleet.stores)
        marks = [planned * k // (self.profile.reshards + 1) for k in range(1, self.profile.reshards + 1)]
        for mark in marks:
            while self.ledger.total < mark:
                if stop.wait(0.05):
                    return
            self.rolls.append(roll_table_stream(self.endpoint, self.stream))
            self._follow_shards()

    def _summary(self, report: LoadTestReport, logs: str) -> FaultSummary:
        summary = super()._summary(report, logs)
        if self.rolls:
            injected = {**summary.faults_injected, Injected.SHARD_ROLLED.value: len(self.rolls)}
            summary.faults_injected = dict(sorted(injected.items()))
        return summary

    def _follow_shards(self) -> None:
        self.shard_ids = table_shard_ids(self._dynamodb, self._streams, self.stream)
        probe = self.probes[0]
        if hasattr(probe, "set_shards"):
            probe.set_shards(self.shard_ids)

    def _quarantined_ids(self) -> list[str]:
        self._place_conflicts()
        return super()._quarantined_ids()

    def _place_conflicts(self) -> None:
        """Where each changed item's MODIFY was read: the quarantine item that names its event id
        (the original is counted, never quarantined). A change found nowhere keeps a position no
        item has, so the summary counts it missing."""
        outcome = self.outcome
        assert isinstance(outcome, TableFaultyOutcome)  # set by _send
        wanted = {self.fleet.event_id(number): number for number in outcome.conflict_numbers}
        for item in self._scan(self.quarantine_table):
            number = wanted.get(item.get("event_id", {}).get("S", ""))
            if number is not None:
                outcome.conflicts[number] = (item["shard_id"]["S"], item["sequence_number"]["S"])
        for number in wanted.values():
            outcome.conflicts.setdefault(number, (self.stream, f"never-quarantined-{number}"))
