"""Amplitude signals, pose normalisation, smoothing and smile-episode segmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from duchenne.analysis.dynamics import (
    LANDMARKS,
    compute_signals,
    normalize_pose,
    resample_even,
    smooth_signal,
)
from duchenne.analysis.episodes import SmileEpisode, find_episodes, single_episode

FPS = 30.0

# Neutral face in pixels (image x right, y down; the subject's right eye is on the image left).
_NEUTRAL = {
    "nose_tip": (200.0, 210.0),
    "right_eye_outer": (155.0, 180.0),
    "right_eye_inner": (185.0, 180.0),
    "left_eye_inner": (215.0, 180.0),
    "left_eye_outer": (245.0, 180.0),
    "right_eyelid": (170.0, 172.0),
    "left_eyelid": (230.0, 172.0),
    "right_cheek": (160.0, 215.0),
    "left_cheek": (240.0, 215.0),
    "right_lip_corner": (180.0, 240.0),
    "left_lip_corner": (220.0, 240.0),
}


def synthetic_landmarks(
    smile: np.ndarray,
    au6: float = 1.0,
    roll_deg: np.ndarray | float = 0.0,
    scale: np.ndarray | float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    left_gain: float = 1.0,
) -> np.ndarray:
    """(T, 468, 3) landmarks of a face smiling with intensity ``smile[t]`` in [0, 1].

    Lip corners move 6 px outwards and 4 px up at full smile (the left one ``left_gain``
    times as far); with ``au6`` the eyelids drop 3 px and the cheeks rise 3 px. A roll,
    scale and shift are then applied to the whole face (head pose).
    """
    smile = np.asarray(smile, dtype=float)
    T = len(smile)
    rng = np.random.default_rng(0)
    base = np.concatenate([rng.uniform(150, 250, (468, 2)), np.zeros((468, 1))], axis=1)
    for name, xy in _NEUTRAL.items():
        base[LANDMARKS[name], :2] = xy
    pts = np.repeat(base[None], T, axis=0)
    s = smile[:, None]
    pts[:, LANDMARKS["right_lip_corner"], :2] += s * [-6.0, -4.0]
    pts[:, LANDMARKS["left_lip_corner"], :2] += left_gain * s * [6.0, -4.0]
    for side in ("right", "left"):
        pts[:, LANDMARKS[f"{side}_eyelid"], 1] += 3.0 * au6 * smile
        pts[:, LANDMARKS[f"{side}_cheek"], 1] -= 3.0 * au6 * smile
    theta = np.deg2rad(np.broadcast_to(roll_deg, (T,)))
    k = np.broadcast_to(scale, (T,))
    centre = np.array([200.0, 200.0])
    rel = pts[..., :2] - centre
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    x = cos * rel[..., 0] - sin * rel[..., 1]
    y = sin * rel[..., 0] + cos * rel[..., 1]
    pts[..., 0] = k[:, None] * x + centre[0] + shift[0]
    pts[..., 1] = k[:, None] * y + centre[1] + shift[1]
    return pts


def smile_profile(
    n_rest: int = 30, onset: int = 20, apex: int = 30, offset: int = 25, n_end: int = 35
) -> np.ndarray:
    """Piecewise-linear smile intensity 0 -> 1 -> 0 with known phase frames."""
    return np.concatenate(
        [
            np.zeros(n_rest),
            np.linspace(0, 1, onset + 1),
            np.ones(apex - 1),
            np.linspace(1, 0, offset + 1),
            np.zeros(n_end),
        ]
    )


def d_lip_profile(amplitude: float = 0.15, **kwargs: int) -> np.ndarray:
    """A D_lip signal: 0.5 at rest, 0.5 + amplitude at the apex."""
    return 0.5 + amplitude * smile_profile(**kwargs)


# ------------------------------------------------------------------------- signals


def test_neutral_values_and_smile_directions() -> None:
    sig = compute_signals(synthetic_landmarks(smile_profile()))
    assert sig.lip[0] == pytest.approx(0.5)
    assert sig.eyelid[0] == pytest.approx(8.0 / 30.0)  # lid 8 px above a 30 px wide eye
    assert sig.cheek[0] == pytest.approx(np.hypot(10, 35) / 30.0)
    apex = 55
    assert sig.lip[apex] == pytest.approx(np.hypot(26, 4) / 40)
    assert sig.eyelid[apex] == pytest.approx(5.0 / 30.0)
    assert sig.cheek[apex] < sig.cheek[0]
    np.testing.assert_allclose(sig.lip_left, sig.lip_right)
    np.testing.assert_allclose(sig.lip, 0.5 * (sig.lip_left + sig.lip_right))


def test_signals_invariant_to_roll_scale_translation() -> None:
    smile = smile_profile()
    T = len(smile)
    plain = compute_signals(synthetic_landmarks(smile))
    moved = compute_signals(
        synthetic_landmarks(
            smile,
            roll_deg=np.linspace(-15, 20, T),
            scale=np.linspace(0.7, 1.6, T),
            shift=(40.0, -25.0),
        )
    )
    for name in ("lip", "eyelid", "cheek", "lip_left", "eyelid_right", "cheek_left"):
        np.testing.assert_allclose(getattr(moved, name), getattr(plain, name), atol=1e-9)


def test_normalize_pose_frame() -> None:
    lms = synthetic_landmarks(np.zeros(1), roll_deg=30.0, scale=2.0, shift=(10, 10))
    norm = normalize_pose(lms)
    assert norm.shape == (1, 468, 2)
    np.testing.assert_allclose(norm[0, LANDMARKS["nose_tip"]], [0, 0], atol=1e-12)
    eye_r = norm[0, [33, 133]].mean(axis=0)
    eye_l = norm[0, [362, 263]].mean(axis=0)
    np.testing.assert_allclose(eye_l - eye_r, [1.0, 0.0], atol=1e-12)
    assert normalize_pose(lms[0]).shape == (468, 2)


def test_eyelid_sign_below_corner_line() -> None:
    lms = synthetic_landmarks(np.zeros(2))
    lms[1, LANDMARKS["right_eyelid"], 1] = 185.0  # 5 px below the corner line
    sig = compute_signals(lms)
    assert sig.eyelid_right[1] == pytest.approx(-5.0 / 30.0)
    assert sig.eyelid_left[1] > 0


def test_asymmetric_smile_shows_in_side_signals() -> None:
    sig = compute_signals(synthetic_landmarks(smile_profile(), left_gain=0.3))
    assert sig.lip_right[55] - sig.lip_right[0] > 2 * (sig.lip_left[55] - sig.lip_left[0])


def test_missing_frames_and_reference() -> None:
    lms = synthetic_landmarks(smile_profile())
    lms[0] = np.nan
    lms[40:43] = np.nan
    sig = compute_signals(lms)
    assert sig.reference_frame == 1
    assert np.isnan(sig.lip[41]) and np.isfinite(sig.lip[39])
    filled = sig.smoothed(FPS)
    assert np.all(np.isfinite(filled.lip)) and filled.reference_frame == 1
    json.dumps(sig.to_dict())
    # the filled frames are not observations: the smoothed copy says which they were
    hidden = np.zeros(len(lms), bool)
    hidden[[0, 40, 41, 42]] = True
    assert np.array_equal(sig.observed_frames(), ~hidden)
    # a leading gap stays unobserved; 3 frames inside (0.1 s at 30 fps) are bridged
    assert np.array_equal(filled.observed_frames(), np.arange(len(lms)) != 0)
    assert not sig.smoothed(20.0).observed_frames()[40:43].any()  # 0.15 s at 20 fps
    kept = filled.smoothed(FPS).observed_frames()
    assert np.array_equal(kept, filled.observed_frames())
    doc = json.loads(json.dumps(filled.to_dict()))
    assert doc["observed"] == filled.observed_frames().tolist() and None not in doc["lip"]
    with pytest.raises(ValueError, match="observed"):
        type(filled)(**{**vars(filled), "observed": ~hidden[1:]}).observed_frames()
    with pytest.raises(ValueError, match="missing"):
        compute_signals(lms, reference_frame=0)
    with pytest.raises(ValueError, match="468"):
        compute_signals(np.zeros((5, 10, 2)))
    with pytest.raises(ValueError, match="region"):
        sig.region("nose")


# ------------------------------------------------------------------------- smoothing


def test_smoothing_preserves_lines_and_removes_spikes() -> None:
    line = np.linspace(0.5, 0.7, 60)
    np.testing.assert_allclose(smooth_signal(line, FPS, 0.1), line, atol=1e-12)
    np.testing.assert_allclose(smooth_signal(np.full(10, 0.5), FPS, method="4253h"), 0.5)
    spiky = np.full(30, 0.5)
    spiky[10] = 0.9
    assert np.abs(smooth_signal(spiky, FPS, method="4253h") - 0.5).max() < 1e-12
    gaps = np.array([np.nan, 1.0, np.nan, 3.0, np.nan])
    np.testing.assert_allclose(smooth_signal(gaps, FPS, method="none"), [1, 1, 2, 3, 3])
    with pytest.raises(ValueError):
        smooth_signal(line, FPS, method="median")


def test_smoothing_reduces_noise() -> None:
    rng = np.random.default_rng(0)
    noisy = 0.5 + rng.normal(0, 0.01, 300)
    for method in ("gaussian", "4253h"):
        assert smooth_signal(noisy, FPS, method=method).std() < 0.6 * noisy.std()


# ------------------------------------------------------------------------- resampling


def test_even_frames_are_not_resampled() -> None:
    """Frames 1/fps apart, also with timestamp jitter, keep their samples (the dynamics of
    constant-rate video are unchanged); so do times out of order."""
    rng = np.random.default_rng(0)
    even = np.arange(90) / FPS
    jittered = even + rng.uniform(-0.1, 0.1, 90) / FPS
    x = np.sin(even)
    assert resample_even(even, x, FPS) is None
    assert resample_even(jittered, x, FPS) is None
    assert resample_even(np.array([0.0, 0.1, 0.1, 0.3]), np.zeros(4), 10.0) is None


def test_uneven_frames_are_put_on_an_even_grid() -> None:
    """30 then 15 frames/s (a phone in low light): the samples are moved onto times 1/fps
    apart over the frames' span, each column linearly interpolated."""
    times = np.concatenate([np.arange(30) / 30, 1.0 + np.arange(16) / 15])
    values = np.column_stack([2.0 * times, times**2])
    grid, out = resample_even(times, values, FPS)
    np.testing.assert_allclose(grid, np.arange(61) / FPS, atol=1e-12)
    np.testing.assert_allclose(out[:, 0], 2.0 * grid, atol=1e-12)  # a line stays exact
    np.testing.assert_allclose(out[:, 1], grid**2, atol=0.5 * (1 / 15) ** 2)
    assert out.shape == (61, 2)


def test_a_hidden_stretch_stays_a_gap_on_the_grid() -> None:
    """Grid times next to a hidden frame (NaN) are NaN, not values made up across the gap;
    grid times on a known frame keep its value."""
    times = np.array([0.0, 0.1, 0.2, 0.4, 0.5, 0.6])
    x = np.array([0.0, 1.0, np.nan, 4.0, 5.0, 6.0])
    grid, out = resample_even(times, x, 20.0)
    assert len(grid) == 13
    known = np.isfinite(out)
    assert not known[(grid > 0.1 + 1e-9) & (grid < 0.4 - 1e-9)].any()
    np.testing.assert_allclose(out[known], [0.0, 0.5, 1.0, 4.0, 4.5, 5.0, 5.5, 6.0])


# ------------------------------------------------------------------------- episodes


def _assert_phases(ep: SmileEpisode, onset: tuple, apex: tuple, offset: tuple, tol: int) -> None:
    for got, want in ((ep.onset, onset), (ep.apex, apex), (ep.offset, offset)):
        assert abs(got[0] - want[0]) <= tol and abs(got[1] - want[1]) <= tol, (got, want)


def test_single_smile_phases_exact() -> None:
    d = d_lip_profile()  # onset 30..50, apex 50..80, offset 80..105
    eps = find_episodes(d, FPS)
    assert len(eps) == 1
    ep = eps[0]
    _assert_phases(ep, (30, 50), (50, 80), (80, 105), tol=1)
    assert ep.peak_amplitude == pytest.approx(0.15)
    assert ep.baseline == pytest.approx(0.5)
    assert 30 <= ep.peak_frame <= 80 and not ep.truncated
    assert ep.start_time == pytest.approx(ep.start_frame / FPS)
    assert ep.phase_duration("onset") == pytest.approx(20 / FPS, abs=1 / FPS)
    json.dumps(ep.to_dict())


def test_two_episodes_separated_by_rest() -> None:
    d = np.concatenate([d_lip_profile(0.12), d_lip_profile(0.2, onset=10, apex=5, offset=40)])
    eps = find_episodes(d, FPS)
    assert len(eps) == 2
    n1 = len(d_lip_profile())
    _assert_phases(eps[0], (30, 50), (50, 80), (80, 105), tol=1)
    _assert_phases(eps[1], (n1 + 30, n1 + 40), (n1 + 40, n1 + 45), (n1 + 45, n1 + 85), tol=1)
    assert eps[0].end_frame < eps[1].start_frame


def test_smiles_with_a_shallow_valley_are_split_at_the_valley() -> None:
    first = 0.5 + 0.15 * smile_profile(n_end=0)
    second = 0.5 + 0.1 * smile_profile(n_rest=0)
    d = np.concatenate([first[:-2], second[2:]])  # valley at 0.512: below the exit level
    eps = find_episodes(d, FPS)
    assert len(eps) == 2
    valley = len(first) - 3
    assert abs(eps[0].end_frame - valley) <= 1 and abs(eps[1].start_frame - valley) <= 1
    assert eps[0].end_frame <= eps[1].start_frame


def test_smiles_whose_valley_stays_above_the_exit_level_form_one_episode() -> None:
    first = 0.5 + 0.15 * smile_profile(n_end=0)
    d = np.concatenate([first[:-10], 0.56 + 0.1 * smile_profile(n_rest=0)[6:]])
    (ep,) = find_episodes(d, FPS)
    assert ep.onset == (30, 50)  # the larger rise


def test_noise_robustness() -> None:
    rng = np.random.default_rng(7)
    clean = d_lip_profile()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        noisy = clean + rng.normal(0, 0.004, len(clean))
        eps = find_episodes(smooth_signal(noisy, FPS, 0.05), FPS)
        assert len(eps) == 1
        _assert_phases(eps[0], (30, 50), (50, 80), (80, 105), tol=3)


def test_no_smile_and_short_blips() -> None:
    rng = np.random.default_rng(1)
    assert find_episodes(0.5 + rng.normal(0, 0.003, 200), FPS) == []
    blip = np.full(100, 0.5)
    blip[50:53] = 0.6  # 0.1 s < min_duration
    assert find_episodes(blip, FPS) == []
    assert len(find_episodes(blip, FPS, min_duration=0.05)) == 1


def test_truncated_episode_at_clip_end() -> None:
    d = d_lip_profile()[:70]  # ends during the apex
    (ep,) = find_episodes(d, FPS)
    assert ep.truncated
    assert ep.offset == (69, 69)
    assert ep.apex[1] == 69


def test_single_episode_whole_clip() -> None:
    d = d_lip_profile(n_rest=5, n_end=5)
    ep = single_episode(d, FPS)
    assert ep.start_frame == 0 and ep.end_frame == len(d) - 1
    _assert_phases(ep, (5, 25), (25, 55), (55, 80), tol=1)


def test_find_episodes_validation() -> None:
    with pytest.raises(ValueError):
        find_episodes(np.zeros(10), 0)
    with pytest.raises(ValueError):
        find_episodes(np.zeros(10), FPS, hysteresis=2)
    with pytest.raises(ValueError):
        SmileEpisode(0, 1, (0, 1), (1, 1), (1, 1), 1, 0.1, 0.5, FPS).phase("peak")
