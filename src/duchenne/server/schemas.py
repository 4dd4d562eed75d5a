"""Response schemas for OpenAPI, derived from ``Faces.to_dict()`` (the one JSON schema).

Why documentation-only models: analysis routes return ``Faces.to_dict()`` as is (the same
document the CLI and Python API give), so the service never reshapes results; these
models describe that document in ``/docs`` and the tests validate real responses against
them, which keeps the two from drifting apart. Fields ``to_dict`` leaves out when a stage
did not run (smile, emotions, blendshapes, geometry, landmarks) are optional here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from duchenne.faces import BLENDSHAPE_NAMES, EMOTION_LABELS, KEYPOINT_NAMES


class Box(BaseModel):
    """Face box in image pixels."""

    x1: float
    y1: float
    x2: float
    y2: float


class FaceResult(BaseModel):
    """One face (``Face.to_dict()``)."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(
        description="face number, from 0 in reading order (rows top to bottom, left to "
        "right); the same number as in drawings, table rows and `enhance --face`"
    )
    box: Box
    score: float = Field(description="face detector confidence in [0, 1] (not a smile score)")
    track_id: int | None = None
    rotation: int | None = Field(
        None, description="turn (degrees counter-clockwise) of the image the face was found in"
    )
    keypoints: dict[str, list[float]] | None = Field(
        None, description=f"BlazeFace keypoints [x, y]: {', '.join(KEYPOINT_NAMES)}"
    )
    smile: float | None = Field(None, description="calibrated smile probability")
    smiling: bool | None = Field(None, description="smile >= smile_threshold (default 0.5)")
    smile_score: float | None = Field(None, description="smile intensity, 1..10")
    top_emotion: str | None = None
    emotions: dict[str, float] | None = Field(
        None, description=f"probabilities of {', '.join(EMOTION_LABELS)}"
    )
    blendshapes: dict[str, float] | None = Field(
        None,
        description=f"MediaPipe's {len(BLENDSHAPE_NAMES)} blendshape coefficients in [0, 1], "
        "by name (only with the opt-in stage: stages=...,blendshapes)",
    )
    geometry: dict[str, float] | None = Field(None, description="landmark smile geometry")
    au: dict[str, float] | None = Field(
        None,
        description="single-photo action-unit proxies in [0, 1]: au6 (cheek_raise, "
        "eye_narrowing), au12 (lip_corner_pull), against the median neutral FER+ face",
    )
    landmarks: list[list[float]] | None = Field(
        None, description="468 Face Mesh points [x, y, z] (only with landmarks=true)"
    )


class ImageInfo(BaseModel):
    """Facts about the analysed image (``Faces.meta``)."""

    model_config = ConfigDict(extra="allow")

    width: int | None = None
    height: int | None = None
    source: str | None = Field(None, description="upload file name, when one was sent")
    models: dict[str, str] | None = None
    emotion_labels: list[str] | None = None
    smile_threshold: float | None = Field(None, description="P(smile) from which `smiling`")
    emotion_prior: str | list[float] | None = Field(
        None, description="class prior of `emotions`: balanced, natural or 8 weights"
    )


class FacesResult(BaseModel):
    """All faces of one image: ``Faces.to_dict()``."""

    image: ImageInfo
    no_face: bool = Field(description="true when no face was found in the image")
    faces: list[FaceResult]


class ErrorDetail(BaseModel):
    status: int
    type: str = Field(description="error class, e.g. ImageLoadError, PayloadTooLarge")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorDetail


class ItemError(BaseModel):
    """Why one image of a batch (or a video job) has no result."""

    type: str
    message: str


class BatchItem(BaseModel):
    """One image of a batch: its faces, or its error (as ``duchenne analyze`` writes it)."""

    image: ImageInfo
    no_face: bool | None = Field(
        None, description="true when no face was found in the image; absent on an error"
    )
    faces: list[FaceResult] | None = None
    error: ItemError | None = None


class BatchResult(BaseModel):
    results: list[BatchItem]


class VideoInfo(BaseModel):
    fps: float
    frames: int | None
    seconds: float | None
    width: int
    height: int


class JobStatus(BaseModel):
    """A video job: progress while it runs, the result when done."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float | None = Field(None, description="0..1 when the frame count is known")
    frames_done: int
    frames_total: int | None
    created: float
    started: float | None
    finished: float | None
    video: VideoInfo
    params: dict[str, Any]
    error: ItemError | None
    frames_url: str = Field(description="the per-frame table (JSON or CSV) once done")
    preview_url: str | None = Field(
        None, description="when done: the annotated video as H.264 MP4 (or WebM) for browsers"
    )
    result: dict[str, Any] | None = Field(
        None,
        description="when done: the video result's to_dict() (tracks = per-face summaries "
        "with smile episodes and best frame; complete=false if the video was cut short; "
        "duchenne_marker and au6_index are null where not measurable)",
    )


class JobCreated(BaseModel):
    id: str
    status: str
    url: str = Field(description="poll this for progress and the result")


class ModelsInfo(BaseModel):
    active: dict[str, str] = Field(description="models this service runs, by stage")
    stages: list[str]
    smile_available: bool
    detector: str
    available: list[dict[str, Any]] = Field(description="every model shipped in the package")
    video_available: bool = Field(
        True, description="always true: every build analyses videos (kept for clients)"
    )


class Health(BaseModel):
    status: Literal["ok", "shutting down"]
    version: str
    queue: int
    jobs: dict[str, int]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    text = {
        400: "Bad request",
        401: "Missing or wrong API key",
        404: "Not found",
        409: "Not ready",
        413: "Body, image or video too large",
        415: "Unsupported file type",
        422: "Undecodable input or invalid parameter",
        429: "Too many video jobs",
        501: "Not available in this build",
        503: "Busy (queue full), timed out or shutting down",
    }
    return {c: {"model": ErrorResponse, "description": text.get(c, "Error")} for c in codes}
