"""Faults on real boto3 clients, through botocore's event hooks: the requests go to the real
endpoint (or are answered as the service would answer them) and the caller's code handles what
comes back, exactly as it would handle AWS.

- PutRecords entries failed: chosen entries are taken out of the request (so they are not
  stored) and put back into the 200 answer with an `ErrorCode`, as Kinesis reports a partial
  failure.
- A write stored but its response lost: the request goes through, then the call raises
  botocore's `ReadTimeoutError` (PutRecords calls, and DynamoDB writes to the chosen tables).
- DynamoDB writes throttled: answered `ProvisionedThroughputExceededException` or
  `ThrottlingException` (HTTP 400) before they are sent; botocore's own retries see the answer.
- TransactWriteItems cancelled: `TransactionCanceledException` with one `CancellationReasons`
  entry per item (one item throttled or in conflict, the others `None`), nothing applied.

    faults = ClientFaults(draws, put_entry_failure=0.05, ...)
    faults.attach(client)           # one client
    with faults.installed():        # every botocore session created inside (boto3.session.Session())
        ...

`installed()` is the seam for the Lambda handlers: they create their clients once per process,
from a new `boto3.session.Session()`, on their first invocation; botocore registers its built-in
handlers on every new session, so hooks added to that list before the first invocation reach
the handlers' clients.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from botocore import handlers
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from load_tests.faults.draw import Draws
from load_tests.faults.kinds import Injected

PUT_ENTRY_ERROR: Final = "ProvisionedThroughputExceededException"
THROTTLE_CODES: Final = ("ProvisionedThroughputExceededException", "ThrottlingException")
CANCEL_CODES: Final = ("ThrottlingError", "TransactionConflict")
DYNAMODB_WRITES: Final = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)
_TARGET_PREFIX: Final = "DynamoDB_20120810."
_DYNAMODB_ERROR_TYPE: Final = "com.amazonaws.dynamodb.v20120810#"
_JSON_10: Final = {"Content-Type": "application/x-amz-json-1.0"}
_PUT: Final = "load_tests.faults.put"  # request context: (entries asked for, positions refused)
_WRITE: Final = "load_tests.faults.write"  # request context: the write's draw key


class _Body:
    """What AWSResponse reads an answer's bytes from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _answer(url: str, status: int, document: dict[str, Any], headers: dict[str, str]) -> AWSResponse:
    return AWSResponse(url, status, headers, _Body(json.dumps(document).encode()))


class ClientFaults:
    def __init__(
        self,
        draws: Draws,
        *,
        put_entry_failure: float = 0.0,
        lost_response: float = 0.0,
        dynamodb_throttle: float = 0.0,
        transaction_cancel: float = 0.0,
        tables: frozenset[str] | None = None,
    ) -> None:
        """`tables`: the DynamoDB tables whose writes are faulted (None: every table)."""
        self.draws = draws
        self.put_entry_failure, self.lost_response = put_entry_failure, lost_response
        self.dynamodb_throttle, self.transaction_cancel = dynamodb_throttle, transaction_cancel
        self.tables = tables
        self.injected: Counter[Injected] = Counter()
        self._lock = threading.Lock()
        # (event, handler, where): botocore runs handlers of one event in order; the refused
        # entries are put back into the answer first, so every later reader (a request meter)
        # sees the answer the caller gets, and a response is lost last, after they read it
        self._specs = [
            ("before-parameter-build.kinesis.PutRecords", self._refuse_entries, None),
            ("before-call.kinesis.PutRecords", self._answer_when_all_refused, None),
            ("after-call.kinesis.PutRecords", self._report_refused, handlers.REGISTER_FIRST),
            ("after-call.kinesis.PutRecords", self._lose_put_response, handlers.REGISTER_LAST),
            ("before-parameter-build.dynamodb", self._note_write, None),
            ("before-send.dynamodb", self._throttle_or_cancel, None),
            ("after-call.dynamodb", self._lose_write_response, handlers.REGISTER_LAST),
        ]

    # --- installing -------------------------------------------------------------------------

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        for event, handler, where in self._specs:
            if where is handlers.REGISTER_FIRST:
                events.register_first(event, handler)
            elif where is handlers.REGISTER_LAST:
                events.register_last(event, handler)
            else:
                events.register(event, handler)
        return client

    def detach(self, client: Any) -> Any:
        for event, handler, _ in self._specs:
            client.meta.events.unregister(event, handler)
        return client

    @contextmanager
    def installed(self) -> Iterator[ClientFaults]:
        """On every botocore session created inside (and so every client made from one)."""
        specs = [
            (event, handler) if where is None else (event, handler, where)
            for event, handler, where in self._specs
        ]
        handlers.BUILTIN_HANDLERS.extend(specs)
        try:
            yield self
        finally:
            for spec in specs:
                handlers.BUILTIN_HANDLERS.remove(spec)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {kind.value: n for kind, n in sorted(self.injected.items())}

    def _count(self, kind: Injected, n: int = 1) -> None:
        with self._lock:
            self.injected[kind] += n

    # --- PutRecords -------------------------------------------------------------------------

    def _refuse_entries(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        records = params.get("Records", [])
        refused = {
            position
            for position, record in enumerate(records)
            if self.draws.hit(Injected.PUT_ENTRY_FAILED, _entry_key(record), self.put_entry_failure)
        }
        context[_PUT] = (len(records), refused)
        context[_WRITE] = b"".join(_entry_key(record) for record in records)
        if refused and len(refused) < len(records):  # (PutRecords takes at least one entry)
            params["Records"] = [record for position, record in enumerate(records) if position not in refused]

    def _answer_when_all_refused(
        self, context: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        count, refused = context.get(_PUT, (0, set()))
        if not refused or len(refused) < count:
            return None
        # every entry refused: nothing is sent; the answer is built by _report_refused
        return AWSResponse("", 200, {}, _Body(b"")), {"FailedRecordCount": 0, "Records": []}

    def _report_refused(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        count, refused = context.get(_PUT, (0, set()))
        if not refused or "Records" not in parsed:
            return
        stored = iter(parsed["Records"])
        parsed["Records"] = [
            {"ErrorCode": PUT_ENTRY_ERROR, "ErrorMessage": "Rate exceeded for shard (injected)"}
            if position in refused
            else next(stored)
            for position in range(count)
        ]
        parsed["FailedRecordCount"] = parsed.get("FailedRecordCount", 0) + len(refused)
        self._count(Injected.PUT_ENTRY_FAILED, len(refused))

    def _lose_put_response(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        count, refused = context.get(_PUT, (0, set()))
        if len(refused) == count or getattr(http_response, "status_code", 500) >= 300:
            return  # nothing was stored
        if self.draws.hit(Injected.PUT_RESPONSE_LOST, context.get(_WRITE, b""), self.lost_response):
            self._count(Injected.PUT_RESPONSE_LOST)
            raise ReadTimeoutError(endpoint_url=getattr(http_response, "url", "") or "kinesis")

    # --- DynamoDB ---------------------------------------------------------------------------

    def _targeted(self, operation: str, params: dict[str, Any]) -> bool:
        if operation not in DYNAMODB_WRITES:
            return False
        if self.tables is None:
            return True
        return not self.tables.isdisjoint(_tables_of(operation, params))

    def _note_write(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._targeted(model.name, params):
            context[_WRITE] = repr(params).encode()

    def _throttle_or_cancel(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).removeprefix(_TARGET_PREFIX)
        if operation not in DYNAMODB_WRITES or not (self.dynamodb_throttle or self.transaction_cancel):
            return None
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        params = json.loads(body or b"{}")
        if not self._targeted(operation, params):
            return None
        if self.draws.hit(Injected.DYNAMODB_THROTTLED, body, self.dynamodb_throttle):
            self._count(Injected.DYNAMODB_THROTTLED)
            code = THROTTLE_CODES[int(self.draws.uniform("throttle-code", body) * len(THROTTLE_CODES))]
            document = {"__type": _DYNAMODB_ERROR_TYPE + code, "message": "Throughput exceeded (injected)"}
            return _answer(request.url, 400, document, _JSON_10)
        if operation == "TransactWriteItems" and self.draws.hit(
            Injected.TRANSACTION_CANCELLED, body, self.transaction_cancel
        ):
            self._count(Injected.TRANSACTION_CANCELLED)
            items = len(params.get("TransactItems", []))
            culprit = int(self.draws.uniform("cancel-item", body) * items)
            code = CANCEL_CODES[int(self.draws.uniform("cancel-code", body) * len(CANCEL_CODES))]
            reasons = [{"Code": code if n == culprit else "None"} for n in range(items)]
            cancelled: dict[str, Any] = {
                "__type": _DYNAMODB_ERROR_TYPE + "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons [{code}]",
                "CancellationReasons": reasons,
            }
            return _answer(request.url, 400, cancelled, _JSON_10)
        return None

    def _lose_write_response(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        key = context.get(_WRITE)
        if key is None or getattr(http_response, "status_code", 500) >= 300:
            return
        if self.draws.hit(Injected.DYNAMODB_RESPONSE_LOST, key, self.lost_response):
            self._count(Injected.DYNAMODB_RESPONSE_LOST)
            raise ReadTimeoutError(endpoint_url=getattr(http_response, "url", "") or "dynamodb")


def _entry_key(record: dict[str, Any]) -> bytes:
    data = record.get("Data", b"")
    data = data if isinstance(data, bytes) else str(data).encode()
    return str(record.get("PartitionKey", "")).encode() + b"\0" + data


def _tables_of(operation: str, params: dict[str, Any]) -> set[str]:
    if operation == "TransactWriteItems":
        return {
            body.get("TableName", "") for item in params.get("TransactItems", []) for body in item.values()
        }
    if operation == "BatchWriteItem":
        return set(params.get("RequestItems", {}))
    return {str(params.get("TableName", ""))}
