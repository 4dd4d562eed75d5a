"""``duchenne.train.calibrate``: one calibration fit for new runs and shipped files."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.evaluation.metrics import fit_platt, group_weights, sigmoid
from duchenne.train.calibrate import Calibration, fit_calibration


def _mix(seed: int = 0) -> dict[str, np.ndarray]:
    """Two domains: 3,000 'crops' and 1,000 'photos' whose logits lean towards smiling,
    with 8-class votes on the crops only."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, 4_000)
    label = (rng.random(z.size) < sigmoid(z)).astype(int)
    domain = np.where(np.arange(z.size) < 3_000, "crops", "photos")
    logit = np.where(domain == "photos", z + 1.5, z) * 2.0
    emotion_logits = rng.normal(0.0, 1.0, (z.size, 8)) + np.log(np.linspace(8, 1, 8))
    votes = np.zeros((z.size, 8))
    for i in range(3_000):
        p = np.exp(emotion_logits[i]) / np.exp(emotion_logits[i]).sum()
        votes[i] = rng.multinomial(10, p)
    return {
        "label": label,
        "smile_logit": logit,
        "domain": domain,
        "votes": votes,
        "emotion_logits": emotion_logits,
    }


def test_fit_weights_each_domain_equally_and_fits_the_emotion_prior() -> None:
    mix = _mix()
    cal = fit_calibration(**mix)
    want = fit_platt(mix["label"], mix["smile_logit"], sample_weight=group_weights(mix["domain"]))
    assert (cal.temperature, cal.smile_bias) == pytest.approx(want)
    assert cal.temperature > 1.5 and cal.smile_bias < 0  # over-confident, leaning "smiling"
    assert cal.emotion_prior.argmax() == 0 and cal.emotion_prior.sum() == pytest.approx(1.0)
    assert cal.emotion_bias[7] > cal.emotion_bias[0]  # the rarest class gains most
    meta = cal.metadata()
    assert len(meta["duchenne.emotion_bias"].split(",")) == 8
    assert float(meta["duchenne.smile_bias"]) == pytest.approx(cal.smile_bias, rel=1e-5)


def test_smoke_sets_fall_back_without_crashing(caplog) -> None:
    mix = _mix(1)
    mix["votes"][:, 5] = 0.0  # a class nobody voted for: no balanced prior can be fitted
    mix["smile_logit"] = -mix["smile_logit"]  # an untrained net ranking backwards
    cal = fit_calibration(**mix)
    assert cal == Calibration() and "duchenne.emotion_bias" not in cal.metadata()
    assert "no emotion prior" in caplog.text and "not fitted" in caplog.text
