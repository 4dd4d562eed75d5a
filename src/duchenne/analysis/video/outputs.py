"""Side outputs of a video analysis: the annotated video and the best-frame crop."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from duchenne.annotate import FaceAnnotator, draw_caption
from duchenne.faces import Faces
from duchenne.io.frames import Frame
from duchenne.io.video_writer import VideoWriter


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
    """Annotated output video (``duchenne.io.video_writer``: H.264 MP4 / VP9 WebM that
    browsers play when PyAV is installed), renamed into place when closed."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        self._writer = VideoWriter(self.path, fps)
        self.tmp = self._writer.tmp
        self._annotator = FaceAnnotator()

    @property
    def codec(self) -> str | None:
        """The encoder used (``libx264``, ``libvpx-vp9``, ``mp4v`` ...), once a frame is in."""
        return self._writer.codec

    def write(self, frame: Frame, faces: Faces) -> None:
        image = self._annotator.annotate(frame.image, faces)
        draw_caption(image, f"{frame.time:6.2f} s", corner="bottom-left")
        self._writer.write(image, frame.time)  # real time, also at a variable rate

    def close(self, commit: bool = True) -> Path | None:
        """Finish the video; its path, or None when nothing was written (no frame, or
        ``commit`` False)."""
        return self._writer.close(commit=commit)
