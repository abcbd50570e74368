"""The distributions as a user installs them: the wheel, built from this checkout, installed
non-editable in a fresh virtual environment (no system site-packages, so a missing dependency
fails here), used from a folder outside the checkout.

- with the `local` extra, `salesstream demo` runs the whole pipeline (the template comes from
  the wheel's package data);
- with no extra, a POS integration imports `producer`, and no emulator came with it.

pip reaches the package index and reuses its cache; the two installs take a minute or two."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
INSTALL_TIMEOUT = 900

# pip installs the wheel's dependencies into fresh venvs (PyPI, or its cache): a packaging test,
# run by `make test-package` with the Lambda packages, never by `make test`
pytestmark = [pytest.mark.package, pytest.mark.timeout(2 * INSTALL_TIMEOUT)]


def _clean_env() -> dict[str, str]:
    """This process's environment without anything that would put the checkout on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _run(command: list[str], cwd: Path, timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        command, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert completed.returncode == 0, f"{command}:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed


# what a source tree holds besides the sources: left out of the copy the wheel is built from
_NOT_SOURCES: tuple[str, ...]
_NOT_SOURCES = (".git", ".venv*", "build", "dist", "site", "var", "reports", "*.egg-info", "__pycache__")
_NOT_SOURCES += (".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", ".aws-sam")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the checkout: setuptools builds in the source tree (build/), and a
    stale build/ there could put modules that no longer exist into the wheel."""
    source = tmp_path_factory.mktemp("source") / "salesstream"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCES))
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        out,
    )
    (built,) = out.glob("salesstream-*.whl")
    return built


def _fresh_venv(folder: Path) -> Path:
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(folder)
    return folder / "bin" / "python"


def test_the_wheel_with_the_local_extra_runs_the_demo_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[local]"],
        tmp_path,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()

    where = _run(
        [
            str(python),
            "-c",
            "from salesstream.deploy.template import DEFAULT_TEMPLATE; print(DEFAULT_TEMPLATE)",
        ],
        workdir,
    )
    template = Path(where.stdout.strip())
    assert template.is_relative_to(tmp_path / "venv"), f"the template was read from {template}, not the wheel"
    assert template.read_bytes() == (ROOT / "deploy" / "template.yaml").read_bytes()

    demo = _run(
        [str(tmp_path / "venv" / "bin" / "salesstream"), "demo", "--duration", "3"], workdir, timeout=300
    )
    assert "OK: the speed layer equals the producer's tally to the cent" in demo.stdout
    assert "0 unexplained" in demo.stdout


def test_the_wheel_without_extras_serves_a_pos_integration_without_the_emulator(
    wheel: Path, tmp_path: Path
) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)], tmp_path
    )
    probe = (
        "import importlib.util, sys\n"
        "from producer import Producer, producer_client\n"
        "import consumers.speed.handler\n"
        "local = ('moto', 'yaml', 'rich', 'localstack_client')\n"
        "absent = [m for m in local if importlib.util.find_spec(m) is None]\n"
        "print(','.join(absent))\n"
    )
    completed = _run([str(python), "-c", probe], tmp_path)
    assert completed.stdout.strip() == "moto,yaml,rich,localstack_client"

    # the command line is local tooling: without its extra it says which one to install
    cli = subprocess.run(
        [str(tmp_path / "venv" / "bin" / "salesstream"), "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 2
    assert "pip install 'salesstream[local]'" in cli.stderr
    assert "Traceback" not in cli.stderr
