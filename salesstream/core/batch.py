"""The batch layer's vocabulary: snapshot rows, horizons, reconciliation differences.

Plain frozen dataclasses, no I/O: the snapshot job writes them, the reconciliation produces
them, and the serving layer reads them back (consumers/batch/views.py). Money is integer minor
units; `Totals` is the speed layer's own type, so both layers add up the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from salesstream.core.aggregation import Totals


def totals_of(data: dict[str, Any]) -> Totals:
    """`Totals` from its dict form (`Totals.as_dict`, `net_minor` ignored)."""
    return Totals(
        int(data.get("orders", 0)),
        int(data.get("refunds", 0)),
        int(data.get("gross_minor", 0)),
        int(data.get("refunds_minor", 0)),
    )


def minus(left: Totals, right: Totals) -> Totals:
    """left - right, field by field (a delta may be negative)."""
    return Totals(
        left.orders - right.orders,
        left.refunds - right.refunds,
        left.gross_minor - right.gross_minor,
        left.refunds_minor - right.refunds_minor,
    )


ZERO = Totals()


# --- snapshot rows ----------------------------------------------------------------------------


class _Amounts:
    """What both row types share: four amounts, their net and their dict form."""

    __slots__ = ()
    orders: int
    refunds: int
    gross_minor: int
    refunds_minor: int

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor

    @property
    def totals(self) -> Totals:
        return Totals(self.orders, self.refunds, self.gross_minor, self.refunds_minor)

    def as_dict(self) -> dict[str, Any]:
        fields = self.__dataclass_fields__  # type: ignore[attr-defined]
        return {name: getattr(self, name) for name in fields}  # asdict deep-copies: slow


@dataclass(frozen=True, slots=True)
class WindowRow(_Amounts):
    """Totals of one (shard, window, store, currency, business day): the finest grain both
    layers share. The window is the tumbling window of the events' arrival in the stream."""

    shard_id: str
    window_start_ms: int
    window_end_ms: int
    store_id: str
    currency: str
    business_day: str  # ISO date, the terminal's own calendar day
    orders: int
    refunds: int
    gross_minor: int
    refunds_minor: int


@dataclass(frozen=True, slots=True)
class StoreDayRow(_Amounts):
    """Totals of one (store, business day, currency)."""

    store_id: str
    business_day: str
    currency: str
    orders: int
    refunds: int
    gross_minor: int
    refunds_minor: int


class ShardState(StrEnum):
    """Why a shard's horizon is what it is (see docs/batch-layer.md, the horizon)."""

    BEHIND = "behind"  # the stream holds a record the archive does not: complete up to just before it
    CAUGHT_UP = "caught_up"  # nothing in the stream after the last archived record: complete up to now
    CLOSED = "closed"  # a closed shard archived to its end: complete for ever (horizon_ms None)


@dataclass(frozen=True, slots=True)
class ShardHorizon:
    shard_id: str
    state: ShardState
    horizon_ms: int | None  # arrival time up to which (exclusive) the archive holds all of it
    last_archived_sequence: str | None  # the newest archived record's sequence number


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A finished, immutable snapshot: every event that arrived before `horizon_ms`, counted once.

    `horizon_ms` is a window boundary: the snapshot holds whole windows, those that end at or
    before it; the speed layer answers for the windows that start at or after it."""

    snapshot_id: str
    horizon_ms: int
    window_seconds: int
    dedup_horizon_seconds: int
    started_ms: int
    finished_ms: int
    shards: tuple[ShardHorizon, ...]
    counts: dict[str, int] = field(default_factory=dict)  # events, duplicates, conflicts, ...
    windows_key: str = ""  # S3 keys of the row files (JSON lines, gzip)
    store_days_key: str = ""
    findings_key: str = ""


# --- reconciliation -------------------------------------------------------------------------------


class KeyKind(StrEnum):
    WINDOW = "window"  # (shard, window, store, currency, business day): segments vs snapshot rows
    STORE_DAY = "store_day"  # (store, business day, currency): the running total item
    SHARD_TOTAL = "shard_total"  # (shard, currency): the running total item


class Classification(StrEnum):
    MISSING_IN_SPEED = "missing_in_speed"
    EXTRA_IN_SPEED = "extra_in_speed"
    AMOUNT_MISMATCH = "amount_mismatch"


class Cause(StrEnum):
    """What a difference can be traced to (docs/batch-layer.md, reconciliation)."""

    LATE_RESEND = "late_resend"  # a resend later than the dedup horizon: the speed layer counted it again
    QUARANTINED = "quarantined"  # the speed layer quarantined a record the batch layer counted
    RECORD_AGE_EXCEEDED = "record_age_exceeded"  # the aggregator's mapping discarded it (MaximumRecordAge)
    RETRIES_EXHAUSTED = "retries_exhausted"  # the aggregator's mapping gave up on it (MaximumRetryAttempts)
    ARCHIVE_GAP = "archive_gap"  # the archiver's mapping gave up on records the speed layer counted
    LATE_WINDOW = "late_window"  # the speed layer has not closed the window yet
    # a copy on a shard outside the first one's lineage (an on-demand stream placed a foreign
    # producer's resend by itself): the speed layer's per-lineage dedup did not see the first
    UNRELATED_SHARD_COPY = "unrelated_shard_copy"
    WINDOW_DIFFERENCES = "window_differences"  # a running total off exactly as its segments are


@dataclass(frozen=True, slots=True)
class Explanation:
    cause: Cause
    detail: str  # where: shard, positions, event ids; never a payload
    delta: Totals  # what it accounts for, speed minus batch, for the difference's key


@dataclass(frozen=True, slots=True)
class Difference:
    kind: KeyKind
    classification: Classification
    currency: str
    batch: Totals
    speed: Totals
    shard_id: str | None = None
    window_start_ms: int | None = None
    store_id: str | None = None
    business_day: str | None = None
    explanations: tuple[Explanation, ...] = ()
    explained: bool = False  # the explanations add up to the delta exactly

    @property
    def delta(self) -> Totals:
        return minus(self.speed, self.batch)

    @property
    def key(self) -> str:
        parts = (self.shard_id, self.window_start_ms, self.store_id, self.business_day, self.currency)
        return f"{self.kind.value}:" + "/".join(str(part) for part in parts if part is not None)


class Status(StrEnum):
    CLEAN = "clean"  # no difference at all
    EXPLAINED = "explained"  # differences, every one traced to its cause
    UNEXPLAINED = "unexplained"  # at least one difference nothing accounts for


@dataclass(frozen=True, slots=True)
class ReconciliationSummary:
    reconciliation_id: str
    snapshot_id: str
    horizon_ms: int
    reconciled_ms: int
    keys_compared: int
    differences: int
    unexplained: int
    by_classification: dict[str, int] = field(default_factory=dict)
    by_cause: dict[str, int] = field(default_factory=dict)
    # what both layers agree on and why it is not drift: duplicates counted once, records
    # quarantined by both, conflicts, copies that landed on another shard, ...
    notes: dict[str, int] = field(default_factory=dict)
    repaired: int = 0

    @property
    def status(self) -> Status:
        if self.unexplained:
            return Status.UNEXPLAINED
        return Status.EXPLAINED if self.differences else Status.CLEAN


@dataclass(frozen=True, slots=True)
class Reconciliation:
    summary: ReconciliationSummary
    differences: tuple[Difference, ...]


# --- JSON forms (stored in S3 and DynamoDB, read back by the views) -------------------------------


def difference_to_json(difference: Difference) -> dict[str, Any]:
    return {
        "kind": difference.kind.value,
        "classification": difference.classification.value,
        "key": difference.key,
        "shard_id": difference.shard_id,
        "window_start_ms": difference.window_start_ms,
        "store_id": difference.store_id,
        "business_day": difference.business_day,
        "currency": difference.currency,
        "batch": difference.batch.as_dict(),
        "speed": difference.speed.as_dict(),
        "delta": difference.delta.as_dict(),
        "explained": difference.explained,
        "explanations": [
            {"cause": e.cause.value, "detail": e.detail, "delta": e.delta.as_dict()}
            for e in difference.explanations
        ],
    }


def difference_from_json(data: dict[str, Any]) -> Difference:
    return Difference(
        kind=KeyKind(data["kind"]),
        classification=Classification(data["classification"]),
        currency=data["currency"],
        batch=totals_of(data["batch"]),
        speed=totals_of(data["speed"]),
        shard_id=data.get("shard_id"),
        window_start_ms=data.get("window_start_ms"),
        store_id=data.get("store_id"),
        business_day=data.get("business_day"),
        explanations=tuple(
            Explanation(Cause(e["cause"]), e["detail"], totals_of(e["delta"])) for e in data["explanations"]
        ),
        explained=bool(data["explained"]),
    )


def summary_to_json(summary: ReconciliationSummary) -> dict[str, Any]:
    return {**asdict(summary), "status": summary.status.value}


def summary_from_json(data: dict[str, Any]) -> ReconciliationSummary:
    fields = {name: data[name] for name in ReconciliationSummary.__dataclass_fields__ if name in data}
    return ReconciliationSummary(**fields)


def shard_horizon_to_json(shard: ShardHorizon) -> dict[str, Any]:
    return {**asdict(shard), "state": shard.state.value}


def shard_horizon_from_json(data: dict[str, Any]) -> ShardHorizon:
    return ShardHorizon(
        data["shard_id"], ShardState(data["state"]), data["horizon_ms"], data["last_archived_sequence"]
    )
