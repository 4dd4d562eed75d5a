"""Test builders shared by the mirrored test tree."""

from __future__ import annotations

from collections.abc import Sequence
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
