"""The locustfile drives the real producer: one Locust user's task, against the embedded emulator.

Locust patches the standard library with gevent when it is imported, so it runs in a child
process of its own, never in the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.kinesis_reading import all_event_ids, read_stream

ROOT = Path(__file__).parents[2]
_ONE_USER = """
import json, sys
from locust.env import Environment
from load_tests.locustfile import PosTills

environment = Environment(user_classes=[PosTills], host=sys.argv[1])
fired = []

def record(request_type, name, response_length, exception, **_):
    fired.append([request_type, name, response_length, None if exception is None else repr(exception)])

environment.events.request.add_listener(record)
user = PosTills(environment)
user.on_start()
user.sell()
user.on_stop()
print(json.dumps({"fired": fired, "sent": user.producer.result.sent}))
"""


def test_one_locust_user_task_sends_its_events_through_the_producer(
    make_stack: Any, endpoint: Any, tmp_path: Path
) -> None:
    template, _ = make_stack(ShardCount=2)
    stream = template.physical_name("OrdersStream")
    completed = subprocess.run(
        [sys.executable, "-c", _ONE_USER, endpoint.url],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SALESSTREAM_STREAM": stream,
            "SALESSTREAM_LOCUST_EVENTS": "50",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert outcome["sent"] == 50
    assert outcome["fired"] == [["producer", "submit_many", 50, None], ["producer", "close", 0, None]]
    _, landed = read_stream(endpoint.client("kinesis"), stream)
    event_ids = all_event_ids(landed)
    assert len(event_ids) == len(set(event_ids)) == 50  # aggregated, de-aggregated strictly, each once
