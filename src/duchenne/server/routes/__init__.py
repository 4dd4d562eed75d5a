"""HTTP routes, one ``Router`` per module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter


class Router(APIRouter):
    """An ``APIRouter`` whose every GET route answers HEAD too, as Starlette's own routes do.

    Why: FastAPI's routes answer only the methods they name (fastapi/fastapi#1773), so
    ``HEAD /v1/videos/{id}/preview`` -- what link checkers, ``curl -I`` and download
    managers send to learn a file's size and type -- was refused with 405 although GET
    works there, and RFC 9110 (section 9.3.2) asks a server that answers GET to answer
    HEAD. Each GET route gets a twin that answers HEAD with the same endpoint,
    dependencies (the API key, the query check) and therefore the same status and
    headers; the body is left out by the response (``FileResponse`` reads no file) or by
    the server. The twin is kept out of the OpenAPI document: HEAD is implied by GET there,
    and FastAPI would list a second operation under the same id.
    """

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: set[str] | list[str] | None = None,
        **options: Any,
    ) -> None:
        named = {method.upper() for method in methods or ("GET",)}
        super().add_api_route(path, endpoint, methods=methods, **options)
        if "GET" in named and "HEAD" not in named:
            options.update(include_in_schema=False, operation_id=None)
            super().add_api_route(path, endpoint, methods=["HEAD"], **options)
