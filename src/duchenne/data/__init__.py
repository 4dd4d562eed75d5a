"""Bundled public-domain example photos (sources in ``SOURCES.md`` beside this file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np


def path(name: str) -> Path:
    """Filesystem path of a bundled example file."""
    return Path(str(resources.files("duchenne") / "data" / name))


def astronaut() -> np.ndarray:
    """NASA astronaut Eileen Collins (public domain), RGB uint8 512x512: the demo photo."""
    from duchenne.io.image import load_image

    return load_image(path("astronaut.jpg"))
