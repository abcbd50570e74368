"""Cold start of each Lambda function: what Lambda bills as Init Duration, measured here.

Each function's package is built as `sam build` builds it (`salesstream.deploy.package.build`,
with this machine's wheels so it can be imported here), then its handler module is imported in a
fresh `python -I -S` interpreter that sees only the package and the SDK (as Lambda's python3.11
runtime has it), with the function's environment from the template. The figure is the time from
the first line of that interpreter to the handler module imported and initialised (module-level
clients, settings, powertools Logger and Metrics), the part of Init Duration the code controls.

Baseline in the same run: the same interpreter importing boto3 alone (what any handler that
makes an AWS call pays, and what Lambda's runtime does not pre-import). `-X importtime` names the
biggest contributors.

A handler that builds its clients on first use moves that cost out of the init, so the
aggregator's first invocation is measured too, in the same interpreter right after the import:
`lambda_handler` on an empty, non-final window (`FIRST_EVENTS`): the event parsed, the process's
aggregator built (settings, three clients, their service models loaded), the state
answered, the log line and metrics. It makes no AWS call: with no record, there is no dedup
catch-up, quarantine, log or segment to write.

Lambda's /var/task is read-only, so a package without bytecode compiles each packed module it
imports at every cold start. The package ships its bytecode (`compile_bytecode` in
salesstream/deploy/package.py); each function is measured as Lambda runs it, under `-B` (nothing
written), in interleaved rounds of three: `import boto3`, the package without bytecode (the old
zip: the same files less `__pycache__`), and the package as shipped. The SDK keeps its bytecode,
as /var/runtime does. Zip sizes: without bytecode, as shipped (every module compiled), and with
the bytecode of only the modules init and the first invocation import (the alternative).

    python -m load_tests.bench_coldstart [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from load_tests.bench import Figure
from salesstream.deploy.package import Package, build
from salesstream.deploy.template import Template

REPORT: Final = Path("reports") / "bench_coldstart.json"
# What the python3.11 runtime brings (/var/runtime): the SDK. Linked from this environment.
RUNTIME_SDK: Final = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")
TARGET_MS: Final = {"AggregatorFunction": 400.0}
# what the first invocation is measured with, per function (an empty window: no AWS call)
FIRST_EVENTS: Final[dict[str, dict[str, object]]] = {
    "AggregatorFunction": {
        "Records": [],
        "window": {"start": "2026-12-03T18:00:00Z", "end": "2026-12-03T18:00:05Z"},
        "state": {},
        "shardId": "shardId-000000000000",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/cold-start-probe",
        "isFinalInvokeForWindow": False,
        "isWindowTerminatedEarly": False,
    }
}
_TOP: Final = 6  # contributors named per function

# Times the import in the child itself, so process start-up (fork, exec, the interpreter's own
# start) is left out, as it is on Lambda, where the runtime is already running. Wall time and the
# child's CPU time: on a loaded machine the wall time measures the neighbours as much as the code.
# With an event (JSON, argv[2]) it then times the handler's first invocation on it; the handler's
# log line goes to stdout before the figures, which are the last line.
_PROBE = """
import sys, time
started, started_cpu = time.perf_counter(), time.process_time()
sys.path[:0] = sys.argv[3:]
import importlib
handler = importlib.import_module(sys.argv[1])
imported, imported_cpu = time.perf_counter(), time.process_time()
first = first_cpu = 0.0
if sys.argv[2]:
    import json
    handler.lambda_handler(json.loads(sys.argv[2]), None)
    first, first_cpu = (time.perf_counter() - imported) * 1000, (time.process_time() - imported_cpu) * 1000
print((imported - started) * 1000, (imported_cpu - started_cpu) * 1000, first, first_cpu)
"""
# The probe above (argv[1], removed so the probe sees its own arguments), then the bytecode
# files of the modules it imported from the package (the first path, argv[3]).
_IMPORTED = """
import sys
exec(compile(sys.argv.pop(1), "probe", "exec"))
import json
print(json.dumps(sorted(
    m.__cached__ for m in list(sys.modules.values())
    if (getattr(m, "__cached__", None) or "").startswith(sys.argv[3])
)))
"""


def runtime_sdk(folder: Path) -> Path:
    """A stand-in for Lambda's /var/runtime: the SDK only, linked from this environment."""
    import boto3

    site = Path(boto3.__file__).parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_SDK:
        link = folder / name
        if not link.exists():
            link.symlink_to(site / name)
    return folder


def function_environment(template: Template, function_id: str) -> dict[str, str]:
    function = template.function(function_id)
    return {
        "PATH": os.environ.get("PATH", ""),
        **function.environment,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        # placeholders: nothing is called, but botocore resolves credentials lazily anyway
        "AWS_ACCESS_KEY_ID": "cold-start-probe",
        "AWS_SECRET_ACCESS_KEY": "cold-start-probe",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }


@dataclass(frozen=True)
class Probe:
    """One fresh interpreter's figures (ms): the import, and the first invocation if asked."""

    wall: float
    cpu: float
    first_wall: float = 0.0
    first_cpu: float = 0.0


def _run(arguments: list[str], env: dict[str, str], module: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, *arguments], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"importing {module} failed: {run.stderr.strip()[-1500:]}")
    return run


def _event(first_event: dict[str, object] | None) -> str:
    return json.dumps(first_event) if first_event is not None else ""


def import_ms(
    module: str, paths: list[Path], env: dict[str, str], first_event: dict[str, object] | None = None
) -> Probe:
    """Importing `module` in a fresh interpreter, then its first invocation on `first_event`;
    under `-B`, so nothing compiled is written, as on Lambda's read-only /var/task."""
    run = _run(["-I", "-S", "-B", "-c", _PROBE, module, _event(first_event), *map(str, paths)], env, module)
    return Probe(*map(float, run.stdout.strip().splitlines()[-1].split()))


def imported_bytecode(
    module: str, paths: list[Path], env: dict[str, str], first_event: dict[str, object] | None
) -> list[Path]:
    """The bytecode files, in the package (`paths[0]`), of what init and the first invocation import."""
    run = _run(
        ["-I", "-S", "-B", "-c", _IMPORTED, _PROBE, module, _event(first_event), *map(str, paths)],
        env,
        module,
    )
    return [Path(name) for name in json.loads(run.stdout.strip().splitlines()[-1])]


def contributors(module: str, paths: list[Path], env: dict[str, str]) -> list[tuple[str, float]]:
    """The distributions that cost the most import time (ms): `-X importtime`'s own time of
    every module, summed by top-level package (the sum over all packages is the whole import)."""
    run = _run(
        ["-I", "-S", "-B", "-X", "importtime", "-c", _PROBE, module, "", *map(str, paths)], env, module
    )
    totals: dict[str, float] = {}
    for line in run.stderr.splitlines():
        # "import time:      self [us] |  cumulative | imported package"
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if own.isdigit():
            top = name.split(".")[0]
            totals[top] = totals.get(top, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])[:_TOP]


def without_bytecode(package: Package, folder: Path) -> Package:
    """The same package less its `__pycache__`: the zip as it was before bytecode shipped."""
    shutil.copytree(package.path, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return Package(folder, package.handler, package.modules, package.platform)


def _zip_with(package: Package, bytecode: list[Path], destination: Path, scratch: Path) -> int:
    """Zip bytes of the package's sources with only `bytecode` of its compiled files."""
    subset = without_bytecode(package, scratch)
    for file in bytecode:
        target = subset.path / file.relative_to(package.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    return subset.zip(destination).stat().st_size


def _median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class ColdStart:
    """One function's figures (CPU ms, medians of interleaved rounds unless said otherwise)."""

    function: str
    handler: str
    baseline_cpu_ms: float  # import boto3, in the same rounds
    cpu_ms: float  # import + init, the package as shipped (with its bytecode)
    best_cpu_ms: float
    wall_ms: float
    no_bytecode_cpu_ms: float  # import + init, the same package without bytecode
    no_bytecode_best_cpu_ms: float
    zip_bytes: int  # as shipped: every module compiled
    no_bytecode_zip_bytes: int
    imported_only_zip_bytes: int  # the alternative: bytecode of what init and the first call import
    modules_compiled: int
    modules_imported: int  # of those, imported by init and the first invocation
    unpacked_bytes: int
    first_party_modules: int
    contributors_ms: list[tuple[str, float]]
    # with the first invocation after the import (FIRST_EVENTS; None for a function not measured so)
    first_invocation_cpu_ms: float | None = None
    init_and_first_cpu_ms: float | None = None  # median of the sums, round by round
    no_bytecode_init_and_first_cpu_ms: float | None = None

    @property
    def target_ms(self) -> float | None:
        return TARGET_MS.get(self.function)

    @property
    def ratio(self) -> float:
        """Init with the shipped bytecode against init without it (< 1: faster)."""
        return self.cpu_ms / self.no_bytecode_cpu_ms


def measure(repeat: int) -> list[ColdStart]:
    """Each function's cold start, interleaved round by round with its baseline and its old zip."""
    template = Template.load()
    starts = []
    with tempfile.TemporaryDirectory(prefix="salesstream-coldstart-") as scratch:
        root = Path(scratch)
        sdk = runtime_sdk(root / "var-runtime")
        for function in template.functions():
            name = function.logical_id
            shipped = build(name, root / name, platform="host")
            if shipped.bytecode is None or shipped.bytecode.skipped:
                raise RuntimeError(f"{name}: {shipped.bytecode and shipped.bytecode.summary()}")
            old = without_bytecode(shipped, root / f"{name}-no-bytecode")
            module = function.handler.rpartition(".")[0]
            env = function_environment(template, name)
            first_event = FIRST_EVENTS.get(name)
            sdk_env = {"PATH": os.environ.get("PATH", "")}
            baseline, before, after = [], [], []
            for _ in range(repeat):
                baseline.append(import_ms("boto3", [sdk], sdk_env))
                before.append(import_ms(module, [old.path, sdk], env, first_event))
                after.append(import_ms(module, [shipped.path, sdk], env, first_event))
            imported = imported_bytecode(module, [shipped.path, sdk], env, first_event)
            first = first_event is not None
            starts.append(
                ColdStart(
                    function=name,
                    handler=function.handler,
                    baseline_cpu_ms=_median([r.cpu for r in baseline]),
                    cpu_ms=_median([r.cpu for r in after]),
                    best_cpu_ms=min(r.cpu for r in after),
                    wall_ms=_median([r.wall for r in after]),
                    no_bytecode_cpu_ms=_median([r.cpu for r in before]),
                    no_bytecode_best_cpu_ms=min(r.cpu for r in before),
                    zip_bytes=shipped.zip(root / f"{name}.zip").stat().st_size,
                    no_bytecode_zip_bytes=old.zip(root / f"{name}-no-bytecode.zip").stat().st_size,
                    imported_only_zip_bytes=_zip_with(
                        shipped, imported, root / f"{name}-imported.zip", root / f"{name}-imported"
                    ),
                    modules_compiled=len(shipped.bytecode.compiled),
                    modules_imported=len(imported),
                    unpacked_bytes=sum(p.stat().st_size for p in shipped.path.rglob("*") if p.is_file()),
                    first_party_modules=len(shipped.modules),
                    contributors_ms=contributors(module, [shipped.path, sdk], env),
                    first_invocation_cpu_ms=_median([r.first_cpu for r in after]) if first else None,
                    init_and_first_cpu_ms=_median([r.cpu + r.first_cpu for r in after]) if first else None,
                    no_bytecode_init_and_first_cpu_ms=(
                        _median([r.cpu + r.first_cpu for r in before]) if first else None
                    ),
                )
            )
    _write(starts)
    return starts


def run(repeat: int) -> list[Figure]:
    """For `make bench`: init CPU time per function, with and without its bytecode, against
    boto3's import in the same rounds."""
    runs = max(3, min(repeat, 7))
    figures = []
    for start in measure(runs):
        top = ", ".join(f"{package} {ms:.0f}" for package, ms in start.contributors_ms)
        target = f"target {start.target_ms:.0f} ms; " if start.target_ms else ""
        figures.append(
            Figure(
                benchmark="coldstart",
                metric=f"{start.function} import + init as shipped (bytecode), CPU time",
                unit="ms",
                best=start.best_cpu_ms,
                median=start.cpu_ms,
                runs=runs,
                baseline="import boto3, CPU time",
                ratio=start.cpu_ms / start.baseline_cpu_ms,
                note=f"{target}{start.ratio:.2f}x without bytecode; zip {start.zip_bytes:,} B; top: {top}",
            )
        )
        figures.append(
            Figure(
                benchmark="coldstart",
                metric=f"{start.function} import + init without bytecode, CPU time",
                unit="ms",
                best=start.no_bytecode_best_cpu_ms,
                median=start.no_bytecode_cpu_ms,
                runs=runs,
                baseline="import boto3, CPU time",
                ratio=start.no_bytecode_cpu_ms / start.baseline_cpu_ms,
                note=f"zip {start.no_bytecode_zip_bytes:,} B",
            )
        )
        if start.init_and_first_cpu_ms is not None:
            figures.append(
                Figure(
                    benchmark="coldstart",
                    metric=f"{start.function} import + init + first invocation, CPU time",
                    unit="ms",
                    best=start.init_and_first_cpu_ms,
                    median=start.init_and_first_cpu_ms,
                    runs=runs,
                    baseline="import boto3, CPU time",
                    ratio=start.init_and_first_cpu_ms / start.baseline_cpu_ms,
                    note=f"first invocation alone {start.first_invocation_cpu_ms:.0f} ms CPU",
                )
            )
    return figures


def _write(starts: list[ColdStart]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "functions": [
            {**asdict(start), "target_ms": start.target_ms, "ratio": start.ratio} for start in starts
        ]
    }
    REPORT.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench_coldstart", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for s in measure(args.repeat):
        print(
            f"{s.function}: import + init, CPU median of {args.repeat} interleaved rounds:"
            f" without bytecode {s.no_bytecode_cpu_ms:.1f} ms, with it {s.cpu_ms:.1f} ms"
            f" ({s.ratio:.2f}x; wall {s.wall_ms:.1f} ms); import boto3 {s.baseline_cpu_ms:.1f} ms"
            f" (with bytecode {s.cpu_ms / s.baseline_cpu_ms:.2f}x,"
            f" without {s.no_bytecode_cpu_ms / s.baseline_cpu_ms:.2f}x)"
        )
        if s.init_and_first_cpu_ms is not None:
            print(
                f"    + first invocation: without bytecode {s.no_bytecode_init_and_first_cpu_ms:.1f} ms,"
                f" with it {s.init_and_first_cpu_ms:.1f} ms"
                f" (first invocation alone {s.first_invocation_cpu_ms:.1f} ms)"
            )
        print(
            f"    zip: without bytecode {s.no_bytecode_zip_bytes:,} B; every module compiled"
            f" ({s.modules_compiled}) {s.zip_bytes:,} B; only the {s.modules_imported} imported"
            f" {s.imported_only_zip_bytes:,} B; {s.first_party_modules} first-party modules"
        )
        for package, ms in s.contributors_ms:
            print(f"    {package:24} {ms:7.1f} ms")
    print(f"written to {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
