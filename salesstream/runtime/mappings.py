"""The event source mappings of the template, resolved for the runtime (no AWS calls here).

Every `Type: Kinesis` event of every function is one mapping, and so is every mapping on a
DynamoDB table's stream (a `Type: DynamoDB` event or an `AWS::Lambda::EventSourceMapping`
resource); their settings are read from the template (salesstream.deploy.template.KinesisEventSpec) and
nowhere else. A table's stream ARN carries a label DynamoDB picks: the runtime resolves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from salesstream.deploy.template import FunctionSpec, KinesisEventSpec, TableSpec, Template
from salesstream.runtime.filters import FilterPatternError, RecordFilter
from salesstream.runtime.model import RuntimeConfigError

CHECKPOINT_TABLE_ID = "RuntimeCheckpointsTable"
_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


@dataclass(frozen=True)
class Mapping:
    id: str  # "<function logical id>.<event name>": the checkpoint key
    function: FunctionSpec
    event: KinesisEventSpec
    function_arn: str
    stream_name: str  # a Kinesis stream's name, or the table's name for its stream
    stream_arn: str
    region: str
    identity_arn: str
    on_failure_queue: str | None  # queue name
    filter: RecordFilter

    @property
    def windowed(self) -> bool:
        return self.event.tumbling_window_seconds > 0

    @property
    def from_table(self) -> bool:
        return self.event.from_table


def _validate(mapping_id: str, event: KinesisEventSpec) -> None:
    if event.parallelization_factor != 1:
        raise RuntimeConfigError(
            f"{mapping_id}: ParallelizationFactor {event.parallelization_factor} is not supported by the "
            "local runtime (it invokes each shard strictly in order); use 1"
        )
    if event.starting_position not in _STARTING_POSITIONS:
        raise RuntimeConfigError(
            f"{mapping_id}: StartingPosition {event.starting_position} is not supported by the local "
            f"runtime; use one of {', '.join(_STARTING_POSITIONS)}"
        )
    if not 1 <= event.batch_size <= 10_000:
        raise RuntimeConfigError(f"{mapping_id}: BatchSize {event.batch_size} outside 1..10000")


def mappings_of(template: Template, functions: Iterable[str] | None = None) -> list[Mapping]:
    """The enabled Kinesis mappings of the template's functions (all, or those named)."""
    wanted = set(functions) if functions is not None else None
    specs = template.functions()
    if wanted is not None and (unknown := wanted - {spec.logical_id for spec in specs}):
        raise RuntimeConfigError(f"no function {', '.join(sorted(unknown))} in the template")
    mappings = []
    for function in specs:
        if wanted is not None and function.logical_id not in wanted:
            continue
        for event in function.stream_events:
            if not event.enabled:
                continue
            mapping_id = f"{function.logical_id}.{event.name}"
            _validate(mapping_id, event)
            try:
                record_filter = RecordFilter(event.filter_patterns)
            except FilterPatternError as error:
                raise RuntimeConfigError(f"{mapping_id}: FilterCriteria: {error}") from error
            mappings.append(
                Mapping(
                    id=mapping_id,
                    function=function,
                    event=event,
                    function_arn=template.arn(function.logical_id),
                    stream_name=template.physical_name(event.stream_logical_id),
                    stream_arn=template.resolve({"Fn::GetAtt": [event.stream_logical_id, "StreamArn"]})
                    if event.from_table
                    else template.arn(event.stream_logical_id),
                    region=template.region,
                    # SAM creates the role; its name is not in the template.
                    identity_arn=f"arn:aws:iam::{template.account_id}:role/{function.name}-role",
                    on_failure_queue=(
                        template.physical_name(event.on_failure_queue_logical_id)
                        if event.on_failure_queue_logical_id
                        else None
                    ),
                    filter=record_filter,
                )
            )
    return mappings


class _OfFunction(Protocol):
    @property
    def function(self) -> FunctionSpec: ...


def function_environment(mappings: Iterable[_OfFunction]) -> dict[str, str]:
    """One process holds every function (of the mappings, and of the schedules): their
    environments must agree on every variable."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for mapping in mappings:
        for name, value in mapping.function.environment.items():
            if name in merged and merged[name] != value:
                raise RuntimeConfigError(
                    f"functions {owner[name]} and {mapping.function.logical_id} set {name} differently "
                    f"({merged[name]!r} vs {value!r}); the local runtime runs all handlers in one process "
                    "and cannot give each its own value: run them separately (`consume --function`)"
                )
            merged[name], owner[name] = value, mapping.function.logical_id
    return merged


def checkpoint_table(template: Template) -> TableSpec:
    """The runtime's own table; the template only defines it for Target=local."""
    for table in template.tables():
        if table.logical_id == CHECKPOINT_TABLE_ID:
            return table
    raise RuntimeConfigError(f"the template has no {CHECKPOINT_TABLE_ID}: load it with Target=local")
