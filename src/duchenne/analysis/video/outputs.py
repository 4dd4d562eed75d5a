"""Side outputs of a video analysis: the annotated video and the best-frame crop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from duchenne.faces import Faces
from duchenne.io.sinks import commit_file
from duchenne.io.video import Frame


def _crop(image: np.ndarray, box: np.ndarray, margin: float) -> np.ndarray:
    """Copy of the face box grown by ``margin`` on each side, clamped to the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(math.ceil(x2 + mx))), min(h, int(math.ceil(y2 + my)))
    if c <= a or d <= b:
        return image.copy()
    return image[b:d, a:c].copy()


class _AnnotatedVideo:
    """Annotated output video, written to a hidden temp file and renamed when closed."""

    FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in self.FOURCC:
            raise ValueError(f"{path}: annotated video must end in {sorted(self.FOURCC)}")
        self.fps = fps if fps > 0 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: Any = None
        from duchenne.annotate import FaceAnnotator

        self._annotator = FaceAnnotator()

    def write(self, frame: Frame, faces: Faces) -> None:
        image = self._annotator.annotate(frame.image, faces)
        h, w = image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*self.FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, float(self.fps), (w, h))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: cannot write video (codec unavailable)")
            self._size = (w, h)
        if (w, h) != self._size:
            image = cv2.resize(image, self._size)
        scale = max(0.4, h / 600)
        cv2.putText(
            image, f"{frame.time:6.2f} s", (8, int(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
            scale, (255, 255, 255), max(1, round(scale * 1.5)), cv2.LINE_AA,
        )  # fmt: skip
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

    def close(self, commit: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if commit:
                commit_file(self.tmp, self.path)
                return
        if self.tmp.exists():
            self.tmp.unlink()
