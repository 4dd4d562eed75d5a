"""``/healthz``, ``/metrics`` and ``/v1/models``: what runs, and how it is doing."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from duchenne._version import __version__
from duchenne.models.registry import default_smile_model, get_model_cfg, list_models
from duchenne.server.deps import ApiKeyDep, EngineDep, JobsDep, MetricsDep
from duchenne.server.metrics import CONTENT_TYPE
from duchenne.server.routes import Router
from duchenne.server.schemas import Health, ModelsInfo, error_responses

router = Router(tags=["system"])


@router.get(
    "/healthz",
    summary="Liveness and readiness",
    response_model=Health,
    responses={503: {"model": Health, "description": "shutting down"}},
)
async def healthz(request: Request, engine: EngineDep, jobs: JobsDep) -> JSONResponse:
    """200 while the service takes work; 503 once it is shutting down. No API key needed."""
    closing = bool(getattr(request.app.state, "closing", False))
    body = {
        "status": "shutting down" if closing else "ok",
        "version": __version__,
        "queue": engine.batcher.pending,
        "jobs": jobs.counts(),
    }
    return JSONResponse(body, 503 if closing else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    # not PlainTextResponse: FastAPI lists a route's error models under its response class's
    # media type, so the 401 was declared text/plain while it is sent as JSON
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "text exposition format 0.0.4"},
        **error_responses(401),
    },
    dependencies=[ApiKeyDep],
)
async def metrics(metrics: MetricsDep) -> PlainTextResponse:
    """Request counts and latencies by route, batch sizes, queue depth, video jobs."""
    return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)


@router.get(
    "/v1/models",
    summary="Models in use and shipped",
    response_model=ModelsInfo,
    responses=error_responses(401),
    dependencies=[ApiKeyDep],
    tags=["analyze"],
)
async def models(engine: EngineDep) -> JSONResponse:
    """The models this service runs (by stage) and every model the package ships."""
    info = engine.models()
    default = default_smile_model()
    available = []
    for name in list_models():
        cfg = get_model_cfg(name)
        available.append({"name": name, "task": cfg.task, "default": name == default})
    return JSONResponse(
        {
            "active": info["models"],
            "stages": info["stages"],
            "smile_available": info["smile_available"],
            "detector": info["detector"],
            "available": available,
            "video_available": True,
        }
    )
