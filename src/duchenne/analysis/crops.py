"""Aligned face crops of small dataset images, made by the project's own face pipeline.

Used by training (``duchenne.train.crops`` builds its cache with it) and by evaluation
(``duchenne.evaluation.runner``), so a model is scored on exactly the crops it learned from.

Why not train on the datasets' ready-made crops: at inference a face is found by
BlazeFace, located by Face Mesh and cut out by ``duchenne.face.align``; a model trained on
differently framed crops loses accuracy on real photos. So every training image goes
through the same pipeline: the small dataset image (48 px FER+, 64 px SMILEsmileD) is
upscaled onto a canvas with a border (the detector needs context around a face), the
most confident face's Face Mesh eye centres give the canonical 48x48 crop.

When no face is detected, the crop falls back to a fixed template: the median eye
positions of the faces detected in the same dataset split (all images of a dataset have
the same size and framing), so a fallback crop is framed like the others. Failure rates
are stored in each cache's metadata and printed, since they bound how much of the
training set saw the real pipeline.

Torch-free: evaluation and cache building need no ``train`` extra.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from duchenne.analysis.crop_format import CROP_SIZE, CropFormat
from duchenne.face.align import AlignConfig

log = logging.getLogger(__name__)

MODES = ("pipeline", "resize")
EYE_SOURCES = ("mesh", "keypoints")


DEFAULT_FORMAT = CropFormat()
"""48 px grey: the crops every shipped model takes."""


@dataclass(frozen=True)
class CanvasConfig:
    """How a small dataset image is presented to the face detector.

    Args:
        upscale: side (px) the square dataset image is resized to (bicubic).
        border: pixels added on every side of the upscaled image.
        border_mode: border the *detector* sees: ``constant`` (grey) or ``replicate``.
        detector: BlazeFace variant, ``short`` or ``full``.
        align_border_mode: border of the canvas the crop is cut from. ``replicate`` by
            default, like ``align_face`` beyond an image edge: a grey border would put a
            flat wedge into crops of faces framed tighter than the template, a pattern
            that real photos (with real context there) never show.
        min_iod, max_iod: plausible inter-ocular distance, relative to the split's median;
            a detection outside it is replaced by the template crop. Below ~0.55 the face
            is mostly a profile (or a hand/second face): the eye-distance-based aligner
            zooms into a blurred cheek, which is training noise.
        max_offset: plausible eye-midpoint distance from the median, in median IODs
            (the datasets' faces are centred). On 800 FER+ Train images, 3% fall below
            ``min_iod`` and 1% beyond ``max_offset``; on SMILEsmileD none.
        eyes: where the aligner's eye centres come from: ``mesh`` (Face Mesh, what the
            models are trained on and what ``Analyzer`` uses when landmarks run) or
            ``keypoints`` (BlazeFace's eye keypoints: what ``stages=detect,smile`` uses, no
            Face Mesh pass), to measure that faster path's accuracy.
    """

    upscale: int = 128
    border: int = 32
    border_mode: str = "constant"
    detector: str = "short"
    align_border_mode: str = "replicate"
    min_iod: float = 0.55
    max_iod: float = 1.8
    max_offset: float = 0.75
    eyes: str = "mesh"


# Tuned with ``duchenne train crops --tune --limit 200`` (200 random train images per
# dataset, 36 canvases): the short-range BlazeFace on a 128 px upscale with a 32 px grey
# border detects 99.0% (FER+) / 100% (SMILEsmileD); the full-range model peaks at 70% /
# 62%, and without a border the short-range model drops to 93% / 60%. Kept per dataset
# because the two sets are framed differently.
DEFAULT_CANVAS: dict[str, CanvasConfig] = {
    "ferplus": CanvasConfig(),
    "smilesmiled": CanvasConfig(),
}


def stages_for_eyes(eyes: str) -> tuple[str, ...]:
    """``Analyzer`` stages whose ``face_eyes`` come from ``eyes`` (one of ``EYE_SOURCES``)."""
    if eyes not in EYE_SOURCES:
        raise ValueError(f"eyes must be one of {EYE_SOURCES}, got {eyes!r}")
    return ("detect", "landmarks") if eyes == "mesh" else ("detect",)


class FaceFinder(Protocol):
    """What ``crop_one`` needs from the analyzer: eye centres of the best face, or None."""

    def __call__(self, canvas_rgb: np.ndarray) -> np.ndarray | None: ...


class PipelineFinder:
    """Detect (+ Face Mesh) with the project's ``Analyzer``; returns (2, 2) eye centres or None.

    ``eyes="keypoints"`` skips Face Mesh and returns the detector's eye keypoints, the
    eyes ``Analyzer.face_crops`` aligns on when the landmarks stage is off. Dataset
    images are upright, so the finder never turns them (``rotations=False``): a turned
    look would only add false faces on the few canvases the detector misses, and change
    the crops the shipped models were trained on.
    """

    def __init__(
        self, detector: str = "full", eyes: str = "mesh", max_faces: int | None = 1
    ) -> None:
        from duchenne.analysis.analyzer import Analyzer

        self.analyzer = Analyzer(
            stages=stages_for_eyes(eyes),
            detector=detector,
            max_faces=max_faces,
            threads=1,
            rotations=False,
        )

    def __call__(self, canvas_rgb: np.ndarray) -> np.ndarray | None:
        eyes = self.all_eyes(canvas_rgb)
        return eyes[0] if len(eyes) else None

    def all_eyes(self, image_rgb: np.ndarray) -> np.ndarray:
        """Eye centres (n, 2, 2) of every face found, most confident first."""
        faces = self.analyzer.faces_in(image_rgb)
        order = np.argsort(-np.asarray(faces.score))
        return self.analyzer.face_eyes(faces)[order].astype(np.float32)


def load_gray(path: str | Path) -> np.ndarray:
    """A dataset image as 2-D uint8 grey (FER+/SMILEsmileD are grey already)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        from duchenne.errors import ImageLoadError

        raise ImageLoadError(f"cannot read {path}")
    return image


def make_canvas(gray: np.ndarray, cfg: CanvasConfig, for_align: bool = False) -> np.ndarray:
    """Upscaled, bordered RGB canvas for the detector (or, ``for_align``, the aligner).

    Both canvases share one geometry, so eye coordinates found on one apply to the other.
    """
    up = cv2.resize(gray, (cfg.upscale, cfg.upscale), interpolation=cv2.INTER_CUBIC)
    border_mode = cfg.align_border_mode if for_align else cfg.border_mode
    mode = cv2.BORDER_REPLICATE if border_mode == "replicate" else cv2.BORDER_CONSTANT
    b = cfg.border
    framed = cv2.copyMakeBorder(up, b, b, b, b, mode, value=128)
    return cv2.cvtColor(framed, cv2.COLOR_GRAY2RGB)


def aligned_gray(canvas_rgb: np.ndarray, eyes: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The canonical crop, converted to grey exactly as ``SmileModel.preprocess`` does."""
    return aligned_crop(canvas_rgb, eyes, CropFormat(size))


def aligned_crop(canvas_rgb: np.ndarray, eyes: np.ndarray, fmt: CropFormat) -> np.ndarray:
    """The canonical crop in ``fmt``: RGB as the aligner cuts it, or grey converted exactly
    as ``SmileModel.preprocess`` converts it."""
    from duchenne.face.align import align_face

    crop = align_face(canvas_rgb, (eyes[0], eyes[1]), fmt.align_config())
    return crop if fmt.colour else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


def resize_crop(gray: np.ndarray, size: int = CROP_SIZE, colour: bool = False) -> np.ndarray:
    """Plain resize of the whole image (the ``resize`` mode: no face pipeline at all)."""
    interp = cv2.INTER_AREA if gray.shape[0] > size else cv2.INTER_CUBIC
    out = cv2.resize(gray, (size, size), interpolation=interp)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB) if colour else out


# ----------------------------------------------------------------- worker processes

_FINDER: FaceFinder | None = None
_CANVAS: CanvasConfig | None = None
_FORMAT = DEFAULT_FORMAT


def _init_worker(
    factory: Callable[[CanvasConfig], FaceFinder], canvas: CanvasConfig, fmt: CropFormat
) -> None:
    """Build one analyzer per worker process (onnxruntime sessions are not picklable)."""
    global _FINDER, _CANVAS, _FORMAT
    cv2.setNumThreads(1)
    _FINDER, _CANVAS, _FORMAT = factory(canvas), canvas, fmt


def _detect_one(path: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(crop, eyes) for one image; (None, None) when no face was found."""
    assert _FINDER is not None and _CANVAS is not None
    gray = load_gray(path)
    eyes = _FINDER(make_canvas(gray, _CANVAS))
    if eyes is None:
        return None, None
    return aligned_crop(make_canvas(gray, _CANVAS, for_align=True), eyes, _FORMAT), eyes


def default_finder(canvas: CanvasConfig) -> FaceFinder:
    """The real analyzer (picklable factory for worker processes)."""
    return PipelineFinder(canvas.detector, canvas.eyes)


def _map(
    fn: Callable[[Any], Any],
    paths: Sequence[Any],
    factory: Callable[[CanvasConfig], FaceFinder],
    canvas: CanvasConfig,
    processes: int,
    fmt: CropFormat,
) -> list[Any]:
    """Order-preserving map over paths with ``processes`` workers (1 = in this process)."""
    if processes <= 1:
        _init_worker(factory, canvas, fmt)
        return [fn(p) for p in paths]
    ctx = mp.get_context("spawn")  # fresh interpreters: no forked onnxruntime state
    with ctx.Pool(processes, initializer=_init_worker, initargs=(factory, canvas, fmt)) as pool:
        return list(pool.imap(fn, paths, chunksize=64))


# ----------------------------------------------------------------- building


@dataclass
class CropResult:
    """Crops of one split plus what happened per image."""

    images: np.ndarray
    detected: np.ndarray
    eyes: np.ndarray  # (N, 2, 2) canvas coordinates; template eyes where not detected
    template_eyes: list[list[float]] | None
    seconds: float
    rejected: int = 0  # faces found but implausible (counted as failures)
    found: np.ndarray | None = None  # (N,) a face was detected at all


def template_eyes(eyes: np.ndarray, detected: np.ndarray, canvas: CanvasConfig) -> np.ndarray:
    """Median detected eye centres: the fixed template for images with no detection.

    With no detection at all, a template from the canonical geometry centred on the
    upscaled image (eyes at 33% height, 36% apart) is used instead.
    """
    if detected.any():
        return np.median(eyes[detected], axis=0).astype(np.float32)
    cfg = AlignConfig()
    c, iod = canvas.border + canvas.upscale / 2, cfg.iod_fraction * canvas.upscale
    y = canvas.border + cfg.eye_y * canvas.upscale
    return np.array([[c - iod / 2, y], [c + iod / 2, y]], np.float32)


def build_crops(
    paths: Sequence[str | Path],
    *,
    mode: str = "pipeline",
    canvas: CanvasConfig | None = None,
    processes: int = 2,
    finder_factory: Callable[[CanvasConfig], FaceFinder] = default_finder,
    fmt: CropFormat = DEFAULT_FORMAT,
) -> CropResult:
    """Aligned crops for ``paths`` (``mode``: ``pipeline`` = detector + aligner, ``resize``)
    in ``fmt`` (48 px grey by default)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    start = time.perf_counter()
    paths = [str(p) for p in paths]
    n = len(paths)
    if mode == "resize":
        crops = [resize_crop(load_gray(p), fmt.size, fmt.colour) for p in paths]
        images = np.stack(crops) if n else _empty(fmt)
        none = np.zeros(n, bool)
        return CropResult(
            images, none, np.zeros((n, 2, 2), np.float32), None, time.perf_counter() - start
        )
    canvas = canvas or CanvasConfig()
    results = _map(_detect_one, paths, finder_factory, canvas, processes, fmt)
    found = np.array([r[0] is not None for r in results], bool)
    eyes = np.zeros((n, 2, 2), np.float32)
    for i, (_, e) in enumerate(results):
        if e is not None:
            eyes[i] = e
    detected = found & plausible_eyes(eyes, found, canvas)
    template = template_eyes(eyes, detected, canvas)
    images = np.empty((n, *fmt.shape), np.uint8)
    for i, (crop, _) in enumerate(results):
        if not detected[i]:
            eyes[i] = template
            framed = make_canvas(load_gray(paths[i]), canvas, for_align=True)
            crop = aligned_crop(framed, template, fmt)
        images[i] = crop
    seconds = time.perf_counter() - start
    return CropResult(
        images, detected, eyes, template.tolist(), seconds, int((found & ~detected).sum()), found
    )


def plausible_eyes(eyes: np.ndarray, found: np.ndarray, canvas: CanvasConfig) -> np.ndarray:
    """Detections whose eye distance and position agree with the split's median face.

    Why: dataset images hold one centred face; a detection far off in scale or position
    is a hand, a poster face or a landmark failure, and its crop would be training noise.
    """
    if not found.any():
        return found.copy()
    iod = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1)
    mid = eyes.mean(axis=1)
    med_iod = float(np.median(iod[found]))
    med_mid = np.median(mid[found], axis=0)
    ok_scale = (iod >= canvas.min_iod * med_iod) & (iod <= canvas.max_iod * med_iod)
    ok_pos = np.linalg.norm(mid - med_mid, axis=1) <= canvas.max_offset * med_iod
    return found & ok_scale & ok_pos


# ----------------------------------------------------------------- full-resolution photos


def photo_finder(canvas: CanvasConfig) -> FaceFinder:
    """Every face of a photo (picklable factory): photos may hold more than the labelled face."""
    return PipelineFinder(canvas.detector, canvas.eyes, max_faces=None)


def load_rgb(path: str | Path) -> np.ndarray:
    """A photo as RGB uint8, decoded like ``Analyzer`` decodes it (EXIF rotation, modes)."""
    from duchenne.io.image import load_image

    return load_image(path)


def match_hint(eyes: np.ndarray, hint: np.ndarray, max_shift: float = 0.5) -> int | None:
    """Index of the face whose eye midpoint lies nearest the labelled eyes, or None.

    Why: a dataset photo labels one face (its landmarks say which); another face in the
    background must not take its label. A detection counts as that face when its eye
    midpoint is within ``max_shift`` labelled inter-ocular distances and its scale is
    within 2x.
    """
    if len(eyes) == 0:
        return None
    iod = max(float(np.linalg.norm(hint[1] - hint[0])), 1.0)
    shift = np.linalg.norm(eyes.mean(axis=1) - hint.mean(axis=0), axis=1) / iod
    scale = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1) / iod
    ok = (shift <= max_shift) & (scale >= 0.5) & (scale <= 2.0)
    if not ok.any():
        return None
    return int(np.argmin(np.where(ok, shift, np.inf)))


def labelled_face(analyzer: Any, image: Any, hint: np.ndarray) -> tuple[Any, int | None]:
    """``analyzer.analyze(image)`` and the index of the face matching the labelled eyes
    ``hint`` (2, 2) (``match_hint``; None when no face matches), for dataset photos that
    label one face of possibly several."""
    faces = analyzer.analyze(image)
    return faces, match_hint(analyzer.face_eyes(faces), np.asarray(hint, np.float32))


def _photo_one(job: tuple[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """(crop, eyes, found, matched) for one photo; the labelled eyes stand in when unmatched."""
    assert _FINDER is not None
    path, hint = job
    rgb = load_rgb(path)
    eyes = _FINDER.all_eyes(rgb)  # type: ignore[attr-defined]
    index = match_hint(eyes, hint)
    chosen = hint if index is None else eyes[index]
    crop = aligned_crop(rgb, chosen, _FORMAT)
    return crop, chosen.astype(np.float32), len(eyes) > 0, index is not None


def build_photo_crops(
    paths: Sequence[str | Path],
    hint_eyes: np.ndarray,
    *,
    detector: str = "auto",
    eyes: str = "mesh",
    processes: int = 2,
    finder_factory: Callable[[CanvasConfig], FaceFinder] = photo_finder,
    fmt: CropFormat = DEFAULT_FORMAT,
) -> CropResult:
    """Aligned crops of full-resolution photos through the face pipeline, as at inference.

    The photo is analysed as a user's photo would be (no canvas, the default ``auto``
    detector and Face Mesh; the v2 training caches were cut with ``full``, the default
    before ``auto`` existed); the face matching the labelled eyes ``hint_eyes`` ((n, 2, 2),
    subject's right eye first) is cropped. Where the pipeline misses that face, the
    labelled eyes align the crop instead (``detected`` False), so every labelled photo
    is used and the failure rate is recorded.
    """
    start = time.perf_counter()
    canvas = CanvasConfig(detector=detector, eyes=eyes)
    jobs = [(str(p), np.asarray(h, np.float32)) for p, h in zip(paths, hint_eyes, strict=True)]
    results = _map(_photo_one, jobs, finder_factory, canvas, processes, fmt)
    n = len(results)
    if not n:
        return CropResult(
            _empty(fmt), np.zeros(0, bool), np.zeros((0, 2, 2), np.float32), None, 0.0
        )
    images = np.stack([r[0] for r in results])
    eyes = np.stack([r[1] for r in results])
    found = np.array([r[2] for r in results], bool)
    detected = np.array([r[3] for r in results], bool)
    seconds = time.perf_counter() - start
    return CropResult(images, detected, eyes, None, seconds, int((found & ~detected).sum()), found)


def _empty(fmt: CropFormat) -> np.ndarray:
    return np.zeros((0, *fmt.shape), np.uint8)
