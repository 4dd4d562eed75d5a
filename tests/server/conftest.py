"""Fixtures for the service tests: apps built with ``create_app``, driven by ``TestClient``.

One real ``Analyzer`` is shared by every app (its sessions take a moment to open); tests
that need to control timing use ``SlowAnalyzer``, a stand-in with the same interface.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from duchenne import data
from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import AnalyzerConfig
from duchenne.faces import Faces

SERVER_DEPS = ("fastapi", "pydantic_settings", "python_multipart", "swagger_ui_bundle")


def require_server_deps() -> None:
    """Skip the calling test module when the [server] extra or a TestClient backend is missing.

    Called at the top of each test module (a skip in this conftest would abort collection).
    """
    missing = [m for m in SERVER_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(
            f"needs the [server] extra (missing {', '.join(missing)}): "
            "pip install 'duchenne[server]'",
            allow_module_level=True,
        )
    if not any(importlib.util.find_spec(m) for m in ("httpx2", "httpx")):
        pytest.skip("FastAPI's TestClient needs httpx2 (or httpx)", allow_module_level=True)


class SlowAnalyzer:
    """Analyzer stand-in: one fake face per image after ``delay`` seconds; counts calls.

    ``gate`` (when set) blocks every call until the test releases it.
    """

    stages = ("detect",)
    config = AnalyzerConfig(stages=stages)
    smile_model = None
    mesh = None

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    @property
    def model_names(self) -> dict[str, str]:
        return {"detector": "fake"}

    def view(self, _config) -> SlowAnalyzer:
        """Like ``Analyzer.view``: a view that shares the call log."""
        return self

    def analyze_batch(self, images, *, crop=False, **_):
        with self.lock:
            self.calls.append(len(images))
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay)
        out = []
        for image in images:
            h, w = image.shape[:2]
            faces = Faces(np.array([[1, 1, w - 1, h - 1]], np.float32), np.ones(1, np.float32))
            faces.meta.update(width=w, height=h, models=self.model_names)
            out.append(faces)
        return out


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    return Analyzer(threads=1)


@pytest.fixture(scope="session")
def full_analyzer() -> Analyzer:
    """Every stage loaded, the opt-in blendshapes included (as ``duchenne serve`` does)."""
    from duchenne.analysis.config import ALL_STAGES

    return Analyzer(stages=ALL_STAGES, threads=1)


@pytest.fixture(scope="session")
def demo_jpeg() -> bytes:
    return data.path("astronaut.jpg").read_bytes()


@pytest.fixture(scope="session")
def small_jpeg() -> bytes:
    """A 64x48 JPEG (fast to analyse; no face)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 120, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def make_client(analyzer) -> Iterator[Callable[..., Any]]:
    """``make_client(analyzer=None, **settings)`` -> a started TestClient (closed after)."""
    from duchenne.server import Settings, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's httpx deprecation notice
        from fastapi.testclient import TestClient

    clients: list[TestClient] = []

    def make(custom=None, **settings) -> TestClient:
        settings.setdefault("workers", 2)
        app = create_app(Settings(**settings), analyzer=custom or analyzer)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> Any:
    return make_client()


def write_video(path: Path, frames: int = 12, fps: float = 10.0, size: int = 160) -> Path:
    """A small MJPG AVI of the demo photo, zooming slightly (no external files)."""
    import cv2

    face = cv2.resize(data.astronaut(), (size, size))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(frames):
        frame = np.roll(face, i, axis=1)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log: Path, **env: str) -> tuple[subprocess.Popen, str]:
    """``duchenne serve`` on 127.0.0.1:<free port>, output to ``log``; waits for /healthz.

    ``env`` adds ``DUCHENNE_*`` variables (the API key is off unless given). Returns the
    process and its base URL; the caller stops it (SIGTERM for a graceful stop).
    """
    port = free_port()
    env = {**os.environ, "DUCHENNE_API_KEY": "", "DUCHENNE_WORKERS": "2", **env}
    cmd = [sys.executable, "-m", "duchenne.cli.main", "serve", "--host", "127.0.0.1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if json.load(resp)["status"] == "ok":
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)
