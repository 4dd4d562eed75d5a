"""Measure the neutral-face geometry the single-photo AU6/AU12 proxies compare against.

Why: in a video the AU proxies compare each frame with the same person at rest; a single
photo has no rest frame, so it is compared with the median *neutral* face of FER+
instead, and a change counts as full strength at the 90th percentile of the change seen
on clearly happy FER+ faces. Run once; writes ``src/duchenne/data/face_norms.json``:

    python scripts/measure_face_norms.py --ferplus ../shared/datasets/ferplus [--n 300]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.datasets import read_ferplus
from duchenne.face.geometry import GEOMETRY_KEYS
from duchenne.io.image import load_image

OUT = Path(__file__).resolve().parents[1] / "src" / "duchenne" / "data" / "face_norms.json"
CUES = ("eye_aperture", "cheek_eye_distance", "lip_corner_elevation", "mouth_width")


def ferplus_canvas(path: Path) -> np.ndarray:
    """A 48 px FER+ face upscaled to 192 px on a 384 px grey canvas (room for the detector)."""
    face = cv2.resize(load_image(path), (192, 192), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((384, 384, 3), 128, np.uint8)
    canvas[96:288, 96:288] = face
    return canvas


def geometry_of(analyzer: Analyzer, paths: list[Path]) -> np.ndarray:
    """(m, len(CUES)) geometry of the faces found (one face per image, highest score)."""
    rows = []
    for path in paths:
        faces = analyzer.faces_in(ferplus_canvas(path))
        if len(faces):
            rows.append([float(faces.data[k][0]) for k in CUES])
    return np.array(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferplus", type=Path, default=Path("../shared/datasets/ferplus"))
    ap.add_argument("--n", type=int, default=300, help="faces per class")
    args = ap.parse_args()
    samples = read_ferplus(args.ferplus, "Train")
    rng = np.random.default_rng(0)
    picked = {}
    for name, index in (("neutral", 0), ("happy", 1)):
        pool = [s.path for s in samples if s.votes is not None and s.votes[index] >= 8]
        picked[name] = [pool[i] for i in rng.permutation(len(pool))[: args.n]]
    analyzer = Analyzer(stages=("detect", "landmarks", "geometry"), max_faces=1, threads=1)
    neutral = geometry_of(analyzer, picked["neutral"])
    happy = geometry_of(analyzer, picked["happy"])
    med = dict(zip(CUES, np.median(neutral, axis=0).tolist(), strict=True))
    eye, cheek, elev, width = (happy[:, i] for i in range(4))
    full = {
        # relative decreases (AU6) and the lip-corner rise / relative widening (AU12)
        "eye_narrowing": float(np.percentile(1 - eye / med["eye_aperture"], 90)),
        "cheek_raise": float(np.percentile(1 - cheek / med["cheek_eye_distance"], 90)),
        "lip_corner_rise": float(np.percentile(elev - med["lip_corner_elevation"], 90)),
        "mouth_widening": float(np.percentile(width / med["mouth_width"] - 1, 90)),
    }
    doc = {
        "source": "FER+ Train, >= 8 of 10 votes neutral / happiness, upscaled 48 -> 192 px",
        "script": "scripts/measure_face_norms.py",
        "faces": {"neutral": len(neutral), "happy": len(happy)},
        "neutral": {k: round(v, 5) for k, v in med.items()},
        "full": {k: round(v, 5) for k, v in full.items()},
        "geometry_keys": list(GEOMETRY_KEYS),
    }
    OUT.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
