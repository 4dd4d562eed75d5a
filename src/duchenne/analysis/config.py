"""``AnalyzerConfig``: every option of the face pipeline, written out once.

Why one frozen dataclass: the same options (stages, detector, smile model, limits,
threads) reach an ``Analyzer`` from the Python API, every CLI command, the batch workers
and the server's worker processes. Spelling them out in each place let them drift apart;
now each front end builds (or receives) one ``AnalyzerConfig`` and lighter per-request
variants are ``dataclasses.replace`` copies of it. Being frozen and made of plain values,
it pickles to worker processes and Ray actors and can key a cache.

A new Analyzer option is a new field here (plus its flag in
``duchenne.cli.options.add_analyzer_args`` when the CLI offers it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from duchenne.analysis.checks import whole_number
from duchenne.face.detector import DETECTORS
from duchenne.faces import DEFAULT_SMILE_THRESHOLD
from duchenne.io.image import DEFAULT_MAX_PIXELS
from duchenne.models.session import DEVICES
from duchenne.models.smile import EmotionPrior, parse_emotion_prior

#: The stages an ``Analyzer`` runs by default.
STAGES = ("detect", "landmarks", "geometry", "smile")
#: Every stage, in run order: the defaults plus the opt-in ``blendshapes`` (MediaPipe's 52
#: coefficients; opt-in because its 478-point landmark pass costs about 4x Face Mesh).
ALL_STAGES = ("detect", "landmarks", "geometry", "blendshapes", "smile")

#: fields that decide which onnxruntime sessions an ``Analyzer`` opens (views must match)
SESSION_FIELDS = ("detector", "smile_model", "min_score", "tile", "threads", "device")


def normalize_stages(stages: Iterable[str] | str) -> tuple[str, ...]:
    """Validate stage names and add what they depend on (geometry and blendshapes need
    landmarks).

    A string is read as a comma-separated list (``"detect,smile"``).
    """
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    wanted = set(stages)
    unknown = wanted - set(ALL_STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; choose from {list(ALL_STAGES)}")
    if wanted & {"geometry", "blendshapes"}:
        wanted.add("landmarks")
    wanted.add("detect")
    return tuple(s for s in ALL_STAGES if s in wanted)


@dataclass(frozen=True)
class AnalyzerConfig:
    """What an ``Analyzer`` loads and how it selects faces.

    Attributes:
        stages: which stages run, from ``ALL_STAGES`` (or ``"detect,smile"``; default
            ``STAGES``: all but the opt-in ``blendshapes``); detection always runs,
            geometry and blendshapes imply landmarks. Stored normalised, in pipeline order.
        detector: ``"auto"`` (both BlazeFace models merged, the default: near, far and
            group faces), ``"full"`` (any distance) or ``"short"`` (near faces); see
            ``duchenne.face.detector.FaceDetector``.
        smile_model: ladder variant name or ``.onnx`` path (None = the default variant).
        max_faces: keep at most this many faces (highest detector score first).
        min_face_size: drop faces whose box is smaller than this many pixels (short side).
        min_score: detector threshold (None = MediaPipe's default for the model).
        tile: also scan overlapping tiles for small faces (``"auto"``: photos of any size
            with a tile level, video frames from 1400 px; True, False).
        threads: onnxruntime threads per session (None = onnxruntime's default).
        max_pixels: refuse images larger than this (decompression-bomb guard).
        smile_threshold: ``smile >= smile_threshold`` counts as smiling, in every output
            (``smiling`` fields, drawings, video episodes); recorded in each result's meta.
        device: where the models run: ``"cpu"`` (default) or ``"cuda"`` (needs the
            ``[gpu]`` extra, onnxruntime-gpu; ``DeviceUnavailableError`` when the sessions
            are built without it).
        emotion_prior: class prior of the emotion probabilities: ``"balanced"`` (default:
            every expression equally likely, so weak anger, disgust or fear are not called
            ``neutral``; right for posed-expression sets), ``"natural"`` (FER+'s
            frequencies: the highest accuracy on everyday photos) or 8 weights in
            ``EMOTION_LABELS`` order (stored normalised, as a tuple); see
            ``duchenne.models.smile.emotion_offset``.
        rotations: when a photo shows no upright face (an upside-down scan, a sideways
            export without its EXIF orientation), also look for faces in it turned by 180,
            90 and 270 degrees, and report them in the photo's own pixels with the turn
            they were found in (each face's ``rotation``). Default on: the cost falls only
            on such photos: one with no face at all takes about 2.6 times as long (three
            more detector passes without the grey-border retry; measured on one thread:
            640x480 10 -> 27 ms). Photos only: video frames are never turned (see
            ``Analyzer.detect``).

    Example:
        >>> cfg = AnalyzerConfig(stages="detect,smile", max_faces=2)
        >>> cfg.stages
        ('detect', 'smile')
        >>> dataclasses.replace(cfg, stages=("geometry",)).stages
        ('detect', 'landmarks', 'geometry')
    """

    stages: tuple[str, ...] = STAGES
    detector: str = "auto"
    smile_model: str | Path | None = None
    max_faces: int | None = None
    min_face_size: float = 0.0
    min_score: float | None = None
    tile: bool | str = "auto"
    threads: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    smile_threshold: float = DEFAULT_SMILE_THRESHOLD
    device: str = "cpu"
    emotion_prior: EmotionPrior = "balanced"
    rotations: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", normalize_stages(self.stages))
        object.__setattr__(self, "emotion_prior", parse_emotion_prior(self.emotion_prior))
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if not isinstance(self.rotations, bool):
            raise ValueError(f"rotations must be True or False, got {self.rotations!r}")
        if self.tile not in (True, False, "auto"):
            raise ValueError(f"tile must be True, False or 'auto', got {self.tile!r}")
        if self.min_score is not None:
            if not 0.0 <= float(self.min_score) <= 1.0:
                raise ValueError(f"min_score must be in [0, 1] or None, got {self.min_score}")
            object.__setattr__(self, "min_score", float(self.min_score))
        if not 0.0 <= float(self.smile_threshold) <= 1.0:
            raise ValueError(f"smile_threshold must be in [0, 1], got {self.smile_threshold}")
        object.__setattr__(self, "smile_threshold", float(self.smile_threshold))
        # a negative max_faces would reach Python slicing and drop faces from the end
        for name in ("max_faces", "threads"):  # None: no limit, onnxruntime's default
            if (value := getattr(self, name)) is not None:
                object.__setattr__(self, name, whole_number(name, value, or_none=True))
        object.__setattr__(self, "max_pixels", whole_number("max_pixels", self.max_pixels))
        if not float(self.min_face_size) >= 0.0:
            raise ValueError(f"min_face_size must be >= 0, got {self.min_face_size}")

    @classmethod
    def build(cls, config: AnalyzerConfig | None = None, **options: Any) -> AnalyzerConfig:
        """``config`` (or the defaults) with ``options`` replaced: the one way every entry
        point (``Analyzer(...)``, ``batch.run(...)``) turns keyword options into a config.

        Raises:
            TypeError: ``config`` is not an ``AnalyzerConfig`` (``Analyzer("detect")``
                used to fail later with an ``AttributeError``), or an option that is not a
                field of ``AnalyzerConfig``.
        """
        if config is not None and not isinstance(config, cls):
            raise TypeError(
                "the first argument is an AnalyzerConfig (or None), got "
                f"{type(config).__name__} {config!r}; give options as keywords, e.g. "
                "Analyzer(stages='detect', threads=1)"
            )
        base = cls() if config is None else config
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown Analyzer option(s) {sorted(unknown)}")
        return dataclasses.replace(base, **options) if options else base

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (job manifests, worker start-up messages)."""
        d = dataclasses.asdict(self)
        d["stages"] = list(self.stages)
        if isinstance(self.smile_model, Path):
            d["smile_model"] = str(self.smile_model)
        if isinstance(self.emotion_prior, tuple):
            d["emotion_prior"] = list(self.emotion_prior)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyzerConfig:
        """Inverse of :meth:`to_dict`; keys that are not fields are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def sessions(self) -> tuple[Any, ...]:
        """The values that decide the loaded sessions (two configs with equal ``sessions()``
        can share one analyzer's models)."""
        return tuple(getattr(self, name) for name in SESSION_FIELDS)
