"""Least privilege, derived from the code: every role and managed policy of the deployed template
grants exactly what its code calls (declared in salesstream/deploy/permissions.py and checked
against the source) plus what its event source mappings need, and nothing that can never be
least privilege (wildcard actions, `*` resources, AWS managed policies)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from salesstream.deploy import permissions
from salesstream.deploy.calls import calls_in, calls_of, dynamic_lookups
from salesstream.deploy.imports import closure, source_file
from salesstream.deploy.permissions import Access, code_problems, code_roots, policy_problems
from salesstream.deploy.sam import transform
from salesstream.deploy.template import Template, load_template_document

DOCUMENT = load_template_document()
AGGREGATOR = "consumers.speed.handler"
HANDLERS = {AGGREGATOR, "consumers.archive.handler", "consumers.batch.handler", "consumers.serving.handler"}


def problems_of(document: dict[str, Any]) -> list[str]:
    return policy_problems(Template(document), Template(transform(document)))


def statements(document: dict[str, Any], role: str = "AggregatorRole") -> list[dict[str, Any]]:
    policy = document["Resources"][role]["Properties"]["Policies"][0]
    return policy["PolicyDocument"]["Statement"]


def statement(document: dict[str, Any], sid: str, role: str = "AggregatorRole") -> dict[str, Any]:
    (found,) = [s for s in statements(document, role) if s.get("Sid") == sid]
    return found


@pytest.fixture
def document() -> dict[str, Any]:
    return copy.deepcopy(DOCUMENT)


def test_every_role_and_managed_policy_grants_exactly_what_its_code_needs() -> None:
    assert problems_of(copy.deepcopy(DOCUMENT)) == []


def test_the_declared_calls_are_the_calls_in_the_code() -> None:
    template = Template(DOCUMENT)
    assert set(code_roots(template)) == {*HANDLERS, "producer"}
    assert code_problems(code_roots(template)) == []


def test_the_aggregator_grants_follow_from_its_calls_and_its_mapping() -> None:
    template = Template(DOCUMENT)
    grants = {
        (g.action, g.resource.split(":")[-1])
        for g in permissions.expected_grants(template, "AggregatorFunction")
    }
    assert ("dynamodb:PutItem", "table/dev-salesstream-aggregates") in grants  # TransactWriteItems, per item
    assert ("dynamodb:BatchWriteItem", "table/dev-salesstream-quarantine") in grants
    assert ("kinesis:GetRecords", "stream/dev-salesstream-orders") in grants  # the event source mapping
    assert ("kms:Decrypt", "key/OrdersKey") in grants  # implied: GetRecords on a stream with our key
    assert ("sqs:SendMessage", "dev-salesstream-consumer-failures") in grants
    assert not any(action.startswith("dynamodb:Scan") or action == "s3:DeleteObject" for action, _ in grants)


def test_an_extra_action_is_more_than_the_code_needs(document: dict[str, Any]) -> None:
    statement(document, "PersistSegments")["Action"].append("dynamodb:Scan")
    (problem,) = problems_of(document)
    assert problem.startswith("AggregatorFunction grants more than its code needs: dynamodb:Scan on ")


def test_a_missing_statement_is_less_than_the_code_needs(document: dict[str, Any]) -> None:
    statements(document).remove(statement(document, "ReadDedupLog"))
    (problem,) = problems_of(document)
    assert problem.startswith("AggregatorFunction lacks what its code needs: s3:GetObject on arn:aws:s3:::")
    assert problem.endswith("/dedup/*")


def test_a_wider_resource_or_a_dropped_condition_is_caught(document: dict[str, Any]) -> None:
    statement(document, "ReadDedupLog")["Resource"] = {"Fn::Sub": "${ArchiveBucket.Arn}/*"}
    del statement(document, "ListDedupLog")["Condition"]
    problems = problems_of(document)
    assert len(problems) == 4
    assert any(
        "more" in p and "s3:GetObject" in p and p.endswith("/*") and "/dedup/" not in p for p in problems
    )
    assert any("more" in p and "s3:ListBucket" in p and " if " not in p for p in problems)
    assert any("lacks" in p and 's3:prefix":"dedup/*' in p for p in problems)


def test_wildcards_are_refused_even_when_they_cover_the_need(document: dict[str, Any]) -> None:
    statement(document, "Quarantine")["Action"] = "dynamodb:*"
    statement(document, "GiveUpToTheFailureQueue")["Resource"] = "*"
    problems = problems_of(document)
    assert "AggregatorRole/aggregator: wildcard action dynamodb:*" in problems
    assert "AggregatorRole/aggregator: sqs:SendMessage on '*'" in problems


def test_a_function_on_a_sam_generated_role_is_refused(document: dict[str, Any]) -> None:
    # SAM's own role would attach AWSLambdaKinesisExecutionRole: kinesis:* reads on every stream
    function = document["Resources"]["AggregatorFunction"]["Properties"]
    del function["Role"]
    function["Policies"] = [{"DynamoDBCrudPolicy": {"TableName": {"Ref": "AggregatesTable"}}}]
    problems = "\n".join(problems_of(document))
    assert "service-role/AWSLambdaKinesisExecutionRole is not from this template" in problems
    assert "role AggregatorRole belongs to no function" in problems
    assert "AggregatorFunction grants more than its code needs: dynamodb:Scan on" in problems


def test_the_producer_policy_needs_the_stream_key(document: dict[str, Any]) -> None:
    policy = document["Resources"]["ProducerPolicy"]["Properties"]["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "EncryptOrders"]
    (problem,) = problems_of(document)
    assert problem.startswith("ProducerPolicy lacks what its code needs: kms:GenerateDataKey on ")


def test_with_the_aws_managed_key_no_kms_grant_is_needed(document: dict[str, Any]) -> None:
    document["Resources"]["OrdersStream"]["Properties"]["StreamEncryption"]["KeyId"] = "alias/aws/kinesis"
    problems = problems_of(document)
    assert all("grants more" in p for p in problems)
    # every reader of the stream (two mappings, the snapshot's probe) and the producers
    assert sorted((p.split()[0], p.split(": ")[1].split(" on ")[0]) for p in problems) == [
        ("AggregatorFunction", "kms:Decrypt"),
        ("ArchiverFunction", "kms:Decrypt"),
        ("ProducerPolicy", "kms:GenerateDataKey"),
        ("SnapshotFunction", "kms:Decrypt"),
    ]


def test_the_snapshot_probes_the_orders_tables_stream_only_with_the_table_source_on(
    document: dict[str, Any],
) -> None:
    on_parameters = {"Stage": "ci", "OrdersTableSource": "on"}
    on, off = Template(DOCUMENT, on_parameters), Template(DOCUMENT, {"Stage": "ci"})
    table, stream = on.arn("OrdersTable"), on.arn("OrdersTable") + "/stream/*"
    table_grants = {
        ("dynamodb:DescribeTable", table),
        ("dynamodb:DescribeStream", stream),
        ("dynamodb:GetShardIterator", stream),
        ("dynamodb:GetRecords", stream),
    }
    grants = {(g.action, g.resource) for g in permissions.expected_grants(on, "SnapshotFunction")}
    assert table_grants <= grants
    assert not any(
        ":dynamodb:" in g.resource and "order-items" in g.resource
        for g in permissions.expected_grants(off, "SnapshotFunction")
    )
    # and the template grants exactly that: a probe action taken away is missed
    probe = document["Resources"]["SnapshotOrdersTablePolicy"]["Properties"]["PolicyDocument"]["Statement"][1]
    probe["Action"].remove("dynamodb:GetRecords")
    (problem,) = policy_problems(
        Template(document, on_parameters), Template(transform(document, on_parameters), on_parameters)
    )
    assert problem == f"SnapshotFunction lacks what its code needs: dynamodb:GetRecords on {stream}"
    # with the table off, the policy (and its Condition) leaves the role as it was
    assert (
        policy_problems(
            Template(document, {"Stage": "ci"}),
            Template(transform(document, {"Stage": "ci"}), {"Stage": "ci"}),
        )
        == []
    )


def test_a_new_function_must_declare_its_calls(document: dict[str, Any]) -> None:
    newcomer = copy.deepcopy(document["Resources"]["AggregatorFunction"])
    newcomer["Properties"]["Handler"] = "consumers.newcomer.handler.lambda_handler"
    document["Resources"]["NewcomerFunction"] = newcomer
    roots = code_roots(Template(document))
    assert code_problems(roots) == ["consumers.newcomer.handler: declare its AWS calls in CODE_ACCESS"]


def test_every_new_function_is_held_to_the_rules(document: dict[str, Any]) -> None:
    """The batch and serving functions as they were first merged: SAM policy templates (an AWS
    managed policy and wide grants) and no log group of their own."""
    api = document["Resources"]["ApiFunction"]["Properties"]
    del api["Role"], api["LoggingConfig"]
    api["Policies"] = [{"DynamoDBReadPolicy": {"TableName": {"Ref": "AggregatesTable"}}}]
    problems = "\n".join(problems_of(document))
    assert "ApiFunction: give it a log group (LoggingConfig.LogGroup)" in problems
    assert (
        "ApiFunctionRole: managed policy arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecution"
        in problems
    )
    assert "ApiFunction grants more than its code needs: dynamodb:Scan on" in problems
    assert "ApiFunction lacks what its code needs: s3:GetObject on" in problems
    assert "role ApiRole belongs to no function" in problems


def test_an_undeclared_call_and_an_uncalled_declaration_are_both_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = [a for a in permissions.CODE_ACCESS[AGGREGATOR] if a.call != "dynamodb.get_item"]
    declared.append(Access("dynamodb.scan", on=("AggregatesTable",)))
    monkeypatch.setitem(permissions.CODE_ACCESS, AGGREGATOR, tuple(declared))
    # the line the message names is the scan's own finding, not pinned here: code moves
    (get_item,) = [c for c in calls_in("consumers.speed.segments") if c.method == "get_item"]
    source = source_file("consumers.speed.segments").read_text().splitlines()
    assert ".get_item(" in source[get_item.line - 1]
    assert code_problems([AGGREGATOR]) == [
        f"{AGGREGATOR}: get_item (consumers.speed.segments:{get_item.line}) is not declared"
        " (one of ['dynamodb.get_item'])",
        f"{AGGREGATOR}: declares dynamodb.scan, which its code never calls",
    ]


# --- the scan itself, on a package of its own -----------------------------------------------------


def write(root: Path, module: str, source: str) -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_the_scan_follows_run_time_imports_and_finds_paginators_and_waiters(tmp_path: Path) -> None:
    write(tmp_path, "consumers.__init__", "")
    write(
        tmp_path,
        "consumers.fake",
        "from typing import TYPE_CHECKING\n"
        "from consumers import helper\n"
        "if TYPE_CHECKING:\n"
        "    from consumers import typing_only\n"
        "def run(client, text):\n"
        "    client.get_paginator('list_shards').paginate(StreamName='s')\n"
        "    client.get_waiter('table_exists').wait(TableName='t')\n"
        "    client.send_message(QueueUrl='q', MessageBody='m')\n"
        "    getattr(client, 'delete_item')(TableName='t', Key={})\n"
        "    return text.split()\n",
    )
    write(tmp_path, "consumers.helper", "def later():\n    from .deep import store\n    return store\n")
    write(tmp_path, "consumers.deep", "def store(s3):\n    s3.put_object(Bucket='b', Key='k', Body=b'')\n")
    write(tmp_path, "consumers.typing_only", "def never(dynamodb):\n    dynamodb.scan(TableName='t')\n")

    modules = closure(["consumers.fake"], tmp_path)
    assert modules == ["consumers", "consumers.deep", "consumers.fake", "consumers.helper"]
    found = {(call.method, str(op)) for call in calls_of(modules, tmp_path) for op in call.operations}
    assert found == {
        ("list_shards", "kinesis.list_shards"),
        ("table_exists", "dynamodb.describe_table"),
        ("send_message", "sqs.send_message"),
        ("put_object", "s3.put_object"),
        ("delete_item", "dynamodb.delete_item"),
    }
    assert dynamic_lookups(modules, tmp_path) == []


def test_a_call_by_a_computed_name_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "consumers.__init__", "")
    write(
        tmp_path,
        "consumers.fake",
        "def write(client, operation):\n    getattr(client, operation)(TableName='t')\n",
    )
    assert dynamic_lookups(["consumers.fake"], tmp_path) == ["consumers.fake:2"]
