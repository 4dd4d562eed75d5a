"""The mesh warp of :mod:`duchenne.analysis.enhance`: move a photo's pixels with its landmarks.

Why a module of its own: triangulation, fold checks and the dense backward map are
image geometry that follows any landmark displacement; the smile itself is decided in
:mod:`duchenne.analysis.enhance_model`. Steps 3-4 of the pipeline in
:mod:`duchenne.analysis.enhance`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from duchenne.analysis.enhance_model import (
    DEFAULT_MODEL,
    DisplacementModel,
    face_frame_3d,
    mouth_open_weight,
    smile_displacements,
    smoothstep,
)
from duchenne.analysis.enhance_shade import shade_face
from duchenne.face.warp import remap

__all__ = ["FaceWarp", "anchor_ring", "delaunay", "signed_areas", "warp_face"]

logger = logging.getLogger(__name__)


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
        shaded: number of pixels whose brightness the smile's shading changed.
    """

    source: np.ndarray
    target: np.ndarray
    triangles: np.ndarray
    scale: float = 1.0
    roi: tuple[int, int, int, int] = (0, 0, 0, 0)
    changed: int = 0
    min_jacobian: float = 1.0
    shaded: int = 0

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
        area = _apply_mesh_warp(image, out, record, frame.iod, xy, model)
        if area is not None and model.shading is not None:
            box, weight = area
            shaded = shade_face(
                out,
                target[: len(xy)],
                frame.image_axes,
                amount,
                weight,
                box,
                model.shading,
                open_mouth=mouth_open_weight(frame.uv, model),
            )
            record.shaded = shaded
    return out, record


def _unfold(
    source: np.ndarray, delta: np.ndarray, tris: np.ndarray, movable: int, passes: int = 60
) -> np.ndarray:
    """Relax the moves around triangles that would flip, keeping the rest of the field.

    Why: on small or turned faces Delaunay makes slivers (around the closed lips, the eye
    corners, next to the pinned face outline) that flip under the small differences of a
    strong smile. Scaling the whole field down (the last resort in ``warp_face``) would
    weaken the smile everywhere; instead each vertex of a flipping triangle and its
    neighbours move halfway to the mean move of their mesh neighbours (a local Laplacian
    step) until no triangle flips. Where that does not settle within ``passes`` (a sliver
    against the fixed outline), the moves of the flipping triangles' own vertices shrink
    by 0.7 per pass: a local scale-down. Anchors never move.
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
            return delta
    for _ in range(40):
        verts = np.unique(tris[bad])
        delta[verts[verts < movable]] *= 0.7
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
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """Dense backward map of the moving triangles, smoothed and feathered, then one remap.

    Returns the box it covered and the face weight there (feather x border ramp), for the
    shading step; None when nothing moved.
    """
    src, dst, tris = record.source, record.target, record.triangles
    moving = np.abs(dst - src).max(1) > 1e-6
    active = tris[moving[tris].any(1)]
    if not len(active):
        return None
    h, w = image.shape[:2]
    sigma = max(model.smooth * iod, 0.5)
    pad = int(math.ceil(3 * sigma)) + 2
    corners = np.concatenate([dst[active.ravel()], src[active.ravel()]])
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    field = _backward_field(dst, src, active, (x0, y0, x1, y1))
    field = cv2.GaussianBlur(field, (0, 0), sigma)
    weight = _feather(landmarks_xy, (x0, y0, x1, y1), sigma, pad) * _border_ramp(
        (x0, y0, x1, y1), (w, h), iod
    )
    field *= weight[..., None]
    changed = np.abs(field).max(-1) > 1e-3
    if not changed.any():
        return None
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    warped = remap(image, xs + field[..., 0], ys + field[..., 1], interpolation=cv2.INTER_CUBIC)
    roi = out[y0:y1, x0:x1]
    roi[changed] = warped[changed]
    record.roi, record.changed = (int(x0), int(y0), int(x1), int(y1)), int(changed.sum())
    record.min_jacobian = _min_jacobian(field)
    return (int(x0), int(y0), int(x1), int(y1)), weight


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
    return smoothstep(fy[:, None] * fx[None, :]).astype(np.float32)
