"""Which AWS operations code can call, read from its source (nothing is imported or run).

A call is any `x.<method>(...)` whose method name is an operation of one of the AWS services
below as boto3 spells it (`put_object`, `transact_write_items`), every
`get_paginator("<method>")` / `get_waiter("<name>")` (a waiter calls its operation), and every
`getattr(x, "<method>")`. The scan sees the method, not the client object, so a name that two
services share matches both. It cannot tell what `getattr(x, name)` with a computed name calls:
`dynamic_lookups` lists those, and the deployed code must have none.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final

import botocore.session
from botocore import xform_name

from salesstream.deploy.imports import SOURCE_ROOT, source_file

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

PURE_CORE: Final = "salesstream.core"
# The services whose operations the scan looks for: what the project uses or could plausibly use.
SERVICES: Final = (
    "cloudwatch",
    "dynamodb",
    "dynamodbstreams",
    "events",
    "kinesis",
    "kms",
    "lambda",
    "logs",
    "s3",
    "scheduler",
    "sns",
    "sqs",
    "sts",
)


@dataclass(frozen=True)
class Operation:
    service: str  # boto3's client name: "s3"
    name: str  # the API's name: "PutObject"

    @property
    def method(self) -> str:
        return xform_name(self.name)

    def __str__(self) -> str:
        return f"{self.service}.{self.method}"


@dataclass(frozen=True)
class Call:
    method: str
    operations: frozenset[Operation]  # every service operation the method name can mean
    module: str
    line: int

    def __str__(self) -> str:
        return f"{self.method} ({self.module}:{self.line})"


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def operations_by_method(services: tuple[str, ...] = SERVICES) -> dict[str, frozenset[Operation]]:
    index: dict[str, set[Operation]] = {}
    for service in services:
        for name in _session().get_service_model(service).operation_names:
            operation = Operation(service, name)
            index.setdefault(operation.method, set()).add(operation)
    return {method: frozenset(ops) for method, ops in index.items()}


@cache
def _waiter_operations(services: tuple[str, ...] = SERVICES) -> dict[str, frozenset[Operation]]:
    waiters: dict[str, set[Operation]] = {}
    for service in services:
        try:
            model = _session().get_waiter_model(service)
        except botocore.exceptions.DataNotFoundError:  # a service without waiters
            continue
        for name in model.waiter_names:
            operation = Operation(service, model.get_waiter(name).operation)
            waiters.setdefault(xform_name(name), set()).add(operation)
    return {name: frozenset(ops) for name, ops in waiters.items()}


def _string_argument(node: ast.Call, index: int = 0) -> str | None:
    if len(node.args) > index:
        argument = node.args[index]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return argument.value
    return None


def calls_in(module: str, root: Path = SOURCE_ROOT) -> list[Call]:
    """The AWS operations one module's source can call."""
    path = source_file(module, root)
    methods, waiters = operations_by_method(), _waiter_operations()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attribute, argument = node.func.attr, _string_argument(node)
        if attribute == "get_paginator" and argument in methods:
            found.append(Call(argument, methods[argument], module, node.lineno))
        elif attribute == "get_waiter" and argument in waiters:
            found.append(Call(argument, waiters[argument], module, node.lineno))
        elif attribute in methods:
            found.append(Call(attribute, methods[attribute], module, node.lineno))
    for node, name in _getattr_lookups(path):
        if name in methods:
            found.append(Call(name, methods[name], module, node.lineno))
    return found


def _getattr_lookups(path: Path) -> list[tuple[ast.Call, str | None]]:
    """Every `getattr(x, name, ...)` of a source file, with `name` when it is a literal."""
    return [
        (node, _string_argument(node, 1))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) >= 2
    ]


def dynamic_lookups(modules: Iterable[str], root: Path = SOURCE_ROOT) -> list[str]:
    """`module:line` of every getattr with a computed name: a call the scan cannot name. The pure
    core is left out: it holds no client (tests/unit/test_core_is_pure.py), only data classes."""
    return [
        f"{module}:{node.lineno}"
        for module in modules
        if not module.startswith(PURE_CORE)
        for node, name in _getattr_lookups(source_file(module, root))
        if name is None
    ]


def calls_of(modules: Iterable[str], root: Path = SOURCE_ROOT) -> list[Call]:
    return [call for module in modules for call in calls_in(module, root)]
