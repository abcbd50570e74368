"""Each layer reads its own settings (`consumers/<layer>/settings.py`), and those settings and the
template agree: every variable a function's settings require is set for that function by
deploy/template.yaml, every setting is read by the layer's code, and every variable the
template sets is read by some function."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import msgspec
import pytest
from pydantic_settings import BaseSettings

from consumers.batch.settings import BatchSettings
from salesstream.deploy.template import FunctionSpec, Template, load_template_document

DOCUMENT = load_template_document()
TEMPLATE = Template(DOCUMENT)
FUNCTIONS = {function.logical_id: function for function in TEMPLATE.functions()}
ROOT = Path(__file__).resolve().parents[2]
# read by powertools when a handler creates its logger and metrics
POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
# set for the operator (which stage a function in the console belongs to); no code reads it
FOR_THE_OPERATOR = {"STAGE"}


def layer_of(function: FunctionSpec) -> str:
    """`consumers.speed` for the handler `consumers.speed.handler.lambda_handler`."""
    module, _, _ = function.handler.rpartition(".")
    return module.rpartition(".")[0]


# pydantic-settings, or a msgspec struct where the layer starts without pydantic (the aggregator)
Settings = type[BaseSettings] | type[msgspec.Struct]


def settings_of(function: FunctionSpec) -> Settings:
    module = importlib.import_module(f"{layer_of(function)}.settings")
    (settings,) = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings | msgspec.Struct)
        and value.__module__ == module.__name__
    ]
    return settings


def fields_of(settings: Settings) -> dict[str, bool]:
    """Each field's name, and whether it is required."""
    if issubclass(settings, BaseSettings):
        return {name: field.is_required() for name, field in settings.model_fields.items()}
    return {field.name: field.required for field in msgspec.structs.fields(settings)}


def validate(settings: Settings, environment: dict[str, str]) -> None:
    if issubclass(settings, BaseSettings):
        given = {name.lower(): value for name, value in environment.items()}
        settings.model_validate({name: given[name] for name in settings.model_fields if name in given})
    else:
        settings.from_environment(environment)  # type: ignore[attr-defined]


def variable(field: str) -> str:
    return field.upper()


def attributes_read(package: str) -> set[str]:
    """Every `x.name` in the package's modules but its settings."""
    folder = ROOT / package.replace(".", "/")
    names: set[str] = set()
    for source in folder.glob("*.py"):
        if source.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def own_variables(logical_id: str) -> set[str]:
    """What the function's own Environment sets (beyond the template's Globals)."""
    properties = DOCUMENT["Resources"][logical_id]["Properties"]
    return set(properties.get("Environment", {}).get("Variables", {}))


def test_every_function_has_its_layers_own_settings() -> None:
    assert set(FUNCTIONS) == {"AggregatorFunction", "ArchiverFunction", "SnapshotFunction", "ApiFunction"}
    layers = {logical_id: layer_of(function) for logical_id, function in FUNCTIONS.items()}
    assert layers == {
        "AggregatorFunction": "consumers.speed",
        "ArchiverFunction": "consumers.archive",
        "SnapshotFunction": "consumers.batch",
        "ApiFunction": "consumers.serving",
    }
    assert len({settings_of(function) for function in FUNCTIONS.values()}) == len(FUNCTIONS)
    assert importlib.util.find_spec("consumers.common.settings") is None  # no shared settings


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_the_template_sets_every_variable_the_settings_require(logical_id: str) -> None:
    function = FUNCTIONS[logical_id]
    settings = settings_of(function)
    required = {variable(name) for name, is_required in fields_of(settings).items() if is_required}
    assert required, f"{settings.__name__} requires nothing"
    assert required - set(function.environment) == set()
    # and the values the template gives are valid for them (types, ranges)
    validate(settings, dict(function.environment))


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_setting_is_read_by_its_layer(logical_id: str) -> None:
    function = FUNCTIONS[logical_id]
    unread = set(fields_of(settings_of(function))) - attributes_read(layer_of(function))
    assert unread == set()


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_what_a_function_alone_is_given_its_settings_read(logical_id: str) -> None:
    fields = {variable(name) for name in fields_of(settings_of(FUNCTIONS[logical_id]))}
    assert own_variables(logical_id) - fields == set()


def test_every_variable_the_template_sets_is_read() -> None:
    read = {variable(name) for function in FUNCTIONS.values() for name in fields_of(settings_of(function))}
    given = {name for function in FUNCTIONS.values() for name in function.environment}
    assert given - read - POWERTOOLS - FOR_THE_OPERATOR == set()


def test_a_setting_no_function_is_given_is_found() -> None:
    """The check above can fail: a settings field the template does not set is named."""

    class Wider(settings_of(FUNCTIONS["ArchiverFunction"])):  # type: ignore[misc]
        retention_days: int

    required = {variable(name) for name, is_required in fields_of(Wider).items() if is_required}
    assert required - set(FUNCTIONS["ArchiverFunction"].environment) == {"RETENTION_DAYS"}


def test_the_snapshot_is_given_the_orders_table_only_with_the_table_source_on() -> None:
    assert settings_of(FUNCTIONS["SnapshotFunction"]) is BatchSettings
    assert "ORDERS_TABLE" not in FUNCTIONS["SnapshotFunction"].environment  # off: no variable at all
    on = Template(DOCUMENT, {"OrdersTableSource": "on"})
    environment = on.function("SnapshotFunction").environment
    assert environment["ORDERS_TABLE"] == on.physical_name("OrdersTable")
    given = {name.lower(): value for name, value in environment.items()}
    assert BatchSettings.model_validate(given).orders_table == on.physical_name("OrdersTable")
    off = {name.lower(): value for name, value in FUNCTIONS["SnapshotFunction"].environment.items()}
    assert BatchSettings.model_validate(off).orders_table is None
