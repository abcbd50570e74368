"""Makes moto's Kinesis reshard the way Kinesis does, its DynamoDB transactions cost what they
touch, its DynamoDB Streams answer at a record's cost and roll a shard on request, for the
embedded emulator.

moto 5.2.5 gets resharding wrong in three ways that a consumer of a resharded stream sees:
- routing a record looks at every shard, closed ones included, and the closed parent of a split
  comes first, so after SplitShard every new record still lands in the *closed* parent;
- SplitShard moves the parent's records out and puts them back in (new arrival times, and with
  the routing above, back into the parent); MergeShards copies both parents' records into the
  child, so a consumer that reads parents before children (as Lambda does) reads them twice;
- a key equal to a shard's EndingHashKey belongs to no shard (the range test is exclusive).

And moto 5.2.5's TransactWriteItems backs itself up for a rollback by deep-copying the whole
table once per item of the transaction: a transaction of 100 items on a table of a few thousand
items (the aggregates table under load) copies it 100 times, seconds of CPU per persisted window
segment, so the emulator, not the pipeline, was what a load test measured. The fix backs up only
the items the transaction touches and puts exactly those back when it is cancelled, and runs one
transaction at a time (moto does not isolate concurrent ones; a rollback could undo another's
write).

Every answer moto gives also runs a regular expression over the whole body to stamp a request id
into XML; for a JSON answer (a GetRecords of several megabytes) it finds nothing, at about a
tenth of the emulator's CPU under load. The fix skips the scan when the body has no <RequestId>.

And moto 5.2.5 spends 2 ms (before the fixes below) on each guarded update of a transaction:
it parses the UpdateExpression twice and the ConditionExpression three times per item, runs
validators that are quadratic in the number of actions, and walks the tree with a slow generic
walker. EXPRESSION_PATCHES keep moto's code paths and their order of checks and only stop
redoing work whose answer cannot differ (2.5x less per item; load_tests/bench_emulator.py
measures each against moto as shipped). They are applied only on the moto version they were
read against (pinned in pyproject.toml; a test ties the two).

moto 5.2.5's DynamoDB Streams answers GetRecords through its generic, model-driven serializer,
which walks every typed attribute of every image member by member and guesses each member's key
several ways: about 3.5 ms of CPU per record returned, so a page of 1,000 records takes seconds
and the table source stopped near 35 events/s. The records moto keeps are already the API's
JSON (typed attributes included, only the creation time is a datetime), so GetRecords is answered
with json.dumps of them, inside moto's own envelope (its headers, its other members). The same
patch gives GetRecords the 1 MB page DynamoDB Streams has and moto lacks. Scan and Query went
through the same serializer item by item (a scan of a few thousand order items took longer than
a client's 30 s read timeout on the loaded machine): their items are plain JSON too, and are
answered the same way; an answer holding anything else (a binary attribute) keeps moto's path.

And moto never rolls a table stream's shard (DynamoDB does, about every 4 hours): `roll_stream`
closes the open shard (it gets an EndingSequenceNumber, is read to its end, then GetRecords
answers no NextShardIterator) and opens a child (ParentShardId: the closed one) that takes the
new records. The embedded server offers it at ROLL_STREAM_PATH for the fault run.

`apply()` patches those methods of moto's models in this process; it is idempotent.
The embedded emulator applies it in-process, and `python -m salesstream.emulator.moto_fixes` runs moto's
server with it in a child process.
"""

from __future__ import annotations

import calendar
import copy
import functools
import json
import logging
import pickle
import sys
import threading
import time
import types
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import moto
import moto.dynamodb.models as dynamodb_models
from moto.core.common_types import TYPE_RESPONSE
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, BaseResponse
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.parsing import validators
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator, dynamodbstreams_backends
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.kinesis.models import Shard, Stream
from moto.moto_api._internal import urls as moto_api_urls
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.utilities.utils import md5_hash

_APPLIED = False
logger = logging.getLogger(__name__)


def _open_shard_for_key(self: Stream, partition_key: str, explicit_hash_key: str) -> Shard | None:
    # keep moto's own argument validation, then route among open shards with inclusive bounds
    Stream._moto_get_shard_for_key(self, partition_key, explicit_hash_key)  # type: ignore[attr-defined]
    if explicit_hash_key:
        key = int(explicit_hash_key)
    else:
        key = int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
    return next(
        (s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash),
        None,
    )


def _keep_records(original: Any) -> Any:
    """Wrap a reshard operation so that records stay where Kinesis keeps them: in the parents."""

    def reshard(self: Stream, *args: Any, **kwargs: Any) -> None:
        before = {shard_id: shard.records for shard_id, shard in self.shards.items()}
        original(self, *args, **kwargs)
        for shard_id, shard in self.shards.items():
            shard.records = before.get(shard_id, OrderedDict())

    return reshard


# --- DynamoDB: a transaction backs up the items it touches, not whole tables ------------------

Backup = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _touched(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Backup]:
    """A copy of every item the transaction names (None: not there yet), before it runs."""
    backups: list[Backup] = []
    for entry in transact_items:
        for operation in entry.values():
            table = (
                backend.tables.get(str(operation.get("TableName"))) if isinstance(operation, dict) else None
            )
            key = (operation.get("Key") or operation.get("Item")) if table is not None else None
            if table is None or not key or table.hash_key_attr not in key:
                continue  # moto refuses it before changing anything
            range_attr = table.range_key_attr
            if range_attr is not None and range_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[range_attr]) if range_attr is not None else None
            backups.append(
                (table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value)))
            )
    return backups


def _restore(backups: list[Backup]) -> None:
    for table, hash_value, range_value, item in reversed(backups):  # the oldest copy wins
        if range_value is None:
            if item is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = item  # type: ignore[assignment]  # moto's own (mis)annotation
        elif item is None:
            table.items.get(hash_value, {}).pop(range_value, None)
        else:
            table.items[hash_value][range_value] = item


def _not_copying_tables(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    # moto's own backup of whole tables becomes a no-op; _touched keeps what a rollback needs
    return obj if isinstance(obj, Table) else copy.deepcopy(obj, memo)


# moto's server answers in threads and runs a transaction item by item: two transactions on one
# item at once (segments of several shards adding to one store's total, as mixed-key aggregates
# make them) would interleave, and a cancelled one would put back copies taken before the other
# wrote, undoing its ADD. DynamoDB isolates transactions (serializable): so does this lock.
_TRANSACTIONS_LOCK: Final = threading.Lock()


def _item_backups(original: Any) -> Any:
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        with _TRANSACTIONS_LOCK:
            backups = _touched(self, transact_items)
            try:
                original(self, transact_items)
            except Exception:
                _restore(backups)  # moto "restored" the very same table objects: put the items back
                raise

    return transact_write_items


def _enrich_without_scanning_json(original: Any) -> Any:
    def enrich(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            headers, _ = original(headers, "")  # the headers as moto sets them; nothing to stamp
            return headers, body
        return original(headers, body)

    return staticmethod(enrich)


# --- DynamoDB Streams: GetRecords in plain JSON, its 1 MB page, and shard rolls ------------------

PAGE_BYTES: Final = 1024 * 1024  # "GetRecords can retrieve a maximum of 1 MB of data or 1000 records"
ROLL_STREAM_PATH: Final = "/moto-api/salesstream/roll-table-stream"

# a write's record and a roll must not interleave: a record added to a shard that was just
# closed would lie past its EndingSequenceNumber
_STREAM_LOCK: Final = threading.Lock()


def _ending(shard: StreamShard) -> int | None:
    """The closed shard's EndingSequenceNumber (None: the shard is open)."""
    return getattr(shard, "salesstream_ending", None)


def _stream_shards(table: Table) -> list[StreamShard]:
    """The table's stream shards, oldest first: the closed ones, then the open one."""
    closed: list[StreamShard] = getattr(table, "salesstream_closed_shards", [])
    return [*closed, table.stream_shard] if table.stream_shard is not None else list(closed)


def roll_stream(table: Table) -> tuple[str, str]:
    """Close the table's open stream shard and open its child, as DynamoDB does by itself
    (DynamoDB Developer Guide, Streams: shards are ephemeral, a parent's records come before its
    child's). Returns (parent shard id, child shard id)."""
    with _STREAM_LOCK:
        parent = table.stream_shard
        if parent is None:
            raise JsonRESTError("ValidationException", f"table {table.name} has no stream to roll")
        child = StreamShard(table.account_id, table)
        child.id = f"shardId-{time.time_ns() // 1_000_000:020d}-{uuid.uuid4().hex[:8]}"
        last = parent.starting_sequence_number + len(parent.items) - 1
        # an empty parent still ends (at its start, which no record has); the child starts after
        parent.salesstream_ending = max(last, parent.starting_sequence_number)  # type: ignore[attr-defined]
        child.starting_sequence_number = parent.salesstream_ending + 1  # type: ignore[attr-defined]
        child.salesstream_parent = parent.id  # type: ignore[attr-defined]
        table.salesstream_closed_shards = [*getattr(table, "salesstream_closed_shards", []), parent]  # type: ignore[attr-defined]
        table.stream_shard = child
    return parent.id, child.id


def _add_to_the_open_shard(original: Any) -> Any:
    def add(self: StreamShard, old: Item | None, new: Item | None) -> None:
        with _STREAM_LOCK:
            # a write that found the shard before a roll closed it goes to the child
            shard = self.table.stream_shard if _ending(self) is not None else self
            original(shard, old, new)

    return add


def _shard_json(original: Any) -> Any:
    def to_json(self: StreamShard) -> dict[str, Any]:
        shard: dict[str, Any] = original(self)
        ending, parent = _ending(self), getattr(self, "salesstream_parent", None)
        if ending is not None:
            shard["SequenceNumberRange"]["EndingSequenceNumber"] = str(ending)
        if parent is not None:
            shard["ParentShardId"] = parent
        return shard

    return to_json


def _describe_every_shard(original: Any) -> Any:
    def describe_stream(self: DynamoDBStreamsBackend, arn: str) -> dict[str, Any]:
        stream: dict[str, Any] = original(self, arn)
        stream["Shards"] = [shard.to_json() for shard in _stream_shards(self._get_table_from_arn(arn))]
        return stream

    return describe_stream


def _iterator_on_any_shard(
    self: DynamoDBStreamsBackend,
    arn: str,
    shard_id: str,
    shard_iterator_type: str,
    sequence_number: str | None = None,
) -> ShardIterator:
    # moto's own asserts that the shard is the table's one (open) shard
    table = self._get_table_from_arn(arn)
    shard = next((s for s in _stream_shards(table) if s.id == shard_id), None)
    if shard is None:
        raise JsonRESTError("ResourceNotFoundException", f"shard {shard_id} is not in stream {arn}")
    iterator = ShardIterator(self, shard, shard_iterator_type, sequence_number)  # type: ignore[arg-type]
    self.shard_iterators[iterator.arn] = iterator
    return iterator


def _page(iterator: ShardIterator, limit: int = 1000) -> dict[str, Any]:
    """ShardIterator.get with DynamoDB Streams' 1 MB page (a record's SizeBytes, as moto counts
    it; the first record always comes) and a closed shard's end (no NextShardIterator once it
    is read past its EndingSequenceNumber)."""
    shard = iterator.stream_shard
    start = iterator.sequence_number - shard.starting_sequence_number
    if start < 0:
        raise JsonRESTError("TrimmedDataAccessException", "the iterator points before the shard's start")
    records: list[dict[str, Any]] = []
    size = 0
    for stored in shard.items[start : start + limit]:
        record = stored.to_json()
        size += record["dynamodb"]["SizeBytes"]
        if records and size > PAGE_BYTES:
            break
        records.append(record)
    if records:
        after = int(records[-1]["dynamodb"]["SequenceNumber"])
        following = ShardIterator(iterator.streams_backend, shard, "AFTER_SEQUENCE_NUMBER", after)
    else:
        following = ShardIterator(
            iterator.streams_backend, shard, "AT_SEQUENCE_NUMBER", iterator.sequence_number
        )
    ending = _ending(shard)
    if ending is not None and following.sequence_number > ending:
        return {"Records": records}  # a closed shard read to its end
    iterator.streams_backend.shard_iterators[following.arn] = following
    return {"NextShardIterator": following.arn, "Records": records}


class _NotPlainJson(TypeError):
    """A value json.dumps cannot write as moto's serializer would (bytes: base64 blobs)."""


def _plain_only(value: Any) -> Any:
    raise _NotPlainJson(type(value).__name__)


def _epoch_seconds(value: Any) -> float:
    # the JSON protocol's timestamp, as moto's serializer writes it: epoch seconds, to the ms
    if isinstance(value, datetime):
        whole = calendar.timegm(value.utctimetuple())
        return whole + (value.microsecond // 1000) / 1000.0 if value.microsecond else whole
    raise _NotPlainJson(type(value).__name__)


def _get_records_as_json(self: DynamoDBStreamsHandler) -> TYPE_RESPONSE:
    limit = self._get_param("Limit")
    page = self.backend.get_records(self._get_param("ShardIterator"), 1000 if limit is None else limit)
    # moto's envelope (status, headers, NextShardIterator) for no records, then the records as
    # they are kept: already the API's JSON
    status, headers, body = self.serialized(ActionResult({**page, "Records": []}))
    answer = json.loads(body)
    answer["Records"] = page["Records"]
    try:
        return status, headers, json.dumps(answer, default=_epoch_seconds, separators=(",", ":"))
    except _NotPlainJson:
        return self.serialized(ActionResult(page))  # a binary attribute: moto's serializer


def _items_as_json(original: Any) -> Any:
    def serialized(self: DynamoHandler, action_result: ActionResult) -> TYPE_RESPONSE:
        result = action_result.result
        if not isinstance(result, dict) or not isinstance(result.get("Items"), list) or not result["Items"]:
            return original(self, action_result)
        items = result["Items"]
        # moto's envelope for no items (status, headers, Count, LastEvaluatedKey, capacity), then
        # the items, already the API's typed attributes after moto's dynamo_to_dict
        status, headers, body = original(self, ActionResult({**result, "Items": []}))
        answer = json.loads(body)
        answer["Items"] = items
        try:
            return status, headers, json.dumps(answer, separators=(",", ":"), default=_plain_only)
        except _NotPlainJson:
            return original(self, action_result)

    return serialized


def _roll_stream_answer(request: Any, full_url: str, headers: Any) -> tuple[int, dict[str, str], str]:
    """POST ROLL_STREAM_PATH {"TableName", "Region", "AccountId"}: roll that table's stream."""
    asked = json.loads(request.get_data() or b"{}")
    try:
        backend = dynamodbstreams_backends[asked["AccountId"]][asked["Region"]]
        table = backend.dynamodb.get_table(asked["TableName"])
        parent, child = roll_stream(table)
    except KeyError as missing:
        return 400, {"Content-Type": "application/json"}, json.dumps({"message": f"missing {missing}"})
    except JsonRESTError as refused:
        return refused.code, {"Content-Type": "application/json"}, refused.get_body()
    return 200, {"Content-Type": "application/json"}, json.dumps({"ParentShardId": parent, "ShardId": child})


# --- DynamoDB: update and condition expressions cost what they say, not what moto redoes -------
# moto 5.2.5 spends 3-7 ms of CPU on one guarded update of a transaction. It tokenizes and parses
# the UpdateExpression twice (the response handler, then update_item), lexes the
# ConditionExpression three times, deep-copies the parsed tree before validating it, and walks
# that tree once per validator (ten of them) with a walker that rebuilds its dispatch table and
# asks an abstract base class for every node. Each patch below keeps moto's code and its order
# of checks; it only stops redoing work whose result cannot differ.

EXPRESSIONS_WRITTEN_FOR: Final = "5.2.5"  # the moto these patches were read against (see pyproject)
_CACHED_EXPRESSIONS: Final = 4096  # distinct expression strings kept (a pipeline uses a handful)


@functools.lru_cache(maxsize=_CACHED_EXPRESSIONS)
def _parsed_update(expression: str) -> bytes:
    return pickle.dumps(_ORIGINAL_MAKE(expression), pickle.HIGHEST_PROTOCOL)


def _make_update_expression(cls: type, expression: str) -> Any:
    # UpdateExpressionParser.make: a pure function of the string (a parse error raises, and is
    # not cached). Every caller gets a tree of its own, unpickled, so no caller sees another's
    # edits (the validator replaces nodes in place).
    return pickle.loads(_parsed_update(expression))  # noqa: S301 - bytes this process pickled


# Conditions parsed for the last few hundred expression dicts, by identity (see _parse_condition)
_RECENT_CONDITIONS: Final[OrderedDict[tuple[str, int, int], tuple[Any, Any, Any, list[str], list[str]]]] = (
    OrderedDict()
)
_RECENT_CONDITIONS_KEPT: Final = 512  # more than the items of the largest transaction (100)
_RECENT_CONDITIONS_LOCK: Final = threading.Lock()  # moto's server answers in threads


def _parse_condition(self: ConditionExpressionParser) -> Any:
    # ConditionExpressionParser.parse: moto parses each item's condition of a transaction three
    # times in one request (the response handler's validation, the check in
    # transact_write_items, update_item), with the very same names and values dicts. The result
    # (a tree of operators, only ever evaluated) is kept for those dicts, found by identity: an
    # entry holds the dicts, so their ids cannot be reused while it is kept.
    names, values = self.expression_attribute_names, self.expression_attribute_values
    if not self.condition_expression:
        return _ORIGINAL_PARSE(self)
    key = (self.condition_expression, id(names), id(values))
    kept = _RECENT_CONDITIONS.get(key)
    if kept is not None and kept[0] is names and kept[1] is values:
        self.expr_attr_names_found.extend(kept[3])
        self.expr_attr_values_found.extend(kept[4])
        return kept[2]
    names_before, values_before = len(self.expr_attr_names_found), len(self.expr_attr_values_found)
    condition = _ORIGINAL_PARSE(self)
    found = (self.expr_attr_names_found[names_before:], self.expr_attr_values_found[values_before:])
    with _RECENT_CONDITIONS_LOCK:
        _RECENT_CONDITIONS[key] = (names, values, condition, *found)
        while len(_RECENT_CONDITIONS) > _RECENT_CONDITIONS_KEPT:
            _RECENT_CONDITIONS.popitem(last=False)
    return condition


# The three validators that read only the tree, the attribute names and the table's keys (not
# the item, not the values); UpdateExpressionValidator runs them first, on the tree as parsed.
_STRUCTURAL: Final = (
    validators.ActionCountValidator,
    validators.OverlappingPathsValidator,
    validators.UpdateHashRangeKeyValidator,
)
_VALID_STRUCTURES: Final[set[tuple[bytes, str, tuple[str, ...]]]] = set()


def _validator_init(
    self: validators.Validator,
    expression: Node,
    expression_attribute_names: dict[str, str],
    expression_attribute_values: dict[str, dict[str, Any]],
    item: Item,
    table: Table,
) -> None:
    # validators.Validator.__init__, with its deep copy of the tree it is about to edit done as
    # a pickle round trip: the same copy (parse nodes define no copy hooks) at a third of the
    # cost, and the pickled tree names the parsed expression for _validate_structure_once.
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    self._salesstream_tree = pickle.dumps(expression, pickle.HIGHEST_PROTOCOL)  # type: ignore[attr-defined]
    self.node_to_validate = pickle.loads(self._salesstream_tree)  # type: ignore[attr-defined]  # noqa: S301


def _validate_structure_once(self: validators.Validator) -> Node:
    # validators.Validator.validate runs every processor over the tree. The structural ones are
    # quadratic in the number of actions (each clause node searches its whole subtree) and
    # answer the same for the same tree, names and table keys: once they have passed for those,
    # they are skipped; the processors that read the item and the values always run.
    key = (
        self._salesstream_tree,  # type: ignore[attr-defined]
        json.dumps(self.expression_attribute_names or {}, sort_keys=True),
        tuple(self.table.table_key_attrs),
    )
    known = key in _VALID_STRUCTURES
    structural_left = sum(isinstance(p, _STRUCTURAL) for p in self.processors)
    node = self.node_to_validate
    for processor in self.processors:
        structural = isinstance(processor, _STRUCTURAL)
        if structural and known:
            continue
        node = processor.traverse(node)
        if structural:
            structural_left -= 1
            if not structural_left:
                if len(_VALID_STRUCTURES) >= _CACHED_EXPRESSIONS:
                    _VALID_STRUCTURES.clear()
                _VALID_STRUCTURES.add(key)
    return node


# (walker class, node class) -> index of the walker's handler for that node class in its
# processing map, _PASS for a node it does not process, _LEAF for a child that is not a node
_HANDLERS: dict[tuple[type, type], int] = {}
_PASS: Final = -1
_LEAF: Final = -2


def _handler_index(walker: DepthFirstTraverser, node: Any) -> int:
    if not isinstance(node, Node):
        return _LEAF
    kinds = tuple(walker._processing_map())
    return next((number for number, kind in enumerate(kinds) if isinstance(node, kind)), _PASS)


def _traverse_node(walker: DepthFirstTraverser, node: Any, child_id: int = -1) -> Any:
    # DepthFirstTraverser.traverse_node_recursively, the same walk (children first, then the
    # first matching handler, the result put in the parent's place), with the handler looked up
    # once per (walker class, node class): every walker's processing map is a literal dict of
    # node classes, so which handler applies depends on nothing else.
    key = (type(walker), type(node))
    index = _HANDLERS.get(key)
    if index is None:
        index = _HANDLERS[key] = _handler_index(walker, node)
    if index == _LEAF:
        return node
    parent_node = node.parent
    if node.children is not None:
        for number, child_node in enumerate(node.children):
            walker.pre_processing_of_child(node, number)
            walker.traverse_node_recursively(child_node, number)
    if index != _PASS:
        node = list(walker._processing_map().values())[index](node)
        node.parent = parent_node
        if parent_node:
            parent_node.children[child_id] = node
    return node


@dataclass(frozen=True)
class Patch:
    owner: Any
    name: str
    replacement: Any


_ORIGINAL_MAKE: Final = UpdateExpressionParser.make
_ORIGINAL_PARSE: Final = ConditionExpressionParser.parse
EXPRESSION_PATCHES: Final = {
    "parse each update expression once": (
        Patch(UpdateExpressionParser, "make", classmethod(_make_update_expression)),
    ),
    "parse a request's condition once": (Patch(ConditionExpressionParser, "parse", _parse_condition),),
    "validate each expression's structure once": (
        Patch(validators.Validator, "__init__", _validator_init),
        Patch(validators.Validator, "validate", _validate_structure_once),
    ),
    "walk parse trees with a dispatch cache": (
        Patch(DepthFirstTraverser, "traverse_node_recursively", _traverse_node),
    ),
}


@contextmanager
def only_expression_patches(names: Iterable[str]) -> Iterator[None]:
    """For benchmarks: within the block, only the named EXPRESSION_PATCHES are in force (the
    others are moto's own code again); on exit, what was in force before is back."""
    wanted = set(names)
    if wanted - EXPRESSION_PATCHES.keys():
        raise ValueError(f"no such expression patch: {sorted(wanted - EXPRESSION_PATCHES.keys())}")
    patches = [(name, patch) for name, group in EXPRESSION_PATCHES.items() for patch in group]
    before = [vars(patch.owner)[patch.name] for _, patch in patches]
    try:
        for name, patch in patches:
            setattr(patch.owner, patch.name, patch.replacement if name in wanted else _ORIGINALS[patch])
        yield
    finally:
        for (_, patch), replaced in zip(patches, before, strict=True):
            setattr(patch.owner, patch.name, replaced)


# moto's own functions, as imported (before apply() replaced them)
_ORIGINALS: Final = {
    patch: vars(patch.owner)[patch.name] for group in EXPRESSION_PATCHES.values() for patch in group
}


def _apply_expression_patches() -> None:
    if moto.__version__ != EXPRESSIONS_WRITTEN_FOR:
        logger.warning(
            "moto %s is not the %s the expression patches were read against: not applied "
            "(the emulator is slower but unchanged)",
            moto.__version__,
            EXPRESSIONS_WRITTEN_FOR,
        )
        return
    for group in EXPRESSION_PATCHES.values():
        for patch in group:
            setattr(patch.owner, patch.name, patch.replacement)


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    shim = types.ModuleType("copy")
    shim.__dict__.update(vars(copy))
    shim.deepcopy = _not_copying_tables  # type: ignore[attr-defined]
    dynamodb_models.copy = shim
    BaseResponse._enrich_response = _enrich_without_scanning_json(BaseResponse._enrich_response)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _item_backups(DynamoDBBackend.transact_write_items)  # type: ignore[method-assign]
    Stream._moto_get_shard_for_key = Stream.get_shard_for_key  # type: ignore[attr-defined]
    Stream.get_shard_for_key = _open_shard_for_key  # type: ignore[method-assign]
    Stream.split_shard = _keep_records(Stream.split_shard)  # type: ignore[method-assign]
    Stream.merge_shards = _keep_records(Stream.merge_shards)  # type: ignore[method-assign]
    _apply_expression_patches()
    DynamoHandler.serialized = _items_as_json(BaseResponse.serialized)  # type: ignore[method-assign]
    apply_stream_patches()
    moto_api_urls.url_paths["{0}" + ROLL_STREAM_PATH + "$"] = _roll_stream_answer
    # werkzeug's handler speaks HTTP/1.0 by default and closes the connection after every answer,
    # so every call of every client paid a new TCP connection (~30% of the runtime's samples).
    # HTTP/1.1 keeps botocore's pooled connections open, as AWS's endpoints do.
    MotoRequestHandler.protocol_version = "HTTP/1.1"
    _APPLIED = True


# moto's own, as imported, for a benchmark's "before"
_ORIGINAL_STREAM_METHODS: Final = {
    (owner, name): vars(owner)[name]
    for owner, name in (
        (DynamoDBStreamsHandler, "get_records"),
        (ShardIterator, "get"),
        (StreamShard, "add"),
        (StreamShard, "to_json"),
        (DynamoDBStreamsBackend, "describe_stream"),
        (DynamoDBStreamsBackend, "get_shard_iterator"),
    )
}


def apply_stream_patches(*, fast_get_records: bool = True) -> None:
    """The DynamoDB Streams patches; `fast_get_records=False` (for a benchmark) answers
    GetRecords with moto's serializer again, the rest (page, rolls) unchanged."""
    original = _ORIGINAL_STREAM_METHODS
    answer = _get_records_as_json if fast_get_records else original[(DynamoDBStreamsHandler, "get_records")]
    DynamoDBStreamsHandler.get_records = answer  # type: ignore[method-assign,assignment]
    ShardIterator.get = _page  # type: ignore[method-assign,assignment]
    StreamShard.add = _add_to_the_open_shard(original[(StreamShard, "add")])  # type: ignore[method-assign]
    StreamShard.to_json = _shard_json(original[(StreamShard, "to_json")])  # type: ignore[method-assign]
    DynamoDBStreamsBackend.describe_stream = _describe_every_shard(  # type: ignore[method-assign]
        original[(DynamoDBStreamsBackend, "describe_stream")]
    )
    DynamoDBStreamsBackend.get_shard_iterator = _iterator_on_any_shard  # type: ignore[method-assign]


if __name__ == "__main__":
    from moto.server import main

    apply()
    # werkzeug logs every request at INFO; formatting thousands a second costs the emulator CPU
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    main(sys.argv[1:])
