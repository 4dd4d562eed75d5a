"""Test builders shared by the mirrored test tree."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from duchenne.faces import Faces

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
DEMO_IMAGE = REPO / "src" / "duchenne" / "data" / "astronaut.jpg"


def mock_faces(n: int = 2, smile: Sequence[float] | None = None) -> Faces:
    """Faces with every optional field filled with plausible values."""
    rng = np.random.default_rng(0)
    x = np.arange(n, dtype=np.float32) * 100
    xyxy = np.stack([x, x * 0, x + 80, x * 0 + 90], axis=1)
    emotion = np.full((n, 8), 0.02, np.float32)
    emotion[:, 1] = 0.86
    smile_arr = np.asarray(smile if smile is not None else np.linspace(0.2, 0.9, n), np.float32)
    return Faces(
        xyxy=xyxy,
        score=np.full(n, 0.9, np.float32),
        keypoints=rng.uniform(0, 90, (n, 6, 2)).astype(np.float32),
        landmarks=rng.uniform(0, 90, (n, 468, 3)).astype(np.float32),
        smile=smile_arr,
        smile_score=1 + 9 * smile_arr,
        emotion=emotion,
        data={"mouth_width": np.full(n, 1.1, np.float32)},
        meta={"width": 640, "height": 480},
    )


def refuse_os_open(monkeypatch, code: int, when: Callable[[str, int], bool]) -> None:
    """Make ``os.open`` fail with errno ``code`` for the ``(path, flags)`` that ``when``
    picks (a read-only folder or file system, a lock that cannot be made), as root, whom
    permissions do not stop; ``monkeypatch.undo()`` gives it back."""
    real_open = os.open

    def refusing(path, flags, mode=0o777, **kw):
        if when(str(path), flags):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refusing)
