"""``Faces``: the one result data model of duchenne.

Why parallel arrays: every per-face model (landmarks, smile, emotion) runs on all faces of
an image in one batch, and filtering (``faces[faces.score > 0.8]``) is numpy indexing.
``Face`` is a frozen per-face view with plain Python scalars for people who iterate, and
``to_dict`` is the single JSON schema used by the API, the CLI and the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from duchenne.errors import InvalidFacesError
from duchenne.io.jsonsafe import flatten_record, to_jsonable

EMOTION_LABELS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

#: MediaPipe's 52 blendshape coefficients, in the model's order (``face_blendshapes_graph.cc``).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip

#: ``smile >= threshold`` means smiling unless a caller sets another (``--smile-threshold``).
DEFAULT_SMILE_THRESHOLD = 0.5
#: Decimals of P(smile) in every output (JSON, CSV, video rows).
SMILE_DECIMALS = 4


def smiling(smile: Any, threshold: float) -> Any:
    """``smile >= threshold`` on P(smile) as the outputs print it (``SMILE_DECIMALS``).

    Why rounded: a face with P(smile) 0.99996 is printed as 1.0; comparing the unrounded
    value with a threshold of 1.0 would call it not smiling beside a printed 1.0. Works on
    a float or an array (video episodes cut on the same rule as the per-frame rows).
    """
    return np.round(smile, SMILE_DECIMALS) >= threshold


#: Single-photo action-unit proxies in [0, 1] (``duchenne.face.geometry.au_proxies``); they
#: travel in ``Faces.data`` and are written under ``"au"`` instead of ``"geometry"``.
AU_KEYS: tuple[str, ...] = ("au6", "au12", "cheek_raise", "eye_narrowing", "lip_corner_pull")

#: BlazeFace keypoint order ("right" is the subject's right, i.e. the image's left side).
KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)

# name -> expected trailing shape (None = any) of optional per-face arrays
_OPTIONAL_SHAPES: dict[str, tuple[int | None, ...]] = {
    "keypoints": (6, 2),
    "landmarks": (None, 3),
    "landmark_score": (),
    "smile": (),
    "smile_score": (),
    "emotion": (len(EMOTION_LABELS),),
    "blendshapes": (len(BLENDSHAPE_NAMES),),
    "track_id": (),
    "face_id": (),
    "rotation": (),
}


def _check(name: str, value: np.ndarray, n: int, tail: tuple[int | None, ...]) -> None:
    """Raise ``InvalidFacesError`` unless ``value`` has shape ``(n, *tail)``."""
    shape = value.shape
    ok = len(shape) == 1 + len(tail) and shape[0] == n
    ok = ok and all(t is None or t == s for t, s in zip(tail, shape[1:], strict=False))
    if not ok:
        want = ", ".join(["n"] + ["_" if t is None else str(t) for t in tail])
        raise InvalidFacesError(f"{name} must have shape ({want}) with n={n}, but got {shape}")


@dataclass(eq=False)
class Faces:
    """All faces found in one image (or one video frame), as parallel arrays.

    Args:
        xyxy: (n, 4) float32 boxes (x1, y1, x2, y2) in original image pixels. A face cut by
            the image edge gets the box of the whole face, so it extends past the image
            (x1 or y1 below 0, x2 beyond the width, y2 beyond the height); clip it for a
            box inside the image (``np.clip(xyxy, 0, [w, h, w, h])``, w and h from
            ``meta``).
        score: (n,) detector confidence in [0, 1].
        keypoints: (n, 6, 2) BlazeFace keypoints in pixels (order in ``KEYPOINT_NAMES``).
        landmarks: (n, 468, 3) Face Mesh landmarks; x, y in pixels, z in pixels relative to
            the face centre (smaller = closer to the camera).
        landmark_score: (n,) Face Mesh face-presence probability.
        smile: (n,) calibrated probability that the face smiles.
        smile_score: (n,) smile intensity on 1..10 (see ``duchenne.models.smile``).
        emotion: (n, 8) emotion probabilities in ``EMOTION_LABELS`` order.
        blendshapes: (n, 52) MediaPipe blendshape coefficients in ``BLENDSHAPE_NAMES`` order.
        track_id: (n,) stable identity across video frames.
        face_id: (n,) each face's number in its image (reading order), kept by a selection
            (``faces[faces.smile >= 0.5]``) so ``id`` and the drawn ``#N`` still name the
            same face, as a filtered pandas frame keeps its index; None: the position.
        rotation: (n,) the turn, in degrees counter-clockwise (0, 90, 180, 270), of the image
            in which the face was found upright (``AnalyzerConfig.rotations``): not 0 means
            the photo is sideways or upside down, and turning it that way (PIL:
            ``image.rotate(rotation, expand=True)``) makes it upright. Boxes, keypoints and
            landmarks are in the image's own pixels all the same. None when faces were not
            detected in a photo (video frames, crop mode, given detections).
        data: per-face extras, each an array with first dimension n (e.g. geometry values).
        meta: per-image facts: ``width``, ``height``, ``source``, model names, frame index.

    Example:
        >>> faces = Faces.empty()
        >>> len(faces)
        0
    """

    xyxy: np.ndarray
    score: np.ndarray
    keypoints: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    landmark_score: np.ndarray | None = None
    smile: np.ndarray | None = None
    smile_score: np.ndarray | None = None
    emotion: np.ndarray | None = None
    blendshapes: np.ndarray | None = None
    track_id: np.ndarray | None = None
    face_id: np.ndarray | None = None
    rotation: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        n = len(self.xyxy)
        _check("score", self.score, n, ())
        for name, tail in _OPTIONAL_SHAPES.items():
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value)
                _check(name, value, n, tail)
                setattr(self, name, value)
        for key, value in self.data.items():
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != n:
                raise InvalidFacesError(
                    f"data[{key!r}] must have first dimension n={n}, got {arr.shape}"
                )
            self.data[key] = arr

    @classmethod
    def empty(cls, **meta: Any) -> Faces:
        """No faces; ``meta`` still records the image facts."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), meta=dict(meta))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Faces:
        """Select faces by int, slice, boolean mask or index array; returns ``Faces``.

        Raises:
            TypeError: a single bool (``faces[True]``, ``faces[faces.smile[0] > 0.5]``):
                Python reads ``True`` as face 1 and numpy as a new axis, so either way it
                would pick a face nobody asked for; a mask is an array of n bools.
        """
        if isinstance(index, bool) or (
            getattr(index, "dtype", None) == np.bool_ and np.ndim(index) == 0
        ):
            raise TypeError(
                "a face index must be an int, slice, boolean mask or index array, "
                f"not the single bool {index!r}"
            )
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        fields = {name: getattr(self, name) for name in _OPTIONAL_SHAPES}
        if fields["face_id"] is None:  # a selection remembers which faces it kept
            fields["face_id"] = np.arange(len(self))
        picked = {k: (None if v is None else v[index]) for k, v in fields.items()}
        return Faces(
            xyxy=self.xyxy[index],
            score=self.score[index],
            data={k: v[index] for k, v in self.data.items()},
            meta=dict(self.meta),
            **picked,
        )

    def __iter__(self) -> Iterator[Face]:
        for i in range(len(self)):
            yield self.face(i)

    @classmethod
    def merge(cls, items: Sequence[Faces]) -> Faces:
        """Concatenate several ``Faces`` (optional fields kept only where all have them)."""
        items = [f for f in items if len(f)] or list(items[:1])
        if not items:
            return cls.empty()

        def cat(name: str) -> np.ndarray | None:
            values = [getattr(f, name) for f in items]
            return None if any(v is None for v in values) else np.concatenate(values)

        keys = set.intersection(*(set(f.data) for f in items))
        return cls(
            xyxy=np.concatenate([f.xyxy for f in items]),
            score=np.concatenate([f.score for f in items]),
            data={k: np.concatenate([f.data[k] for f in items]) for k in sorted(keys)},
            meta=dict(items[0].meta),
            **{name: cat(name) for name in _OPTIONAL_SHAPES},
        )

    def face(self, i: int) -> Face:
        """The i-th face as a frozen ``Face`` view of plain Python values (``i`` may be
        negative, as in a list; ``index`` is the face's number in its image)."""
        i = range(len(self))[i]  # IndexError out of range; -1 is the last face
        return Face(
            index=i if self.face_id is None else int(self.face_id[i]),
            box=tuple(float(v) for v in self.xyxy[i]),  # type: ignore[arg-type]
            score=float(self.score[i]),
            keypoints=None if self.keypoints is None else self.keypoints[i].astype(float).tolist(),
            landmarks=None if self.landmarks is None else self.landmarks[i],
            smile=_opt_float(self.smile, i),
            smile_score=_opt_float(self.smile_score, i),
            emotions=_named(EMOTION_LABELS, self.emotion, i),
            blendshapes=_named(BLENDSHAPE_NAMES, self.blendshapes, i),
            track_id=None if self.track_id is None else int(self.track_id[i]),
            rotation=None if self.rotation is None else int(self.rotation[i]),
            geometry={k: float(v[i]) for k, v in self.data.items() if v.ndim == 1},
            smile_threshold=float(self.meta.get("smile_threshold", DEFAULT_SMILE_THRESHOLD)),
        )

    @property
    def no_face(self) -> bool:
        """True when no face was found: the flag every JSON document and table row carries."""
        return len(self) == 0

    def to_dict(self, *, landmarks: bool = False) -> dict[str, Any]:
        """JSON-safe dict: ``{"image": meta, "no_face": bool, "faces": [face dicts]}``
        (the public schema; ``no_face`` says so explicitly so a reader need not infer it
        from an empty list)."""
        return {
            "image": to_jsonable(self.meta, default=str),
            "no_face": self.no_face,
            "faces": [face.to_dict(landmarks=landmarks) for face in self],
        }

    def to_records(self, *, landmarks: bool = False) -> list[dict[str, Any]]:
        """One flat dict per face (for CSV/Parquet), image facts repeated on each row."""
        image = {
            k: v
            for k, v in to_jsonable(self.meta, default=str).items()
            if not isinstance(v, (dict, list))
        }
        return [{**image, **face.to_record(landmarks=landmarks)} for face in self]


@dataclass(frozen=True)
class Face:
    """One face, as plain Python values (a view made by ``Faces.face``).

    Faces compare equal when all their values but ``landmarks`` are (the one array field:
    comparing it made ``==`` and ``face in faces_list`` raise numpy's "truth value of an
    array is ambiguous"; the box, keypoints and scores already tell faces apart). They hash
    by their scalar values only (number, box, scores, track): the list and dict fields are
    left out of the hash, not of ``==``, so equal faces hash alike and a face can be a set
    member or a dict key.
    """

    index: int
    box: tuple[float, float, float, float]
    score: float
    keypoints: list[list[float]] | None = field(default=None, hash=False)
    landmarks: np.ndarray | None = field(default=None, compare=False)
    smile: float | None = None
    smile_score: float | None = None
    emotions: dict[str, float] | None = field(default=None, hash=False)
    blendshapes: dict[str, float] | None = field(default=None, hash=False)
    track_id: int | None = None
    rotation: int | None = None
    geometry: dict[str, float] = field(default_factory=dict, hash=False)
    smile_threshold: float = DEFAULT_SMILE_THRESHOLD

    @property
    def top_emotion(self) -> str | None:
        """The most probable emotion label, or None when emotions were not computed."""
        if not self.emotions:
            return None
        return max(self.emotions, key=self.emotions.__getitem__)

    @property
    def is_smiling(self) -> bool | None:
        """``smile >= smile_threshold``; None when the smile model did not run or its P(smile)
        is not a finite number (JSON writes it as null, so ``smiling`` must not say true)."""
        if self.smile is None or not np.isfinite(self.smile):
            return None
        return bool(smiling(self.smile, self.smile_threshold))

    def to_dict(self, *, landmarks: bool = False) -> dict[str, Any]:
        """JSON-safe nested dict (the per-face part of the public schema)."""
        x1, y1, x2, y2 = (round(v, 2) for v in self.box)
        out: dict[str, Any] = {
            "id": self.index,
            "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "score": round(self.score, 4),
        }
        if self.rotation is not None:
            out["rotation"] = self.rotation
        if self.track_id is not None:
            out["track_id"] = self.track_id
        if self.keypoints is not None:
            points = [[round(x, 2), round(y, 2)] for x, y in self.keypoints]
            out["keypoints"] = dict(zip(KEYPOINT_NAMES, points, strict=True))
        if self.smile is not None:
            out["smile"] = round(self.smile, SMILE_DECIMALS)
            out["smiling"] = self.is_smiling
        if self.smile_score is not None:
            out["smile_score"] = round(self.smile_score, 2)
        if self.emotions is not None:
            out["top_emotion"] = self.top_emotion
            out["emotions"] = {k: round(v, 4) for k, v in self.emotions.items()}
        if self.blendshapes is not None:
            out["blendshapes"] = {k: round(v, 4) for k, v in self.blendshapes.items()}
        geometry = {k: round(v, 4) for k, v in self.geometry.items() if k not in AU_KEYS}
        aus = {k: round(self.geometry[k], 4) for k in AU_KEYS if k in self.geometry}
        if geometry:
            out["geometry"] = geometry
        if aus:
            out["au"] = aus
        if landmarks and self.landmarks is not None:
            out["landmarks"] = np.round(self.landmarks.astype(float), 2).tolist()
        return to_jsonable(out, default=str)

    def to_record(self, *, landmarks: bool = False) -> dict[str, Any]:
        """A flat dict: nested keys and list items joined with dots (``emotions.happiness``,
        ``keypoints.right_eye.0``), the one flattening CSV and Parquet share."""
        return flatten_record(self.to_dict(landmarks=landmarks))


def row_columns(
    *, landmarks: bool = False, blendshapes: bool = False, extra: Sequence[str] = ()
) -> list[str]:
    """The columns of every table row, in order (``result_rows``, ``duchenne analyze``, batch).

    Why fixed: rows of images without a face, rows of inputs that failed and rows of
    faces found with fewer stages must line up under one header, and ``error`` must stay
    the last column whichever input comes first. Fields a stage did not compute are null.
    ``blendshapes`` adds the 52 coefficients (the opt-in stage); ``extra`` columns (other
    scalar image facts) go before ``error``.
    """
    from duchenne.face.geometry import GEOMETRY_KEYS

    cols = ["source", "face", "no_face", "width", "height", "smile_threshold"]
    cols += [f"box.{k}" for k in ("x1", "y1", "x2", "y2")]
    cols += ["score", "rotation"]
    cols += [f"keypoints.{k}.{j}" for k in KEYPOINT_NAMES for j in (0, 1)]
    cols += ["smile", "smiling", "smile_score", "top_emotion"]
    cols += [f"emotions.{e}" for e in EMOTION_LABELS]
    if blendshapes:
        cols += [f"blendshapes.{b}" for b in BLENDSHAPE_NAMES]
    cols += [f"geometry.{g}" for g in GEOMETRY_KEYS]
    cols += [f"au.{a}" for a in AU_KEYS]
    if landmarks:
        cols += [f"landmarks.{i}.{j}" for i in range(468) for j in range(3)]
    cols += [c for c in extra if c not in cols and c != "error"]
    return [*cols, "error"]


def result_rows(
    source: Any,
    result: Faces | Exception,
    *,
    landmarks: bool = False,
    columns: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Table rows for one input: one per face, and one row even with no face or an error.

    Why a row for nothing: in tabular output (CSV, Parquet, batch jobs) an image without a
    face, or one that failed to load, must still appear, or it looks like it was never run.
    Every row has the same keys in the same order (``row_columns``, or ``columns`` when
    given): ``source``, ``face`` (the face number, as in JSON ``id`` and drawings; null for
    no face), ``no_face`` (true on the row of an image without a face, false on face rows,
    null when the input failed), the image facts, the face's flat record, and ``error`` last.
    """
    if isinstance(result, Exception):
        rows = [{"error": f"{type(result).__name__}: {result}"}]
        image: dict[str, Any] = {}
    else:
        image = {
            k: v
            for k, v in to_jsonable(result.meta, default=str).items()
            if not isinstance(v, (dict, list))
        }
        rows = [
            {"face": r.pop("id"), "no_face": False, **r}
            for r in result.to_records(landmarks=landmarks)
        ]
        rows = rows or [{"no_face": True, **image}]
    extra = [k for row in rows for k in row if k not in ("source", "face", "no_face")]
    cols = list(columns) if columns is not None else row_columns(landmarks=landmarks, extra=extra)
    out = []
    for row in rows:
        row = {**row, "source": str(source)}
        out.append({c: row.get(c) for c in cols})
    return out


#: Rows are found in the density of face-centre heights smoothed by a Gaussian of this
#: fraction of the median face height (see ``reading_order``).
ROW_BANDWIDTH = 0.25
#: Two neighbouring density peaks are one row unless the density between them dips below
#: this fraction of the lower peak (see ``reading_order``).
ROW_DIP = 0.6


def reading_order(xyxy: np.ndarray) -> np.ndarray:
    """Indices that sort boxes in reading order: rows top to bottom, left to right in a row.

    Why: face numbers are what people use to find a face (``#3`` on the drawing, row
    ``face=3`` in the table, ``enhance --face 3``), and reading order makes them findable.

    Rows are the peaks of the density of face-centre heights (each centre a Gaussian of
    ``ROW_BANDWIDTH`` median face heights), cut at the dips between them: two peaks stay one
    row unless the density between them falls below ``ROW_DIP`` of the lower peak, the
    shallowest dip merged first (persistence, as in mode-seeking clustering). Why not a gap between
    sorted heights: in ``tests/data/solvay_1927.jpg`` the back row, people on steps, has a
    gap of 30 px between its heads, more than the 24 px between the middle and front rows
    (48 px faces), so every gap threshold split a row or merged two, and heads near the
    threshold swapped numbers when boxes moved by a few pixels. A dip weighs how many faces
    stand on each side: two heads above a row of nine lean on it, nine against nine do not.

    Measured (13 layouts: the Solvay photo's boxes, hand-marked and detected, and synthetic
    rows; every coordinate moved by up to 2 or 4 px, 300 tries each): rows whose heads
    alternate by up to 0.7 face heights stay one row, rows 1 face height apart (centre to
    centre) are two; up to 2 px changed one numbering in 3900 tries, up to 4 px 50 (37 of
    them two heads one face height above seven, at the edge between one row and two; the
    detected Solvay faces 10 of 300). The gap rule it replaced numbered the back row of
    Solvay and every staggered row in pieces and changed 332 and 720 numberings. Rows
    are level: a photo tilted so much that its rows overlap in height reads as one row.
    Non-finite boxes go last.
    """
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    if len(boxes) < 2:
        return np.arange(len(boxes))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    finite = np.isfinite(cx) & np.isfinite(cy)
    row = np.full(len(boxes), np.iinfo(np.int64).max, np.int64)  # non-finite: last
    if finite.any():
        heights = boxes[finite, 3] - boxes[finite, 1]
        row[finite] = _rows(cy[finite], float(np.median(heights)))
    cx = np.where(finite, cx, np.inf)
    return np.lexsort((cx, row))


def _rows(cy: np.ndarray, height: float) -> np.ndarray:
    """Each centre height's row number (0 the top row), as ``reading_order`` explains."""
    sigma = max(ROW_BANDWIDTH * height, 0.5) if np.isfinite(height) else 0.5
    lo, span = float(cy.min()), float(cy.max() - cy.min())
    step = max(sigma / 8, span / 65536)  # a density peak lies between the lowest and highest
    if span < step:
        return np.zeros(len(cy), np.int64)
    size = int(span / step) + 2
    pos = (cy - lo) / step
    left = np.minimum(np.floor(pos).astype(np.int64), size - 2)
    counts = np.zeros(size)  # linear binning, then a Gaussian convolution (binned KDE)
    np.add.at(counts, left, 1 - (pos - left))
    np.add.at(counts, left + 1, pos - left)
    reach = int(np.ceil(4 * sigma / step))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) * step / sigma) ** 2)
    density = np.convolve(counts, kernel)[reach : reach + size]
    padded = np.concatenate([[-np.inf], density, [-np.inf]])
    peaks = np.flatnonzero((padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:]))
    tops = density[peaks].tolist()
    dips = [int(a + np.argmin(density[a : b + 1])) for a, b in itertools.pairwise(peaks)]
    while dips:  # merge the two peaks with the shallowest dip between them, while shallow
        depth = [density[d] / min(tops[k], tops[k + 1]) for k, d in enumerate(dips)]
        k = int(np.argmax(depth))
        if depth[k] < ROW_DIP:
            break
        tops[k : k + 2] = [max(tops[k], tops[k + 1])]
        del dips[k]
    return np.searchsorted(lo + np.array(dips, np.float64) * step, cy).astype(np.int64)


def _named(names: tuple[str, ...], values: np.ndarray | None, i: int) -> dict[str, float] | None:
    """Row ``i`` of a per-face (n, len(names)) array as ``{name: float}``; None if absent."""
    if values is None:
        return None
    return {k: float(v) for k, v in zip(names, values[i], strict=True)}


def _opt_float(values: np.ndarray | None, i: int) -> float | None:
    return None if values is None else float(values[i])
