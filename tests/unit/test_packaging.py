"""What goes into a function's package: the handler's own modules and deploy/requirements.txt,
which must be exactly what that code imports (with every dependency, at the versions the tests
run with), minus the SDK the Lambda runtime provides."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from salesstream.deploy.imports import closure, third_party
from salesstream.deploy.package import (
    REQUIREMENTS,
    WHEEL_PLATFORMS,
    PackagingError,
    architecture,
    compile_bytecode,
    handler_module,
    interpreter_tag,
    runtime,
)
from salesstream.deploy.template import Template

TEMPLATE = Template.load()
HANDLERS = sorted({handler_module(TEMPLATE, f.logical_id) for f in TEMPLATE.functions()})
# The python3.11 runtime's own SDK (AWS Lambda Developer Guide, "Building Lambda functions with
# Python": the runtime includes the AWS SDK for Python, boto3) and what boto3 requires.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
LAMBDA_ENVIRONMENT = {
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "extra": "",
}


def pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
            assert pin is not None, f"not an exact pin in {REQUIREMENTS.name}: {line!r}"
            name, version = pin.groups()
            pins[canonicalize_name(name)] = version
    return pins


def with_dependencies(names: set[str]) -> set[str]:
    """The distributions and, recursively, what they require on Lambda (markers evaluated)."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(LAMBDA_ENVIRONMENT):
                pending.append(requirement.name)
    return found


def test_the_requirements_are_what_the_handlers_import_and_nothing_else() -> None:
    distributions = metadata.packages_distributions()
    imported = {dist for top in third_party(closure(HANDLERS)) for dist in distributions[top]}
    needed = with_dependencies(imported) - RUNTIME_PROVIDED
    assert set(pinned()) == needed


def test_the_pins_are_the_versions_the_tests_run_with() -> None:
    assert pinned() == {name: metadata.version(name) for name in pinned()}


def test_a_handler_packs_no_local_tooling() -> None:
    for handler in HANDLERS:
        modules = closure([handler])
        assert handler in modules
        tooling = [
            m for m in modules if m.startswith("salesstream.") and not m.startswith("salesstream.core")
        ]
        assert tooling == [], handler  # the core only: not even the botocore config lives outside consumers
        assert not third_party(modules) & {"moto", "localstack_client", "rich", "yaml", "pytest"}


def test_functions_get_wheels_for_their_architecture() -> None:
    for function in TEMPLATE.functions():
        assert WHEEL_PLATFORMS[architecture(TEMPLATE, function.logical_id)] == "manylinux2014_aarch64"


# --- the bytecode shipped with the package --------------------------------------------------------

# A pyc's header: magic, flags, then the source's hash. Flags 0b01: hash-based, source unchecked.
UNCHECKED_HASH_FLAGS = 0b01


def pyc_flags(pyc: Path) -> int:
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


def import_value(root: Path) -> subprocess.CompletedProcess[str]:
    """`shop.prices.VALUE` imported as Lambda imports it: a bare interpreter, nothing written."""
    probe = "import sys; sys.path.insert(0, sys.argv[1]); import shop.prices; print(shop.prices.VALUE)"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", probe, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def a_package(root: Path) -> list[Path]:
    (root / "shop").mkdir(parents=True)
    sources = [root / "shop" / "__init__.py", root / "shop" / "prices.py", root / "top.py"]
    for source in sources:
        source.write_text('VALUE = "as built"\n')
    return sources


def test_the_runtime_names_the_interpreter_tag() -> None:
    for function in TEMPLATE.functions():
        assert runtime(TEMPLATE, function.logical_id) == "python3.11"
    assert interpreter_tag("python3.11") == "cpython-311"
    assert interpreter_tag("python3.12") == "cpython-312"
    for not_python in ("nodejs20.x", "python3", "provided.al2023"):
        with pytest.raises(PackagingError, match=re.escape(not_python)):
            interpreter_tag(not_python)


def test_every_source_gets_unchecked_hash_bytecode_under_pycache(tmp_path: Path) -> None:
    sources = a_package(tmp_path)
    tag = sys.implementation.cache_tag
    compiled = compile_bytecode(tmp_path, tag)
    assert compiled.skipped == ""
    assert sorted(compiled.compiled) == sorted(sources)
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert pyc.is_file(), pyc
        assert pyc_flags(pyc) == UNCHECKED_HASH_FLAGS, pyc
    assert compiled.summary() == f"3 modules compiled ({tag}, unchecked hash)"


def test_another_runtime_version_gets_no_bytecode_and_says_so(tmp_path: Path) -> None:
    a_package(tmp_path)
    other = "cpython-312" if sys.implementation.cache_tag != "cpython-312" else "cpython-313"
    compiled = compile_bytecode(tmp_path, other)
    assert compiled.compiled == []
    assert other in compiled.skipped
    assert sys.implementation.cache_tag in compiled.skipped
    assert compiled.summary().startswith("no bytecode: ")
    assert list(tmp_path.rglob("*.pyc")) == []


def test_a_source_that_does_not_compile_stops_the_build(tmp_path: Path) -> None:
    a_package(tmp_path)
    (tmp_path / "shop" / "broken.py").write_text("def (:\n")
    with pytest.raises(PackagingError, match=r"broken\.py does not compile"):
        compile_bytecode(tmp_path, sys.implementation.cache_tag)


def test_the_shipped_bytecode_is_imported_without_reading_the_source(tmp_path: Path) -> None:
    """With unchecked-hash bytecode, a source edited after the build is not even read: the
    import runs the bytecode, compiles nothing and (under -B, as on a read-only /var/task)
    writes nothing."""
    sources = a_package(tmp_path)
    compile_bytecode(tmp_path, sys.implementation.cache_tag)
    before = sorted(tmp_path.rglob("*"))
    for source in sources:
        source.write_text('VALUE = "the source, read"\n')
    shipped = import_value(tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.strip() == "as built"
    assert sorted(tmp_path.rglob("*")) == before
    # the control: without the bytecode, the same import compiles the source
    for cache in tmp_path.rglob("__pycache__"):
        for pyc in cache.iterdir():
            pyc.unlink()
    compiled_here = import_value(tmp_path)
    assert compiled_here.stdout.strip() == "the source, read", compiled_here.stderr
