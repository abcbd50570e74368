"""The Lambda package of one function of deploy/template.yaml.

`sam build` runs this for every function through deploy/Makefile (`Metadata: BuildMethod:
makefile`), with the project's virtual environment:

    python -m salesstream.deploy.package AggregatorFunction --out .aws-sam/build/AggregatorFunction

The package holds the first-party modules the function's handler imports (its closure, see
`salesstream.deploy.imports`: no CLI, no emulator, no tests) and deploy/requirements.txt
installed as wheels for the function's architecture (arm64: manylinux aarch64 wheels, so
pydantic-core's compiled part matches Lambda's CPU, not this machine's). boto3 and botocore are
not packed: the python3.11 runtime provides them.

Every `.py` of the package ships with its bytecode, compiled for the template's `Runtime`:
Lambda's /var/task is read-only, so without it every cold start compiles each module it imports.
When the building interpreter is not the runtime's version, the package ships no bytecode (and
`build` says so) rather than bytecode Lambda's interpreter would ignore. Every module, not only
those init imports: which those are can only be found by importing the package, which the arm64
build cannot do here, and a module first imported later (a final window, an error path) would
compile on an invocation's clock; the zip grows by ~2.7 MB (to ~7 MB, of Lambda's 50 MB).
"""

from __future__ import annotations

import argparse
import py_compile
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from salesstream.deploy.imports import SOURCE_ROOT, closure, is_package, source_file
from salesstream.deploy.template import DEFAULT_TEMPLATE, Template

if TYPE_CHECKING:
    from collections.abc import Sequence

REQUIREMENTS: Final = DEFAULT_TEMPLATE.parent / "requirements.txt"
PYTHON_VERSION: Final = "3.11"
# Lambda's arm64 and x86_64 run Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels run there.
WHEEL_PLATFORMS: Final = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
# console scripts of the wheels, and the bytecode pip compiled (checked against mtimes; replaced)
_NOT_PACKED: Final = ("bin", "__pycache__")
# Data files a packed package reads at run time (the API's dashboard page, its vendored chart
# library and its licence), as pyproject.toml's [tool.setuptools.package-data] ships them.
PACKAGE_DATA: Final = ("*.html", "*.json", "*.yaml", "*.js", "*.css", "*.txt")
_RUNTIME: Final = re.compile(r"python(\d+)\.(\d+)")


class PackagingError(RuntimeError):
    """The package could not be built (no wheel for the platform, a missing module, ...)."""


@dataclass(frozen=True)
class Package:
    path: Path
    handler: str
    modules: list[str]  # first-party modules packed
    platform: str
    bytecode: Bytecode | None = None  # what `build` compiled (None: a package not built here)

    def zip(self, destination: Path) -> Path:
        """The package as Lambda receives it (what `sam deploy` uploads)."""
        with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for file in sorted(self.path.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(self.path))
        return destination


@dataclass(frozen=True)
class Bytecode:
    """What `compile_bytecode` did: `compiled` sources, or none and why."""

    tag: str  # the runtime's interpreter tag, as in __pycache__/name.cpython-311.pyc
    compiled: list[Path]
    skipped: str = ""  # why nothing was compiled

    def summary(self) -> str:
        if self.skipped:
            return f"no bytecode: {self.skipped}"
        return f"{len(self.compiled)} modules compiled ({self.tag}, unchecked hash)"


def runtime(template: Template, function: str) -> str:
    raw = template.resources[function].get("Properties", {})
    globals_ = template.document.get("Globals", {}).get("Function", {})
    name = raw.get("Runtime", globals_.get("Runtime"))
    if not isinstance(name, str):
        raise PackagingError(f"{function}: no Runtime in the function or the template's Globals")
    return name


def interpreter_tag(runtime_name: str) -> str:
    """python3.11 -> cpython-311: the tag in the name of the bytecode that runtime reads."""
    match = _RUNTIME.fullmatch(runtime_name)
    if not match:
        raise PackagingError(f"Runtime {runtime_name!r} is not a Python runtime (pythonX.Y)")
    return f"cpython-{match[1]}{match[2]}"


def compile_bytecode(out: Path, tag: str) -> Bytecode:
    """Compile every `.py` under `out` into `__pycache__`, for the interpreter `tag`; nothing if
    this interpreter is not that one (its bytecode would be of another version)."""
    if sys.implementation.cache_tag != tag:
        return Bytecode(tag, [], skipped=f"this interpreter is {sys.implementation.cache_tag}, not {tag}")
    sources = sorted(out.rglob("*.py"))
    for source in sources:
        try:
            # Unchecked hash: Lambda unzips with fixed mtimes into an immutable /var/task, so the
            # bytecode never needs checking against its source (no stat, no hash at import).
            py_compile.compile(
                str(source),
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as error:
            raise PackagingError(f"{source.relative_to(out)} does not compile: {error.msg}") from error
    return Bytecode(tag, sources)


def handler_module(template: Template, function: str) -> str:
    handler = template.function(function).handler
    module, _, attribute = handler.rpartition(".")
    if not module or not attribute:
        raise PackagingError(f"{function}: Handler {handler!r} is not module.function")
    return module


def architecture(template: Template, function: str) -> str:
    raw = template.resources[function].get("Properties", {})
    globals_ = template.document.get("Globals", {}).get("Function", {})
    (arch,) = raw.get("Architectures", globals_.get("Architectures", ["x86_64"]))
    return str(arch)


def copy_modules(modules: list[str], out: Path) -> None:
    """The modules' sources, and each packed package's data files (PACKAGE_DATA)."""
    for module in modules:
        source = source_file(module)
        data = (
            [f for pattern in PACKAGE_DATA for f in source.parent.glob(pattern)] if is_package(module) else []
        )
        for file in [source, *data]:
            target = out / file.relative_to(SOURCE_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)


def install_requirements(out: Path, platform: str, requirements: Path = REQUIREMENTS) -> None:
    """Wheels only, for `platform` and CPython 3.11; the file pins every distribution (--no-deps)."""
    target = [] if platform == "host" else ["--platform", platform]
    command = [
        *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
        *("--no-deps", "--only-binary=:all:", *target, "--implementation", "cp"),
        *("--python-version", PYTHON_VERSION, "--target", str(out), "--requirement", str(requirements)),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed arguments
    if result.returncode != 0:
        raise PackagingError(
            f"pip could not install {requirements.name} for {platform}: {result.stderr.strip()}"
        )


def build(
    function: str,
    out: Path,
    *,
    template: Template | None = None,
    platform: str | None = None,
    requirements: Path = REQUIREMENTS,
) -> Package:
    """Build `function`'s package into `out` (emptied first). `platform`: a wheel platform tag,
    `host` for this machine's (to import the package here), or None for the function's
    architecture."""
    template = template or Template.load()
    module = handler_module(template, function)
    platform = platform or WHEEL_PLATFORMS[architecture(template, function)]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    modules = closure([module])
    copy_modules(modules, out)
    install_requirements(out, platform, requirements)
    for junk in [p for name in _NOT_PACKED for p in out.rglob(name) if p.is_dir()]:
        shutil.rmtree(junk, ignore_errors=True)
    compiled = compile_bytecode(out, interpreter_tag(runtime(template, function)))
    return Package(out, template.function(function).handler, modules, platform, compiled)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salesstream.deploy.package", description=__doc__)
    parser.add_argument("function", help="logical id of the function in deploy/template.yaml")
    parser.add_argument("--out", type=Path, required=True, help="the folder to fill (ARTIFACTS_DIR)")
    parser.add_argument(
        "--platform", help="wheel platform tag, or `host` (default: the function's architecture)"
    )
    parser.add_argument("--zip", type=Path, help="also write the zip Lambda receives, and print its size")
    args = parser.parse_args(argv)
    try:
        package = build(args.function, args.out, platform=args.platform)
    except PackagingError as error:
        print(f"package: {error}", file=sys.stderr)
        return 2
    print(f"{args.function}: {len(package.modules)} modules and {REQUIREMENTS.name} ({package.platform})")
    if package.bytecode is not None:
        print(f"{args.function}: {package.bytecode.summary()}")
    if args.zip:
        size = package.zip(args.zip).stat().st_size
        print(f"{args.zip}: {size:,} bytes zipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
