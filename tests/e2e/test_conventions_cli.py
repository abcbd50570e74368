"""The CLI's conventions through `python -m salesstream`, no stack needed: flag and template
parameter checks (one line, exit 2, no traceback), `--version`, completion, help with examples,
`status` and `down` with nothing running, the stack home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def salesstream(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salesstream", *args],
        cwd=home,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SALESSTREAM_HOME": str(home / "state")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["produce", "--count", "-3"], "argument --count: '-3' is not a whole number >= 0"),
        (["produce", "--rate", "-5"], "argument --rate: '-5' is not a number >= 0"),
        (["produce", "--stores", "0"], "argument --stores: '0' is not a positive whole number"),
        (["loadtest", "--rate", "0"], "argument --rate: '0' is not a positive number"),
        (["loadtest", "--bad-share", "2"], "argument --bad-share: '2' is not a share between 0 and 1"),
        (["report", "--endpoint", "localhost:4566"], "'localhost:4566' is not an http(s) URL"),
        (["report", "--stage", "Bad_Stage"], "Stage=Bad_Stage does not match its AllowedPattern"),
        (["report", "--window-seconds", "0"], "parameter WindowSeconds=0 outside 1..900"),
        (["report", "--shards", "0"], "parameter ShardCount=0 outside 1..500"),
        (["report", "--param", "LogRetentionDays=2"], "LogRetentionDays=2 not one of 1, 3, 5"),
        (["quarantine", "--since", "yesterday"], "neither a duration (90s, 15m, 2h, 1d) nor an RFC 3339"),
        (["quarantine", "--shard", "shard-3"], "neither a shard id"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_a_bad_flag_or_parameter_is_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    run = salesstream(*args, home=tmp_path)
    assert run.returncode == 2, run.stderr
    assert says in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stdout == ""


def test_the_template_is_the_source_of_the_parameter_constraints(tmp_path: Path) -> None:
    """A template with other bounds gives other verdicts: nothing is restated in the CLI."""
    template = tmp_path / "template.yaml"
    text = (ROOT / "deploy" / "template.yaml").read_text()
    template.write_text(
        text.replace('AllowedPattern: "^[a-z][a-z0-9-]{1,15}$"', 'AllowedPattern: "^x[0-9]+$"')
    )
    refused = salesstream("report", "--template", str(template), "--stage", "dev", home=tmp_path)
    assert refused.returncode == 2
    assert "Stage=dev does not match its AllowedPattern ^x[0-9]+$" in refused.stderr
    # a valid stage passes the check and gets as far as looking for the stack
    passed = salesstream("report", "--template", str(template), "--stage", "x1", home=tmp_path)
    assert passed.returncode == 2
    assert "no embedded stack is running" in passed.stderr


def test_version_completion_and_help_with_examples(tmp_path: Path) -> None:
    version = salesstream("--version", home=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("salesstream 0.")
    bash = salesstream("completion", "bash", home=tmp_path)
    assert bash.returncode == 0
    assert "complete" in bash.stdout
    assert "quarantine" in bash.stdout
    assert "--window-seconds" in bash.stdout
    syntax = subprocess.run(["bash", "-n"], input=bash.stdout, text=True, capture_output=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    top = salesstream("--help", home=tmp_path)
    assert "exit codes:" in top.stdout
    assert "SALESSTREAM_HOME" in top.stdout
    for command in ("up", "status", "down", "produce", "report", "quarantine", "snapshot", "loadtest"):
        helped = salesstream(command, "--help", home=tmp_path)
        assert helped.returncode == 0
        assert "examples:\n  # " in helped.stdout
        assert f"$ salesstream {command}" in helped.stdout


def test_old_spellings_still_parse(tmp_path: Path) -> None:
    """`loadtest --orders` (now --count) is kept, hidden, for scripts; both fail the same way
    on a bad value, so the alias really is parsed."""
    for flag in ("--count", "--orders"):
        run = salesstream("loadtest", flag, "0", home=tmp_path)
        assert run.returncode == 2
        assert f"argument {flag}: '0' is not a positive whole number" in run.stderr
    assert "--orders" not in salesstream("loadtest", "--help", home=tmp_path).stdout


def test_status_and_down_with_nothing_running(tmp_path: Path) -> None:
    status = salesstream("status", home=tmp_path)
    assert status.returncode == 3
    assert "no stack is running" in status.stderr
    as_json = salesstream("status", "--json", home=tmp_path)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout) == {"state": "none", "home": str(tmp_path / "state")}
    down = salesstream("down", home=tmp_path)
    assert (down.returncode, down.stdout.strip()) == (0, "salesstream down: no stack is running")
    # the record of a stack that died without cleaning up: reported as gone, removed by `down`
    (tmp_path / "state" / "stack.json").write_text(
        json.dumps({"endpoint_url": "http://127.0.0.1:9", "pid": 1})
    )
    assert "names a stack that is gone" in salesstream("status", home=tmp_path).stderr
    stale = salesstream("down", "--json", home=tmp_path)
    assert json.loads(stale.stdout)["outcome"] == "stale"
    assert not (tmp_path / "state" / "stack.json").exists()


def test_the_home_defaults_to_the_xdg_state_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SALESSTREAM_HOME"}
    env.update(PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "xdg"))
    run = subprocess.run(
        [sys.executable, "-m", "salesstream", "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(run.stdout)["home"] == str(tmp_path / "xdg" / "salesstream")
