"""One place that turns every failure into an HTTP status and a JSON error body.

Why one mapping: the pipeline raises typed ``duchenne.errors`` classes for bad input; the
server must answer those with a 4xx and a readable reason, answer overload with 429/503,
and never leak a traceback. Every error body has the same shape::

    {"error": {"status": 422, "type": "ImageLoadError", "message": "<bytes>: not an image"}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from duchenne import errors
from duchenne.server.batcher import QueueFullError, ShuttingDownError
from duchenne.server.jobs import JobsClosedError, TooManyJobsError

logger = logging.getLogger(__name__)

#: duchenne.errors class -> HTTP status. The most specific class in an error's MRO wins.
ERROR_STATUS: dict[type[BaseException], int] = {
    errors.ImageTooLargeError: 413,
    errors.UnsupportedFormatError: 415,
    errors.ImageLoadError: 422,
    errors.VideoOpenError: 422,
    errors.VideoDecodeError: 422,
    errors.NoFaceDetectedError: 422,
    errors.DatasetError: 422,
    errors.UnknownModelError: 404,
    errors.MissingExtraError: 501,
    errors.InvalidFacesError: 500,
    errors.AnalysisError: 500,
    errors.UnrecognizedModelError: 500,
    errors.ModelIntegrityError: 500,
    errors.OutputError: 500,  # the server's own disk or folder, never the client's fault
    errors.DuchenneError: 400,
    # the service's own conditions
    QueueFullError: 503,
    ShuttingDownError: 503,
    JobsClosedError: 503,
    TooManyJobsError: 429,
}

#: seconds a client should wait before retrying an overloaded (429) or busy (503) server
RETRY_AFTER = {429: "5", 503: "1"}

#: scope key naming why a limit refused the request (``duchenne_rejected_total{reason}``)
REJECTED = "duchenne.rejected"

#: refusals by a limit, before any analysis: exception class (nearest in the MRO) or
#: ``ApiError.type`` -> the ``reason`` label of ``duchenne_rejected_total``. The middleware
#: adds ``queue_full`` (admission) and ``body_too_large`` (``Content-Length``, streamed
#: bodies); the transport ``header_too_large`` (431) and ``header_timeout`` (408).
REJECTION_REASONS: dict[type[BaseException] | str, str] = {
    QueueFullError: "queue_full",
    ShuttingDownError: "shutting_down",
    JobsClosedError: "shutting_down",
    TooManyJobsError: "too_many_jobs",
    errors.ImageTooLargeError: "too_many_pixels",
    "PayloadTooLarge": "body_too_large",
    "TooManyFiles": "too_many_files",
    "VideoTooLong": "video_too_long",
}


def rejection_reason(exc: BaseException) -> str | None:
    """Why a limit refused the request that raised ``exc`` (None: not a refusal)."""
    if isinstance(exc, ApiError):
        return REJECTION_REASONS.get(exc.type)
    for cls in type(exc).__mro__:
        if cls in REJECTION_REASONS:
            return REJECTION_REASONS[cls]
    return None


def _mark_rejected(request: Request, exc: BaseException) -> None:
    reason = rejection_reason(exc)
    if reason is not None:
        request.scope[REJECTED] = reason


class ApiError(Exception):
    """A service-level refusal with its status, e.g. ``ApiError(413, "PayloadTooLarge", ...)``."""

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers


def status_for(exc: BaseException) -> int:
    """The HTTP status of an exception: its nearest class in ``ERROR_STATUS``, else 500."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500


def error_body(status: int, type: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON error document."""
    return {"error": {"status": status, "type": type, "message": message, **extra}}


def error_response(
    status: int, type: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A JSON error response, with ``Retry-After`` on 429/503."""
    headers = dict(headers or {})
    if status in RETRY_AFTER:
        headers.setdefault("Retry-After", RETRY_AFTER[status])
    return JSONResponse(error_body(status, type, message, **extra), status, headers=headers)


async def _known(request: Request, exc: Exception) -> JSONResponse:
    _mark_rejected(request, exc)
    status = status_for(exc)
    if status >= 500 and status not in (501, 503):
        logger.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return error_response(status, "InternalError", "the server could not process the request")
    return error_response(status, type(exc).__name__, str(exc))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    _mark_rejected(request, exc)
    return error_response(exc.status, exc.type, exc.message, exc.headers)


#: the methods a 405's ``Allow`` header may name
HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route of the app answers at the request's path (the ``Allow``
    header of a 405): Starlette names only the first route's, so ``PUT /v1/videos/{id}``
    said ``Allow: GET`` although ``DELETE`` is routed there too. Asked of each route with
    ``matches`` (FastAPI nests included routers, so the routes' own method sets are not
    all at hand)."""
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed"}.get(
        exc.status_code, "HTTPError"
    )
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, name, str(exc.detail), headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    message = f"{'.'.join(first['loc'])}: {first['message']}".lstrip(": ")
    return error_response(422, "ValidationError", message, details=details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500,
        "InternalError",
        "the server could not process the request",
        {"Connection": "close"},  # uvicorn drops the connection after an unhandled error
    )


def install_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, _known)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
