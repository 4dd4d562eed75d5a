"""Smiles the face was hidden during: the straight line that fills the gap before the
phases are searched is not measured as the face (onset, D-Markers, genuineness, AU6)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from duchenne.analysis.authenticity import assess_episode, duchenne_marker, has_rest_before
from duchenne.analysis.dmarkers import FEATURE_NAMES, compute_dmarkers, dmarker_vector
from duchenne.analysis.dynamics import SmileSignals, compute_signals
from duchenne.analysis.episodes import find_episodes, single_episode, unobserved_phases

from .test_dynamics import smile_profile, synthetic_landmarks

FPS = 30.0


def _lip_only(lip: np.ndarray) -> SmileSignals:
    """Signals whose lip corners follow ``lip`` (NaN = face hidden), eyes and cheeks still."""
    eye, cheek = np.full_like(lip, 0.3), np.full_like(lip, 1.0)
    return SmileSignals(lip, eye, cheek, lip, lip, eye, eye, cheek, cheek)


def _probe_lip() -> np.ndarray:
    """Rest (30 frames), a 0.5 s onset (frames 29-44), apex, a 0.5 s offset, rest."""
    up = np.linspace(0.5, 0.6, 16)[1:]
    return np.r_[np.full(30, 0.5), up, np.full(20, 0.6), up[::-1], np.full(30, 0.5)]


def _phase_names(prefix: str) -> list[str]:
    return [n for n in FEATURE_NAMES if n.startswith(f"{prefix}.")]


@pytest.mark.parametrize("segment", ["find", "single"])
def test_an_onset_hidden_by_a_gap_is_not_measured(segment: str) -> None:
    """Face hidden on frames 35-54, across the onset (29-44): the gap was filled by a
    straight line and the onset measured 0.9 s instead of 0.5 s, which added +0.59 to
    the genuineness logit ("slow onset, genuine"), and the D-Markers took the line's
    slope. The onset (and the apex, which starts where it ends) is not measured now: its
    cues and D-Markers are None and it adds nothing; the offset is measured as before."""
    lip = _probe_lip()
    seen = _lip_only(lip).smoothed(FPS)
    hidden_lip = lip.copy()
    hidden_lip[35:55] = np.nan
    hidden = _lip_only(hidden_lip).smoothed(FPS)
    assert not hidden.observed_frames()[35:55].any() and hidden.observed_frames()[:35].all()
    if segment == "find":
        (ep,) = find_episodes(hidden.lip, FPS)
        (whole,) = find_episodes(seen.lip, FPS)
    else:
        ep, whole = single_episode(hidden.lip, FPS), single_episode(seen.lip, FPS)
    assert ep.phase_duration("onset") == pytest.approx(0.9)  # the line across the gap
    assert whole.phase_duration("onset") == pytest.approx(0.5)  # the face
    assert unobserved_phases(ep, hidden.observed_frames()) == ("onset", "apex")
    assert unobserved_phases(whole, seen.observed_frames()) == ()

    result = assess_episode(hidden, ep, FPS)
    g = result.genuineness
    assert g.cues["onset_duration"] is None and g.cues["onset_relative_speed"] is None
    assert g.contributions["onset"] == 0.0 and g.contributions["speed"] == 0.0
    assert g.cues["offset_duration"] == pytest.approx(0.5)
    z = sum(g.contributions.values())
    assert g.score == pytest.approx(1 / (1 + np.exp(-z)))
    # the face at rest before the smile was seen: the AU6 marker is measured
    assert result.duchenne.measurable and has_rest_before(ep, hidden.observed_frames())
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["genuineness_cues"]["onset_duration"] is None

    dm = compute_dmarkers(hidden, ep, FPS)
    for name in _phase_names("onset") + _phase_names("apex"):
        assert dm[name] is None, name
    truth = compute_dmarkers(seen, whole, FPS)
    assert ep.offset == whole.offset
    for name in _phase_names("offset"):
        assert dm[name] == pytest.approx(truth[name], rel=1e-9, abs=1e-12), name
    vector = dmarker_vector(hidden, ep, FPS)
    assert np.isnan(vector).sum() == 2 * 75 and np.isfinite(vector[-75:]).all()

    # the same arrays taken as all observed: the old numbers (the line measured)
    pretended = replace(hidden, observed=np.ones(len(hidden), bool))
    old = assess_episode(pretended, ep, FPS).genuineness
    assert old.cues["onset_duration"] == pytest.approx(0.9)
    assert old.contributions["onset"] == pytest.approx(np.log(0.9 / 0.5))
    assert compute_dmarkers(pretended, ep, FPS)["onset.lip.duration"] == pytest.approx(0.9)


def test_a_face_hidden_on_the_first_frames_gets_no_rest_before_credit() -> None:
    """Frames 0-37 without landmarks, the onset running 30-50: the gap was filled with
    the first value seen (frame 38, part way up), which looked like a face at rest. The
    AU6 baseline was taken there: AU6 index 0.38 and marker "no" for a smile whose AU6 is
    0.61 seen whole, a 0.4 s onset instead of 0.67 s, and a symmetry from the same
    baseline. None of it is measured now."""
    landmarks = synthetic_landmarks(smile_profile(), au6=0.5, left_gain=0.7)
    whole_sig = compute_signals(landmarks).smoothed(FPS)
    (whole,) = find_episodes(whole_sig.lip, FPS)
    landmarks[:38] = np.nan
    sig = compute_signals(landmarks).smoothed(FPS)
    (ep,) = find_episodes(sig.lip, FPS)
    observed = sig.observed_frames()
    assert not observed[:38].any() and observed[38:].all()
    assert 0 < ep.onset[0] < ep.onset[1] and has_rest_before(ep)  # without the frames seen
    assert not has_rest_before(ep, observed)

    marker = duchenne_marker(sig, ep)
    assert not marker.measurable and set(marker.to_dict().values()) == {None}
    g = assess_episode(sig, ep, FPS).genuineness
    for cue in ("au6_index", "symmetry", "onset_duration", "onset_relative_speed"):
        assert g.cues[cue] is None, cue
    for term in ("au6", "symmetry", "onset", "speed"):
        assert g.contributions[term] == 0.0, term
    assert g.cues["offset_duration"] == pytest.approx(whole.phase_duration("offset"))
    assert duchenne_marker(whole_sig, whole).au6_index == pytest.approx(0.6131, abs=1e-4)

    pretended = replace(sig, observed=np.ones(len(sig), bool))  # the fill taken as seen
    assert duchenne_marker(pretended, ep).au6_index == pytest.approx(0.3838, abs=1e-4)


def test_a_gap_clear_of_the_phases_changes_nothing() -> None:
    """Hidden frames at rest, away from every phase and its neighbours, are filled
    exactly (a flat rest): every number is the one of the face seen throughout."""
    landmarks = synthetic_landmarks(smile_profile(), au6=0.5, left_gain=0.7)
    seen = compute_signals(landmarks).smoothed(FPS)
    landmarks[5:20] = np.nan
    gap = compute_signals(landmarks).smoothed(FPS)
    (a,), (b,) = find_episodes(seen.lip, FPS), find_episodes(gap.lip, FPS)
    assert (a.onset, a.apex, a.offset) == (b.onset, b.apex, b.offset)
    assert unobserved_phases(b, gap.observed_frames()) == ()
    assert assess_episode(gap, b, FPS).to_dict() == assess_episode(seen, a, FPS).to_dict()
    assert np.array_equal(dmarker_vector(gap, b, FPS), dmarker_vector(seen, a, FPS))


def test_a_fully_observed_smile_gives_the_numbers_it_gave_before() -> None:
    """Values pinned from the code before the observed-frame mask existed: a smile seen
    on every frame is measured exactly as it was."""
    landmarks = synthetic_landmarks(smile_profile(), au6=0.5, left_gain=0.7)
    sig = compute_signals(landmarks).smoothed(FPS)
    assert sig.observed_frames().all()
    (ep,) = find_episodes(sig.lip, FPS)
    assert (ep.onset, ep.apex, ep.offset) == ((30, 50), (50, 80), (80, 105))
    out = assess_episode(sig, ep, FPS).to_dict()
    exact = {"rel": 1e-12, "abs": 0.0}
    assert out["genuineness"] == pytest.approx(0.8632571381834347, **exact)
    assert out["au6_index"] == pytest.approx(0.613101646874762, **exact)
    assert out["eye_narrowing"] == pytest.approx(0.18490403370870367, **exact)
    assert out["cheek_raise"] == pytest.approx(0.03892697271317674, **exact)
    cues = out["genuineness_cues"]
    assert cues["onset_duration"] == pytest.approx(0.6666666666666666, **exact)
    assert cues["offset_duration"] == pytest.approx(0.8333333333333334, **exact)
    assert cues["onset_relative_speed"] == pytest.approx(1.6214859481909147, **exact)
    assert cues["symmetry"] == pytest.approx(0.817659145140619, **exact)
    dm = compute_dmarkers(sig, ep, FPS)
    pinned = {
        "onset.lip.duration": 0.6666666666666666,
        "onset.lip.speed_max_pos": 0.20381718036138807,
        "onset.eyelid.accel_max_neg": 0.5388944203947005,
        "apex.cheek.amplitude_mean": 1.1654744489750153,
        "offset.lip.speed_max_neg": 0.16356036498250293,
        "offset.lip.asymmetry": 0.023829688220202636,
    }
    for name, value in pinned.items():
        assert dm[name] == pytest.approx(value, **exact), name
    assert float(dmarker_vector(sig, ep, FPS).sum()) == pytest.approx(257.5093826365677, **exact)


def test_a_mapping_of_signals_may_name_its_observed_frames() -> None:
    """``compute_dmarkers`` on plain arrays: NaN samples, or frames ``observed`` leaves
    out, are not observations; a wrong-length ``observed`` is refused."""
    d = np.r_[np.full(10, 0.5), np.linspace(0.5, 0.7, 21), np.full(10, 0.7)]
    ep = single_episode(d, FPS)
    signals = {"lip": d, "eyelid": d, "cheek": d}
    assert None not in compute_dmarkers(signals, ep, FPS).values()
    observed = np.ones(len(d), bool)
    observed[15] = False  # inside the onset
    feats = compute_dmarkers({**signals, "observed": observed}, ep, FPS)
    assert {feats[n] for n in _phase_names("onset")} == {None}
    assert None not in {feats[n] for n in _phase_names("apex") + _phase_names("offset")}
    with pytest.raises(ValueError, match="observed"):
        compute_dmarkers({**signals, "observed": observed[:-1]}, ep, FPS)


def test_a_training_clip_with_an_unseen_phase_is_left_out_with_a_reason() -> None:
    """Training reads all 225 D-Markers of a clip; one the face was hidden during has
    unknown ones (NaN), which stopped the whole fit ("features contain NaN"). It is a
    failed clip now, named with the reason, like a clip without a face."""
    from duchenne.analysis.authenticity_data import clip_features
    from duchenne.analysis.video import VideoAnalyzer, VideoOptions
    from duchenne.analysis.video.options import GEOMETRY_KEYS
    from duchenne.errors import DatasetError
    from tests.video_factory import SmileProfile, cheap_frames

    from .test_video import SmilingStage

    class WithGeometry(SmilingStage):
        """The face with per-frame geometry (the deep features without a smile model)."""

        with_smile = False

        def __call__(self, image: np.ndarray):
            faces = super().__call__(image)
            for key in GEOMETRY_KEYS:
                faces.data[key] = np.zeros(len(faces), np.float32)
            return faces

    smile = SmileProfile(start=0.5, onset=0.3, apex=0.4, offset=0.4)
    options = VideoOptions(episodes="single", collect_features=True)

    def features(hidden):
        analyzer = VideoAnalyzer(stage=WithGeometry(smile, 4.0, hidden=hidden), options=options)
        return clip_features(analyzer, cheap_frames(50), source_fps=25, prefetch=0)

    assert np.isfinite(features(None).dmarkers).all()
    with pytest.raises(DatasetError, match="hidden during the smile's onset"):
        features((14, 19))


@pytest.mark.parametrize(("gap", "measured"), [(1, True), (3, True), (4, False)])
def test_a_gap_of_at_most_a_tenth_of_a_second_is_bridged(gap: int, measured: bool) -> None:
    """A face lost for a frame or three inside its onset (a missed detection) keeps the
    onset measured: the line across at most ``MAX_BRIDGED_GAP_S`` (3 frames at 30 fps)
    moves its ends by no more than that; a longer gap voids it as above."""
    lip = _probe_lip()
    lip[36 : 36 + gap] = np.nan
    signals = _lip_only(lip).smoothed(FPS)
    (ep,) = find_episodes(signals.lip, FPS)
    assert signals.observed_frames()[36 : 36 + gap].all() == measured
    assert ("onset" not in unobserved_phases(ep, signals.observed_frames())) == measured
    cue = assess_episode(signals, ep, FPS).genuineness.cues["onset_duration"]
    if measured:
        assert cue == pytest.approx(0.5, abs=gap / FPS)
    else:
        assert cue is None
