"""powertools' `log_metrics`, made to honour POWERTOOLS_METRICS_DISABLED across invocations.

powertools 3.x (checked on 3.37) neither prints nor clears the metric set at the end of an
invocation when metrics are disabled, so a long-lived process (the local runtime, a load test)
accumulates values until `add_metric` reaches 100 values of one metric and prints the set
anyway. Clearing the set after each disabled invocation keeps the switch off and the memory flat.

An invocation that raises counts one `InvocationsFailed` before the flush: the failure is then in
the function's own namespace next to its other figures (Lambda's `Errors` is per function only),
and powertools does not warn of an empty metric set for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

Handler = TypeVar("Handler", bound=Callable[..., Any])


def log_metrics(metrics: Metrics) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def counting_failures(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            except BaseException:
                metrics.add_metric(name="InvocationsFailed", unit=MetricUnit.Count, value=1)
                raise

        flushing = metrics.log_metrics(counting_failures)

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            try:
                return flushing(event, context)
            finally:
                if is_metrics_disabled():
                    metrics.clear_metrics()

        return run  # type: ignore[return-value]

    return decorate
