"""BlazeFace face detection (MediaPipe short- and full-range models on onnxruntime).

The decoding reproduces MediaPipe's graph (``face_detection_*.pbtxt``): SSD anchors,
box/keypoint regression relative to the anchor centre, sigmoid scores, then MediaPipe's
*weighted* non-maximum suppression, which averages overlapping candidates by score and
gives steadier boxes than hard NMS. Images larger than a tile are additionally scanned in
overlapping tiles so that small faces reach the detector at a usable size; what only a
tile shows must be confirmed by the short-range model (``TILE_CONFIRM_MIN``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from duchenne.face.boxes import box_iou
from duchenne.face.letterbox import letterbox
from duchenne.face.tiles import Window, pyramid, resolved, whole
from duchenne.face.windows import centred_windows
from duchenne.models.registry import create_model, get_model_cfg


@dataclass(frozen=True)
class BlazeFaceSpec:
    """Decode options of one BlazeFace model, as in MediaPipe's graph files.

    Args:
        model: registry name of the ONNX file.
        input_size: square input side in pixels.
        strides: one stride per SSD layer (``num_layers = len(strides)``).
        interpolated_anchor: whether each layer adds MediaPipe's interpolated-scale anchor
            (``interpolated_scale_aspect_ratio: 1.0``), doubling anchors per cell.
        min_score: MediaPipe's ``min_score_thresh`` for the model.
    """

    model: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool
    min_score: float
    nms_iou: float = 0.3
    score_clip: float = 100.0

    @classmethod
    def from_registry(cls, model: str) -> BlazeFaceSpec:
        """The spec of a shipped BlazeFace model, read from the MediaPipe graph options its
        manifest entry records (the one source of these constants)."""
        opts = get_model_cfg(model).graph_options
        face, decode = opts["face_detection_options"], opts["tensors_to_detections"]
        return cls(
            model=model,
            input_size=int(face["tensor_width"]),
            strides=tuple(int(s) for s in face["strides"]),
            interpolated_anchor=float(face["interpolated_scale_aspect_ratio"]) > 0,
            min_score=float(face["min_score_thresh"]),
            nms_iou=float(opts["non_max_suppression"]["min_suppression_threshold"]),
            score_clip=float(decode["score_clipping_thresh"]),
        )


SHORT_RANGE = BlazeFaceSpec.from_registry("face_detection_short_range")
FULL_RANGE = BlazeFaceSpec.from_registry("face_detection_full_range")
SPECS = {"short": SHORT_RANGE, "full": FULL_RANGE}
VERIFY_SPECS = (SHORT_RANGE, FULL_RANGE)


def make_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """SSD anchor centres (n, 2) in [0, 1], in MediaPipe's order (fixed anchor size 1x1).

    Consecutive layers with the same stride share one feature map; each contributes one
    anchor per cell (two with the interpolated anchor), exactly as ``SsdAnchorsCalculator``.
    """
    centres: list[np.ndarray] = []
    i = 0
    while i < len(spec.strides):
        stride = spec.strides[i]
        per_cell = 0
        while i < len(spec.strides) and spec.strides[i] == stride:
            per_cell += 2 if spec.interpolated_anchor else 1
            i += 1
        side = math.ceil(spec.input_size / stride)
        ys, xs = np.mgrid[0:side, 0:side]
        grid = np.stack([(xs + 0.5) / side, (ys + 0.5) / side], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass
class Detections:
    """Raw detector output in image pixels: boxes (n,4), keypoints (n,6,2), scores (n,)."""

    xyxy: np.ndarray
    keypoints: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros((0, 6, 2), np.float32), np.zeros(0, np.float32)
        )

    def __len__(self) -> int:
        return len(self.score)

    def select(self, index: np.ndarray) -> Detections:
        return Detections(self.xyxy[index], self.keypoints[index], self.score[index])

    @classmethod
    def concat(cls, items: list[Detections]) -> Detections:
        if not items:
            return cls.empty()
        return cls(
            *(
                np.concatenate([getattr(d, f) for d in items])
                for f in ("xyxy", "keypoints", "score")
            )
        )


def weighted_nms(dets: Detections, iou_threshold: float) -> Detections:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of its cluster.

    The kept score is the cluster's best score, as in ``NonMaxSuppressionCalculator``.
    """
    if len(dets) == 1:  # a cluster of one is itself
        return dets
    order = np.argsort(-dets.score)
    boxes, kps, scores = dets.xyxy[order], dets.keypoints[order], dets.score[order]
    remaining = np.ones(len(scores), bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        cluster = remaining & (box_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        w = scores[cluster][:, None]
        out_b.append((boxes[cluster] * w).sum(0) / w.sum())
        out_k.append((kps[cluster] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        remaining &= ~cluster
    if not out_s:
        return Detections.empty()
    return Detections(
        np.array(out_b, np.float32), np.array(out_k, np.float32), np.array(out_s, np.float32)
    )


DETECTORS = ("auto", "full", "short")
"""Detector choices: ``auto`` runs both models and merges them; ``full``/``short`` one model."""

SECOND_CHANCE_PAD = 0.25
VERIFY_SCALE = 3.0
# The short-range model's threshold when it works beside the full-range one. At MediaPipe's
# 0.5 it adds false faces on face-free patches (16 on 318 Solvay/MTFL background patches,
# full-range alone: 0); at 0.7 none, while it still finds 916 of the 959 faces (of 2,700
# MTFL/FER+/SMILEsmileD images) that the full-range model misses.
AUTO_SHORT_MIN = 0.7
# Second looks see more candidates than one pass, so they need more to accept one:
# verification needs both models (short-range at its ``AUTO_SHORT_MIN``, full-range at
# ``VERIFY_MIN``), the padded second chance ``SECOND_CHANCE_MIN`` from either.
VERIFY_MIN = 0.5
SECOND_CHANCE_MIN = 0.8
NMS_IOU = 0.3
# What the full-range model finds only in a tile must be confirmed by the short-range model
# at this score in a window ``VERIFY_SCALE`` times its size. Why: a tile multiplies
# the model's looks at a fine scale where texture passes its threshold (blurred noise at
# 4000x3000: 16 faces at 0.60-0.72 in 384 px tiles; the astronaut upscaled to 6144 px: 2-5
# faces on the helmet and suit, as a tile of an upscaled photo is a blur the model never
# saw), while the short-range model, shown the candidate at its own scale, scores every
# such one (thousands measured) at most 0.65 and every Solvay face at 1-4x at least 0.76.
# The full-range model is no judge there: it scores clear Solvay faces 0.18-0.49 in them.
TILE_CONFIRM_MIN = AUTO_SHORT_MIN
# ... and in one more window, ``CONFIRM_AGAIN`` times its size (the first where it scores
# ``TILE_CONFIRM_MIN``): a face is one at every framing, a texture rarely at two. Measured
# with tiles on 1,440 photos of 480-1400 px without an annotated face: 3 candidates passed
# the 3x window (0.71-0.74: two textures and a half face at a patch edge), only the half
# face passes both; of 559 annotated faces that pass the 3x window (MTFL faces pasted on
# photos, Solvay at 800-3200 px) every one passes both (and 24 of 29 other boxes there).
CONFIRM_AGAIN = (2.0, 4.0)


class _Runner:
    """One BlazeFace model with its anchors and threshold: window in, detections out."""

    def __init__(
        self,
        spec: BlazeFaceSpec,
        min_score: float | None,
        threads: int | None,
        device: str = "cpu",
    ) -> None:
        self.spec = spec
        self.min_score = spec.min_score if min_score is None else min_score
        self.model = create_model(spec.model, threads=threads, device=device)
        self.anchors = make_anchors(spec)

    def __call__(
        self,
        window: np.ndarray,
        x0: float,
        y0: float,
        min_score: float | None = None,
        border: int = 0,
    ) -> Detections:
        """Faces scoring at least ``min_score`` (default: the runner's) in ``window``,
        whose top-left corner is at (x0, y0) of the image, seen inside a grey frame
        ``border`` pixels wide (see ``letterbox``)."""
        return self.many([(window, x0, y0)], min_score, border)[0]

    def many(
        self,
        windows: Sequence[tuple[np.ndarray, float, float]],
        min_score: float | None = None,
        border: int = 0,
    ) -> list[Detections]:
        """``__call__`` on several windows (tiles, verification), ``image_batch`` windows
        per onnxruntime call (one on the CPU, a batch on a GPU; see
        ``duchenne.models.session.IMAGE_BATCH``)."""
        out: list[Detections] = []
        step = self.model.image_batch
        for start in range(0, len(windows), step):
            chunk = windows[start : start + step]
            boxed = [letterbox(w, self.spec.input_size, border) for w, _, _ in chunk]
            pixels = boxed[0][0][None] if len(boxed) == 1 else np.stack([b[0] for b in boxed])
            x = np.multiply(pixels, np.float32(1 / 127.5), dtype=np.float32)
            x -= 1.0
            result = self.model(x)
            reg = _output(result, "regressors", 16)
            logits = _output(result, "classificators", 1)[..., 0]
            for i, ((_, x0, y0), (_, scale, px, py)) in enumerate(zip(chunk, boxed, strict=True)):
                place = (px, py, x0 - border, y0 - border)
                out.append(self._decode(reg[i], logits[i], scale, place, min_score))
        return out

    def _decode(
        self,
        reg: np.ndarray,
        logits: np.ndarray,
        scale: np.ndarray | float,
        place: tuple[float, float, float, float],
        min_score: float | None,
    ) -> Detections:
        """Anchor-relative regressions of one window -> detections in image pixels
        (``scale``: the letterbox's (x, y) scale, or one for both axes)."""
        size = self.spec.input_size
        pad_x, pad_y, x0, y0 = place
        clip = self.spec.score_clip
        floor = self.min_score if min_score is None else min_score
        # the sigmoid only where it can pass (a logit a hair below the threshold's), then
        # MediaPipe's exact float64 test: same faces, no exp over all 2,304 anchors
        near = np.flatnonzero(logits >= _logit(floor) - 1e-3)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[near].astype(np.float64), -clip, clip)))
        keep = near[scores >= floor]
        if not len(keep):
            return Detections.empty()
        reg, anchors, scores = reg[keep], self.anchors[keep], scores[scores >= floor]
        centre = reg[:, 0:2] / size + anchors
        half = reg[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * size
        kps = (reg[:, 4:16].reshape(-1, 6, 2) / size + anchors[:, None, :]) * size
        offset = np.array([pad_x, pad_y], np.float32)
        scale = np.broadcast_to(np.asarray(scale, np.float64), (2,))
        boxes = (boxes - np.tile(offset, 2)) / np.tile(scale, 2) + np.array([x0, y0, x0, y0])
        kps = (kps - offset) / scale + np.array([x0, y0], np.float32)
        return Detections(
            boxes.astype(np.float32), kps.astype(np.float32), scores.astype(np.float32)
        )


class FaceDetector:
    """Find every face in an RGB image with BlazeFace.

    Why two models: MediaPipe's short-range model finds faces that fill the frame (studio
    portraits, selfies, webcam) which the full-range model sometimes misses (measured: 20
    of 1,232 frontal 256x256 portraits), while only the full-range model finds faces
    smaller than about a tenth of the image. ``"auto"`` (the default) runs the full-range
    model on the whole image (and on tiles of large images), and the short-range model
    where that finds no face. Faces only tiles find need the short-range model's word in a
    window centred on them (tiles of textures and of upscaled photos hold false ones).
    Doubtful candidates (``verify_min`` up to the threshold) get a second look in such a
    window (both models must agree there; the short-range one for tiles'), and when
    nothing at all is found, a last pass runs both models on the image inside a grey
    border (a face cut by the frame edge or filling it is then seen whole and smaller).
    Photos turned sideways or upside down: ``duchenne.face.orientation.find_turned``.

    Args:
        model: ``"auto"`` (both models, default), ``"short"`` (faces within ~2 m),
            ``"full"`` (any distance) or a ``BlazeFaceSpec``.
        min_score: detection threshold (default: MediaPipe's for each model).
        tile: also scan overlapping tiles: ``True``, ``False`` or ``"auto"`` (when the
            image's long side is at least ``tile_min_side``). Why tiles at any size: the
            whole-image pass sees a face of a tenth of the long side at 19 model pixels, where
            the full-range model's recall ends (1,565 MTFL faces pasted on 640-1280 px photos:
            25% found at 3-5% of the long side, 73% at 5-8%, 91% at 8-12%; with tiles 94%,
            99%, 98%), whatever the image's size. Tiles form a pyramid of sides
            ``tile_size * 2**k`` below the image size, so every face size has a level where
            it is neither too small for the detector nor cut by a tile edge; a level whose
            tiles are too thin to show a face is left out (strips, see ``tiles.resolves``).
        tile_size: smallest tile side in pixels. Measured on the 1927 Solvay photo
            (1600x1101, faces 40-60 px): 384 finds 28 of 29 faces, 640 finds 12, no tiling 0.
        tile_min_side: with ``tile="auto"``, the smallest long side that is tiled (0: every
            image with a tile level, long side over ``tile_size / tiles.TILE_LEVEL_MAX``);
            a higher one trades the small faces of smaller images for speed.
        second_chance: retry on a padded image when nothing was found.
        threads: onnxruntime intra-op threads.
        device: ``"cpu"`` or ``"cuda"`` (see ``duchenne.models.session.providers_for``).

    Example:
        >>> import numpy as np
        >>> FaceDetector()(np.zeros((480, 640, 3), np.uint8)).xyxy.shape
        (0, 4)
    """

    def __init__(
        self,
        model: str | BlazeFaceSpec = "auto",
        *,
        min_score: float | None = None,
        tile: bool | str = "auto",
        tile_size: int = 384,
        tile_min_side: int = 0,
        tile_overlap: float = 0.35,
        second_chance: bool = True,
        verify_min: float | None = 0.3,
        max_verify: int = 8,
        threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        if isinstance(model, str) and model not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {model!r}")
        if model == "auto":
            short_min = AUTO_SHORT_MIN if min_score is None else min_score
            self.runners = [
                _Runner(SHORT_RANGE, short_min, threads, device),
                _Runner(FULL_RANGE, min_score, threads, device),
            ]
        else:
            self.runners = [_Runner(_spec(model), min_score, threads, device)]
        # tiles hold small faces: the full-range model's job (the last runner)
        self.tile_runner = self.runners[-1]
        self.tile, self.tile_size, self.tile_min_side = tile, tile_size, tile_min_side
        self.tile_overlap, self.second_chance = tile_overlap, second_chance
        self.verify_min, self.max_verify = verify_min, max_verify
        have = {r.spec: r for r in self.runners}
        self.verifiers = [
            have.get(sp) or _Runner(sp, _alone(sp), threads, device) for sp in VERIFY_SPECS
        ]

    @property
    def name(self) -> str:
        """Model name(s), `` + ``-joined (recorded in result metadata)."""
        return " + ".join(r.spec.model for r in self.runners)

    @property
    def spec(self) -> BlazeFaceSpec:
        """The tile (full-range, when used) model's spec."""
        return self.tile_runner.spec

    def __call__(
        self,
        image: np.ndarray,
        second_chance: bool | None = None,
        tile_min_side: int | None = None,
    ) -> Detections:
        """Detect faces; boxes and keypoints are in ``image`` pixel coordinates.

        ``second_chance``: override the detector's padded retry for this call (the turned
        looks of ``face.orientation`` skip it). ``tile_min_side``: override the detector's
        for this call (video frames, see ``analysis.video.face_stage``).
        """
        sure, doubtful = self._scan(image, tile_min_side)
        if len(doubtful):
            sure = _merge([sure, self._verify(image, _unmatched(doubtful, sure))])
        retry = self.second_chance if second_chance is None else second_chance
        if not len(sure) and retry:
            sure = self._padded(image)
        return _drop_nested(sure)

    def _scan(
        self, image: np.ndarray, tile_min_side: int | None = None
    ) -> tuple[Detections, Detections]:
        """The full-range model (whole image and tiles) first; the other model only where
        the first is sure of no face.

        Why in that order: the full-range model finds faces of every size but misses some
        that fill the frame; the short-range model finds those, and only those matter when
        the full-range model found nothing, so a photo with a face costs one model run.

        What only tiles find, the short-range model must confirm (``_confirm``): faces, and
        with verification on the best ``max_verify`` doubtful ones. Before the other model's
        turn, so that false tile faces do not stand in for a face the whole image shows.

        Returns the merged faces a model is sure of (score at or above its threshold) and,
        with verification on, the merged doubtful ones of the whole-image passes
        (``verify_min`` up to it).
        """
        h, w = image.shape[:2]
        run = self.tile_runner
        whole = run(image, 0, 0, self._floor(run))
        tiles = self.tiles(w, h, tile_min_side)
        windows = [(image[y0:y1, x0:x1], x0, y0) for x0, y0, x1, y1 in tiles]
        zoomed = [
            self._tile_faces(dets, tile, w, h)
            for tile, dets in zip(tiles, run.many(windows, self._floor(run)), strict=True)
        ]
        seen = whole.select(whole.score >= run.min_score)
        sure = _merge([seen, *(d.select(d.score >= run.min_score) for d in zoomed)])
        maybe = _unmatched(_merge([d.select(d.score < run.min_score) for d in zoomed]), sure)
        maybe = maybe.select(np.argsort(-maybe.score)[: self.max_verify])
        tile_only = ~_overlaps(sure, seen)
        confirmed = self._confirm(image, Detections.concat([sure.select(tile_only), maybe]))
        sure = _merge([sure.select(~tile_only), confirmed])
        doubtful = [whole.select(whole.score < run.min_score)]
        for other in self.runners:
            if other is run or len(sure):
                continue
            dets = other(image, 0, 0, self._floor(other))
            sure = _merge([dets.select(dets.score >= other.min_score)])
            doubtful.append(dets.select(dets.score < other.min_score))
        return sure, _merge(doubtful)

    def _floor(self, runner: _Runner) -> float:
        """A runner's threshold for candidates: down to ``verify_min`` when verifying."""
        low = self.verify_min
        return runner.min_score if low is None else min(low, runner.min_score)

    def _verify(self, image: np.ndarray, doubtful: Detections) -> Detections:
        """Second look at faces scored between ``verify_min`` and the threshold.

        Each is re-detected in a window ``VERIFY_SCALE`` times its size centred on it, where
        a real face is framed as the models expect and scores high; it is kept when both
        models find it there (Solvay photo: a clear face at 0.41 in its tile scores 0.76 and
        0.55 there; its background candidates stay below 0.45 and 0.2).
        """
        boxes = doubtful.xyxy[np.argsort(-doubtful.score)][: self.max_verify]
        if not len(boxes):
            return Detections.empty()
        windows, centres, sides = centred_windows(image, boxes, VERIFY_SCALE)
        alive = list(range(len(windows)))
        first: dict[int, Detections] = {}
        for run in self.verifiers:  # what the first model rejects, the second never sees
            found = run.many([windows[i] for i in alive], _verify_floor(run))
            hits = {
                i: _near(d, centres[i], sides[i] / 3) for d, i in zip(found, alive, strict=True)
            }
            alive = [i for i in alive if len(hits[i])]
            first = first or hits
        return _merge([first[i] for i in alive])

    def _confirm(self, image: np.ndarray, zoomed: Detections) -> Detections:
        """The candidates only tiles found that the short-range model also finds, at
        ``TILE_CONFIRM_MIN`` in a window ``VERIFY_SCALE`` times their size centred on them
        and in one of ``CONFIRM_AGAIN`` times (why: see ``TILE_CONFIRM_MIN``). They keep
        their tile boxes: the tiles frame such a small face better than the windows."""
        hit = self._short_sees(image, zoomed.xyxy, VERIFY_SCALE)
        again = np.zeros(len(zoomed), bool)
        for scale in CONFIRM_AGAIN:  # what one framing confirms, the next never sees
            ask = hit & ~again
            if ask.any():
                again[ask] = self._short_sees(image, zoomed.xyxy[ask], scale)
        return zoomed.select(hit & again)

    def _short_sees(self, image: np.ndarray, boxes: np.ndarray, scale: float) -> np.ndarray:
        """Whether the short-range model finds a face at ``TILE_CONFIRM_MIN`` near each box's
        centre in a window ``scale`` times its size centred on it."""
        if not len(boxes):
            return np.zeros(0, bool)
        windows, centres, sides = centred_windows(image, boxes, scale)
        short = next(r for r in self.verifiers if r.spec == SHORT_RANGE)
        found = short.many(windows, max(short.min_score, TILE_CONFIRM_MIN))
        near = zip(found, centres, sides, strict=True)
        return np.array([len(_near(d, c, s / 3)) > 0 for d, c, s in near], bool)

    def _padded(self, image: np.ndarray) -> Detections:
        """Second chance: whole-image models on the image inside a grey border, stricter."""
        pad = max(1, round(SECOND_CHANCE_PAD * max(image.shape[:2])))
        floor = [max(r.min_score, SECOND_CHANCE_MIN) for r in self.runners]
        return _merge(
            [run(image, 0, 0, m, pad) for run, m in zip(self.runners, floor, strict=True)]
        )

    def tiles(self, w: int, h: int, min_side: int | None = None) -> list[tuple[int, int, int, int]]:
        """Tile windows (x0, y0, x1, y1) of every pyramid level (none when tiling is off);
        ``min_side`` overrides ``tile_min_side``."""
        least = self.tile_min_side if min_side is None else min_side
        use = max(w, h) >= least if self.tile == "auto" else bool(self.tile)
        model_side = self.tile_runner.spec.input_size
        return pyramid(w, h, self.tile_size, self.tile_overlap, model_side) if use else []

    def _tile_faces(self, dets: Detections, window: Window, w: int, h: int) -> Detections:
        """What a tile may report: faces its level resolves, none cut by its inner edges."""
        if not len(dets):
            return dets
        model_side = self.tile_runner.spec.input_size
        keep = resolved(dets.xyxy, window, self.tile_size, model_side)
        return dets.select(keep & whole(dets.xyxy, window, w, h))


def _logit(p: float) -> float:
    """Inverse sigmoid, for a pre-filter (every logit whose float64 sigmoid rounds to 1.0
    exceeds 30, so 30 stands in for p = 1)."""
    if p <= 0.0:
        return -math.inf
    return min(math.log(p / (1.0 - p)), 30.0) if p < 1.0 else 30.0


def _spec(model: str | BlazeFaceSpec) -> BlazeFaceSpec:
    return SPECS[model] if isinstance(model, str) else model


def _overlaps(candidates: Detections, faces: Detections, iou: float = NMS_IOU) -> np.ndarray:
    """Whether each candidate overlaps one of ``faces`` (IoU above ``iou``)."""
    if not len(faces) or not len(candidates):
        return np.zeros(len(candidates), bool)
    return np.array([(box_iou(b, faces.xyxy) > iou).any() for b in candidates.xyxy], bool)


def _unmatched(candidates: Detections, faces: Detections, iou: float = NMS_IOU) -> Detections:
    """The candidates that overlap none of ``faces``."""
    if not len(faces) or not len(candidates):
        return candidates
    return _drop_nested(candidates.select(~_overlaps(candidates, faces, iou)), within=faces)


def _alone(spec: BlazeFaceSpec) -> float | None:
    """Threshold of a model working beside the other one (None: MediaPipe's own)."""
    return AUTO_SHORT_MIN if spec == SHORT_RANGE else None


def _verify_floor(runner: _Runner) -> float:
    """Verification threshold: the short-range model's own, the full-range ``VERIFY_MIN``."""
    return runner.min_score if runner.spec == SHORT_RANGE else VERIFY_MIN


def _drop_nested(
    dets: Detections, inside: float = 0.6, within: Detections | None = None
) -> Detections:
    """Drop faces lying mostly (``inside`` of their area) within a face twice their size
    (of ``dets`` itself, or of ``within`` when given).

    Why: on a face filling the frame the full-range model can also fire on a part of it
    (an eye region), which the merge keeps since the boxes barely overlap by IoU.
    """
    others = dets if within is None else within
    if not len(dets) or not len(others) or (within is None and len(dets) < 2):
        return dets
    b, o = dets.xyxy, others.xyxy
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    big = (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1])
    keep = np.ones(len(dets), bool)
    for i in range(len(dets)):
        w = np.clip(np.minimum(b[i, 2], o[:, 2]) - np.maximum(b[i, 0], o[:, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], o[:, 3]) - np.maximum(b[i, 1], o[:, 1]), 0, None)
        keep[i] = not ((w * h > inside * area[i]) & (big >= 2 * area[i])).any()
    return dets.select(keep)


def _near(dets: Detections, centre: np.ndarray, distance: float) -> Detections:
    """Detections whose box centre lies within ``distance`` of ``centre`` (both axes)."""
    gap = np.abs((dets.xyxy[:, :2] + dets.xyxy[:, 2:]) / 2 - centre).max(1) if len(dets) else []
    return dets.select(np.asarray(gap) < distance) if len(dets) else dets


def _merge(parts: list[Detections], iou: float = NMS_IOU) -> Detections:
    """Weighted NMS over the detections of several windows/models."""
    dets = Detections.concat([p for p in parts if len(p)])
    return weighted_nms(dets, iou) if len(dets) else Detections.empty()


def _output(out: dict[str, np.ndarray], name: str, last_dim: int) -> np.ndarray:
    """Find an output by name, else by its last dimension (converted names vary)."""
    if name in out:
        return out[name]
    for value in out.values():
        if value.shape[-1] == last_dim:
            return value
    raise KeyError(f"model has no {name!r} output: {list(out)}")
