"""Pure-ASGI middleware: request limits (body size, timeout) and metrics.

Why pure ASGI rather than ``BaseHTTPMiddleware``: the body limit must act while the body
streams in (a client may send no ``Content-Length``, or lie), which needs a wrapped
``receive``; and both run on every request, where a plain ASGI callable costs least.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from duchenne.server.handlers import ApiError, error_body
from duchenne.server.metrics import Metrics

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class PayloadTooLargeError(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "PayloadTooLarge", f"request body exceeds {limit:,} bytes")


async def send_json_error(send: Callable, status: int, type: str, message: str) -> None:
    """Answer directly from middleware with the service's JSON error body."""
    body = json.dumps(error_body(status, type, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (429, 503):
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Refuse bodies over the limit (413) and requests running past the timeout (503).

    Args:
        app: the wrapped ASGI app.
        limits: ``(method, path) -> (max_body_bytes, timeout_s)``.
    """

    def __init__(self, app: ASGIApp, limits: Callable[[str, str], tuple[int, float]]) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_body, timeout = self.limits(scope["method"], scope["path"])
        length = _content_length(scope)
        if length is not None and length > max_body:
            await send_json_error(
                send, 413, "PayloadTooLarge", f"request body exceeds {max_body:,} bytes"
            )
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    raise PayloadTooLargeError(max_body)
            return message

        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, limited_receive, tracking_send), timeout)
        except asyncio.TimeoutError:
            logger.warning("%s %s timed out after %.1f s", scope["method"], scope["path"], timeout)
            if not started:
                await send_json_error(
                    send, 503, "Timeout", f"request took longer than {timeout:g} s"
                )


class MetricsMiddleware:
    """Count requests by route template and status, and time them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        self.metrics.in_flight += 1

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            self.metrics.in_flight -= 1
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.inc(method=scope["method"], route=route, status=str(status))
            self.metrics.latency.observe(time.perf_counter() - t0, route=route)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
