"""Pure-ASGI middleware: admission, request limits (body size, timeout), errors, metrics.

Why pure ASGI rather than ``BaseHTTPMiddleware``: the body limit must act while the body
streams in (a client may send no ``Content-Length``, or lie), which needs a wrapped
``receive``; admission must answer before the body is read at all; and all of them run on
every request, where a plain ASGI callable costs least.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from duchenne.server.handlers import REJECTED, ApiError, error_body
from duchenne.server.metrics import Metrics

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class PayloadTooLargeError(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "PayloadTooLarge", f"request body exceeds {limit:,} bytes")


#: scope key set when the client went away mid-request (counted as status 499)
CLIENT_ABORT = "duchenne.client_abort"
CLIENT_CLOSED = 499  # nginx's "client closed request": no response could be sent


async def send_json_error(
    send: Callable, status: int, type: str, message: str, *, close: bool = False
) -> None:
    """Answer directly from middleware with the service's JSON error body."""
    body = json.dumps(error_body(status, type, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (429, 503):
        headers.append((b"retry-after", b"1"))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AdmissionMiddleware:
    """Refuse analysis requests with 503 before their bodies are read, when the service is full.

    Why: the batcher refuses an image only after its request body was received and parsed;
    under 4x overload most of the CPU went into reading bodies that were then refused, and
    successful answers fell from ~175/s to ~31-36/s. Here a request to an analysis route
    is admitted only while fewer than ``capacity`` such requests are in flight and the
    image queue has room; otherwise it is answered 503, its body never read.

    The refusal is sent after ``refuse_delay_s`` (an idle ``asyncio.sleep``: no thread, no
    body held beyond the transport's 64 KiB buffer). Clients that retry at once, ignoring
    ``Retry-After``, otherwise turn each refusal into the next request immediately; on two
    cores 128 such clients made >1,000 refusals/s whose handling (and the GIL it holds)
    starved the admitted work. Paced, they cost next to nothing.

    Args:
        app: the wrapped ASGI app.
        paths: POST routes that analyse images.
        capacity: analysis requests admitted at once (``max_queue``).
        refuse_delay_s: how long a refused request waits for its 503.
    """

    def __init__(
        self, app: ASGIApp, paths: frozenset[str], capacity: int, refuse_delay_s: float = 0.0
    ) -> None:
        self.app, self.paths, self.capacity = app, paths, capacity
        self.refuse_delay_s = refuse_delay_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.capacity or self._queue_full(scope):
            scope[REJECTED] = "queue_full"
            if self.refuse_delay_s > 0:
                await asyncio.sleep(self.refuse_delay_s)
            await send_json_error(  # the batcher's own refusal, only earlier
                send,
                503,
                "QueueFullError",
                f"{self.in_flight} analysis requests in progress; the limit is {self.capacity}",
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _guarded(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/") in self.paths
        )

    def _queue_full(self, scope: Scope) -> bool:
        engine = getattr(getattr(scope.get("app"), "state", None), "engine", None)
        batcher = getattr(engine, "batcher", None)
        return batcher is not None and batcher.pending >= batcher.max_pending


class LimitsMiddleware:
    """Refuse bodies over the limit (413) and requests running past the timeout (503);
    count a client that disconnects mid-request as 499 with one log line; answer an
    unexpected error with a 500 that closes the connection.

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
            scope[REJECTED] = "body_too_large"
            await send_json_error(
                send, 413, "PayloadTooLarge", f"request body exceeds {max_body:,} bytes"
            )
            return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                scope[CLIENT_ABORT] = received
            elif message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body:
                    scope[REJECTED] = "body_too_large"
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
        except Exception as exc:
            if CLIENT_ABORT in scope or type(exc).__name__ == "ClientDisconnect":
                scope.setdefault(CLIENT_ABORT, received)
                logger.warning(
                    "%s %s: client closed the connection after sending %d body bytes (499)",
                    scope["method"],
                    scope["path"],
                    scope[CLIENT_ABORT],
                )
                return
            # one traceback here (not again from Starlette and uvicorn), and a 500 that
            # says Connection: close, so a keep-alive client does not reuse a dropped socket
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_json_error(
                send, 500, "InternalError", "the server could not process the request", close=True
            )


class MetricsMiddleware:
    """Count requests by route template and status, and time them; count the requests a
    limit refused (``duchenne_rejected_total``, by reason and route).

    Requests refused before routing (admission's 503, a 413 from ``Content-Length``) are
    counted under the route they were sent to, found among ``routes``, not as
    ``unmatched``.

    Args:
        app: the wrapped ASGI app.
        metrics: where to count.
        routes: the app's routes (Starlette ``BaseRoute``s with a ``path``), to name the
            route of a request answered before routing.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[Any] = ()) -> None:
        self.app, self.metrics, self.routes = app, metrics, tuple(routes)

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
            if CLIENT_ABORT in scope:
                status = CLIENT_CLOSED
            self.metrics.in_flight -= 1
            route = route_template(scope, self.routes)
            self.metrics.requests.inc(method=scope["method"], route=route, status=str(status))
            self.metrics.latency.observe(time.perf_counter() - t0, route=route)
            if REJECTED in scope:
                self.metrics.rejected.inc(reason=scope[REJECTED], route=route)


def route_template(scope: Scope, routes: Sequence[Any] = ()) -> str:
    """The path template of the route a request is for (``/v1/videos/{job_id}``), also
    when it was answered before routing (then matched against ``routes``); ``unmatched``
    when no route has its path."""
    route = scope.get("route")
    if route is None:
        from starlette.routing import Match

        # a mount (the dashboard's /static files) has moved its prefix into root_path
        scope = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    return getattr(route, "path", None) or "unmatched"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
