"""Smile enhancement: move Face Mesh landmarks toward a Duchenne smile and warp the photo.

Why a landmark model and a mesh warp: a generative model would repaint the face (and ship
hundreds of megabytes); a geometric warp only moves the pixels that are already there, so
skin, identity, lighting and the rest of the photo are kept exactly, and every change is
explainable. The price is that nothing new appears (no teeth where the lips were closed).

Pipeline for one face (``warp_face``):

1. **Face frame.** The 3-D mesh gives the face its own axes: ``x`` from the subject's right
   eye centre to the left one, ``y`` from forehead (10) to chin (152) made orthogonal to
   ``x``. Unit = the 3-D inter-ocular distance (IOD). Every landmark gets face coordinates
   ``(u, v)`` (``u`` > 0 on the subject's left, ``v`` > 0 toward the chin), which do not
   change with head roll, yaw, pitch or face size.
2. **Displacement model** (:class:`DisplacementModel`, values in ``docs/enhance.md``). Each
   :class:`Handle` pushes the landmarks around its centre landmark by ``(out, up)`` IOD per
   unit ``amount``, with a Gaussian fall-off of width ``sigma`` IOD in face coordinates
   ("out" points away from the face's midline, so it is mirrored per side). A handle may
   be gated to one side of a line (the lower-lid push moves the lower lid, not the upper
   one). The sum is multiplied by a *pin* factor that is 0 on the face oval and rises
   smoothly to 1 at ``pin_width`` IOD inside it, so the face outline, hair and background
   never move. The face-frame vector is turned back into image pixels with the 3-D axes
   (a foreshortened "out" on a turned head) and dropped onto the image plane, then
   averaged over landmarks that lie within ``smooth`` IOD of each other *in the image*
   (on a turned head, points far apart on the face can be a pixel apart in the photo).
   On an open mouth (teeth showing) the inner-lip contour then gets one common move,
   fading out across the lips (``DisplacementModel.rigid_mouth``), so the teeth are
   moved, not bent; a closed mouth is left as it was.
3. **Mesh.** Delaunay triangulation (``cv2.Subdiv2D``) of the 468 landmarks plus a ring of
   fixed anchors around the face. Triangles must keep their orientation after the move
   (no folds); if one would flip (a degenerate mesh), the displacement is scaled down
   until none does and a warning is logged.
4. **Warp.** A dense backward map over the bounding box of the moving triangles only:
   each target pixel gets its triangle's affine map (target -> source) in one vectorised
   pass, then the displacement field is Gaussian-smoothed (``smooth`` IOD) to remove the
   creases of a piecewise-affine map, multiplied by a feather mask (the landmark hull,
   eroded and blurred, so it is exactly 0 outside the face) and by a ramp to 0 at the
   image border (no pixels pulled in from outside the photo), and applied with one
   ``cv2.remap``. Pixels whose displacement is 0 are copied, not resampled: everything
   outside the moving region is bit-identical to the input.

``enhance`` wraps this for whole images: analyse, warp the selected faces, re-analyse the
output, and report ``smile_score`` and smile geometry before and after. A transparent input
keeps its alpha channel: the analysis sees it composited on white (as ``load_image`` gives
every image), the warp moves its un-composited RGB, and the alpha is copied unchanged to
``EnhanceResult.rgba`` (what ``encode``/``save`` write to PNG and WebP).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.enhance_model import (
    DEFAULT_MODEL,
    LEFT_EYE_CORNERS,
    LIP_INNER_CENTRE,
    RIGHT_EYE_CORNERS,
    DisplacementModel,
    FaceFrame,
    Handle,
    face_frame_3d,
    smile_displacements,
)
from duchenne.analysis.enhance_warp import FaceWarp, anchor_ring, delaunay, signed_areas, warp_face
from duchenne.analysis.enhance_warp import _folded as _folded  # re-exported for tests
from duchenne.analysis.enhance_warp import _unfold as _unfold  # re-exported for tests
from duchenne.errors import NoFaceDetectedError
from duchenne.face.boxes import iou_matrix
from duchenne.face.detector import Detections
from duchenne.face.geometry import geometry_arrays
from duchenne.face.topology import FACE_OVAL
from duchenne.faces import Faces
from duchenne.io.image import encode_image, load_image
from duchenne.io.pixels import array_to_rgb

__all__ = [
    "DEFAULT_MODEL",
    "FACE_OVAL",
    "LEFT_EYE_CORNERS",
    "LIP_INNER_CENTRE",
    "REPORTED_GEOMETRY",
    "RIGHT_EYE_CORNERS",
    "DisplacementModel",
    "EnhanceResult",
    "FaceFrame",
    "FaceWarp",
    "Handle",
    "anchor_ring",
    "delaunay",
    "enhance",
    "face_frame_3d",
    "signed_areas",
    "smile_displacements",
    "ssim",
    "ssim_map",
    "warp_face",
]

#: Image formats ``EnhanceResult.encode``/``save`` write (PNG and WebP keep transparency;
#: WebP is written lossless, so amount 0 gives the input's pixels back exactly).
IMAGE_FORMATS: dict[str, str] = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp"}

#: geometry values reported before/after (the ones a smile changes)
REPORTED_GEOMETRY: tuple[str, ...] = (
    "lip_corner_elevation",
    "mouth_width",
    "mouth_open",
    "eye_aperture",
    "cheek_eye_distance",
)


# --------------------------------------------------------------------------- whole images


@dataclass
class EnhanceResult:
    """Output of :func:`enhance`.

    Attributes:
        image: the enhanced RGB uint8 image (H, W, 3); a transparent input is composited
            on white, as ``load_image`` shows it to the analysis (and as JPEG gets it).
        amount: the amount used.
        indices: indices (into ``before``) of the faces that were enhanced.
        before: analysis of the input image (all faces).
        after: analysis of the output image, reordered so row ``i`` is face ``i`` of
            ``before``; ``None`` when ``score=False``.
        matched: (n,) bool, whether the detector found face ``i`` again in the output;
            a face it misses is measured in the output at its input box instead.
        warps: one :class:`FaceWarp` per enhanced face, in ``indices`` order.
        rgba: (H, W, 4) uint8 for an input with transparency (RGBA, LA, a palette or a
            colour key): its own (un-composited) RGB, enhanced, and its alpha channel
            unchanged; None for an opaque input.
        icc_profile: the input's embedded RGB colour profile, written into every output
            format (the pixels keep the input's values, so they keep its colour space);
            None when it had none (or a grey or CMYK one: those pixels were converted).
    """

    image: np.ndarray
    amount: float
    indices: tuple[int, ...]
    before: Faces
    after: Faces | None = None
    matched: np.ndarray | None = None
    warps: list[FaceWarp] = field(default_factory=list)
    rgba: np.ndarray | None = None
    icc_profile: bytes | None = None

    def encode(self, format: str = "png", quality: int = 92) -> bytes:
        """The result as an image file: ``"png"``, ``"webp"`` (lossless) or ``"jpeg"``.

        PNG and WebP carry the input's alpha channel (``rgba``) when it had one; JPEG has
        no alpha, so it gets ``image`` (composited on white). All three carry
        ``icc_profile`` when the input had one.

        Raises:
            ValueError: an unknown format, or a JPEG quality outside 1-100.
        """
        fmt = IMAGE_FORMATS.get(format.lower().lstrip("."))
        if fmt is None:
            raise ValueError(
                f"unsupported output image format {format!r}; use {', '.join(IMAGE_FORMATS)}"
            )
        if not self.icc_profile and (fmt == "jpeg" or (fmt == "png" and self.rgba is None)):
            return encode_image(self.image, fmt, quality)
        from PIL import Image

        if fmt == "jpeg" and not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
        pixels = self.image if self.rgba is None or fmt == "jpeg" else self.rgba
        icc = {"icc_profile": self.icc_profile} if self.icc_profile else {}
        buf = io.BytesIO()
        if fmt == "png":
            Image.fromarray(pixels).save(buf, format="PNG", **icc)  # RGB or RGBA
        elif fmt == "webp":
            Image.fromarray(pixels).save(buf, format="WEBP", lossless=True, exact=True, **icc)
        else:
            Image.fromarray(pixels).save(buf, format="JPEG", quality=int(quality), **icc)
        return buf.getvalue()

    def save(self, path: str | os.PathLike[str], quality: int = 92) -> Path:
        """Write :meth:`encode` in the format of ``path``'s suffix, atomically.

        Raises:
            ValueError: a suffix other than ``.jpg``, ``.jpeg``, ``.png`` or ``.webp``.
            OSError: the file cannot be written.
        """
        from duchenne.io.atomic import atomic_write

        path = Path(path)
        data = self.encode(path.suffix or "?", quality)
        with atomic_write(path) as fh:
            fh.write(data)
        return path

    def changes(self) -> list[dict[str, Any]]:
        """Per face: box, whether it was enhanced, smile and geometry before -> after.

        Values are plain floats (None when not measured: no smile model ships, or
        ``score=False``). ``box`` is ``{"x1", "y1", "x2", "y2"}`` in input pixels, taken
        from ``Face.to_dict`` so it reads as in ``duchenne analyze`` JSON, batch and the
        service (it was a list here, the one output a shared reader could not parse).
        """
        rows = []
        for i in range(len(self.before)):
            found = self.after is not None
            row: dict[str, Any] = {
                "face": i,
                "enhanced": i in self.indices,
                "box": self.before.face(i).to_dict()["box"],
            }
            for key in ("smile_score", "smile"):
                row[f"{key}_before"] = _value(self.before, key, i)
                row[f"{key}_after"] = _value(self.after, key, i) if found else None
            for key in REPORTED_GEOMETRY:
                row[f"{key}_before"] = _value(self.before, key, i)
                row[f"{key}_after"] = _value(self.after, key, i) if found else None
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (a server route returns this beside ``encode_image(result.image)``)."""
        h, w = self.image.shape[:2]
        return {
            "image": {
                "width": int(w),
                "height": int(h),
                "alpha": self.rgba is not None,
                **_plain_meta(self.before.meta),
            },
            "amount": self.amount,
            "faces": self.changes(),
        }


def _value(faces: Faces | None, key: str, i: int) -> float | None:
    if faces is None:
        return None
    arr = getattr(faces, key, None) if key in ("smile_score", "smile") else faces.data.get(key)
    if arr is None:
        return None
    value = float(arr[i])
    return round(value, 4) if math.isfinite(value) else None


def _plain_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in meta.items()
        if isinstance(v, (str, int, float)) and k not in ("width", "height")
    }


def enhance(
    analyzer: Analyzer,
    source: Any,
    amount: float = 0.5,
    faces: int | Sequence[int] | None = None,
    *,
    score: bool = True,
    model: DisplacementModel = DEFAULT_MODEL,
) -> EnhanceResult:
    """Make the selected faces of a photo smile more (a Duchenne smile), leaving the rest alone.

    Args:
        analyzer: an ``Analyzer`` with the landmarks stage (its smile model, if any,
            gives ``smile_score`` before and after).
        source: anything ``load_image`` accepts.
        amount: 0 (returns the input exactly) to 1 (the full displacement model).
        faces: number(s) of the faces to change, as ``analyze`` numbers them (reading
            order: rows top to bottom, left to right, from 0); None = every face.
        score: re-analyse the output to report smile score and geometry after the change.
        model: the displacement model (default ``DEFAULT_MODEL``).

    Returns:
        An :class:`EnhanceResult`; for an input with transparency, ``rgba`` holds the
        enhanced RGB with the input's alpha channel unchanged.

    Raises:
        ImageLoadError: (and subclasses) the input cannot be decoded.
        NoFaceDetectedError: no face in the image, or a requested index does not exist.
        ValueError: ``amount`` outside [0, 1], or the analyzer has no landmarks stage.

    Example:
        >>> from duchenne import Analyzer, data, enhance
        >>> result = enhance(Analyzer(), data.astronaut(), amount=0.6)  # doctest: +SKIP
        >>> result.changes()[0]["lip_corner_elevation_after"]            # doctest: +SKIP
    """
    amount = _check_amount(amount)
    if "landmarks" not in analyzer.stages:
        raise ValueError("enhance needs an Analyzer with the 'landmarks' stage")
    start = _stream_position(source)
    image = load_image(source, max_pixels=analyzer.max_pixels)
    rgba = _transparent_pixels(source, image, start)
    icc_profile = _rgb_icc_profile(source, start)
    before = _analyze(analyzer, image, source)
    indices = _select(faces, len(before), _label(source))
    result = EnhanceResult(
        image=image.copy(), amount=amount, indices=indices, before=before, icc_profile=icc_profile
    )
    # the warp moves the input's own RGB: composited pixels for an opaque input, the
    # un-composited ones for a transparent input (whose alpha is never changed)
    src = image if rgba is None else np.ascontiguousarray(rgba[..., :3])
    out = result.image if rgba is None else src.copy()
    if amount > 0:
        for i in indices:
            _, record = warp_face(src, before.landmarks[i], amount, model, out=out)
            result.warps.append(record)
    if rgba is not None:
        alpha = rgba[..., 3]
        result.rgba = np.dstack([out, alpha])
        moved = (out != src).any(axis=2)
        result.image[moved] = _over_white(out[moved], alpha[moved])
    if score:
        after = before if amount == 0 else _analyze(analyzer, result.image, source)
        order, result.matched = _match(before, after)
        lost = np.flatnonzero(~result.matched)
        if len(lost):  # measured where they were in the input (see ``_analyze``)
            after = Faces.merge([after, _analyze(analyzer, result.image, source, at=before[lost])])
            order[lost] = np.arange(len(after) - len(lost), len(after))
        result.after = after[order]
        result.after.face_id = before.face_id  # row i is before's face i: it keeps its number
    return result


def _stream_position(source: Any) -> int | None:
    """Where a seekable file object starts (it is read twice for a transparent image)."""
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
        return None
    try:
        return int(source.tell()) if source.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _transparent_pixels(source: Any, image: np.ndarray, start: int | None) -> np.ndarray | None:
    """The input as straight (un-composited) RGBA uint8 when it has transparency, else None.

    ``image`` is what ``load_image`` made of it (alpha composited on white); the RGBA is
    kept only when compositing it gives exactly that, so the analysis and the written
    file always show the same picture.
    """
    from PIL import ImageOps

    rgba: np.ndarray | None = None
    if isinstance(source, np.ndarray):
        if source.ndim == 3 and source.shape[2] == 4:
            rgb = array_to_rgb(np.ascontiguousarray(source[..., :3]), "image")
            alpha = array_to_rgb(np.ascontiguousarray(source[..., 3]), "image")[..., 0]
            rgba = np.dstack([rgb, alpha])
    else:
        try:
            reopened = _open_again(source, start)
            if reopened is None:
                return None  # a stream that cannot be read again: composited RGB only
            opened, close = reopened
            try:
                if "A" in opened.mode or "a" in opened.mode or "transparency" in opened.info:
                    try:
                        upright = ImageOps.exif_transpose(opened)
                    except Exception:  # a malformed EXIF block: load_image ignores it too
                        upright = opened
                    rgba = np.array(upright.convert("RGBA"))
            finally:
                if close:
                    opened.close()
        except Exception:  # the pixels decoded once already; never fail on the alpha
            return None
    if rgba is None or rgba.shape[:2] != image.shape[:2]:
        return None
    if not np.array_equal(_over_white(rgba[..., :3], rgba[..., 3]), image):
        return None
    return rgba


def _open_again(source: Any, start: int | None) -> tuple[Any, bool] | None:
    """``source`` opened with Pillow (again) and whether to close it; None for an array or
    a stream that cannot be read again."""
    from PIL import Image

    if isinstance(source, Image.Image):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        return Image.open(source), True
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(source))), True
    if start is not None and not isinstance(source, np.ndarray):
        source.seek(start)
        return Image.open(source), False  # closing it would close the caller's stream
    return None


def _rgb_icc_profile(source: Any, start: int | None) -> bytes | None:
    """The input's embedded ICC profile when it describes RGB values, else None.

    ``load_image`` keeps an RGB (or palette) image's values as they are, so the output
    must carry the same profile to show the same colours (a Display P3 photo written
    without it looks washed out). A grey or CMYK profile does not describe the RGB
    pixels written, so it is dropped.
    """
    try:
        reopened = _open_again(source, start)
        if reopened is None:
            return None
        opened, close = reopened
        try:
            icc = opened.info.get("icc_profile")
        finally:
            if close:
                opened.close()
    except Exception:  # the pixels decoded once already; never fail on the profile
        return None
    if isinstance(icc, bytes) and icc[16:20] == b"RGB ":
        return icc
    return None


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` composited on white by ``alpha`` (``duchenne.io.pixels``' rounding)."""
    a = alpha.astype(np.uint16)[..., None]
    return ((rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _check_amount(amount: float) -> float:
    try:
        value = float(amount)
    except (TypeError, ValueError):
        raise ValueError(f"amount must be a number in [0, 1], got {amount!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount!r}")
    return value


def _label(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else "image"


def _select(faces: int | Sequence[int] | None, count: int, label: str) -> tuple[int, ...]:
    """Validate the requested face indices against the ``count`` faces found."""
    if count == 0:
        raise NoFaceDetectedError(f"{label}: no face found, nothing to enhance")
    if faces is None:
        return tuple(range(count))
    # one index unless a collection of them: a float (0.0) or a str ("0") is then refused
    # below as "face indices must be integers" instead of failing in list() or splitting
    collection = isinstance(faces, Iterable) and not isinstance(faces, (str, bytes))
    wanted = list(faces) if collection else [faces]
    if not wanted:
        raise ValueError("faces is empty: pass None to enhance every face")
    for i in wanted:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise ValueError(f"face indices must be integers, got {i!r}")
        if not 0 <= i < count:
            raise NoFaceDetectedError(
                f"{label}: face {i} does not exist; {count} face(s) found "
                f"(valid: {'0' if count == 1 else f'0-{count - 1}'})"
            )
    return tuple(dict.fromkeys(int(i) for i in wanted))


def _analyze(analyzer: Analyzer, image: np.ndarray, source: Any, at: Faces | None = None) -> Faces:
    """Full analysis (smile stage included when it runs) plus the smile geometry.

    ``at``: measure these faces where they are, without detecting. Why: a face the detector
    misses in the output (a borderline score that the warp of a neighbour tipped under the
    threshold, its own pixels unchanged) still gets an after value, from the same place.
    """
    if at is None:
        faces = analyzer.analyze(image)
    else:
        faces = analyzer.faces_in(image, Detections(at.xyxy, at.keypoints, at.score))
        analyzer.smiles([image], [faces])
    if faces.landmarks is not None and len(faces) and "lip_corner_elevation" not in faces.data:
        faces.data.update(geometry_arrays(faces.landmarks))
    label = _label(source)
    if label != "image":
        faces.meta["source"] = label
    return faces


def _match(before: Faces, after: Faces) -> tuple[np.ndarray, np.ndarray]:
    """Pair ``before``'s faces with ``after``'s by box IoU (greedy): for each face of
    ``before``, its row in ``after`` and whether it has one."""
    n = len(before)
    order = np.zeros(n, np.int64)
    matched = np.zeros(n, bool)
    if len(after):
        iou = iou_matrix(before.xyxy, after.xyxy)
        used: set[int] = set()
        for i in np.argsort(-iou.max(1)):
            for j in np.argsort(-iou[i]):
                if iou[i, j] < 0.5:
                    break
                if j not in used:
                    used.add(int(j))
                    order[i], matched[i] = j, True
                    break
    return order, matched


# --------------------------------------------------------------------------- SSIM


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004, Gaussian window) of two images, on luminance.

    Args:
        a, b: uint8 RGB (H, W, 3) or grey (H, W) images of the same shape.
        sigma: Gaussian window sigma in pixels (1.5 as in the paper).

    Returns:
        (H, W) float32 map in [-1, 1]; 1 where the images agree exactly.
    """
    x, y = (_luma(v) for v in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda v: cv2.GaussianBlur(v, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return (num / den).astype(np.float32)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM of two images, optionally only over the pixels where ``mask`` is true."""
    values = ssim_map(a, b)
    if mask is not None:
        values = values[np.asarray(mask, bool)]
    return float(values.mean()) if values.size else 1.0


def _luma(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image.astype(np.float64)
