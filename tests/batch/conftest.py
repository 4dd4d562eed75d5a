"""Fixtures of the batch tests: a few hundred small photos with bad files, and one
uninterrupted reference run that the resume, crash and Ray tests compare against."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from duchenne import batch, data

STAGES = ("detect", "landmarks", "geometry")
N_GOOD = 200


def _bad_files(root: Path, good_jpeg: bytes, good_png: bytes) -> list[str]:
    """A dozen ways a file can fail to be an image."""
    files = {
        "bad/empty.jpg": b"",
        "bad/text.png": b"hello, not a picture\n",
        "bad/truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "bad/half.png": good_png[: len(good_png) // 3],
        "bad/doc.pdf.jpg": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "bad/random.jpg": np.random.default_rng(0).bytes(3000),
        "bad/page.html.png": b"<!DOCTYPE html><html><body>404</body></html>",
        "bad/drawing.svg.png": b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        "bad/header_only.bmp": b"BM" + bytes(12),
        "bad/zeros.jpg": bytes(1000),
        "bad/movie.jpg": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64),
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    os.symlink(root / "no-such-target.jpg", root / "bad" / "dangling.jpg")
    return [*files, "bad/dangling.jpg"]


@pytest.fixture(scope="session")
def photo_set(tmp_path_factory) -> dict:
    """200 shifted/flipped 160x160 astronauts (JPEG and PNG, nested) and 12 bad files."""
    root = tmp_path_factory.mktemp("batch_photos")
    face = cv2.resize(data.astronaut(), (160, 160), interpolation=cv2.INTER_AREA)
    good = []
    for i in range(N_GOOD):
        img = np.roll(face, (i % 9 - 4, i % 21 - 10), axis=(0, 1))
        if i % 5 == 4:
            img = img[:, ::-1]
        name = f"sub{i % 3}/img{i}.png" if i % 10 == 9 else f"img{i}.jpg"
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.ascontiguousarray(img)).save(root / name, quality=85)
        good.append(name)
    bad = _bad_files(root, (root / "img0.jpg").read_bytes(), (root / "sub0/img9.png").read_bytes())
    return {"root": root, "good": good, "bad": bad}


@pytest.fixture(scope="session")
def reference(photo_set, tmp_path_factory) -> dict:
    """One uninterrupted local run over the whole set (2 workers)."""
    out = tmp_path_factory.mktemp("batch_ref") / "faces.parquet"
    summary = batch.run([str(photo_set["root"])], out=out, workers=2, stages=STAGES, part_size=32)
    return {"summary": summary, "out": out, "rows": read_table(out)}


def read_table(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def rows_of(rows: list[dict], sources: set[str]) -> list[dict]:
    """The rows of ``sources``, in table order."""
    return [r for r in rows if r["source"] in sources]
