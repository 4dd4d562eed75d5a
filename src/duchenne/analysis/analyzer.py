"""``Analyzer``: image in, ``Faces`` out. The one entry point of the face pipeline.

Why one object: onnxruntime sessions are expensive to build and cheap to reuse, so the
analyzer opens each model once and every call (single image, batch, video frame, server
request) goes through the same stages: detect -> landmarks -> geometry -> smile/emotion.
Per-face models run on all faces of a call in one batch.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from duchenne.analysis.config import AnalyzerConfig
from duchenne.analysis.crop_format import CropFormat
from duchenne.errors import AnalysisError, DuchenneError
from duchenne.face.align import align_batch, crop_as_aligned, eye_centres
from duchenne.face.blendshapes import FaceBlendshapes
from duchenne.face.detector import Detections, FaceDetector
from duchenne.face.geometry import au_proxies, geometry_arrays
from duchenne.face.landmarks import FaceMesh, FaceRoi, roi_from_detection, roi_from_landmarks
from duchenne.face.orientation import (
    SURE_PRESENCE,
    faces_upright,
    find_turned,
    upright_presence,
)
from duchenne.faces import EMOTION_LABELS, Faces, reading_order
from duchenne.io.image import load_image
from duchenne.io.progress import ProgressBar
from duchenne.models.registry import default_smile_model
from duchenne.models.smile import SmileModel

logger = logging.getLogger(__name__)

REFINE_ROLL_RAD = float(np.radians(5.0))
REFINE_PASSES = 4


class Analyzer:
    """Find faces and measure smiles in images.

    Args:
        config: the options (:class:`~duchenne.analysis.config.AnalyzerConfig`: stages,
            detector, smile model, limits, threads); None = the defaults.
        **options: fields of ``AnalyzerConfig`` replacing those of ``config``
            (``Analyzer(stages=("detect",), threads=1)``).

    Faces come out in reading order (rows top to bottom, left to right), numbered from 0;
    ``config.smile_threshold`` decides every ``smiling`` and is recorded in each meta.

    Example:
        >>> analyzer = Analyzer()
        >>> faces = analyzer.analyze("photo.jpg")          # doctest: +SKIP
        >>> [round(f.smile_score, 1) for f in faces]       # doctest: +SKIP
        [7.9]
    """

    def __init__(self, config: AnalyzerConfig | None = None, **options: Any) -> None:
        self.config = config = AnalyzerConfig.build(config, **options)
        run = {"threads": config.threads, "device": config.device}
        self.detector = FaceDetector(
            config.detector, min_score=config.min_score, tile=config.tile, **run
        )
        self.mesh = FaceMesh(**run) if "landmarks" in config.stages else None
        self.blendshape_stage: FaceBlendshapes | None = None
        if "blendshapes" in config.stages:
            self.blendshape_stage = FaceBlendshapes(**run)
        self.smile_model: SmileModel | None = None
        if "smile" in config.stages:
            if config.smile_model is None and default_smile_model() is None:
                logger.warning("no smile model ships with this installation; smile stage skipped")
            else:
                self.smile_model = SmileModel(
                    config.smile_model, emotion_prior=config.emotion_prior, **run
                )

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages this analyzer runs (normalised, pipeline order)."""
        return self.config.stages

    @property
    def max_faces(self) -> int | None:
        return self.config.max_faces

    @property
    def min_face_size(self) -> float:
        return self.config.min_face_size

    @property
    def max_pixels(self) -> int:
        return self.config.max_pixels

    @property
    def smile_threshold(self) -> float:
        """P(smile) from which a face counts as smiling (``config.smile_threshold``)."""
        return self.config.smile_threshold

    def view(self, config: AnalyzerConfig) -> Analyzer:
        """A lighter ``Analyzer`` for ``config``, sharing this one's ONNX sessions.

        Why: a server holds one analyzer with every stage loaded and serves requests that
        ask for subsets (e.g. detection only) or other limits; building new sessions per
        request would cost far more than the request. ``config`` is usually a
        ``dataclasses.replace`` of :attr:`config`: stages can only be dropped, never added,
        and the model fields (detector, smile model, threads, ...) must be the same; limits,
        the smile threshold and the emotion prior (a post-processing offset) may change.

        Raises:
            ValueError: ``config`` asks for a stage or a model this analyzer did not load.
        """
        if config.sessions() != self.config.sessions():
            raise ValueError("a view can change stages and limits, not the models it runs")
        missing = [
            s
            for s in config.stages
            if s not in self.stages or (s == "smile" and self.smile_model is None)
        ]
        if missing:
            raise ValueError(
                f"stage(s) {missing} not loaded by this analyzer (loaded: {list(self.stages)})"
            )
        view = copy.copy(self)
        view.config = config
        view.mesh = self.mesh if "landmarks" in config.stages else None
        view.blendshape_stage = self.blendshape_stage if "blendshapes" in config.stages else None
        view.smile_model = None
        if "smile" in config.stages and self.smile_model is not None:
            view.smile_model = self.smile_model.with_prior(config.emotion_prior)
        return view

    def with_options(
        self,
        *,
        stages: Iterable[str] | None = None,
        max_faces: int | None = None,
        min_face_size: float | None = None,
        smile_threshold: float | None = None,
        emotion_prior: str | Sequence[float] | None = None,
    ) -> Analyzer:
        """:meth:`view` with other stages (None: these), ``max_faces`` (None: no limit),
        ``min_face_size``, ``smile_threshold`` and ``emotion_prior`` (None: this one's).

        Raises:
            ValueError: if ``stages`` asks for a stage this analyzer did not load.
        """
        changes: dict[str, Any] = {"max_faces": max_faces}
        if stages is not None:
            changes["stages"] = tuple(stages)
        if min_face_size is not None:
            changes["min_face_size"] = min_face_size
        if smile_threshold is not None:
            changes["smile_threshold"] = smile_threshold
        if emotion_prior is not None:
            changes["emotion_prior"] = emotion_prior
        return self.view(dataclasses.replace(self.config, **changes))

    @property
    def model_names(self) -> dict[str, str]:
        """Which models produced the results (recorded in every result's meta)."""
        names = {"detector": self.detector.name}
        if self.mesh is not None:
            names["landmarks"] = "face_landmark"
        if self.blendshape_stage is not None:
            names["blendshapes"] = "face_landmark_478+face_blendshapes"
        if self.smile_model is not None:
            names["smile"] = self.smile_model.name
        return names

    def analyze(self, source: Any, *, crop: bool = False) -> Faces:
        """Analyse one image (path, bytes, file object, PIL image or RGB/gray array).

        Args:
            source: the image.
            crop: the image is already a face crop: skip detection and landmarks and run
                the smile model on the whole image (head-crop classifier mode).

        Raises:
            ImageLoadError: (and subclasses) when the input cannot be decoded.
            TypeError: ``source`` is no image source at all (e.g. a number).
        """
        return self.analyze_batch([source], crop=crop, on_error="raise")[0]  # type: ignore[return-value]

    def analyze_batch(
        self,
        sources: Iterable[Any],
        *,
        crop: bool = False,
        on_error: str = "return",
        progress: bool = False,
    ) -> list[Faces | DuchenneError]:
        """Analyse many images with the same sessions; smile crops of all images share one batch.

        Args:
            on_error: ``"return"`` puts the ``DuchenneError`` of a bad input in its slot and
                carries on; ``"raise"`` raises it.
            progress: show a tqdm progress bar.

        An unexpected exception on one input (a bug, e.g. an OpenCV assertion on an odd
        image) becomes that input's ``AnalysisError`` naming it, traceback logged once:
        one photo must never lose the results of the others (CLI, server batch, batch jobs).

        Raises:
            TypeError: a source is no image source at all (e.g. a number), or ``sources``
                is one image (a path string, bytes, a PIL image or an image array), whose
                characters, bytes or rows would each be read as an input: a programming
                error, raised rather than reported as that input's failure.
            ValueError: ``on_error`` is neither ``"return"`` nor ``"raise"``.
        """
        if on_error not in ("return", "raise"):
            raise ValueError(f"on_error must be 'return' or 'raise', got {on_error!r}")
        if _is_one_image(sources):
            raise TypeError(
                f"analyze_batch takes a list of images, got one {type(sources).__name__}; "
                "use analyze() for a single image"
            )
        sources = list(sources)  # a generator is fine; a failed smile batch is retried by index
        results: list[Faces | DuchenneError] = []
        images: list[np.ndarray | None] = []
        # no tqdm object at all without a bar: building one costs more than a small image's
        # Python work (the server calls this once per micro-batch)
        bar = ProgressBar(sources, desc="faces", unit="img") if progress else sources
        for source in bar:
            image = None
            try:
                image = load_image(source, max_pixels=self.max_pixels)
                faces = self._crop_faces(image) if crop else self.faces_in(image)
            except Exception as exc:
                if image is None and isinstance(exc, TypeError):
                    raise  # load_image's: no image source at all (analyze(123)), the caller's bug

                error = exc if isinstance(exc, DuchenneError) else _pipeline_failure(source, exc)
                if on_error == "raise":
                    raise error from (None if error is exc else exc)
                results.append(error)
                images.append(None)
                continue
            models = {"smile": self.model_names["smile"]} if crop and self.smile_model else {}
            faces.meta.update(_describe(source, image), models=models or self.model_names)
            faces.meta["smile_threshold"] = self.smile_threshold
            if self.smile_model is not None:
                faces.meta["emotion_prior"] = self.config.emotion_prior
            results.append(faces)
            images.append(image)
        self._smiles_isolated(sources, images, results, crop, on_error)
        return results

    def _smiles_isolated(
        self,
        sources: Sequence[Any],
        images: list[np.ndarray | None],
        results: list[Faces | DuchenneError],
        crop: bool,
        on_error: str,
    ) -> None:
        """``smiles`` on all analysed images in one batch; if that fails unexpectedly,
        image by image, so only the image that fails gets an ``AnalysisError``."""
        done = [i for i, im in enumerate(images) if im is not None]
        try:
            self.smiles([images[i] for i in done], [results[i] for i in done], crop=crop)  # type: ignore[misc]
            return
        except DuchenneError:
            raise
        except Exception:  # find the image(s) it was: one at a time
            logger.debug("batched smile stage failed; retrying image by image", exc_info=True)
        for i in done:
            try:
                self.smiles([images[i]], [results[i]], crop=crop)  # type: ignore[list-item]
            except DuchenneError:
                raise
            except Exception as exc:
                error = _pipeline_failure(sources[i], exc)
                if on_error == "raise":
                    raise error from exc
                results[i] = error

    # ------------------------------------------------------------------ stages
    # The public stages below are what every pipeline is made of: ``analyze_batch`` here,
    # the video face stage (``analysis.video.face_stage``), ``enhance`` and the dataset
    # crop finder call them instead of the models behind them.

    def detect(self, image: np.ndarray, tile_min_side: int | None = None) -> Detections:
        """BlazeFace on a decoded RGB image, with ``min_face_size``/``max_faces`` applied.

        The image is taken as it stands, never turned (``config.rotations`` is for photos,
        in :meth:`faces_in`): a video's orientation comes from its container, and a frame
        without a face must not cost three more detector passes. ``tile_min_side``
        overrides the detector's for this call (video frames).
        """
        return self.select_faces(self.detector(image, tile_min_side=tile_min_side))

    def faces_in(self, image: np.ndarray, dets: Detections | None = None) -> Faces:
        """Detection, landmarks and geometry on a decoded RGB image (no smile stage).

        ``dets``: measure these faces instead of detecting them (``enhance`` measures a face
        the detector misses in its output where it was in the input).

        With ``config.rotations``, a photo with no upright face (none, or mostly sideways
        ones) is also searched turned by quarter turns (``face.orientation.find_turned``);
        with the landmarks stage, so is one whose faces BlazeFace finds level but Face Mesh
        is not sure of upright (``face.orientation.SURE_PRESENCE``: upside-down faces the
        detector scores 0.6-0.8), and a turn is kept only where Face Mesh is surer. Faces
        are always reported in the pixels of ``image``, and ``rotation`` says which turn
        showed them upright. When no face is left, ``meta["faces_below_min_size"]`` counts
        those ``min_face_size`` dropped (one more detector pass, only then).
        """
        rotation = None
        marks = None
        if dets is None:
            dets, turn = self.detect(image), 0
            if self.config.rotations:
                dets, turn, marks = self._upright(image, dets)
            rotation = np.full(len(dets), turn, np.int64)
        faces = Faces(dets.xyxy, dets.score, keypoints=dets.keypoints, rotation=rotation)
        if rotation is not None and not len(faces) and self.min_face_size > 0:
            small = int((_short_sides(self.detector(image)) < self.min_face_size).sum())
            if small:  # found, then dropped: not a photo without faces
                faces.meta["faces_below_min_size"] = small
        if self.mesh is not None and len(faces):
            faces.landmarks, faces.landmark_score = (
                marks if marks is not None else self._mesh_on(image, dets)
            )
            if "geometry" in self.stages:
                faces.data.update(geometry_arrays(faces.landmarks))
                faces.data.update(au_proxies(faces.data))
            faces.blendshapes = self.blendshapes(image, faces.landmarks)
        return faces

    def _upright(
        self, image: np.ndarray, dets: Detections
    ) -> tuple[Detections, int, tuple[np.ndarray, np.ndarray] | None]:
        """The faces of a photo and the quarter turn that shows them upright (0: as given),
        with their Face Mesh output when this already ran it (None otherwise).

        The eye-line test decides alone without the landmarks stage. With it, faces that
        look upright are kept when Face Mesh is sure of a level face in them
        (``SURE_PRESENCE``); else the photo is searched turned, and a turn taken only where
        Face Mesh is surer of one (``upright_presence``). Upright photos pay nothing more
        but for those rare faces, whose mesh output is then reused.
        """
        if not faces_upright(dets):
            if (turned := find_turned(self.detector, image, dets)) is not None:
                return self.select_faces(turned[0]), turned[1], None
            return dets, 0, None
        if self.mesh is None:
            return dets, 0, None
        marks = self._mesh_on(image, dets)
        sure = upright_presence(*marks)
        if sure >= SURE_PRESENCE:
            return dets, 0, marks
        kept: dict[str, Any] = {}

        def surer(candidates: Detections, degrees: int) -> bool:
            chosen = self.select_faces(candidates)
            their = self._mesh_on(image, chosen)
            if not len(chosen) or upright_presence(*their, degrees) <= sure:
                return False
            kept.update(dets=chosen, marks=their)
            return True

        if (turned := find_turned(self.detector, image, dets, accept=surer)) is not None:
            return kept["dets"], turned[1], kept["marks"]
        return dets, 0, marks

    def _mesh_on(self, image: np.ndarray, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
        """Face Mesh landmarks and presence of detected faces (ROIs from their boxes)."""
        rois = [roi_from_detection(b, k) for b, k in zip(dets.xyxy, dets.keypoints, strict=True)]
        return self.landmarks(image, rois)

    def blendshapes(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        """MediaPipe's 52 coefficients (n, 52) for faces with these Face Mesh landmarks
        (n, 468, 3); None when the ``blendshapes`` stage is off (see
        ``duchenne.face.blendshapes``)."""
        if self.blendshape_stage is None:
            return None
        return self.blendshape_stage(image, landmarks)

    def landmarks(
        self, image: np.ndarray, rois: Sequence[FaceRoi], *, refine: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Face Mesh on each ROI: landmarks (n, 468, 3) and presence (n,).

        With ``refine`` (for ROIs from detections), re-run on landmark-based ROIs while the
        head roll is off; ``refine=False`` is one pass (ROIs that came from landmarks).

        BlazeFace's eye keypoints are coarse on strongly rolled heads (measured: a portrait
        turned 90 degrees gives an ROI 45 degrees off) and each Face Mesh pass only halves
        that error, so faces whose landmark roll disagrees with their ROI by more than
        ``REFINE_ROLL_RAD`` get up to ``REFINE_PASSES`` more passes on the ROI from their own
        landmarks (MediaPipe's tracking rule). Upright faces never take a second pass.

        Raises:
            ValueError: this analyzer does not run the landmarks stage.
        """
        if self.mesh is None:
            raise ValueError("the landmarks stage is not loaded by this analyzer")
        rois = list(rois)
        landmarks, presence = self.mesh(image, rois)
        for _ in range(REFINE_PASSES if refine else 0):
            refined = [roi_from_landmarks(lm) for lm in landmarks]
            redo = [
                i
                for i, (a, b) in enumerate(zip(rois, refined, strict=True))
                if _angle_gap(a.rotation, b.rotation) > REFINE_ROLL_RAD
            ]
            if not redo:
                break
            landmarks[redo], presence[redo] = self.mesh(image, [refined[i] for i in redo])
            rois = refined
        return landmarks, presence

    def select_faces(self, dets: Detections) -> Detections:
        """Apply ``min_face_size`` and ``max_faces`` (highest score kept) to raw detections,
        then put the faces in reading order (their numbers everywhere)."""
        dets = dets.select(_short_sides(dets) >= self.min_face_size)
        order = np.argsort(-dets.score)
        if self.max_faces is not None:
            order = order[: self.max_faces]
        dets = dets.select(order)
        return dets.select(reading_order(dets.xyxy))

    def _crop_faces(self, image: np.ndarray) -> Faces:
        h, w = image.shape[:2]
        faces = Faces(np.array([[0, 0, w, h]], np.float32), np.ones(1, np.float32))
        faces.meta["crop_mode"] = True
        return faces

    def face_crops(self, image: np.ndarray, faces: Faces, crop: bool = False) -> np.ndarray:
        """Aligned crops (n, S, S, 3) for the smile model: landmark eyes, else keypoint eyes."""
        if self.smile_model is None:
            raise ValueError("the smile stage is not loaded by this analyzer")
        cfg = CropFormat.of_model(self.smile_model).align_config()
        if crop:
            return crop_as_aligned(image, cfg)[None]
        return align_batch(image, self.face_eyes(faces), cfg)

    @staticmethod
    def face_eyes(faces: Faces) -> np.ndarray:
        """Eye centres (n, 2, 2) the smile crops align on: Face Mesh's when landmarks ran,
        else the detector's eye keypoints (``stages=detect,smile``: no Face Mesh pass)."""
        if faces.landmarks is not None and len(faces):
            return np.stack([np.stack(eye_centres(lm)) for lm in faces.landmarks])
        if faces.keypoints is not None and len(faces):
            return np.asarray(faces.keypoints[:, :2])
        return np.zeros((0, 2, 2))

    def smiles(
        self, images: Sequence[np.ndarray], faces: Sequence[Faces], *, crop: bool = False
    ) -> None:
        """The smile stage on given faces: fills ``smile``, ``smile_score`` and ``emotion``
        of each ``faces[i]`` (found in ``images[i]``), all crops in one ONNX batch.

        Nothing happens without a smile model (``smile`` not in the stages, or none
        installed). ``crop``: each image is one face crop (head-crop classifier mode).
        """
        if self.smile_model is None or not len(faces):
            return
        crops = [self.face_crops(im, f, crop) for im, f in zip(images, faces, strict=True)]
        out = self.smile_model(np.concatenate(crops))
        start = 0
        for f, c in zip(faces, crops, strict=True):
            stop = start + len(c)
            f.smile, f.smile_score = out.smile[start:stop], out.smile_score[start:stop]
            f.emotion = out.emotion[start:stop]
            f.meta["emotion_labels"] = list(EMOTION_LABELS)
            start = stop


def _is_one_image(sources: Any) -> bool:
    """Whether ``sources`` is a single image rather than a collection of them.

    Why: all of these are iterable, so ``analyze_batch("photo.jpg")`` would analyse each
    character as a path and ``analyze_batch(rgb)`` each pixel row as a grey image, and
    return a list of errors or empty results instead of saying what went wrong. An
    ``(N, H, W)`` or ``(N, H, W, C)`` array is a stack of images and stays accepted.
    """
    if isinstance(sources, (str, bytes, bytearray, memoryview, os.PathLike, Image.Image)):
        return True
    if isinstance(sources, np.ndarray):
        return sources.ndim <= 2 or (sources.ndim == 3 and sources.shape[2] in (1, 3, 4))
    return hasattr(sources, "read")  # a file object iterates over its lines


def _short_sides(dets: Detections) -> np.ndarray:
    """Each box's shorter side in pixels (what ``min_face_size`` limits)."""
    return np.minimum(dets.xyxy[:, 2] - dets.xyxy[:, 0], dets.xyxy[:, 3] - dets.xyxy[:, 1])


def _angle_gap(a: float, b: float) -> float:
    """Absolute difference of two angles in radians, wrapped to [0, pi]."""
    return abs((a - b + np.pi) % (2 * np.pi) - np.pi)


def _pipeline_failure(source: Any, exc: BaseException | None) -> AnalysisError:
    """An unexpected failure on one input as its typed error (the traceback is logged)."""
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", None)
    label = str(name) if name else f"<{type(source).__name__}>"
    logger.error("face pipeline failed on %s", label, exc_info=exc)
    return AnalysisError(
        f"{label}: the face pipeline failed ({type(exc).__name__}: {exc}); "
        "this is a bug, please report it"
    )


def _describe(source: Any, image: np.ndarray) -> dict[str, Any]:
    meta: dict[str, Any] = {"width": int(image.shape[1]), "height": int(image.shape[0])}
    if isinstance(source, (str, Path)):
        meta["source"] = str(source)
    return meta
