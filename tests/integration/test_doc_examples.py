"""The code the docs quote runs: each example is a checked file under tests/examples/, embedded
in the docs by pymdownx.snippets, and run here against the embedded emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from producer import producer_client
from tests.examples.pos_integration import aws_client, send_from_the_till
from tests.kinesis_reading import all_event_ids, read_stream
from tests.unit.test_contract import valid_event


def test_the_pos_integration_of_the_docs_sends_the_valid_events_and_refuses_the_bad_one(
    make_stack: Any, endpoint: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template, _ = make_stack(ShardCount=2)
    stream = str(template.physical_name("OrdersStream"))
    client = producer_client(endpoint_url=endpoint.url, region_name=endpoint.region)
    events = [json.dumps(valid_event(event_id=f"evt-doc-{i:03d}")).encode() for i in range(20)]

    result = send_from_the_till(client, stream, tmp_path / "spool.jsonl", [*events, b"{not json"])

    refusals = [line for line in capsys.readouterr().out.splitlines() if line.startswith("refused: ")]
    assert len(refusals) == 1
    assert refusals[0].startswith("refused: not_json")
    assert (result.accepted, result.sent, result.spooled, result.rejected) == (20, 20, 0, {"not_json": 1})
    _, landed = read_stream(endpoint.client("kinesis"), stream)
    assert sorted(all_event_ids(landed)) == [f"evt-doc-{i:03d}" for i in range(20)]


def test_the_docs_client_is_a_kinesis_client_for_the_region_it_names() -> None:
    client = aws_client()
    assert client.meta.service_model.service_name == "kinesis"
    assert client.meta.region_name == "eu-west-1"
