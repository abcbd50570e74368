"""The dashboard in a real headless browser (Debian's chromium driven by playwright), on the whole
pipeline through the CLI: `salesstream up` (consumers with 2-second windows, API and dashboard),
`salesstream produce`. The page loads, shows the numbers the API returns, and updates by itself
when new windows close. The screenshot goes to reports/dashboard.png.

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
            [
                sys.executable,
                "-m",
                "salesstream",
                "up",
                "--shards",
                "2",
                "--window-seconds",
                "2",
                "--stage",
                STAGE,
            ],
            cwd=home,
            env=ENV,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        line = wait_for(
            "salesstream up to be ready", lambda: out.read_text().partition("\n")[1] and out.read_text()
        )
        yield home, json.loads(line.splitlines()[0])["api_url"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def produce(home: Path, seed: int) -> dict[tuple[str, str], int]:
    fleet = ("--count", "300", "--stores", "5", "--seed", str(seed))
    run = subprocess.run(
        [sys.executable, "-m", "salesstream", "produce", "--stage", STAGE, *fleet, "--json"],
        cwd=home,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {(row["store_id"], row["currency"]): row["net_minor"] for row in json.loads(run.stdout)["tally"]}


def added(*tallies: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    total: dict[tuple[str, str], int] = {}
    for tally in tallies:
        for key, net in tally.items():
            total[key] = total.get(key, 0) + net
    return total


def expected_store_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The per-store table the page must show for these API rows."""
    stores: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        seen = stores.setdefault((row["store_id"], row["currency"]), [0, 0, 0, 0])
        for i, name in enumerate(("orders", "refunds", "net_minor")):
            seen[i] += row[name]
        seen[3] += 1
    return [
        [store, currency, str(orders), str(refunds), format_minor(net, currency), str(windows), "speed"]
        for (store, currency), (orders, refunds, net, windows) in sorted(stores.items())
    ]


def page_store_table(page: Any) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator("tbody#stores tr").all()
    ]


def test_the_dashboard_shows_what_the_api_returns_and_follows_new_windows(
    stack: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    home, base = stack
    first = produce(home, seed=21)
    wait_for(
        "the first windows in the API", lambda: net_by_store(all_rows(base, "granularity=window")) == first
    )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base}/?refresh=1")
            page.wait_for_selector("body[data-refreshes]")

            rows = all_rows(base, "granularity=window")
            wait_for(
                "the page to show the API's rows",
                lambda: page_store_table(page) == expected_store_table(rows),
            )
            windows_before = int(page.locator("[data-testid=chart]").get_attribute("data-windows") or 0)
            assert windows_before >= 1
            currency = page.locator("[data-testid=currency]").input_value()
            charted = {store for store, code in first if code == currency}
            lines = page.locator("[data-testid=chart] polyline")
            assert {lines.nth(i).get_attribute("data-store") for i in range(lines.count())} == charted
            shards = get_json(f"{base}/shards")
            for shard in shards["shards"]:
                for currency, totals in shard["currencies"].items():
                    cells = page.locator(
                        f'tr[data-shard="{shard["shard_id"]}"][data-currency="{currency}"] td'
                    )
                    assert cells.nth(4).inner_text() == format_minor(totals["net_sales_minor"], currency)
            status = get_json(f"{base}/reconciliation")["status"]
            assert page.locator("[data-testid=reconciliation] .badge").inner_text() == status
            assert "no batch snapshot yet" in page.locator("[data-testid=sources]").inner_text()

            second = produce(home, seed=22)  # new windows close while the page is open
            both = added(first, second)
            wait_for(
                "the API to hold both runs",
                lambda: net_by_store(all_rows(base, "granularity=window")) == both,
            )
            rows = all_rows(base, "granularity=window")
            wait_for("the page to follow", lambda: page_store_table(page) == expected_store_table(rows))
            assert (
                int(page.locator("[data-testid=chart]").get_attribute("data-windows") or 0) > windows_before
            )
            assert not errors, errors

            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    with capsys.disabled():
        print(f"\ndashboard screenshot: {SCREENSHOT}")
    assert SCREENSHOT.stat().st_size > 10_000
