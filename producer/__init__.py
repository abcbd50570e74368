"""The salesstream producer: what a POS integration imports.

from producer import Producer, producer_client
"""

from producer.producer import Producer
from producer.result import ProducerResult, StoreTally
from producer.sender import RetryPolicy, producer_client
from producer.settings import ProducerSettings

__all__ = ["Producer", "ProducerResult", "ProducerSettings", "RetryPolicy", "StoreTally", "producer_client"]
