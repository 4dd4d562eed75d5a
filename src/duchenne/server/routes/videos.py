"""``/v1/videos``: upload a video, poll its job, fetch the result as JSON or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from duchenne.faces import DEFAULT_SMILE_THRESHOLD
from duchenne.server.deps import (
    ApiKeyDep,
    EngineDep,
    JobsDep,
    KnownQueryDep,
    SettingsDep,
    SmileThresholdQuery,
    VideoStagesDep,
)
from duchenne.server.downloads import FileResponse, content_disposition, file_stem
from duchenne.server.handlers import ApiError
from duchenne.server.jobs import Job, frame_template, probe_video
from duchenne.server.routes import Router
from duchenne.server.schemas import JobCreated, JobStatus, error_responses
from duchenne.server.uploads import ONE_FILE_BODY, save_to

router = Router(prefix="/v1/videos", tags=["videos"], dependencies=[ApiKeyDep, KnownQueryDep])


@router.post(
    "",
    summary="Upload a video for analysis",
    status_code=202,
    response_model=JobCreated,
    responses=error_responses(401, 413, 415, 422, 429, 501, 503),
    openapi_extra=ONE_FILE_BODY,
)
async def create_job(
    request: Request,
    engine: EngineDep,
    jobs: JobsDep,
    settings: SettingsDep,
    stages: VideoStagesDep,
    every: Annotated[int, Query(ge=1, le=1000, description="analyse every n-th frame")] = 1,
    smile_threshold: SmileThresholdQuery = DEFAULT_SMILE_THRESHOLD,
) -> JSONResponse:
    """Start analysing an uploaded video (multipart field `file`, or the raw body).

    `stages` works as for `POST /v1/analyze`: the default stages (as `duchenne video`)
    unless asked; the opt-in `blendshapes` adds 52 `blendshapes.*` columns per frame row.

    Answers 202 with the job id at once; poll `GET /v1/videos/{id}`. Refused with 413
    when the file, its frame size (pixels) or its duration is over the limits, 422 when
    it is not a decodable video, and 429 when the job queue is full.
    """
    jobs.check_room()  # refuse before receiving a large upload we could not run
    path, filename = await save_to(request, jobs.folder)
    try:
        await _check_client(request)  # gone already: no probe; else reads its connection
        probe = await engine.run(probe_video, path, settings.max_video_pixels)
        seconds = probe.seconds
        if seconds is not None and seconds > settings.max_video_seconds:
            raise ApiError(
                413,
                "VideoTooLong",
                f"video lasts {seconds:.1f} s; the limit is {settings.max_video_seconds:g} s",
            )
        params = {
            "every": every,
            "filename": filename,
            "smile_threshold": smile_threshold,
            "stages": list(stages),
        }
        job = jobs.submit(path, params, probe)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    try:
        await _check_client(request)
    except ClientDisconnect:
        jobs.delete(job.id)  # nobody learns its id: nobody could cancel it
        raise
    url = f"/v1/videos/{job.id}"
    return JSONResponse(
        {"id": job.id, "status": job.status, "url": url}, 202, headers={"Location": url}
    )


async def _check_client(request: Request) -> None:
    """Raise ``ClientDisconnect`` (answered as 499) when the client of an upload whose
    body is in has closed the connection.

    Why: a client that goes away mid-upload makes no job (its body never completes), but
    one that went once its upload was in -- a dashboard tab closed while the video was
    probed, before the answer with the job id came -- left a job nobody could cancel,
    holding one of the few job places (``max_jobs``) to its end. Asked once before the
    probe and once after the job is made: the first look also makes uvicorn read the
    connection again (it stops reading one whose body filled its buffer until the app
    asks for more), so a close during the probe is known at the second.
    """
    if await request.is_disconnected():
        raise ClientDisconnect


def _job(jobs: JobsDep, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise ApiError(404, "NotFound", f"no video job {job_id!r} (unknown or expired)")
    return job


@router.get(
    "/{job_id}",
    summary="Job progress and result",
    response_model=JobStatus,
    responses={
        200: {"content": {"text/csv": {}}, "description": "status JSON, or the frame table"},
        **error_responses(401, 404, 409, 422),
    },
)
async def get_job(
    job_id: str,
    jobs: JobsDep,
    engine: EngineDep,
    format: Annotated[
        Literal["json", "csv"],
        Query(description="json: status and result; csv: the per-frame table (when done)"),
    ] = "json",
) -> Response:
    """Progress while the job runs; when done, `result` is the video result's `to_dict()`
    (per-face tracks with their smile episodes and best frame). `format=csv` gives the
    per-frame table instead (as `GET /v1/videos/{id}/frames?format=csv`). Saved, the
    document is named after the upload (`Content-Disposition`: `party.mp4` ->
    `party_smiles.json`; the job id for an upload without a file name)."""
    job = _job(jobs, job_id)
    if format == "csv":
        return await frames(job_id, jobs, engine, "csv")
    return JSONResponse(job.public(), headers=_named(job, "_smiles.json", "inline"))


@router.get(
    "/{job_id}/frames",
    summary="Per-frame table of a finished job",
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}},
            "description": "one row per face per analysed frame",
        },
        **error_responses(401, 404, 409, 422),
    },
)
async def frames(
    job_id: str,
    jobs: JobsDep,
    engine: EngineDep,
    format: Annotated[Literal["json", "csv"], Query(description="table format")] = "json",
) -> Response:
    """One row per face per analysed frame: time, frame, face (track id), box, smile,
    emotions, geometry and smile dynamics. 409 until the job is done. The CSV is the file
    `duchenne video -o frames.csv` writes: it has its header row also when no face was
    found. Named after the upload (`party.mp4` -> `party.csv`, `party.json`)."""
    job = _job(jobs, job_id)
    if job.status != "done":
        raise ApiError(409, "NotReady", f"job is {job.status}; the table exists when done")
    if format == "json":
        return JSONResponse({"rows": job.table()}, headers=_named(job, ".json", "inline"))
    path = await engine.run(_table_file, job, engine.analyzer, format)
    return FileResponse(path, media_type="text/csv; charset=utf-8", headers=_named(job, ".csv"))


def _named(job: Job, tail: str, kind: str = "attachment") -> dict[str, str]:
    """The header naming a download of ``job`` after its upload plus ``tail``
    (``party.mp4`` -> ``party.csv``); the job id for an upload without a usable name (a
    raw body)."""
    stem = file_stem(job.params.get("filename")) or job.id
    return content_disposition(f"{stem}{tail}", kind)


def _table_file(job: Job, analyzer: Any, format: str) -> Path:
    return job.table_file(format, frame_template(analyzer, job.params))


@router.get(
    "/{job_id}/preview",
    summary="Browser-playable annotated video of a finished job",
    response_class=Response,  # the 200 is a video only (the default class added JSON to it)
    responses={
        200: {"content": {"video/mp4": {}, "video/webm": {}}, "description": "the preview"},
        **error_responses(401, 404, 409, 422),
    },
)
async def preview(job_id: str, jobs: JobsDep) -> Response:
    """The analysed frames with their boxes and labels, as H.264 MP4 (VP8 WebM without
    PyAV): plays in any browser whatever codec the upload had. 409 until done. Shown
    inline, and named after the upload when saved (`party.mp4` -> `party_preview.mp4`)."""
    job = _job(jobs, job_id)
    if job.status != "done":
        raise ApiError(409, "NotReady", f"job is {job.status}; the preview exists when done")
    path = job.preview_path
    if path is None or not path.is_file():
        raise ApiError(404, "NotFound", "this job has no preview video")
    media = "video/mp4" if path.suffix == ".mp4" else "video/webm"
    return FileResponse(
        path, media_type=media, headers=_named(job, f"_preview{path.suffix}", "inline")
    )


@router.delete(
    "/{job_id}",
    summary="Cancel and delete a job",
    status_code=204,
    responses=error_responses(401, 404, 422),
)
async def delete_job(job_id: str, jobs: JobsDep) -> Response:
    """Cancel the job if it has not finished, and forget it and its result."""
    if not jobs.delete(job_id):
        raise ApiError(404, "NotFound", f"no video job {job_id!r} (unknown or expired)")
    return Response(status_code=204)
