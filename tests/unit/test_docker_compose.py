"""docker-compose.yml: LocalStack pinned to 4.14.0, reachable from this machine only, with the
services that the LocalStack path (every command that takes `--target localstack`, and the
template's handlers, which `up`, `consume` and `serve` run in-process) calls, found in their
code: every call has its service, and every service has a call."""

from __future__ import annotations

from pathlib import Path

import yaml

from salesstream.cli.main import COMMANDS
from salesstream.deploy.calls import calls_of
from salesstream.deploy.imports import closure
from salesstream.deploy.package import handler_module
from salesstream.deploy.template import Template

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"
TEMPLATE = Template.load()
HANDLERS = sorted({handler_module(TEMPLATE, f.logical_id) for f in TEMPLATE.functions()})
# `demo` runs on the embedded emulator only; every other command takes --target localstack
LOCAL_PATH = [f"salesstream.cli.commands.{name}" for name in COMMANDS if name != "demo"]
# Calls whose name is an AWS operation but which never reach LocalStack:
# - `invoke` there is the local runtime's FunctionInvoker.invoke (salesstream/runtime/invoker.py):
#   the event source mappings, the schedules and the local HTTP API run each handler in this
#   process, so nothing calls Lambda's Invoke API and LocalStack needs no Lambda (nor Docker);
# - the API reads its lag from CloudWatch (GetMetricData) only on AWS: `serve` and `up` always
#   give it the runtime's stats file (RUNTIME_STATS_FILE), as tests/e2e/test_serve_cli.py checks.
NOT_ON_LOCALSTACK = {
    ("invoke", "salesstream.runtime.consumer"),
    ("invoke", "salesstream.runtime.runtime"),
    ("invoke", "salesstream.emulator.local_api"),
    ("get_metric_data", "consumers.serving.lag"),
}


def localstack() -> dict[str, object]:
    service: dict[str, object] = yaml.safe_load(COMPOSE.read_text())["services"]["localstack"]
    return service


def test_the_image_is_pinned_and_bound_to_loopback() -> None:
    service = localstack()
    assert service["image"] == "localstack/localstack:4.14.0"
    assert service["ports"] == ["127.0.0.1:4566:4566"]


def test_the_services_are_what_the_local_path_calls() -> None:
    started = set(str(localstack()["environment"]["SERVICES"]).split(","))  # type: ignore[index]
    every_call = calls_of(closure(LOCAL_PATH + HANDLERS))
    assert NOT_ON_LOCALSTACK.issubset((c.method, c.module) for c in every_call)  # none of them is stale
    calls = [c for c in every_call if (c.method, c.module) not in NOT_ON_LOCALSTACK]
    for call in calls:
        assert {op.service for op in call.operations} & started, f"{call} needs a service not started"
    sole = {next(iter(call.operations)).service for call in calls if len(call.operations) == 1}
    assert started == sole
