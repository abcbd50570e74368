"""The dashboard in a real headless browser (Debian's chromium driven by playwright), on the whole
pipeline through the CLI: `salesstream up` (consumers with 2-second windows, API and dashboard),
`salesstream produce`, `salesstream snapshot`. The page loads, shows the numbers the API returns
(the batch view's up to the snapshot horizon, the speed layer's after it, the reconciliation),
and updates by itself when new windows close. The screenshot goes to reports/dashboard.png.

Chromium is found at $SALESSTREAM_CHROMIUM, on PATH, or at /usr/bin/chromium (`.ci/run` installs
it). When it is missing the test fails if SALESSTREAM_REQUIRE_BROWSER is set (CI sets it) and is
skipped, loudly, otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salesstream.core.currencies import format_minor
from tests.api_support import all_rows, get_json, net_by_store

ROOT = Path(__file__).parents[2]
SCREENSHOT = ROOT / "reports" / "dashboard.png"
STAGE = "e2edash"
COMMON = ("--stage", STAGE, "--shards", "2", "--window-seconds", "2")  # every command: the same template
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "POWERTOOLS_LOG_LEVEL": "WARNING"}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium() -> str:
    candidates = [os.environ.get("SALESSTREAM_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    reason = "no chromium found (SALESSTREAM_CHROMIUM, PATH, /usr/bin/chromium): apt-get install -y chromium"
    if os.environ.get("SALESSTREAM_REQUIRE_BROWSER"):
        pytest.fail(f"the browser test cannot run: {reason}")
    pytest.skip(f"BROWSER TEST SKIPPED: {reason}")


def wait_for(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """`salesstream up` in its own folder, 2-second windows; its stdout (one JSON line, then the
    handlers' metrics) goes to a file so a full pipe never stalls it."""
    home = tmp_path_factory.mktemp("dashboard")
    out = home / "up.out"
    with out.open("w") as stdout, (home / "up.err").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "salesstream", "up", *COMMON],
            cwd=home,
            env=ENV,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        line = wait_for("salesstream up to be ready", lambda: "\n" in out.read_text() and out.read_text())
        yield home, json.loads(line.splitlines()[0])["api_url"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def salesstream(home: Path, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "salesstream", *args, *COMMON, "--json"],
        cwd=home,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def produce(home: Path, seed: int) -> dict[tuple[str, str], int]:
    result = json.loads(salesstream(home, "produce", "--count", "300", "--stores", "5", "--seed", str(seed)))
    return {(row["store_id"], row["currency"]): row["net_minor"] for row in result["tally"]}


def added(*tallies: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for tally in tallies:
        for key, net in tally.items():
            total[key] = total.get(key, 0) + net
    return total


def settled(base: str, tally: dict[tuple[str, str], int]) -> bool:
    """The API holds the tally, and every consumer (aggregator, archiver) has read all it was sent."""
    shards = get_json(f"{base}/shards")
    pending = [lag["pending_records"] for shard in shards["shards"] for lag in (shard["lag"] or {}).values()]
    idle = bool(shards["lag"].get("idle")) and not any(pending)
    return idle and net_by_store(all_rows(base, "granularity=window")) == tally


def expected_store_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The per-store table the page must show for these API rows."""
    stores: dict[tuple[str, str], list[int]] = {}
    sources: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        key = (row["store_id"], row["currency"])
        seen = stores.setdefault(key, [0, 0, 0, 0])
        for i, name in enumerate(("orders", "refunds", "net_minor")):
            seen[i] += row[name]
        seen[3] += 1
        sources.setdefault(key, set()).update(row["source"].split("+"))
    table = []
    for (store, currency), (orders, refunds, net, windows) in sorted(stores.items()):
        source = "+".join(sorted(sources[store, currency]))
        table.append(
            [store, currency, str(orders), str(refunds), format_minor(net, currency), str(windows), source]
        )
    return table


def page_store_table(page: Any) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator("tbody#stores tr").all()
    ]


def chart_windows(page: Any) -> int:
    return int(page.locator("[data-testid=chart]").get_attribute("data-windows") or 0)


def test_the_dashboard_shows_what_the_api_returns_and_follows_new_windows(
    stack: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    home, base = stack
    first = produce(home, seed=21)
    wait_for("the consumers to settle", lambda: settled(base, first))
    time.sleep(2.5)  # the snapshot's horizon stops 2 s short of now (clock slack)
    snapshot = json.loads(salesstream(home, "snapshot"))
    assert snapshot["reconciliation"]["summary"]["status"] == "clean"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base}/?refresh=1")
            page.wait_for_selector("body[data-refreshes]")

            # the numbers the API returns: rows of the batch view, totals per shard, reconciliation
            rows = all_rows(base, "granularity=window")
            assert {row["source"] for row in rows} == {"batch"}
            wait_for(
                "the page to show the API's rows",
                lambda: page_store_table(page) == expected_store_table(rows),
            )
            currency = page.locator("[data-testid=currency]").input_value()
            lines = page.locator("[data-testid=chart] polyline")
            charted = {lines.nth(i).get_attribute("data-store") for i in range(lines.count())}
            assert charted == {store for store, code in first if code == currency}
            for shard in get_json(f"{base}/shards")["shards"]:
                for code, totals in shard["currencies"].items():
                    cells = page.locator(f'tr[data-shard="{shard["shard_id"]}"][data-currency="{code}"] td')
                    assert cells.nth(4).inner_text() == format_minor(totals["net_sales_minor"], code)
            assert get_json(f"{base}/reconciliation")["status"] == "clean"
            assert page.locator("[data-testid=reconciliation] .badge").inner_text() == "clean"
            snapshot_id = snapshot["snapshot"]["snapshot_id"]
            assert f"(snapshot {snapshot_id})" in page.locator("[data-testid=sources]").inner_text()
            windows_before = chart_windows(page)
            assert windows_before >= 1

            # new windows close while the page is open: it follows without a reload
            both = added(first, produce(home, seed=22))
            wait_for(
                "the API to hold both runs",
                lambda: net_by_store(all_rows(base, "granularity=window")) == both,
            )
            rows = all_rows(base, "granularity=window")
            assert {row["source"] for row in rows} == {"batch", "speed"}
            wait_for("the page to follow", lambda: page_store_table(page) == expected_store_table(rows))
            assert chart_windows(page) > windows_before
            assert page.locator("[data-testid=horizon]").count() == 1  # batch on its left, speed on its right
            assert not errors, errors

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    with capsys.disabled():
        print(f"\ndashboard screenshot: {SCREENSHOT}")
    assert SCREENSHOT.stat().st_size > 10_000
