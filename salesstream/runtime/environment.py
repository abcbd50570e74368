"""A function's environment, set in this process only while the function needs it.

Handlers read their settings from the process environment (powertools when a module creates its
logger, pydantic-settings when a handler builds its clients on first use), as they do on Lambda.
In-process, several invocations run at once on shard threads, so the variables are held, not
swapped: the first scope to need a variable sets it, the last to leave restores what the
process had before. Two scopes that want different values for one variable at the same time
cannot share one process environment: that is an error, never a silent last-writer-wins.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from salesstream.runtime.model import RuntimeConfigError


@dataclass
class _Held:
    value: str
    before: str | None  # the process's own value, restored when the last holder leaves
    holders: int


_lock = threading.Lock()
_held: dict[str, _Held] = {}


@contextmanager
def function_environment_set(variables: Mapping[str, str]) -> Iterator[None]:
    """`variables` in os.environ for the duration of the block (nestable, thread-safe)."""
    _hold(variables)
    try:
        yield
    finally:
        _release(variables)


def _hold(variables: Mapping[str, str]) -> None:
    with _lock:
        for name, value in variables.items():
            held = _held.get(name)
            if held is not None and held.value != value:
                raise RuntimeConfigError(
                    f"{name} is set to {held.value!r} for a function running now and {value!r} for "
                    "another: one process cannot give each its own value at the same time"
                )
        for name, value in variables.items():
            if name in _held:
                _held[name].holders += 1
            else:
                _held[name] = _Held(value, os.environ.get(name), 1)
                os.environ[name] = value


def _release(variables: Mapping[str, str]) -> None:
    with _lock:
        for name in variables:
            held = _held[name]
            held.holders -= 1
            if held.holders:
                continue
            del _held[name]
            if held.before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = held.before
