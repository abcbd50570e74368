"""The process environment is written in one place: salesstream/runtime/environment.py holds a
function's variables while it is imported and runs, and restores the process's own after. Code
that needs a function to see a variable passes it (`LocalHttpApi.from_template(environment=)`,
the runtime's invokers) instead of setting it for the whole process."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("consumers", "producer", "salesstream", "load_tests")
THE_ONE_PLACE = "salesstream/runtime/environment.py"
_WRITING_METHODS = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"}
# Process-wide on purpose, for a whole command: the endpoint every boto3 client of the process
# uses (`Endpoint.activate`), and the demo's and the load test's quiet handlers.
WHOLE_PROCESS = {
    "salesstream/emulator/targets.py",
    "salesstream/cli/commands/demo.py",
    "load_tests/command.py",
    "load_tests/bench_table_source.py",
}


def _is_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def environment_writes(source: str) -> list[int]:
    """Lines that write os.environ (item assignment or deletion, a writing method) or call
    os.putenv / os.unsetenv."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            targets = []
        if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
            lines.append(getattr(node, "lineno", 0))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called = node.func
            if (_is_environ(called.value) and called.attr in _WRITING_METHODS) or (
                isinstance(called.value, ast.Name)
                and called.value.id == "os"
                and called.attr in ("putenv", "unsetenv")
            ):
                lines.append(node.lineno)
    return sorted(lines)


def writers() -> dict[str, list[int]]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = environment_writes(path.read_text(encoding="utf-8"))
            if lines:
                found[path.relative_to(ROOT).as_posix()] = lines
    return found


def test_only_the_runtimes_environment_module_writes_the_process_environment() -> None:
    assert set(writers()) - {THE_ONE_PLACE} == WHOLE_PROCESS


def test_every_kind_of_write_is_found() -> None:
    source = """
import os
os.environ["A"] = "1"
os.environ.update({"B": "2"})
os.environ.pop("C", None)
os.environ.setdefault("D", "4")
del os.environ["E"]
os.putenv("F", "6")
value = os.environ.get("G")
known = "H" in os.environ
"""
    assert environment_writes(source) == [3, 4, 5, 6, 7, 8]
