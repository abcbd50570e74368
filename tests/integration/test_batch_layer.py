"""The batch layer end to end on the embedded moto server: the real producer, the aggregator and
the archiver run by the local runtime through the stream, then the snapshot job and the
reconciliation (and repair) against what they wrote. The reliability cases that need both layers
live here (docs/reliability.md R1, C5 against the batch recompute, C6, B7 end to end); the index of
every case is in docs/reliability.md, "Reliability: the cases and their tests"."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from producer import Producer, ProducerSettings, producer_client
from salesstream.core.aggregation import Totals
from salesstream.core.archive import stored_payloads
from salesstream.core.batch import Cause, Classification, KeyKind, Status, minus
from salesstream.core.wire import WireEvent
from salesstream.runtime import Runtime, RuntimeOptions, VirtualClock
from tests.batch_support import Pipeline, cold_start, corrupt_segment, manual_producer
from tests.kinesis_reading import read_stream
from tests.speed_items import lose_an_order
from tests.stream_pipeline import (
    captured_logs,
    card_numbers_in,
    everything_stored,
    model,
)
from tests.window_events import order

PipelineFactory = Callable[..., Pipeline]
SENT_CARDS = (b"4111111111111111", b"5500000000000004")  # every card number B7 puts, digits only


@pytest.fixture
def pipeline(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[PipelineFactory]:
    def make(window_seconds: int = 1, handlers: dict[str, Any] | None = None, **parameters: Any) -> Pipeline:
        template, _ = make_stack(ShardCount=2, WindowSeconds=window_seconds, **parameters)
        cold_start()
        return Pipeline(endpoint, template, tmp_path / "spool.jsonl", window_seconds, handlers=handlers or {})

    yield make
    cold_start()


def test_r1_a_clean_run_reconciles_to_zero_per_key_and_window_and_equals_the_producers_tally(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    run.send(run.fleet_events(300))
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    assert snapshot.counts["events"] == 300
    rows = run.resources().views.store_day_rows(snapshot)
    net: dict[tuple[str, str], int] = {}
    for row in rows:
        net[(row.store_id, row.currency)] = net.get((row.store_id, row.currency), 0) + row.net_minor
    assert net == run.tally()

    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert reconciliation.differences == ()
    assert reconciliation.summary.keys_compared > len(rows)
    assert run.resources().views.latest_reconciliation() == reconciliation


def test_a_corrupted_segment_and_running_total_are_reported_exactly_and_repaired_once(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    run.send(run.fleet_events(200))
    run.settle()
    run.snapshot()
    assert run.reconcile().summary.status is Status.CLEAN

    # one segment's row: 1000 minor units more gross than the aggregator wrote
    changed: dict[str, str] = {}

    def inflate(days: dict[str, Any]) -> None:
        key = sorted(days)[0]
        days[key]["gross_minor"] += 1000
        changed["key"] = key

    segment = corrupt_segment(run, inflate)
    # one running total: a store's day in a shard's DAYS# item loses an order
    (days_item,) = [i for i in run.items("AggregatesTable") if i["pk"].startswith("DAYS#")][:1]
    lost = lose_an_order(run.endpoint, run.template.physical_name("AggregatesTable"), days_item)
    store_day = dict(zip(("store_id", "business_day", "currency"), lost, strict=True))

    found = run.reconcile()
    assert found.summary.status is Status.UNEXPLAINED
    assert found.summary.unexplained == found.summary.differences == 2
    window, day = sorted(found.differences, key=lambda d: d.kind.value != "window")
    store, currency, business_day = changed["key"].split("/")
    assert (window.kind, window.classification) == (KeyKind.WINDOW, Classification.AMOUNT_MISMATCH)
    assert (window.shard_id, window.store_id, window.currency, window.business_day) == (
        segment["shard_id"],
        store,
        currency,
        business_day,
    )
    assert window.delta == Totals(gross_minor=1000)
    assert (day.kind, day.classification) == (KeyKind.STORE_DAY, Classification.AMOUNT_MISMATCH)
    assert (day.store_id, day.business_day, day.currency) == (
        store_day["store_id"],
        store_day["business_day"],
        store_day["currency"],
    )
    assert day.delta == Totals(orders=-1)

    repaired = run.repair(found)
    assert repaired.summary.repaired == 2
    assert repaired.summary.status is Status.CLEAN, repaired.differences
    audit = [i for i in run.items("BatchTable") if i["pk"] == "AUDIT"]
    assert len(audit) == 2
    assert {entry["who"] for entry in audit} == {"tester"}
    assert all(entry["before"] != entry["after"] for entry in audit)
    window_key = f"window:{segment['shard_id']}/{window.window_start_ms}"
    assert {entry["key"] for entry in audit} == {window_key, day.key}

    again = run.repair(run.reconcile())
    assert again.summary.repaired == 0
    assert again.summary.status is Status.CLEAN
    assert len([i for i in run.items("BatchTable") if i["pk"] == "AUDIT"]) == 2  # nothing written


def test_duplicates_conflicts_and_quarantined_records_are_explained_not_drift(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    events = run.fleet_events(120)
    run.send(events)
    run.send(events[:30])  # a producer resends 30 events (a lost response): same ids, new positions
    first = order("store-c", 1000, event_id="evt-conflict")
    run.send([first.to_json_bytes()])
    run.send([order("store-c", 999, event_id="evt-conflict").to_json_bytes()])  # same id, other amount
    run.put_raw([b"not json", b'{"schema_version": 1}', b"\xff\xfe"])
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None

    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    notes = reconciliation.summary.notes
    assert notes["events"] == 121
    assert notes["duplicates"] == 30
    assert notes["conflicts"] == 1
    assert notes["quarantined_duplicate_conflict"] == 1  # the speed layer's side of the conflict
    assert notes["quarantined_not_json"] == 1
    assert notes["quarantined_missing_field"] == 1
    assert notes["quarantined_bad_utf8"] == 1
    # the archive holds the bad records as received; the batch layer refuses them with the
    # aggregator's own pipeline (same reasons), so they are not counted (events == 121 above)
    assert (notes["refused_not_json"], notes["refused_missing_field"], notes["refused_bad_utf8"]) == (1, 1, 1)
    assert snapshot.counts["refused"] == 3
    archived = [payload for _, body in run_objects(run, "archive/") for payload in stored_payloads(body)]
    assert b"not json" in archived
    assert b"\xff\xfe" in archived
    stores = {row.store_id: row for row in run.resources().views.store_day_rows(snapshot)}
    assert stores["store-c"].gross_minor == 1000  # the first sighting counted, the conflict not


def test_r1_a_resend_later_than_the_dedup_horizon_is_traced_to_that_record_and_repaired(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline(DedupHorizonSeconds=0)  # every resend at another moment is "new" to the speed layer
    events = run.fleet_events(80)
    run.send(events)
    time.sleep(0.05)
    run.send(events[:5])
    run.settle()
    run.snapshot()

    reconciliation = run.reconcile()
    summary = reconciliation.summary
    assert summary.status is Status.EXPLAINED, [d for d in reconciliation.differences if not d.explained]
    assert summary.notes["late_resends"] == 5
    windows = [d for d in reconciliation.differences if d.kind is KeyKind.WINDOW]
    assert windows
    extra = Totals()
    for difference in windows:
        assert {e.cause for e in difference.explanations} == {Cause.LATE_RESEND}
        extra = extra + difference.delta
    assert extra.orders + extra.refunds == 5  # the speed layer counted the 5 resends once more
    details = [e.detail for d in windows for e in d.explanations]
    resent = sorted(json.loads(raw)["event_id"] for raw in events[:5])
    assert sorted(next(i for i in resent if f"event {i} sent again" in d) for d in details) == resent
    totals = [d for d in reconciliation.differences if d.kind is not KeyKind.WINDOW]
    assert totals
    assert all(d.explanations[0].cause is Cause.WINDOW_DIFFERENCES and d.explained for d in totals)

    assert run.repair(reconciliation).summary.status is Status.CLEAN


def test_records_the_aggregator_gave_up_on_are_explained_by_the_on_failure_notice(
    pipeline: PipelineFactory,
) -> None:
    from consumers.speed.handler import lambda_handler

    poisoned: set[str] = set()

    def poisoning(event: dict[str, Any], context: Any) -> Any:
        records = {record["eventID"] for record in event["Records"]}  # "<shard>:<sequence>"
        if not poisoned and records:
            poisoned.add(min(records))
        if poisoned & records:
            raise RuntimeError("this record fails every time")
        return lambda_handler(event, context)

    run = pipeline(handlers={"AggregatorFunction": poisoning})
    run.send(run.fleet_events(150))
    run.settle()
    run.snapshot()

    reconciliation = run.reconcile()
    summary = reconciliation.summary
    assert summary.notes["aggregator_gave_up_batches"] == 1
    assert summary.status is Status.EXPLAINED, [d for d in reconciliation.differences if not d.explained]
    windows = [d for d in reconciliation.differences if d.kind is KeyKind.WINDOW]
    assert windows
    assert {e.cause for d in windows for e in d.explanations} == {Cause.RETRIES_EXHAUSTED}
    assert all(d.delta.orders <= 0 and d.delta.refunds <= 0 for d in windows)  # missing in speed


def test_r1_a_record_only_the_speed_layer_quarantined_is_traced_to_its_quarantine_item(
    pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import salesstream.core.records
    from consumers.speed.handler import lambda_handler

    in_aggregator = contextvars.ContextVar("in_aggregator", default=False)
    real = salesstream.core.records.decode_event

    def fails_in_the_aggregator(raw: bytes, *, screened: bool = False) -> WireEvent:
        if in_aggregator.get() and poison_id.encode() in raw:
            raise ZeroDivisionError("a bug in the speed layer only: it fails on every read")
        return real(raw, screened=screened)

    def aggregator(event: dict[str, Any], context: Any) -> Any:
        in_aggregator.set(True)  # this invocation's thread only; the archiver reads normally
        return lambda_handler(event, context)

    monkeypatch.setattr(salesstream.core.records, "decode_event", fails_in_the_aggregator)
    run = pipeline(handlers={"AggregatorFunction": aggregator})
    events = run.fleet_events(100)
    poison = json.loads(events[37])
    poison_id = poison["event_id"]
    run.send(events)
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    reconciliation = run.reconcile()

    summary = reconciliation.summary
    assert (summary.status, summary.unexplained, summary.notes["quarantined_poison"]) == (
        Status.EXPLAINED,
        0,
        1,
    )
    (item,) = [i for i in run.items("QuarantineTable") if i["reason"] == "poison"]
    assert bytes(item["raw"]) == events[37]  # the item holds the record the batch layer counted
    effect = (
        Totals(refunds=1, refunds_minor=poison["total_minor"])
        if poison["event_type"] == "order_refunded"
        else Totals(orders=1, gross_minor=poison["total_minor"])
    )
    missing = minus(Totals(), effect)
    by_kind = {d.kind: d for d in reconciliation.differences}
    assert sorted(d.kind for d in reconciliation.differences) == sorted(KeyKind)  # one key of each kind
    window = by_kind[KeyKind.WINDOW]
    assert (window.shard_id, window.store_id, window.currency) == (
        item["shard_id"],
        poison["store_id"],
        poison["currency"],
    )
    assert (window.classification, window.delta) == (Classification.AMOUNT_MISMATCH, missing)
    (explanation,) = window.explanations
    assert explanation.cause is Cause.QUARANTINED
    assert explanation.delta == missing
    position = f"{item['shard_id']} {int(item['sequence_number'])}.{int(item['subsequence'])}"
    assert explanation.detail == f"quarantined by the speed layer (poison) at {position}"
    for kind in (KeyKind.STORE_DAY, KeyKind.SHARD_TOTAL):
        assert by_kind[kind].delta == missing
        assert [e.cause for e in by_kind[kind].explanations] == [Cause.WINDOW_DIFFERENCES]
    # apart from that record both layers agree to the cent
    batch = run.batch_totals(snapshot)
    key = (poison["store_id"], poison["currency"])
    assert run.speed_totals() == {**batch, key: batch[key] + missing}
    assert batch == model(events)


def test_c5_a_split_and_a_merge_in_the_middle_of_windows_keep_per_store_totals_equal_to_the_batch(
    pipeline: PipelineFactory, endpoint: Any, tmp_path: Path
) -> None:
    run = pipeline(window_seconds=2)
    kinesis = endpoint.client("kinesis")
    events = run.fleet_events(900, stores=20)
    producer = manual_producer(endpoint, run.stream, tmp_path / "c5.jsonl")
    with producer:
        producer.submit_many(events[:300])
        producer.flush()
        run.runtime.run_until_idle()  # windows open on both shards
        parent = kinesis.list_shards(StreamName=run.stream)["Shards"][0]
        low, high = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=run.stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
        )
        producer.submit_many(events[300:600])  # routed with the map from before the split
        producer.flush()
        run.runtime.run_until_idle()
        lower, upper = [
            s["ShardId"]
            for s in open_shards(kinesis, run.stream)
            if s.get("ParentShardId") == parent["ShardId"]
        ]
        kinesis.merge_shards(StreamName=run.stream, ShardToMerge=lower, AdjacentShardToMerge=upper)
        producer.submit_many(events[600:])  # and with the map from before the merge
    run.settle()

    result = producer.result
    assert (result.sent, result.resent, result.spooled, result.landed_elsewhere > 0) == (900, 0, 0, True)
    shards = kinesis.list_shards(StreamName=run.stream)["Shards"]
    assert len(shards) == 2 + 2 + 1  # the first two, the split's children, the merge's child
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert snapshot.counts["events"] == 900
    expected = model(events)
    assert run.speed_totals() == run.batch_totals(snapshot) == expected
    tally = {(row.store_id, row.currency): row.net_minor for row in result.tally}
    assert {key: totals.net_minor for key, totals in expected.items()} == tally
    segment_shards = {s["shard_id"] for s in run.segments()}
    # every shard but the split's child that no stale aggregate landed on counted some of it
    assert segment_shards <= {s["ShardId"] for s in shards}
    assert len(segment_shards) >= len(shards) - 1
    assert {parent["ShardId"], shards[-1]["ShardId"]} <= segment_shards


def test_c6_records_older_than_the_maximum_record_age_go_to_the_failure_queue_and_the_gap_is_named(
    make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path
) -> None:
    template, _ = make_stack(ShardCount=1, WindowSeconds=2)
    cold_start()
    # the archiver keeps up; the aggregator's poller is a runtime of its own that will stall
    run = Pipeline(endpoint, template, tmp_path / "spool.jsonl", 2, functions=("ArchiverFunction",))

    def aggregator_poller(clock: VirtualClock) -> Runtime:
        options = RuntimeOptions(window_close_grace_seconds=0)
        return Runtime(template, endpoint, clock=clock, options=options, functions=["AggregatorFunction"])

    (mapping,) = next(f for f in template.functions() if f.logical_id == "AggregatorFunction").kinesis_events
    counted = [order("store-1", 1000), order("store-2", 250)]
    too_old = [order("store-1", 700), order("store-3", 45, refund=True)]
    after = order("store-2", 5)
    stalled_clock = VirtualClock()
    stalled = aggregator_poller(stalled_clock)
    run.send([e.to_json_bytes() for e in counted])
    run.runtime.run_until_idle()
    stalled.run_until_idle()  # the aggregator folds the first two
    run.send([e.to_json_bytes() for e in too_old])
    run.runtime.run_until_idle()  # archived
    # its poller comes back more than MaximumRecordAgeInSeconds after they arrived
    stalled_clock.set(time.time_ns() // 1_000_000 + (mapping.maximum_record_age_seconds + 1) * 1000)
    stalled.run_until_idle()  # the two are discarded to the destination, the open window closes
    restarted_clock = VirtualClock()
    # a fresh poller resumes from the checkpoint, on time again
    restarted = aggregator_poller(restarted_clock)
    run.send([after.to_json_bytes()])
    run.runtime.run_until_idle()
    restarted.run_until_idle()
    run.settle()
    restarted_clock.set(run.clock.now_ms())
    restarted.run_until_idle()

    _, landed = read_stream(endpoint.client("kinesis"), run.stream)
    (gap,) = [r for r in landed if set(r.event_ids()) == {e.event_id for e in too_old}]
    assert stalled.stats().totals()["records_discarded"] == 1
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    reconciliation = run.reconcile()

    # the notice (moved from the queue to the bucket by the reconciliation) is metadata only
    (notice,) = [json.loads(data) for key, data in run_objects(run, "failures/")]
    assert sorted(notice) == ["KinesisBatchInfo", "requestContext", "timestamp", "version"]
    assert (notice["requestContext"]["condition"], notice["requestContext"]["approximateInvokeCount"]) == (
        "RecordAgeExceeded",
        0,
    )
    info = notice["KinesisBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        gap.shard_id,
        gap.sequence_number,
        gap.sequence_number,
        1,
    )
    assert not any(e.event_id in json.dumps(notice) for e in too_old)

    summary = reconciliation.summary
    assert (summary.status, summary.unexplained, summary.notes["aggregator_gave_up_batches"]) == (
        Status.EXPLAINED,
        0,
        1,
    )
    windows = {d.store_id: d for d in reconciliation.differences if d.kind is KeyKind.WINDOW}
    assert {store: d.delta for store, d in windows.items()} == {
        "store-1": Totals(orders=-1, gross_minor=-700),
        "store-3": Totals(refunds=-1, refunds_minor=-45),
    }
    assert windows["store-3"].classification is Classification.MISSING_IN_SPEED
    position = f"{gap.shard_id} sequence {gap.sequence_number}-{gap.sequence_number}"
    for difference in windows.values():
        (explanation,) = difference.explanations
        assert explanation.cause is Cause.RECORD_AGE_EXCEEDED
        assert explanation.detail.startswith(
            f"the aggregator's mapping gave up (RecordAgeExceeded) on {position}"
        )
        assert explanation.delta == difference.delta
    assert run.batch_totals(snapshot) == model([*counted, *too_old, after])
    assert run.speed_totals() == model([*counted, after])
    # the repair restates the speed layer from the snapshot: nothing lost in the end
    assert run.repair(reconciliation).summary.status is Status.CLEAN
    assert run.speed_totals() == model([*counted, *too_old, after])


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    shards = kinesis.list_shards(StreamName=stream)["Shards"]
    return [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]


def run_objects(run: Pipeline, prefix: str) -> list[tuple[str, bytes]]:
    s3 = run.endpoint.client("s3")
    bucket = run.template.physical_name("ArchiveBucket")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
    return [(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]


def test_b7_after_card_numbers_no_table_item_archive_object_log_line_or_spool_holds_one(
    make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    template, provisioned = make_stack(ShardCount=2, WindowSeconds=1)
    cold_start()
    spool = tmp_path / "spool.jsonl"
    run = Pipeline(endpoint, template, spool, 1)
    good = run.fleet_events(60)
    base = json.loads(good[0])
    carriers = [
        json.dumps({**base, "event_id": "evt-card-1", "note": "paid with 4111 1111 1111 1111"}).encode(),
        json.dumps({**base, "event_id": "evt-card-2", "terminal_id": "5500000000000004"}).encode(),
        json.dumps({**base, "event_id": "4111-1111-1111-1111"}).encode(),
    ]
    with captured_logs() as logs:
        # the endpoint is down: what the producer accepted is spooled, the card carriers never
        offline = Producer(
            producer_client(endpoint_url="http://127.0.0.1:9", region_name=endpoint.region),
            run.stream,
            spool,
            settings=ProducerSettings(max_attempts=1),
        )
        with offline:
            refusals = offline.submit_many([*carriers, *good])
        assert [refusal.reason.value for _, refusal in refusals] == ["card_number"] * 3
        assert offline.result.spooled == len(good)
        spooled = spool.read_bytes()
        assert card_numbers_in(spooled, SENT_CARDS) == []
        run.send([])  # the next producer sends the spool first
        assert not spool.exists()
        # and what no producer would send, straight into the stream (all quarantined)
        run.put_raw(carriers)
        run.put_raw([b"junk"], partition_key="4111111111111111")
        run.settle()
        snapshot = run.snapshot().snapshot
        assert snapshot is not None
        reconciliation = run.reconcile()
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    assert run.batch_totals(snapshot) == run.speed_totals() == model(good)
    assert run.items("QuarantineTable")  # the card carriers are there, masked

    scanned = set()
    for where, data in everything_stored(endpoint, provisioned):
        scanned.add(where.split("/")[3] if where.startswith("s3://") else where.split()[0])
        assert card_numbers_in(data, SENT_CARDS) == [], where
    # every table and every kind of object: archive, dedup log, snapshot, reconciliation
    assert set(provisioned.tables.values()) <= scanned
    assert {"archive", "dedup", "snapshots", "reconciliations"} <= scanned
    assert "archived" in logs.getvalue()
    assert "window step" in logs.getvalue()
    printed = capfd.readouterr()
    assert card_numbers_in((logs.getvalue() + printed.out + printed.err).encode(), SENT_CARDS) == []
