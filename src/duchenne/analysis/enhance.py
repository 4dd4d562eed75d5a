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
output, and report ``smile_score`` and smile geometry before and after.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from duchenne.analysis.analyzer import Analyzer
from duchenne.errors import NoFaceDetectedError
from duchenne.face import topology as T
from duchenne.face.align import LEFT_EYE_IDX, RIGHT_EYE_IDX
from duchenne.face.boxes import iou_matrix
from duchenne.face.geometry import geometry_arrays
from duchenne.face.topology import CHIN, FACE_OVAL, FOREHEAD
from duchenne.face.warp import remap
from duchenne.faces import Faces
from duchenne.io.image import load_image

__all__ = [
    "DEFAULT_MODEL",
    "FACE_OVAL",
    "REPORTED_GEOMETRY",
    "DisplacementModel",
    "EnhanceResult",
    "FaceFrame",
    "FaceWarp",
    "Handle",
    "enhance",
    "face_frame_3d",
    "signed_areas",
    "smile_displacements",
    "ssim",
    "ssim_map",
    "warp_face",
]

logger = logging.getLogger(__name__)

RIGHT_EYE_CORNERS = (T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER)
LEFT_EYE_CORNERS = (T.LEFT_EYE_OUTER, T.LEFT_EYE_INNER)
LIP_INNER_CENTRE = (T.LIP_UPPER_INNER, T.LIP_LOWER_INNER)

#: geometry values reported before/after (the ones a smile changes)
REPORTED_GEOMETRY: tuple[str, ...] = (
    "lip_corner_elevation",
    "mouth_width",
    "mouth_open",
    "eye_aperture",
    "cheek_eye_distance",
)

_EPS = 1e-9
_ZERO_IOD = 2e-3  # landmark moves below this many IOD (at amount 1) are set to 0 (invisible)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Handle:
    """One muscle-like push on the mesh, defined in the face frame (units: IOD).

    Args:
        name: what it models (for docs and logs).
        centres: landmark(s) the push is centred on; one per side for mirrored handles
            (subject's right first), one for a midline handle.
        out: lateral move per unit amount, away from the face midline (> 0 = outward).
        up: vertical move per unit amount toward the forehead (> 0 = up).
        sigma: Gaussian fall-off radius around the centre, in IOD.
        gate: ``None``; ``"below_eye_line"`` / ``"above_eye_line"`` (only points below /
            above the line through the two corners of that eye move: the lower lid, not the
            upper one, and vice versa); ``"above_lip_line"`` (only points above the
            inner-lip midline move: the upper lip, not the lower one).
        gate_width: width in IOD over which the gate goes smoothly from 0 to 1.
    """

    name: str
    centres: tuple[int, ...]
    out: float
    up: float
    sigma: float
    gate: str | None = None
    gate_width: float = 0.04


@dataclass(frozen=True)
class DisplacementModel:
    """The smile as landmark displacements: handles, pin to the face oval, smoothing.

    Args:
        handles: the pushes (see :class:`Handle`); their effects add up.
        pin_width: displacement is 0 on the face oval and reaches full strength this many
            IOD inside it (smoothstep), so the outline and background never move.
        smooth: Gaussian sigma (IOD) of the image-space smoothing of the landmark
            displacements and of the dense displacement field.
        ring_scale: anchor ring size relative to the landmark bounding box.
    """

    handles: tuple[Handle, ...]
    pin_width: float = 0.25
    smooth: float = 0.03
    ring_scale: float = 1.4


#: The default Duchenne smile (AU6 cheek raiser + AU12 lip-corner puller), tuned on a
#: neutral public-domain portrait (Grace Hopper, ``tests/data``) until amount 1 is a clear,
#: still natural closed-mouth smile (smile score 1.0 -> 8; stronger pushes turn into a
#: caricature that fools the smile model more but looks worse); values in docs/enhance.md.
DEFAULT_MODEL = DisplacementModel(
    handles=(
        Handle("lip_corners", (T.MOUTH_RIGHT, T.MOUTH_LEFT), out=0.09, up=0.15, sigma=0.18),
        Handle(
            "upper_lip", (T.LIP_UPPER_OUTER,), out=0.0, up=0.03, sigma=0.22, gate="above_lip_line"
        ),
        Handle("cheeks", (T.CHEEK_RIGHT, T.CHEEK_LEFT), out=0.03, up=0.075, sigma=0.25),
        Handle(
            "lower_lids",
            (T.RIGHT_EYE_LOWER, T.LEFT_EYE_LOWER),
            out=0.0,
            up=0.0675,
            sigma=0.12,
            gate="below_eye_line",
        ),
        Handle(
            "upper_lids",
            (T.RIGHT_EYE_UPPER, T.LEFT_EYE_UPPER),
            out=0.0,
            up=-0.0225,
            sigma=0.08,
            gate="above_eye_line",
        ),  # fmt: skip
    )
)


@dataclass(frozen=True)
class FaceFrame:
    """A face's own 3-D axes (see module docstring).

    Attributes:
        origin: (3,) eye midpoint in mesh coordinates (x, y pixels; z pixel-scaled depth).
        x_axis: (3,) unit vector, subject's right eye -> left eye.
        y_axis: (3,) unit vector, forehead -> chin, orthogonal to ``x_axis``.
        iod: 3-D distance between the eye centres, in pixels.
        uv: (468, 2) landmarks in face coordinates (IOD units).
    """

    origin: np.ndarray
    x_axis: np.ndarray
    y_axis: np.ndarray
    iod: float
    uv: np.ndarray

    def to_image(self, duv: np.ndarray) -> np.ndarray:
        """Face-frame displacements (n, 2) in IOD (``+v`` = toward the chin) -> image pixels (n, 2)."""
        vec3 = (duv[:, :1] * self.x_axis + duv[:, 1:2] * self.y_axis) * self.iod
        return vec3[:, :2]


def face_frame_3d(landmarks: np.ndarray) -> FaceFrame:
    """The face frame of one face's (468, 3) landmarks (2-D landmarks get z = 0)."""
    p = np.asarray(landmarks, np.float64)
    if p.shape[1] == 2:
        p = np.concatenate([p, np.zeros((len(p), 1))], axis=1)
    right, left = p[list(RIGHT_EYE_IDX)].mean(0), p[list(LEFT_EYE_IDX)].mean(0)
    x = left - right
    iod = max(float(np.linalg.norm(x)), _EPS)
    x = x / iod
    y = p[CHIN] - p[FOREHEAD]
    y = y - x * (y @ x)
    y = y / max(float(np.linalg.norm(y)), _EPS)
    origin = (right + left) / 2
    rel = (p - origin) / iod
    return FaceFrame(origin, x, y, iod, np.stack([rel @ x, rel @ y], axis=1))


def smile_displacements(
    landmarks: np.ndarray, amount: float, model: DisplacementModel = DEFAULT_MODEL
) -> np.ndarray:
    """Image-space displacement (468, 2) in pixels of every landmark for ``amount`` in [0, 1].

    Linear in ``amount``; proportional to the face's IOD; follows the head's rotation.

    Example:
        >>> import numpy as np
        >>> from duchenne import data, Analyzer
        >>> lm = Analyzer(stages=("detect", "landmarks")).analyze(data.astronaut()).landmarks[0]
        >>> d = smile_displacements(lm, 0.5)          # lip corners move up (negative y)
        >>> bool(d[61, 1] < 0 and d[291, 1] < 0)
        True
    """
    frame = face_frame_3d(landmarks)
    disp = frame.to_image(_face_frame_displacements(frame.uv, model))
    xy = np.asarray(landmarks, np.float64)[:, :2]
    return _image_smooth(xy, disp, model.smooth * frame.iod, frame.iod) * float(amount)


def _image_smooth(xy: np.ndarray, disp: np.ndarray, sigma: float, iod: float) -> np.ndarray:
    """Average the displacements of landmarks that are close *in the image* (Gaussian, ``sigma`` px).

    On a turned head the far side of the mesh is foreshortened: points a fraction of a
    pixel apart in the image are far apart on the face, get different displacements and
    would fold the mesh. Blending in image space gives them one common move; elsewhere
    it changes little, because the field is already smooth at this scale.
    """
    if not disp.any():
        return disp
    p = ((xy - xy.mean(0)) / max(sigma, 0.5)).astype(np.float32)
    sq = (p * p).sum(1)
    half_d2 = np.minimum(p @ p.T - 0.5 * sq[:, None] - 0.5 * sq[None], 0.0)  # -|pi - pj|^2 / 2
    near = np.exp(half_d2, out=half_d2)
    weights = near.sum(1, dtype=np.float64)[:, None]
    out = (near @ disp.astype(np.float32)).astype(np.float64) / weights
    out[np.abs(out).max(1) < _ZERO_IOD * iod] = 0.0
    return out


def _face_frame_displacements(uv: np.ndarray, model: DisplacementModel) -> np.ndarray:
    """Displacements (468, 2) in IOD at amount 1, in face coordinates (+v toward the chin)."""
    total = np.zeros_like(uv)
    for handle in model.handles:
        for centre in handle.centres:
            c = uv[centre]
            weight = np.exp(-((uv - c) ** 2).sum(1) / (2 * handle.sigma**2))
            weight *= _gate(uv, handle, centre)
            side = np.sign(c[0]) if len(handle.centres) > 1 else np.sign(uv[:, 0])
            total[:, 0] += weight * handle.out * side
            total[:, 1] -= weight * handle.up
    total *= _smoothstep(_distance_to_polyline(uv, uv[list(FACE_OVAL)]) / model.pin_width)[:, None]
    total[np.hypot(total[:, 0], total[:, 1]) < _ZERO_IOD] = 0.0
    return total


def _gate(uv: np.ndarray, handle: Handle, centre: int) -> np.ndarray:
    """0..1 per point: which side of the handle's line it lies on (1 = moves)."""
    if handle.gate is None:
        return np.ones(len(uv))
    if handle.gate in ("below_eye_line", "above_eye_line"):
        a, b = RIGHT_EYE_CORNERS if uv[centre, 0] < 0 else LEFT_EYE_CORNERS
        pa, pb = uv[a], uv[b]
        t = (uv[:, 0] - pa[0]) / (pb[0] - pa[0] + _EPS)
        depth = uv[:, 1] - (pa[1] + t * (pb[1] - pa[1]))  # > 0: below the corner line
        if handle.gate == "above_eye_line":
            depth = -depth
    elif handle.gate == "above_lip_line":
        depth = uv[list(LIP_INNER_CENTRE), 1].mean() - uv[:, 1]  # > 0: above the lip line
    else:
        raise ValueError(f"unknown gate {handle.gate!r}")
    return _smoothstep(depth / handle.gate_width)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _distance_to_polyline(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance (n,) of each point to the closed polyline ``poly`` (m, 2)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = ((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), _EPS)
    nearest = a + np.clip(t, 0, 1)[..., None] * ab
    return np.sqrt(((points[:, None] - nearest) ** 2).sum(-1)).min(1)


# --------------------------------------------------------------------------- mesh


def anchor_ring(landmarks_xy: np.ndarray, scale: float, count: int = 24) -> np.ndarray:
    """``count`` fixed points on an ellipse ``scale`` times the landmark bounding box."""
    lo, hi = landmarks_xy.min(0), landmarks_xy.max(0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * scale * math.sqrt(2)
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return centre + half * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def delaunay(points: np.ndarray) -> np.ndarray:
    """Triangles (m, 3) of indices into ``points`` (n, 2), counter-clockwise in image axes.

    Coincident points are merged (only the first index is used).
    """
    pts = np.asarray(points, np.float32)
    lo, hi = np.floor(pts.min(0)) - 2, np.ceil(pts.max(0)) + 2
    subdiv = cv2.Subdiv2D((int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])))
    keys = _point_keys(pts)
    uniq_keys, first = np.unique(keys, return_index=True)
    subdiv.insert(pts[np.sort(first)])
    corners = np.asarray(subdiv.getTriangleList(), np.float32).reshape(-1, 2)
    found = np.searchsorted(uniq_keys, _point_keys(corners)).clip(0, len(uniq_keys) - 1)
    ok = (uniq_keys[found] == _point_keys(corners)).reshape(-1, 3).all(1)
    tris = first[found].reshape(-1, 3)[ok]  # drops triangles on Subdiv2D's virtual outer vertices
    tris_arr = tris.astype(np.int64)
    flip = signed_areas(points, tris_arr) < 0
    tris_arr[flip] = tris_arr[flip][:, ::-1]
    return tris_arr


def _point_keys(pts: np.ndarray) -> np.ndarray:
    """One uint64 per float32 point (its exact bits), to look points up by value."""
    bits = np.ascontiguousarray(pts, np.float32).view(np.uint32).reshape(-1, 2).astype(np.uint64)
    return (bits[:, 0] << np.uint64(32)) | bits[:, 1]


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed area (m,) of each triangle (positive = counter-clockwise in x-right, y-down axes)."""
    p = np.asarray(points, np.float64)[triangles]
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    return 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


@dataclass
class FaceWarp:
    """What ``warp_face`` did to one face (enough to check and to draw it).

    Attributes:
        source: (k, 2) mesh vertices before the move (468 landmarks, then the anchors).
        target: (k, 2) the same vertices after the move.
        triangles: (m, 3) vertex indices of the Delaunay mesh (counter-clockwise in ``source``).
        scale: factor applied to the model's displacement to avoid folds (1.0 normally).
        roi: (x0, y0, x1, y1) pixel box that was resampled (empty when nothing moved).
        changed: number of pixels whose value was resampled.
        min_jacobian: smallest Jacobian determinant of the final dense backward map
            (after smoothing and feathering); > 0 means the warp has no fold anywhere.
    """

    source: np.ndarray
    target: np.ndarray
    triangles: np.ndarray
    scale: float = 1.0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    changed: int = 0
    min_jacobian: float = 1.0

    @property
    def folds(self) -> int:
        """Triangles whose orientation flips (or collapses) after the move; 0 for a valid warp."""
        return int(_folded(self.source, self.target, self.triangles).sum())


def _folded(source: np.ndarray, target: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a0, a1 = signed_areas(source, tris), signed_areas(target, tris)
    valid = np.abs(a0) > 1e-6
    return valid & (a1 * np.sign(a0) <= 0.05 * np.abs(a0))


def warp_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    amount: float,
    model: DisplacementModel = DEFAULT_MODEL,
    *,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, FaceWarp]:
    """Warp one face of ``image`` toward a smile (see the module docstring for the steps).

    Args:
        image: RGB uint8 (H, W, 3); read only.
        landmarks: (468, 3) Face Mesh landmarks of the face, in ``image`` pixels.
        amount: 0 (no change) to 1 (the full model displacement).
        model: the displacement model.
        out: write the result into this array (same shape as ``image``; it may be
            ``image`` itself only if you do not need the original any more); default: a copy.

    Returns:
        The warped image and the :class:`FaceWarp` record.
    """
    if out is None:
        out = image.copy()
    xy = np.asarray(landmarks, np.float64)[:, :2]
    disp = smile_displacements(landmarks, amount, model)
    frame = face_frame_3d(landmarks)
    anchors = anchor_ring(xy, model.ring_scale)
    source = np.concatenate([xy, anchors])
    tris = delaunay(source)
    delta = _unfold(source, np.concatenate([disp, np.zeros_like(anchors)]), tris, len(xy))
    scale = 1.0
    while scale > 1e-3 and _folded(source, source + scale * delta, tris).any():
        scale *= 0.7
    if scale < 1.0:
        logger.warning("smile displacement scaled by %.2f to keep the mesh fold-free", scale)
    target = source + scale * delta
    record = FaceWarp(source, target, tris, scale)
    if amount > 0:
        _apply_mesh_warp(image, out, record, frame.iod, xy, model)
    return out, record


def _unfold(
    source: np.ndarray, delta: np.ndarray, tris: np.ndarray, movable: int, passes: int = 60
) -> np.ndarray:
    """Relax the moves around triangles that would flip, keeping the rest of the field.

    Why: on small or turned faces Delaunay makes slivers (around the closed lips, the eye
    corners) that flip under the small differences of a strong smile. Scaling the whole
    field down (the last resort in ``warp_face``) would weaken the smile everywhere;
    instead each vertex of a flipping triangle and its neighbours move halfway to the mean
    move of their mesh neighbours (a local Laplacian step) until no triangle flips.
    Anchors never move.
    """
    bad = _folded(source, source + delta, tris)
    if not bad.any():
        return delta
    delta = delta.copy()
    neighbours: list[list[int]] = [[] for _ in range(len(source))]
    for a, b, c in tris.tolist():
        neighbours[a] += [b, c]
        neighbours[b] += [a, c]
        neighbours[c] += [a, b]
    for _ in range(passes):
        verts = {int(v) for v in np.unique(tris[bad])}
        grown = {u for v in verts for u in (v, *neighbours[v]) if u < movable}
        for v in sorted(grown):
            delta[v] = 0.5 * delta[v] + 0.5 * delta[neighbours[v]].mean(axis=0)
        bad = _folded(source, source + delta, tris)
        if not bad.any():
            break
    return delta


def _apply_mesh_warp(
    image: np.ndarray,
    out: np.ndarray,
    record: FaceWarp,
    iod: float,
    landmarks_xy: np.ndarray,
    model: DisplacementModel,
) -> None:
    """Dense backward map of the moving triangles, smoothed and feathered, then one remap."""
    src, dst, tris = record.source, record.target, record.triangles
    moving = np.abs(dst - src).max(1) > 1e-6
    active = tris[moving[tris].any(1)]
    if not len(active):
        return
    h, w = image.shape[:2]
    sigma = max(model.smooth * iod, 0.5)
    pad = int(math.ceil(3 * sigma)) + 2
    corners = np.concatenate([dst[active.ravel()], src[active.ravel()]])
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    field = _backward_field(dst, src, active, (x0, y0, x1, y1))
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    weight = _feather(landmarks_xy, (x0, y0, x1, y1), sigma, pad) * _border_ramp(
        (x0, y0, x1, y1), (w, h), iod
    )
    field *= weight[..., None]
    changed = np.abs(field).max(-1) > 1e-3
    if not changed.any():
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    warped = remap(image, xs + field[..., 0], ys + field[..., 1], interpolation=cv2.INTER_CUBIC)
    roi = out[y0:y1, x0:x1]
    roi[changed] = warped[changed]
    record.roi, record.changed = (int(x0), int(y0), int(x1), int(y1)), int(changed.sum())
    record.min_jacobian = _min_jacobian(field)


def _min_jacobian(field: np.ndarray) -> float:
    """Smallest determinant of the Jacobian of ``x -> x + field(x)`` (finite differences)."""
    fx_y, fx_x = np.gradient(field[..., 0])
    fy_y, fy_x = np.gradient(field[..., 1])
    return float(((1 + fx_x) * (1 + fy_y) - fx_y * fy_x).min())


def _backward_field(
    dst: np.ndarray, src: np.ndarray, tris: np.ndarray, box: tuple[int, int, int, int]
) -> np.ndarray:
    """(h, w, 2) float32: for each pixel of ``box``, source position minus pixel position.

    Each target triangle is rasterised with its index; its affine map target -> source
    (solved for all triangles at once) is then applied per pixel. Pixels in no moving
    triangle keep a zero displacement.
    """
    x0, y0, x1, y1 = box
    ids = np.full((y1 - y0, x1 - x0), -1, np.int32)
    shift = 4
    poly = np.round((dst[tris] - (x0, y0)) * (1 << shift)).astype(np.int32)
    for i, tri in enumerate(poly):
        cv2.fillConvexPoly(ids, tri, i, lineType=cv2.LINE_8, shift=shift)
    # affine per triangle: [sx, sy] = M @ [x, y, 1], solving M @ D = S with D the target corners
    d = np.concatenate([dst[tris], np.ones((len(tris), 3, 1))], axis=2)  # (m, 3, 3) rows [x y 1]
    s = src[tris]  # (m, 3, 2)
    flat = np.abs(np.linalg.det(d)) < 1e-9  # zero-area triangle: translate by its mean move
    if flat.any():
        shift_xy = (s[flat] - dst[tris[flat]]).mean(1)  # (k, 2)
        d[flat] = np.eye(3)
        s[flat] = np.concatenate(
            [np.broadcast_to(np.eye(2), (len(shift_xy), 2, 2)), shift_xy[:, None]], 1
        )
    mats = np.linalg.solve(d, s)  # (m, 3, 2): [x y 1] @ mats = [sx sy]
    mats[:, 0, 0] -= 1.0  # subtract the identity: the result is a displacement
    mats[:, 1, 1] -= 1.0
    field = np.zeros((*ids.shape, 2), np.float32)
    inside = ids >= 0
    yy, xx = np.nonzero(inside)
    m = mats[ids[inside]]
    px, py = xx + x0, yy + y0
    field[yy, xx, 0] = px * m[:, 0, 0] + py * m[:, 1, 0] + m[:, 2, 0]
    field[yy, xx, 1] = px * m[:, 0, 1] + py * m[:, 1, 1] + m[:, 2, 1]
    return field


def _feather(
    landmarks_xy: np.ndarray, box: tuple[int, int, int, int], sigma: float, pad: int
) -> np.ndarray:
    """0..1 mask over ``box``: the landmark hull eroded by ``pad`` px, then blurred (0 outside the hull)."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    hull = cv2.convexHull(np.round(landmarks_xy - (x0, y0)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1,) * 2))
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)


def _border_ramp(box: tuple[int, int, int, int], size: tuple[int, int], iod: float) -> np.ndarray:
    """0..1 over ``box``: 0 on the image's outermost pixels, 1 from 0.1 IOD inwards."""
    x0, y0, x1, y1 = box
    w, h = size
    ramp = max(0.1 * iod, 2.0)
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)
    fx = np.clip(np.minimum(xs, w - 1 - xs) / ramp, 0, 1)
    fy = np.clip(np.minimum(ys, h - 1 - ys) / ramp, 0, 1)
    return _smoothstep(fy[:, None] * fx[None, :]).astype(np.float32)


# --------------------------------------------------------------------------- whole images


@dataclass
class EnhanceResult:
    """Output of :func:`enhance`.

    Attributes:
        image: the enhanced RGB uint8 image (H, W, 3).
        amount: the amount used.
        indices: indices (into ``before``) of the faces that were enhanced.
        before: analysis of the input image (all faces).
        after: analysis of the output image, reordered so row ``i`` is face ``i`` of
            ``before``; ``None`` when ``score=False``.
        matched: (n,) bool, whether face ``i`` was found again in the output.
        warps: one :class:`FaceWarp` per enhanced face, in ``indices`` order.
    """

    image: np.ndarray
    amount: float
    indices: tuple[int, ...]
    before: Faces
    after: Faces | None = None
    matched: np.ndarray | None = None
    warps: list[FaceWarp] = field(default_factory=list)

    def changes(self) -> list[dict[str, Any]]:
        """Per face: box, whether it was enhanced, smile and geometry before -> after.

        Values are plain floats (None when not measured: no smile model ships, or the
        face was not found again in the output).
        """
        rows = []
        for i in range(len(self.before)):
            found = self.after is not None and self.matched is not None and self.matched[i]
            row: dict[str, Any] = {
                "face": i,
                "enhanced": i in self.indices,
                "box": [round(float(v), 1) for v in self.before.xyxy[i]],
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
            "image": {"width": int(w), "height": int(h), **_plain_meta(self.before.meta)},
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
        An :class:`EnhanceResult`.

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
    image = load_image(source, max_pixels=analyzer.max_pixels)
    before = _analyze(analyzer, image, source)
    indices = _select(faces, len(before), _label(source))
    result = EnhanceResult(image=image.copy(), amount=amount, indices=indices, before=before)
    if amount > 0:
        for i in indices:
            _, record = warp_face(image, before.landmarks[i], amount, model, out=result.image)
            result.warps.append(record)
    if score:
        after = before if amount == 0 else _analyze(analyzer, result.image, source)
        result.after, result.matched = _match(before, after)
    return result


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
    wanted = [faces] if isinstance(faces, (int, np.integer)) else list(faces)
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


def _analyze(analyzer: Analyzer, image: np.ndarray, source: Any) -> Faces:
    """Full analysis (smile stage included when it runs) plus the smile geometry."""
    faces = analyzer.analyze(image)
    if faces.landmarks is not None and len(faces) and "lip_corner_elevation" not in faces.data:
        faces.data.update(geometry_arrays(faces.landmarks))
    label = _label(source)
    if label != "image":
        faces.meta["source"] = label
    return faces


def _match(before: Faces, after: Faces) -> tuple[Faces, np.ndarray]:
    """Reorder ``after`` to ``before``'s faces by box IoU (greedy); unmatched rows copy ``before``."""
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
    if matched.all():
        return after[order], matched
    # keep the row count: unmatched faces get the "before" row; ``matched`` says which
    rows = [after[int(order[i])] if matched[i] else before[i] for i in range(n)]
    return Faces.merge(rows), matched


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
