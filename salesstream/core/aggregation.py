"""The window reducer: accepted order events folded into one shard's window segment.

Shaped like a quix-streams aggregation: `initialize() -> S`, `fold(S, effect) -> S`,
`result(S)`. The working state is a mutable `WindowState`; between invocations it travels as
the compact JSON the Lambda runtime hands back (`to_json` / `WindowState.resume`), whose `"v"`
key is the layout version: a state of another layout restarts the segment cleanly.

An event reaches the reducer as its *effect*, the fields that change a total:
((store_id, currency, business-day ordinal), is_refund, total_minor). The same tuple is what the
dedup index compares to tell a resend (same effect) from a conflict (different effect).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Final

from salesstream.core.positions import Position
from salesstream.core.reasons import Reason
from salesstream.core.windows import Window

if TYPE_CHECKING:
    from salesstream.core.wire import WireEvent

LAYOUT: Final = 1
_REFUND: Final = "order_refunded"  # contract.EventType.ORDER_REFUNDED
_KEY_SEPARATOR: Final = "/"  # never in an identifier, a currency code or an ISO date

# (store_id, currency, business day as a proleptic ordinal: cheap to make, compare and encode)
TotalsKey = tuple[str, str, int]
Effect = tuple[TotalsKey, bool, int]


def effect_of(event: Mapping[str, Any] | WireEvent) -> Effect:
    """The effect of a validated wire event (`wire.decode_event`, or the dict of
    `contract.validate_wire`); `window_fold.plan` spells the same out on the hot path."""
    return (
        (event["store_id"], event["currency"], event["occurred_at"].toordinal()),
        event["event_type"] == _REFUND,
        event["total_minor"],
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """Sales of one key, integer minor units; refunds are positive amounts subtracted from gross."""

    orders: int = 0
    refunds: int = 0
    gross_minor: int = 0
    refunds_minor: int = 0

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunds_minor

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.orders + other.orders,
            self.refunds + other.refunds,
            self.gross_minor + other.gross_minor,
            self.refunds_minor + other.refunds_minor,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "orders": self.orders,
            "refunds": self.refunds,
            "gross_minor": self.gross_minor,
            "refunds_minor": self.refunds_minor,
            "net_minor": self.net_minor,
        }


@dataclass(slots=True)
class Lateness:
    """Arrival minus occurred_at (ms) over a sample of events: how far behind (or, negative,
    ahead of) the stream the terminals' clocks are."""

    count: int = 0
    total_ms: int = 0
    min_ms: int = 0
    max_ms: int = 0

    def add(self, lateness_ms: int) -> None:
        if not self.count or lateness_ms < self.min_ms:
            self.min_ms = lateness_ms
        if not self.count or lateness_ms > self.max_ms:
            self.max_ms = lateness_ms
        self.count += 1
        self.total_ms += lateness_ms

    @property
    def mean_ms(self) -> int:
        return self.total_ms // self.count if self.count else 0


@dataclass(slots=True)
class WindowState:
    """One shard's window segment while it is being built.

    `totals` maps (store, currency, business day) to [orders, refunds, gross_minor, refunds_minor]:
    lists, so folding an event is two in-place additions. `first` identifies the segment (the
    position of its first record, accepted or not); `log_key` is the dedup-log object written by
    the invocation that produced this state (see consumers/speed/dedup_log.py)."""

    totals: dict[TotalsKey, list[int]] = field(default_factory=dict)
    events: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    first: Position | None = None
    last: Position | None = None
    arrival_min_ms: int | None = None
    arrival_max_ms: int | None = None
    lateness: Lateness = field(default_factory=Lateness)
    log_key: str | None = None

    # --- bookkeeping beside the fold ------------------------------------------------------

    def note_position(self, first: Position, last: Position, arrival_ms: int) -> None:
        """A Kinesis record (its first and last user record) became part of the segment."""
        if self.first is None:
            self.first = first
        self.last = last
        if self.arrival_min_ms is None or arrival_ms < self.arrival_min_ms:
            self.arrival_min_ms = arrival_ms
        if self.arrival_max_ms is None or arrival_ms > self.arrival_max_ms:
            self.arrival_max_ms = arrival_ms

    def note_quarantined(self, reason: Reason) -> None:
        self.quarantined[reason.value] = self.quarantined.get(reason.value, 0) + 1

    @property
    def conflicts(self) -> int:
        return self.quarantined.get(Reason.DUPLICATE_CONFLICT.value, 0)

    @property
    def is_empty(self) -> bool:
        """No record has reached this segment: nothing to persist."""
        return self.first is None

    # --- the JSON the Lambda runtime carries between invocations --------------------------

    def to_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {"v": LAYOUT}
        if self.first is None or self.last is None:
            return state if self.log_key is None else {**state, "log": self.log_key}
        state.update(
            t={
                _KEY_SEPARATOR.join((s, c, date.fromordinal(d).isoformat())): t
                for (s, c, d), t in self.totals.items()
            },
            n=self.events,
            dup=self.duplicates,
            q=self.quarantined,
            pos=[
                self.first.sequence_number,
                self.first.subsequence,
                self.last.sequence_number,
                self.last.subsequence,
            ],
            arr=[self.arrival_min_ms, self.arrival_max_ms],
            late=[self.lateness.count, self.lateness.total_ms, self.lateness.min_ms, self.lateness.max_ms],
        )
        if self.log_key is not None:
            state["log"] = self.log_key
        return state

    @classmethod
    def resume(cls, state: dict[str, Any]) -> WindowState:
        """The working state from the Lambda's `state`; `{}` (a window's first invocation)
        and any other layout version give a fresh state (`StateLayoutChanged` says which)."""
        if not state:
            return cls()
        if state.get("v") != LAYOUT:
            raise StateLayoutChanged(state.get("v"))
        resumed = cls(log_key=state.get("log"))
        if "pos" not in state:
            return resumed
        for text, counts in state["t"].items():
            store, currency, day = text.split(_KEY_SEPARATOR)
            resumed.totals[(store, currency, date.fromisoformat(day).toordinal())] = list(counts)
        first_sequence, first_sub, last_sequence, last_sub = state["pos"]
        resumed.events = state["n"]
        resumed.duplicates = state["dup"]
        resumed.quarantined = dict(state["q"])
        resumed.first = Position.of(first_sequence, first_sub)
        resumed.last = Position.of(last_sequence, last_sub)
        resumed.arrival_min_ms, resumed.arrival_max_ms = state["arr"]
        resumed.lateness = Lateness(*state["late"])
        return resumed


class StateLayoutChanged(ValueError):
    """The state was written by another layout version of this reducer."""

    def __init__(self, version: Any) -> None:
        super().__init__(f"window state has layout version {version!r}, this code writes {LAYOUT}")
        self.version = version


# --- the reducer ----------------------------------------------------------------------------------


def initialize() -> WindowState:
    return WindowState()


def fold(state: WindowState, effect: Effect) -> WindowState:
    """One accepted event into the state (mutated and returned, quix-streams style)."""
    return fold_all(state, (effect,))


def fold_all(state: WindowState, effects: Iterable[Effect]) -> WindowState:
    """`fold` over many effects: the hot path, one loop, two in-place additions per event."""
    totals = state.totals
    folded = 0
    for key, is_refund, amount in effects:
        counts = totals.get(key)
        if counts is None:
            counts = totals[key] = [0, 0, 0, 0]
        if is_refund:
            counts[1] += 1
            counts[3] += amount
        else:
            counts[0] += 1
            counts[2] += amount
        folded += 1
    state.events += folded
    return state


@dataclass(frozen=True)
class WindowResult:
    """What a finished segment adds to the running totals."""

    by_store_day: dict[tuple[str, str, str], Totals]  # (store, business day ISO, currency)
    by_store: dict[tuple[str, str], Totals]  # (store, currency), all business days
    by_currency: dict[str, Totals]  # the shard's totals per currency
    events: int
    duplicates: int
    quarantined: dict[str, int]

    @property
    def conflicts(self) -> int:
        return self.quarantined.get(Reason.DUPLICATE_CONFLICT.value, 0)


def result(state: WindowState) -> WindowResult:
    by_store_day: dict[tuple[str, str, str], Totals] = {}
    by_store: dict[tuple[str, str], Totals] = {}
    by_currency: dict[str, Totals] = {}
    for (store, currency, day), counts in sorted(state.totals.items()):
        totals = Totals(*counts)
        by_store_day[(store, date.fromordinal(day).isoformat(), currency)] = totals
        by_store[(store, currency)] = by_store.get((store, currency), Totals()) + totals
        by_currency[currency] = by_currency.get(currency, Totals()) + totals
    return WindowResult(
        by_store_day=by_store_day,
        by_store=by_store,
        by_currency=by_currency,
        events=state.events,
        duplicates=state.duplicates,
        quarantined=dict(sorted(state.quarantined.items())),
    )


@dataclass(frozen=True)
class Segment:
    """A finished window segment of one shard, ready to persist. A window normally has one;
    a window that AWS ended early (state over 1 MB) has one per fresh state, each identified by
    the position of its first record."""

    shard_id: str
    window: Window
    first: Position
    last: Position
    arrival_min_ms: int
    arrival_max_ms: int
    terminated_early: bool
    lateness: Lateness
    result: WindowResult

    @property
    def key(self) -> str:
        """Sorts like the segments of a shard arrive: window start, then first position."""
        return f"{self.window.start_ms:015d}#{self.first.key}"

    def content(self) -> dict[str, Any]:
        """Everything the segment says, as canonical JSON-able data (the digest covers it)."""
        return {
            "shard_id": self.shard_id,
            "window": self.window.as_event(),
            "first": [self.first.sequence_number, self.first.subsequence],
            "last": [self.last.sequence_number, self.last.subsequence],
            "arrival_ms": [self.arrival_min_ms, self.arrival_max_ms],
            "terminated_early": self.terminated_early,
            "events": self.result.events,
            "duplicates": self.result.duplicates,
            "quarantined": self.result.quarantined,
            "stores": {
                f"{store}{_KEY_SEPARATOR}{currency}": totals.as_dict()
                for (store, currency), totals in self.result.by_store.items()
            },
            # per business day too: the serving layer merges batch and speed at the snapshot's
            # horizon per (store, day, currency), and the reconciliation compares at that grain
            "days": {
                day_key(store, currency, day): totals.as_dict()
                for (store, day, currency), totals in self.result.by_store_day.items()
            },
        }

    def digest(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def day_key(store: str, currency: str, business_day: str) -> str:
    """`<store>/<currency>/<business day ISO>`: the key of a segment's per-day totals."""
    return _KEY_SEPARATOR.join((store, currency, business_day))


def split_day_key(key: str) -> tuple[str, str, str]:
    """(store, currency, business day ISO) from `day_key`."""
    store, currency, day = key.split(_KEY_SEPARATOR)
    return store, currency, day


def segment_of(state: WindowState, shard_id: str, window: Window, *, terminated_early: bool) -> Segment:
    if (
        state.first is None
        or state.last is None
        or state.arrival_min_ms is None
        or state.arrival_max_ms is None
    ):
        raise ValueError("an empty window state has no segment")
    return Segment(
        shard_id=shard_id,
        window=window,
        first=state.first,
        last=state.last,
        arrival_min_ms=state.arrival_min_ms,
        arrival_max_ms=state.arrival_max_ms,
        terminated_early=terminated_early,
        lateness=state.lateness,
        result=result(state),
    )
