"""The point-of-sale integration the docs show (docs/producer.md and docs/deploy.md embed the
marked lines); tests/integration/test_doc_examples.py runs it against the embedded emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from producer import Producer, producer_client

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from producer import ProducerResult


def aws_client() -> Any:
    # --8<-- [start:client]
    client = producer_client(region_name="eu-west-1")  # boto3's credential chain; one attempt per call
    # --8<-- [end:client]
    return client


def send_from_the_till(
    client: Any, stream: str, spool: Path, events_from_the_till: Iterable[bytes]
) -> ProducerResult:
    # --8<-- [start:usage]
    with Producer(client, stream, spool=spool) as producer:
        for raw in events_from_the_till:  # JSON bytes (the wire format) or an OrderEvent
            refusal = producer.submit(raw)  # None, or a RejectedEvent (.reason, .detail)
            if refusal is not None:  # counted by reason code and never sent
                print(f"refused: {refusal}")  # never repeats a field value: safe to log
        producer.poll()  # when the till goes quiet: send what lingered
    print(producer.result.model_dump_json())  # what happened, including the tally
    # --8<-- [end:usage]
    return producer.result
