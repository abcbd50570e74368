"""Speed vs batch, pure: compare totals per key, classify each difference, and explain it.

Three kinds of key are compared up to the snapshot's horizon:
- window (shard, window start, store, currency, business day): the speed layer's segments of the
  windows before the horizon against the snapshot's rows;
- store_day (store, business day, currency) and shard_total (shard, currency): a running-total
  item minus what the segments after the horizon added to it, against the snapshot's totals.

A difference is classified (missing in speed, extra in speed, amount mismatch) and then matched
against candidate explanations, each of which says exactly how much it accounts for (speed
minus batch). It is *explained* only when some set of its candidates' causes adds up to the
delta exactly, to the unit, in every field; otherwise it is unexplained, with the candidates
listed as possible causes. A running-total difference is explained when it is exactly the sum
of its windows' differences and every one of those is explained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Final, TypeVar

from salesstream.core.aggregation import Totals
from salesstream.core.batch import (
    ZERO,
    Cause,
    Classification,
    Difference,
    Explanation,
    KeyKind,
    ReconciliationSummary,
    minus,
)

# (shard, window start ms, store, currency, business day)
WindowKey = tuple[str, int, str, str, str]
K = TypeVar("K")

_MAX_CAUSE_GROUPS: Final = 8  # 255 combinations at most per difference


def classify(batch: Totals, speed: Totals) -> Classification:
    if speed == ZERO:
        return Classification.MISSING_IN_SPEED
    if batch == ZERO:
        return Classification.EXTRA_IN_SPEED
    return Classification.AMOUNT_MISMATCH


def compare(batch: Mapping[K, Totals], speed: Mapping[K, Totals]) -> list[tuple[K, Totals, Totals]]:
    """(key, batch, speed) for every key whose totals differ (a missing key counts as zero)."""
    differing = []
    for key in sorted(set(batch) | set(speed)):  # type: ignore[type-var]
        left, right = batch.get(key, ZERO), speed.get(key, ZERO)
        if left != right:
            differing.append((key, left, right))
    return differing


def explain(delta: Totals, candidates: Sequence[Explanation]) -> tuple[tuple[Explanation, ...], bool]:
    """The candidates of the smallest set of causes whose deltas add up to `delta` exactly, and
    True; or every candidate (possible causes) and False when no set does."""
    by_cause: dict[Cause, list[Explanation]] = {}
    for candidate in candidates:
        by_cause.setdefault(candidate.cause, []).append(candidate)
    groups = list(by_cause.values())[:_MAX_CAUSE_GROUPS]
    for size in range(1, len(groups) + 1):
        for chosen in combinations(groups, size):
            total = ZERO
            for group in chosen:
                for candidate in group:
                    total = total + candidate.delta
            if total == delta:
                return tuple(candidate for group in chosen for candidate in group), True
    return tuple(candidates), False


def window_differences(
    batch: Mapping[WindowKey, Totals],
    speed: Mapping[WindowKey, Totals],
    candidates: Mapping[WindowKey, Sequence[Explanation]],
) -> list[Difference]:
    differences = []
    for key, left, right in compare(batch, speed):
        shard, start, store, currency, day = key
        explanations, explained = explain(minus(right, left), candidates.get(key, ()))
        differences.append(
            Difference(
                kind=KeyKind.WINDOW,
                classification=classify(left, right),
                currency=currency,
                batch=left,
                speed=right,
                shard_id=shard,
                window_start_ms=start,
                store_id=store,
                business_day=day,
                explanations=explanations,
                explained=explained,
            )
        )
    return differences


def running_key(kind: KeyKind, difference: Difference) -> tuple[str | None, ...]:
    """The running-total key (of `kind`) a difference belongs to."""
    if kind is KeyKind.STORE_DAY:
        return (difference.store_id, difference.business_day, difference.currency)
    return (difference.shard_id, difference.currency)


def running_total_differences(
    kind: KeyKind,
    batch: Mapping[tuple[str, ...], Totals],
    speed: Mapping[tuple[str, ...], Totals],
    windows: Sequence[Difference],
) -> list[Difference]:
    """Differences of store_day keys (store, day, currency) or shard_total keys (shard,
    currency); `speed` is the running total minus what segments after the horizon added."""
    derived: dict[tuple[str | None, ...], list[Difference]] = {}
    for window in windows:
        derived.setdefault(running_key(kind, window), []).append(window)
    differences = []
    for key, left, right in compare(batch, speed):
        delta = minus(right, left)
        explanations: tuple[Explanation, ...] = ()
        explained = False
        from_windows = derived.get(key, [])
        if from_windows:
            windows_delta = ZERO
            for window in from_windows:
                windows_delta = windows_delta + window.delta
            named = ", ".join(w.key for w in from_windows[:5])
            more = f" and {len(from_windows) - 5} more" if len(from_windows) > 5 else ""
            explanations = (
                Explanation(
                    Cause.WINDOW_DIFFERENCES, f"its windows' differences: {named}{more}", windows_delta
                ),
            )
            explained = windows_delta == delta and all(w.explained for w in from_windows)
        store_day = kind is KeyKind.STORE_DAY
        differences.append(
            Difference(
                kind=kind,
                classification=classify(left, right),
                currency=key[-1],
                batch=left,
                speed=right,
                shard_id=None if store_day else key[0],
                store_id=key[0] if store_day else None,
                business_day=key[1] if store_day else None,
                explanations=explanations,
                explained=explained,
            )
        )
    return differences


def involves_late_window(difference: Difference, windows: Sequence[Difference]) -> bool:
    """Whether the difference is (or sums up) a window the speed layer has not closed yet: such a
    key is left alone by a repair (the aggregator will still write it)."""
    if any(e.cause is Cause.LATE_WINDOW for e in difference.explanations):
        return True
    if difference.kind is KeyKind.WINDOW:
        return False
    key = running_key(difference.kind, difference)
    return any(
        e.cause is Cause.LATE_WINDOW
        for w in windows
        if running_key(difference.kind, w) == key
        for e in w.explanations
    )


def summarize(
    differences: Sequence[Difference],
    *,
    reconciliation_id: str,
    snapshot_id: str,
    horizon_ms: int,
    reconciled_ms: int,
    keys_compared: int,
    notes: Mapping[str, int],
    repaired: int = 0,
) -> ReconciliationSummary:
    by_classification: dict[str, int] = {}
    by_cause: dict[str, int] = {}
    for difference in differences:
        name = f"{difference.kind.value}.{difference.classification.value}"
        by_classification[name] = by_classification.get(name, 0) + 1
        if difference.explained:
            for cause in {e.cause.value for e in difference.explanations}:
                by_cause[cause] = by_cause.get(cause, 0) + 1
    return ReconciliationSummary(
        reconciliation_id=reconciliation_id,
        snapshot_id=snapshot_id,
        horizon_ms=horizon_ms,
        reconciled_ms=reconciled_ms,
        keys_compared=keys_compared,
        differences=len(differences),
        unexplained=sum(1 for d in differences if not d.explained),
        by_classification=dict(sorted(by_classification.items())),
        by_cause=dict(sorted(by_cause.items())),
        notes=dict(sorted(notes.items())),
        repaired=repaired,
    )
