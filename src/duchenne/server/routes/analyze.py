"""``POST /v1/analyze`` and ``POST /v1/analyze/batch``: photos in, ``Faces.to_dict()`` out."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import Header, Query, Request
from fastapi.responses import JSONResponse, Response

from duchenne.errors import DuchenneError, ServiceError
from duchenne.server.deps import ApiKeyDep, EngineDep, KnownQueryDep, OptionsDep, SettingsDep
from duchenne.server.handlers import ApiError, status_for
from duchenne.server.routes import Router
from duchenne.server.schemas import BatchResult, FacesResult, error_responses
from duchenne.server.uploads import MANY_FILES_BODY, ONE_FILE_BODY, read_many, read_one

router = Router(prefix="/v1", tags=["analyze"], dependencies=[ApiKeyDep, KnownQueryDep])

LandmarksQuery = Annotated[
    bool, Query(description="include the 468 Face Mesh landmarks of each face")
]
DrawQuery = Annotated[
    bool, Query(description="answer with the annotated image (JPEG) instead of JSON")
]
FormatQuery = Annotated[
    Literal["json", "jpeg"] | None,
    Query(description="json (the faces) or jpeg (the annotated image); default: Accept"),
]


def wants_jpeg(accept: str | None, draw: bool, format: str | None = None) -> bool:
    """True when the client asked for the annotated image (``format``, ``draw`` or
    ``Accept``; an explicit ``format`` wins)."""
    if format is not None:
        return format == "jpeg"
    if draw:
        return True
    best, best_q = "application/json", 0.0  # q=0 means "not acceptable"
    for part in (accept or "").split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in ("image/jpeg", "application/json", "*/*") and q > best_q:
            best, best_q = media, q
    return best == "image/jpeg"


@router.post(
    "/analyze",
    summary="Analyse one image",
    response_model=FacesResult,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "faces as JSON, or annotated JPEG"},
        **error_responses(401, 413, 415, 422, 503),
    },
    openapi_extra=ONE_FILE_BODY,
)
async def analyze(
    request: Request,
    engine: EngineDep,
    options: OptionsDep,
    landmarks: LandmarksQuery = False,
    draw: DrawQuery = False,
    format: FormatQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Find every face and measure its smile.

    Send the image as multipart/form-data (field `file`) or as the raw request body. The
    answer is `Faces.to_dict()`, the JSON document `duchenne analyze` writes, or with
    `format=jpeg`, `Accept: image/jpeg` or `draw=true` the image with boxes and labels
    drawn. Unknown query parameters are refused (422), never ignored.
    """
    upload = await read_one(request)
    with engine.batcher.reserve():  # a full queue refuses before any decoding
        image = await engine.run(engine.decode, upload.data, upload.filename)
        faces = await engine.analyze(image, options, reserved=True)
    if upload.filename:
        faces.meta["source"] = upload.filename
    if wants_jpeg(accept, draw, format):
        jpeg = await engine.run(engine.annotate_jpeg, image, faces)
        return Response(jpeg, media_type="image/jpeg", headers={"X-Faces": str(len(faces))})
    return JSONResponse(faces.to_dict(landmarks=landmarks))


@router.post(
    "/analyze/batch",
    summary="Analyse several images",
    response_model=BatchResult,
    responses=error_responses(401, 413, 415, 422, 503),
    openapi_extra=MANY_FILES_BODY,
)
async def analyze_batch(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    options: OptionsDep,
    landmarks: LandmarksQuery = False,
) -> JSONResponse:
    """Analyse up to `max_batch_images` images in one request (multipart, field `files`).

    Every image gets an entry in `results`, in upload order: its `Faces.to_dict()`, or
    `{"image": {"source": name}, "error": {"type", "message"}}` when it could not be
    decoded (as `duchenne analyze` reports a bad file). The status is 200 when the
    request itself was valid, whatever the individual images held.
    """
    uploads = await read_many(request, settings.max_batch_images)
    with engine.batcher.reserve(len(uploads)):  # all images get a place, or none
        docs = await asyncio.gather(
            *(_one(engine, u.data, u.filename, options, landmarks) for u in uploads)
        )
    return JSONResponse({"results": list(docs)})


async def _one(
    engine: Any, data: bytes, filename: str | None, options: Any, landmarks: bool
) -> dict[str, Any]:
    """One batch entry: faces, or the image's own error (other entries carry on)."""
    try:
        if not data:
            raise ApiError(422, "EmptyUpload", "the upload is empty (0 bytes)")
        image = await engine.run(engine.decode, data, filename)
        faces = await engine.analyze(image, options, reserved=True)
    except ServiceError:
        raise  # overload or shutdown: the whole request's answer, not this image's
    except (DuchenneError, ApiError) as exc:
        kind = exc.type if isinstance(exc, ApiError) else type(exc).__name__
        message = str(exc)
        if not isinstance(exc, ApiError) and status_for(exc) >= 500:  # logged, not leaked
            kind, message = "InternalError", "the server could not process this image"
        return {"image": {"source": filename}, "error": {"type": kind, "message": message}}
    if filename:
        faces.meta["source"] = filename
    return faces.to_dict(landmarks=landmarks)
