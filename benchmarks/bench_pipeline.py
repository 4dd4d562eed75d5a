"""Per-stage latency of the face pipeline: decode, detect, landmarks, align (and the opt-in
blendshapes stage).

Prints a markdown table (median and p90 over many runs) for a 640x480 one-face image and a
large group photo, single-threaded and with onnxruntime's default threads.

    python benchmarks/bench_pipeline.py [--runs 200] [--readme]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, markdown_table, time_calls, update_readme  # noqa: E402
from duchenne.face.align import AlignConfig, align_batch, eye_centres  # noqa: E402
from duchenne.face.blendshapes import FaceBlendshapes  # noqa: E402
from duchenne.face.detector import FaceDetector  # noqa: E402
from duchenne.face.landmarks import FaceMesh, roi_from_detection  # noqa: E402
from duchenne.io.image import encode_image, load_image  # noqa: E402
from sample_images import group_photo, one_face_640x480  # noqa: E402


def stage_times(name: str, image: np.ndarray, threads: int | None, runs: int) -> list[list[object]]:
    """Median/p90 per stage for one image and thread setting."""
    jpeg = encode_image(image, format="jpeg", quality=90)
    detector, mesh = FaceDetector("full", threads=threads), FaceMesh(threads=threads)
    dets = detector(image)
    rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
    landmarks, _ = mesh(image, rois)
    eyes = (
        np.stack([np.stack(eye_centres(lm)) for lm in landmarks])
        if len(landmarks)
        else np.zeros((0, 2, 2))
    )
    stages = {
        "decode": lambda: load_image(jpeg),
        "detect": lambda: detector(image),
        "landmarks": lambda: mesh(image, rois),
        "align": lambda: align_batch(image, eyes, AlignConfig(size=48)),
    }
    rows, total = [], np.zeros(runs)
    for stage, fn in stages.items():
        ms = time_calls(fn, runs)
        if stage in ("detect", "landmarks"):
            total += ms
        rows.append(
            [
                name,
                "1" if threads == 1 else "default",
                stage,
                len(dets),
                float(np.median(ms)),
                float(np.percentile(ms, 90)),
            ]
        )
    rows.append(
        [
            name,
            "1" if threads == 1 else "default",
            "detect+landmarks",
            len(dets),
            float(np.median(total)),
            float(np.percentile(total, 90)),
        ]
    )
    return rows


def blendshape_rows(
    name: str, image: np.ndarray, threads: int | None, runs: int
) -> list[list[object]]:
    """The opt-in ``blendshapes`` stage on the faces of one image: Face Landmarker's
    478-point model on each face's landmark ROI plus the 52-coefficient model (all faces
    of the image per call, and that time divided by the number of faces).

    The stage and the Face Mesh landmark pass are timed in alternation (one of each per
    round) and the stage label carries the median of the per-round ratio: on a shared,
    busy machine the milliseconds move with the load, the paired ratio much less.
    """
    detector, mesh = FaceDetector("full", threads=threads), FaceMesh(threads=threads)
    stage = FaceBlendshapes(threads=threads)
    dets = detector(image)
    rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
    landmarks, _ = mesh(image, rois)
    ms, ratio = np.empty(runs), np.empty(runs)
    for i in range(runs):
        mesh_ms = time_calls(lambda: mesh(image, rois), 1, warmup=1 if i == 0 else 0)[0]
        ms[i] = time_calls(lambda: stage(image, landmarks), 1, warmup=1 if i == 0 else 0)[0]
        ratio[i] = ms[i] / mesh_ms
    n = max(len(landmarks), 1)
    label = "1" if threads == 1 else "default"
    stage_name = f"blendshapes ({np.median(ratio):.1f}x landmarks, paired)"
    return [
        [name, label, stage_name, len(landmarks), float(np.median(ms)), float(np.percentile(ms, 90))],
        [name, label, "blendshapes per face", 1, float(np.median(ms)) / n, float(np.percentile(ms, 90)) / n],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    images = {"640x480 one face": one_face_640x480(), "group photo": group_photo()}
    rows = []
    for name, image in images.items():
        label = f"{name} ({image.shape[1]}x{image.shape[0]})"
        for threads in (1, None):
            runs = args.runs if "one" in name else max(20, args.runs // 5)
            rows += stage_times(label, image, threads, runs)
            rows += blendshape_rows(label, image, threads, runs)
    table = markdown_table(["image", "threads", "stage", "faces", "median ms", "p90 ms"], rows)
    text = table + "\n\n" + machine_note().format(script="benchmarks/bench_pipeline.py")
    print(text)
    if args.readme:
        update_readme("bench-pipeline", text)


if __name__ == "__main__":
    main()
