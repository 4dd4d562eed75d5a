"""What the 52 blendshape coefficients are worth here: agreement, smile AUC, AU6, dead channels.

Four tables (markdown; ``--readme`` writes them into README.md's ``blendshapes`` block):

1. Agreement with MediaPipe 0.10.21's own Face Landmarker on the same photos (MTFL
   validation photos), for duchenne's stage (Face Landmarker's 478-point model on the ROI
   from our Face Mesh landmarks) and for the measured alternatives: the 478-point model on
   the detection ROI (duchenne's default detector and the short-range one that MediaPipe
   uses), and our 468 Face Mesh points with
   iris points from a mean eye template (fitted on other photos' MediaPipe landmarks).
   Needs ``--mediapipe-reference`` (JSON from ``scripts/mediapipe_face_landmarker_reference.py``;
   ``--write-paths`` lists the photos it must be run on).
2. Smile separation: ROC-AUC of ``mouthSmileLeft``/``Right`` (and their mean) against the
   smile labels of MTFL's validation split (``read_mtfl(split="valid")``, seed 0) and FER+
   Test (plurality happiness), next to our smile model's probability on the same faces.
3. ``eyeSquint`` against our AU6 proxies: the astronaut photo warped to known AU6 levels
   (tests/video_factory.py, the video tests' generator), and on MTFL faces.
4. Per-channel range on MTFL validation faces: dead channels (99th percentile < 0.01).

    python benchmarks/bench_blendshapes.py --limit 400 \
        [--mediapipe-reference build/blendshapes/mp_reference.json] [--readme]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import markdown_table, readme_block, update_readme  # noqa: E402
from duchenne import Analyzer  # noqa: E402
from duchenne.analysis.crops import labelled_face  # noqa: E402
from duchenne.datasets import labelled_eyes, read_ferplus, read_mtfl  # noqa: E402
from duchenne.evaluation.metrics import roc_auc  # noqa: E402
from duchenne.face.blendshapes import BLENDSHAPE_NAMES, FaceBlendshapes  # noqa: E402
from duchenne.face.detector import FaceDetector  # noqa: E402
from duchenne.face.geometry import au_proxies, geometry_arrays  # noqa: E402
from duchenne.face.landmarks import FaceRoi, roi_from_detection, roi_from_landmarks  # noqa: E402
from duchenne.io.image import load_image  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
IDX = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
SMILE_L, SMILE_R = IDX["mouthSmileLeft"], IDX["mouthSmileRight"]
SQUINT = [IDX["eyeSquintLeft"], IDX["eyeSquintRight"]]
GEO_KEYS = ("eye_aperture", "cheek_eye_distance", "au6", "au12")
SHOWN = ("mouthSmileLeft", "eyeSquintLeft", "jawOpen", "eyeBlinkLeft", "browInnerUp")
# iris template: Face Mesh eye corners (image-left corner first) and the first iris index
EYES = {"right": (33, 133, 468), "left": (362, 263, 473)}


# ---------------------------------------------------------------------------- agreement


def _eye_frame(points: np.ndarray, a: int, b: int) -> tuple[np.ndarray, ...]:
    o = (points[a, :2] + points[b, :2]) / 2
    ex = points[b, :2] - points[a, :2]
    width = max(float(np.hypot(*ex)), 1e-6)
    ex = ex / width
    return o, ex, np.array([-ex[1], ex[0]]), np.float64(width)


def fit_iris_template(landmarks_478: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Mean position of the 5 iris points of each eye in eye-corner units."""
    template = {}
    for eye, (a, b, s) in EYES.items():
        acc = []
        for p in landmarks_478:
            o, ex, ey, w = _eye_frame(p, a, b)
            q = p[s : s + 5, :2] - o
            acc.append(np.stack([q @ ex, q @ ey], 1) / w)
        template[eye] = np.mean(acc, axis=0)
    return template


def with_template_iris(p468: np.ndarray, template: dict[str, np.ndarray]) -> np.ndarray:
    """478 points: our 468 and iris points placed by the template (gaze lost)."""
    out = np.zeros((478, 3), np.float32)
    out[:468] = p468
    for eye, (a, b, s) in EYES.items():
        o, ex, ey, w = _eye_frame(p468, a, b)
        q = template[eye] * w
        out[s : s + 5, :2] = o + q[:, :1] * ex + q[:, 1:] * ey
    return out


def _nearest(ref_faces: list[dict], nose: np.ndarray, size: float) -> dict | None:
    best, dist = None, 0.15 * size
    for face in ref_faces:
        d = float(np.hypot(*(np.asarray(face["landmarks"][1][:2]) - nose)))
        if d < dist:
            best, dist = face, d
    return best


def agreement(reference: dict, paths: list[str], threads: int) -> str:
    """Table 1: |ours - MediaPipe| per method on the photos both found a face in."""
    images = reference["images"]
    paths = [p for p in paths if images.get(p)]
    half = len(paths) // 2
    fit_paths, eval_paths = paths[:half], paths[half:]
    template = fit_iris_template([np.array(images[p][0]["landmarks"]) for p in fit_paths])
    stage = FaceBlendshapes(threads=threads)
    analyzer = Analyzer(stages=("detect", "landmarks"), threads=threads)
    short = FaceDetector("short", threads=threads)
    methods: dict[str, list[np.ndarray]] = {}
    refs: list[np.ndarray] = []
    for path in eval_paths:
        image = load_image(path)
        faces = analyzer.faces_in(image)
        dets = short(image)
        for i in range(len(faces)):
            lm = faces.landmarks[i]
            ref = _nearest(images[path], lm[1, :2], float(np.ptp(lm[:, 0])))
            inside = [
                j
                for j, b in enumerate(dets.xyxy)
                if b[0] <= lm[1, 0] <= b[2] and b[1] <= lm[1, 1] <= b[3]
            ]
            if ref is None or not inside:
                continue
            refs.append(np.array([ref["blendshapes"][n] for n in BLENDSHAPE_NAMES]))
            j = inside[0]
            rois = {
                f"{analyzer.config.detector} (duchenne's default)": roi_from_detection(
                    faces.xyxy[i], faces.keypoints[i]
                ),
                "short-range": roi_from_detection(dets.xyxy[j], dets.keypoints[j]),
            }
            row = {
                "478-point model, ROI from Face Mesh landmarks (the stage)": stage(image, lm[None])[
                    0
                ]
            }
            for name, roi in rois.items():
                key = f"478-point model, {name} detector's ROI (MediaPipe: short-range)"
                row[key] = stage.from_rois(image, [roi])[0][0]
            row["468 Face Mesh + template iris"] = stage.coefficients(
                with_template_iris(lm, template)
            )
            mp_points = np.asarray(ref["landmarks"], np.float32)
            ours_mp_iris = np.concatenate([lm, mp_points[468:]])
            row["468 Face Mesh + MediaPipe's own iris points"] = stage.coefficients(ours_mp_iris)
            row["MediaPipe's own 478 points -> our ONNX blendshape model"] = stage.coefficients(
                mp_points
            )
            for key, value in row.items():
                methods.setdefault(key, []).append(value)
    ref_arr = np.array(refs)
    rows = []
    for key, values in methods.items():
        arr = np.array(values)
        diff = np.abs(arr - ref_arr)
        corr = [float(np.corrcoef(arr[:, IDX[n]], ref_arr[:, IDX[n]])[0, 1]) for n in SHOWN]
        rows.append(
            [key, len(arr)]
            + [f"{v:.4f}" for v in (diff.mean(), np.percentile(diff, 95), diff.max())]
            + [f"{c:.3f}" for c in corr]
        )
    header = ["method", "faces", "mean abs diff", "p95", "max"] + [f"r {n}" for n in SHOWN]
    note = (
        f"Photos: MTFL validation split (seed 0); the iris template is fitted on "
        f"{len(fit_paths)} photos' MediaPipe landmarks and every row is scored on the other "
        f"{len(eval_paths)}. Reference: MediaPipe {reference.get('mediapipe')} Face Landmarker "
        "(IMAGE mode, its own short-range detector). r = Pearson correlation with "
        "MediaPipe's coefficient."
    )
    return note + "\n\n" + markdown_table(header, rows)


# ---------------------------------------------------------------------------- smile AUC


def _mtfl_faces(limit: int, threads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Blendshapes, smile probability, eye aperture and labels of MTFL validation faces."""
    samples = read_mtfl(DATASETS / "mtfl", split="valid")[:limit]
    analyzer = Analyzer(stages=("detect", "landmarks", "geometry", "blendshapes", "smile"))
    shapes, smile, geo, labels = [], [], [], []
    for sample in samples:
        faces, i = labelled_face(analyzer, sample.path, labelled_eyes([sample])[0])
        if i is None:
            continue
        shapes.append(faces.blendshapes[i])
        smile.append(float(faces.smile[i]))
        geo.append([float(faces.data[k][i]) for k in GEO_KEYS])
        labels.append(sample.label)
    return np.array(shapes), np.array(smile), np.array(geo), [len(samples), np.array(labels)]


def _ferplus_faces(limit: int, threads: int) -> tuple[np.ndarray, ...]:
    """FER+ Test: 48x48 grey face crops. The detector misses half of them even upscaled, so
    Face Mesh runs on a fixed ROI (the whole crop x1.1, upscaled 4x) plus one tracking pass
    on its own landmarks; the smile model runs in crop mode (how FER+ is scored)."""
    import cv2

    samples = list(read_ferplus(DATASETS / "ferplus", "Test"))[:limit]
    analyzer = Analyzer(stages=("detect", "landmarks", "blendshapes", "smile"), threads=threads)
    shapes, smile, au12, labels = [], [], [], []
    for sample in samples:
        gray = cv2.imread(str(sample.path), cv2.IMREAD_GRAYSCALE)
        rgb = np.repeat(
            cv2.resize(gray, (192, 192), interpolation=cv2.INTER_CUBIC)[..., None], 3, 2
        )
        lm, _ = analyzer.mesh(rgb, [FaceRoi(96.0, 96.0, 1.1 * 192, 0.0)])
        lm, _ = analyzer.mesh(rgb, [roi_from_landmarks(lm[0])])
        shapes.append(analyzer.blendshapes(rgb, lm)[0])
        smile.append(float(analyzer.analyze(rgb, crop=True).smile[0]))
        au12.append(float(au_proxies(geometry_arrays(lm))["au12"][0]))
        labels.append(sample.label)
    return np.array(shapes), np.array(smile), np.array(au12), np.array(labels), len(samples)


def smile_auc_rows(
    name: str, shapes: np.ndarray, smile: np.ndarray, au12: np.ndarray, labels: np.ndarray, n: int
) -> list[object]:
    both = (shapes[:, SMILE_L] + shapes[:, SMILE_R]) / 2
    return [
        name,
        f"{len(labels)}/{n}",
        int(labels.sum()),
        *(
            f"{roc_auc(labels, x):.3f}"
            for x in (shapes[:, SMILE_L], shapes[:, SMILE_R], both, smile, au12)
        ),
        f"{float(np.corrcoef(both, smile)[0, 1]):.3f}",
    ]


# ---------------------------------------------------------------------------- AU6


def au6_table(threads: int) -> list[list[object]]:
    """eyeSquint and the geometry AU6 proxies on the astronaut warped to AU6 levels."""
    from tests.video_factory import render, template

    analyzer = Analyzer(stages=("detect", "landmarks", "geometry", "blendshapes"), threads=threads)
    tpl = template(512, 512)
    rows = []
    for lip in (0.0, 1.0):
        for au6 in (0.0, 0.25, 0.5, 0.75, 1.0):
            faces = analyzer.faces_in(render(tpl, lip, au6))
            b = faces.blendshapes[0]
            rows.append(
                [
                    lip,
                    au6,
                    float(b[SQUINT].mean()),
                    float(b[[IDX["cheekSquintLeft"], IDX["cheekSquintRight"]]].mean()),
                    float(b[[IDX["eyeBlinkLeft"], IDX["eyeBlinkRight"]]].mean()),
                    float((b[SMILE_L] + b[SMILE_R]) / 2),
                    float(faces.data["eye_aperture"][0]),
                    float(faces.data["cheek_eye_distance"][0]),
                    float(faces.data["au6"][0]),
                ]
            )
    return rows


def dead_channels(shapes: np.ndarray) -> str:
    p99 = np.percentile(shapes, 99, axis=0)
    dead = [f"{n} (p99 {p:.1e})" for n, p in zip(BLENDSHAPE_NAMES, p99, strict=True) if p < 0.01]
    return ", ".join(dead) or "none"


# ---------------------------------------------------------------------------- main


AGREEMENT = "Agreement with MediaPipe's own Face Landmarker:\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=400, help="faces per dataset")
    parser.add_argument("--agreement-limit", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mediapipe-reference", type=Path)
    parser.add_argument("--write-paths", type=Path, help="write the agreement photo list, exit")
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    if not (DATASETS / "mtfl").is_dir():
        raise SystemExit(f"{DATASETS} not found")
    valid = read_mtfl(DATASETS / "mtfl", split="valid")
    agree_paths = [str(s.path) for s in valid[: args.agreement_limit]]
    if args.write_paths:
        args.write_paths.write_text("\n".join(agree_paths) + "\n")
        return
    parts = []
    if args.mediapipe_reference:
        reference = json.loads(args.mediapipe_reference.read_text())
        parts.append(AGREEMENT + agreement(reference, agree_paths, args.threads))
    elif args.readme and AGREEMENT in (kept := readme_block("blendshapes")):
        # no reference at hand (it needs MediaPipe's own venv): the agreement table of the
        # last run that had one stays, the other tables are measured again
        parts.append(kept.split("\n\nSmile separation")[0])
    shapes, smile, geo, (n_mtfl, labels) = _mtfl_faces(args.limit, args.threads)
    f_shapes, f_smile, f_au12, f_labels, n_fer = _ferplus_faces(args.limit, args.threads)
    header = [
        "data",
        "faces",
        "smiling",
        "AUC mouthSmileLeft",
        "AUC mouthSmileRight",
        "AUC mean",
        "AUC our smile model",
        "AUC our au12 proxy",
        "r(mean, smile prob)",
    ]
    rows = [
        smile_auc_rows("MTFL valid (seed 0)", shapes, smile, geo[:, 3], labels, n_mtfl),
        smile_auc_rows(
            "FER+ Test (fixed ROI, crop mode)", f_shapes, f_smile, f_au12, f_labels, n_fer
        ),
    ]
    parts.append(
        "Smile separation (ROC-AUC; images: "
        + ("every image of each split" if args.limit >= 10**5 else f"first {args.limit} per split")
        + "; faces = faces scored / images):\n\n"
        + markdown_table(header, rows)
    )
    squint = shapes[:, SQUINT].mean(axis=1)
    r_ap = float(np.corrcoef(squint, geo[:, 0])[0, 1])
    r_ch = float(np.corrcoef(squint, geo[:, 1])[0, 1])
    r_au6 = float(np.corrcoef(squint, geo[:, 2])[0, 1])
    parts.append(
        "eyeSquint (mean of left/right) against our AU6 proxies, the astronaut warped to "
        "known AU12 (lip) and AU6 levels as in the video tests:\n\n"
        + markdown_table(
            [
                "lip",
                "AU6",
                "eyeSquint",
                "cheekSquint",
                "eyeBlink",
                "mouthSmile",
                "eye_aperture",
                "cheek_eye_distance",
                "au6 proxy",
            ],
            au6_table(args.threads),
        )
        + f"\n\nOn {len(squint)} MTFL validation faces: Pearson r(eyeSquint, eye_aperture) = "
        f"{r_ap:.3f}, r(eyeSquint, cheek_eye_distance) = {r_ch:.3f}, r(eyeSquint, au6 proxy) = "
        f"{r_au6:.3f}."
    )
    parts.append(
        f"Dead channels on {len(shapes)} MTFL validation faces (99th percentile < 0.01): "
        + dead_channels(shapes)
        + "."
    )
    text = "\n\n".join(parts) + "\n\nMeasured by `benchmarks/bench_blendshapes.py`."
    print(text)
    if args.readme:
        update_readme("blendshapes", text)


if __name__ == "__main__":
    main()
