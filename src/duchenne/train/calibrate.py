"""Calibration of a smile/emotion model on its validation mix, and its ONNX metadata.

One fit for freshly trained nets (``ladder.calibrate_on_valid``, on torch outputs) and for
already-shipped files (``scripts/calibrate_shipped.py``, on the ONNX outputs as inference
computes them): both hand raw outputs to :func:`fit_calibration` and write
:meth:`Calibration.metadata` into the file, which ``duchenne.models.smile.SmileModel``
reads back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from duchenne.evaluation.metrics import class_prior, fit_class_bias, fit_platt, group_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """What turns raw outputs into calibrated ones.

    Attributes:
        temperature, smile_bias: ``smile = sigmoid(smile_logit / temperature + smile_bias)``.
        emotion_bias: (8,) offset making ``softmax(emotion_logits + emotion_bias)`` the
            posterior under equal class frequencies; None: not fitted (raw softmax).
        emotion_prior: (8,) the validation set's class frequencies (of plurality labels:
            the ``natural`` prior).
    """

    temperature: float = 1.0
    smile_bias: float = 0.0
    emotion_bias: np.ndarray | None = None
    emotion_prior: np.ndarray | None = None

    def metadata(self) -> dict[str, str]:
        """The ``duchenne.*`` calibration keys of the ONNX metadata."""
        meta = {
            "duchenne.temperature": f"{float(self.temperature):.6g}",
            "duchenne.smile_bias": f"{float(self.smile_bias):.6g}",
        }
        if self.emotion_bias is not None and self.emotion_prior is not None:
            meta["duchenne.emotion_bias"] = _vector(self.emotion_bias)
            meta["duchenne.emotion_prior"] = _vector(self.emotion_prior)
        return meta


def _vector(values: np.ndarray) -> str:
    """A float vector as metadata text (comma-separated, 6 significant digits)."""
    return ",".join(f"{float(v):.6g}" for v in values)


def fit_calibration(
    label: np.ndarray,
    smile_logit: np.ndarray,
    domain: np.ndarray,
    votes: np.ndarray,
    emotion_logits: np.ndarray,
) -> Calibration:
    """Fit the smile's Platt scaling (each domain weighted equally, so 0.5 means the same
    on a 48 px crop and on a photo) and the emotion prior on the rows with votes (class-
    balanced against their plurality labels; ``emotion_prior``: the plurality labels'
    frequencies).

    Args:
        label: (n,) 0/1 smile labels; smile_logit: (n,) raw logits.
        domain: (n,) the source of each row (e.g. ``ferplus_valid``, ``mtfl_calib``).
        votes: (n, 8) emotion vote distributions, all-zero rows where there are none.
        emotion_logits: (n, 8) raw emotion logits.
    """
    try:
        temperature, smile_bias = fit_platt(
            label.astype(int), smile_logit.reshape(-1), sample_weight=group_weights(domain)
        )
    except ValueError as exc:  # one class only, or an untrained net ranking backwards
        log.warning("smile calibration not fitted (%s): temperature 1, bias 0", exc)
        temperature, smile_bias = 1.0, 0.0
    voted = votes.sum(axis=1) > 0
    # The plurality label, not the vote distribution: with class-balanced weights a soft
    # target multiplies every minority vote by 1 / its class's share, so the rare classes
    # that annotators add to neutral faces (contempt, sadness) would be pushed far more
    # than their recall needs (measured on FER+ Test: lower accuracy, lower macro F1).
    label_emotion = votes[voted].argmax(axis=1)
    prior = class_prior(label_emotion, votes.shape[1]) if voted.any() else None
    if prior is None or prior.min() <= 0:  # tiny smoke sets: the raw softmax ships
        log.warning(
            "not every emotion is a plurality label in the calibration set; no emotion prior"
        )
        return Calibration(temperature, smile_bias)
    bias = fit_class_bias(label_emotion, emotion_logits[voted])
    return Calibration(temperature, smile_bias, bias, prior)
