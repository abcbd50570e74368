"""HTTP helpers for the serving layer's tests: a real HTTP client against the local HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text of a non-JSON answer


def call(url: str, method: str = "GET") -> Answer:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - a loopback URL of the test
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return _answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return _answer(error.code, error.headers, error.read())


def _answer(status: int, headers: Any, data: bytes) -> Answer:
    flat = {name.lower(): value for name, value in headers.items()}
    is_json = flat.get("content-type", "").startswith("application/json")
    return Answer(status, flat, json.loads(data) if is_json else data.decode())


def get_json(url: str) -> Any:
    answer = call(url)
    assert answer.status == 200, (url, answer.status, answer.body)
    return answer.body


def all_rows(base: str, query: str) -> list[dict[str, Any]]:
    """Every row of a /sales query, following `next` page by page."""
    rows: list[dict[str, Any]] = []
    url = f"{base}/sales?{query}"
    for _ in range(1000):
        page = get_json(url)
        rows += page["rows"]
        if page["next"] is None:
            return rows
        url = f"{base}/sales?{query}&after={page['next']}"
    raise AssertionError("the pages never end")


def net_by_store(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    net: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["store_id"], row["currency"])
        net[key] = net.get(key, 0) + row["net_minor"]
    return net
