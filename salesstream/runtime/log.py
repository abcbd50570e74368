"""Structured logs of the runtime: powertools Logger, JSON lines on stderr.

Powertools rather than stdlib logging with a hand-written JSON formatter: it is already the
handlers' logger, so the runtime's lines (mapping, shard, window, sequence range) and the
handlers' lines share one format and can be read and filtered together. Level from
POWERTOOLS_LOG_LEVEL (default INFO); per-invocation lines are DEBUG.
"""

from __future__ import annotations

import sys

from aws_lambda_powertools import Logger

logger = Logger(service="salesstream-runtime", stream=sys.stderr)
