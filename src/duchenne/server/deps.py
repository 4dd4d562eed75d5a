"""FastAPI dependencies and their ``Annotated`` aliases (full-stack-fastapi-template style).

Every dependency is ``async def`` although none awaits: FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency per request that cost the
image endpoints a measurable share of their CPU under load.

Routes declare what they need (``engine: EngineDep``) instead of reaching into
``request.app.state``; the API-key check is a dependency too, so it appears in OpenAPI as
a security scheme and ``/docs`` gets an "Authorize" button.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from duchenne.analysis.config import ALL_STAGES, STAGES
from duchenne.faces import DEFAULT_SMILE_THRESHOLD
from duchenne.server.engine import AnalyzeOptions, Engine
from duchenne.server.handlers import ApiError
from duchenne.server.jobs import JobManager
from duchenne.server.metrics import Metrics
from duchenne.server.settings import Settings

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")
_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_jobs(request: Request) -> JobManager:
    return request.app.state.jobs


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Depends(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> None:
    """Pass when no key is configured, or the request carries it (X-API-Key or Bearer)."""
    expected = settings.api_key_value
    if expected is None:
        return
    given = api_key or (bearer.credentials if bearer else None)
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise ApiError(
            401,
            "Unauthorized",
            "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": 'Bearer realm="duchenne"'},
        )


ApiKeyDep = Depends(require_api_key)


SmileThresholdQuery = Annotated[
    float,
    Query(
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="a face counts as smiling when P(smile) >= this",
    ),
]


def _query_names(dependant: Any) -> set[str]:
    """Every query parameter a route declares, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not know (``?format=jpeg`` on a route
    without ``format``, a typo like ``?max_face=2``) instead of silently ignoring it."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    unknown = sorted(set(request.query_params) - _query_names(dependant))
    if unknown:
        known = ", ".join(sorted(_query_names(dependant))) or "none"
        raise ApiError(
            422,
            "UnknownParameter",
            f"unknown query parameter(s) {', '.join(unknown)}; this endpoint takes: {known}",
        )


KnownQueryDep = Depends(reject_unknown_query)


StagesQuery = Annotated[
    str | None,
    Query(
        description=f"comma-separated stages from {','.join(ALL_STAGES)} (default "
        f"{','.join(STAGES)}; detection always runs; geometry and blendshapes imply "
        "landmarks; an empty value is refused)",
        examples=["detect,landmarks,geometry,smile"],
        max_length=100,
    ),
]


def _bad_value(exc: ValueError) -> ApiError:
    where = "emotion_prior" if "emotion prior" in str(exc) else "stages"
    return ApiError(422, "ValidationError", f"{where}: {exc}")


async def video_stages(stages: StagesQuery = None) -> tuple[str, ...]:
    """The stages a video job runs: as ``/v1/analyze`` (same syntax, default and checks)."""
    try:
        return AnalyzeOptions.parse(stages).stages
    except ValueError as exc:
        raise _bad_value(exc) from None


VideoStagesDep = Annotated[tuple[str, ...], Depends(video_stages)]


async def analyze_options(
    stages: StagesQuery = None,
    max_faces: Annotated[
        int | None, Query(ge=1, le=1000, description="keep at most this many faces")
    ] = None,
    min_face_size: Annotated[
        float,
        Query(
            ge=0,
            le=100_000,
            allow_inf_nan=False,
            description="drop faces smaller than this (pixels)",
        ),
    ] = 0.0,
    crop: Annotated[
        bool, Query(description="the image is already a face crop: no detection")
    ] = False,
    smile_threshold: SmileThresholdQuery = DEFAULT_SMILE_THRESHOLD,
    emotion_prior: Annotated[
        str | None,
        Query(
            description="class prior of the emotion probabilities: balanced, natural or 8 "
            "comma-separated weights in FER+ order (default: the service's)",
            examples=["natural"],
            max_length=200,
        ),
    ] = None,
) -> AnalyzeOptions:
    """The analysis options of a request (the ``Analyzer`` arguments, as query parameters)."""
    try:
        return AnalyzeOptions.parse(
            stages, max_faces, min_face_size, crop, smile_threshold, emotion_prior
        )
    except ValueError as exc:
        raise _bad_value(exc) from None


OptionsDep = Annotated[AnalyzeOptions, Depends(analyze_options)]
