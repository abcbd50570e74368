"""The producer against the embedded moto server, through real boto3 clients.

Faults are injected with botocore's event hooks on the producer's own client: entries refused
inside a 200 answer, a response lost after the write was stored, whole calls throttled. What
landed is always read back from the stream and checked (docs/reliability.md P1-P5, B7).
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from producer import Producer, ProducerSettings, producer_client
from producer.shards import hash_key
from producer.simulator import Fleet, FleetConfig
from salesstream.core.cards import contains_card_number
from tests.kinesis_reading import Landed, all_event_ids, read_stream
from tests.unit.test_contract import valid_event

THROTTLED = "ProvisionedThroughputExceededException"


class Sleeps(list[float]):
    """Stands in for time.sleep: records the backoff instead of waiting it out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(url: str) -> Any:
    return producer_client(endpoint_url=url, region_name="us-east-1")


def make_producer(
    client: Any, stream: str, spool: Path, sleeps: Sleeps | None = None, **settings: Any
) -> Producer:
    return Producer(
        client,
        stream,
        spool,
        settings=ProducerSettings(**{"linger_seconds": 3600, **settings}),
        sleep=sleeps if sleeps is not None else Sleeps(),
        rng=random.Random(0),
    )


def simulated(count: int, seed: int = 1, stores: int = 40) -> list[bytes]:
    return Fleet(FleetConfig(stores=stores, seed=seed)).events(count)


def ids_of(events: list[bytes]) -> list[str]:
    return [json.loads(raw)["event_id"] for raw in events]


def tally_of(landed: list[Landed]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """The tally recomputed from what the stream holds, once per event_id."""
    seen: dict[str, dict[str, Any]] = {}
    for record in landed:
        for user_record in record.user_records:
            event = json.loads(user_record.data)
            seen[event["event_id"]] = event
    totals: dict[tuple[str, str], list[int]] = {}
    for event in seen.values():
        row = totals.setdefault((event["store_id"], event["currency"]), [0, 0, 0, 0])
        refund = event["event_type"] == "order_refunded"
        row[1 if refund else 0] += 1
        row[3 if refund else 2] += event["total_minor"]
    return {key: (o, r, g, rf) for key, (o, r, g, rf) in totals.items()}


def result_tally(producer: Producer) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    return {
        (row.store_id, row.currency): (row.orders, row.refunds, row.gross_minor, row.refunds_minor)
        for row in producer.result.tally
    }


@pytest.fixture
def stream(make_stack: Any) -> Any:
    def make(shards: int = 4) -> str:
        template, _ = make_stack(ShardCount=shards)
        return str(template.physical_name("OrdersStream"))

    return make


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self._data]


class PartialFailures:
    """PutRecords answers 200 but refuses some entries, which are not stored: `plan` maps a call
    number (1-based) to the positions refused in that call. Records what every call carried."""

    def __init__(self, client: Any, plan: dict[int, set[int]], code: str = THROTTLED) -> None:
        self.plan, self.code = plan, code
        self.calls: list[list[bytes]] = []
        self._refuse_whole_call = False
        client.meta.events.register("before-parameter-build.kinesis.PutRecords", self._drop)
        client.meta.events.register("before-send.kinesis.PutRecords", self._answer_without_storing)
        client.meta.events.register("after-call.kinesis.PutRecords", self._report)

    def _drop(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        records = params["Records"]
        self.calls.append([record["Data"] for record in records])
        refused = {p for p in self.plan.get(len(self.calls), set()) if p < len(records)}
        context["injected"] = (len(records), refused)
        self._refuse_whole_call = len(refused) == len(records)
        if not self._refuse_whole_call:  # (PutRecords needs at least one entry)
            params["Records"] = [record for position, record in enumerate(records) if position not in refused]

    def _answer_without_storing(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self._refuse_whole_call:
            return None
        body = json.dumps({"FailedRecordCount": 0, "Records": []}).encode()  # _report fills it in
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))

    def _report(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        count, refused = context.pop("injected", (0, set()))
        if not refused:
            return
        stored = iter(parsed["Records"])
        parsed["Records"] = [
            {"ErrorCode": self.code, "ErrorMessage": "injected"} if position in refused else next(stored)
            for position in range(count)
        ]
        parsed["FailedRecordCount"] = len(refused)


def test_every_user_record_sits_on_the_shard_its_key_hashes_to(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(4)
    events = simulated(3_000)
    producer = make_producer(client_for(endpoint.url), name, tmp_path / "spool.jsonl")
    with producer:
        assert producer.submit_many(events) == []

    shard_map, landed = read_stream(endpoint.client("kinesis"), name)
    assert all(record.user_records[0].aggregated for record in landed)
    assert len(landed) < 3_000 / 20  # aggregated: many events per record
    for record in landed:
        for user_record in record.user_records:
            assert shard_map.shards[record.shard_id].holds(hash_key(user_record.partition_key))
            assert user_record.explicit_hash_key is None  # the aggregate's hash key routes them all
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))  # each exactly once
    result = producer.result
    assert (result.accepted, result.sent, result.resent, result.spooled) == (3_000, 3_000, 0, 0)
    assert Counter({s: c.records for s, c in result.shards.items()}) == Counter(r.shard_id for r in landed)
    assert all(count.payload_units == count.records for count in result.shards.values())
    assert result_tally(producer) == tally_of(landed)


def test_records_stay_on_their_shard_across_a_split_in_the_middle_of_production(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    kinesis = endpoint.client("kinesis")
    events = simulated(3_000, seed=2)
    producer = make_producer(client_for(endpoint.url), name, tmp_path / "spool.jsonl")
    with producer:
        producer.submit_many(events[:1_500])
        producer.flush()
        first = kinesis.list_shards(StreamName=name)["Shards"][0]
        low, high = (int(first["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=name, ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2)
        )
        producer.submit_many(events[1_500:])  # routed with the map from before the split

    shard_map, landed = read_stream(kinesis, name)
    off_key = []
    for record in landed:
        for user_record in record.user_records:
            if not shard_map.shards[record.shard_id].holds(hash_key(user_record.partition_key)):
                off_key.append(json.loads(user_record.data)["event_id"])
    result = producer.result
    # The aggregates built for the closed parent landed on one of its children, some of their
    # user records outside that child's range: stored there, counted there, never sent again.
    assert off_key
    assert result.landed_elsewhere >= len(off_key)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))  # every event exactly once
    assert (result.accepted, result.sent, result.resent, result.spooled) == (3_000, 3_000, 0, 0)
    children = {s for s, shard in shard_map.shards.items() if shard.is_open} - {first["ShardId"]}
    assert children & set(result.shards)  # the children took writes after the split
    assert result_tally(producer) == tally_of(landed)


def test_the_periodic_refresh_routes_buffered_events_to_the_new_shards(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(1)
    kinesis = endpoint.client("kinesis")
    now = [0.0]
    events = simulated(1_000, seed=3)
    producer = Producer(
        client_for(endpoint.url),
        name,
        tmp_path / "spool.jsonl",
        settings=ProducerSettings(linger_seconds=3600, shard_refresh_seconds=10),
        clock=lambda: now[0],
        sleep=Sleeps(),
    )
    with producer:
        producer.submit_many(events[:500])
        producer.flush()
        (only,) = kinesis.list_shards(StreamName=name)["Shards"]
        kinesis.split_shard(StreamName=name, ShardToSplit=only["ShardId"], NewStartingHashKey=str(2**127))
        producer.submit_many(events[500:])  # buffered for the shard that just closed
        now[0] = 11.0  # the map is due for a refresh at the next flush

    shard_map, landed = read_stream(kinesis, name)
    for record in landed:
        for user_record in record.user_records:
            assert shard_map.shards[record.shard_id].holds(hash_key(user_record.partition_key))
    assert producer.result.landed_elsewhere == 0  # routed right before sending: nothing landed off-shard
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))
    assert only["ShardId"] not in {r.shard_id for r in landed[-2:]}  # the last writes went to the children


@pytest.mark.parametrize("aggregate", [True, False], ids=["aggregated", "plain"])
def test_p1_a_partial_failure_resends_only_the_failed_entries_and_each_order_counts_once(
    stream: Any, endpoint: Any, tmp_path: Path, aggregate: bool
) -> None:
    name = stream(4)
    client = client_for(endpoint.url)
    faults = PartialFailures(client, {1: {1, 3}})
    events = simulated(40 if not aggregate else 400)
    producer = make_producer(client, name, tmp_path / "spool.jsonl", aggregate=aggregate)
    with producer:
        producer.submit_many(events)

    first, second = faults.calls
    assert second == [first[1], first[3]]  # only the refused entries went again, in order
    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))  # each counted once
    result = producer.result
    resent_events = sum(len(r.user_records) for r in landed if r.data in (first[1], first[3]))
    assert (result.sent, result.resent, result.throttled) == (len(events), resent_events, 2)
    assert result_tally(producer) == tally_of(landed)


def test_p2_a_lost_response_is_resent_whole_and_the_duplicates_share_their_event_ids(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    client = client_for(endpoint.url)
    lost: list[bool] = []

    def lose_first_response(**_: Any) -> None:
        if not lost:
            lost.append(True)
            raise ReadTimeoutError(endpoint_url=endpoint.url)  # after moto stored the records

    client.meta.events.register("after-call.kinesis.PutRecords", lose_first_response)
    events = simulated(500)
    producer = make_producer(client, name, tmp_path / "spool.jsonl")
    with producer:
        producer.submit_many(events)

    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert Counter(all_event_ids(landed)) == Counter({event_id: 2 for event_id in ids_of(events)})
    result = producer.result
    assert (result.lost_responses, result.resent, result.sent) == (1, 500, 500)
    assert result_tally(producer) == tally_of(landed)  # the tally counts each event_id once


def test_p3_throttling_on_every_other_call_loses_nothing_and_backs_off(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    client = client_for(endpoint.url)
    calls: list[int] = []
    body = json.dumps({"__type": THROTTLED, "message": "Rate exceeded for shard"}).encode()

    def throttle_every_other_call(request: Any, **_: Any) -> AWSResponse | None:
        calls.append(len(json.loads(request.body)["Records"]))
        if len(calls) % 2:
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))
        return None  # let this one through to moto

    client.meta.events.register("before-send.kinesis.PutRecords", throttle_every_other_call)
    sleeps = Sleeps()
    events = simulated(1_200)
    producer = make_producer(client, name, tmp_path / "spool.jsonl", sleeps, aggregate=False)
    with producer:
        producer.submit_many(events)

    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))  # nothing lost, nothing twice
    result = producer.result
    assert result.throttled == sum(calls[0::2])  # every entry of every throttled call
    assert result.spooled == 0
    assert result.error is None  # throttling is expected, not an error
    assert len(sleeps) == len(calls) // 2  # one backoff after each throttled call
    assert all(0 <= delay <= 0.05 for delay in sleeps)  # first failure: within base * 2^0
    assert result.backoff_seconds == pytest.approx(sum(sleeps))


def test_p4_retries_exhausted_spools_and_the_next_run_sends_the_spool_first(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    spool = tmp_path / "spool.jsonl"
    client = client_for(endpoint.url)
    PartialFailures(client, {call: {0} for call in range(1, 4)}, code="InternalFailure")
    events = simulated(300)
    first_run = make_producer(client, name, spool, max_attempts=3)
    with first_run:
        first_run.submit_many(events)
    spooled_ids = [json.loads(line)["event_id"] for line in spool.read_text().splitlines()]
    assert first_run.result.spooled == len(spooled_ids) > 0
    assert first_run.result.error is not None
    assert first_run.result.error.startswith("retries_exhausted")
    assert {json.loads(line)["reason"] for line in spool.read_text().splitlines()} == {"retries_exhausted"}

    second_run = make_producer(client_for(endpoint.url), name, spool)
    with second_run:
        pass
    assert (second_run.result.from_spool, second_run.result.sent) == (len(spooled_ids), len(spooled_ids))
    assert not spool.exists()
    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_p4_a_dead_endpoint_spools_everything_and_the_next_run_drains_it(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    spool = tmp_path / "spool.jsonl"
    sleeps = Sleeps()
    events = simulated(300)
    offline = make_producer(
        client_for(f"http://127.0.0.1:{closed_port()}"), name, spool, sleeps, max_attempts=3
    )
    with offline:
        offline.submit_many(events)

    result = offline.result
    assert (result.accepted, result.sent, result.spooled) == (300, 0, 300)
    assert result.error is not None
    assert result.error.startswith("endpoint_unreachable")
    assert "\n" not in result.error
    assert len(sleeps) == 2  # three attempts at the shard map, then every send is a one-shot probe
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [line["event_id"] for line in lines] == ids_of(events)
    assert {line["reason"] for line in lines} == {"endpoint_unreachable"}
    assert [line["event"].encode() for line in lines] == events  # byte for byte

    online = make_producer(client_for(endpoint.url), name, spool)
    with online:
        pass
    assert (online.result.from_spool, online.result.sent, online.result.spooled) == (300, 300, 0)
    assert not spool.exists()
    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))


def test_a_missing_stream_is_not_retried_and_nothing_is_lost(endpoint: Any, tmp_path: Path) -> None:
    sleeps = Sleeps()
    producer = make_producer(client_for(endpoint.url), "no-such-stream", tmp_path / "spool.jsonl", sleeps)
    with producer:
        producer.submit_many(simulated(50))
    assert producer.result.spooled == 50
    assert producer.result.error is not None
    assert producer.result.error.startswith("refused_by_service: ResourceNotFoundException")
    assert sleeps == []  # a refusal is final: no backoff, no retry


def test_every_refused_event_has_a_reason_and_none_reaches_the_stream(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    good = simulated(100)
    bad = [
        b"{not json",
        json.dumps(valid_event(event_id="bad-1", currency="XYZ")).encode(),
        json.dumps(valid_event(event_id="bad-2", total_minor=1)).encode(),
        json.dumps(valid_event(event_id="bad-3", lines=[], total_minor=0)).encode(),
        json.dumps(valid_event(event_id="bad-4", extra=1)).encode(),
    ]
    producer = make_producer(client_for(endpoint.url), name, tmp_path / "spool.jsonl")
    with producer:
        refusals = producer.submit_many(bad + good)
    assert [position for position, _ in refusals] == list(range(len(bad)))
    assert [refusal.reason.value for _, refusal in refusals] == [
        "not_json",
        "unknown_currency",
        "total_mismatch",
        "empty_order",
        "unknown_field",
    ]
    assert producer.result.rejected == {
        "empty_order": 1,
        "not_json": 1,
        "total_mismatch": 1,
        "unknown_currency": 1,
        "unknown_field": 1,
    }
    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(good))


def test_b7_a_card_number_is_refused_at_the_producer_and_never_reaches_the_stream(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    card = "4111111111111111"
    carriers = [
        valid_event(event_id="c-1", note=f"paid with {card}"),
        valid_event(event_id="c-2", terminal_id=card),
        valid_event(
            event_id="c-3", lines=[{"sku": "4111 1111 1111 1111", "quantity": 1, "unit_price_minor": 1}]
        ),
        valid_event(event_id="c-4", order_id="4111-1111-1111-1111"),
    ]
    payloads = [json.dumps(event).encode() for event in carriers]
    escaped = json.dumps(valid_event(event_id="c-5", note="X")).encode()
    payloads.append(escaped.replace(b'"X"', b'"\\u0034111111111111111"'))  # JSON for "4111111111111111"
    payloads.append(json.dumps(valid_event(event_id="c-6", **{card: "key"})).encode())  # in a key
    good = simulated(200)
    producer = make_producer(client_for(endpoint.url), name, tmp_path / "spool.jsonl")
    with producer:
        refusals = producer.submit_many([*payloads, *good])
    assert producer.result.rejected == {"card_number": 6}
    assert all(refusal.reason.value == "card_number" for _, refusal in refusals)

    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(good))
    for record in landed:
        assert not contains_card_number(record.data)
        assert not any(contains_card_number(user_record.data) for user_record in record.user_records)


def test_without_aggregation_each_record_is_one_event_keyed_by_its_store(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(4)
    events = simulated(300)
    producer = make_producer(client_for(endpoint.url), name, tmp_path / "spool.jsonl", aggregate=False)
    with producer:
        producer.submit_many(events)
    shard_map, landed = read_stream(endpoint.client("kinesis"), name)
    assert len(landed) == 300
    for record in landed:
        (user_record,) = record.user_records
        assert not user_record.aggregated
        assert record.partition_key == json.loads(record.data)["store_id"]
        assert shard_map.shards[record.shard_id].holds(hash_key(record.partition_key))
    assert sorted(all_event_ids(landed)) == sorted(ids_of(events))
    assert producer.result.sent == 300


def test_p5_a_record_over_the_size_limits_is_refused_before_sending_with_the_reason(
    stream: Any, endpoint: Any, tmp_path: Path
) -> None:
    name = stream(2)
    client = client_for(endpoint.url)
    carried: list[int] = []  # the size of every entry any PutRecords call carried
    client.meta.events.register(
        "before-parameter-build.kinesis.PutRecords",
        lambda params, **_: carried.extend(len(r["Data"]) for r in params["Records"]),
    )
    line = {"sku": "SKU-LONG-NAME-0001", "quantity": 1, "unit_price_minor": 1}
    # well-formed events: 300 lines (just over the 16 KiB cap), and one over Kinesis's 1 MiB
    over_cap = json.dumps(valid_event(event_id="big-1", lines=[line] * 300, total_minor=300)).encode()
    over_kinesis = json.dumps(valid_event(event_id="big-2", note="x" * (1024 * 1024))).encode()
    good = simulated(50)
    producer = make_producer(client, name, tmp_path / "spool.jsonl", aggregate=False)
    with producer:
        refusals = producer.submit_many([over_cap, *good[:25], over_kinesis, *good[25:]])

    assert [(position, refusal.reason.value) for position, refusal in refusals] == [
        (0, "oversize"),
        (26, "oversize"),
    ]
    assert [refusal.detail for _, refusal in refusals] == [
        f"{len(over_cap)} bytes > 16384",
        f"{len(over_kinesis)} bytes > 16384",
    ]
    result = producer.result
    assert (result.rejected, result.accepted, result.sent, result.spooled) == ({"oversize": 2}, 50, 50, 0)
    assert len(carried) == 50
    assert max(carried) < 16 * 1024  # neither ever left the producer
    _, landed = read_stream(endpoint.client("kinesis"), name)
    assert sorted(all_event_ids(landed)) == sorted(ids_of(good))
    assert not (tmp_path / "spool.jsonl").exists()
