"""``/``: the web dashboard (plain HTML/CSS/JS shipped as package data, no build step)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from duchenne import data
from duchenne.server.downloads import FileResponse
from duchenne.server.routes import Router

router = Router(include_in_schema=False)


def static_dir() -> Path:
    """The folder of the dashboard's files inside the installed package."""
    return Path(str(resources.files("duchenne.server") / "static"))


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(static_dir() / "index.html", media_type="text/html; charset=utf-8")


@router.get("/demo.jpg")
async def demo_photo() -> FileResponse:
    """The bundled public-domain demo photo (a fixed file, never a client-chosen path)."""
    return FileResponse(data.path("astronaut.jpg"), media_type="image/jpeg")
