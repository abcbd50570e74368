"""The domain core must not depend on the AWS SDK (hexagonal shape), and imports point one way
across the deploy boundary."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

import salesstream.core
from salesstream.deploy.imports import direct_imports


def test_core_modules_import_without_boto3() -> None:
    modules = [f"salesstream.core.{m.name}" for m in pkgutil.iter_modules(salesstream.core.__path__)]
    assert modules, "the core package has no modules"
    probe = (
        "import sys, importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


# --- imports point one way: the deploy boundary ---------------------------------------------
# The layers, by the folder a module lives in (the longest matching prefix wins). What ships to
# Lambda (the core and the consumers) never imports local tooling (CLI, runtime, emulator, deploy
# tooling); the tooling may import both; the load-test and fault harness sits on top. The table
# is the target layout of docs/architecture.md; the modules that break it today are marked below
# and turn this test red (strict xfail) once the layout change fixes them.
# --8<-- [start:layers]
LAYER_OF_FOLDER: Final = {
    "salesstream.core": "core",
    "producer": "producer",
    "consumers": "lambda",
    "salesstream": "tooling",
    "load_tests.faults": "harness",
    "load_tests": "harness",
}
MAY_IMPORT: Final = {
    "core": {"core"},
    "producer": {"core", "producer"},
    "lambda": {"core", "lambda"},
    "tooling": {"core", "producer", "lambda", "tooling"},
    "harness": {"core", "producer", "lambda", "tooling", "harness"},
}
# --8<-- [end:layers]
# module -> why it breaks the rule today (none since the move along the deploy boundary; a module
# listed here turns the test into a strict xfail until it is fixed)
POINTS_THE_WRONG_WAY: Final[dict[str, str]] = {}
IN_AN_IMPORT_CYCLE: Final[dict[str, str]] = {}  # none: the report model and the run's config stand alone
ROOT: Final = Path(__file__).resolve().parents[2]
FIRST_PARTY: Final = ("salesstream", "producer", "consumers", "load_tests")


def _modules() -> list[str]:
    found = []
    for top in FIRST_PARTY:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES: Final = _modules()


def layer_of(module: str) -> str:
    prefixes = [p for p in LAYER_OF_FOLDER if module == p or module.startswith(p + ".")]
    return LAYER_OF_FOLDER[max(prefixes, key=len)]


def first_party_imports(module: str) -> set[str]:
    """Every first-party module this one imports, type-only imports included."""
    names = direct_imports(module, ROOT, with_type_checking=True)
    return {name for name in names if name in MODULES and name != module}


def _marked(table: dict[str, str]) -> list[Any]:
    return [
        pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=table[m])) if m in table else m
        for m in MODULES
    ]


def test_the_layout_table_names_existing_modules_only() -> None:
    assert len(MODULES) > 100
    assert set(POINTS_THE_WRONG_WAY) <= set(MODULES)
    assert set(IN_AN_IMPORT_CYCLE) <= set(MODULES)


def test_the_rule_catches_a_wrong_import() -> None:
    assert layer_of("salesstream.core.contract") == "core"
    assert layer_of("load_tests.faults.profile") == "harness"
    assert layer_of("consumers.common.clients") == "lambda"
    assert layer_of("salesstream.emulator.targets") == "tooling"
    assert "tooling" not in MAY_IMPORT[layer_of("consumers.speed.handler")]
    assert "harness" not in MAY_IMPORT[layer_of("salesstream.cli.main")]
    # imports are found, function-level and type-only ones included
    assert "consumers.common.clients" in first_party_imports("consumers.speed.aggregate")
    assert "consumers.batch.resources" in first_party_imports("consumers.batch.repair")


@pytest.mark.parametrize("module", _marked(POINTS_THE_WRONG_WAY))
def test_imports_point_one_way(module: str) -> None:
    allowed = MAY_IMPORT[layer_of(module)]
    wrong = sorted(
        f"{name} ({layer_of(name)})" for name in first_party_imports(module) if layer_of(name) not in allowed
    )
    assert wrong == [], f"{module} ({layer_of(module)}) may import only {sorted(allowed)}"


def _cycle_members() -> set[str]:
    """Modules on an import cycle (Tarjan's strongly connected components); an import of a
    parent package is not a cycle (a package's modules import their siblings through it)."""
    graph = {m: {n for n in first_party_imports(m) if not m.startswith(n + ".")} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    members: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                members.update(component)

    for module in MODULES:
        if module not in index:
            visit(module)
    return members


CYCLE_MEMBERS: Final = _cycle_members()


@pytest.mark.parametrize("module", _marked(IN_AN_IMPORT_CYCLE))
def test_no_module_is_on_an_import_cycle(module: str) -> None:
    assert module not in CYCLE_MEMBERS


# --- each layer of the Lambda architecture has the batch layer's shape -----------------------
# --8<-- [start:shape]
LAMBDA_LAYERS: Final = ("speed", "archive", "batch", "serving")
# A layer's handler.py is an adapter: it defines `lambda_handler`, imports no boto3 (and of
# botocore only its exceptions), builds no client, and gets its clients from exactly one call of
# `from_environment` on a class its layer defines in another module (the use case's).
# --8<-- [end:shape]
_CLIENT_BUILDERS: Final = frozenset({"client", "resource", "Session"})


def shape_problems(layer: str, source: str) -> list[str]:
    """What keeps `source`, the handler of `layer`, from being an adapter only."""
    tree = ast.parse(source)
    imported_from: dict[str, str] = {}  # local name -> the module it comes from
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            pairs = [(alias.asname or alias.name.split(".")[0], alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            pairs = [(alias.asname or alias.name, node.module) for alias in node.names]
        else:
            continue
        for name, module in pairs:
            imported_from[name] = module
            top = module.split(".")[0]
            if top == "boto3" or (top == "botocore" and module != "botocore.exceptions"):
                problems.append(f"imports {module}")
    calls = [
        node.func
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    problems += [f"builds a client (.{call.attr})" for call in calls if call.attr in _CLIENT_BUILDERS]
    builders = [
        call.value.id
        for call in calls
        if call.attr == "from_environment" and isinstance(call.value, ast.Name)
    ]
    if len(builders) != 1:
        problems.append(f"calls from_environment {len(builders)} times, not once")
    use_cases = f"consumers.{layer}."
    for name in builders:
        module = imported_from.get(name, "the handler itself")
        if not module.startswith(use_cases) or module == f"consumers.{layer}.handler":
            problems.append(f"{name}.from_environment comes from {module}, not from its layer's use case")
    if not any(isinstance(node, ast.FunctionDef) and node.name == "lambda_handler" for node in tree.body):
        problems.append("defines no lambda_handler")
    return problems


def test_the_shape_rule_catches_a_handler_that_does_the_work() -> None:
    doing_it_all = (
        "import boto3\n"
        "from consumers.speed.handler import Aggregator\n"
        "def lambda_handler(event, context):\n"
        "    boto3.session.Session().client('s3')\n"
        "    return Aggregator.from_environment()\n"
    )
    assert shape_problems("speed", doing_it_all) == [
        "imports boto3",
        "builds a client (.client)",
        "builds a client (.Session)",
        "Aggregator.from_environment comes from consumers.speed.handler, not from its layer's use case",
    ]
    assert shape_problems("batch", "def handler(event, context): ...\n") == [
        "calls from_environment 0 times, not once",
        "defines no lambda_handler",
    ]


@pytest.mark.parametrize("layer", LAMBDA_LAYERS)
def test_each_layer_handler_is_an_adapter(layer: str) -> None:
    handler = ROOT / "consumers" / layer / "handler.py"
    assert shape_problems(layer, handler.read_text()) == []
