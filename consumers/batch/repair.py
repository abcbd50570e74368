"""`reconcile --repair`: restate the speed layer's differing keys from the snapshot, with an
audit trail, idempotently.

- a window key: the window's segments are rewritten so that they add up to the snapshot's rows
  for that window (the first segment holds them, any further segment of the window is emptied);
  a window with no segment gets one (`<window start>#restated`). The segment's `digest` is kept:
  it identifies what the aggregator wrote, so a replayed final invocation is still recognised.
- a running total (store_day, shard_total): set to the snapshot's value plus what the segments
  after the horizon added, so later windows keep adding to it. A store's day is held per shard
  (its amounts in each shard's DAYS# item of that day): each shard's part is set to the
  snapshot's windows of that shard plus that shard's segments after the horizon.

Every write is conditional on the value the repair read (a segment's `days_zjson`, a total's
four amounts, a DAYS# item's version, or the item's absence) and goes in one transaction with its audit item
(`AUDIT`/`<ms>#<repair id>#<n>`: who, when, snapshot, key, before, after). If the aggregator
changed the item in between, the condition fails and the key is read and computed again. A key
already at its restated value is left alone, so a second repair changes nothing. Keys that
involve a window the speed layer has not closed yet are skipped: the aggregator will write them.
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from consumers.batch import layout
from consumers.batch.reconcile import Reconciler
from consumers.batch.resources import BatchResources, wall_ms
from consumers.batch.views import segment_rows, stream_shard_ids
from consumers.speed.layout import (
    SEGMENT_PREFIX,
    SHARD_PREFIX,
    STORE_TOTALS,
    TOTAL_PREFIX,
    VERSION,
    days_key,
    decode_store_totals,
    encode_store_totals,
    store_key,
)
from salesstream.core.aggregation import Totals, day_key
from salesstream.core.batch import Difference, KeyKind, Reconciliation, SnapshotInfo, WindowRow, totals_of
from salesstream.core.reconciliation import involves_late_window
from salesstream.core.windows import rfc3339

if TYPE_CHECKING:
    from consumers.batch.resources import Endpoint, Template

_ATTEMPTS: Final = 5
_AMOUNTS: Final = ("orders", "refunds", "gross_minor", "refunds_minor")


class RepairConflict(RuntimeError):
    """A key kept changing under the repair: run the reconciliation again later."""


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _zjson(document: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())


def _days_and_stores(rows: Iterable[WindowRow]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A segment's `days_zjson` and `stores_zjson` documents for these rows."""
    days: dict[str, Any] = {}
    stores: dict[str, Totals] = {}
    for row in rows:
        days[day_key(row.store_id, row.currency, row.business_day)] = row.totals.as_dict()
        key = f"{row.store_id}/{row.currency}"
        stores[key] = stores.get(key, Totals()) + row.totals
    return days, {key: totals.as_dict() for key, totals in stores.items()}


@dataclass
class Repairer:
    resources: BatchResources
    reconciler: Reconciler
    operator: str | None = None

    def __post_init__(self) -> None:
        self.settings = self.resources.settings
        self.dynamodb = self.resources.dynamodb
        self.who = self.operator or default_operator()

    def repair(self, reconciliation: Reconciliation) -> Reconciliation:
        """Restate every differing key (but those waiting for a late window), then reconcile
        again; the returned reconciliation counts the keys restated in `summary.repaired`."""
        snapshot = self.resources.views.snapshot(reconciliation.summary.snapshot_id)
        if snapshot is None:
            raise LookupError(f"snapshot {reconciliation.summary.snapshot_id} is gone")
        differences = reconciliation.differences
        windows = [d for d in differences if d.kind is KeyKind.WINDOW]
        todo = [d for d in differences if not involves_late_window(d, windows)]
        audit = _Audit(self.settings.batch_table, self.who, reconciliation, wall_ms())
        restated = 0
        for shard, start in sorted(
            {(d.shard_id or "", d.window_start_ms or 0) for d in todo if d in windows}
        ):
            restated += self._restate_window(snapshot, shard, start, audit)
        for difference in todo:
            if difference.kind is not KeyKind.WINDOW:
                restated += self._restate_total(snapshot, difference, audit)
        return self.reconciler.reconcile(snapshot, repaired=restated)

    # --- a window's segments ------------------------------------------------------------------

    def _restate_window(self, snapshot: SnapshotInfo, shard: str, start: int, audit: _Audit) -> int:
        views = self.resources.views
        target = [
            r for r in views.window_rows(snapshot) if r.shard_id == shard and r.window_start_ms == start
        ]
        days, stores = _days_and_stores(target)
        key = f"window:{shard}/{start}"
        for _ in range(_ATTEMPTS):
            segments = list(views.segment_items(shard, after_ms=start, before_ms=start + 1))
            current, _ = _days_and_stores(row for item in segments for row in segment_rows(item))
            if current == days:
                return 0  # already what the snapshot says
            operations = (
                self._segment_updates(segments, days, stores, audit)
                if segments
                else [self._segment_put(snapshot, shard, start, days, stores, audit)]
            )
            before = {
                item["sk"]["S"]: json.loads(zlib.decompress(item["days_zjson"]["B"])) for item in segments
            }
            after = {item["sk"]["S"]: days if i == 0 else {} for i, item in enumerate(segments)} or {
                "new": days
            }
            item_key = {"pk": SEGMENT_PREFIX + shard, "sk": segments[0]["sk"]["S"] if segments else "(new)"}
            if self._transact([*operations, audit.entry(key, item_key, before, after)]):
                return 1
        raise RepairConflict(f"{key} kept changing during the repair")

    def _segment_updates(
        self, segments: list[dict[str, Any]], days: dict[str, Any], stores: dict[str, Any], audit: _Audit
    ) -> list[dict[str, Any]]:
        updates = []
        for index, item in enumerate(segments):
            restated_days, restated_stores = (days, stores) if index == 0 else ({}, {})
            updates.append(
                {
                    "Update": {
                        "TableName": self.settings.aggregates_table,
                        "Key": {"pk": item["pk"], "sk": item["sk"]},
                        "UpdateExpression": (
                            "SET days_zjson = :days, stores_zjson = :stores, restated = :restated"
                        ),
                        # only over what was read: an item changed since is read again
                        "ConditionExpression": "days_zjson = :before",
                        "ExpressionAttributeValues": {
                            ":days": {"B": _zjson(restated_days)},
                            ":stores": {"B": _zjson(restated_stores)},
                            ":restated": audit.marker(),
                            ":before": item["days_zjson"],
                        },
                    }
                }
            )
        return updates

    def _segment_put(
        self,
        snapshot: SnapshotInfo,
        shard: str,
        start: int,
        days: dict[str, Any],
        stores: dict[str, Any],
        audit: _Audit,
    ) -> dict[str, Any]:
        end = start + snapshot.window_seconds * 1000
        return {
            "Put": {
                "TableName": self.settings.aggregates_table,
                "Item": {
                    "pk": {"S": SEGMENT_PREFIX + shard},
                    "sk": {"S": f"{start:015d}#restated"},
                    "shard_id": {"S": shard},
                    "window_start": {"S": rfc3339(start)},
                    "window_end": {"S": rfc3339(end)},
                    "days_zjson": {"B": _zjson(days)},
                    "stores_zjson": {"B": _zjson(stores)},
                    "restated": audit.marker(),
                },
                "ConditionExpression": "attribute_not_exists(pk)",  # keyed by (shard, window): once
            }
        }

    # --- a running total ----------------------------------------------------------------------

    def _restate_total(self, snapshot: SnapshotInfo, difference: Difference, audit: _Audit) -> int:
        if difference.kind is KeyKind.STORE_DAY:
            return self._restate_store_day(snapshot, difference, audit)
        key = {"pk": SHARD_PREFIX + str(difference.shard_id), "sk": TOTAL_PREFIX + difference.currency}
        identity = {"shard_id": {"S": str(difference.shard_id)}, "currency": {"S": difference.currency}}
        for _ in range(_ATTEMPTS):
            # the item first, then the segments: a segment persisted in between changes the item,
            # so the conditional write below fails and the key is computed again
            item = self.dynamodb.get_item(
                TableName=self.settings.aggregates_table,
                Key={name: {"S": value} for name, value in key.items()},
                ConsistentRead=True,
            ).get("Item")
            current = None if item is None else totals_of({n: v["N"] for n, v in item.items() if "N" in v})
            target = difference.batch + self._after_horizon(snapshot, difference)
            if current == target:
                return 0
            update = self._total_update(key, identity, current, target, audit)
            before = None if current is None else current.as_dict()
            if self._transact([update, audit.entry(difference.key, key, before, target.as_dict())]):
                return 1
        raise RepairConflict(f"{difference.key} kept changing during the repair")

    def _restate_store_day(self, snapshot: SnapshotInfo, difference: Difference, audit: _Audit) -> int:
        """Each shard's part of a store's day: the snapshot's windows of that shard plus what that
        shard's segments after the horizon added; all parts in one transaction."""
        store, day, currency = str(difference.store_id), str(difference.business_day), difference.currency
        entry = store_key(store, currency)
        shards = self._shards(snapshot)
        for _ in range(_ATTEMPTS):
            # the items first, then the segments: a segment persisted in between changes an
            # item's version, so the conditional write below fails and the key is computed again
            items = {shard: self._days_item(shard, day) for shard in shards}
            current = {
                shard: Totals(*document[entry])
                for shard, item in items.items()
                if item is not None and entry in (document := decode_store_totals(item))
            }
            targets = self._store_day_parts(snapshot, shards, store, day, currency)
            if _nonzero(current) == _nonzero(targets):
                return 0
            puts = [
                self._days_put(shard, day, items[shard], entry, targets.get(shard, Totals()), audit)
                for shard in shards
                if current.get(shard, Totals()) != targets.get(shard, Totals())
            ]
            before = sum(current.values(), Totals()).as_dict() if current else None
            after = sum(targets.values(), Totals()).as_dict()
            item_keys = [{"pk": put["Put"]["Item"]["pk"]["S"], "sk": day} for put in puts]
            if self._transact([*puts, audit.entry(difference.key, item_keys, before, after)]):
                return 1
        raise RepairConflict(f"{difference.key} kept changing during the repair")

    def _shards(self, snapshot: SnapshotInfo) -> list[str]:
        shards = {s.shard_id for s in snapshot.shards}
        shards |= set(stream_shard_ids(self.resources.kinesis, self.settings.stream_name))
        return sorted(shards)

    def _store_day_parts(
        self, snapshot: SnapshotInfo, shards: list[str], store: str, day: str, currency: str
    ) -> dict[str, Totals]:
        parts: dict[str, Totals] = {}
        rows = [*self.resources.views.window_rows(snapshot, store_id=store)]
        for shard in shards:
            rows += [
                row
                for item in self.resources.views.segment_items(shard, after_ms=snapshot.horizon_ms)
                for row in segment_rows(item)
            ]
        for row in rows:
            if (row.store_id, row.business_day, row.currency) == (store, day, currency):
                parts[row.shard_id] = parts.get(row.shard_id, Totals()) + row.totals
        return parts

    def _days_item(self, shard: str, day: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=self.settings.aggregates_table, Key=days_key(shard, day), ConsistentRead=True
        ).get("Item")
        return item

    def _days_put(
        self,
        shard: str,
        day: str,
        item: dict[str, Any] | None,
        entry: str,
        target: Totals,
        audit: _Audit,
    ) -> dict[str, Any]:
        document = {} if item is None else decode_store_totals(item)
        document.pop(entry, None)
        if target != Totals():
            document[entry] = [target.orders, target.refunds, target.gross_minor, target.refunds_minor]
        version = 0 if item is None else int(item[VERSION]["N"])
        restated = {
            **(item or {}),
            **days_key(shard, day),
            "shard_id": {"S": shard},
            "business_day": {"S": day},
            "stores": {"N": str(len(document))},
            STORE_TOTALS: {"B": encode_store_totals(document)},
            VERSION: {"N": str(version + 1)},
            "restated": audit.marker(),
        }
        put: dict[str, Any] = {"TableName": self.settings.aggregates_table, "Item": restated}
        if item is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            # only over the version read: a segment persisted since makes this fail
            put["ConditionExpression"] = "#version = :read"
            put["ExpressionAttributeNames"] = {"#version": VERSION}
            put["ExpressionAttributeValues"] = {":read": {"N": str(version)}}
        return {"Put": put}

    def _after_horizon(self, snapshot: SnapshotInfo, difference: Difference) -> Totals:
        """What the shard's segments after the horizon added to its running total."""
        total = Totals()
        segments = self.resources.views.segment_items(str(difference.shard_id), after_ms=snapshot.horizon_ms)
        for item in segments:
            for row in segment_rows(item):
                if row.currency == difference.currency:
                    total = total + row.totals
        return total

    def _total_update(
        self,
        key: dict[str, str],
        identity: dict[str, Any],
        current: Totals | None,
        target: Totals,
        audit: _Audit,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {f":{name}": {"N": str(getattr(target, name))} for name in _AMOUNTS}
        values[":net"] = {"N": str(target.net_minor)}
        values[":restated"] = audit.marker()
        assignments = [f"{name} = :{name}" for name in _AMOUNTS] + [
            "net_minor = :net",
            "restated = :restated",
        ]
        if current is None:
            condition = "attribute_not_exists(pk)"
            for name, value in identity.items():
                values[f":id_{name}"] = value
                assignments.append(f"{name} = :id_{name}")
        else:
            # only over the amounts read: an ADD of a segment since makes this fail
            condition = " AND ".join(f"{name} = :before_{name}" for name in _AMOUNTS)
            values.update({f":before_{name}": {"N": str(getattr(current, name))} for name in _AMOUNTS})
        return {
            "Update": {
                "TableName": self.settings.aggregates_table,
                "Key": {name: {"S": value} for name, value in key.items()},
                "UpdateExpression": "SET " + ", ".join(assignments),
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(self, operations: list[dict[str, Any]]) -> bool:
        """True when applied; False when a condition failed (the key changed since it was read)."""
        try:
            self.dynamodb.transact_write_items(TransactItems=operations)
        except self.dynamodb.exceptions.TransactionCanceledException as cancelled:
            codes = {reason.get("Code") for reason in cancelled.response.get("CancellationReasons", [])}
            if "ConditionalCheckFailed" in codes:
                return False
            raise
        return True


def _nonzero(parts: dict[str, Totals]) -> dict[str, Totals]:
    return {shard: totals for shard, totals in parts.items() if totals != Totals()}


class _Audit:
    """The audit items of one repair run: `AUDIT`/`<ms:015d>#<repair id>#<n:04d>`."""

    def __init__(self, table: str, who: str, reconciliation: Reconciliation, at_ms: int) -> None:
        self.table, self.who, self.at_ms = table, who, at_ms
        self.repair_id = uuid.uuid4().hex[:8]
        self.snapshot_id = reconciliation.summary.snapshot_id
        self.reconciliation_id = reconciliation.summary.reconciliation_id
        self.count = 0

    def marker(self) -> dict[str, Any]:
        """What a restated item carries: by which repair, from which snapshot."""
        return {
            "M": {
                "repair_id": {"S": self.repair_id},
                "snapshot_id": {"S": self.snapshot_id},
                "at": {"S": rfc3339(self.at_ms)},
                "who": {"S": self.who},
            }
        }

    def entry(self, key: str, item_key: Any, before: Any, after: Any) -> dict[str, Any]:
        self.count += 1
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    "pk": {"S": layout.AUDIT},
                    "sk": {"S": f"{self.at_ms:015d}#{self.repair_id}#{self.count:04d}"},
                    "repair_id": {"S": self.repair_id},
                    "who": {"S": self.who},
                    "at": {"S": rfc3339(self.at_ms)},
                    "snapshot_id": {"S": self.snapshot_id},
                    "reconciliation_id": {"S": self.reconciliation_id},
                    "key": {"S": key},
                    "item": {"S": json.dumps(item_key, sort_keys=True)},
                    "before": {"S": json.dumps(before, sort_keys=True)},
                    "after": {"S": json.dumps(after, sort_keys=True)},
                },
                # a new sort key per entry: never overwrites an earlier one
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }


def reconcile(
    endpoint: Endpoint,
    template: Template,
    *,
    repair: bool = False,
    operator: str | None = None,
    **settings: Any,
) -> Reconciliation:
    """Reconcile the latest snapshot against the speed layer of a stack (`make demo`, as
    `salesstream reconcile` does); with `repair`, restate the differing keys from the snapshot and
    return the reconciliation made after the repair. Here, not in reconcile.py: the scheduled
    snapshot function reconciles but never repairs, so its package and role hold no repair."""
    resources = BatchResources.from_template(endpoint, template, **settings)
    reconciler = Reconciler(resources)
    reconciliation = reconciler.reconcile()
    if not repair:
        return reconciliation
    return Repairer(resources, reconciler, operator=operator).repair(reconciliation)
