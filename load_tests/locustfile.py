"""Locust drives the POS fleet through the real producer, for those who already run Locust.

Each Locust user is a group of tills: its own simulated fleet (its own run id, so no two users
and no two runs share an event id) and its own `Producer` (one per user: a Producer is not
thread-safe, and each has its own spool). A task hands the producer a batch of events; Locust
reports it as a request of type "producer" (response time = submit_many, which includes the
PutRecords calls it triggered; length = events). Events the producer refused or could not send
are reported as failures.

    salesstream up --no-consumers &          # or LocalStack, or any endpoint with the stack
    locust -f load_tests/locustfile.py --host http://127.0.0.1:PORT    # the endpoint_url

Settings (environment): SALESSTREAM_STREAM (default: the stream of the running `salesstream up`,
from the stack record), SALESSTREAM_LOCUST_EVENTS (events per task, 100),
SALESSTREAM_LOCUST_TASKS_PER_SECOND (per user, 10: a user sends ~1,000 events/s),
SALESSTREAM_LOCUST_STORES (stores per user's fleet, 200), AWS_DEFAULT_REGION.
Locust is in the `loadtest` extra. For the figures the project reports (lag, latency, every event
counted once, cost) use `salesstream loadtest`: Locust measures only the producer's side.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from locust import User, constant_throughput, task

from producer.producer import Producer
from producer.sender import PRODUCER_CLIENT_CONFIG
from producer.simulator import Fleet, FleetConfig
from salesstream.cli.commands.common import stack_file
from salesstream.emulator.targets import DEFAULT_REGION, Endpoint, Target


class ProducerRefused(RuntimeError):
    """Some events of a task were refused by the contract or spooled (not sent)."""


def _stream() -> str:
    if name := os.environ.get("SALESSTREAM_STREAM"):
        return name
    if stack_file().exists():
        return str(json.loads(stack_file().read_text())["stream"])
    return "dev-salesstream-orders"


class PosTills(User):
    """A group of tills selling through one producer."""

    wait_time = constant_throughput(float(os.environ.get("SALESSTREAM_LOCUST_TASKS_PER_SECOND", "10")))
    events_per_task = int(os.environ.get("SALESSTREAM_LOCUST_EVENTS", "100"))

    def on_start(self) -> None:
        region = os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION)
        endpoint = (
            Endpoint(Target.CUSTOM, self.host, region) if self.host else Endpoint(Target.AWS, None, region)
        )
        run_id = uuid.uuid4().hex[:12]
        self.fleet = Fleet(
            FleetConfig(stores=int(os.environ.get("SALESSTREAM_LOCUST_STORES", "200")), run_id=run_id)
        )
        spool = Path(tempfile.gettempdir()) / f"salesstream-locust-{run_id}.spool.jsonl"
        self.producer = Producer(endpoint.client("kinesis", PRODUCER_CLIENT_CONFIG), _stream(), spool)
        self.producer.open()

    @task
    def sell(self) -> None:
        batch = self.fleet.events(self.events_per_task)
        started = time.perf_counter()
        spooled_before = self.producer.result.spooled
        error: Exception | None = None
        try:
            refused = self.producer.submit_many(batch)
            self.producer.poll()
            spooled = self.producer.result.spooled - spooled_before
            if refused or spooled:
                error = ProducerRefused(
                    f"{len(refused)} refused, {spooled} spooled: {self.producer.result.error}"
                )
        except Exception as failure:  # noqa: BLE001 - reported to Locust as a failed request
            error = failure
        self._report("submit_many", started, len(batch), error)

    def on_stop(self) -> None:
        started = time.perf_counter()
        result = self.producer.close()
        error = ProducerRefused(f"{result.spooled} spooled: {result.error}") if result.spooled else None
        self._report("close", started, 0, error)

    def _report(self, name: str, started: float, events: int, error: Exception | None) -> None:
        context: dict[str, Any] = {"sent": self.producer.result.sent}
        self.environment.events.request.fire(
            request_type="producer",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=events,
            exception=error,
            context=context,
        )
