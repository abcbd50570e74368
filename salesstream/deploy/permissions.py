"""What each piece of deployed code calls on AWS, and exactly the IAM it needs for it.

`CODE_ACCESS` declares, per code root (the handler module of a function in the template, or the
`producer` package behind the POS policy), every boto3 call the code makes and on which
template resource. `code_problems` checks the declaration against the source (`calls`: nothing
called is undeclared, nothing declared is uncalled). `expected_grants` derives from it and the
template what a role must allow, no more, no less:

- a function: its log group; for each Kinesis event source mapping what Lambda needs to read
  the stream (`ESM_STREAM_ACTIONS`), decrypt it and report to the on-failure queue; its calls;
- a managed policy (`MANAGED_POLICIES`): its code's calls and the extras declared with it.

`policy_problems` compares that with what every role and managed policy of the SAM-transformed
template grants (what CloudFormation creates), and names what may never be granted: an action
with a wildcard, a `*` resource (unless AWS allows nothing else), an AWS managed policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from salesstream.deploy.calls import calls_of, dynamic_lookups, operations_by_method
from salesstream.deploy.imports import closure

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from salesstream.deploy.template import Template


@dataclass(frozen=True)
class Access:
    """One boto3 call and the template resources it acts on."""

    call: str  # "<client>.<method>", as in the code: "s3.put_object"
    # logical ids, an S3 key pattern after a slash ("ArchiveBucket/dedup/*"), another ARN than
    # the resource's own after a dot ("OrdersTable.StreamArn"), or "*" for an action that
    # supports no resource-level permission (STAR_RESOURCE_ONLY). A resource whose Condition
    # leaves it out of the template is granted nothing.
    on: tuple[str, ...]
    actions: tuple[str, ...] = ()  # the IAM actions it needs, when they are not its own name
    condition: Mapping[str, Any] | None = None
    why: str = ""

    @property
    def service(self) -> str:
        return self.call.partition(".")[0]

    @property
    def method(self) -> str:
        return self.call.partition(".")[2]

    def iam_actions(self) -> tuple[str, ...]:
        if self.actions:
            return self.actions
        (operation,) = [op for op in operations_by_method()[self.method] if op.service == self.service]
        return (f"{self.service}:{operation.name}",)


@dataclass(frozen=True)
class ManagedPolicySpec:
    code: str  # the CODE_ACCESS root whose calls it grants
    extra: tuple[Access, ...] = ()  # granted although that code does not call it, with the reason


# --- the declarations -----------------------------------------------------------------------------

CODE_ACCESS: Final[dict[str, tuple[Access, ...]]] = {
    "consumers.speed.handler": (
        Access(
            "dynamodb.transact_write_items",
            on=("AggregatesTable",),
            # DynamoDB authorises each item of a transaction as its own action (Developer
            # Guide, "Using IAM with DynamoDB transactions"): segment Put, running-total Update
            actions=("dynamodb:PutItem", "dynamodb:UpdateItem"),
        ),
        Access("dynamodb.get_item", on=("AggregatesTable",), why="is a cancelled item this segment's?"),
        Access("dynamodb.batch_write_item", on=("QuarantineTable",)),
        Access("s3.put_object", on=("ArchiveBucket/dedup/*", "ArchiveBucket/quarantine/*")),
        Access("s3.get_object", on=("ArchiveBucket/dedup/*",), why="dedup log catch-up"),
        Access(
            "s3.list_objects_v2",
            on=("ArchiveBucket",),
            actions=("s3:ListBucket",),
            condition={"StringLike": {"s3:prefix": "dedup/*"}},
        ),
        Access("kinesis.list_shards", on=("OrdersStream",), why="parent shards for the dedup catch-up"),
    ),
    "consumers.archive.handler": (
        # one object per invocation, keyed by the batch's first and last position
        Access("s3.put_object", on=("ArchiveBucket/archive/*",)),
        Access(
            "kinesis.list_shards",
            on=("OrdersStream",),
            why="the shard's hash range, in each archive object's header",
        ),
    ),
    "consumers.batch.handler": (
        # the cursor and lease (UpdateItem, PutItem, DeleteItem), the manifest and the
        # reconciliation summary (PutItem); it never reads BatchTable back by Query
        Access("dynamodb.update_item", on=("BatchTable",)),
        Access("dynamodb.put_item", on=("BatchTable",)),
        Access("dynamodb.delete_item", on=("BatchTable",), why="the cursor of a finished snapshot"),
        # the speed side: segments (Query) and running totals (Scan); quarantined records of a
        # differing window (Query) and the counts by reason (Scan)
        Access("dynamodb.query", on=("AggregatesTable", "QuarantineTable")),
        Access("dynamodb.scan", on=("AggregatesTable", "QuarantineTable")),
        Access(
            "s3.get_object",
            on=(
                "ArchiveBucket/archive/*",
                "ArchiveBucket/snapshots/*",
                "ArchiveBucket/dedup/*",  # the speed layer's log, for records the archiver gave up on
                "ArchiveBucket/failures/*",
            ),
        ),
        Access(
            "s3.put_object",
            on=("ArchiveBucket/snapshots/*", "ArchiveBucket/reconciliations/*", "ArchiveBucket/failures/*"),
        ),
        Access(
            "s3.delete_objects",
            on=("ArchiveBucket/snapshots/*",),
            # S3 authorises a multi-object delete key by key as DeleteObject (S3 API Reference,
            # DeleteObjects); only the finished snapshot's work objects are deleted
            actions=("s3:DeleteObject",),
        ),
        Access(
            "s3.list_objects_v2",
            on=("ArchiveBucket",),
            actions=("s3:ListBucket",),
            condition={"StringLike": {"s3:prefix": ["archive/*", "dedup/*", "failures/*", "snapshots/*"]}},
        ),
        # the horizon: the shard list, then a probe after each shard's last archived record
        Access("kinesis.list_shards", on=("OrdersStream",)),
        Access("kinesis.get_shard_iterator", on=("OrdersStream",)),
        Access("kinesis.get_records", on=("OrdersStream",)),
        # the same on the orders table's stream, with the table source on (its current stream
        # from DescribeTable); DynamoDB Streams' actions are in the `dynamodb:` namespace
        Access("dynamodb.describe_table", on=("OrdersTable",), why="the table's LatestStreamArn"),
        Access(
            "dynamodbstreams.describe_stream",
            on=("OrdersTable.StreamArn",),
            actions=("dynamodb:DescribeStream",),
        ),
        Access(
            "dynamodbstreams.get_shard_iterator",
            on=("OrdersTable.StreamArn",),
            actions=("dynamodb:GetShardIterator",),
        ),
        Access(
            "dynamodbstreams.get_records", on=("OrdersTable.StreamArn",), actions=("dynamodb:GetRecords",)
        ),
        # on-failure notices are moved from the queue to failures/ in the bucket
        Access("sqs.receive_message", on=("ConsumerFailuresQueue",)),
        Access("sqs.delete_message", on=("ConsumerFailuresQueue",)),
    ),
    "consumers.serving.handler": (
        # segments and running totals; the newest snapshot and reconciliation items
        Access("dynamodb.query", on=("AggregatesTable", "BatchTable")),
        Access("s3.get_object", on=("ArchiveBucket/snapshots/*", "ArchiveBucket/reconciliations/*")),
        Access("kinesis.list_shards", on=("OrdersStream",), why="which shards' totals and segments"),
        # the orders table's shards (OrdersTableSource=on only): its current stream, then its shards
        Access("dynamodb.describe_table", on=("OrdersTable",)),
        Access(
            "dynamodbstreams.describe_stream",
            on=("OrdersTable/stream/*",),
            actions=("dynamodb:DescribeStream",),
        ),
        Access(
            "cloudwatch.get_metric_data",
            on=("*",),
            why="the aggregator's IteratorAge for /shards on AWS (locally the runtime's stats file)",
        ),
    ),
    "producer": (
        Access("kinesis.put_records", on=("OrdersStream",)),
        Access("kinesis.list_shards", on=("OrdersStream",), why="aggregates are packed per shard"),
    ),
}

MANAGED_POLICIES: Final[dict[str, ManagedPolicySpec]] = {
    "ProducerPolicy": ManagedPolicySpec(
        code="producer",
        extra=(
            Access(
                "kinesis.put_record",
                on=("OrdersStream",),
                why="POS integrations that send one record at a time (other SDKs, the KPL)",
            ),
        ),
    ),
}

# AWS Lambda Developer Guide, "Process Amazon Kinesis Data Streams records with Lambda": what an
# event source mapping needs on the stream (SubscribeToShard only with an enhanced fan-out
# consumer, which no mapping here uses).
ESM_STREAM_ACTIONS: Final = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
# Kinesis Data Streams Developer Guide, "Permissions to use user-generated KMS keys": writing to a
# stream encrypted with such a key needs kms:GenerateDataKey on it, reading needs kms:Decrypt.
# (The AWS managed key alias/aws/kinesis needs no IAM permission.)
STREAM_KEY_ACTIONS: Final = {
    "kinesis:PutRecord": "kms:GenerateDataKey",
    "kinesis:PutRecords": "kms:GenerateDataKey",
    "kinesis:GetRecords": "kms:Decrypt",
}
# AWS Lambda Developer Guide, "Process DynamoDB records with Lambda" (execution role permissions).
ESM_TABLE_STREAM_ACTIONS: Final = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
)
LOG_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")
# Actions that support no resource-level permission (the Service Authorization Reference lists
# no resource type for them; CloudWatch's permissions reference grants its metric reads on "*"):
# only these may be granted on "*".
STAR_RESOURCE_ONLY: Final = frozenset(
    {
        "cloudwatch:GetMetricData",
        "cloudwatch:PutMetricData",
        "dynamodb:ListStreams",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
)


class Grant(NamedTuple):
    action: str
    resource: str
    condition: str = ""  # canonical JSON of the statement's Condition

    def __str__(self) -> str:
        return f"{self.action} on {self.resource}" + (f" if {self.condition}" if self.condition else "")


def _canonical(condition: Mapping[str, Any] | None) -> str:
    return json.dumps(condition, sort_keys=True, separators=(",", ":")) if condition else ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _logical_id(reference: Any) -> str | None:
    """The logical id behind `!Ref X` or `!GetAtt X.Attr`, else None."""
    if isinstance(reference, dict) and len(reference) == 1:
        ((key, value),) = reference.items()
        if key == "Ref":
            return str(value)
        if key == "Fn::GetAtt":
            return str((value if isinstance(value, list) else value.split("."))[0])
    return None


# --- what a piece of code needs ----------------------------------------------------------------


def _logical_id_of(item: str) -> str:
    return item.partition("/")[0].partition(".")[0]


def _arn(template: Template, item: str) -> str:
    if item == "*":
        return item
    resource, slash, key_pattern = item.partition("/")
    logical_id, _, attribute = resource.partition(".")
    arn = str(template.resolve({"Fn::GetAtt": [logical_id, attribute or "Arn"]}))
    return f"{arn}/{key_pattern}" if slash else arn


def stream_key(template: Template, stream_id: str) -> str | None:
    """The template's KMS key the stream is encrypted with, if any."""
    encryption = template.resources[stream_id].get("Properties", {}).get("StreamEncryption") or {}
    key = _logical_id(encryption.get("KeyId"))
    return key if key and template.resources.get(key, {}).get("Type") == "AWS::KMS::Key" else None


def _with_stream_keys(template: Template, grants: set[Grant]) -> set[Grant]:
    streams = {
        template.arn(lid): lid
        for lid, res in template.resources.items()
        if res["Type"] == "AWS::Kinesis::Stream"
    }
    implied = set()
    for grant in grants:
        key = stream_key(template, streams[grant.resource]) if grant.resource in streams else None
        if key and grant.action in STREAM_KEY_ACTIONS:
            implied.add(Grant(STREAM_KEY_ACTIONS[grant.action], template.arn(key)))
    return grants | implied


def access_grants(template: Template, accesses: Iterable[Access]) -> set[Grant]:
    grants = {
        Grant(action, _arn(template, item), _canonical(access.condition))
        for access in accesses
        for action in access.iam_actions()
        for item in access.on
        if item == "*" or template.included(_logical_id_of(item))
    }
    return _with_stream_keys(template, grants)


def handler_module(template: Template, function_id: str) -> str:
    return template.function(function_id).handler.rpartition(".")[0]


def expected_grants(template: Template, function_id: str) -> set[Grant]:
    """Exactly what the function's role must allow (`template`: the SAM template)."""
    properties = template.resources[function_id]["Properties"]
    log_group = _logical_id(properties.get("LoggingConfig", {}).get("LogGroup"))
    grants = {Grant(action, template.arn(log_group)) for action in LOG_ACTIONS} if log_group else set()
    for mapping in template.function(function_id).stream_events:
        if mapping.from_table:
            table_stream = template.resolve({"Fn::GetAtt": [mapping.stream_logical_id, "StreamArn"]})
            grants |= {Grant(action, table_stream) for action in ESM_TABLE_STREAM_ACTIONS}
            grants.add(Grant("dynamodb:ListStreams", "*"))
        else:
            stream = template.arn(mapping.stream_logical_id)
            grants |= {Grant(action, stream) for action in ESM_STREAM_ACTIONS}
        if mapping.on_failure_queue_logical_id:
            grants.add(Grant("sqs:SendMessage", template.arn(mapping.on_failure_queue_logical_id)))
    grants = _with_stream_keys(template, grants)
    return grants | access_grants(template, CODE_ACCESS.get(handler_module(template, function_id), ()))


# --- what the template grants ----------------------------------------------------------------


@dataclass
class Granted:
    grants: set[Grant] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def add(self, where: str, statements: Iterable[Mapping[str, Any]]) -> None:
        for statement in statements:
            if statement.get("Effect") == "Deny":
                continue  # a Deny only narrows what is allowed
            if "NotAction" in statement or "NotResource" in statement:
                self.problems.append(f"{where}: NotAction/NotResource grant everything else")
                continue
            condition = _canonical(statement.get("Condition"))
            for action in _as_list(statement["Action"]):
                if "*" in action:
                    self.problems.append(f"{where}: wildcard action {action}")
                for resource in _as_list(statement["Resource"]):
                    if resource == "*" and action not in STAR_RESOURCE_ONLY:
                        self.problems.append(f"{where}: {action} on '*'")
                    self.grants.add(Grant(action, str(resource), condition))


def _statements(template: Template, logical_id: str) -> list[Mapping[str, Any]]:
    document = template.resolve(template.resources[logical_id]["Properties"]["PolicyDocument"])
    return _as_list(document["Statement"])


def granted(cfn: Template, role_id: str) -> Granted:
    """What a role of the transformed template allows: its inline policies, the template's
    policies attached to it, and the managed policies it names (an AWS managed one is a problem:
    its content is not in the template and not least privilege)."""
    role = cfn.resources[role_id]["Properties"]
    result = Granted()
    for policy in role.get("Policies", []):
        document = cfn.resolve(policy["PolicyDocument"])
        result.add(f"{role_id}/{cfn.resolve(policy['PolicyName'])}", _as_list(document["Statement"]))
    for arn in role.get("ManagedPolicyArns", []):
        managed = _logical_id(arn)
        if managed in cfn.resources:
            result.add(f"{role_id}/{managed}", _statements(cfn, managed))
        else:
            result.problems.append(f"{role_id}: managed policy {cfn.resolve(arn)} is not from this template")
    for lid, resource in cfn.resources.items():
        if not cfn.included(lid):
            continue  # its Condition is false for these parameters: CloudFormation leaves it out
        attached = [_logical_id(r) for r in resource.get("Properties", {}).get("Roles", [])]
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and role_id in attached:
            result.add(f"{role_id}/{lid}", _statements(cfn, lid))
    return result


def _difference(what: str, expected: set[Grant], allowed: Granted) -> list[str]:
    problems = list(allowed.problems)
    problems += [f"{what} grants more than its code needs: {g}" for g in sorted(allowed.grants - expected)]
    problems += [f"{what} lacks what its code needs: {g}" for g in sorted(expected - allowed.grants)]
    return problems


def policy_problems(template: Template, cfn: Template) -> list[str]:
    """Every difference between what the roles and managed policies grant (`cfn`: the transformed
    template) and what the code needs (`template`: the SAM template); empty when exact."""
    problems: list[str] = []
    functions = [lid for lid, r in cfn.resources.items() if r["Type"] == "AWS::Lambda::Function"]
    roles_used: dict[str, str] = {}
    for function_id in functions:
        role_id = _logical_id(cfn.resources[function_id]["Properties"].get("Role"))
        if role_id not in cfn.resources or cfn.resources[role_id]["Type"] != "AWS::IAM::Role":
            problems.append(f"{function_id}: give it a role of its own (Role: !GetAtt <Role>.Arn)")
            continue
        if role_id in roles_used:
            problems.append(f"{function_id} shares {role_id} with {roles_used[role_id]}")
        roles_used[role_id] = function_id
        if not template.resources[function_id]["Properties"].get("LoggingConfig"):
            problems.append(f"{function_id}: give it a log group (LoggingConfig.LogGroup)")
        problems += _difference(function_id, expected_grants(template, function_id), granted(cfn, role_id))
    for lid, resource in cfn.resources.items():
        if resource["Type"] == "AWS::IAM::Role" and lid not in roles_used:
            problems.append(f"role {lid} belongs to no function: declare what it is for")
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and not resource["Properties"].get("Roles"):
            spec = MANAGED_POLICIES.get(lid)
            if spec is None:
                problems.append(f"managed policy {lid} is not in MANAGED_POLICIES")
                continue
            expected = access_grants(template, (*CODE_ACCESS[spec.code], *spec.extra))
            allowed = Granted()
            allowed.add(lid, _statements(cfn, lid))
            problems += _difference(lid, expected, allowed)
    return problems


# --- the declarations against the code ---------------------------------------------------------


def code_roots(template: Template) -> list[str]:
    roots = {handler_module(template, f.logical_id) for f in template.functions()}
    return sorted(roots | {spec.code for spec in MANAGED_POLICIES.values()})


def code_problems(roots: Iterable[str]) -> list[str]:
    """Every boto3 call in a root's code that its declaration lacks, and every declared call that
    its code never makes."""
    problems = []
    for root in roots:
        if root not in CODE_ACCESS:
            problems.append(f"{root}: declare its AWS calls in CODE_ACCESS")
            continue
        declared = {access.call for access in CODE_ACCESS[root]}
        modules = closure([root])
        problems += [
            f"{root}: getattr with a computed name ({where}) hides which call it makes: spell the call out"
            for where in dynamic_lookups(modules)
        ]
        calls = calls_of(modules)
        matched: set[str] = set()
        for call in calls:
            meant = {str(operation) for operation in call.operations} & declared
            if not meant:
                problems.append(
                    f"{root}: {call} is not declared (one of {sorted(map(str, call.operations))})"
                )
            matched |= meant
        problems += [
            f"{root}: declares {name}, which its code never calls" for name in sorted(declared - matched)
        ]
    return problems
