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

Lambda's /var/task is read-only and the package holds no bytecode (`_NOT_PACKED` in
salesstream/deploy/package.py), so on Lambda every cold start compiles each packed module it
imports; here the first run writes `__pycache__` and the later ones read it. So each function is
also measured *without bytecode*: the same probe under `-B`, run first, on the package as built
(the SDK keeps its bytecode, as /var/runtime does). The zip is made before any import.

    python -m load_tests.bench_coldstart [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from load_tests.bench import Figure
from salesstream.deploy.package import build
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


def _environment(template: Template, function_id: str) -> dict[str, str]:
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


def import_ms(
    module: str,
    paths: list[Path],
    env: dict[str, str],
    first_event: dict[str, object] | None = None,
    *,
    bytecode: bool = True,
) -> Probe:
    """Importing `module` in a fresh interpreter, then its first invocation on `first_event`;
    without `bytecode`, nothing compiled is written (`-B`), as on Lambda's read-only /var/task."""
    event = json.dumps(first_event) if first_event is not None else ""
    flags = ["-I", "-S"] if bytecode else ["-I", "-S", "-B"]
    run = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, *flags, "-c", _PROBE, module, event, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"importing {module} failed: {run.stderr.strip()[-1500:]}")
    return Probe(*map(float, run.stdout.strip().splitlines()[-1].split()))


def contributors(module: str, paths: list[Path], env: dict[str, str]) -> list[tuple[str, float]]:
    """The distributions that cost the most import time (ms): `-X importtime`'s own time of
    every module, summed by top-level package (the sum over all packages is the whole import)."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", _PROBE, module, "", *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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


@dataclass
class ColdStart:
    function: str
    handler: str
    median_ms: float
    best_ms: float
    median_cpu_ms: float
    best_cpu_ms: float
    zip_bytes: int
    unpacked_bytes: int
    first_party_modules: int
    contributors_ms: list[tuple[str, float]]
    # the first invocation after the import (FIRST_EVENTS; None for a function not measured so)
    first_invocation_median_cpu_ms: float | None = None
    first_invocation_median_ms: float | None = None
    init_and_first_median_cpu_ms: float | None = None  # median of the sums, run by run
    # the same without bytecode of the package, as Lambda imports it
    uncached_median_cpu_ms: float = 0.0
    uncached_best_cpu_ms: float = 0.0
    uncached_init_and_first_median_cpu_ms: float | None = None

    @property
    def target_ms(self) -> float | None:
        return TARGET_MS.get(self.function)


def measure(repeat: int) -> tuple[list[Probe], list[ColdStart]]:
    """(boto3's import times as (wall, CPU) ms, each function's cold start), all in one run."""
    template = Template.load()
    starts = []
    with tempfile.TemporaryDirectory(prefix="salesstream-coldstart-") as scratch:
        root = Path(scratch)
        sdk = runtime_sdk(root / "var-runtime")
        baseline = [import_ms("boto3", [sdk], {"PATH": os.environ.get("PATH", "")}) for _ in range(repeat)]
        for function in template.functions():
            package = build(function.logical_id, root / function.logical_id, platform="host")
            module = function.handler.rpartition(".")[0]
            env = _environment(template, function.logical_id)
            paths = [package.path, sdk]
            first_event = FIRST_EVENTS.get(function.logical_id)
            zip_bytes = package.zip(root / f"{function.logical_id}.zip").stat().st_size
            unpacked_bytes = sum(p.stat().st_size for p in package.path.rglob("*") if p.is_file())
            # before anything writes __pycache__ into the package
            uncached = [import_ms(module, paths, env, first_event, bytecode=False) for _ in range(repeat)]
            runs = [import_ms(module, paths, env, first_event) for _ in range(repeat)]
            walls, cpus = [run.wall for run in runs], [run.cpu for run in runs]
            first = first_event is not None
            starts.append(
                ColdStart(
                    function=function.logical_id,
                    handler=function.handler,
                    median_ms=statistics.median(walls),
                    best_ms=min(walls),
                    median_cpu_ms=statistics.median(cpus),
                    best_cpu_ms=min(cpus),
                    zip_bytes=zip_bytes,
                    unpacked_bytes=unpacked_bytes,
                    first_party_modules=len(package.modules),
                    contributors_ms=contributors(module, paths, env),
                    first_invocation_median_cpu_ms=_median_or_none(first, [r.first_cpu for r in runs]),
                    first_invocation_median_ms=_median_or_none(first, [r.first_wall for r in runs]),
                    init_and_first_median_cpu_ms=_median_or_none(first, [r.cpu + r.first_cpu for r in runs]),
                    uncached_median_cpu_ms=statistics.median(r.cpu for r in uncached),
                    uncached_best_cpu_ms=min(r.cpu for r in uncached),
                    uncached_init_and_first_median_cpu_ms=_median_or_none(
                        first, [r.cpu + r.first_cpu for r in uncached]
                    ),
                )
            )
    _write(baseline, starts)
    return baseline, starts


def _median_or_none(measured: bool, values: list[float]) -> float | None:
    return statistics.median(values) if measured else None


def run(repeat: int) -> list[Figure]:
    """For `make bench`: init time per function against boto3's import in the same run."""
    runs = max(3, min(repeat, 7))
    baseline, starts = measure(runs)
    figures = []
    for start in starts:
        top = ", ".join(f"{package} {ms:.0f}" for package, ms in start.contributors_ms)
        target = f"target {start.target_ms:.0f} ms; " if start.target_ms else ""
        figures.append(
            Figure(
                benchmark="coldstart",
                metric=f"{start.function} import + init",
                unit="ms",
                best=start.best_ms,
                median=start.median_ms,
                runs=runs,
                baseline="import boto3",
                ratio=start.median_ms / statistics.median(run.wall for run in baseline),
                note=f"{target}zip {start.zip_bytes:,} B; top: {top}",
            )
        )
        figures.append(
            Figure(
                benchmark="coldstart",
                metric=f"{start.function} import + init, CPU time",
                unit="ms",
                best=start.best_cpu_ms,
                median=start.median_cpu_ms,
                runs=runs,
                baseline="import boto3, CPU time",
                ratio=start.median_cpu_ms / statistics.median(run.cpu for run in baseline),
            )
        )
        figures.append(
            Figure(
                benchmark="coldstart",
                metric=f"{start.function} import + init without bytecode (as on Lambda), CPU time",
                unit="ms",
                best=start.uncached_best_cpu_ms,
                median=start.uncached_median_cpu_ms,
                runs=runs,
                baseline="import boto3, CPU time",
                ratio=start.uncached_median_cpu_ms / statistics.median(run.cpu for run in baseline),
            )
        )
        if start.init_and_first_median_cpu_ms is not None:
            figures.append(
                Figure(
                    benchmark="coldstart",
                    metric=f"{start.function} import + init + first invocation, CPU time",
                    unit="ms",
                    best=start.init_and_first_median_cpu_ms,
                    median=start.init_and_first_median_cpu_ms,
                    runs=runs,
                    baseline="import boto3, CPU time",
                    ratio=start.init_and_first_median_cpu_ms / statistics.median(run.cpu for run in baseline),
                    note=f"first invocation alone {start.first_invocation_median_cpu_ms:.0f} ms CPU",
                )
            )
    return figures


def _write(baseline: list[Probe], starts: list[ColdStart]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    walls, cpus = [run.wall for run in baseline], [run.cpu for run in baseline]
    document = {
        "baseline_import_boto3_ms": {"median": statistics.median(walls), "best": min(walls)},
        "baseline_import_boto3_cpu_ms": {"median": statistics.median(cpus), "best": min(cpus)},
        "functions": [{**asdict(start), "target_ms": start.target_ms} for start in starts],
    }
    REPORT.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m load_tests.bench_coldstart", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    baseline, starts = measure(args.repeat)
    walls, cpus = [run.wall for run in baseline], [run.cpu for run in baseline]
    print(
        f"{'import boto3 (baseline)':28} median {statistics.median(walls):7.1f} ms  best {min(walls):7.1f} ms"
        f"  CPU median {statistics.median(cpus):7.1f} ms"
    )
    for start in starts:
        print(
            f"{start.function:28} median {start.median_ms:7.1f} ms  best {start.best_ms:7.1f} ms"
            f"  CPU median {start.median_cpu_ms:7.1f} ms"
            f"  zip {start.zip_bytes:>10,} B  ({start.first_party_modules} first-party modules)"
        )
        if start.init_and_first_median_cpu_ms is not None:
            print(
                f"{'':28} first invocation CPU median {start.first_invocation_median_cpu_ms:7.1f} ms"
                f"  (wall {start.first_invocation_median_ms:.1f} ms);"
                f" init + first, CPU median {start.init_and_first_median_cpu_ms:7.1f} ms"
            )
        uncached_first = start.uncached_init_and_first_median_cpu_ms
        print(
            f"{'':28} without bytecode: CPU median {start.uncached_median_cpu_ms:7.1f} ms"
            + ("" if uncached_first is None else f"; init + first {uncached_first:7.1f} ms")
        )
        for package, ms in start.contributors_ms:
            print(f"    {package:24} {ms:7.1f} ms")
    print(f"written to {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
