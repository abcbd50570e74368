"""The load test's API probe: the serving API served as during a load test (load_tests/serving.py),
asked through HTTP (load_tests/visibility.py), on a stack of the embedded emulator. The shard
counters are written as the aggregator's persistence writes them (consumers/speed/layout.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.serving.handler import api
from load_tests.meters import RequestMeter
from load_tests.serving import serving_api
from load_tests.visibility import ApiShardsProbe
from salesstream.core.windows import rfc3339
from salesstream.emulator.targets import Endpoint


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, make_stack: Any) -> Iterator[Any]:
    template, _ = make_stack(ShardCount=1)
    for name, value in template.function("ApiFunction").environment.items():
        monkeypatch.setenv(name, value)  # restored after the test, whatever the server sets
    monkeypatch.setenv("RUNTIME_STATS_FILE", "")
    yield template
    api.cache_clear()


def test_the_probe_reports_a_window_once_when_the_api_shows_it_closed_and_is_not_metered(
    clean_environment: Any, endpoint: Any, tmp_path: Path
) -> None:
    template = clean_environment
    table = template.physical_name("AggregatesTable")
    (shard,) = [
        s["ShardId"]
        for s in endpoint.client("kinesis").list_shards(StreamName=template.physical_name("OrdersStream"))[
            "Shards"
        ]
    ]
    table_counts: dict[str, int] = {}

    def counters(segments: int, events: int, window_end_ms: int) -> None:
        dynamodb.put_item(
            TableName=table,
            Item={
                "pk": {"S": f"SHARD#{shard}"},
                "sk": {"S": "COUNTERS"},
                "segments": {"N": str(segments)},
                "events": {"N": str(events)},
                "last_window_end": {"S": rfc3339(window_end_ms)},
            },
        )
        table_counts[shard] = segments

    meter = RequestMeter()
    with meter.installed(), serving_api(template, meter, tmp_path / "stats.json") as served:
        dynamodb = Endpoint(endpoint.target, endpoint.url, endpoint.region).client("dynamodb")  # metered
        probe = ApiShardsProbe(served.url, lambda: dict(table_counts))
        meter.reset()
        assert probe.poll(time.time()) == []  # the first poll: nothing closed yet
        now_ms = round(time.time() * 1000)
        counters(1, 40, now_ms - 1_000)
        (seen,) = probe.poll(time.time())
        assert (seen.shard_id, seen.window_end_ms, seen.terminated_early) == (shard, now_ms - 1_000, False)
        assert seen.seen_at * 1000 >= now_ms
        assert probe.counted() == 40
        asked = probe.requests
        assert probe.poll(time.time()) == []  # nothing new in the table: the API is not asked
        assert probe.requests == asked
        counters(2, 90, now_ms + 60_000)  # a segment ended early: its window has not ended yet
        assert probe.poll(time.time()) == []
        assert probe.counted() == 90
        probe.close()
        counts = meter.snapshot()
    assert probe.requests == asked + 1
    # only the test's own writes were metered, never the API's reads
    assert dict(counts.operations("dynamodb")) == {"PutItem": 2}
