"""Would INT8 make the face models faster, and at what accuracy? (Decides float32 vs INT8.)

Quantizes the full-range BlazeFace and Face Mesh models statically (QDQ, per-channel INT8
weights, UINT8 activations calibrated on real faces: MTFL web photos from
``../shared/datasets``, the detector on letterboxed photos, Face Mesh on the ROI crops the
pipeline makes) and compares with the shipped float32 models on other MTFL photos:
CPU milliseconds per call (one thread, alternating), the detector's face-found agreement,
and the Face Mesh landmark difference in image pixels. INT8 is only worth shipping where
it is faster and the parity holds; the table says whether that is so.

    python benchmarks/bench_quantize.py [--calib 64] [--test 200] [--readme]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, markdown_table, update_readme  # noqa: E402
from duchenne.face.detector import FULL_RANGE, FaceDetector  # noqa: E402
from duchenne.face.landmarks import INPUT_SIZE, roi_from_detection  # noqa: E402
from duchenne.face.letterbox import letterbox  # noqa: E402
from duchenne.io.image import load_image  # noqa: E402
from duchenne.models.registry import get_model_cfg  # noqa: E402
from duchenne.models.session import session_options  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def detector_input(image: np.ndarray) -> np.ndarray:
    boxed = letterbox(image, FULL_RANGE.input_size)[0].astype(np.float32)
    return (boxed / 127.5 - 1.0)[None]


def mesh_inputs(image: np.ndarray, detector: FaceDetector) -> list[np.ndarray]:
    dets = detector(image)
    rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
    crops = [
        cv2.warpAffine(image, r.crop_matrix(), (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR)
        for r in rois[:1]
    ]
    return [(c.astype(np.float32) / 255.0)[None] for c in crops]


def quantize(model: str, inputs: list[np.ndarray], folder: Path) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = get_model_cfg(model).path
    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: x} for x in inputs])

        def get_next(self):
            return next(self.items, None)

    pre, out = folder / f"{model}_pre.onnx", folder / f"{model}_int8.onnx"
    here = os.getcwd()
    os.chdir(folder)  # onnxruntime's shape inference writes scratch files into the cwd
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        os.chdir(here)
    return out


def cpu_ms(sessions: list[ort.InferenceSession], x: np.ndarray, runs: int) -> list[float]:
    """Median CPU ms per call of each session, timed in alternation."""
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for s, feed, t in zip(sessions, feeds, times, strict=True):
            start = time.process_time()
            s.run(None, feed)
            t.append((time.process_time() - start) * 1000)
    return [float(np.median(t)) for t in times]


def run(calib: int, test: int) -> str:
    paths = sorted((DATASETS / "mtfl" / "net_7876").glob("*.jpg"))
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(paths))
    calib_images = [load_image(paths[i]) for i in pick[:calib]]
    test_images = [load_image(paths[i]) for i in pick[calib : calib + test]]
    detector = FaceDetector("full", verify_min=None, second_chance=False, threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, prepare in (
            ("face_detection_full_range", lambda im: [detector_input(im)]),
            ("face_landmark", lambda im: mesh_inputs(im, detector)),
        ):
            calib_x = [x for im in calib_images for x in prepare(im)]
            test_x = [x for im in test_images for x in prepare(im)]
            int8 = quantize(model, calib_x, Path(tmp))
            sessions = [
                ort.InferenceSession(str(p), session_options(1), providers=["CPUExecutionProvider"])
                for p in (get_model_cfg(model).path, int8)
            ]
            f32_ms, int8_ms = cpu_ms(sessions, test_x[0], 100)
            rows.append([model, *parity(model, sessions, test_x), f32_ms, int8_ms])
    header = ["model", "test inputs", "parity", "float32 CPU ms", "INT8 CPU ms"]
    table = markdown_table(header, rows)
    return (
        f"{table}\n\nStatic QDQ INT8 (per-channel weights), calibrated on {calib} MTFL web "
        f"photos, compared on {test} others; one onnxruntime thread. "
        + machine_note().format(script="benchmarks/bench_quantize.py")
    )


def parity(model: str, sessions: list[ort.InferenceSession], xs: list[np.ndarray]) -> list:
    """(inputs, parity text): detector face-found agreement, or Face Mesh landmark error."""
    outs = [[s.run(None, {s.get_inputs()[0].name: x}) for x in xs] for s in sessions]
    if model == "face_landmark":
        # landmark output (1, 1404) in crop pixels of a 192 px crop; report crop pixels
        err = [
            np.abs(a[0].reshape(-1, 3)[:, :2] - b[0].reshape(-1, 3)[:, :2]).mean()
            for a, b in zip(*outs, strict=True)
        ]
        return [len(xs), f"mean landmark difference {np.mean(err):.2f} px (192 px crop)"]
    score = lambda o: 1 / (1 + np.exp(-np.clip(o[1].max(), -100, 100)))  # noqa: E731
    found = [[score(o) >= FULL_RANGE.min_score for o in out] for out in outs]
    agree = float(np.mean(np.array(found[0]) == np.array(found[1])))
    return [len(xs), f"face found / not found agrees on {100 * agree:.1f}%"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calib", type=int, default=64)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    if not (DATASETS / "mtfl").is_dir():
        raise SystemExit(f"needs {DATASETS / 'mtfl'}")
    cv2.setNumThreads(1)
    text = run(args.calib, args.test)
    print(text)
    if args.readme:
        update_readme("bench-quantize", text)


if __name__ == "__main__":
    main()
