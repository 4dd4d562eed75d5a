"""``create_app(settings)``: the FastAPI application factory.

Why a factory and a lifespan (no module-global app): the expensive part -- the
``Analyzer`` and its onnxruntime sessions, the thread pool, the batcher, the job pool --
is built when the server starts and torn down when it stops, so importing this module is
free, tests can build differently-configured apps side by side, and shutdown can finish
in-flight work: uvicorn first stops accepting connections and waits for open requests,
then the lifespan drains the image queue and gives running video jobs time to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from duchenne._version import __version__
from duchenne.analysis.analyzer import Analyzer
from duchenne.errors import require_extra
from duchenne.server.downloads import StaticFiles
from duchenne.server.engine import Engine
from duchenne.server.handlers import install_handlers
from duchenne.server.jobs import JobManager, video_runner
from duchenne.server.metrics import Metrics, state_labels
from duchenne.server.middleware import AdmissionMiddleware, LimitsMiddleware, MetricsMiddleware
from duchenne.server.routes import analyze, dashboard, system, videos
from duchenne.server.settings import Settings, unknown_variables

logger = logging.getLogger(__name__)

SWEEP_EVERY_S = 30.0
OPENAPI_URL = "/openapi.json"
ANALYSIS_PATHS = frozenset({"/v1/analyze", "/v1/analyze/batch"})
DOCS_STATIC = "/docs/static"

DESCRIPTION = """
Find faces and measure smiles in photos and videos.

* `POST /v1/analyze` one image -> `Faces.to_dict()` (or an annotated JPEG)
* `POST /v1/analyze/batch` several images
* `POST /v1/videos` then `GET /v1/videos/{id}` for video jobs
* The dashboard is at `/`.

Uploads are the only input: the service never opens server paths or fetches URLs.
Errors always come as `{"error": {"status", "type", "message"}}`.
"""


def create_app(settings: Settings | None = None, *, analyzer: Analyzer | None = None) -> FastAPI:
    """Build the service.

    Args:
        settings: configuration (default: ``Settings()``, i.e. from ``DUCHENNE_*`` variables).
        analyzer: an already-built ``Analyzer`` to share (tests); otherwise one is built
            from ``settings`` when the app starts.

    Returns:
        The FastAPI app; serve it with uvicorn (``duchenne serve``) or ``TestClient``.

    Example:
        >>> from fastapi.testclient import TestClient          # doctest: +SKIP
        >>> with TestClient(create_app(Settings())) as client:  # doctest: +SKIP
        ...     client.get("/healthz").json()["status"]
        'ok'
    """
    settings = settings or Settings()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.closing = False
        for message in unknown_variables():  # a typo'd DUCHENNE_* was silently ignored
            logger.warning(message)
        engine = Engine(settings, metrics, analyzer)
        await engine.start()
        own_dir = settings.job_dir is None
        folder = Path(tempfile.mkdtemp(prefix="duchenne-jobs-")) if own_dir else settings.job_dir
        jobs = JobManager(
            video_runner(engine.analyzer, settings.max_video_seconds),
            folder,
            max_jobs=settings.max_jobs,
            max_queued=settings.max_queued_jobs,
            max_stored=settings.max_stored_jobs,
            ttl_s=settings.job_ttl_s,
        )
        app.state.engine, app.state.jobs = engine, jobs
        _register_gauges(app, metrics, engine, jobs)
        sweeper = asyncio.create_task(_sweep_forever(jobs), name="duchenne-job-sweeper")
        logger.info("duchenne service ready (%s)", ", ".join(engine.analyzer.model_names.values()))
        try:
            yield
        finally:
            app.state.closing = True
            sweeper.cancel()
            await engine.close(settings.shutdown_timeout_s)
            await run_in_threadpool(jobs.close, settings.shutdown_timeout_s)
            if own_dir:
                shutil.rmtree(folder, ignore_errors=True)
            logger.info("duchenne service stopped")

    app = FastAPI(
        title="duchenne",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local files by _add_docs (FastAPI's page uses a CDN)
        redoc_url=None,  # ReDoc has no local bundle: it would load from a CDN
        openapi_url=OPENAPI_URL if settings.docs else None,
    )
    app.state.settings, app.state.metrics = settings, metrics
    install_handlers(app)
    routers = [module.router for module in (analyze, videos, system, dashboard)]
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.static_dir()), name="static")
    if settings.docs:
        _add_docs(app)
    # every route with its path template, for requests refused before routing (metrics)
    routes = [r for router in routers for r in router.routes]
    routes += [r for r in app.router.routes if getattr(r, "path", None)]
    _add_middleware(app, settings, metrics, routes)
    return app


def _add_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` package, so it works offline.

    FastAPI's own page loads Swagger UI's JS and CSS from a CDN, which leaves ``/docs``
    blank on machines without internet. The files are mounted at ``/docs/static`` and,
    like the dashboard's, need no API key (the API calls made from the page do).
    """
    swagger_ui_bundle = require_extra("swagger_ui_bundle", "server")
    app.mount(
        DOCS_STATIC,
        StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)),
        name="docs-static",
    )

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_STATIC}/favicon-32x32.png",
        )

    app.add_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)


def _add_middleware(
    app: FastAPI, settings: Settings, metrics: Metrics, routes: Sequence[BaseRoute]
) -> None:
    """CORS innermost, then limits, then admission (refuses analysis requests before their
    bodies are read when the service is full), then metrics outermost (refusals counted)."""
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Accept"],
            expose_headers=["X-Faces", "Location", "Retry-After"],
        )

    def limits(method: str, path: str) -> tuple[int, float]:
        if method == "POST" and path.rstrip("/") == "/v1/videos":
            return settings.max_video_bytes, settings.upload_timeout_s
        return settings.max_body_bytes, settings.request_timeout_s

    app.add_middleware(LimitsMiddleware, limits=limits)
    app.add_middleware(
        AdmissionMiddleware,
        paths=ANALYSIS_PATHS,
        capacity=settings.max_queue,
        refuse_delay_s=settings.refuse_delay_s,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)


def _register_gauges(app: FastAPI, metrics: Metrics, engine: Engine, jobs: JobManager) -> None:
    metrics.gauge(
        "duchenne_queue_depth",
        "Images waiting for or in analysis (503 above max_queue).",
        lambda: engine.batcher.pending,
    )
    metrics.gauge(
        "duchenne_queue_waiting",
        "Images waiting for a batch slot.",
        lambda: engine.batcher.queued,
    )
    metrics.gauge(
        "duchenne_video_jobs", "Video jobs by state.", lambda: state_labels(jobs.counts())
    )
    metrics.gauge(
        "duchenne_batching_enabled",
        "1 when micro-batching is on.",
        lambda: int(engine.batcher.enabled),
    )


async def _sweep_forever(jobs: JobManager) -> None:
    """Expire finished jobs even when nobody polls."""
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        jobs.sweep()
