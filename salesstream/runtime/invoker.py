"""Runs a function's handler in this process, the way Lambda runs it in a sandbox.

- The handler is found by its template `Handler` path ("package.module.function") or given as
  a callable (reference handlers in tests).
- It gets a Lambda-like context: aws_request_id, function_name, function_version,
  invoked_function_arn, memory_limit_in_mb, log_group_name, log_stream_name and
  get_remaining_time_in_millis() counting down from the function's Timeout.
- One invocation at a time per function by default, as in one warm sandbox: a handler written
  for Lambda may keep module-level state that is not thread-safe. `sandboxes` lets up to that
  many run at once (Lambda runs one per shard, each in a sandbox of its own; in-process they
  share the handler's module, so only for handlers that are thread-safe).
- The function's environment is set in the process while it runs (and while its handler is
  imported, see runtime.py), then the process's own is restored: salesstream.runtime.environment.
- A wall-clock guard: the handler runs in a daemon thread; if it has not returned when its
  Timeout is up, the invocation has failed (as on Lambda). Python cannot kill the thread: it
  is left to finish in the background and its late result is ignored (logged); it runs on
  without its environment.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from salesstream.runtime.environment import function_environment_set
from salesstream.runtime.log import logger
from salesstream.runtime.model import HandlerImportError

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True, slots=True)
class Returned:
    value: Any


@dataclass(frozen=True, slots=True)
class Raised:
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    seconds: float


InvocationResult = Returned | Raised | TimedOut


def resolve_handler(path: str, function: str) -> Handler:
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise HandlerImportError(f"{function}: Handler {path!r} is not 'module.function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any failure while importing user code is this error
        raise HandlerImportError(
            f"{function}: cannot import its handler {path}: {type(error).__name__}: {error}"
        ) from error
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError(f"{function}: {module_name} has no callable {attribute!r} (Handler {path})")
    return handler


class FunctionInvoker:
    def __init__(
        self,
        handler: Handler,
        *,
        function_name: str,
        function_arn: str,
        memory_mb: int,
        timeout_seconds: float,
        sandboxes: int = 1,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.handler = handler
        self.environment = dict(environment or {})
        self.function_name = function_name
        self.function_arn = function_arn
        self.memory_mb = memory_mb
        self.timeout_seconds = timeout_seconds
        self._sandbox = threading.BoundedSemaphore(sandboxes)

    def invoke(self, event: dict[str, Any]) -> InvocationResult:
        with self._sandbox:
            context = LambdaContext(
                self.function_name, self.function_arn, self.memory_mb, self.timeout_seconds
            )
            outcome: list[InvocationResult] = []

            def run() -> None:
                try:
                    outcome.append(Returned(self.handler(event, context)))
                except BaseException as error:  # noqa: BLE001 - any error of a handler is a function error
                    logger.exception(
                        "handler raised",
                        extra={"function": self.function_name, "request_id": context.aws_request_id},
                    )
                    outcome.append(Raised(type(error).__name__, str(error)))

            worker = threading.Thread(target=run, name=f"invoke-{self.function_name}", daemon=True)
            with function_environment_set(self.environment):
                worker.start()
                worker.join(self.timeout_seconds)
            if worker.is_alive() or not outcome:
                logger.error(
                    "handler timed out; it keeps running in the background and its result is ignored",
                    extra={"function": self.function_name, "timeout_seconds": self.timeout_seconds},
                )
                return TimedOut(self.timeout_seconds)
            return outcome[0]
