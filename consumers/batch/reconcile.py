"""The reconciliation: the speed layer against a snapshot, up to its horizon; stored and returned.

Gathers both sides (the snapshot's rows; the speed layer's segments and running totals), lets
salesstream/core/reconciliation.py classify every difference, and collects the evidence that
explains them, each piece with the exact amount it accounts for:

- the snapshot's findings: resends the speed layer's dedup rule counted a second time (later than
  DEDUP_HORIZON_SECONDS after the first sighting);
- for a window that differs, its archived events (re-read from the archive), matched by position
  against the quarantine table (a record the speed layer quarantined and the batch counted) and
  against the on-failure notices of the aggregator's mapping (records past MaximumRecordAge or
  MaximumRetryAttempts: shard and sequence range); and the speed layer's dedup log against the
  archiver's notices (records the archiver gave up on, which the speed layer counted); and, for
  an event id seen on several shards, the speed layer's dedup log of the window (which copy it
  folded: a copy on a shard outside the first one's lineage is beyond its per-lineage dedup);
- a window with no segment, newer than the shard's newest segment: not closed yet (late window).

On-failure notices are moved from the queue to `failures/<message id>.json` in the archive
bucket on every run (keyed by message id, then deleted from the queue), so none is lost and every
later reconciliation still sees them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from consumers.batch import layout
from consumers.batch.archive_reader import read_back
from consumers.batch.resources import BatchResources, wall_ms
from consumers.batch.views import segment_rows, stream_shard_ids
from consumers.speed.layout import DAYS_PREFIX, SHARD_PREFIX, TOTAL_PREFIX, store_day_amounts
from salesstream.core.aggregation import Effect, Totals
from salesstream.core.archive import ArchiveKey, hour_prefix
from salesstream.core.batch import (
    Cause,
    Explanation,
    KeyKind,
    Reconciliation,
    SnapshotInfo,
    difference_to_json,
    minus,
    summary_to_json,
    totals_of,
)
from salesstream.core.dedup import decode_log, log_first_arrival, log_prefix, log_start_after
from salesstream.core.reconciliation import (
    WindowKey,
    running_total_differences,
    summarize,
    window_differences,
)
from salesstream.core.windows import rfc3339

_HOUR_MS: Final = 3_600_000
_RECORD_AGE: Final = "RecordAgeExceeded"


class NoSnapshot(LookupError):
    """There is no finished snapshot to reconcile against yet."""


def _totals(effect: Effect) -> Totals:
    _, refund, amount = effect
    return Totals(refunds=1, refunds_minor=amount) if refund else Totals(orders=1, gross_minor=amount)


def _window_key(shard: str, window_start: int, effect: Effect) -> WindowKey:
    (store, currency, day), _, _ = effect
    return (shard, window_start, store, currency, date.fromordinal(day).isoformat())


def _add(into: dict[Any, Totals], key: Any, totals: Totals) -> None:
    into[key] = into.get(key, Totals()) + totals


@dataclass(frozen=True)
class Notice:
    """An on-failure notice: which function gave up on which records of which shard."""

    function_arn: str
    condition: str
    shard_id: str
    first_sequence: int
    last_sequence: int

    def covers(self, shard_id: str, sequence: int) -> bool:
        return shard_id == self.shard_id and self.first_sequence <= sequence <= self.last_sequence

    def by(self, function_name: str) -> bool:
        return self.function_arn.endswith(f":function:{function_name}")


@dataclass
class SpeedSide:
    windows: dict[WindowKey, Totals] = field(default_factory=dict)  # segments before the horizon
    store_days: dict[tuple[str, ...], Totals] = field(default_factory=dict)  # running minus after
    shard_totals: dict[tuple[str, ...], Totals] = field(default_factory=dict)
    newest_window: dict[str, int] = field(default_factory=dict)  # shard -> newest segment's window


class Reconciler:
    def __init__(self, resources: BatchResources, *, now_ms: Callable[[], int] = wall_ms) -> None:
        self.resources = resources
        self.settings = resources.settings
        self.views = resources.views
        self.now_ms = now_ms
        self.window_ms = self.settings.window_seconds * 1000

    # --- the whole run ------------------------------------------------------------------------

    def reconcile(self, snapshot: SnapshotInfo | None = None, *, repaired: int = 0) -> Reconciliation:
        """Reconcile against `snapshot` (default: the latest), store the result and return it;
        `repaired` is how many keys a repair restated just before (recorded in the summary)."""
        snapshot = snapshot or self.views.latest_snapshot()
        if snapshot is None:
            raise NoSnapshot("no finished snapshot yet: run `salesstream snapshot` first")
        batch_windows = {
            (r.shard_id, r.window_start_ms, r.store_id, r.currency, r.business_day): r.totals
            for r in self.views.window_rows(snapshot)
        }
        batch_days: dict[tuple[str, ...], Totals] = {
            (r.store_id, r.business_day, r.currency): r.totals for r in self.views.store_day_rows(snapshot)
        }
        batch_shards: dict[tuple[str, ...], Totals] = {}
        for (shard, _, _, currency, _), totals in batch_windows.items():
            _add(batch_shards, (shard, currency), totals)
        shards = {s.shard_id for s in snapshot.shards} | set(
            stream_shard_ids(self.resources.kinesis, self.settings.stream_name)
        )
        speed = self._speed_side(shards, snapshot.horizon_ms)
        findings = list(self._findings(snapshot))
        notices = self._notices()

        candidates: dict[WindowKey, list[Explanation]] = {}
        for key, explanation in self._late_resends(findings):
            candidates.setdefault(key, []).append(explanation)
        first_pass = window_differences(batch_windows, speed.windows, candidates)
        differing = sorted(
            {(d.shard_id or "", d.window_start_ms or 0) for d in first_pass if not d.explained}
        )
        for shard, window_start in differing:
            evidence = self._window_evidence(shard, window_start, batch_windows, speed, findings, notices)
            for key, explanation in evidence:
                candidates.setdefault(key, []).append(explanation)
        windows = window_differences(batch_windows, speed.windows, candidates)
        differences = [
            *windows,
            *running_total_differences(KeyKind.STORE_DAY, batch_days, speed.store_days, windows),
            *running_total_differences(KeyKind.SHARD_TOTAL, batch_shards, speed.shard_totals, windows),
        ]
        reconciled = self.now_ms()
        compared = (
            len(set(batch_windows) | set(speed.windows))
            + len(set(batch_days) | set(speed.store_days))
            + len(set(batch_shards) | set(speed.shard_totals))
        )
        summary = summarize(
            differences,
            reconciliation_id=f"{reconciled:015d}-{snapshot.snapshot_id}",
            snapshot_id=snapshot.snapshot_id,
            horizon_ms=snapshot.horizon_ms,
            reconciled_ms=reconciled,
            keys_compared=compared,
            notes=self._notes(snapshot, notices),
            repaired=repaired,
        )
        reconciliation = Reconciliation(summary, tuple(differences))
        self.store(reconciliation)
        return reconciliation

    def store(self, reconciliation: Reconciliation) -> None:
        summary = reconciliation.summary
        document = {
            "summary": summary_to_json(summary),
            "differences": [difference_to_json(d) for d in reconciliation.differences],
        }
        key = layout.reconciliation_key(summary.reconciliation_id)
        body = gzip.compress(json.dumps(document, separators=(",", ":")).encode(), 6, mtime=0)
        self.resources.s3.put_object(Bucket=self.settings.archive_bucket, Key=key, Body=body)
        self.resources.dynamodb.put_item(
            TableName=self.settings.batch_table,
            Item={
                # keyed by the reconciliation id: writing it again puts the same item
                "pk": {"S": layout.RECONCILIATIONS},
                "sk": {"S": summary.reconciliation_id},
                "snapshot_id": {"S": summary.snapshot_id},
                "status": {"S": summary.status.value},
                "summary": {"S": json.dumps(summary_to_json(summary))},
                "result_key": {"S": key},
            },
        )

    # --- the speed side -----------------------------------------------------------------------

    def _speed_side(self, shards: Iterable[str], horizon_ms: int) -> SpeedSide:
        side = SpeedSide()
        after_days: dict[tuple[str, ...], Totals] = {}
        after_shards: dict[tuple[str, ...], Totals] = {}
        for shard in sorted(shards):
            for item in self.views.segment_items(shard):
                for row in segment_rows(item):
                    side.newest_window[shard] = max(side.newest_window.get(shard, 0), row.window_start_ms)
                    if row.window_start_ms < horizon_ms:
                        key = (
                            row.shard_id,
                            row.window_start_ms,
                            row.store_id,
                            row.currency,
                            row.business_day,
                        )
                        _add(side.windows, key, row.totals)
                    else:
                        _add(after_days, (row.store_id, row.business_day, row.currency), row.totals)
                        _add(after_shards, (row.shard_id, row.currency), row.totals)
        running_days, running_shards = self._running_totals()
        for day in set(running_days) | set(after_days):
            side.store_days[day] = minus(running_days.get(day, Totals()), after_days.get(day, Totals()))
        for total in set(running_shards) | set(after_shards):
            side.shard_totals[total] = minus(
                running_shards.get(total, Totals()), after_shards.get(total, Totals())
            )
        return side

    def _running_totals(self) -> tuple[dict[tuple[str, ...], Totals], dict[tuple[str, ...], Totals]]:
        days: dict[tuple[str, ...], Totals] = {}
        shards: dict[tuple[str, ...], Totals] = {}
        pages = self.resources.dynamodb.get_paginator("scan").paginate(
            TableName=self.settings.aggregates_table,
            FilterExpression=(
                "begins_with(pk, :days) OR (begins_with(pk, :shard) AND begins_with(sk, :total))"
            ),
            ExpressionAttributeValues={
                ":days": {"S": DAYS_PREFIX},
                ":shard": {"S": SHARD_PREFIX},
                ":total": {"S": TOTAL_PREFIX},
            },
            ConsistentRead=True,
        )
        for page in pages:
            for item in page["Items"]:
                if item["pk"]["S"].startswith(DAYS_PREFIX):
                    # a store's day is the sum over the shards that counted it (resharding)
                    for store, currency, day, amounts in store_day_amounts(item):
                        _add(days, (store, day, currency), Totals(*amounts))
                elif item["sk"]["S"].startswith(TOTAL_PREFIX):
                    totals = totals_of({name: value["N"] for name, value in item.items() if "N" in value})
                    shards[(item["shard_id"]["S"], item["currency"]["S"])] = totals
        return days, shards

    # --- evidence -----------------------------------------------------------------------------

    def _findings(self, snapshot: SnapshotInfo) -> Iterator[dict[str, Any]]:
        body = self.resources.s3.get_object(Bucket=self.settings.archive_bucket, Key=snapshot.findings_key)
        with gzip.GzipFile(fileobj=body["Body"]) as lines:
            for line in lines:
                yield json.loads(line)

    def _late_resends(self, findings: list[dict[str, Any]]) -> Iterator[tuple[WindowKey, Explanation]]:
        horizon = self.settings.dedup_horizon_seconds
        for finding in findings:
            first = next((s for s in finding["sightings"] if s["batch_counted"]), None)
            for sighting in finding["sightings"]:
                if not sighting["speed_counted"] or sighting["batch_counted"] or first is None:
                    continue
                effect = sighting["effect"]
                key = (
                    sighting["shard_id"],
                    sighting["window_start_ms"],
                    effect["store_id"],
                    effect["currency"],
                    effect["business_day"],
                )
                totals = _json_totals(effect)
                seconds = (sighting["arrival_ms"] - first["arrival_ms"]) / 1000
                detail = (
                    f"event {finding['event_id']} sent again {seconds:.0f} s after its first sighting "
                    f"(dedup horizon {horizon} s) at {_where(sighting)}: the speed layer counted it twice"
                )
                yield key, Explanation(Cause.LATE_RESEND, detail, totals)

    def _window_evidence(
        self,
        shard: str,
        window_start: int,
        batch: dict[WindowKey, Totals],
        speed: SpeedSide,
        findings: list[dict[str, Any]],
        notices: list[Notice],
    ) -> Iterator[tuple[WindowKey, Explanation]]:
        window_end = window_start + self.window_ms
        has_segment = any(k[0] == shard and k[1] == window_start for k in speed.windows)
        if not has_segment and window_start > speed.newest_window.get(shard, -1):
            for key, totals in batch.items():
                if key[0] == shard and key[1] == window_start:
                    detail = f"{shard} has not closed window {rfc3339(window_start)} in the speed layer yet"
                    yield key, Explanation(Cause.LATE_WINDOW, detail, minus(Totals(), totals))
            return
        counted_positions = {
            (s["shard_id"], s["sequence_number"], s["subsequence"]): s["batch_counted"]
            for f in findings
            for s in f["sightings"]
        }
        archived: dict[tuple[str, int], Effect | None] = {}  # (sequence, sub) -> effect if counted
        for sighting in self._archived_window(shard, window_start, window_end):
            _, _, _, sequence, subsequence, effect = sighting
            counted = counted_positions.get((shard, sequence, subsequence), True)
            archived[(sequence, subsequence)] = effect if counted else None
        for (sequence, subsequence), reason in self._quarantined(shard, window_start).items():
            effect = archived.get((sequence, subsequence))
            if effect is not None:
                where = f"{shard} {sequence}.{subsequence}"
                yield (
                    _window_key(shard, window_start, effect),
                    Explanation(
                        Cause.QUARANTINED,
                        f"quarantined by the speed layer ({reason}) at {where}",
                        minus(Totals(), _totals(effect)),
                    ),
                )
        aggregator = self.settings.aggregator_function
        for notice in notices:
            if not notice.by(aggregator) or notice.shard_id != shard:
                continue
            cause = Cause.RECORD_AGE_EXCEEDED if notice.condition == _RECORD_AGE else Cause.RETRIES_EXHAUSTED
            for (sequence, subsequence), effect in archived.items():
                if effect is not None and notice.covers(shard, int(sequence)):
                    detail = (
                        f"the aggregator's mapping gave up ({notice.condition}) on {shard} sequence "
                        f"{notice.first_sequence}-{notice.last_sequence}, holding {sequence}.{subsequence}"
                    )
                    yield (
                        _window_key(shard, window_start, effect),
                        Explanation(cause, detail, minus(Totals(), _totals(effect))),
                    )
        yield from self._unrelated_shard_copies(shard, window_start, window_end, findings)
        archiver_gaps = [n for n in notices if n.by(self.settings.archiver_function) and n.shard_id == shard]
        if archiver_gaps:
            yield from self._archive_gaps(shard, window_start, window_end, archiver_gaps, archived)

    def _archived_window(self, shard: str, start: int, end: int) -> Iterator[Any]:
        """The archived events of one shard whose arrival falls in [start, end)."""
        s3, bucket = self.resources.s3, self.settings.archive_bucket
        hour = start - start % _HOUR_MS - _HOUR_MS  # an object is filed under its first arrival's hour
        while hour < end:
            prefix = f"{hour_prefix(hour)}{shard}-"
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    ArchiveKey.parse(entry["Key"])  # refuses anything this format did not write
                    body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                    for sighting in read_back(body, entry["Key"]).sightings:
                        if start <= sighting[1] < end:
                            yield sighting
            hour += _HOUR_MS

    def _unrelated_shard_copies(
        self, shard: str, start: int, end: int, findings: list[dict[str, Any]]
    ) -> Iterator[tuple[WindowKey, Explanation]]:
        """For event ids seen on several shards, what the speed layer folded in this window (its
        dedup log is the record of it) against what the batch counted once, globally: each copy
        one of them counted and the other did not accounts for its effect."""
        copies = [
            (finding["event_id"], sighting)
            for finding in findings
            if len(finding.get("shards", ())) > 1
            for sighting in finding["sightings"]
            if sighting["shard_id"] == shard
            and start <= sighting["arrival_ms"] < end
            # a late resend is explained by the dedup horizon already
            and not (sighting["speed_counted"] and not sighting["batch_counted"])
        ]
        if not copies:
            return
        folded = self._speed_folded(shard, start, end)
        for event_id, sighting in copies:
            in_speed = (sighting["sequence_number"], sighting["subsequence"]) in folded
            if in_speed == sighting["batch_counted"]:
                continue
            effect = sighting["effect"]
            totals = _json_totals(effect)
            key = (shard, start, effect["store_id"], effect["currency"], effect["business_day"])
            if in_speed:
                detail = (
                    f"event {event_id} at {_where(sighting)} is a copy of one first seen on another "
                    "shard, outside this shard's lineage: the speed layer counted it here too"
                )
                yield key, Explanation(Cause.UNRELATED_SHARD_COPY, detail, totals)
            else:
                detail = (
                    f"event {event_id} at {_where(sighting)} was counted by the batch here and by "
                    "the speed layer at its copy on another shard"
                )
                yield key, Explanation(Cause.UNRELATED_SHARD_COPY, detail, minus(Totals(), totals))

    def _speed_folded(self, shard: str, start: int, end: int) -> set[tuple[str, int]]:
        """(sequence, sub-sequence) of every user record the speed layer folded on the shard with
        an arrival in [start, end), from its dedup log."""
        s3, bucket = self.resources.s3, self.settings.archive_bucket
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=log_prefix(shard), StartAfter=log_start_after(shard, start)
        )
        folded: set[tuple[str, int]] = set()
        for page in pages:
            for entry in page.get("Contents", []):
                if log_first_arrival(entry["Key"]) >= end:
                    return folded
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                folded.update(
                    (sequence, subsequence)
                    for _, sequence, subsequence, _, arrival in decode_log(body)
                    if start <= arrival < end
                )
        return folded

    def _quarantined(self, shard: str, window_start: int) -> dict[tuple[str, int], str]:
        """(sequence, sub-sequence) -> reason of the quarantine items of one shard and window."""
        pages = self.resources.dynamodb.get_paginator("query").paginate(
            TableName=self.settings.quarantine_table,
            KeyConditionExpression="pk = :shard",
            FilterExpression="window_start = :window",
            ExpressionAttributeValues={":shard": {"S": shard}, ":window": {"S": rfc3339(window_start)}},
        )
        found: dict[tuple[str, int], str] = {}
        for page in pages:
            for item in page["Items"]:
                if "subsequence" in item:
                    found[(item["sequence_number"]["S"], int(item["subsequence"]["N"]))] = item["reason"]["S"]
        return found

    def _archive_gaps(
        self,
        shard: str,
        start: int,
        end: int,
        gaps: list[Notice],
        archived: dict[tuple[str, int], Effect | None],
    ) -> Iterator[tuple[WindowKey, Explanation]]:
        """Records the archiver gave up on that the speed layer counted: its dedup log says which."""
        s3, bucket = self.resources.s3, self.settings.archive_bucket
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=log_prefix(shard), StartAfter=log_start_after(shard, start)
        )
        seen: set[tuple[str, int]] = set()
        for page in pages:
            for entry in page.get("Contents", []):
                if log_first_arrival(entry["Key"]) >= end:
                    return
                body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                for _, sequence, subsequence, effect, arrival in decode_log(body):
                    position = (sequence, subsequence)
                    if not start <= arrival < end or position in seen or position in archived:
                        continue
                    gap = next((n for n in gaps if n.covers(shard, int(sequence))), None)
                    if gap is not None:
                        seen.add(position)
                        detail = (
                            f"the archiver's mapping gave up ({gap.condition}) on {shard} sequence "
                            f"{gap.first_sequence}-{gap.last_sequence}; "
                            f"the speed layer counted {sequence}.{subsequence}"
                        )
                        yield (
                            _window_key(shard, start, effect),
                            Explanation(Cause.ARCHIVE_GAP, detail, _totals(effect)),
                        )

    def _notices(self) -> list[Notice]:
        """Move the on-failure queue's notices to the bucket, then read every notice kept there."""
        sqs, s3, bucket = self.resources.sqs, self.resources.s3, self.settings.archive_bucket
        while True:
            messages = sqs.receive_message(
                QueueUrl=self.settings.failures_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                # keyed by message id: a notice received twice is stored once
                s3.put_object(
                    Bucket=bucket, Key=layout.failure_key(message["MessageId"]), Body=message["Body"]
                )
                sqs.delete_message(
                    QueueUrl=self.settings.failures_queue, ReceiptHandle=message["ReceiptHandle"]
                )
        notices = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=layout.FAILURES_PREFIX
        ):
            for entry in page.get("Contents", []):
                record = json.loads(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
                info = record["KinesisBatchInfo"]
                notices.append(
                    Notice(
                        record["requestContext"]["functionArn"],
                        record["requestContext"]["condition"],
                        info["shardId"],
                        int(info["startSequenceNumber"]),
                        int(info["endSequenceNumber"]),
                    )
                )
        return notices

    def _notes(self, snapshot: SnapshotInfo, notices: list[Notice]) -> dict[str, int]:
        """What both layers agree on, and why it is not drift."""
        notes = {
            name: snapshot.counts.get(name, 0)
            for name in (
                "events",
                "duplicates",
                "conflicts",
                "replays",
                "late_resends",
                "copies_on_other_shards",
            )
        }
        # the batch layer's refusals (the archive holds every record), beside the quarantine's
        notes.update((name, n) for name, n in snapshot.counts.items() if name.startswith("refused") and n)
        pages = self.resources.dynamodb.get_paginator("scan").paginate(
            TableName=self.settings.quarantine_table,
            FilterExpression="arrival_ms < :horizon",
            ExpressionAttributeValues={":horizon": {"N": str(snapshot.horizon_ms)}},
        )
        for page in pages:
            for item in page["Items"]:
                name = f"quarantined_{item['reason']['S']}"
                notes[name] = notes.get(name, 0) + 1
        for notice in notices:
            who = "aggregator" if notice.by(self.settings.aggregator_function) else "archiver"
            notes[f"{who}_gave_up_batches"] = notes.get(f"{who}_gave_up_batches", 0) + 1
        return notes


def _json_totals(effect: dict[str, Any]) -> Totals:
    amount = effect["amount_minor"]
    return Totals(refunds=1, refunds_minor=amount) if effect["refund"] else Totals(1, 0, amount, 0)


def _where(sighting: dict[str, Any]) -> str:
    return f"{sighting['shard_id']} {sighting['sequence_number']}.{sighting['subsequence']}"
