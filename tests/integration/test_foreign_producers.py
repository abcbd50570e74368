"""Producers the project did not write, through the stream: records put with plain boto3 into
moto's Kinesis, read by the local runtime, aggregated, archived, snapshotted and reconciled.

Every user record counts on the shard it landed on, whatever its keys (docs/integrators.md). Each
test's totals (speed layer and snapshot) equal an independent tally of what the vendor sold
(tests/foreign_support.py `tally`, summed from the lines), to the cent, and the reconciliation
has no unexplained difference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from load_tests.faults.catalogue import conflicting_copy
from salesstream.core.aggregation import Totals
from salesstream.core.batch import Cause, KeyKind, Reconciliation, Status
from salesstream.core.kpl import payloads
from salesstream.core.sharding import HASH_KEY_MAX, hash_key
from tests.batch_support import Pipeline, cold_start
from tests.foreign_support import (
    ForeignPOS,
    agg_entries,
    encode,
    plain_entries,
    put,
    spec_aggregate,
    tally,
)
from tests.kinesis_reading import read_stream
from tests.runtime_support import sleep_into_next_window

PipelineFactory = Callable[..., Pipeline]
EVENTS = Path(__file__).parent.parent / "events"


@pytest.fixture
def pipeline(make_stack: Callable[..., Any], endpoint: Any, tmp_path: Path) -> Iterator[PipelineFactory]:
    def make(shards: int = 2, *, on_demand: bool = False) -> Pipeline:
        template, _ = make_stack(ShardCount=shards, WindowSeconds=1)
        cold_start()
        run = Pipeline(endpoint, template, tmp_path / "spool.jsonl", 1)
        if on_demand:
            kinesis = endpoint.client("kinesis")
            arn = kinesis.describe_stream_summary(StreamName=run.stream)["StreamDescriptionSummary"][
                "StreamARN"
            ]
            kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
            summary = kinesis.describe_stream_summary(StreamName=run.stream)["StreamDescriptionSummary"]
            assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
        return run

    yield make
    cold_start()


def reconciled(run: Pipeline) -> tuple[dict[tuple[str, str], Totals], Reconciliation, dict[str, int]]:
    """Settle, snapshot and reconcile; returns the snapshot's totals, the reconciliation and its notes."""
    run.settle()
    snapshot = run.snapshot().snapshot
    assert snapshot is not None
    reconciliation = run.reconcile()
    assert reconciliation.summary.unexplained == 0, reconciliation.differences[:3]
    return run.batch_totals(snapshot), reconciliation, reconciliation.summary.notes


def off_key_records(run: Pipeline) -> int:
    """User records stored on a shard whose hash range does not hold their partition key."""
    shard_map, landed = read_stream(run.endpoint.client("kinesis"), run.stream)
    return sum(
        1
        for record in landed
        for user in record.user_records
        if not shard_map.shards[record.shard_id].holds(hash_key(user.partition_key))
    )


def random_hash_key(rng: random.Random) -> str:
    return str(rng.randint(0, HASH_KEY_MAX))


def test_aws_kinesis_agg_aggregates_with_mixed_keys_plain_records_resends_and_malformed_records(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    kinesis = run.endpoint.client("kinesis")
    pos = ForeignPOS(stores=12)
    rng = random.Random(3)
    mixed, pinned, plain, later = pos.events(300), pos.events(100), pos.events(60), pos.events(80)
    mixed_entries = agg_entries(mixed)  # one aggregator for all stores, no explicit hash key
    put(kinesis, run.stream, mixed_entries)
    put(kinesis, run.stream, agg_entries(pinned, explicit_hash_key=lambda _: random_hash_key(rng)))
    put(kinesis, run.stream, plain_entries(plain))
    assert off_key_records(run) > 0  # mixed keys really landed outside their key's shard
    run.runtime.run_until_idle()
    sleep_into_next_window(1)

    # a later window: the same aggregates and plain records sent again (a lost response) ...
    put(kinesis, run.stream, mixed_entries[:3])
    put(kinesis, run.stream, plain_entries(plain[:10]))
    # ... and malformed records: not JSON, a corrupt aggregate, an aggregate with one bad event
    corrupt = bytearray(agg_entries(pos.events(5))[0]["Data"])
    corrupt[-1] ^= 0xFF  # the MD5 trailer no longer matches
    wrong_total = {**pos.event(), "total_minor": 1}
    carrier = pos.events(4)
    bad_aggregate = spec_aggregate(
        [(e["store_id"], None, encode(e)) for e in [carrier[0], wrong_total, *carrier[1:]]]
    )
    put(
        kinesis,
        run.stream,
        [
            {"PartitionKey": "S001", "Data": b"not json"},
            {"PartitionKey": "S002", "Data": bytes(corrupt)},
            {"PartitionKey": "S003", "Data": bad_aggregate},
        ],
    )
    put(kinesis, run.stream, agg_entries(later))

    batch, reconciliation, notes = reconciled(run)
    expected = tally([*mixed, *pinned, *plain, *later, *carrier])
    assert run.speed_totals() == batch == expected
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    resent = sum(len(payloads(entry["Data"])) for entry in mixed_entries[:3]) + 10
    assert notes["duplicates"] == resent == 85  # 3 aggregates of 25, 10 plain: each counted once
    assert notes["events"] == len(mixed) + len(pinned) + len(plain) + len(later) + len(carrier)
    assert (notes["quarantined_not_json"], notes["quarantined_bad_aggregate_checksum"]) == (1, 1)
    assert notes["quarantined_total_mismatch"] == 1
    assert (notes["refused_not_json"], notes["refused_bad_aggregate_checksum"]) == (1, 1)


def test_kpl_aggregates_written_from_the_format_specification_count_every_user_record(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    vectors = json.loads((EVENTS / "kpl_spec_vectors.json").read_text())["vectors"]
    entries = [
        {
            "PartitionKey": vector["user_records"][0]["partition_key"],
            "Data": bytes.fromhex(vector["data_hex"]),
        }
        for vector in vectors
    ]
    put(run.endpoint.client("kinesis"), run.stream, entries)

    batch, reconciliation, notes = reconciled(run)
    events = [user["event"] for vector in vectors for user in vector["user_records"]]
    assert run.speed_totals() == batch == tally(events)
    assert reconciliation.summary.status is Status.CLEAN
    assert notes["events"] == len(events) == 16


def test_an_on_demand_stream_that_places_records_by_itself(pipeline: PipelineFactory) -> None:
    # moto does not model RecordDistributionStrategy AUTO: a random explicit hash key per
    # aggregate and per plain record places them as AUTO would, without regard to their keys
    run = pipeline(shards=4, on_demand=True)
    kinesis = run.endpoint.client("kinesis")
    pos, rng = ForeignPOS(stores=20, seed=11), random.Random(5)
    aggregated, plain = pos.events(400), pos.events(100)
    put(
        kinesis,
        run.stream,
        agg_entries(aggregated, per_aggregate=10, explicit_hash_key=lambda _: random_hash_key(rng)),
    )
    put(
        kinesis,
        run.stream,
        [{**entry, "ExplicitHashKey": random_hash_key(rng)} for entry in plain_entries(plain)],
    )
    assert off_key_records(run) > len(aggregated) // 2  # most records are off their key's shard

    batch, reconciliation, notes = reconciled(run)
    assert run.speed_totals() == batch == tally([*aggregated, *plain])
    assert reconciliation.summary.status is Status.CLEAN
    assert notes["events"] == 500


def test_a_resend_placed_on_an_unrelated_shard_is_named_by_the_reconciliation(
    pipeline: PipelineFactory,
) -> None:
    # The known limit: the speed layer dedups per lineage (a shard and its ancestors); an AUTO
    # stream can place a foreign producer's resend on an unrelated shard. A cold consumer there
    # does not know the first copy and counts it again; the batch layer dedups globally, and the
    # reconciliation names every such event (a difference explained, never a silent double count).
    run = pipeline(shards=4, on_demand=True)
    kinesis = run.endpoint.client("kinesis")
    shards = sorted(
        kinesis.list_shards(StreamName=run.stream)["Shards"],
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    first, unrelated = shards[0], shards[2]
    pos = ForeignPOS(stores=8, seed=21)
    events = pos.events(40)
    (entry,) = agg_entries(
        events[:20], per_aggregate=20, explicit_hash_key=lambda _: first["HashKeyRange"]["StartingHashKey"]
    )
    put(kinesis, run.stream, [entry, *agg_entries(events[20:])])
    run.runtime.run_until_idle()
    sleep_into_next_window(1)
    cold_start()  # another consumer process: its index knows nothing of the first shard
    (landed,) = put(
        kinesis, run.stream, [{**entry, "ExplicitHashKey": unrelated["HashKeyRange"]["StartingHashKey"]}]
    )
    assert landed == unrelated["ShardId"]

    batch, reconciliation, notes = reconciled(run)
    assert batch == tally(events)  # the batch layer counts each event id once, globally
    assert notes["copies_on_other_shards"] == 20  # and finds every copy
    # a cold consumer counts the copies again (one that still remembers the first copies in
    # memory does not): either way every difference is named, copy by copy
    counted_twice = the_speed_layers_extra_is_named(run, batch, reconciliation, events[:20])
    assert counted_twice in (set(), {e["event_id"] for e in events[:20]})


def test_a_split_and_a_merge_in_the_middle_of_a_window_with_a_mixed_key_producer(
    pipeline: PipelineFactory,
) -> None:
    run = pipeline()
    kinesis = run.endpoint.client("kinesis")
    pos = ForeignPOS(stores=16, seed=7)
    before, after_split, after_merge = pos.events(200), pos.events(200), pos.events(100)
    before_entries = agg_entries(before)
    put(kinesis, run.stream, before_entries)
    run.runtime.run_until_idle()  # windows open on both shards
    parent = kinesis.list_shards(StreamName=run.stream)["Shards"][0]
    low, high = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(
        StreamName=run.stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    put(kinesis, run.stream, agg_entries(after_split))
    put(kinesis, run.stream, before_entries[:2])  # resent after the split: lands on a child
    run.runtime.run_until_idle()
    children = [
        s["ShardId"]
        for s in kinesis.list_shards(StreamName=run.stream)["Shards"]
        if s.get("ParentShardId") == parent["ShardId"]
    ]
    kinesis.merge_shards(StreamName=run.stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1])
    put(kinesis, run.stream, agg_entries(after_merge))
    put(kinesis, run.stream, before_entries[2:3])  # and after the merge: lands on the grandchild

    batch, reconciliation, notes = reconciled(run)
    assert run.speed_totals() == batch == tally([*before, *after_split, *after_merge])
    assert reconciliation.summary.status is Status.CLEAN, reconciliation.differences[:3]
    resent = [
        json.loads(user)["event_id"] for entry in before_entries[:3] for user in payloads(entry["Data"])
    ]
    # every copy landed in its first shard's lineage: a duplicate for the speed layer too
    assert notes["duplicates"] == len(resent) == 75
    assert len(kinesis.list_shards(StreamName=run.stream)["Shards"]) == 5


def test_random_valid_ean13_skus_all_count(pipeline: PipelineFactory) -> None:
    run = pipeline()
    pos = ForeignPOS(stores=6, seed=13)
    events = pos.events(150)
    put(run.endpoint.client("kinesis"), run.stream, agg_entries(events))
    batch, _, notes = reconciled(run)
    assert notes.get("quarantined_card_number", 0) == 0
    assert run.speed_totals() == batch == tally(events)


def test_a_conflicting_copy_on_an_unrelated_shard_is_named_by_the_reconciliation(
    pipeline: PipelineFactory,
) -> None:
    # The same event id with another amount, placed outside the first copy's lineage and read by
    # a cold consumer: the speed layer counts both; the batch layer the first; the reconciliation
    # names the copy.
    run = pipeline(shards=2)
    kinesis = run.endpoint.client("kinesis")
    low, high = sorted(
        kinesis.list_shards(StreamName=run.stream)["Shards"],
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    pos = ForeignPOS(stores=4, seed=31)
    events = pos.events(30)
    original = events[0]
    copy = json.loads(conflicting_copy(encode(original)))  # one unit more on its first line
    put(
        kinesis,
        run.stream,
        [
            {
                "PartitionKey": original["store_id"],
                "Data": encode(original),
                "ExplicitHashKey": low["HashKeyRange"]["StartingHashKey"],
            },
            *plain_entries(events[1:]),
        ],
    )
    run.runtime.run_until_idle()
    sleep_into_next_window(1)
    cold_start()
    put(
        kinesis,
        run.stream,
        [
            {
                "PartitionKey": copy["store_id"],
                "Data": encode(copy),
                "ExplicitHashKey": high["HashKeyRange"]["StartingHashKey"],
            }
        ],
    )

    batch, reconciliation, notes = reconciled(run)
    assert batch == tally(events)
    assert notes["conflicts"] == 1
    # counted by the speed layer too when its consumer did not know the first copy; quarantined
    # as a conflict when it did: never counted silently
    named = the_speed_layers_extra_is_named(run, batch, reconciliation, [copy])
    assert named in (set(), {original["event_id"]})


def the_speed_layers_extra_is_named(
    run: Pipeline,
    batch: dict[tuple[str, str], Totals],
    reconciliation: Reconciliation,
    copies: list[dict[str, Any]],
) -> set[str]:
    """The event ids the reconciliation names as counted again on an unrelated shard; the speed
    layer's totals are the batch's plus exactly those copies."""
    named = [
        explanation
        for difference in reconciliation.differences
        if difference.kind is KeyKind.WINDOW
        for explanation in difference.explanations
    ]
    assert {e.cause for e in named} <= {Cause.UNRELATED_SHARD_COPY}
    assert all(d.explained for d in reconciliation.differences)
    ids = {e.detail.split()[1] for e in named}
    extra = tally(copy for copy in copies if copy["event_id"] in ids)
    assert run.speed_totals() == {key: batch[key] + extra.get(key, Totals()) for key in batch}
    return ids
