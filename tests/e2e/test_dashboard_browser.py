"""The dashboard in a real headless browser (Debian's chromium driven by playwright), on the whole
pipeline through the CLI: `salesstream up` (consumers with 2-second windows, API and dashboard),
`salesstream produce`, `salesstream snapshot`, and a second `salesstream serve` for the same stack.

At desktop width the page shows what the API returns (the headline figures of `/summary`, the
stores' day totals in every currency, the chart's stores, the reconciliation), answers a hover
with values, marks the snapshot horizon and follows new windows without a reload. At phone width
(390 px) nothing overflows the screen sideways. When the emulator stops, the error panel names
the cause; when the server stops too, it says the server does not answer. The screenshots go to
docs/images/ (docs/dashboard.md shows them).

Chromium is found at $SALESSTREAM_CHROMIUM, on PATH, or at /usr/bin/chromium (`.ci/run` installs
it). When it is missing the test fails if SALESSTREAM_REQUIRE_BROWSER is set (CI sets it) and is
skipped, loudly, otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from salesstream.core.currencies import format_minor
from tests.api_support import all_rows, call, get_json, net_by_store

ROOT = Path(__file__).parents[2]
IMAGES = ROOT / "docs" / "images"
STAGE = "e2edash"
# every command: the same template, with the orders table as a second source (the page shows both)
COMMON = ("--stage", STAGE, "--shards", "2", "--window-seconds", "2", "--param", "OrdersTableSource=on")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
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


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    base: str  # the API of `salesstream up`
    up: subprocess.Popen[str]


def start(home: Path, env: dict[str, str], *command: str) -> tuple[subprocess.Popen[str], str]:
    """A long-running command whose stdout (one JSON line with `api_url`, then the handlers'
    metrics) goes to a file so a full pipe never stalls it."""
    out = home / f"{command[0]}.out"
    with out.open("w") as stdout, (home / f"{command[0]}.err").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "salesstream", *command, *COMMON],
            cwd=home,
            env=env,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    line = wait_for(
        f"salesstream {command[0]} to be ready", lambda: "\n" in out.read_text() and out.read_text()
    )
    return process, str(json.loads(line.splitlines()[0])["api_url"])


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`salesstream up` in its own folder (its stack record there too), 2-second windows."""
    home = tmp_path_factory.mktemp("dashboard")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "SALESSTREAM_HOME": str(home / "var"),
    }
    up, base = start(home, env, "up")
    try:
        yield Stack(home, env, base, up)
    finally:
        stop(up)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def salesstream(stack: Stack, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "salesstream", *args, *COMMON, "--json"],
        cwd=stack.home,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def produce(
    stack: Stack, seed: int, *, count: int = 300, to_table: bool = False
) -> dict[tuple[str, str], int]:
    to = ("--to", "table") if to_table else ()
    arguments = ("--count", str(count), "--stores", "5", "--seed", str(seed), *to)
    result = json.loads(salesstream(stack, "produce", *arguments))
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


def open_page(browser: Any, base: str, viewport: dict[str, int]) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/?refresh=1")
    page.wait_for_selector("body[data-refreshes]")
    return page, errors


def rate_text(value: float) -> str:
    """How the page writes orders per minute: at most one decimal, thousands separated."""
    return f"{value:,.1f}".removesuffix(".0")


def headline(page: Any) -> dict[str, str]:
    figures = page.locator("[data-testid=today] [data-currency]")
    return {
        figures.nth(i).get_attribute("data-currency"): figures.nth(i).inner_text()
        for i in range(figures.count())
    }


def expected_headline(summary: dict[str, Any]) -> dict[str, str]:
    return {code: totals["net"] for code, totals in summary["today"].items()}


def store_table(page: Any) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator("tbody#stores tr").all()
    ]


def expected_store_table(summary: dict[str, Any]) -> list[list[str]]:
    codes = list(summary["currencies"])
    return [
        [
            store["store_id"],
            *(store["currencies"][c]["net"] if c in store["currencies"] else "" for c in codes),
            str(sum(t["orders"] for t in store["currencies"].values())),
        ]
        for store in summary["stores"]
    ]


def chart_windows(page: Any) -> int:
    return int(page.locator("[data-testid=chart]").get_attribute("data-windows") or 0)


def test_the_dashboard_shows_the_apis_figures_answers_hovers_and_follows_new_windows(
    stack: Stack, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    base = stack.base
    first = added(produce(stack, seed=21), produce(stack, seed=23, count=60, to_table=True))
    wait_for("the consumers to settle", lambda: settled(base, first))
    time.sleep(2.5)  # the snapshot's horizon stops 2 s short of now (clock slack)
    snapshot = json.loads(salesstream(stack, "snapshot"))
    assert snapshot["reconciliation"]["summary"]["status"] == "clean"

    page, errors = open_page(browser, base, DESKTOP)
    # the headline figures: the API's, which are the day rows of /sales added up
    summary = get_json(f"{base}/summary")
    today = datetime.now(UTC).date()
    day_rows = all_rows(base, f"granularity=day&from={today}&to={today + timedelta(days=1)}")
    for code, totals in summary["today"].items():
        assert totals["net_minor"] == sum(r["net_minor"] for r in day_rows if r["currency"] == code)
    wait_for("the headline to show the API's figures", lambda: headline(page) == expected_headline(summary))
    assert len(summary["today"]) >= 2  # the fleet sells in several currencies: all of them are shown
    rate = summary["orders_per_minute"]
    assert page.locator("[data-testid=orders-per-minute]").inner_text() == rate_text(rate["value"])
    assert f"{rate['orders']:,} orders from" in page.locator("[data-testid=orders-note]").inner_text()
    assert store_table(page) == expected_store_table(summary)
    note = "Sales show up once the 2-second period they arrived in has closed."
    assert page.locator("#newest-note").inner_text() == note
    assert re.fullmatch(
        r"updated \d+ s ago · newest sales shown \d+ s ago · refreshes every 1 s",
        page.locator("[data-testid=freshness]").inner_text(),
    )

    # the chart: the chosen currency's stores, axes, the horizon, values on hover
    currency = page.locator("[data-testid=currency]").input_value()
    chart = page.locator("[data-testid=chart]")
    charted = set((chart.get_attribute("data-stores") or "").split(","))
    assert charted == {store for store, code in first if code == currency}
    assert page.locator("[data-testid=chart] .u-axis").count() == 2
    assert chart.get_attribute("data-horizon") == "shown"
    assert (
        "snapshot " + snapshot["snapshot"]["snapshot_id"]
        in page.locator("[data-testid=sources]").inner_text()
    )
    box = page.locator("[data-testid=chart] .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    values = page.locator("[data-testid=chart] .u-legend .u-series .u-value").all_inner_texts()
    assert re.fullmatch(r"\d\d:\d\d:\d\d", values[0]), values  # the window hovered
    assert all(re.fullmatch(rf"-?[\d,]+(\.\d+)? {currency}", v) for v in values[1:]), values
    assert page.locator("[data-testid=reconciliation] .badge").inner_text() == "clean"
    shards = get_json(f"{base}/shards")
    for shard in shards["shards"]:
        for code, totals in shard["currencies"].items():
            cells = page.locator(f'tr[data-shard="{shard["shard_id"]}"][data-currency="{code}"] td')
            assert cells.nth(3).inner_text() == format_minor(totals["net_sales_minor"], code)
        rows = page.locator(f'tr[data-shard="{shard["shard_id"]}"]')
        assert {rows.nth(i).get_attribute("data-source") for i in range(rows.count())} == {shard["source"]}
    # each source's shards under a row that names it: the stream's, then the orders table's
    labels = {"stream": "Kinesis stream", "table": "orders table (DynamoDB stream)"}
    assert page.locator("tbody#shards tr.source").all_inner_texts() == [
        f"{labels[source['source']]} {source['name']}" for source in shards["sources"]
    ]
    assert {shard["source"] for shard in shards["shards"]} == {"stream", "table"}
    windows_before = chart_windows(page)
    assert windows_before >= 1

    # new windows close while the page is open: it follows without a reload
    both = added(first, produce(stack, seed=22))
    wait_for("the API to hold both runs", lambda: net_by_store(all_rows(base, "granularity=window")) == both)
    wait_for("the page to follow", lambda: chart_windows(page) > windows_before)
    summary = get_json(f"{base}/summary")
    wait_for("the headline to follow", lambda: headline(page) == expected_headline(summary))
    assert page.locator("[data-testid=error]").is_hidden()
    assert not errors, errors
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.4)
    shot(page, "dashboard-desktop.png", capsys)
    page.close()


def test_at_phone_width_nothing_overflows_sideways(
    stack: Stack, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    page, errors = open_page(browser, stack.base, PHONE)
    wait_for("the headline", lambda: headline(page))
    widths = page.evaluate(
        "() => ({ page: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
        " screen: window.innerWidth,"
        " chart: document.querySelector('#chart canvas').getBoundingClientRect().right })"
    )
    assert widths["screen"] == PHONE["width"]
    assert max(widths["page"], widths["body"], widths["chart"]) <= PHONE["width"], widths
    # the headline cards stack: each as wide as the screen allows
    cards = page.locator("section.card").all()
    tops = [card.bounding_box()["y"] for card in cards]
    assert tops == sorted(tops)
    assert len(set(tops)) == len(tops)
    assert not errors, errors
    shot(page, "dashboard-phone.png", capsys)
    page.close()


def test_when_the_backend_is_gone_the_error_panel_names_the_cause(
    stack: Stack, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    serve, served = start(stack.home, stack.env, "serve")  # the same stack, from its record
    try:
        page, errors = open_page(browser, served, DESKTOP)
        wait_for("the headline", lambda: headline(page))
        stop(stack.up)  # the emulator (and the pipeline) stop; `serve` goes on
        endpoint = json.loads((stack.home / "up.out").read_text().splitlines()[0]).get("endpoint", "")
        answer = call(f"{served}/summary")
        assert answer.status == 503
        assert answer.body["error"] == "backend_unavailable"
        panel = page.locator("[data-testid=error]")
        panel.wait_for(state="visible", timeout=60_000)
        cause = page.locator("[data-testid=error-cause]").inner_text()
        assert cause == answer.body["message"]
        assert cause.startswith("the API cannot read its data: Could not connect to the endpoint URL")
        if endpoint:
            assert endpoint.rstrip("/") in cause
        assert (
            "is the emulator (or the stack) still running?"
            in page.locator("[data-testid=error-hint]").inner_text()
        )
        assert "Internal Server Error" not in panel.inner_text()
        shot(page, "dashboard-error.png", capsys)

        stop(serve)  # now the server is gone too
        wait_for(
            "the panel to say the server does not answer",
            lambda: "does not answer" in page.locator("[data-testid=error-cause]").inner_text(),
        )
        assert page.locator("[data-testid=error-cause]").inner_text() == (
            f"The dashboard's server at {served} does not answer."
        )
        assert not errors, errors
        page.close()
    finally:
        stop(serve)


def shot(page: Any, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\ndashboard screenshot: {path}")
    assert path.stat().st_size > 10_000
