"""The speed layer's reliability cases through the stream (docs/reliability.md C1-C5, B1-B7).

Every test puts records into the orders stream on the embedded moto server, lets the
event-source-mapping runtime (virtual clock) invoke the aggregator by the template's Handler
path, and reads back what landed in DynamoDB and S3: exact totals per store and currency against
a model over the distinct accepted event ids, and the exact quarantine contents. (The handler
contract tests in test_aggregator_*.py call the handler by hand; these never do.)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import salesstream.core.records
from consumers.speed.handler import aggregator
from load_tests.faults.catalogue import CATALOGUE
from producer.shards import hash_key
from producer.simulator import Fleet, FleetConfig
from salesstream.core.aggregation import Totals
from salesstream.core.contract import MAX_EVENT_BYTES, OrderEvent, new_order
from salesstream.core.kpl import MAGIC, compress, is_compressed
from salesstream.core.windows import Window, parse_rfc3339
from salesstream.core.wire import WireEvent
from salesstream.runtime import Call, Fault, Runtime, RuntimeOptions, VirtualClock
from salesstream.runtime.model import Outcome
from tests.batch_support import manual_producer
from tests.integration.conftest import AggregatorStack, answer_with_error, crash_after, error
from tests.integration.test_aggregator_quarantine import BAD_PAYLOADS, EXPECTED_REASONS, with_fields
from tests.kinesis_reading import read_stream
from tests.runtime_support import sleep_into_next_window
from tests.speed_items import store_day_amounts
from tests.stream_pipeline import (
    WHOLE,
    Pipeline,
    Placed,
    Script,
    captured_logs,
    card_numbers_in,
    decoded_days,
    decoded_stores,
    model,
    with_room_in_the_window,
)
from tests.window_events import CET, kpl, order

PipelineFactory = Callable[..., Pipeline]
CARD = b"4111 1111 1111 1111"
SENT_CARDS = (b"4111111111111111", b"5500000000000004")  # every card number B7 puts, digits only


@pytest.fixture
def pipeline(aggregator_stack: Callable[..., AggregatorStack]) -> PipelineFactory:
    """Factory: a stack (one shard, 15-minute windows by default) and a runtime on it that runs
    the template's mapping with the template's Handler, on a virtual clock."""

    def make(
        *,
        shards: int = 1,
        window_seconds: int = 900,
        batch_size: int = 100,
        script: Script | None = None,
        **options: Any,
    ) -> Pipeline:
        stack = aggregator_stack(ShardCount=shards, WindowSeconds=window_seconds, BatchSize=batch_size)
        with_room_in_the_window(window_seconds)
        clock, script = VirtualClock(), script or Script()
        runtime = Runtime(  # no handlers given: it imports the template's Handler, as Lambda does
            stack.template,
            stack.endpoint,
            clock=clock,
            options=RuntimeOptions(**options),
            hooks=script,
            functions=["AggregatorFunction"],  # the speed layer alone: its invocations are what we count
        )
        return Pipeline(stack, runtime, clock, script, window_seconds)

    return make


def sequences(placed: list[Placed]) -> tuple[str, ...]:
    return tuple(p.sequence for p in placed)


# --- C: consumer failures ---------------------------------------------------------------------


def test_c1_batches_delivered_twice_and_crashes_after_the_write_change_nothing(
    pipeline: PipelineFactory,
) -> None:
    seen: list[str | None] = []

    def faults(call: Call, outcome: Outcome) -> Fault:
        """The first batch is delivered twice at once; the second batch and the final invocation
        crash the poller once after the handler returned (no checkpoint), then come again and
        the second batch is replayed as well. The final's crash takes the Lambda process too."""
        first = call.batch.first_sequence  # None for a final invocation
        again = first in seen
        seen.append(first)
        if again or first == placed[0].sequence:
            return Fault.REPLAY if first else Fault.NONE
        if first is None:
            aggregator.cache_clear()  # a cold start for the retried final invocation
        return Fault.CRASH

    line = pipeline(batch_size=3, script=Script(faults))
    events = [order(f"store-{n % 3}", 100 * n + 1, refund=n % 4 == 3) for n in range(10)]
    placed = line.put(*events[:2], kpl(*events[2:5]), *events[5:7], kpl(*events[7:]))  # 2 batches
    line.run()
    line.close_windows()

    assert line.errors() == []
    assert (
        [(i.sequences, i.final, i.outcome, i.fault) for i in line.script.invocations]
        == [
            (sequences(placed[:3]), False, "ok", Fault.REPLAY),
            (sequences(placed[3:]), False, "ok", Fault.CRASH),  # its state never checkpointed ...
            (sequences(placed[3:]), False, "ok", Fault.REPLAY),  # ... so it comes again, and twice
            ((), True, "ok", Fault.CRASH),  # the segment written, the checkpoint not
            ((), True, "ok", Fault.NONE),  # so the final invocation comes again, in a new process
        ]
    )
    stats = line.runtime.stats()
    assert (stats.totals()["invocations"], stats.shards[0].crashes) == (7, 2)
    assert line.totals() == model(events)
    (segment,) = line.segments()
    assert (segment["events"], segment["duplicates"], segment["terminated_early"]) == (10, 0, False)
    assert decoded_stores(segment) == model(events)
    assert line.counters() == {"events": 10, "duplicates": 0, "conflicts": 0, "quarantined": 0, "segments": 1}


def test_c1_a_crash_inside_the_handler_after_the_transaction_before_returning(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline()
    events = [order("store-1", 1000), order("store-2", 250), order("store-1", 40, refund=True)]
    line.put(events[0], kpl(*events[1:]))
    line.run()
    crash = crash_after(line.stack.app.segments.dynamodb, "TransactWriteItems")
    line.close_windows()  # the final invocation writes, then its process dies before returning
    assert crash.calls == 1
    assert line.totals() == model(events)  # the write went through
    assert [i.outcome for i in line.script.finals()] == ["failed"]  # the shard waits on it

    line.stack.cold_start()
    line.run()  # Lambda retries the final invocation, in a fresh process
    assert [i.outcome for i in line.script.finals()] == ["failed", "ok"]
    assert line.totals() == model(events)
    assert len(line.segments()) == 1
    assert line.counters()["events"] == 3
    assert line.runtime.stats().shards[0].windows_closed == 1


def test_c2_a_batch_item_failure_in_the_middle_replays_from_there_and_counts_once(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline()
    pauses = line.no_sleep()
    # the quarantine write fails through all of the handler's own retries, once
    fault = answer_with_error(
        line.stack.app.quarantine.dynamodb, "BatchWriteItem", error("ThrottlingException"), times=8
    )
    good = [order(store, amount) for store, amount in [("store-1", 500), ("store-2", 20), ("store-1", 3)]]
    good += [order("store-3", 77), order("store-2", 1), order("store-2", 2, refund=True)]
    junk = b"junk in the middle"
    placed = line.put(good[0], kpl(good[1], good[2]), junk, good[3], kpl(good[4], good[5]))
    line.run()
    line.close_windows()

    first, retry, final = line.script.invocations
    assert (first.sequences, first.outcome) == (sequences(placed), f"partly failed at {placed[2].sequence}")
    assert (retry.sequences, retry.outcome) == (sequences(placed[2:]), "ok")  # from the failed record on
    assert (final.final, final.outcome) == (True, "ok")
    assert (fault.calls, len(pauses)) == (9, 7)  # a pause before each retry, none after the last
    assert line.quarantine() == {(placed[2].sequence, 0): ("not_json", junk, None)}
    assert line.totals() == model(good)
    # the records before the failure were not folded again: every event counted once
    assert line.counters() == {"events": 6, "duplicates": 0, "conflicts": 0, "quarantined": 1, "segments": 1}
    assert line.errors() == []


def test_c3_throttling_and_cancelled_transactions_on_the_persistence_are_retried(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline()
    pauses = line.no_sleep()
    events = [order(f"store-{n}", 1000 + n) for n in range(3)] + [order("store-0", 5, refund=True)]
    line.put(kpl(*events))
    line.run()
    client = line.stack.app.segments.dynamodb
    # 1: throttled through every retry: the final invocation fails and the shard waits
    exhausted = answer_with_error(client, "TransactWriteItems", error("ThrottlingException"), times=8)
    line.close_windows()
    assert exhausted.calls == 8
    assert [i.outcome for i in line.script.finals()] == ["failed"]
    assert (line.totals(), line.segments()) == ({}, [])
    exhausted.remove()
    # 2: cancelled twice (a conflicting transaction, then throttling on one item), then the
    # whole call throttled twice; the retried final invocation gets through
    items = 1 + 1 + 1 + 1  # the day's stores (one DAYS# item), the shard's EUR total, counters, segment
    cancelled = [
        answer_with_error(
            client,
            "TransactWriteItems",
            error(
                "TransactionCanceledException",
                CancellationReasons=[{"Code": code}] + [{"Code": "None"}] * (items - 1),
            ),
            times=1,
        )
        for code in ("TransactionConflict", "ThrottlingError")
    ]
    throttled = answer_with_error(
        client, "TransactWriteItems", error("ProvisionedThroughputExceededException"), times=2
    )
    line.run()
    # every hook sees the calls the ones before it let through: 5 calls, the fifth succeeded
    assert [cancelled[0].calls, cancelled[1].calls, throttled.calls] == [5, 4, 3]
    assert [i.outcome for i in line.script.finals()] == ["failed", "ok"]
    assert len(pauses) == 7 + 4  # between the 8 attempts, then before each of the 4 retries
    assert line.totals() == model(events)
    (segment,) = line.segments()
    assert segment["events"] == 4
    assert line.counters()["segments"] == 1


def test_c4_a_window_ended_early_by_the_state_limit_and_retried_finals_write_each_segment_once(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline(
        batch_size=1,
        state_limit_bytes=600,
        script=Script(lambda call, outcome: Fault.REPLAY if call.batch.final else Fault.NONE),
    )
    # every record brings three new stores: the state grows ~115 bytes per record from ~320, so
    # a segment holds two records: the window ends early three times
    events = [order(f"store-{r}-{n}", 10 * r + n + 1) for r in range(8) for n in range(3)]
    line.put(*(kpl(*events[r * 3 : r * 3 + 3]) for r in range(8)))
    line.run()
    line.close_windows()

    assert line.errors() == []
    finals = line.script.finals()
    assert [f.terminated_early for f in finals] == [True, True, True, False]
    assert all(f.fault is Fault.REPLAY and f.outcome == "ok" for f in finals)  # each final twice
    segments = line.segments()
    assert [s["terminated_early"] for s in segments] == [True, True, True, False]
    assert len({s["window_start"] for s in segments}) == 1  # segments of one window
    assert [s["events"] for s in segments] == [6, 6, 6, 6]
    per_segment: dict[tuple[str, str], Totals] = {}
    for segment in segments:
        for key, totals in decoded_stores(segment).items():
            per_segment[key] = per_segment.get(key, Totals()) + totals
    assert per_segment == line.totals() == model(events)  # the segments add up to the totals
    assert line.counters() == {
        "events": 24,
        "duplicates": 0,
        "conflicts": 0,
        "quarantined": 0,
        "segments": len(segments),
    }
    assert line.runtime.stats().shards[0].segments_terminated_early == 3


def test_c5_a_shard_split_in_the_middle_of_a_window_while_the_producer_sends(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    line = pipeline(shards=1)
    kinesis = line.stack.endpoint.client("kinesis")
    events = Fleet(FleetConfig(stores=20, seed=5)).events(1_200)
    producer = manual_producer(line.stack.endpoint, line.stream, tmp_path / "spool.jsonl")
    with producer:
        producer.submit_many(events[:600])
        producer.flush()
        line.run()  # the parent's window is open, its state held by the runtime
        (parent,) = kinesis.list_shards(StreamName=line.stream)["Shards"]
        kinesis.split_shard(
            StreamName=line.stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(2**127)
        )
        producer.submit_many(events[600:])  # routed with the map from before the split
    line.run()
    line.close_windows()

    result = producer.result
    assert (result.sent, result.resent, result.spooled, result.landed_elsewhere > 0) == (1_200, 0, 0, True)
    shard_map, landed = read_stream(kinesis, line.stream)
    off_key = [
        record
        for record in landed
        for user in record.user_records
        if not shard_map.shards[record.shard_id].holds(hash_key(user.partition_key))
    ]
    assert off_key  # user records outside their child's range exist: counted where they landed
    assert line.errors() == []
    expected = model(events)
    assert line.totals() == expected
    assert {
        (row.store_id, row.currency): Totals(row.orders, row.refunds, row.gross_minor, row.refunds_minor)
        for row in result.tally
    } == expected
    # sent once, counted once: no copy anywhere, so no duplicate either
    assert line.counters()["duplicates"] == 0
    assert line.counters()["events"] == 1_200
    segments = line.segments()
    # the parent and the child the stale aggregates landed on (the other child may get none)
    assert {record.shard_id for record in off_key} < {s["shard_id"] for s in segments} | {parent["ShardId"]}
    assert {s["shard_id"] for s in segments} <= set(shard_map.shards)
    assert parent["ShardId"] in {s["shard_id"] for s in segments}
    assert len({s["window_start"] for s in segments}) == 1  # the split came in the middle of it


# --- B: bad input ----------------------------------------------------------------------------


def test_b1_unreadable_records_and_corrupt_aggregates_are_quarantined_and_the_shard_goes_on(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline()
    good = [order("store-1", 1250), order("store-2", 99), order("store-1", 7, refund=True)]
    lost_in_checksum = [order("store-3", 5000), order("store-3", 6000)]
    not_json, truncated, bad_utf8 = (
        b"hello, not json",
        order("store-9", 100).to_json_bytes()[:40],
        b'{"event_id": "\xff\xfe"}',
    )
    bad_checksum = bytearray(kpl(*lost_in_checksum))
    bad_checksum[-1] ^= 0x01  # a bit flipped in the MD5 trailer
    body = b"\x1a\xff\xff\xff\x0f"  # a length-delimited field that runs past the end
    broken_protobuf = MAGIC + body + hashlib.md5(body).digest()  # noqa: S324 - the format's checksum
    placed = line.put(
        good[0], not_json, truncated, bad_utf8, bytes(bad_checksum), broken_protobuf, kpl(good[1], good[2])
    )
    line.run()
    later = order("store-2", 1)
    (after,) = line.put(later)  # the shard goes on
    line.run()
    line.close_windows()

    assert line.quarantine() == {
        (placed[1].sequence, 0): ("not_json", not_json, None),
        (placed[2].sequence, 0): ("not_json", truncated, None),
        (placed[3].sequence, 0): ("bad_utf8", bad_utf8, None),
        (placed[4].sequence, WHOLE): ("bad_aggregate_checksum", bytes(bad_checksum), None),
        (placed[5].sequence, WHOLE): ("broken_aggregate", broken_protobuf, None),
    }
    assert line.totals() == model([*good, later])  # nothing of the corrupt aggregate counted
    assert line.counters() == {"events": 4, "duplicates": 0, "conflicts": 0, "quarantined": 5, "segments": 1}
    assert all(i.outcome == "ok" for i in line.script.invocations)
    assert line.script.invocations[1].sequences == (after.sequence,)


B2_CASES = [
    "missing_field",
    "non_positive_quantity",
    "negative_price",
    "nan_price",
    "unknown_currency",
    "wrong_type",
    "unknown_field",
]


def test_b2_invalid_events_are_quarantined_with_their_reason_code(pipeline: PipelineFactory) -> None:
    line = pipeline()
    negative_quantity = with_fields(
        lines=[{"sku": "A", "quantity": -2, "unit_price_minor": 100}], total_minor=-200
    )
    payloads = {name: BAD_PAYLOADS[name] for name in B2_CASES} | {"negative_quantity": negative_quantity}
    reasons = EXPECTED_REASONS | {"negative_quantity": "non_positive_quantity"}
    good = [order("store-1", 300), order("store-2", 45), order("store-1", 12)]
    names = list(payloads)
    # half of them plain records, the other half inside one aggregate with good events around
    plain, aggregated = names[: len(names) // 2], names[len(names) // 2 :]
    placed = line.put(
        good[0], *(payloads[n] for n in plain), kpl(good[1], *(payloads[n] for n in aggregated), good[2])
    )
    line.run()
    line.close_windows()

    expected = {
        (placed[1 + i].sequence, 0): (reasons[name], payloads[name], json.loads(payloads[name])["event_id"])
        for i, name in enumerate(plain)
    } | {
        (placed[-1].sequence, 1 + i): (reasons[name], payloads[name], json.loads(payloads[name])["event_id"])
        for i, name in enumerate(aggregated)
    }
    assert line.quarantine() == expected
    assert {reason for reason, _, _ in expected.values()} == {
        "missing_field",
        "non_positive_quantity",
        "negative_price",
        "wrong_type",
        "unknown_currency",
        "unknown_field",
    }
    assert line.totals() == model(good)


def test_b3_a_huge_well_formed_payload_is_refused_by_the_size_cap(pipeline: PipelineFactory) -> None:
    line = pipeline()
    huge = BAD_PAYLOADS["huge"]
    assert huge.count(b'"sku"') == 10_000
    assert len(huge) > 32 * MAX_EVENT_BYTES
    good = [order("store-1", 10), order("store-2", 20)]
    placed = line.put(good[0], huge, good[1])
    line.run()
    line.close_windows()

    assert line.quarantine() == {(placed[1].sequence, 0): ("oversize", huge, None)}
    (item,) = line.stack.items(line.stack.quarantine_table)
    assert "raw" not in item  # too big for an item: the bytes are in the bucket
    assert item["raw_s3_key"].startswith("quarantine/")
    assert (int(item["raw_bytes"]), item["detail"]) == (len(huge), f"{len(huge)} bytes > {MAX_EVENT_BYTES}")
    assert line.totals() == model(good)


def test_compressed_aggregates_from_the_producer_are_counted_once_each(
    pipeline: PipelineFactory, tmp_path: Path
) -> None:
    line = pipeline(shards=2)
    events = Fleet(FleetConfig(stores=30, seed=8)).events(3_000)
    producer = manual_producer(line.stack.endpoint, line.stream, tmp_path / "spool.jsonl")
    assert producer.settings.compress  # the default
    with producer:
        assert producer.submit_many(events) == []
    line.run()
    line.close_windows()

    _, landed = read_stream(line.stack.endpoint.client("kinesis"), line.stream)
    assert all(is_compressed(record.data) for record in landed)
    assert sum(len(record.user_records) for record in landed) == 3_000
    units = sum(count.payload_units for count in producer.result.shards.values())
    assert units == len(landed) <= 3_000 / 95  # what the stream billed: one unit per record
    assert line.errors() == []
    assert line.totals() == model(events)
    assert line.counters() == {
        "events": 3_000,
        "duplicates": 0,
        "conflicts": 0,
        "quarantined": 0,
        "segments": 2,
    }


def test_b1_b3_a_corrupt_envelope_and_a_decompression_bomb_are_quarantined_whole(
    pipeline: PipelineFactory,
) -> None:
    line = pipeline()
    good = [order("store-1", 10), order("store-2", 20), order("store-1", 30)]
    lost = order("store-3", 5000).to_json_bytes()
    corrupt, bomb = CATALOGUE["corrupt_envelope"].make(lost), CATALOGUE["compression_bomb"].make(lost)
    placed = line.put(compress(kpl(good[0], good[1]), 1), corrupt, bomb, good[2])
    line.run()
    line.close_windows()

    assert line.quarantine() == {
        (placed[1].sequence, WHOLE): ("corrupt_envelope", corrupt, None),
        (placed[2].sequence, WHOLE): ("envelope_oversize", bomb, None),
    }
    assert line.totals() == model(good)
    assert line.counters() == {"events": 3, "duplicates": 0, "conflicts": 0, "quarantined": 2, "segments": 1}


def test_b4_a_poison_record_is_quarantined_and_the_shard_moves_on(
    pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = pipeline(script=Script(lambda call, outcome: Fault.NONE if call.batch.final else Fault.REPLAY))
    poison = order("store-1", 666)
    real = salesstream.core.records.decode_event
    tries: list[bytes] = []

    def fails_on_the_poison(raw: bytes, *, screened: bool = False) -> WireEvent:
        if poison.event_id.encode() in raw:
            tries.append(raw)
            raise ZeroDivisionError("deep inside a library")  # fails every time it is read
        return real(raw, screened=screened)

    monkeypatch.setattr(salesstream.core.records, "decode_event", fails_on_the_poison)
    # and a real one: nesting within the size cap that blew Python's recursion limit
    nested = b'{"event_id": "evt-nested", "x": ' + b"[" * (MAX_EVENT_BYTES - 40)
    good = [order("store-1", 100), order("store-2", 200), order("store-3", 300)]
    placed = line.put(kpl(good[0], poison, good[1]), nested)
    line.run()
    (after,) = line.put(good[2])
    line.run()
    line.close_windows()

    assert len(tries) == 2  # delivered twice, failed twice
    assert line.quarantine() == {
        (placed[0].sequence, 1): ("poison", poison.to_json_bytes(), None),
        (placed[1].sequence, 0): ("not_json", nested, None),
    }
    (item,) = [i for i in line.stack.items(line.stack.quarantine_table) if i["reason"] == "poison"]
    assert item["detail"] == "unexpected ZeroDivisionError"  # the type, never the message
    assert line.totals() == model(good)
    stats = line.runtime.stats().totals()
    assert (stats["function_errors"], stats["records_discarded"]) == (0, 0)
    assert all(i.outcome == "ok" for i in line.script.invocations)
    assert line.script.invocations[1].sequences == (after.sequence,)


def test_b5_duplicates_count_once_conflicts_are_quarantined_across_a_window_and_a_cold_start(
    pipeline: PipelineFactory,
) -> None:
    def cold_start_after_each_final(call: Call, outcome: Outcome) -> Fault:
        if call.batch.final:
            aggregator.cache_clear()  # a new Lambda process: its dedup index must come back from S3
        return Fault.NONE

    line = pipeline(
        window_seconds=2, window_close_grace_seconds=0, script=Script(cold_start_after_each_final)
    )
    sale = order("store-1", 1000)
    disputed = order("store-2", 500)
    changed = order("store-2", 999, event_id=disputed.event_id)
    first = line.put(sale, disputed, sale, changed)  # a resend and a conflict in the same batch
    # Into the next window before the first batch runs: its processing, however slow on a
    # loaded machine, cannot push the second put two windows on (arrivals are real time).
    sleep_into_next_window(2)
    changed_again = order("store-2", 777, event_id=disputed.event_id)
    fresh = order("store-3", 5)
    second = line.put(sale, changed_again, fresh)  # seconds later, in the next window
    line.close_windows()

    assert [(i.sequences, i.final) for i in line.script.invocations] == [
        (sequences(first), False),
        ((), True),  # window one closes, and its process goes away
        (sequences(second), False),  # judged by a cold process
        ((), True),
    ]
    one, two = line.segments()
    assert two["window_start"] == one["window_end"]
    assert [(s["events"], s["duplicates"], s["conflicts"]) for s in (one, two)] == [(2, 1, 1), (1, 1, 1)]
    assert line.quarantine() == {
        (first[3].sequence, 0): ("duplicate_conflict", changed.to_json_bytes(), disputed.event_id),
        (second[1].sequence, 0): ("duplicate_conflict", changed_again.to_json_bytes(), disputed.event_id),
    }
    assert line.totals() == model([sale, disputed, fresh])
    assert line.counters() == {"events": 3, "duplicates": 2, "conflicts": 2, "quarantined": 2, "segments": 2}


def test_b7_a_card_number_put_straight_into_the_stream_is_masked_and_stored_nowhere(
    pipeline: PipelineFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    line = pipeline()
    base = json.loads(order("store-1", 100).to_json_bytes())
    in_a_note = json.dumps({**base, "event_id": "evt-card-note", "note": CARD.decode()}).encode()
    as_terminal = json.dumps(
        {**base, "event_id": "evt-card-till", "terminal_id": "4111111111111111"}
    ).encode()
    as_event_id = json.dumps({**base, "event_id": "5500-0000-0000-0004"}).encode()
    in_text = b"card 4111-1111-1111-1111 exp 12/29"
    # the card's first digit spelled as a JSON escape (in the note: an earlier "4", in the order id
    # that the order counter makes, must stay as it is)
    note = b'"note": "' + CARD
    escaped = in_a_note.replace(note, note.replace(CARD[:1], b"\\u0034", 1), 1)
    assert escaped != in_a_note
    good = [order("store-1", 250), order("store-2", 40)]
    broken = bytearray(kpl(good[0], in_a_note))
    broken[-1] ^= 0x01
    placed = line.put(
        in_a_note, kpl(good[0], as_terminal, good[1]), as_event_id, in_text, escaped, bytes(broken)
    )
    (keyed,) = line.put(b"junk", partition_key="4111111111111111")
    with captured_logs() as logs:
        line.run()
        line.close_windows()

    def masked(data: bytes, card: bytes) -> bytes:
        assert card in data
        return data.replace(card, b"#" * len(card))

    found = line.quarantine()
    assert found == {
        (placed[0].sequence, 0): ("card_number", masked(in_a_note, CARD), "evt-card-note"),
        (placed[1].sequence, 1): ("card_number", masked(as_terminal, b"4111111111111111"), "evt-card-till"),
        (placed[2].sequence, 0): ("card_number", masked(as_event_id, b"5500-0000-0000-0004"), None),
        (placed[3].sequence, 0): ("card_number", masked(in_text, b"4111-1111-1111-1111"), None),
        # kept unescaped, so the mask covers the digit that hid behind \u0034
        (placed[4].sequence, 0): ("card_number", masked(in_a_note, CARD), "evt-card-note"),
        (placed[5].sequence, WHOLE): ("bad_aggregate_checksum", masked(bytes(broken), CARD), None),
        (keyed.sequence, 0): ("not_json", b"junk", None),
    }
    (keyed_item,) = [i for i in line.stack.items(line.stack.quarantine_table) if i["reason"] == "not_json"]
    assert keyed_item["partition_key"] == "#" * 16
    assert line.totals() == model(good)

    scanned = 0
    for where, data in line.everything_stored():
        scanned += 1
        assert card_numbers_in(data, SENT_CARDS) == [], where
    assert scanned > 10  # tables (quarantine, aggregates, checkpoints), the dedup log, raw bytes
    assert "window step" in logs.getvalue()  # the handler's logs were captured ...
    printed = capfd.readouterr()  # ... and its EMF metrics (printed)
    assert card_numbers_in((logs.getvalue() + printed.out + printed.err).encode(), SENT_CARDS) == []


def test_b6_a_refund_before_its_sale_late_events_and_skewed_clocks_count_by_arrival_and_skew_is_reported(
    pipeline: PipelineFactory, capfd: pytest.CaptureFixture[str]
) -> None:
    line = pipeline()
    now = datetime.now(CET).replace(microsecond=0)

    def sale(event_id: str, occurred_at: datetime, amount: int, *, refund: bool = False) -> OrderEvent:
        return new_order(
            event_id=event_id,
            store_id="store-6",
            terminal_id="till-6",
            order_id="ord-" + event_id.removeprefix("evt-").removesuffix("-refund"),
            occurred_at=occurred_at,
            currency="EUR",
            lines=[("SKU-6", 1, amount)],
            refund=refund,
        )

    events = [
        sale("evt-b6-1-refund", now, 400, refund=True),  # the refund arrives before its sale
        sale("evt-b6-1", now - timedelta(minutes=1), 400),
        sale("evt-b6-2", now - timedelta(days=3), 1_500),  # held back by a terminal for three days
        sale("evt-b6-3", now + timedelta(hours=2), 70),  # a terminal clock two hours ahead
        sale("evt-b6-4", now - timedelta(minutes=10), 9),  # and one ten minutes behind
    ]
    placed = line.put(*events)  # one Kinesis record each: every event's lateness is sampled
    line.run()
    line.close_windows()

    assert line.errors() == []
    assert line.quarantine() == {}
    assert line.totals() == model(events) == {("store-6", "EUR"): Totals(4, 1, 1_979, 400)}
    arrivals = arrival_ms(line, placed)
    (segment,) = line.segments()  # windows by arrival: all five in the window they arrived in
    window = Window.containing(arrivals[0], line.window_seconds)
    assert {Window.containing(a, line.window_seconds) for a in arrivals} == {window}
    assert (parse_rfc3339(segment["window_start"]), segment["events"]) == (window.start_ms, 5)
    # business days by the terminal's own calendar, the late sale's three days back included
    expected_days: dict[str, Totals] = {}
    for event in events:
        day = event.business_day.isoformat()
        expected_days[day] = expected_days.get(day, Totals()) + model([event])[("store-6", "EUR")]
    assert len(expected_days) >= 2
    assert {key.split("/")[2]: totals for key, totals in decoded_days(segment).items()} == expected_days
    store_days = [
        (day, Totals(*amounts))
        for item in line.stack.items(line.stack.aggregates_table)
        for store, _, day, amounts in store_day_amounts(item)
        if store == "store-6"
    ]
    assert dict(store_days) == expected_days
    lateness = [a - round(e.occurred_at.timestamp() * 1000) for a, e in zip(arrivals, events, strict=True)]
    assert {k: int(v) for k, v in segment["lateness_ms"].items()} == {
        "sampled": 5,
        "min": min(lateness),
        "max": max(lateness),
        "mean": sum(lateness) // 5,
    }
    assert min(lateness) < -7_000_000 < 250_000_000 < max(lateness)  # 2 h ahead, 3 days late
    # each invocation's EMF metrics carry the window's lateness so far: the same five samples
    reported = [m for m in emf_lines(capfd.readouterr().out) if "WindowLatenessMaxMs" in m]
    assert reported
    assert {(m["WindowLatenessMaxMs"][0], m["WindowLatenessMinMs"][0]) for m in reported} == {
        (max(lateness), min(lateness))
    }


def arrival_ms(line: Pipeline, placed: list[Placed]) -> list[int]:
    """Each record's ApproximateArrivalTimestamp in epoch ms, as the runtime reads it."""
    kinesis = line.stack.endpoint.client("kinesis")
    arrivals = []
    for where in placed:
        iterator = kinesis.get_shard_iterator(
            StreamName=line.stream,
            ShardId=where.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=where.sequence,
        )["ShardIterator"]
        (record,) = kinesis.get_records(ShardIterator=iterator, Limit=1)["Records"]
        arrivals.append(round(record["ApproximateArrivalTimestamp"].timestamp() * 1000))
    return arrivals


def emf_lines(printed: str) -> list[dict[str, Any]]:
    """The EMF metric documents powertools printed (one JSON object per line)."""
    return [json.loads(line) for line in printed.splitlines() if line.startswith('{"_aws"')]
