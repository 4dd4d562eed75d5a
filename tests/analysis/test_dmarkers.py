"""D-Markers on synthetic signals with analytic values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from duchenne.analysis.dmarkers import (
    FEATURE_NAMES,
    PHASE_FEATURES,
    REFERENCE_FPS,
    compute_dmarkers,
    dmarker_vector,
    phase_features,
)
from duchenne.analysis.dynamics import SmileSignals, compute_signals
from duchenne.analysis.episodes import SmileEpisode, find_episodes

from .test_dynamics import smile_profile, synthetic_landmarks

FPS = 30.0


def _episode(onset: tuple, apex: tuple, offset: tuple, fps: float = FPS) -> SmileEpisode:
    return SmileEpisode(onset[0], offset[1], onset, apex, offset, apex[0], 0.1, 0.5, fps)


def _signals(d: np.ndarray, left: np.ndarray | None = None, right: np.ndarray | None = None):
    out = {"lip": d, "eyelid": d, "cheek": d}
    if left is not None:
        for r in ("lip", "eyelid", "cheek"):
            out[f"{r}_left"], out[f"{r}_right"] = left, right
    return out


def _whole(d: np.ndarray, fps: float = FPS) -> dict[str, float]:
    """Features of a phase spanning the whole signal (derivatives from the whole signal)."""
    feats = compute_dmarkers(
        _signals(d), _episode((0, len(d) - 1), (len(d) - 1,) * 2, (len(d) - 1,) * 2, fps), fps
    )
    return {k.split(".", 2)[2]: v for k, v in feats.items() if k.startswith("onset.lip.")}


def test_feature_names() -> None:
    assert len(PHASE_FEATURES) == 25 and len(FEATURE_NAMES) == 225
    assert len(set(FEATURE_NAMES)) == 225
    assert FEATURE_NAMES[0] == "onset.lip.duration_pos"
    assert FEATURE_NAMES[-1] == "offset.cheek.asymmetry"


def test_linear_ramp() -> None:
    k = 0.6  # amplitude units per second
    n = 31
    d = 0.5 + k * np.arange(n) / FPS
    f = _whole(d)
    assert f["duration"] == pytest.approx(1.0)
    assert f["duration_pos"] == pytest.approx(1.0)
    assert f["duration_neg"] == 0.0
    assert f["duration_ratio_pos"] == 1.0 and f["duration_ratio_neg"] == 0.0
    assert f["speed_max_pos"] == pytest.approx(k) and f["speed_mean_pos"] == pytest.approx(k)
    assert f["speed_max_neg"] == 0.0 and f["speed_mean_neg"] == 0.0
    for name in ("accel_max_pos", "accel_max_neg", "accel_mean_pos", "accel_mean_neg"):
        assert f[name] == pytest.approx(0.0, abs=1e-9)
    assert f["amplitude_max"] == pytest.approx(1.1)
    assert f["amplitude_mean"] == pytest.approx(0.8)
    assert f["amplitude_std"] == pytest.approx(np.std(d))
    per_frame = REFERENCE_FPS / FPS  # sums over frames count as at 50 fps
    assert f["amplitude_total_pos"] == pytest.approx(d[1:].sum() * per_frame)
    assert f["amplitude_mean_pos"] == pytest.approx(d[1:].mean())
    assert f["amplitude_total_neg"] == 0.0 and f["amplitude_mean_neg"] == 0.0
    assert f["amplitude_net"] == pytest.approx(d[1:].sum() * per_frame)
    assert f["amplitude_ratio_pos"] == 1.0 and f["amplitude_ratio_neg"] == 0.0
    assert f["net_amplitude_per_duration"] == pytest.approx(d[1:].sum() * per_frame / 1.0)
    assert f["asymmetry"] == 0.0


def test_triangle_phases() -> None:
    up = np.linspace(0.5, 0.8, 16)  # 15 intervals of 0.02
    d = np.concatenate([up, up[::-1][1:]])
    ep = _episode((0, 15), (15, 15), (15, 30))
    feats = compute_dmarkers(_signals(d), ep, FPS)
    slope = 0.02 * FPS
    assert feats["onset.lip.duration_pos"] == pytest.approx(0.5)
    assert feats["onset.lip.speed_mean_pos"] == pytest.approx(slope)  # the peak frame has V = 0
    assert feats["offset.lip.duration_neg"] == pytest.approx(0.5)
    assert feats["offset.lip.duration_pos"] == 0.0
    assert feats["offset.lip.speed_max_neg"] == pytest.approx(slope)
    per_frame = REFERENCE_FPS / FPS
    assert feats["offset.lip.amplitude_total_neg"] == pytest.approx(d[16:].sum() * per_frame)
    assert feats["offset.lip.amplitude_net"] == pytest.approx(-d[16:].sum() * per_frame)
    assert feats["offset.lip.amplitude_ratio_neg"] == 1.0
    assert all(feats[f"apex.lip.{n}"] == 0.0 for n in PHASE_FEATURES)  # empty apex


def test_sinusoid_max_speed_and_acceleration() -> None:
    amp, freq, fps = 0.1, 1.5, 120.0
    omega = 2 * np.pi * freq
    t = np.arange(int(2 * fps)) / fps
    f = _whole(0.6 + amp * np.sin(omega * t), fps)
    assert f["speed_max_pos"] == pytest.approx(amp * omega, rel=0.01)
    assert f["speed_max_neg"] == pytest.approx(amp * omega, rel=0.01)
    assert f["speed_mean_pos"] == pytest.approx(2 / np.pi * amp * omega, rel=0.03)
    assert f["accel_max_pos"] == pytest.approx(amp * omega**2, rel=0.02)
    assert f["duration_ratio_pos"] == pytest.approx(0.5, abs=0.02)
    assert f["amplitude_ratio_pos"] == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("fps", [25.0, 50.0])
def test_durations_follow_frame_counts_and_fps(fps: float) -> None:
    d = np.concatenate([np.linspace(0.5, 0.7, 11), np.full(9, 0.7), np.linspace(0.7, 0.5, 21)[1:]])
    ep = _episode((0, 10), (10, 19), (19, 39), fps)
    feats = compute_dmarkers(_signals(d), ep, fps)
    assert feats["onset.lip.duration"] == pytest.approx(10 / fps)
    assert feats["apex.lip.duration"] == pytest.approx(9 / fps)
    assert feats["apex.lip.duration_pos"] == 0.0 and feats["apex.lip.duration_neg"] == 0.0
    assert feats["apex.lip.duration_ratio_pos"] == 0.0  # flat steps are neither D+ nor D-
    assert feats["offset.lip.duration_neg"] == pytest.approx(20 / fps)
    assert feats["offset.lip.speed_max_neg"] == pytest.approx(0.01 * fps)


def test_asymmetry() -> None:
    d = np.linspace(0.5, 0.7, 21)
    ep = _episode((0, 20), (20, 20), (20, 20))
    same = compute_dmarkers(_signals(d, d, d.copy()), ep, FPS)
    assert same["onset.lip.asymmetry"] == 0.0
    shifted = compute_dmarkers(_signals(d, d + 0.03, d - 0.01), ep, FPS)
    assert shifted["onset.eyelid.asymmetry"] == pytest.approx(0.04)
    assert compute_dmarkers(_signals(d), ep, FPS)["onset.cheek.asymmetry"] == 0.0


def test_empty_and_flat_phases_never_nan() -> None:
    assert phase_features(np.array([0.5]), np.zeros(1), np.zeros(1), FPS) == dict.fromkeys(
        PHASE_FEATURES, 0.0
    )
    flat = phase_features(np.zeros(10), np.zeros(10), np.zeros(10), FPS)
    assert flat["amplitude_ratio_pos"] == 0.0 and flat["speed_mean_pos"] == 0.0
    assert flat["duration"] == pytest.approx(9 / FPS)
    assert all(np.isfinite(v) for v in flat.values())


def test_full_pipeline_on_synthetic_face() -> None:
    profile = smile_profile()
    sig = compute_signals(synthetic_landmarks(profile)).smoothed(FPS)
    (ep,) = find_episodes(sig.lip, FPS)
    feats = compute_dmarkers(sig, ep, FPS)
    assert list(feats) == list(FEATURE_NAMES)
    assert all(isinstance(v, float) and np.isfinite(v) for v in feats.values())
    assert feats["onset.lip.speed_max_pos"] > 0
    assert feats["onset.eyelid.speed_max_neg"] > 0  # the eyes narrow during the onset
    assert feats["onset.cheek.duration_neg"] > feats["onset.cheek.duration_pos"]
    vec = dmarker_vector(sig, ep, FPS)
    assert vec.shape == (225,) and vec[0] == feats[FEATURE_NAMES[0]]
    json.dumps(feats)


def test_errors_and_nan_input() -> None:
    d = np.linspace(0.5, 0.7, 21)
    with pytest.raises(ValueError, match="outside"):
        compute_dmarkers(_signals(d), _episode((0, 30), (30, 30), (30, 30)), FPS)
    with pytest.raises(ValueError, match="eyelid"):
        compute_dmarkers({"lip": d}, _episode((0, 20), (20, 20), (20, 20)), FPS)
    with pytest.raises(ValueError, match="fps"):
        compute_dmarkers(_signals(d), _episode((0, 20), (20, 20), (20, 20)), 0)
    holes = d.copy()
    holes[5] = np.nan
    # NaN samples are interpolated for the derivatives of the phases clear of them ...
    feats = compute_dmarkers(_signals(holes), _episode((8, 20), (20, 20), (20, 20)), FPS)
    assert feats["onset.lip.speed_max_pos"] == pytest.approx(0.01 * FPS)
    # ... and a phase over one is not measured: None, not the interpolation's values
    feats = compute_dmarkers(_signals(holes), _episode((0, 20), (20, 20), (20, 20)), FPS)
    assert {feats[n] for n in FEATURE_NAMES if n.startswith("onset.")} == {None}
    assert all(np.isfinite(feats[n]) for n in FEATURE_NAMES if not n.startswith("onset."))


_SUMS = ("amplitude_total_pos", "amplitude_total_neg", "amplitude_net")


def _timed_smile(fps: float) -> tuple[SmileSignals, SmileEpisode, dict[str, float]]:
    """One smile defined in seconds (S-shaped onset 0.6 s, offset 0.8 s): its smoothed
    signals, its episode and its D-Markers at ``fps``."""
    t = np.arange(0.0, 4.0, 1.0 / fps)
    ramp = np.interp(t, [0.0, 1.0, 1.6, 2.5, 3.3, 4.0], [0, 0, 1, 1, 0, 0])
    sig = compute_signals(synthetic_landmarks(0.5 - 0.5 * np.cos(np.pi * ramp))).smoothed(fps)
    (ep,) = find_episodes(sig.lip, fps)
    return sig, ep, compute_dmarkers(sig, ep, fps)


def _paper_sums(d: np.ndarray, fps: float) -> dict[str, float]:
    """The paper's literal sums over the frames of one phase (exact at 50 fps)."""
    step = np.diff(d)
    pos, neg = d[1:][step > 0].sum(), np.abs(d[1:][step < 0]).sum()
    net = pos - neg
    return {
        "amplitude_total_pos": pos,
        "amplitude_total_neg": neg,
        "amplitude_net": net,
        "net_amplitude_per_duration": net * fps / len(step),
    }


def test_frame_rate_dependence_is_as_documented() -> None:
    """The same smile gives the same per-second features and (scaled) sums at 25 and
    50 fps, and at the paper's 50 fps the sums are the paper's literal formulas."""
    _, _, slow = _timed_smile(25.0)
    sig, ep, fast = _timed_smile(50.0)
    for phase in ("onset", "offset"):
        for region in ("lip", "eyelid", "cheek"):
            key = f"{phase}.{region}."
            for name in ("duration", "duration_pos", "duration_neg"):
                assert fast[key + name] == pytest.approx(slow[key + name], abs=1 / 25.0)
            per_second = ("speed_max_pos", "speed_max_neg", "speed_mean_pos", "speed_mean_neg")
            for name in (*per_second, "net_amplitude_per_duration"):
                assert fast[key + name] == pytest.approx(slow[key + name], rel=0.05, abs=1e-3)
            # the sums integrate the amplitude over the phase, so they also differ by the
            # frame grid's difference in phase duration (at most 1/25 s, checked above)
            grid = abs(fast[key + "duration"] - slow[key + "duration"]) * REFERENCE_FPS
            peak = max(abs(fast[key + "amplitude_max"]), abs(slow[key + "amplitude_max"]))
            for name in _SUMS:
                slack = 0.05 * abs(slow[key + name]) + grid * peak + 1e-3
                assert fast[key + name] == pytest.approx(slow[key + name], abs=slack)
            assert fast[key + "amplitude_mean"] == pytest.approx(
                slow[key + "amplitude_mean"], rel=0.01
            )
            # at the reference rate the values are the paper's, as before the scaling
            first, last = ep.phase(phase)
            d = sig.region(region)[0][first : last + 1]
            for name, value in _paper_sums(d, 50.0).items():
                assert fast[key + name] == pytest.approx(value, rel=1e-12, abs=1e-12)
