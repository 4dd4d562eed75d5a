"""Duchenne marker, the unvalidated heuristic, logistic regression, fusion and CV."""

from __future__ import annotations

import json

import numpy as np
import pytest

from duchenne.analysis.authenticity import (
    DuchenneThresholds,
    assess_episode,
    duchenne_marker,
    genuineness,
)
from duchenne.analysis.authenticity_classifier import (
    AuthenticityClassifier,
    LogisticRegression,
    cross_validate,
    episode_deep_features,
)
from duchenne.analysis.dmarkers import DMARKER_VERSION
from duchenne.analysis.dynamics import compute_signals
from duchenne.analysis.episodes import find_episodes

from .test_dynamics import smile_profile, synthetic_landmarks

FPS = 30.0


def _smile(au6: float, onset: int = 20, offset: int = 25, left_gain: float = 1.0):
    profile = smile_profile(onset=onset, offset=offset)
    sig = compute_signals(synthetic_landmarks(profile, au6=au6, left_gain=left_gain)).smoothed(FPS)
    (ep,) = find_episodes(sig.lip, FPS)
    return sig, ep


def _separable(n: int = 80, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(0, 1, (n, d))
    X[:, 0] += np.where(y == 1, 3.0, -3.0)
    return X, y


# ------------------------------------------------------------------------- AU6 marker


def test_duchenne_marker_with_and_without_au6() -> None:
    genuine = duchenne_marker(*_smile(au6=1.0))
    lips_only = duchenne_marker(*_smile(au6=0.0))
    assert genuine.duchenne_marker and not lips_only.duchenne_marker
    assert genuine.eye_narrowing == pytest.approx(3.0 / 8.0, rel=0.1)  # 8 px lid -> 5 px
    assert genuine.cheek_raise > 0.05
    assert abs(lips_only.eye_narrowing) < 1e-6 and abs(lips_only.cheek_raise) < 1e-6
    assert genuine.au6_index > 0.9 and lips_only.au6_index == pytest.approx(0.0, abs=1e-9)
    json.dumps(genuine.to_dict())


def test_thresholds_are_configurable() -> None:
    sig, ep = _smile(au6=0.3)  # eyelid drop ~11 %, cheek raise ~2.4 %
    assert not duchenne_marker(sig, ep).duchenne_marker
    loose = DuchenneThresholds(eye_narrowing=0.05, cheek_raise=0.01)
    assert duchenne_marker(sig, ep, loose).duchenne_marker


def _timed_smile(fps: float) -> tuple:
    """One smile in seconds (rest 1 s, onset 0.6 s, apex 0.9 s, offset 0.8 s) at ``fps``."""
    t = np.arange(0.0, 4.0, 1.0 / fps)
    profile = np.interp(t, [0.0, 1.0, 1.6, 2.5, 3.3, 4.0], [0, 0, 1, 1, 0, 0])
    sig = compute_signals(synthetic_landmarks(profile, au6=0.5)).smoothed(fps)
    (ep,) = find_episodes(sig.lip, fps)
    return sig, ep


def test_duchenne_baseline_is_the_face_before_the_onset_at_any_frame_rate() -> None:
    # The baseline used to be the first 3 frames *of* the onset, already rising: it
    # underestimated the drop (3 px of an 8 px lid at au6=0.5 -> 1.5/8 = 0.1875), and
    # the more so the lower the frame rate.
    results = {fps: duchenne_marker(*_timed_smile(fps)) for fps in (25.0, 50.0, 100.0)}
    for fps, res in results.items():
        sig, _ = _timed_smile(fps)
        assert res.eyelid_baseline == pytest.approx(sig.eyelid[0], rel=5e-3)  # rest level
        assert res.cheek_baseline == pytest.approx(sig.cheek[0], rel=1e-3)
    eye = [r.eye_narrowing for r in results.values()]
    assert max(eye) - min(eye) < 0.015 * max(eye)  # was 3.4 % apart at 25 vs 100 fps
    assert min(eye) == pytest.approx(1.5 / 8.0, rel=0.03)


def test_genuineness_survives_a_lost_face_over_the_onset() -> None:
    # unsmoothed signals with NaN frames (face lost) over the whole onset: the relative
    # speed was NaN and the score a confident 0.0; then the onset of the straight line
    # drawn across the gap was scored. The onset is unknown now, and adds nothing.
    landmarks = synthetic_landmarks(smile_profile(), au6=1.0)
    landmarks[29:52] = np.nan
    raw = compute_signals(landmarks)
    (ep,) = find_episodes(raw.smoothed(FPS).lip, FPS)
    result = genuineness(raw, ep, FPS)
    assert all(np.isfinite(v) for v in result.contributions.values())
    assert result.cues["onset_duration"] is None and result.cues["onset_relative_speed"] is None
    assert result.contributions["onset"] == 0.0 and result.contributions["speed"] == 0.0
    assert 0.0 < result.score < 1.0
    assert result.score == pytest.approx(genuineness(raw.smoothed(FPS), ep, FPS).score, abs=0.01)


def test_genuineness_heuristic_is_flagged_and_ordered() -> None:
    slow_au6 = genuineness(*_smile(au6=1.0, onset=24, offset=30), FPS)
    fast_lips = genuineness(*_smile(au6=0.0, onset=6, offset=8, left_gain=0.4), FPS)
    assert slow_au6.method == fast_lips.method == "heuristic-unvalidated"
    assert 0.0 < fast_lips.score < 0.5 < slow_au6.score < 1.0
    assert fast_lips.cues["symmetry"] < 0.8 < slow_au6.cues["symmetry"]
    assert fast_lips.cues["onset_relative_speed"] > slow_au6.cues["onset_relative_speed"]
    assert set(slow_au6.contributions) == {"au6", "onset", "offset", "speed", "symmetry"}
    out = assess_episode(*_smile(au6=1.0), FPS).to_dict()
    assert out["duchenne_marker"] and out["genuineness_method"] == "heuristic-unvalidated"
    json.dumps(out)


def test_a_smile_seen_without_its_onset_gets_no_onset_terms() -> None:
    """Already smiling on the first frame: the empty onset scored as a 0 s onset (-4.6)
    with a zero speed (+4.6), which cancelled only with the default weights (speed -1,
    onset 1); with others the unseen onset moved the score. Like a missing offset, it
    contributes nothing now."""
    from duchenne.analysis.authenticity import HeuristicWeights

    sig, _ = _smile(au6=1.0)
    ep = find_episodes(sig.lip[60:], FPS)[0]  # the clip starts at the apex
    sig = type(sig)(**{k: v[60:] for k, v in vars(sig).items() if k != "reference_frame"})
    assert ep.onset[0] == ep.onset[1] and ep.truncated
    for weights in (HeuristicWeights(), HeuristicWeights(speed=-2.0, onset=0.5)):
        result = genuineness(sig, ep, FPS, weights=weights)
        assert result.contributions["onset"] == 0.0 and result.contributions["speed"] == 0.0
        z = sum(result.contributions.values())
        assert result.score == pytest.approx(1 / (1 + np.exp(-z)))
        assert result.contributions["offset"] != 0.0  # the offset was seen


def _from(sig, first: int):
    """The signals from frame ``first`` on (a face first seen there)."""
    return type(sig)(**{k: v[first:] for k, v in vars(sig).items() if k != "reference_frame"})


def test_a_smile_with_no_face_at_rest_before_it_has_an_unknown_au6() -> None:
    """Already smiling on the first frame, the AU6 baseline (the 0.1 s up to the onset) was
    the smile itself: "no" with an AU6 index of 0.00 for a full Duchenne smile, and -2 on
    the genuineness logit (and a perfect symmetry, +0.4, from the same baseline). Both are
    unknown now (None) and contribute nothing; so is a rise from the first frame (the face
    may have appeared mid-rise) and a baseline with no signal."""
    sig, whole = _smile(au6=1.0)
    assert duchenne_marker(sig, whole).duchenne_marker is True  # seen whole: measured
    on_first = whole.onset[0]
    eyelid = sig.eyelid.copy()
    eyelid[: on_first + 1] = np.nan  # the face lost over the baseline window
    lost = type(sig)(**{**vars(sig), "eyelid": eyelid})
    cases = [
        ("at the apex", _from(sig, 60)),  # empty onset
        ("mid-rise", _from(sig, on_first + 3)),  # the onset starts on the first frame
    ]
    cases = [(name, part, find_episodes(part.lip, FPS)[0]) for name, part in cases]
    for name, part, ep in [*cases, ("no baseline signal", lost, whole)]:
        marker = duchenne_marker(part, ep)
        assert marker.duchenne_marker is None and not marker.measurable, name
        assert set(marker.to_dict().values()) == {None}, name
        assert json.loads(json.dumps(marker.to_dict()))["au6_index"] is None
        result = assess_episode(part, ep, FPS)
        g = result.genuineness
        assert g.cues["au6_index"] is None and g.contributions["au6"] == 0.0, name
        assert g.score == pytest.approx(1 / (1 + np.exp(-sum(g.contributions.values()))))
        assert genuineness(part, ep, FPS).score == pytest.approx(g.score)
        if name != "no baseline signal":  # the lip corners' baseline is the smile too
            assert g.cues["symmetry"] is None and g.contributions["symmetry"] == 0.0
        json.dumps(result.to_dict())


# ------------------------------------------------------------------------- classifiers


def test_logistic_regression_learns_separable_problem() -> None:
    X, y = _separable()
    clf = LogisticRegression(l2=0.1).fit(X, y)
    assert np.mean(clf.predict(X) == y) == 1.0
    p = clf.predict_proba(X)
    assert np.all((p > 0) & (p < 1)) and p[y == 1].min() > p[y == 0].max()
    assert np.abs(clf.coef_[0]) > np.abs(clf.coef_[1:]).max()
    strong = LogisticRegression(l2=1e3).fit(X, y)
    assert np.linalg.norm(strong.coef_) < np.linalg.norm(clf.coef_)


def test_logistic_regression_optimum_has_zero_gradient() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(0, 1, (60, 3))
    y = (X[:, 0] + rng.normal(0, 1, 60) > 0).astype(int)
    clf = LogisticRegression(l2=2.0, tol=1e-10).fit(X, y)
    Z = (X - clf.mean_) / clf.scale_
    p = clf.predict_proba(X)
    np.testing.assert_allclose(Z.T @ (p - y) + 2.0 * clf.coef_, 0.0, atol=1e-7)
    assert abs(np.sum(p - y)) < 1e-7


def test_logistic_regression_validation() -> None:
    X, y = _separable(10)
    with pytest.raises(ValueError, match="labels"):
        LogisticRegression().fit(X, y + 1)
    with pytest.raises(ValueError, match="NaN"):
        LogisticRegression().fit(np.full((10, 2), np.nan), y)
    with pytest.raises(RuntimeError):
        LogisticRegression().predict(X)


@pytest.mark.parametrize("projection", ["random", "pca"])
def test_fusion_model_runs_and_round_trips(projection: str, tmp_path) -> None:
    X, y = _separable(60, 10)
    rng = np.random.default_rng(1)
    deep = rng.normal(0, 1, (60, 32)) + y[:, None] * 0.5
    clf = AuthenticityClassifier("fusion", proj_dim=16, projection=projection).fit(X, y, deep)
    p = clf.predict_proba(X, deep)
    assert p.shape == (60,) and np.all((p >= 0) & (p <= 1))
    assert clf.score(X, y, deep) > 0.8
    path = tmp_path / "auth.json"
    clf.save(path)
    loaded = AuthenticityClassifier.load(path)
    np.testing.assert_allclose(loaded.predict_proba(X, deep), p)
    with pytest.raises(ValueError, match="deep"):
        clf.predict_proba(X)


def test_dmarker_classifier_round_trip(tmp_path) -> None:
    X, y = _separable()
    clf = AuthenticityClassifier().fit(X, y)
    clf.save(tmp_path / "m.json")
    np.testing.assert_array_equal(
        AuthenticityClassifier.load(tmp_path / "m.json").predict(X), clf.predict(X)
    )
    with pytest.raises(ValueError):
        AuthenticityClassifier("svm")


def test_saved_classifier_records_the_dmarker_version(tmp_path) -> None:
    X, y = _separable()
    clf = AuthenticityClassifier().fit(X, y)
    path = tmp_path / "m.json"
    clf.save(path)
    content = json.loads(path.read_text())
    assert content["dmarker_version"] == DMARKER_VERSION
    np.testing.assert_array_equal(AuthenticityClassifier.load(path).predict(X), clf.predict(X))


@pytest.mark.parametrize("version", [None, 1, DMARKER_VERSION + 1])
def test_classifier_of_another_dmarker_version_is_refused(tmp_path, version) -> None:
    X, y = _separable()
    content = AuthenticityClassifier().fit(X, y).to_dict()
    if version is None:  # written before the version was recorded
        del content["dmarker_version"]
    else:
        content["dmarker_version"] = version
    path = tmp_path / "old.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="retrain it with `duchenne train-authenticity`"):
        AuthenticityClassifier.load(path)


@pytest.mark.parametrize("bad", [[1, 2], "coef"])
def test_malformed_classifier_files_are_refused_on_load(bad) -> None:
    """A JSON list raised AttributeError, and weights of another length than the means
    failed only at the first prediction, after a whole video was analysed."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 5)), np.arange(20) % 2
    content = AuthenticityClassifier("dmarkers").fit(X, y).to_dict()
    if bad == "coef":
        content["model"]["coef"] = content["model"]["coef"][:3]
    else:
        content = bad
    with pytest.raises(ValueError, match="not a duchenne authenticity classifier|inconsistent"):
        AuthenticityClassifier.from_dict(content)


def test_cross_validate_fold_descriptions() -> None:
    X, y = _separable(50)
    by_k = cross_validate(5, X, y)
    assert len(by_k.fold_accuracy) == 5 and sum(by_k.fold_size) == 50
    assert by_k.mean_accuracy > 0.9
    ids = np.arange(50) % 4
    by_ids = cross_validate(ids, X, y)
    assert len(by_ids.fold_accuracy) == 4
    lists = [list(range(0, 25)), list(range(25, 50))]
    by_lists = cross_validate(lists, X, y, l2=0.5)
    assert by_lists.fold_size == [25, 25]
    deep = np.random.default_rng(0).normal(0, 1, (50, 8))
    fused = cross_validate(5, X, y, deep=deep, kind="fusion", proj_dim=8)
    assert len(fused.fold_accuracy) == 5 and 0.0 <= fused.mean_accuracy <= 1.0
    json.dumps(fused.to_dict())


def test_episode_deep_features() -> None:
    sig, ep = _smile(au6=1.0)
    frames = np.tile(np.arange(len(sig.lip), dtype=float)[:, None], (1, 4))
    frames[ep.start_frame] = np.nan
    mean = episode_deep_features(frames, ep)
    assert mean == pytest.approx(
        np.full(4, np.mean(np.arange(ep.start_frame + 1, ep.end_frame + 1)))
    )
