"""Service configuration: one pydantic-settings class, read from ``DUCHENNE_*`` variables.

Why a settings object (not module globals): ``create_app(settings)`` builds a complete,
independent service from it, so tests run several differently-limited apps in one process
and the CLI only has to turn its flags into a ``Settings``. Every limit that protects the
server from a client (body size, pixels, video length, queue depth, jobs) lives here with a
default safe for a small machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from duchenne.io.environment import ENV_PREFIX, PACKAGE_VARIABLES, misspelt_variables

MB = 1024 * 1024


def _default_workers() -> int:
    """One inference thread per core: onnxruntime sessions run single-threaded here."""
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Everything the service can be configured with.

    Each field can be set from the environment as ``DUCHENNE_<FIELD>`` (upper case), e.g.
    ``DUCHENNE_API_KEY=secret`` or ``DUCHENNE_MAX_BODY_BYTES=5000000``.

    Example:
        >>> Settings(port=9000, batching=False).port
        9000
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        allow_inf_nan=False,  # an inf timeout never ends
    )

    # --- process and models
    host: str = Field(
        "127.0.0.1",
        description="interface to listen on (the default is loopback only; 0.0.0.0: every "
        "interface)",
    )
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0: any free port)")
    workers: int = Field(
        default_factory=_default_workers,
        ge=1,
        le=64,
        description="inference threads (default: one per CPU core)",
    )
    processes: int = Field(
        0, ge=0, le=64, description="analysis worker processes (0: threads in this process)"
    )
    threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads per session")
    model: str | None = Field(
        None, description="smile model name or .onnx path (unset: the default model)"
    )
    detector: str = Field(
        "auto", pattern="^(auto|full|short)$", description="face detector: auto, full or short"
    )
    device: str = Field(
        "cpu", pattern="^(cpu|cuda)$", description="run the models on: cpu or cuda (duchenne[gpu])"
    )
    emotion_prior: str = Field(
        "balanced",
        description="emotion class prior: balanced, natural or 8 comma-separated weights",
    )
    log_level: str = Field("info", description="debug, info, warning or error")

    # --- access
    api_key: SecretStr | None = Field(None, description="require this key (X-API-Key or Bearer)")
    cors_origins: str = Field("", description="comma-separated allowed origins ('*' for any)")
    docs: bool = Field(True, description="serve /docs and /openapi.json")

    # --- transport (uvicorn)
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="request header block larger than this: 431"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="headers not complete this long after a request starts: 408"
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="idle keep-alive connection: closed after this"
    )

    # --- image limits
    max_body_bytes: int = Field(20 * MB, ge=1024, description="image request body: 413")
    max_pixels: int = Field(40_000_000, ge=1, description="decoded image pixels: 413")
    max_batch_images: int = Field(16, ge=1, description="files per /v1/analyze/batch: 413")

    # --- micro-batching and overload
    batching: bool = Field(True, description="micro-batch concurrent images")
    batch_max_size: int = Field(8, ge=1, le=256, description="images per micro-batch")
    batch_max_wait_ms: float = Field(
        3.0, ge=0.0, le=1000.0, description="how long a batch waits for more images"
    )
    max_queue: int = Field(
        64,
        ge=1,
        description="images (and analysis requests, counted before their body is read) "
        "waiting or running: 503",
    )
    refuse_delay_s: float = Field(
        0.5,
        ge=0.0,
        le=10.0,
        description="analysis request refused for a full queue: its 503 is sent after this "
        "delay (paces clients that retry at once)",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="request time, video uploads aside: 503"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections (uvicorn limit_concurrency): 503"
    )

    # --- video jobs
    max_video_bytes: int = Field(200 * MB, ge=1024, description="video upload: 413")
    max_video_seconds: float = Field(
        600.0, gt=0, description="longer videos: 413; analysis stops there if unknown"
    )
    max_video_pixels: int = Field(
        3840 * 2160, ge=1, description="pixels per video frame (default 4K UHD): 413"
    )
    upload_timeout_s: float = Field(600.0, gt=0, description="video upload time: 503")
    max_jobs: int = Field(1, ge=1, description="video jobs analysed at once: the others wait")
    max_queued_jobs: int = Field(4, ge=0, description="jobs waiting for a slot: 429 beyond")
    max_stored_jobs: int = Field(100, ge=1, description="jobs kept: oldest finished dropped")
    job_ttl_s: float = Field(3600.0, gt=0, description="finished results: expire after this")
    job_dir: Path | None = Field(
        None, description="folder for uploaded videos (default a temporary one)"
    )

    # --- shutdown
    shutdown_timeout_s: float = Field(
        30.0, ge=0, description="grace period for in-flight work on SIGTERM/Ctrl-C"
    )

    @field_validator("model")
    @classmethod
    def _empty_model_is_default(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("emotion_prior")
    @classmethod
    def _known_emotion_prior(cls, value: str) -> str:
        from duchenne.models.smile import parse_emotion_prior

        parse_emotion_prior(value)  # ValueError -> ValidationError naming the field
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """``cors_origins`` split on commas, blanks dropped."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def api_key_value(self) -> str | None:
        """The configured API key in clear, or None when auth is off."""
        if self.api_key is None:
            return None
        return self.api_key.get_secret_value() or None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per ``DUCHENNE_*`` variable that no setting reads, with the closest name.

    Why: pydantic-settings ignores variables it has no field for, so a typo such as
    ``DUCHENNE_THREDS=4`` left the service on its default without a word. The service
    warns at startup rather than refusing to start: other tools may set ``DUCHENNE_*``
    variables of their own. Names compare case-insensitively, as ``Settings`` reads them.

    Args:
        environ: the environment to check (default ``os.environ``).

    Returns:
        Messages such as ``"DUCHENNE_THREDS is not a duchenne setting and is ignored; did
        you mean DUCHENNE_THREADS?"``, sorted by variable name; empty when all are known.

    Example:
        >>> [m] = unknown_variables({"DUCHENNE_THREDS": "4", "DUCHENNE_PORT": "80", "HOME": "/"})
        >>> m.endswith("ignored; did you mean DUCHENNE_THREADS?")
        True
    """
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | PACKAGE_VARIABLES
    return misspelt_variables(known, environ)
