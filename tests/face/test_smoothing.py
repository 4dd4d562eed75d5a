"""One Euro filter: jitter removal, lag, vectorisation, timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.face.smoothing import OneEuroFilter, smoothing_factor

FPS = 30.0


def _run(f: OneEuroFilter, xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return np.stack([f(x, t) for x, t in zip(xs, ts, strict=True)])


def test_smoothing_factor_limits() -> None:
    assert smoothing_factor(1e9, 1 / 30) == pytest.approx(1.0)
    assert 0 < smoothing_factor(1.0, 1 / 30) < 0.2


def test_reduces_jitter_on_constant_signal() -> None:
    rng = np.random.default_rng(0)
    ts = np.arange(150) / FPS
    xs = 0.3 + rng.normal(0, 0.005, (150, 468, 3))
    ys = _run(OneEuroFilter(), xs, ts)
    assert ys.shape == xs.shape
    assert ys[30:].var() < 0.3 * xs[30:].var()
    assert abs(ys[30:].mean() - 0.3) < 1e-3


def test_little_lag_on_ramp() -> None:
    ts = np.arange(90) / FPS
    ramp = np.clip((ts - 1.0) * 0.5, 0.0, None)  # 0.5 face sizes per second from t = 1 s
    ys = _run(OneEuroFilter(), ramp[:, None], ts)[:, 0]
    slope_per_frame = 0.5 / FPS
    lag_frames = np.abs(ys[45:] - ramp[45:]).max() / slope_per_frame
    assert lag_frames < 1.5


def test_elementwise_independence_and_shape() -> None:
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 40))  # irregular frame intervals
    xs = rng.normal(0, 1, (40, 2, 3))
    together = _run(OneEuroFilter(beta=0.5), xs, ts)
    alone = _run(OneEuroFilter(beta=0.5), xs[:, 1:, :], ts)
    np.testing.assert_allclose(together[:, 1:, :], alone)


def test_scale_makes_filter_unit_free() -> None:
    rng = np.random.default_rng(2)
    ts = np.arange(60) / FPS
    xs = np.cumsum(rng.normal(0, 0.01, (60, 5)), axis=0)
    unit = _run(OneEuroFilter(), xs, ts)
    f = OneEuroFilter(scale=200.0)
    pixels = np.stack([f(x * 200.0, t) for x, t in zip(xs, ts, strict=True)])
    np.testing.assert_allclose(pixels / 200.0, unit, atol=1e-12)


def test_first_sample_passes_and_reset() -> None:
    f = OneEuroFilter()
    assert not f.initialized and f.shape is None
    np.testing.assert_array_equal(f(np.ones(3), 0.0), np.ones(3))
    f(np.zeros(3), 0.1)
    f.reset()
    np.testing.assert_array_equal(f(np.full(3, 7.0), 5.0), np.full(3, 7.0))


def test_timestamps() -> None:
    f = OneEuroFilter()
    f(np.zeros(2), 1.0)
    first = f(np.ones(2), 1.1)
    np.testing.assert_array_equal(f(np.full(2, 9.0), 1.1), first)  # duplicated frame
    with pytest.raises(ValueError, match="decrease"):
        f(np.ones(2), 1.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.ones(3), 1.2)


@pytest.mark.parametrize(
    "kwargs", [{"min_cutoff": 0}, {"d_cutoff": -1}, {"beta": -1}, {"scale": 0}]
)
def test_invalid_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        OneEuroFilter(**kwargs)
