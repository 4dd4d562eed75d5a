"""Smile/emotion models of the size ladder: preprocessing, inference and calibration.

Outputs per face crop (see ``MODEL_CARD.md``):
- ``smile``: calibrated probability that the face smiles, ``sigmoid(logit / T + b)`` with the
  temperature ``T`` and bias ``b`` fitted on a validation mix of domains (Platt scaling,
  ``duchenne.evaluation.metrics.fit_platt``) and stored in the ONNX metadata
  (``duchenne.temperature``, ``duchenne.smile_bias``; files without a bias get 0).
- ``smile_score``: ``1 + 9 * intensity`` where ``intensity`` is the model's estimate of the
  share of annotators who would call the face happy (FER+ happiness vote fraction). So a 1
  means nobody would, a 10 means everybody would; it grows monotonically with intensity.
- ``emotion``: softmax over the 8 FER+ classes (``duchenne.faces.EMOTION_LABELS``), under
  the class prior ``emotion_prior`` asks for (see :func:`emotion_offset`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from duchenne.errors import UnrecognizedModelError
from duchenne.models.registry import create_model, default_smile_model
from duchenne.models.session import OnnxModel

TASK = "smile_emotion"
#: The graph outputs the contract names (``notes/CONTRACTS.md``); outputs are read by name.
OUTPUTS = ("smile_logit", "intensity", "emotion_logits")

FRAMING_METADATA = {"duchenne.iod_fraction": "iod_fraction", "duchenne.eye_y": "eye_y"}
"""ONNX metadata of a model's crop framing -> the aligner's field (``AlignConfig``). A
model without them takes the canonical framing (every model before the framing option)."""
FRAMING_BOUNDS = {"iod_fraction": (0.1, 0.9), "eye_y": (-0.2, 0.8)}
"""Closed range of each framing field, checked when a model file is opened (``AlignConfig``
would cut a degenerate or off-image crop without complaint). The same ranges as
``analysis.crop_format.CropFormat``'s check; they live here because ``models`` is below
``analysis`` in the layering, so ``CropFormat`` can import them but not the reverse."""
#: Crops per onnxruntime call, by device. On the CPU a few at a time: larger calls cost more
#: per crop (measured, smile_s, one thread: 0.38 ms per crop in calls of 4, 0.66 ms in
#: calls of 16, 0.71 ms in one call of 58: the activations of many crops outgrow the
#: cache); a GPU takes a large batch at once.
CROP_BATCH = {"cpu": 4, "cuda": 64}
#: Named class priors for the emotion head (see :func:`emotion_offset`).
EMOTION_PRIORS = ("balanced", "natural")
N_EMOTIONS = 8

EmotionPrior = str | tuple[float, ...]


def parse_emotion_prior(value: str | Sequence[float]) -> EmotionPrior:
    """``"balanced"``, ``"natural"``, or 8 non-negative class weights (a sequence or a
    comma-separated string, FER+ order) normalised to sum 1; the one validation every entry
    point (config, CLI, evaluation) uses.

    Raises:
        ValueError: an unknown name, not 8 weights, a negative or non-finite weight, or
            all zero.
    """
    if isinstance(value, str):
        if value in EMOTION_PRIORS:
            return value
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(
                f"emotion prior must be one of {EMOTION_PRIORS} or {N_EMOTIONS} "
                f"comma-separated weights, got {value!r}"
            ) from None
    weights = np.asarray(value, dtype=np.float64)
    if weights.shape != (N_EMOTIONS,) or not np.all(np.isfinite(weights)):
        raise ValueError(f"an emotion prior needs {N_EMOTIONS} finite weights, got {value!r}")
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"emotion prior weights must be >= 0 and not all 0, got {value!r}")
    return tuple(float(w) for w in weights / weights.sum())


def emotion_offset(bias: np.ndarray, training_prior: np.ndarray, prior: EmotionPrior) -> np.ndarray:
    """What to add to the emotion logits so the softmax is the posterior under ``prior``.

    Why: the training data are skewed (FER+: a third neutral, 2% disgust, 2% contempt) and
    a network learns that skew, so weak anger, disgust or fear come out as ``neutral``.
    ``bias`` (metadata ``duchenne.emotion_bias``) was fitted on the validation split with
    class-balanced weights (``fit_class_bias``): ``logits + bias`` is the posterior under
    equal class frequencies, ``"balanced"``, right for posed-expression sets. Adding
    ``log(prior)`` moves it to any other prior (Saerens et al. 2002): ``"natural"`` is
    FER+ Valid's own (metadata ``duchenne.emotion_prior``, what web photos of people
    show, the highest overall accuracy), a tuple is the user's. Files without the
    metadata get a zero bias, so their raw softmax comes back under every prior.
    """
    if prior == "balanced":
        return bias
    weights = training_prior if prior == "natural" else np.asarray(prior, np.float64)
    return bias + np.log(np.clip(weights, 1e-12, None))


def _metadata_number(
    name: object,
    meta: dict[str, str],
    key: str,
    default: float,
    *,
    bounds: tuple[float, float] = (-math.inf, math.inf),
    positive: bool = False,
) -> float:
    """A finite float from the model metadata (``default`` when absent), within the closed
    ``bounds`` and, with ``positive``, above 0.

    Why at load time: a bad value would otherwise surface later as a numpy warning, NaN
    probabilities or a silently wrong crop, far from the file that caused it.

    Raises:
        UnrecognizedModelError: not a number, not finite or out of range (the message
            names the file and the key).
    """
    if key not in meta:
        return default
    try:
        value = float(meta[key])
    except ValueError:
        value = math.nan
    low, high = bounds
    if not (math.isfinite(value) and low <= value <= high and (value > 0 or not positive)):
        rule = " > 0" if positive else f" in [{low}, {high}]" if math.isfinite(low) else ""
        raise UnrecognizedModelError(
            f"{name}: metadata {key}={meta[key]!r} must be a finite number{rule}"
        )
    return value


def _metadata_vector(
    name: object, meta: dict[str, str], key: str, default: np.ndarray
) -> np.ndarray:
    """A comma-separated float vector from the model metadata (``default`` when absent).

    Raises:
        UnrecognizedModelError: not ``len(default)`` finite numbers (names file and key).
    """
    if key not in meta:
        return default
    try:
        values = np.array([float(v) for v in meta[key].split(",")], np.float64)
    except ValueError:
        values = np.full(0, np.nan)
    if values.shape != default.shape or not np.all(np.isfinite(values)):
        raise UnrecognizedModelError(
            f"{name}: metadata {key}={meta[key]!r} must hold {len(default)} finite numbers"
        )
    return values


def _metadata_int(name: object, meta: dict[str, str], key: str, default: int | None) -> int:
    """A positive integer from the model metadata (``default`` when absent; None: required).

    Raises:
        UnrecognizedModelError: missing (without a default), not an integer, or < 1.
    """
    if key not in meta and default is not None:
        return default
    text = meta.get(key)
    if text is None or not text.strip().isdecimal() or int(text) < 1:
        raise UnrecognizedModelError(f"{name}: metadata {key}={text!r} must be an integer >= 1")
    return int(text)


def _check_graph(name: object, model: OnnxModel, input_size: int, channels: int) -> None:
    """The graph must take (batch, channels, input_size, input_size) and give the contract's
    ``OUTPUTS``; symbolic dimensions pass.

    Why: metadata that disagrees with the graph would cut crops of the wrong side or
    colour, and a missing output fails only on the first face, as a bare onnxruntime or
    ``KeyError``; checked once at load, the message names the file.

    Raises:
        UnrecognizedModelError: another input shape or another set of outputs.
    """
    shape = model.input_shape
    want = (None, channels, input_size, input_size)
    if len(shape) != 4 or any(
        isinstance(d, int) and w is not None and d != w for d, w in zip(shape, want, strict=True)
    ):
        raise UnrecognizedModelError(
            f"{name}: graph input shape {list(shape)} does not match metadata "
            f"duchenne.channels={channels}, duchenne.input_size={input_size} "
            "(expected [batch, channels, size, size])"
        )
    if sorted(model.output_names) != sorted(OUTPUTS):
        raise UnrecognizedModelError(
            f"{name}: graph outputs {model.output_names} are not the contract's {list(OUTPUTS)}"
        )
    emotion = next(o for o in model.session.get_outputs() if o.name == "emotion_logits")
    width = emotion.shape[-1] if emotion.shape else None
    if isinstance(width, int) and width != N_EMOTIONS:  # a 7-class head broke numpy later
        raise UnrecognizedModelError(
            f"{name}: emotion_logits has {width} classes, the contract's {N_EMOTIONS} (FER+)"
        )


@dataclass
class SmileOutputs:
    """Per-crop results: smile (n,), smile_score (n,), emotion (n, 8)."""

    smile: np.ndarray
    smile_score: np.ndarray
    emotion: np.ndarray


def intensity_to_score(intensity: np.ndarray) -> np.ndarray:
    """Map the happiness vote fraction in [0, 1] to the 1..10 smile score (monotone, linear)."""
    return 1.0 + 9.0 * np.clip(intensity, 0.0, 1.0)


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, k) logits (max subtracted first, so large logits do not overflow)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SmileModel:
    """One smile/emotion model of the ladder (a registry name or a path to an ``.onnx``).

    ``emotion_prior`` sets the class prior of the emotion probabilities (see
    :func:`emotion_offset`): ``"balanced"`` (the default: every expression equally likely
    a priori, so rare ones do not collapse into ``neutral``), ``"natural"`` (FER+'s
    frequencies: highest accuracy on everyday photos, where most faces are neutral or
    happy) or 8 weights in ``EMOTION_LABELS`` order. The smile and the score do not
    depend on it.

    Example:
        >>> model = SmileModel()                     # the default variant
        >>> crops = np.zeros((2, model.input_size, model.input_size, 3), np.uint8)
        >>> model(crops).smile.shape
        (2,)
    """

    def __init__(
        self,
        name: str | Path | None = None,
        *,
        threads: int | None = None,
        flip: bool = True,
        device: str = "cpu",
        emotion_prior: str | Sequence[float] = "balanced",
    ) -> None:
        name = name or default_smile_model()
        if name is None:
            raise UnrecognizedModelError("no smile model ships with this installation")
        self.name = Path(name).stem if str(name).endswith(".onnx") else str(name)
        # names of this task only: an unknown one is not told of face models it would refuse
        self.model = create_model(name, threads=threads, device=device, task=TASK)
        meta = self.model.metadata
        if meta.get("duchenne.task") != TASK:
            raise UnrecognizedModelError(
                f"{name}: not a duchenne smile model (metadata duchenne.task is "
                f"{meta.get('duchenne.task')!r}, not {TASK!r})"
            )
        self.input_size = _metadata_int(name, meta, "duchenne.input_size", None)
        self.channels = _metadata_int(name, meta, "duchenne.channels", 1)
        if self.channels not in (1, 3):
            raise UnrecognizedModelError(f"{name}: duchenne.channels must be 1 or 3")
        _check_graph(name, self.model, self.input_size, self.channels)
        self.framing = {
            field: _metadata_number(name, meta, key, math.nan, bounds=FRAMING_BOUNDS[field])
            for key, field in FRAMING_METADATA.items()
            if key in meta
        }
        self.mean = _metadata_number(name, meta, "duchenne.mean", 0.5)
        self.std = _metadata_number(name, meta, "duchenne.std", 0.5, positive=True)
        self.temperature = _metadata_number(name, meta, "duchenne.temperature", 1.0, positive=True)
        self.smile_bias = _metadata_number(name, meta, "duchenne.smile_bias", 0.0)
        self.flip = flip
        self.emotion_bias = _metadata_vector(
            name, meta, "duchenne.emotion_bias", np.zeros(N_EMOTIONS)
        )
        self.training_prior = _metadata_vector(
            name, meta, "duchenne.emotion_prior", np.full(N_EMOTIONS, 1.0 / N_EMOTIONS)
        )
        if np.any(self.training_prior < 0) or self.training_prior.sum() <= 0:
            raise UnrecognizedModelError(
                f"{name}: metadata duchenne.emotion_prior must be >= 0 and not all 0"
            )
        self.emotion_prior = parse_emotion_prior(emotion_prior)
        self.emotion_offset = emotion_offset(
            self.emotion_bias, self.training_prior, self.emotion_prior
        )

    def with_prior(self, emotion_prior: str | Sequence[float]) -> SmileModel:
        """This model (the same ONNX session) under another emotion prior; ``self`` when
        the prior is already this one's."""
        prior = parse_emotion_prior(emotion_prior)
        if prior == self.emotion_prior:
            return self
        other = copy.copy(self)
        other.emotion_prior = prior
        other.emotion_offset = emotion_offset(self.emotion_bias, self.training_prior, prior)
        return other

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """RGB uint8 crops (n, S, S, 3) (or grey (n, S, S)) -> normalised NCHW float32:
        (n, 1, S, S) grey for a grey model (``duchenne.channels`` 1, every shipped one),
        (n, 3, S, S) RGB for a colour model (grey crops repeated to three channels)."""
        if self.channels == 1:
            x = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) if c.ndim == 3 else c for c in crops])
            x = x[:, None]
        else:
            rgb = [np.repeat(c[..., None], 3, axis=2) if c.ndim == 2 else c for c in crops]
            x = np.stack(rgb).transpose(0, 3, 1, 2)
        return (x.astype(np.float32) / 255.0 - self.mean) / self.std

    def raw_outputs(
        self, crops: np.ndarray, batch_size: int | None = None
    ) -> dict[str, np.ndarray]:
        """The network's outputs before calibration: ``smile_logit`` (n,), ``intensity``
        (n,) and ``emotion_logits`` (n, 8), in chunks of ``batch_size`` (default: the
        device's ``CROP_BATCH``); what calibration is fitted on.

        With ``flip=True`` each crop is also run mirrored and the two outputs are
        averaged (test-time augmentation): faces are left-right symmetric, so this halves
        the model's sensitivity to which side a small artefact falls on, at twice the cost.
        """
        n = len(crops)
        if n == 0:
            return {
                "smile_logit": np.zeros(0, np.float32),
                "intensity": np.zeros(0, np.float32),
                "emotion_logits": np.zeros((0, N_EMOTIONS), np.float32),
            }
        x = self.preprocess(crops)
        if self.flip:
            x = np.concatenate([x, x[..., ::-1]])
        size = batch_size or CROP_BATCH.get(self.model.device, 64)
        out = self.model.run_chunked(np.ascontiguousarray(x), size)
        raw = {
            "smile_logit": out["smile_logit"].reshape(-1),
            "intensity": out["intensity"].reshape(-1),
            "emotion_logits": out["emotion_logits"],
        }
        if self.flip:
            raw = {k: (v[:n] + v[n:]) / 2 for k, v in raw.items()}
        return raw

    def __call__(self, crops: np.ndarray, batch_size: int | None = None) -> SmileOutputs:
        """Calibrated outputs on aligned crops (n, S, S, 3) (see :meth:`raw_outputs`)."""
        raw = self.raw_outputs(crops, batch_size)
        smile = 1.0 / (1.0 + np.exp(-(raw["smile_logit"] / self.temperature + self.smile_bias)))
        emotion = softmax(raw["emotion_logits"] + self.emotion_offset)
        return SmileOutputs(
            smile.astype(np.float32),
            intensity_to_score(raw["intensity"]).astype(np.float32),
            emotion.astype(np.float32),
        )
