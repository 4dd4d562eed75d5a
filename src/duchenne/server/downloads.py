"""Names of the files the service sends: taken from the client's upload, not a job id.

Why: a user who uploads ``party.mp4`` and saves its results expects ``party.csv``, not
``3f2a9c....csv``. The name travels in ``Content-Disposition``, so a browser, the
dashboard (which reads it from its fetched downloads) and ``curl -OJ`` all get it. The
client's file name can hold anything, so only a cleaned stem of it is used.

Files go out through ``FileResponse`` and ``StaticFiles`` from here: Starlette's own, except
that their refusals of a ``Range`` header come in the service's JSON error shape.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi.staticfiles import StaticFiles as _StaticFiles
from starlette.datastructures import Headers
from starlette.responses import FileResponse as _FileResponse
from starlette.responses import JSONResponse

from duchenne.server.handlers import error_body

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: the statuses Starlette's ``FileResponse`` answers a ``Range`` header with, as plain
#: text and before any byte of the file: the ``type`` of their JSON error
RANGE_REFUSALS = {400: "MalformedRange", 416: "RangeNotSatisfiable"}

#: Runs of characters a download name does not keep (all but letters, digits and ``-_.``).
_UNSAFE = re.compile(r"[^\w.-]+")


def file_stem(filename: str | None, limit: int = 64) -> str:
    """The stem of a client's file name, safe to name a download with.

    Folders (``../x.mp4``, ``C:\\x.mp4``) are dropped, accents are composed (macOS sends
    ``e`` + U+0301 for ``é``), every run of characters other than letters, digits and
    ``-_.`` becomes one ``_`` (no quotes, separators or control characters reach a header
    or a file system), leading and trailing ``._-`` go (no hidden file, no option-like
    name), and the stem is cut to ``limit`` characters. Empty when nothing is left.

    Examples:
        >>> file_stem("my party (1).MP4")
        'my_party_1'
        >>> file_stem("../.mp4")
        ''
    """
    if not filename:
        return ""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", filename))[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return _UNSAFE.sub("_", stem).strip("._-")[:limit].rstrip("._-")


def content_disposition(name: str, kind: str = "attachment") -> dict[str, str]:
    """The ``Content-Disposition`` header naming a download ``name``, written as
    Starlette's ``FileResponse`` writes it: ``filename*`` (RFC 6266) for a name that is not
    plain ASCII. ``kind`` ``inline`` names a document a browser still shows (a polled
    status), ``attachment`` one it saves.

    Examples:
        >>> content_disposition("party.csv")
        {'Content-Disposition': 'attachment; filename="party.csv"'}
        >>> content_disposition("fête.json", "inline")
        {'Content-Disposition': "inline; filename*=utf-8''f%C3%AAte.json"}
    """
    quoted = quote(name)
    if quoted == name:
        return {"Content-Disposition": f'{kind}; filename="{name}"'}
    return {"Content-Disposition": f"{kind}; filename*=utf-8''{quoted}"}


def json_range_refusals(scope: dict[str, Any], send: Send) -> Send:
    """``send`` for a file response, with its refusals of the ``Range`` header in the
    service's JSON error shape.

    Why: Starlette answers a range past the end of the file with 416 and an empty
    ``text/plain`` body, and a malformed one with 400 and a line of text, while every
    other error of the service is ``{"error": {"status", "type", "message"}}`` (what the
    dashboard and clients read). The refusal is rewritten on its way out (status and the
    ``Content-Range: bytes */size`` header kept), so Starlette's own range parsing stays
    the one that decides; every other message passes unchanged.
    """
    held: Message | None = None

    async def send_json(message: Message) -> None:
        nonlocal held
        if held is None:
            if message["type"] == "http.response.start" and message["status"] in RANGE_REFUSALS:
                held = message  # sent with the JSON once the text it explains is here
            else:
                await send(message)
            return
        status = held["status"]
        text = bytes(message.get("body", b"")).decode("utf-8", "replace").strip()
        kept = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in held["headers"]
            if name.lower() == b"content-range"
        }
        error = JSONResponse(
            error_body(status, RANGE_REFUSALS[status], _range_message(scope, held, text)),
            status,
            headers=kept,
        )
        await send({**held, "headers": error.raw_headers})
        await send({"type": "http.response.body", "body": error.body})

    return send_json


def _range_message(scope: dict[str, Any], start: Message, text: str) -> str:
    asked = Headers(scope=scope).get("range", "")
    if start["status"] == 416:
        size = Headers(raw=start["headers"]).get("content-range", "").rpartition("/")[2]
        return f"range {asked!r} lies outside the file ({size} bytes)"
    return f"{text or 'Malformed range header.'} (Range: {asked!r})"


class FileResponse(_FileResponse):
    """Starlette's ``FileResponse`` (ranges, ``ETag``, HEAD without the file), with its
    refusals of a ``Range`` header as JSON errors (``json_range_refusals``)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, json_range_refusals(scope, send))


class StaticFiles(_StaticFiles):
    """Starlette's ``StaticFiles``, with its refusals of a ``Range`` header as JSON errors
    (``json_range_refusals``); its 404 and 405 are exceptions, answered by the handlers."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            send = json_range_refusals(scope, send)
        await super().__call__(scope, receive, send)
