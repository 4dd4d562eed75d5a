"""Smile/emotion models of the size ladder: preprocessing, inference and calibration.

Outputs per face crop (see ``MODEL_CARD.md``):
- ``smile``: calibrated probability that the face smiles, ``sigmoid(logit / T)`` with the
  temperature ``T`` fitted on the validation split and stored in the ONNX metadata.
- ``smile_score``: ``1 + 9 * intensity`` where ``intensity`` is the model's estimate of the
  share of annotators who would call the face happy (FER+ happiness vote fraction). So a 1
  means nobody would, a 10 means everybody would; it grows monotonically with intensity.
- ``emotion``: softmax over the 8 FER+ classes (``duchenne.faces.EMOTION_LABELS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from duchenne.errors import UnrecognizedModelError
from duchenne.models.registry import create_model, default_smile_model

TASK = "smile_emotion"
#: Crops per onnxruntime call, by device. On the CPU a few at a time: larger calls cost more
#: per crop (measured, smile_s, one thread: 0.38 ms per crop in calls of 4, 0.66 ms in
#: calls of 16, 0.71 ms in one call of 58: the activations of many crops outgrow the
#: cache); a GPU takes a large batch at once.
CROP_BATCH = {"cpu": 4, "cuda": 64}


@dataclass
class SmileOutputs:
    """Per-crop results: smile (n,), smile_score (n,), emotion (n, 8)."""

    smile: np.ndarray
    smile_score: np.ndarray
    emotion: np.ndarray


def intensity_to_score(intensity: np.ndarray) -> np.ndarray:
    """Map the happiness vote fraction in [0, 1] to the 1..10 smile score (monotone, linear)."""
    return 1.0 + 9.0 * np.clip(intensity, 0.0, 1.0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SmileModel:
    """One smile/emotion model of the ladder (a registry name or a path to an ``.onnx``).

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
    ) -> None:
        name = name or default_smile_model()
        if name is None:
            raise UnrecognizedModelError("no smile model ships with this installation")
        self.name = Path(name).stem if str(name).endswith(".onnx") else str(name)
        self.model = create_model(name, threads=threads, device=device)
        meta = self.model.metadata
        if meta.get("duchenne.task") != TASK:
            raise UnrecognizedModelError(
                f"{name}: not a duchenne smile model (metadata duchenne.task missing)"
            )
        self.input_size = int(meta["duchenne.input_size"])
        self.mean = float(meta.get("duchenne.mean", 0.5))
        self.std = float(meta.get("duchenne.std", 0.5))
        self.temperature = float(meta.get("duchenne.temperature", 1.0))
        self.flip = flip

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """RGB uint8 crops (n, S, S, 3) -> normalised gray NCHW float32 (n, 1, S, S)."""
        gray = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) if c.ndim == 3 else c for c in crops])
        x = gray.astype(np.float32) / 255.0
        return ((x - self.mean) / self.std)[:, None]

    def __call__(self, crops: np.ndarray, batch_size: int | None = None) -> SmileOutputs:
        """Run on aligned crops (n, S, S, 3) in chunks of ``batch_size`` (default: the
        device's ``CROP_BATCH``).

        With ``flip=True`` each crop is also run mirrored and the two outputs' logits are
        averaged (test-time augmentation): faces are left-right symmetric, so this halves
        the model's sensitivity to which side a small artefact falls on, at twice the cost.
        """
        if len(crops) == 0:
            return SmileOutputs(
                np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, 8), np.float32)
            )
        x = self.preprocess(crops)
        if self.flip:
            x = np.concatenate([x, x[..., ::-1]])
        size = batch_size or CROP_BATCH.get(self.model.device, 64)
        out = self.model.run_chunked(np.ascontiguousarray(x), size)
        logit = out["smile_logit"].reshape(-1)
        intensity = out["intensity"].reshape(-1)
        emotion_logits = out["emotion_logits"]
        if self.flip:
            n = len(crops)
            logit = (logit[:n] + logit[n:]) / 2
            intensity = (intensity[:n] + intensity[n:]) / 2
            emotion_logits = (emotion_logits[:n] + emotion_logits[n:]) / 2
        emotion = _softmax(emotion_logits)
        smile = 1.0 / (1.0 + np.exp(-logit / self.temperature))
        return SmileOutputs(
            smile.astype(np.float32),
            intensity_to_score(intensity).astype(np.float32),
            emotion.astype(np.float32),
        )
