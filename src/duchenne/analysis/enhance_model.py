"""The smile displacement model of :mod:`duchenne.analysis.enhance`: where landmarks move.

Why a module of its own: the model (handles, pin, face frame, image-plane smoothing) is
the part that decides *what* a smile looks like and is tuned against measurements
(``docs/enhance.md``); the mesh warp (:mod:`duchenne.analysis.enhance_warp`) only moves
pixels along it. Steps 1-2 of the pipeline in :mod:`duchenne.analysis.enhance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duchenne.analysis.enhance_shade import DEFAULT_SHADING, Shading
from duchenne.face import topology as T
from duchenne.face.align import LEFT_EYE_IDX, RIGHT_EYE_IDX
from duchenne.face.topology import CHIN, FACE_OVAL, FOREHEAD

__all__ = [
    "DEFAULT_MODEL",
    "DisplacementModel",
    "FaceFrame",
    "Handle",
    "face_frame_3d",
    "mouth_open_weight",
    "smile_displacements",
    "smoothstep",
]


RIGHT_EYE_CORNERS = (T.RIGHT_EYE_OUTER, T.RIGHT_EYE_INNER)
LEFT_EYE_CORNERS = (T.LEFT_EYE_OUTER, T.LEFT_EYE_INNER)
LIP_INNER_CENTRE = (T.LIP_UPPER_INNER, T.LIP_LOWER_INNER)
#: the inner lip contour (the edge of the mouth opening): right corner, along the upper
#: lip to the left corner, back along the lower lip
LIP_INNER_RING = (
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95,
)  # fmt: skip

_EPS = 1e-9
_ZERO_IOD = 2e-3  # landmark moves below this many IOD (at amount 1) are set to 0 (invisible)
#: IOD from the inner-lip contour over which an open mouth's common move fades out: a
#: little more than the lips are thick, so they bend no more than without it (with 0.08
#: the lip corners took the whole lift and parts stretched to over twice their area;
#: measured on open-mouth MTFL smiles, docs/enhance.md)
_RIGID_FALLOFF = 0.16


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
        shading: the smile's folds, dimples and highlights painted after the warp
            (:mod:`duchenne.analysis.enhance_shade`); ``None`` = geometry only.
        rigid_mouth: inner-lip gap (IOD, ``LIP_INNER_CENTRE``) at which the mouth
            opening starts to move as one rigid piece, and at which it fully does
            (smoothstep between); ``None`` = never. Why: the teeth and tongue seen through
            an open mouth are rigid, but the handles bend the inner-lip contour into a
            U and stretch it apart, and the mesh triangles spanning the opening drag
            the teeth along (see ``mouth_open_weight``). Below the first value (a closed
            mouth, lips apart by tracking noise) nothing changes.
    """

    handles: tuple[Handle, ...]
    pin_width: float = 0.25
    smooth: float = 0.03
    ring_scale: float = 1.4
    shading: Shading | None = DEFAULT_SHADING
    rigid_mouth: tuple[float, float] | None = (0.10, 0.18)


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

    @property
    def image_axes(self) -> np.ndarray:
        """(2, 2) image vectors (pixels) of one IOD along the face's ``x`` and ``y`` axes."""
        return np.stack([self.x_axis[:2], self.y_axis[:2]]) * self.iod

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
    disp = _image_smooth(xy, disp, model.smooth * frame.iod, frame.iod)
    return _rigid_mouth(disp, frame.uv, mouth_open_weight(frame.uv, model)) * float(amount)


def mouth_open_weight(uv: np.ndarray, model: DisplacementModel = DEFAULT_MODEL) -> float:
    """0 (closed mouth) .. 1 (open): how far the mouth opening is held rigid.

    ``uv``: face coordinates of the landmarks (``FaceFrame.uv``, IOD units, so the
    gap does not depend on face size or head roll). The weight rises by smoothstep
    over ``model.rigid_mouth``; exactly 0 for a closed mouth, so its smile is unchanged.
    """
    if model.rigid_mouth is None:
        return 0.0
    start, full = model.rigid_mouth
    gap = float(np.linalg.norm(uv[T.LIP_UPPER_INNER] - uv[T.LIP_LOWER_INNER]))
    return float(smoothstep(np.asarray((gap - start) / max(full - start, _EPS))))


def _rigid_mouth(disp: np.ndarray, uv: np.ndarray, weight: float) -> np.ndarray:
    """Blend the moves around the mouth opening toward one common move by ``weight`` (0..1).

    Why: on an open mouth the lip-corner handle lifts the inner corners (78, 308) about
    four times as far as the middle of the lips, so the inner-lip contour bends into a U
    and the affine mesh triangles spanning the opening bend and stretch the teeth with
    it. With one common move, those triangles only translate: teeth and tongue come out
    unbent. The common move is that of the opening's centre (the mean of 13 and 14), so
    the middle of the lips, where most teeth show, keeps its smile move. The blend fades
    out over ``_RIGID_FALLOFF`` IOD from the inner-lip contour (smoothstep), so the lips
    take up the corners' lift gradually: the thin rows of Face Mesh points inside each lip
    would fold if the contour alone were held. Linear in ``disp`` (the moves stay linear
    in ``amount``).
    """
    if weight <= 0.0:
        return disp
    ring = uv[list(LIP_INNER_RING)]
    near = 1.0 - smoothstep(_distance_to_polyline(uv, ring) / _RIGID_FALLOFF)
    common = disp[list(LIP_INNER_CENTRE)].mean(0)
    return disp + (weight * near)[:, None] * (common - disp)


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
    total *= smoothstep(_distance_to_polyline(uv, uv[list(FACE_OVAL)]) / model.pin_width)[:, None]
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
    elif handle.gate in ("above_lip_line", "below_lip_line"):
        depth = uv[list(LIP_INNER_CENTRE), 1].mean() - uv[:, 1]  # > 0: above the lip line
        if handle.gate == "below_lip_line":
            depth = -depth
    else:
        raise ValueError(f"unknown gate {handle.gate!r}")
    return smoothstep(depth / handle.gate_width)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _distance_to_polyline(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance (n,) of each point to the closed polyline ``poly`` (m, 2)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = ((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), _EPS)
    nearest = a + np.clip(t, 0, 1)[..., None] * ab
    return np.sqrt(((points[:, None] - nearest) ** 2).sum(-1)).min(1)
