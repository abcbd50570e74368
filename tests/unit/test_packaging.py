"""What goes into a function's package: the handler's own modules and deploy/requirements.txt,
which must be exactly what that code imports (with every dependency, at the versions the tests
run with), minus the SDK the Lambda runtime provides."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from salesstream.deploy.imports import closure, third_party
from salesstream.deploy.package import REQUIREMENTS, WHEEL_PLATFORMS, architecture, handler_module
from salesstream.deploy.template import Template

TEMPLATE = Template.load()
HANDLERS = sorted({handler_module(TEMPLATE, f.logical_id) for f in TEMPLATE.functions()})
# The python3.11 runtime's own SDK (AWS Lambda Developer Guide, "Building Lambda functions with
# Python": the runtime includes the AWS SDK for Python, boto3) and what boto3 requires.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
LAMBDA_ENVIRONMENT = {
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "extra": "",
}


def pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            assert pin is not None, f"not an exact pin in {REQUIREMENTS.name}: {line!r}"
            name, version = pin.groups()
            pins[canonicalize_name(name)] = version
    return pins


def with_dependencies(names: set[str]) -> set[str]:
    """The distributions and, recursively, what they require on Lambda (markers evaluated)."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(LAMBDA_ENVIRONMENT):
                pending.append(requirement.name)
    return found


def test_the_requirements_are_what_the_handlers_import_and_nothing_else() -> None:
    distributions = metadata.packages_distributions()
    imported = {dist for top in third_party(closure(HANDLERS)) for dist in distributions[top]}
    needed = with_dependencies(imported) - RUNTIME_PROVIDED
    assert set(pinned()) == needed


def test_the_pins_are_the_versions_the_tests_run_with() -> None:
    assert pinned() == {name: metadata.version(name) for name in pinned()}


def test_a_handler_packs_no_local_tooling() -> None:
    for handler in HANDLERS:
        modules = closure([handler])
        assert handler in modules
        tooling = [
            m for m in modules if m.startswith("salesstream.") and not m.startswith("salesstream.core")
        ]
        assert tooling == [], handler  # the core only: not even the botocore config lives outside consumers
        assert not third_party(modules) & {"moto", "localstack_client", "rich", "yaml", "pytest"}


def test_functions_get_wheels_for_their_architecture() -> None:
    for function in TEMPLATE.functions():
        assert WHEEL_PLATFORMS[architecture(TEMPLATE, function.logical_id)] == "manylinux2014_aarch64"
