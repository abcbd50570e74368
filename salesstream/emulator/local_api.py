"""A local stand-in for API Gateway's HTTP API: requests on 127.0.0.1 become payload format 2.0
events for the template's own handler, and its answers become HTTP responses.

What it reproduces of an HTTP API with Lambda proxy integrations (payload 2.0):
- routes from the template's `HttpApi` events: `METHOD /path`, `ANY`, `{name}` (one segment) and
  `{name+}` (greedy); exact routes win over parameter routes, greedy ones come last. A request
  no route matches gets API Gateway's own answer, 404 `{"message":"Not Found"}`, and never
  reaches a function;
- the event: `version`, `routeKey`, `rawPath`, `rawQueryString`, lower-case `headers` (repeats
  joined by commas), `queryStringParameters` (repeats joined by commas, absent when empty),
  `pathParameters`, `cookies`, `requestContext` (`http.method/path/sourceIp/userAgent`,
  `requestId`, `stage` `$default`, `timeEpoch`), `body` and `isBase64Encoded`;
- the answer: `statusCode`, `headers`, `cookies`, `body` (base64 when `isBase64Encoded`); an
  answer without `statusCode` is sent as JSON with 200, as API Gateway infers it;
- a function error or timeout is 500 `{"message":"Internal Server Error"}`, logged with the
  function's error.

The function runs in this process through the local runtime's invoker (a Lambda-like context,
the template's Timeout, one invocation at a time as in one warm sandbox). The template's
environment for it (and what the caller adds, such as RUNTIME_STATS_FILE) is held in this process
while its handler is imported and while it runs, never left behind
(salesstream/runtime/environment.py).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from salesstream.deploy.template import FunctionSpec, Template
from salesstream.runtime.environment import function_environment_set
from salesstream.runtime.invoker import FunctionInvoker, Raised, Returned, TimedOut, resolve_handler
from salesstream.runtime.log import logger

LOOPBACK: Final = "127.0.0.1"
_JSON: Final = ("content-type", "application/json")
_NOT_FOUND: Final = (404, [_JSON], b'{"message":"Not Found"}')
_FAILED: Final = (500, [_JSON], b'{"message":"Internal Server Error"}')
_MAX_BODY: Final = 10 * 1024 * 1024  # API Gateway's payload limit


class NoRoutes(ValueError):
    """The template defines no HttpApi event to serve."""


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    path: str  # as in the template: /sales, /items/{id}, /{proxy+}
    invoker: FunctionInvoker

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def rank(self) -> int:
        """0 exact, 1 with parameters, 2 greedy: API Gateway prefers the most specific route."""
        return 2 if "+}" in self.path else 1 if "{" in self.path else 0

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in ("ANY", method):
            return None
        pattern = re.sub(
            r"\\\{(\w+)\\\+\\\}|\\\{(\w+)\\\}",
            lambda m: f"(?P<{m.group(1)}>.+)" if m.group(1) else f"(?P<{m.group(2)}>[^/]+)",
            re.escape(self.path),
        )
        found = re.fullmatch(pattern, path)
        return None if found is None else found.groupdict()


def routes_of(template: Template, environment: Mapping[str, str] | None = None) -> list[Route]:
    """The routes of every function with HttpApi events. Each function's environment (the
    template's, then `environment` over it) is held while its handler is imported and runs:
    handlers read their settings from it."""
    routes = []
    for function in template.functions():
        if not function.http_events:
            continue
        invoker = _invoker(template, function, {**function.environment, **(environment or {})})
        routes += [Route(event.method, event.path, invoker) for event in function.http_events]
    if not routes:
        raise NoRoutes("the template has no function with an HttpApi event")
    return sorted(routes, key=lambda route: route.rank)


def _invoker(template: Template, function: FunctionSpec, environment: dict[str, str]) -> FunctionInvoker:
    with function_environment_set(environment):  # powertools reads it when a module creates its logger
        handler = resolve_handler(function.handler, function.logical_id)
    return FunctionInvoker(
        handler,
        function_name=function.name,
        function_arn=template.arn(function.logical_id),
        memory_mb=function.memory_mb,
        timeout_seconds=function.timeout_seconds,
        environment=environment,
    )


def http_api_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    route: Route,
    path_parameters: dict[str, str],
    host: str,
) -> dict[str, Any]:
    """The payload format 2.0 event API Gateway sends for this request."""
    split = urlsplit(target)
    joined_headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        if name.lower() == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        key = name.lower()
        joined_headers[key] = f"{joined_headers[key]},{value}" if key in joined_headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": split.path,
        "rawQueryString": split.query,
        "headers": joined_headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": split.path,
                "protocol": "HTTP/1.1",
                "sourceIp": LOOPBACK,
                "userAgent": joined_headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            event["body"] = body.decode()
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


Headers = list[tuple[str, str]]


def http_response(answer: Any) -> tuple[int, Headers, bytes]:
    """Status, headers and body from a function's answer, by API Gateway's payload 2.0 rules."""
    if not (isinstance(answer, dict) and "statusCode" in answer):
        return 200, [("content-type", "application/json")], json.dumps(answer).encode()
    headers = [(name.lower(), str(value)) for name, value in (answer.get("headers") or {}).items()]
    headers += [("set-cookie", cookie) for cookie in answer.get("cookies") or []]
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    return int(answer["statusCode"]), headers, data


class LocalHttpApi:
    """`start()` serves on 127.0.0.1 (port 0: a free one; see `url`), `stop()` ends it."""

    def __init__(self, routes: list[Route], port: int = 0) -> None:
        self.routes = routes
        self._server = ThreadingHTTPServer((LOOPBACK, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-http-api", daemon=True)

    @classmethod
    def from_template(
        cls, template: Template, *, port: int = 0, environment: Mapping[str, str] | None = None
    ) -> LocalHttpApi:
        """`environment`: variables the functions get beyond the template's."""
        return cls(routes_of(template, environment), port)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalHttpApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalHttpApi:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answer(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, host: str
    ) -> tuple[int, Headers, bytes]:
        path = urlsplit(target).path
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is None:
                continue
            event = http_api_event(method, target, headers, body, route, parameters, host)
            outcome = route.invoker.invoke(event)
            match outcome:
                case Returned(value):
                    return http_response(value)
                case Raised(error_type, message):
                    logger.error(
                        "function failed", extra={"route": route.key, "error": f"{error_type}: {message}"}
                    )
                case TimedOut(seconds):
                    logger.error("function timed out", extra={"route": route.key, "timeout_seconds": seconds})
            return _FAILED
        return _NOT_FOUND


def _handler_class(api: LocalHttpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > _MAX_BODY:
                self._send(413, [_JSON], b'{"message":"Request Entity Too Large"}')
                return
            body = self.rfile.read(length) if length else b""
            status, headers, data = api.answer(
                self.command, self.path, list(self.headers.items()), body, self.headers.get("host", LOOPBACK)
            )
            self._send(status, headers, data)

        def _send(self, status: int, headers: Headers, data: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name != "content-length":  # ours, below: the body as sent
                    self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("request", extra={"line": format % args})

    return Handler
