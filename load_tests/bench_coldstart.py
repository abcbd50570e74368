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
_TOP: Final = 6  # contributors named per function

# Times the import in the child itself, so process start-up (fork, exec, the interpreter's own
# start) is left out, as it is on Lambda, where the runtime is already running. Wall time and the
# child's CPU time: on a loaded machine the wall time measures the neighbours as much as the code.
_PROBE = """
import sys, time
started, started_cpu = time.perf_counter(), time.process_time()
sys.path[:0] = sys.argv[2:]
import importlib
importlib.import_module(sys.argv[1])
print((time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000)
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


def import_ms(module: str, paths: list[Path], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms) of importing `module` in a fresh interpreter."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-I", "-S", "-c", _PROBE, module, *map(str, paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"importing {module} failed: {run.stderr.strip()[-1500:]}")
    wall, cpu = run.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def contributors(module: str, paths: list[Path], env: dict[str, str]) -> list[tuple[str, float]]:
    """The distributions that cost the most import time (ms): `-X importtime`'s own time of
    every module, summed by top-level package (the sum over all packages is the whole import)."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", _PROBE, module, *map(str, paths)],
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

    @property
    def target_ms(self) -> float | None:
        return TARGET_MS.get(self.function)


def measure(repeat: int) -> tuple[list[tuple[float, float]], list[ColdStart]]:
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
            runs = [import_ms(module, paths, env) for _ in range(repeat)]
            walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
            starts.append(
                ColdStart(
                    function=function.logical_id,
                    handler=function.handler,
                    median_ms=statistics.median(walls),
                    best_ms=min(walls),
                    median_cpu_ms=statistics.median(cpus),
                    best_cpu_ms=min(cpus),
                    zip_bytes=package.zip(root / f"{function.logical_id}.zip").stat().st_size,
                    unpacked_bytes=sum(p.stat().st_size for p in package.path.rglob("*") if p.is_file()),
                    first_party_modules=len(package.modules),
                    contributors_ms=contributors(module, paths, env),
                )
            )
    _write(baseline, starts)
    return baseline, starts


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
                ratio=start.median_ms / statistics.median(wall for wall, _ in baseline),
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
                ratio=start.median_cpu_ms / statistics.median(cpu for _, cpu in baseline),
            )
        )
    return figures


def _write(baseline: list[tuple[float, float]], starts: list[ColdStart]) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    walls, cpus = [wall for wall, _ in baseline], [cpu for _, cpu in baseline]
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
    walls, cpus = [wall for wall, _ in baseline], [cpu for _, cpu in baseline]
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
        for package, ms in start.contributors_ms:
            print(f"    {package:24} {ms:7.1f} ms")
    print(f"written to {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
