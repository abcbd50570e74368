"""The serving API during a load test: the template's API function behind the local stand-in for
API Gateway (salesstream/emulator/local_api.py), in this process, as `salesstream serve` runs it.

Its requests are a reader's, not the pipeline's: once the API has built its clients (on the
first request, as a cold start does), they are taken out of the request meter, so the probe's
reads never reach the cost model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPConnection
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from salesstream.emulator.local_api import LocalHttpApi

if TYPE_CHECKING:
    from pathlib import Path

    from load_tests.meters import RequestMeter
    from salesstream.deploy.template import Template


class ApiStartError(RuntimeError):
    """The served API did not answer its first request."""


@contextmanager
def serving_api(template: Template, meter: RequestMeter, stats_file: Path) -> Iterator[LocalHttpApi]:
    """The API on 127.0.0.1 (a free port) for the duration of the block; `/shards` reports the lag
    from `stats_file`, the runtime's stats (else it would ask CloudWatch)."""
    from consumers.serving.handler import api as served

    served.cache_clear()  # a cold start with this stack's environment (a process may serve several)
    environment = {"RUNTIME_STATS_FILE": str(stats_file.resolve())}
    api = LocalHttpApi.from_template(template, environment=environment).start()
    try:
        _cold_start(api.url)
        _exclude_api_clients(meter)
        yield api
    finally:
        api.stop()


def _cold_start(url: str) -> None:
    split = urlsplit(url)
    connection = HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=30)
    try:
        connection.request("GET", "/shards")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise ApiStartError(f"GET /shards answered {response.status}: {body[:300]!r}")


def _exclude_api_clients(meter: RequestMeter) -> None:
    # imported only now: the function's environment is set once its route is built
    from consumers.serving.handler import api

    served = api()  # the process's API object, built by the first request
    speed = served.speed
    clients = (served.views.dynamodb, served.views.s3, speed.dynamodb, speed.kinesis, speed.streams)
    for client in {id(client): client for client in clients}.values():
        meter.exclude(client)
