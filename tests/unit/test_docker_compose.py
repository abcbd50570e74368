"""docker-compose.yml: LocalStack pinned to 4.14.0, reachable from this machine only, with the
services that the LocalStack path (`up`, `produce`, `consume`, `report` and the handlers they
run) calls, found in their code: every call has its service, and every service has a call."""

from __future__ import annotations

from pathlib import Path

import yaml

from salesstream.deploy.calls import calls_of
from salesstream.deploy.imports import closure

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"
LOCAL_PATH = [f"salesstream.commands.{name}" for name in ("up", "produce", "consume", "report")]
# the runtime's own `invoker.invoke(...)` runs a handler in-process: not Lambda's Invoke
IN_PROCESS = {("invoke", "salesstream.runtime.consumer")}


def localstack() -> dict[str, object]:
    service: dict[str, object] = yaml.safe_load(COMPOSE.read_text())["services"]["localstack"]
    return service


def test_the_image_is_pinned_and_bound_to_loopback() -> None:
    service = localstack()
    assert service["image"] == "localstack/localstack:4.14.0"
    assert service["ports"] == ["127.0.0.1:4566:4566"]


def test_the_services_are_what_the_local_path_calls() -> None:
    started = set(str(localstack()["environment"]["SERVICES"]).split(","))  # type: ignore[index]
    handlers = ["consumers.aggregator.handler"]
    calls = [c for c in calls_of(closure(LOCAL_PATH + handlers)) if (c.method, c.module) not in IN_PROCESS]
    for call in calls:
        assert {op.service for op in call.operations} & started, f"{call} needs a service not started"
    sole = {next(iter(call.operations)).service for call in calls if len(call.operations) == 1}
    assert started == sole
