"""Test tiers and shared fixtures.

Tiers follow the folder a test lives in (tests/unit, tests/integration, tests/e2e) and are
applied as strict markers, so `pytest -m unit` is exactly the fast, offline tier. Unit tests
cannot open sockets: any attempt fails the test.

Integration tests talk to one embedded moto server per session through real boto3 clients.
Each test that needs resources gets its own uniquely named stack (a fresh template Stage), so
tests never see each other's data. Set SALESSTREAM_TEST_ENDPOINT to run the same tests against
another endpoint (LocalStack: http://localhost:4566).
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Fake credentials before any boto3 client can exist, so nothing ever reaches a real account.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
# The CLI's state home (stack record, spools), relative: each command a test runs in its own
# folder finds the stack started there, and no test touches the user's own home or stack.
os.environ["SALESSTREAM_HOME"] = "var"
# Powertools metrics need a namespace; tests never flush to CloudWatch.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "salesstream-tests")

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # On xdist workers (`make test`), the long tests start first: one started last would leave
        # its worker running it alone while the other worker has nothing left. Every worker sorts
        # the same way, so the collections still agree.
        items.sort(key=lambda item: not _runs_long(item))


def _runs_long(item: pytest.Item) -> bool:
    """Property tests (many examples each) and tests marked `long`."""
    is_property = getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
    return bool(is_property) or item.get_closest_marker("long") is not None


@pytest.fixture(autouse=True)
def _no_sockets_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("unit tests must not use the network; move this test to tests/integration")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def load_event(name: str) -> dict[str, Any]:
    """A captured AWS event from tests/events/."""
    import json

    return json.loads((TESTS / "events" / name).read_text())


@pytest.fixture(scope="session")
def endpoint() -> Iterator[Any]:
    """One emulator endpoint for the whole session (embedded moto unless overridden)."""
    from salesstream.emulator.embedded import EmbeddedEmulator
    from salesstream.emulator.targets import Endpoint, Target

    url = os.environ.get("SALESSTREAM_TEST_ENDPOINT")
    if url:
        yield Endpoint(Target.CUSTOM, url).activate()
        return
    emulator = EmbeddedEmulator()
    started = emulator.start().activate()
    try:
        yield started
    finally:
        emulator.stop()


@pytest.fixture
def make_stack(endpoint: Any) -> Iterator[Callable[..., Any]]:
    """Factory: provision the template under a unique Stage; deleted after the test.

    make_stack(ShardCount=2, WindowSeconds=5) -> (template, provisioned)"""
    from salesstream.deploy.template import Template
    from salesstream.emulator.provision import provision

    created: list[Any] = []

    def make(**parameters: Any) -> tuple[Any, Any]:
        stage = "t" + uuid.uuid4().hex[:10]
        template = Template.load(
            parameters={"Stage": stage, "Target": "local", **parameters},
            region=endpoint.region,
            account_id=endpoint.account_id(),
            endpoint_url=endpoint.url,
        )
        provisioned = provision(template, endpoint)
        created.append(provisioned)
        return template, provisioned

    yield make
    for provisioned in created:
        _delete_stack(endpoint, provisioned)


@pytest.fixture
def provision_template(endpoint: Any) -> Iterator[Callable[[Any], Any]]:
    """Factory: provision a Template the test built itself (e.g. with extra functions, as the
    runtime's tests do); deleted after the test. provision_template(template) -> provisioned"""
    from salesstream.emulator.provision import provision

    created: list[Any] = []

    def make(template: Any) -> Any:
        created.append(provision(template, endpoint))
        return created[-1]

    yield make
    for provisioned in created:
        _delete_stack(endpoint, provisioned)


def _delete_stack(endpoint: Any, provisioned: Any) -> None:
    from botocore.exceptions import ClientError

    kinesis, dynamodb, s3, sqs = (endpoint.client(s) for s in ("kinesis", "dynamodb", "s3", "sqs"))
    for name in provisioned.streams.values():
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    for name in provisioned.tables.values():
        dynamodb.delete_table(TableName=name)
    for name in provisioned.buckets.values():
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=name, Key=obj["Key"])
            s3.delete_bucket(Bucket=name)
        except ClientError as error:  # already gone: nothing to clean
            if error.response["Error"]["Code"] != "NoSuchBucket":
                raise
    for url in provisioned.queues.values():
        sqs.delete_queue(QueueUrl=url)
