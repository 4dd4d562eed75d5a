"""Outputs of a video analysis: the per-frame table, the annotated video, the best-frame crop."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.annotate import FaceAnnotator, draw_caption
from duchenne.errors import require_extra
from duchenne.faces import Faces
from duchenne.io.atomic import atomic_write
from duchenne.io.frames import Frame
from duchenne.io.sinks import RecordWriter
from duchenne.io.video_writer import VideoWriter


class FrameTable:
    """The per-frame table (a :class:`~duchenne.io.sinks.RecordWriter`) with its columns
    known before the first row.

    Why: the sink takes its columns from the rows it sees, so a video in which no face
    was found gave a 0-byte CSV (unreadable by pandas) and a Parquet file without
    columns. Given ``template`` (a row with the columns and value types the rows will
    have, :func:`~duchenne.analysis.video.session.template_row`), the CSV header is
    written even without a row, and a Parquet file without rows gets the schema. JSON
    Lines without rows stays empty (zero records, no header in that format); JSON is
    ``[]``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        template: dict[str, Any] | None = None,
        row_group_size: int = 2000,
    ) -> None:
        self._template = template
        self._writer = RecordWriter(
            path,
            format,
            keep_partial=True,
            columns=None if template is None else list(template),
            row_group_size=row_group_size,
        )

    @property
    def path(self) -> Path:
        return self._writer.path

    @property
    def format(self) -> str:
        return self._writer.format

    @property
    def rows_written(self) -> int:
        return self._writer.rows_written

    def write(self, record: dict[str, Any]) -> None:
        self._writer.write(record)

    def close(self) -> Path:
        """Complete the file and move it into place (see the class docstring)."""
        if self.rows_written or self.format != "parquet" or self._template is None:
            return self._writer.close()
        self._writer.abort()
        pa = require_extra("pyarrow", "parquet")
        pq = require_extra("pyarrow.parquet", "parquet")
        schema = pa.Table.from_pylist([self._template]).schema
        with atomic_write(self.path, "wb") as fh:
            pq.write_table(schema.empty_table(), fh)
        return self.path

    def abort(self) -> None:
        """Discard everything written."""
        self._writer.abort()


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
        self._writer.write(image)

    def close(self, commit: bool = True) -> None:
        self._writer.close(commit=commit)
