"""Reads deploy/template.yaml, the single definition of every resource, for the local targets.

The embedded emulator and LocalStack have no CloudFormation-with-SAM we can rely on, so this
module resolves the template itself: parameters (defaults, overridden by the caller), the
intrinsic functions the template uses (Ref, Sub, GetAtt, Join, Select, If, Equals, Not), and
the Globals section. Callers get typed specs of the streams, tables, buckets, queues and
functions (with their Kinesis event source mappings) and never re-state a name or a setting.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    from collections.abc import Mapping


def deploy_file(name: str) -> Path:
    """A file of deploy/: a wheel ships it as package data (salesstream/_deploy/, put there at
    build time by setup.py); a checkout or an editable install reads deploy/ itself."""
    shipped = resources.files("salesstream") / "_deploy" / name
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "deploy" / name


DEFAULT_TEMPLATE: Final = deploy_file("template.yaml")
_CFN_TAGS: Final = (
    "Ref",
    "Sub",
    "GetAtt",
    "Join",
    "Select",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Split",
    "Base64",
    "GetAZs",
    "ImportValue",
    "Condition",
)


class TemplateError(ValueError):
    """The template asks for something the local resolver does not support, or is invalid."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form tags (!Ref X) as their long form."""


def _construct_tag(tag: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        name = "Fn::" + tag if tag not in ("Ref", "Condition") else tag
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for _tag in _CFN_TAGS:
    _CfnLoader.add_constructor(f"!{_tag}", _construct_tag(_tag))


def load_template_document(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


# --- typed views of the resources ----------------------------------------------------------------


@dataclass(frozen=True)
class StreamSpec:
    logical_id: str
    name: str
    shard_count: int
    retention_hours: int
    encrypted: bool


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    global_secondary_indexes: list[dict[str, Any]] = field(default_factory=list)
    ttl_attribute: str | None = None
    stream_view_type: str | None = None  # StreamSpecification.StreamViewType, when it has a stream
    point_in_time_recovery: bool = False


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class KinesisEventSpec:
    """One event source mapping of a function on a stream: a `Type: Kinesis` event, or (source
    "dynamodb") a DynamoDB table's stream, as a `Type: DynamoDB` event or an
    `AWS::Lambda::EventSourceMapping` resource; AWS's defaults filled in where the template
    leaves a setting out. For a table's stream `stream_logical_id` is the table's logical id."""

    name: str
    stream_logical_id: str
    starting_position: str
    batch_size: int = 100
    maximum_batching_window_seconds: int = 0
    tumbling_window_seconds: int = 0
    parallelization_factor: int = 1
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1 = infinite, as on AWS
    maximum_record_age_seconds: int = -1  # -1 = infinite, as on AWS
    report_batch_item_failures: bool = False
    on_failure_queue_logical_id: str | None = None
    filter_patterns: list[dict[str, Any]] = field(default_factory=list)
    enabled: bool = True
    source: str = "kinesis"  # or "dynamodb": the stream of a DynamoDB table

    @property
    def from_table(self) -> bool:
        return self.source == "dynamodb"


@dataclass(frozen=True)
class ScheduleEventSpec:
    name: str
    expression: str
    enabled: bool = True


@dataclass(frozen=True)
class HttpApiEventSpec:
    name: str
    method: str
    path: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    kinesis_events: list[KinesisEventSpec]
    schedule_events: list[ScheduleEventSpec]
    http_events: list[HttpApiEventSpec]
    table_events: list[KinesisEventSpec] = field(default_factory=list)  # DynamoDB Streams mappings

    @property
    def stream_events(self) -> list[KinesisEventSpec]:
        """Every event source mapping on a stream, Kinesis and DynamoDB."""
        return [*self.kinesis_events, *self.table_events]


# --- the resolver -------------------------------------------------------------------------------

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class Template:
    """The template with its parameters fixed; every value read through it is resolved."""

    def __init__(
        self,
        document: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        endpoint_url: str | None = None,
    ) -> None:
        self.document = document
        self.region = region
        self.account_id = account_id
        self.endpoint_url = endpoint_url
        declared = document.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
        self.parameters: dict[str, Any] = {}
        for name, spec in declared.items():
            value = (parameters or {}).get(name, spec.get("Default"))
            if value is None:
                raise TemplateError(f"template parameter {name} has no default: pass a value")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in {str(a) for a in allowed}:
                raise TemplateError(f"parameter {name}={value} not one of {', '.join(map(str, allowed))}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and re.fullmatch(pattern, str(value)) is None:
                raise TemplateError(f"parameter {name}={value} does not match its AllowedPattern {pattern}")
            if spec.get("Type") == "Number":
                try:
                    value = int(value)
                except ValueError:
                    raise TemplateError(f"parameter {name}={value} is not a whole number") from None
                low, high = spec.get("MinValue"), spec.get("MaxValue")
                if (low is not None and value < low) or (high is not None and value > high):
                    raise TemplateError(f"parameter {name}={value} outside {low}..{high}")
            self.parameters[name] = value

    @classmethod
    def load(
        cls, path: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Template:
        return cls(load_template_document(path), parameters, **kwargs)

    # resources ----------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.document["Resources"])

    def _of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id} in the template")
        props = resource.get("Properties", {})
        name_property = {
            "AWS::Kinesis::Stream": "Name",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Lambda::Function": "FunctionName",  # in the SAM-transformed template
            "AWS::Logs::LogGroup": "LogGroupName",
        }.get(resource["Type"])
        if name_property is None or name_property not in props:
            raise TemplateError(f"{logical_id} has no explicit name; the local targets need one")
        return str(self.resolve(props[name_property]))

    def arn(self, logical_id: str) -> str:
        resource_type = self.resources[logical_id]["Type"]
        prefix = f"arn:aws:{{service}}:{self.region}:{self.account_id}"
        # Never created on the local targets, and named by AWS: a stand-in from the logical id.
        if resource_type == "AWS::KMS::Key":
            return prefix.format(service="kms") + f":key/{logical_id}"
        if resource_type == "AWS::IAM::Role":
            return f"arn:aws:iam::{self.account_id}:role/{logical_id}"
        name = self.physical_name(logical_id)
        match resource_type:
            case "AWS::Logs::LogGroup":  # as CloudFormation's GetAtt gives it: every stream of the group
                return prefix.format(service="logs") + f":log-group:{name}:*"
            case "AWS::Kinesis::Stream":
                return prefix.format(service="kinesis") + f":stream/{name}"
            case "AWS::DynamoDB::Table":
                return prefix.format(service="dynamodb") + f":table/{name}"
            case "AWS::SQS::Queue":
                return prefix.format(service="sqs") + f":{name}"
            case "AWS::Serverless::Function" | "AWS::Lambda::Function":
                return prefix.format(service="lambda") + f":function:{name}"
            case "AWS::S3::Bucket":
                return f"arn:aws:s3:::{name}"
        raise TemplateError(f"no ARN rule for {resource_type}")

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": f"{self.parameters.get('Stage', 'local')}-salesstream",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources.get(name)
        if resource is None:
            raise TemplateError(f"Ref to unknown name {name}")
        if resource["Type"] == "AWS::SQS::Queue":
            # Ref of a queue is its URL (SQS's own form on AWS); locally the URL is on the emulator
            base = self.endpoint_url or f"https://sqs.{self.region}.{pseudo['AWS::URLSuffix']}"
            return f"{base}/{self.account_id}/{self.physical_name(name)}"
        return self.physical_name(name)

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsic functions recursively."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            match key:
                case "Ref":
                    return self._ref(arg)
                case "Fn::Sub":
                    return self._sub(arg)
                case "Fn::GetAtt":
                    logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                    if attribute == "Arn":
                        return self.arn(logical_id)
                    if attribute == "QueueName":
                        return self.physical_name(logical_id)
                    if attribute == "StreamArn":
                        # AWS names the stream with a label of its creation time; the template
                        # cannot know it (the runtime asks DescribeTable): every stream of it
                        return self.arn(logical_id) + "/stream/*"
                    raise TemplateError(f"GetAtt {logical_id}.{attribute} is not supported locally")
                case "Fn::Join":
                    separator, items = arg
                    return separator.join(str(item) for item in self.resolve(items))
                case "Fn::Select":
                    index, items = arg
                    return self.resolve(items)[int(self.resolve(index))]
                case "Fn::If":
                    condition, when_true, when_false = arg
                    return self.resolve(when_true if self.condition(condition) else when_false)
                case "Fn::Equals":
                    left, right = self.resolve(arg)
                    return str(left) == str(right)
                case "Fn::Not":
                    return not self.resolve(arg[0])
        return {key: self.resolve(item) for key, item in value.items()}

    def condition(self, name: str) -> bool:
        conditions = self.document.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(conditions[name]))

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _included(self, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    def included(self, logical_id: str) -> bool:
        """Whether CloudFormation creates the resource with these parameters (its Condition)."""
        return self._included(self.resources[logical_id])

    def properties(self, logical_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(self.resources[logical_id].get("Properties", {}))
        return resolved

    # typed views -------------------------------------------------------------------------

    def streams(self) -> list[StreamSpec]:
        specs = []
        for lid, res in self._of_type("AWS::Kinesis::Stream").items():
            if not self._included(res):
                continue
            props = self.properties(lid)
            specs.append(
                StreamSpec(
                    logical_id=lid,
                    name=props["Name"],
                    shard_count=int(props.get("ShardCount", 1)),
                    retention_hours=int(props.get("RetentionPeriodHours", 24)),
                    encrypted="StreamEncryption" in props,
                )
            )
        return specs

    def tables(self) -> list[TableSpec]:
        specs = []
        for lid, res in self._of_type("AWS::DynamoDB::Table").items():
            if not self._included(res):
                continue
            props = self.properties(lid)
            ttl = props.get("TimeToLiveSpecification") or {}
            stream = props.get("StreamSpecification") or {}
            recovery = props.get("PointInTimeRecoverySpecification") or {}
            specs.append(
                TableSpec(
                    logical_id=lid,
                    name=props["TableName"],
                    key_schema=props["KeySchema"],
                    attribute_definitions=props["AttributeDefinitions"],
                    global_secondary_indexes=props.get("GlobalSecondaryIndexes", []),
                    ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled") else None,
                    stream_view_type=stream.get("StreamViewType"),
                    point_in_time_recovery=bool(recovery.get("PointInTimeRecoveryEnabled", False)),
                )
            )
        return specs

    def buckets(self) -> list[BucketSpec]:
        return [
            BucketSpec(lid, self.physical_name(lid))
            for lid, res in self._of_type("AWS::S3::Bucket").items()
            if self._included(res)
        ]

    def queues(self) -> list[QueueSpec]:
        return [
            QueueSpec(lid, self.physical_name(lid))
            for lid, res in self._of_type("AWS::SQS::Queue").items()
            if self._included(res)
        ]

    @cached_property
    def _globals(self) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(self.document.get("Globals", {}).get("Function", {}))
        return resolved

    def functions(self) -> list[FunctionSpec]:
        specs = []
        for lid, res in self._of_type("AWS::Serverless::Function").items():
            if not self._included(res):
                continue
            props = self.properties(lid)
            environment = {
                **self._globals.get("Environment", {}).get("Variables", {}),
                **props.get("Environment", {}).get("Variables", {}),
            }
            kinesis, schedules, http = [], [], []
            tables = self._mapping_resources(lid)
            for event_name, event in props.get("Events", {}).items():
                event_props = event.get("Properties", {})
                raw_props = res["Properties"]["Events"][event_name]["Properties"]
                match event["Type"]:
                    case "Kinesis":
                        kinesis.append(self._kinesis_event(lid, event_name, raw_props, event_props))
                    case "DynamoDB":
                        tables.append(
                            self._kinesis_event(lid, event_name, raw_props, event_props, source="dynamodb")
                        )
                    case "Schedule" | "ScheduleV2":
                        schedules.append(
                            ScheduleEventSpec(
                                event_name,
                                event_props.get("Schedule") or event_props["ScheduleExpression"],
                                enabled=event_props.get(
                                    "Enabled", event_props.get("State", "ENABLED") in (True, "ENABLED")
                                ),
                            )
                        )
                    case "HttpApi":
                        http.append(
                            HttpApiEventSpec(
                                event_name,
                                str(event_props.get("Method", "ANY")).upper(),
                                event_props.get("Path", "/"),
                            )
                        )
            specs.append(
                FunctionSpec(
                    logical_id=lid,
                    name=props.get("FunctionName", lid),
                    handler=props.get("Handler", self._globals.get("Handler", "")),
                    timeout_seconds=int(props.get("Timeout", self._globals.get("Timeout", 3))),
                    memory_mb=int(props.get("MemorySize", self._globals.get("MemorySize", 128))),
                    # a variable set to `!Ref AWS::NoValue` (None here) is left out, as on AWS
                    environment={key: str(value) for key, value in environment.items() if value is not None},
                    kinesis_events=kinesis,
                    schedule_events=schedules,
                    http_events=http,
                    table_events=tables,
                )
            )
        return specs

    def _mapping_resources(self, function_id: str) -> list[KinesisEventSpec]:
        """`AWS::Lambda::EventSourceMapping` resources on a table's stream for the function (a
        resource, unlike a SAM event, can carry a Condition: an optional table's mapping)."""
        specs = []
        for lid, res in self._of_type("AWS::Lambda::EventSourceMapping").items():
            raw = res.get("Properties", {})
            if not self._included(res) or raw.get("FunctionName") != {"Ref": function_id}:
                continue
            source = (raw.get("EventSourceArn") or {}).get("Fn::GetAtt", [None, None])
            if source[1] != "StreamArn":
                raise TemplateError(f"{lid}: only a table's stream (GetAtt <table>.StreamArn) is supported")
            stream_props = {**raw, "Stream": raw["EventSourceArn"]}
            specs.append(
                self._kinesis_event(function_id, lid, stream_props, self.properties(lid), source="dynamodb")
            )
        return specs

    def function(self, logical_id: str) -> FunctionSpec:
        for spec in self.functions():
            if spec.logical_id == logical_id:
                return spec
        raise TemplateError(f"no function {logical_id} in the template")

    def _kinesis_event(
        self,
        function_id: str,
        event_name: str,
        raw_props: Mapping[str, Any],
        props: Mapping[str, Any],
        *,
        source: str = "kinesis",
    ) -> KinesisEventSpec:
        # The stream is referenced with !GetAtt X.Arn (a table's: X.StreamArn); read the logical
        # id before resolution.
        raw_stream = raw_props["Stream"]
        stream_id = (raw_stream.get("Fn::GetAtt") or [raw_stream.get("Ref")])[0]
        if stream_id not in self.resources:
            raise TemplateError(f"{function_id}.{event_name}: stream must reference a template resource")
        on_failure = None
        destination = props.get("DestinationConfig", {}).get("OnFailure", {})
        if destination:
            raw_destination = raw_props["DestinationConfig"]["OnFailure"]["Destination"]
            on_failure = (raw_destination.get("Fn::GetAtt") or [raw_destination.get("Ref")])[0]
        spec = KinesisEventSpec(
            name=event_name,
            stream_logical_id=stream_id,
            starting_position=props["StartingPosition"],
            batch_size=int(props.get("BatchSize", 100)),
            maximum_batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            tumbling_window_seconds=int(props.get("TumblingWindowInSeconds", 0)),
            parallelization_factor=int(props.get("ParallelizationFactor", 1)),
            bisect_batch_on_function_error=bool(props.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            on_failure_queue_logical_id=on_failure,
            filter_patterns=[
                pattern if isinstance(pattern := f["Pattern"], dict) else json.loads(pattern)
                for f in props.get("FilterCriteria", {}).get("Filters", [])
            ],
            enabled=bool(props.get("Enabled", True)),
            source=source,
        )
        if spec.tumbling_window_seconds and spec.parallelization_factor != 1:
            # Not on the AWS pages, but reported by users and tooling: treat it as a rule.
            raise TemplateError(
                f"{function_id}.{event_name}: a tumbling window needs ParallelizationFactor 1"
            )
        return spec
