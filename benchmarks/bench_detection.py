"""Face-found rate and false faces of the detector settings, on real photos.

Sets (from ``../shared/datasets``, skipped when absent, plus the bundled Solvay photo):

- **MTFL** training part, 10,000 colour photos (LFW and web), by annotated head pose: a
  face counts as found when a detected box contains its annotated nose tip.
- **FER+ Test** and **SMILEsmileD**: the small grey crops upscaled onto the canvas the
  training crops use (``duchenne.analysis.crops.DEFAULT_CANVAS``); found = a box contains
  the canvas centre.
- **Solvay 1927** (``tests/data``): the 29 hand-checked face boxes of
  ``tests/data/solvay_1927_faces.json``; found = a detected box contains a face centre,
  false = a detected box that contains none.
- **Face-free patches**: squares of 64-320 px cut at seeded random places from the Solvay
  photo and from MTFL web photos, away from every known face (Solvay: the 29 boxes, MTFL:
  the annotated face, widened 3x); every detection on them is a false face. (MTFL photos
  may hold unannotated faces of other people; that inflates every setting alike.)

Settings: ``full`` and ``short`` are the single models as MediaPipe runs them (the old
default was ``full``); ``auto`` is the default: both models merged, doubtful candidates
verified, a padded second chance when nothing is found.

    python benchmarks/bench_detection.py [--limit N] [--readme]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_note, markdown_table, update_readme  # noqa: E402
from duchenne.analysis.crops import DEFAULT_CANVAS, load_gray, make_canvas  # noqa: E402
from duchenne.face.detector import Detections, FaceDetector  # noqa: E402
from duchenne.io.image import load_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
SOLVAY = ROOT / "tests" / "data" / "solvay_1927.jpg"
SOLVAY_FACES = ROOT / "tests" / "data" / "solvay_1927_faces.json"
POSES = {1: "left profile", 2: "left", 3: "frontal", 4: "right", 5: "right profile"}

Detector = Callable[[np.ndarray], Detections]


def settings(threads: int = 1) -> dict[str, Detector]:
    """The detector settings compared (MediaPipe's single models and duchenne's default)."""
    single = {"verify_min": None, "second_chance": False, "threads": threads}
    return {
        "full": FaceDetector("full", **single),
        "short": FaceDetector("short", **single),
        "auto": FaceDetector("auto", threads=threads),
    }


def contains(dets: Detections, points: np.ndarray) -> np.ndarray:
    """(boxes, points) bool: box i contains point j."""
    b = dets.xyxy[:, None, :]
    x, y = points[None, :, 0], points[None, :, 1]
    return (b[..., 0] <= x) & (x <= b[..., 2]) & (b[..., 1] <= y) & (y <= b[..., 3])


def mtfl_items(limit: int | None) -> list[tuple[Path, np.ndarray, int]]:
    """(path, 5 landmarks (5, 2), pose) of MTFL's training part."""
    root = DATASETS / "mtfl"
    items = []
    for line in (root / "training.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) < 15:
            continue
        values = np.array(parts[1:11], float)
        points = np.stack([values[:5], values[5:]], axis=1)
        items.append((root / parts[0].replace("\\", "/"), points, int(parts[14])))
    return _sample(items, limit)


def _sample(items: list, limit: int | None) -> list:
    if limit is None or limit >= len(items):
        return items
    pick = np.random.default_rng(0).choice(len(items), limit, replace=False)
    return [items[i] for i in sorted(pick)]


def run_mtfl(detectors: dict[str, Detector], limit: int | None) -> list[list[object]]:
    found: dict[str, dict[int, list[bool]]] = {n: {p: [] for p in POSES} for n in detectors}
    for path, points, pose in mtfl_items(limit):
        image = load_image(path)
        for name, detect in detectors.items():
            found[name][pose].append(bool(contains(detect(image), points[2:3]).any()))
    rows = []
    for pose, label in POSES.items():
        n = len(found[next(iter(detectors))][pose])
        rows.append([f"MTFL {label}", n, *(_pct(found[d][pose]) for d in detectors)])
    near = [2, 3, 4]
    rows.append(
        [
            "MTFL frontal + near-frontal",
            sum(len(found[next(iter(detectors))][p]) for p in near),
            *(_pct(sum((found[d][p] for p in near), [])) for d in detectors),
        ]
    )
    return rows


def run_small(
    detectors: dict[str, Detector], name: str, paths: list[Path], canvas_key: str
) -> list[object]:
    canvas = DEFAULT_CANVAS[canvas_key]
    found: dict[str, list[bool]] = {n: [] for n in detectors}
    for path in paths:
        image = make_canvas(load_gray(path), canvas)
        centre = np.array([[image.shape[1] / 2, image.shape[0] / 2]])
        for d, detect in detectors.items():
            found[d].append(bool(contains(detect(image), centre).any()))
    return [f"{name} (upscaled {canvas.upscale} px + {canvas.border} px border)", len(paths)] + [
        _pct(found[d]) for d in detectors
    ]


def run_solvay(detectors: dict[str, Detector]) -> list[list[object]]:
    image = load_image(SOLVAY)
    boxes = np.array(json.loads(SOLVAY_FACES.read_text())["boxes_xyxy"], np.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    found, false = [], []
    for detect in detectors.values():
        hit = contains(detect(image), centres)
        found.append(f"{int(hit.any(0).sum())}/{len(boxes)}")
        false.append(int((~hit.any(1)).sum()) if hit.size else 0)
    return [
        ["Solvay 1927: faces found", len(boxes), *found],
        ["Solvay 1927: false faces", 1, *false],
    ]


def face_free_patches(count: int, seed: int = 0) -> list[np.ndarray]:
    """Squares cut away from every known face: half from Solvay, half from MTFL web photos."""
    rng = np.random.default_rng(seed)
    patches = []
    solvay = load_image(SOLVAY)
    faces = np.array(json.loads(SOLVAY_FACES.read_text())["boxes_xyxy"], np.float32)
    patches += _cut(rng, solvay, _widen(faces, 1.6), count // 2)
    web = [item for item in mtfl_items(None) if "net_7876" in str(item[0])] if _has("mtfl") else []
    for i in rng.permutation(len(web))[: count - len(patches)] if web else []:
        path, points, _ = web[i]
        lo, hi = points.min(0), points.max(0)
        box = np.array([[*lo, *hi]], np.float32)
        patches += _cut(rng, load_image(path), _widen(box, 3.0), 1, tries=20)
    return patches


def _widen(boxes: np.ndarray, factor: float) -> np.ndarray:
    c, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).max(1) / 2
    half = half[:, None] * factor
    return np.concatenate([c - half, c + half], axis=1)


def _cut(
    rng: np.random.Generator, image: np.ndarray, avoid: np.ndarray, n: int, tries: int = 10000
) -> list[np.ndarray]:
    h, w = image.shape[:2]
    out = []
    for _ in range(tries):
        if len(out) == n:
            break
        side = int(rng.integers(64, min(320, h, w) + 1))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        a = avoid
        overlap = (a[:, 0] < x + side) & (a[:, 2] > x) & (a[:, 1] < y + side) & (a[:, 3] > y)
        if not overlap.any():
            out.append(image[y : y + side, x : x + side])
    return out


COLUMNS = {"full": "`full` model alone", "short": "`short` model alone", "auto": "`auto`"}
SETTINGS_NOTE = (
    "The `full` and `short` columns are each BlazeFace model alone, without the second look "
    "at doubtful candidates and the padded retry that `--detector full|short` add; `auto` is "
    "the detector as the CLI and the Python API run it by default."
)


def run_negatives(detectors: dict[str, Detector], count: int) -> list[object]:
    patches = face_free_patches(count)
    false = [sum(len(detect(p)) for p in patches) for detect in detectors.values()]
    return ["Face-free patches: false faces", len(patches), *false]


def _pct(values: list[bool]) -> str:
    return f"{100 * np.mean(values):.2f}%" if values else "-"


def _has(name: str) -> bool:
    return (DATASETS / name).is_dir()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=None, help="images per set (seeded sample)")
    parser.add_argument("--patches", type=int, default=2000, help="face-free patches")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    detectors = settings()
    start = time.perf_counter()
    rows = run_solvay(detectors)
    if _has("mtfl"):
        rows += run_mtfl(detectors, args.limit)
    else:
        print(f"MTFL skipped: {DATASETS / 'mtfl'} not found", file=sys.stderr)
    if _has("ferplus"):
        paths = sorted((DATASETS / "ferplus" / "FER2013Test").glob("*.png"))
        rows.append(run_small(detectors, "FER+ Test", _sample(paths, args.limit), "ferplus"))
    if _has("smilesmiled"):
        paths = sorted((DATASETS / "smilesmiled" / "SMILEs").rglob("*.jpg"))
        rows.append(run_small(detectors, "SMILEsmileD", _sample(paths, args.limit), "smilesmiled"))
    rows.append(run_negatives(detectors, args.patches))
    header = ["set", "images", *(COLUMNS[name] for name in detectors)]
    note = machine_note().format(script="benchmarks/bench_detection.py")
    limit = f" (seeded sample of {args.limit} per set)" if args.limit else ""
    text = f"{markdown_table(header, rows)}\n\n{SETTINGS_NOTE} {note}{limit}"
    print(text)
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if args.readme:
        update_readme("bench-detection", text)


if __name__ == "__main__":
    main()
