"""Makes moto's Kinesis reshard the way Kinesis does, and its DynamoDB transactions cost what
they touch, for the embedded emulator.

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
the items the transaction touches and puts exactly those back when it is cancelled.

Every answer moto gives also runs a regular expression over the whole body to stamp a request id
into XML; for a JSON answer (a GetRecords of several megabytes) it finds nothing, at about a
tenth of the emulator's CPU under load. The fix skips the scan when the body has no <RequestId>.

`apply()` patches those methods of moto's models in this process; it is idempotent.
The embedded emulator applies it in-process, and `python -m salesstream.moto_fixes` runs moto's
server with it in a child process.
"""

from __future__ import annotations

import copy
import sys
import types
from collections import OrderedDict
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.core.responses import BaseResponse
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table
from moto.kinesis.models import Shard, Stream
from moto.utilities.utils import md5_hash

_APPLIED = False


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


def _item_backups(original: Any) -> Any:
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
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
    _APPLIED = True


if __name__ == "__main__":
    import logging

    from moto.server import main

    apply()
    # werkzeug logs every request at INFO; formatting thousands a second costs the emulator CPU
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    main(sys.argv[1:])
