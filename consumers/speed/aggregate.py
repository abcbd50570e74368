"""The speed layer's use case: one window step of one shard, on an already-decoded batch.

Per invocation: catch the dedup index up with the shard's log, judge the batch against it
(`plan`), quarantine what it refused, fold the rest into the window's state (`apply`), append the
folded events to the dedup log and, when the window ends, persist its segment. Settings, clients
and the dedup index live once per process (`Aggregator`) and survive warm invocations. What
Lambda hands in and gets back is consumers/speed/handler.py's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import boto3

from consumers.common.clients import CLIENT_CONFIG
from consumers.common.quarantine import Quarantine, Stored
from consumers.common.shards import StreamShards
from consumers.speed.dedup_log import CatchUp, DedupLog
from consumers.speed.segments import Persisted, SegmentStore
from consumers.speed.settings import AggregatorSettings
from salesstream.core.aggregation import WindowState, segment_of
from salesstream.core.dedup import DedupIndex
from salesstream.core.records import DecodedBatch
from salesstream.core.window_fold import apply, plan
from salesstream.core.windows import Window


class QuarantineUnavailable(RuntimeError):
    """A final invocation could not quarantine some record: the window cannot close without it."""


@dataclass(frozen=True)
class WindowStep:
    """What one invocation did to its window."""

    state: WindowState  # the window's state after the step (the input's, changed in place)
    already_in_state: int  # records of the batch the state had folded before (a redelivery)
    cutoff: int  # the records before it are folded or quarantined; Lambda redelivers from it
    stored: Stored
    caught_up: CatchUp
    persisted: Persisted | None


@dataclass
class Aggregator:
    """What one process keeps between invocations."""

    settings: AggregatorSettings
    shards: StreamShards
    index: DedupIndex
    log: DedupLog
    quarantine: Quarantine
    segments: SegmentStore
    # Lambda runs one invocation at a time per process; the local runtime may run shards in
    # threads, so whatever reads and changes the index holds this lock
    index_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls) -> Aggregator:
        settings = AggregatorSettings.from_environment()
        session = boto3.session.Session()
        dynamodb, s3, kinesis = (
            session.client(name, config=CLIENT_CONFIG) for name in ("dynamodb", "s3", "kinesis")
        )
        window_ms = settings.window_seconds * 1000
        shards = StreamShards(kinesis, settings.stream_name)
        return cls(
            settings=settings,
            shards=shards,
            index=DedupIndex(horizon_ms=settings.dedup_horizon_seconds * 1000, slack_ms=window_ms),
            log=DedupLog(s3, shards, settings.archive_bucket, window_ms),
            quarantine=Quarantine(dynamodb, s3, settings.quarantine_table, settings.archive_bucket),
            segments=SegmentStore(dynamodb, settings.aggregates_table),
        )

    def step(
        self,
        shard: str,
        window: Window,
        batch: DecodedBatch,
        state: WindowState,
        *,
        from_table: bool,
        closes: bool,
        terminated_early: bool,
    ) -> WindowStep:
        """Fold `batch` into `state`; `closes` on the window's final invocation, or when AWS
        ended the window early (`terminated_early`)."""
        with self.index_lock:
            caught_up = self.catch_up(shard, batch, state, from_table=from_table)
            planned = plan(state, self.index, shard, batch)
        stored = self.quarantine.store(shard, window, batch.records, planned.to_quarantine)
        cutoff = min(stored.failed_records, default=len(batch.records))
        logged = apply(state, batch, planned, cutoff)
        if logged:
            state.log_key = self.log.append(self.index, shard, logged)
        persisted = None
        if closes:
            persisted = self.close(state, shard, window, stored, terminated_early=terminated_early)
        with self.index_lock:
            self.index.evict(shard)
        return WindowStep(state, planned.start, cutoff, stored, caught_up, persisted)

    def catch_up(self, shard: str, batch: DecodedBatch, state: WindowState, *, from_table: bool) -> CatchUp:
        """Bring the dedup index up to date with the shard's log before judging the batch. A
        table's shard needs no ancestors' logs: its event ids are the table's keys, and a key
        seen again in a later shard is a MODIFY, judged from the record's own images."""
        if not batch.records:
            return CatchUp()
        ancestors: list[str] | None = [] if from_table else None
        return self.log.catch_up(
            self.index, shard, batch.records[0].arrival_ms, state.log_key, ancestors=ancestors
        )

    def close(
        self, state: WindowState, shard: str, window: Window, stored: Stored, *, terminated_early: bool
    ) -> Persisted | None:
        """Persist the segment of a window that ended (or that AWS ended early)."""
        if stored.failed_records:
            # a window cannot close while records of it are neither folded nor quarantined
            raise QuarantineUnavailable(
                f"{len(stored.failed_records)} record(s) of {shard}: {stored.errors[:3]}"
            )
        if state.is_empty:
            return None
        segment = segment_of(state, shard, window, terminated_early=terminated_early)
        return self.segments.persist(segment)
