"""Reading uploads: multipart form files or a raw request body, never a path or a URL.

Why one helper: every upload route accepts both ways of sending a file (browsers and
``curl -F`` send multipart, scripts often send the raw bytes) and must refuse the same
things the same way -- empty bodies, too many files, form fields that are not files. The
service never interprets a client string as a server-side path or URL: only uploaded
bytes are analysed.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from duchenne.server.handlers import ApiError

CHUNK = 1024 * 1024

#: OpenAPI description of a body that is one file, as multipart or raw bytes
ONE_FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the file as multipart/form-data (field `file`) or as the raw body",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

MANY_FILES_BODY = {
    "requestBody": {
        "required": True,
        "description": "several images as multipart/form-data (repeat the field `files`)",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            }
        },
    }
}


@dataclass
class Upload:
    data: bytes
    filename: str | None


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _too_many_files(max_files: int) -> ApiError:
    noun = "file" if max_files == 1 else "files"
    return ApiError(413, "TooManyFiles", f"at most {max_files} {noun} per request")


async def _form_files(request: Request, max_files: int) -> list[UploadFile]:
    try:
        form = await request.form(max_files=max_files + 1, max_fields=max_files + 10)
    except HTTPException as exc:
        if "too many files" in str(exc.detail).lower():
            raise _too_many_files(max_files) from None
        raise ApiError(422, "BadMultipart", f"malformed multipart body ({exc.detail})") from None
    files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
    if len(files) > max_files:
        raise _too_many_files(max_files)
    if not files:
        raise ApiError(422, "MissingFile", "the multipart body has no file part")
    return files


async def read_one(request: Request) -> Upload:
    """The uploaded file's bytes (multipart ``file`` field, else the raw body)."""
    if is_multipart(request):
        files = await _form_files(request, 1)
        data = await files[0].read()
        upload = Upload(data, files[0].filename)
    else:
        upload = Upload(await request.body(), None)
    if not upload.data:
        raise ApiError(422, "EmptyUpload", "the upload is empty (0 bytes)")
    return upload


async def read_many(request: Request, max_files: int) -> list[Upload]:
    """Every file of a multipart body (any field names), at most ``max_files``."""
    if not is_multipart(request):
        raise ApiError(
            415, "UnsupportedMediaType", "send the images as multipart/form-data (field `files`)"
        )
    files = await _form_files(request, max_files)
    return [Upload(await f.read(), f.filename) for f in files]


async def save_to(request: Request, folder: Path) -> tuple[Path, str | None]:
    """Stream the upload into a new file in ``folder`` (multipart or raw); returns its path.

    The body-size limit is enforced while streaming by the limits middleware.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".video", dir=folder)
    path = Path(name)
    filename: str | None = None
    try:
        with open(fd, "wb") as out:
            if is_multipart(request):
                files = await _form_files(request, 1)
                filename = files[0].filename
                await files[0].seek(0)
                await run_in_threadpool(shutil.copyfileobj, files[0].file, out, CHUNK)
            else:
                async for chunk in request.stream():
                    out.write(chunk)
        if path.stat().st_size == 0:
            raise ApiError(422, "EmptyUpload", "the upload is empty (0 bytes)")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, filename
