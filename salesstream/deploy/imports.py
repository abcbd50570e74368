"""What importing a module executes, read from the source (nothing is imported).

The closure of a handler module is every first-party module that importing it runs: the module,
its parent packages, and recursively what they import, at module level or inside a function.
Imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

FIRST_PARTY: Final = frozenset({"consumers", "producer", "salesstream"})
SOURCE_ROOT: Final = Path(__file__).resolve().parents[2]  # the folder holding salesstream/


class ModuleNotFound(LookupError):
    """A first-party module that is imported has no source file."""


def source_file(module: str, root: Path = SOURCE_ROOT) -> Path:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise ModuleNotFound(f"no source for {module} under {root}")


def is_package(module: str, root: Path = SOURCE_ROOT) -> bool:
    return source_file(module, root).name == "__init__.py"


@dataclass
class _Imports(ast.NodeVisitor):
    module: str
    package: bool
    with_type_checking: bool = False
    names: set[str] = field(default_factory=set)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        skipped = type_checking and not self.with_type_checking
        for child in node.orelse if skipped else [*node.body, *node.orelse]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolved against this module's package
            parts = self.module.split(".")
            anchor = parts if self.package else parts[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        self.names.add(base)
        # `from package import module` imports the module too
        self.names.update(f"{base}.{alias.name}" for alias in node.names)


def direct_imports(module: str, root: Path = SOURCE_ROOT, *, with_type_checking: bool = False) -> set[str]:
    """What the module imports; `with_type_checking` adds the imports under `if TYPE_CHECKING:`
    (they never run, but they are a dependency of the module's design all the same)."""
    path = source_file(module, root)
    visitor = _Imports(module, path.name == "__init__.py", with_type_checking)
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.names


def _exists(module: str, root: Path) -> bool:
    try:
        source_file(module, root)
    except ModuleNotFound:
        return False
    return True


def closure(roots: Iterable[str], root: Path = SOURCE_ROOT) -> list[str]:
    """Every first-party module that importing `roots` runs, sorted."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        for name in direct_imports(module, root):
            # `from x import name` names an attribute as often as a module: keep real modules only
            if name.split(".")[0] in FIRST_PARTY and _exists(name, root):
                pending.append(name)
    return sorted(seen)


def third_party(modules: Iterable[str], root: Path = SOURCE_ROOT) -> set[str]:
    """Top-level names of what these modules import from outside the project and the stdlib."""
    found: set[str] = set()
    for module in modules:
        for name in direct_imports(module, root):
            top = name.split(".")[0]
            if top and top not in FIRST_PARTY and top not in sys.stdlib_module_names:
                found.add(top)
    return found
