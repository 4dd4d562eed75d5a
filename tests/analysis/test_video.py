"""Streaming video analysis against generated clips with known smile timing.

The clips (tests/video_factory.py) animate the bundled astronaut photo: lip corners (and,
for "Duchenne" smiles, eyelids and cheeks) follow a piecewise-linear profile, so onset,
apex and offset times are known to the frame.
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.dmarkers import FEATURE_NAMES
from duchenne.analysis.video import (
    FRAME_FEATURES,
    VideoAnalyzer,
    VideoOptions,
    VideoResult,
    analyze_video,
)
from duchenne.errors import VideoDecodeError
from tests.video_factory import (
    ONE_FACE,
    TWO_FACES,
    SmileProfile,
    SyntheticFaceStage,
    cheap_frames,
    one_face_clip,
    render,
    template,
    truncate_file,
    two_face_clip,
)

TOLERANCE_FRAMES = 3
#: The clips are made from a photo that already smiles a little, so P(smile) is high in
#: every frame and the default episodes (runs of smiling frames) span the whole clip; the
#: timing tests measure the lip-corner segmentation that finds the generated smile.
LIP = VideoOptions(episodes="lip")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(threads=1)


@pytest.fixture(scope="module")
def one_face(analyzer, tmp_path_factory) -> tuple[VideoResult, Path]:
    rows = tmp_path_factory.mktemp("rows") / "frames.jsonl"
    return analyze_video(analyzer, one_face_clip().path, output=rows, options=LIP), rows


def _close(measured: float, expected: float, fps: float, frames: float = TOLERANCE_FRAMES) -> bool:
    return abs(measured - expected) <= frames / fps + 1e-9


def _check_phases(episode, profile: SmileProfile, fps: float, frames: float) -> None:
    expected = {
        "onset start": (episode.onset[0], profile.start),
        "apex start": (episode.onset[1], profile.apex_start),
        "offset start": (episode.offset[0], profile.offset_start),
        "offset end": (episode.offset[1], profile.end),
    }
    for name, (got, want) in expected.items():
        assert _close(got, want, fps, frames), (
            f"{name}: measured {got:.3f} s, generated {want:.3f} s"
        )


def test_one_smile_with_its_onset_apex_offset(one_face) -> None:
    result, _ = one_face
    clip = one_face_clip()
    assert result.complete and result.frames_analysed == clip.n_frames
    assert [t.n_frames for t in result.tracks] == [clip.n_frames]
    (episode,) = result.tracks[0].episodes
    assert not episode.truncated
    _check_phases(episode, ONE_FACE[0], clip.fps, TOLERANCE_FRAMES)
    assert episode.peak_amplitude > 0.05  # the corners moved > 5 % of the mouth width
    assert ONE_FACE[0].apex_start - 0.1 <= episode.peak_time <= ONE_FACE[0].offset_start + 0.1


def test_dmarkers_follow_the_generated_profile(one_face) -> None:
    result, _ = one_face
    (episode,) = result.tracks[0].episodes
    dm = episode.dmarker_dict()
    assert list(dm) == list(FEATURE_NAMES) and np.all(np.isfinite(episode.dmarkers))
    fps, prof = one_face_clip().fps, ONE_FACE[0]
    assert _close(dm["onset.lip.duration"], prof.onset, fps, 2 * TOLERANCE_FRAMES)
    assert _close(dm["offset.lip.duration"], prof.offset, fps, 2 * TOLERANCE_FRAMES)
    # a linear ramp of height h over T seconds has speed h / T; the lip signal rises by
    # the episode's peak amplitude over the onset
    ramp = episode.peak_amplitude / prof.onset
    assert 0.6 * ramp < dm["onset.lip.speed_mean_pos"] < 1.6 * ramp
    assert dm["onset.lip.speed_max_pos"] > dm["apex.lip.speed_max_pos"]
    assert dm["offset.lip.speed_max_neg"] > dm["apex.lip.speed_max_neg"]


def test_authenticity_is_reported_with_its_method(one_face) -> None:
    result, _ = one_face
    (episode,) = result.tracks[0].episodes
    assert 0.0 <= episode.genuineness.score <= 1.0
    assert episode.genuineness.method == "heuristic-unvalidated"
    summary = result.to_dict()
    assert summary["authenticity"]["genuineness_method"] == "heuristic-unvalidated"
    assert "NOT been validated" in summary["authenticity"]["genuineness_note"]
    assert summary["tracks"][0]["episodes"][0]["duchenne_marker"] in (True, False)
    json.dumps(summary)  # JSON-safe


def test_per_frame_rows_are_streamed(one_face) -> None:
    result, path = one_face
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == result.rows_written == one_face_clip().n_frames
    assert [r["frame"] for r in rows] == list(range(len(rows)))
    assert {r["face"] for r in rows} == {0}
    first = rows[0]
    for key in ("time", "box.x1", "box.y2", "score", "detected", "geometry.lip_corner_elevation"):
        assert key in first
    assert first["detected"] is True and rows[1]["detected"] is False
    # lip-corner elevation (AU12 proxy) is higher at the apex than at rest
    apex = rows[int(ONE_FACE[0].apex_start * 25) + 5]
    assert apex["geometry.lip_corner_elevation"] > first["geometry.lip_corner_elevation"]


def test_default_episodes_are_the_smiling_rows(analyzer, tmp_path) -> None:
    """Table and summary agree: episodes are the runs of rows with ``smiling`` true, at
    whatever ``smile_threshold`` the analyzer uses (the rows record it)."""
    clip = one_face_clip()
    shortest = VideoOptions().min_episode_s
    for threshold in (0.5, 0.9999):
        rows_path = tmp_path / f"rows{threshold}.jsonl"
        strict = analyzer.with_options(smile_threshold=threshold)
        result = analyze_video(strict, clip.path, output=rows_path)
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        assert {r["smile_threshold"] for r in rows} == {threshold}
        assert all(r["smiling"] == (r["smile"] >= threshold) for r in rows)
        episodes = result.tracks[0].episodes if result.tracks else []
        outside = [r for r in rows if r["smiling"] and not _in_any(r["time"], episodes)]
        frames = {r["frame"] for r in rows if r["smiling"]}
        for r in outside:  # only smiles too short to count may be left out
            assert _run_length(frames, r["frame"]) / clip.fps < shortest
        for e in episodes:  # starts and ends smiling; only short lapses bridged
            span = [r for r in rows if e.start_time <= r["time"] <= e.end_time]
            assert span[0]["smiling"] and span[-1]["smiling"]
            lapses = {r["frame"] for r in span if not r["smiling"]}
            for f in lapses:
                assert _run_length(lapses, f) / clip.fps < shortest
        assert result.to_dict()["smile_threshold"] == threshold
        assert "P(smile) >=" in result.to_dict()["episodes_from"]


def _in_any(t: float, episodes) -> bool:
    return any(e.start_time <= t <= e.end_time for e in episodes)


def _run_length(frames: set[int], frame: int) -> int:
    """How many consecutive frames of ``frames`` the run through ``frame`` holds."""
    a = b = frame
    while a - 1 in frames:
        a -= 1
    while b + 1 in frames:
        b += 1
    return b - a + 1


def test_tracking_skips_most_detector_runs(one_face) -> None:
    result, _ = one_face
    assert result.detector_runs <= result.frames_analysed // 10 + 1


def test_two_faces_keep_distinct_stable_ids(analyzer) -> None:
    clip = two_face_clip()
    result = analyze_video(analyzer, clip.path, options=LIP)
    assert len(result.tracks) == 2
    assert sorted(t.track_id for t in result.tracks) == [0, 1]
    assert all(t.n_frames == clip.n_frames for t in result.tracks)  # no ID switch, no loss
    episodes = {t.track_id: t.episodes for t in result.tracks}
    # the left face (track of the first detection sorted by x) smiles first
    left, right = sorted(result.tracks, key=lambda t: t.episodes[0].start_time)
    assert len(left.episodes) == len(right.episodes) == 1, episodes
    _check_phases(left.episodes[0], TWO_FACES[0], clip.fps, TOLERANCE_FRAMES)
    _check_phases(right.episodes[0], TWO_FACES[1], clip.fps, TOLERANCE_FRAMES)
    # the left smile has AU6 (eyes narrow, cheeks rise), the right one none
    assert left.episodes[0].duchenne.au6_index > right.episodes[0].duchenne.au6_index + 0.1
    assert left.episodes[0].duchenne.eye_narrowing > 0.05 > right.episodes[0].duchenne.eye_narrowing


def _crossing_frames(n: int = 100):
    """Two faces walking past each other across a 640 x 240 frame in 4 s, the left one in
    front: the other (darker, mirrored) is hidden behind it for about 0.8 s."""
    tpl = template(120, 160)
    yy, xx = np.mgrid[0:160, 0:120]
    head = ((xx - 60) / 58.0) ** 2 + ((yy - 80) / 78.0) ** 2 <= 1
    front = render(tpl, 0.0, 0.0)
    back = (render(tpl, 0.0, 0.0)[:, ::-1] * 0.8 + 30).astype(np.uint8)
    for i in range(n):
        frame = np.full((240, 640, 3), 70, np.uint8)
        step = 480 * i // (n - 1)
        for x, tile in ((500 - step, back), (20 + step, front)):
            frame[40:200, x : x + 120][head] = tile[head]
        yield frame


@pytest.mark.parametrize("detect_every", [10, 1])
def test_a_face_hidden_while_two_faces_cross_keeps_its_id(analyzer, detect_every) -> None:
    """The face behind was hidden ~0.8 s (less than ``occlusion_s``) yet came back as a
    new face (face 1 ended at 1.76 s, face 2 from 2.60 s; 2.24 s with detection on every
    frame): while it was being covered its box followed its visible part, slowing to a
    stop and shrinking, and its track learnt that motion and the warped proportions."""
    options = VideoOptions(detect_every=detect_every)
    result = analyze_video(analyzer, _crossing_frames(), source_fps=25, options=options)
    assert [t.track_id for t in result.tracks] == [0, 1]
    front, behind = result.tracks
    assert front.n_frames == 100 and 60 <= behind.n_frames < 100  # hidden, then found again
    assert behind.first_time == 0.0 and behind.last_time == pytest.approx(3.96)


def test_sampling_every_other_frame_keeps_the_timing(analyzer) -> None:
    clip = one_face_clip()
    result = analyze_video(analyzer, clip.path, every=2, options=LIP)
    assert result.fps == pytest.approx(clip.fps / 2)
    assert result.frames_analysed == (clip.n_frames + 1) // 2
    (episode,) = result.tracks[0].episodes
    _check_phases(episode, ONE_FACE[0], clip.fps, 2 * TOLERANCE_FRAMES)


def test_truncated_video_raises_and_keeps_what_was_analysed(analyzer, tmp_path) -> None:
    cut = truncate_file(one_face_clip().path, tmp_path / "cut.avi", 0.6)
    rows = tmp_path / "rows.csv"
    with pytest.raises(VideoDecodeError, match="decoding stopped at frame") as info:
        analyze_video(analyzer, cut, output=rows)
    partial = info.value.result
    assert not partial.complete and "VideoDecodeError" in partial.error
    assert 30 <= partial.frames_analysed < one_face_clip().n_frames
    with open(rows, newline="") as fh:
        kept = list(csv.DictReader(fh))
    assert len(kept) == partial.frames_analysed == partial.tracks[0].n_frames
    assert [int(r["frame"]) for r in kept] == list(range(len(kept)))
    # the smile began before the cut: it is reported, marked as cut short
    assert partial.tracks[0].episodes and partial.tracks[0].episodes[-1].truncated


def test_on_error_return_gives_the_partial_result(analyzer, tmp_path) -> None:
    cut = truncate_file(one_face_clip().path, tmp_path / "cut.avi", 0.4)
    result = analyze_video(analyzer, cut, on_error="return", start=0.2)
    assert not result.complete and result.first_time == pytest.approx(0.2)


def _bookkeeping_run(frames: int, tmp_path: Path) -> tuple[VideoResult, int]:
    """Peak traced memory of a model-free run over ``frames`` generated frames."""
    stage = SyntheticFaceStage(SmileProfile(start=0.5, onset=0.3, apex=0.4, offset=0.4), 2.0)
    options = VideoOptions(window_s=3.0, context_s=0.6, timeline_points=64)
    video = VideoAnalyzer(stage=stage, options=options)
    tracemalloc.start()
    try:
        result = video.analyze(
            cheap_frames(frames), source_fps=25, output=tmp_path / f"{frames}.csv", prefetch=0
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def test_memory_does_not_grow_with_video_length(tmp_path) -> None:
    _bookkeeping_run(30, tmp_path)  # warm-up: imports and caches
    short, short_peak = _bookkeeping_run(100, tmp_path)  # 4 s
    long, long_peak = _bookkeeping_run(400, tmp_path)  # 16 s, 4x longer, 6 window flushes
    # every smile found exactly once across the window cuts, at its generated time
    assert len(short.episodes) == 2 and len(long.episodes) == 8
    onsets = [e.onset[0] for e in long.episodes]
    assert np.allclose(onsets, 0.5 + 2.0 * np.arange(8), atol=TOLERANCE_FRAMES / 25)
    assert not any(e.truncated for e in long.episodes)
    assert long.rows_written == 400
    # flat: 4x the frames costs less than 0.3 MB more (the 6 more episodes' results);
    # keeping the landmarks instead would cost 300 x 468 x 3 x 4 B = 1.7 MB more
    assert long_peak - short_peak < 300_000, (short_peak, long_peak)


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        VideoOptions(detect_every=0)
    with pytest.raises(ValueError):
        VideoOptions(episodes="all")
    with pytest.raises(ValueError):
        VideoOptions(window_s=4, context_s=3)


@pytest.mark.parametrize(
    "options",
    [
        {"min_presence": 2.0},
        {"min_presence": float("nan")},
        {"occlusion_s": -1.0},
        {"context_s": -1.0},
        {"episode_threshold": -0.1},
        {"min_episode_s": -1.0},
        {"min_track_frames": -1},
        {"best_margin": -5.0},
    ],
)
def test_out_of_range_options_are_rejected(options: dict) -> None:
    """These used to be accepted and run (min_presence=2 drops every track each frame)."""
    with pytest.raises(ValueError, match=next(iter(options))):
        VideoOptions(**options)


@pytest.mark.parametrize("detect_every", [1.5, "3", True, None, 0])
def test_detect_every_must_be_a_whole_number(detect_every) -> None:
    """``1.5`` used to be accepted (and run as 1 by the face stage), ``"3"`` raised a raw
    ``TypeError`` from ``<``; a whole-valued float is still fine."""
    with pytest.raises(ValueError, match="detect_every must be a whole number"):
        VideoOptions(detect_every=detect_every)
    assert VideoOptions(detect_every=np.int64(3)).detect_every == 3
    assert VideoOptions(detect_every=2.0).detect_every == 2


def test_smile_model_results_are_streamed_and_summarised(tiny_smile_onnx, tmp_path) -> None:
    analyzer = Analyzer(smile_model=tiny_smile_onnx, threads=1)
    rows = tmp_path / "frames.jsonl"
    result = analyze_video(
        analyzer,
        one_face_clip().path,
        output=rows,
        every=3,
        options=VideoOptions(collect_features=True),
        best_dir=tmp_path / "best",
    )
    first = json.loads(rows.read_text().splitlines()[0])
    for key in ("smile", "smiling", "smile_score", "top_emotion", "emotions.happiness"):
        assert key in first
    (track,) = result.tracks
    assert track.peak_smile_score is not None and 1.0 <= track.mean_smile_score <= 10.0
    assert track.best_value == pytest.approx(track.peak_smile_score)  # smiliest = top score
    assert Path(track.best_image).exists()
    (episode,) = track.episodes
    assert episode.peak_smile_score is not None
    assert result.feature_names == FRAME_FEATURES and episode.features.shape == (18,)


# --------------------------------------------------------------------------- episodes
# from P(smile) with and without landmarks, truncation causes, summary times, empty tables


class SmilingStage(SyntheticFaceStage):
    """The model-free face stage with a smile model's outputs: P(smile) 0.9 while the
    generated smile is above 30 % of its height (else 0.1), smile score 1 + 9 x level.
    ``landmarks=False`` drops the landmarks (``--stages detect,smile``); ``visible``
    (frame range) hides the face outside it, ``hidden`` (frame range) inside it."""

    with_smile = True

    def __init__(
        self, profile, period, *, landmarks=True, visible=None, hidden=None, fps=25.0
    ) -> None:
        super().__init__(profile, period, fps)
        self.landmarks, self.visible, self.hidden = landmarks, visible, hidden

    def __call__(self, image: np.ndarray):
        from duchenne.faces import Faces

        i = self.i
        faces = super().__call__(image)
        if self.visible is not None and not self.visible[0] <= i < self.visible[1]:
            return Faces.empty()
        if self.hidden is not None and self.hidden[0] <= i < self.hidden[1]:
            return Faces.empty()
        level = self.profile.level((i / self.fps) % self.period)
        faces.smile = np.array([0.9 if level > 0.3 else 0.1], np.float32)
        faces.smile_score = np.array([1.0 + 9.0 * level], np.float32)
        if not self.landmarks:
            faces.landmarks = None
        return faces


REPEATED = SmileProfile(start=0.5, onset=0.3, apex=0.4, offset=0.4)  # every 2 s
WINDOWED = VideoOptions(window_s=3.0, context_s=0.6, timeline_points=64)


def _smiling_runs(rows: list[dict]) -> list[tuple[float, float]]:
    """(first, last) times of the runs of consecutive rows with ``smiling`` true."""
    runs: list[tuple[float, float]] = []
    previous = False
    for r in rows:
        if r["smiling"] and previous:
            runs[-1] = (runs[-1][0], r["time"])
        elif r["smiling"]:
            runs.append((r["time"], r["time"]))
        previous = r["smiling"]
    return runs


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "detect+smile"])
def test_episodes_are_the_smiling_runs_whatever_stages_ran(tmp_path, landmarks) -> None:
    """``--stages detect,smile`` gave rows with ``smiling`` true but no episode: they were
    only built from the lip-corner signal. They are the runs of smiling frames with or
    without landmarks; only the landmark measurements are missing without them."""
    stage = SmilingStage(REPEATED, 2.0, landmarks=landmarks)
    path = tmp_path / "rows.jsonl"
    result = VideoAnalyzer(stage=stage).analyze(
        cheap_frames(150), source_fps=25, output=path, prefetch=0
    )
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    runs = _smiling_runs(rows)
    assert len(runs) == 3 and "P(smile) >=" in result.episodes_from
    (track,) = result.tracks
    spans = [(e.start_time, e.end_time) for e in track.episodes]
    assert np.allclose(spans, runs, atol=1e-4), (spans, runs)
    for episode, run in zip(track.episodes, runs, strict=True):
        assert not episode.truncated and episode.peak_smile_score == pytest.approx(10.0)
        assert run[0] <= episode.peak_time <= run[1]
        assert episode.has_dynamics is landmarks
    doc = json.loads(json.dumps(result.to_dict(dmarkers=True)))  # JSON-safe either way
    first = doc["tracks"][0]["episodes"][0]
    if landmarks:
        assert first["onset"] is not None and len(first["dmarkers"]) == len(FEATURE_NAMES)
        assert first["genuineness_method"] == "heuristic-unvalidated"
        assert doc["tracks"][0]["duchenne_marker"] in (True, False)
    else:
        for key in ("onset", "apex", "offset", "onset_duration", "peak_amplitude", "duchenne"):
            assert first[key] is None, key
        assert first["duchenne_marker"] is None and first["genuineness"] is None
        assert first["dmarkers"] is None and first["peak_smile_score"] == pytest.approx(10.0)
        assert doc["tracks"][0]["duchenne_marker"] is None
        assert doc["tracks"][0]["genuineness"] is None


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "detect+smile"])
def test_a_window_cut_does_not_mark_the_next_smile_truncated(landmarks) -> None:
    """The signal window is cut at the start of a smile still going on; that smile was
    then reported ``truncated`` (it touched the new window's first row) though it was
    seen whole."""
    stage = SmilingStage(REPEATED, 2.0, landmarks=landmarks)
    result = VideoAnalyzer(stage=stage, options=WINDOWED).analyze(
        cheap_frames(400), source_fps=25, prefetch=0
    )
    onsets = [e.start_time for e in result.episodes]
    assert np.allclose(onsets, 0.6 + 2.0 * np.arange(8), atol=0.05), onsets
    assert [e.truncated_by for e in result.episodes] == [()] * 8
    assert not any(e.truncated for e in result.episodes)


@pytest.mark.parametrize("landmarks", [True, False], ids=["landmarks", "detect+smile"])
def test_a_face_hidden_during_its_smile_keeps_one_episode(landmarks) -> None:
    """A face hidden for 0.6 s at its apex (within ``occlusion_s``, so it keeps its ID)
    gave two episodes, neither truncated: the first with no offset, the second with no
    onset. It is one smile, measured as if the face had not been hidden."""
    smile = SmileProfile(start=0.5, onset=0.3, apex=1.5, offset=0.4)

    def run(hidden):
        stage = SmilingStage(smile, 4.0, landmarks=landmarks, hidden=hidden)
        return VideoAnalyzer(stage=stage).analyze(cheap_frames(100), source_fps=25, prefetch=0)

    seen, hidden = run(None), run((30, 45))  # frames 30-44: 1.2-1.8 s, inside the apex
    assert [t.track_id for t in hidden.tracks] == [0]
    (whole,), (episode,) = seen.episodes, hidden.episodes
    assert (episode.start_time, episode.end_time) == (whole.start_time, whole.end_time)
    assert not episode.truncated and episode.has_dynamics is landmarks
    if landmarks:
        assert episode.onset == pytest.approx(whole.onset)
        assert episode.offset == pytest.approx(whole.offset)


@pytest.mark.parametrize("options", [VideoOptions(), WINDOWED], ids=["whole", "windowed"])
def test_smiling_runs_are_measured_from_the_feet_of_their_smiles(options) -> None:
    """P(smile) reaches the threshold 30 % up the rise (SmilingStage): the onset was
    measured from there (0.6 s instead of 0.5 s), the offset to where it fell back, and
    the AU6 baseline on the rise. Phases and D-Markers are now those of the lip-corner
    segmentation, also across window cuts; the episodes still span the smiling rows."""
    from dataclasses import replace

    def run(mode):
        stage = SmilingStage(REPEATED, 2.0)
        analyzer = VideoAnalyzer(stage=stage, options=replace(options, episodes=mode))
        return analyzer.analyze(cheap_frames(400), source_fps=25, prefetch=0).episodes

    smiling, lip = run("auto"), run("lip")
    assert len(smiling) == len(lip) == 8
    for k, (ep, ref) in enumerate(zip(smiling, lip, strict=True)):
        assert ep.start_time == pytest.approx(0.6 + 2 * k)  # the first smiling frame
        assert ep.onset[0] == pytest.approx(0.5 + 2 * k, abs=0.041)  # the rise's foot
        assert ep.offset[1] == pytest.approx(1.6 + 2 * k, abs=0.041)
        assert (ep.onset, ep.apex, ep.offset) == (ref.onset, ref.apex, ref.offset)
        assert np.allclose(ep.dmarkers, ref.dmarkers, atol=1e-5)
        assert ep.duchenne.eyelid_baseline == pytest.approx(ref.duchenne.eyelid_baseline)


def test_a_smile_longer_than_the_window_is_split_and_says_why() -> None:
    stage = SmilingStage(SmileProfile(start=0.5, onset=0.3, apex=5.0, offset=0.4), 8.0)
    result = VideoAnalyzer(stage=stage, options=WINDOWED).analyze(
        cheap_frames(200), source_fps=25, prefetch=0
    )
    first, second = result.episodes
    assert first.truncated_by == ("window",) and second.truncated_by == ("window",)
    assert second.start_time == pytest.approx(first.end_time + 0.04)  # the next frame
    assert second.end_time == pytest.approx(6.08, abs=0.05)  # the smile's real end


def test_a_rate_above_the_sources_is_reported_as_every_frame() -> None:
    """``fps=1000`` on 10 frames/s keeps every frame; the result said "about 1000 frames/s"."""
    stage = SmilingStage(REPEATED, 2.0, fps=10.0)
    result = VideoAnalyzer(stage=stage).analyze(
        cheap_frames(10), source_fps=10, fps=1000, prefetch=0
    )
    assert result.frames_analysed == 10 and result.fps == 10
    assert result.sampling == "every frame, the source's 10 frames/s"


class ClockedStage(SyntheticFaceStage):
    """The model-free face stage whose smile follows the source's time at any sampling:
    it reads each frame's position in the source from the pixel ``cheap_frames`` sets."""

    def __call__(self, image: np.ndarray):
        self.i = int(image[0, 0, 0])
        return super().__call__(image)


def _true_lip_speeds(smile: SmileProfile) -> tuple[float, float]:
    """Largest rise and fall speed (1/s) of the generated smile's ``D_lip``, from its
    landmarks at 1000 frames/s."""
    from duchenne.analysis.dynamics import compute_signals

    stage = SyntheticFaceStage(smile, 100.0, fps=1000.0)
    n = int(1000 * (smile.end + 0.2))
    lip = compute_signals(np.stack([stage(None).landmarks[0, :, :2] for _ in range(n)])).lip
    speed = np.gradient(lip) * 1000.0
    return float(speed.max()), float(-speed.min())


@pytest.mark.parametrize(("source_fps", "fps"), [(50, 20), (25, 24), (25, 12)])
def test_a_rate_that_does_not_divide_the_sources_keeps_the_dynamics_true(source_fps, fps):
    """``fps=20`` on 50 frames/s kept frames 0.06 s and 0.04 s apart in turn, and the
    dynamics took them as 0.05 s apart (25 -> 24 frames/s: speeds 19 % too high). The kept
    frames are evenly spaced at the rate reported now, and phase durations and speeds
    match the generated smile's within a frame."""
    smile = SmileProfile(start=0.6, onset=1.0, apex=0.6, offset=1.2)
    times: list[float] = []
    result = VideoAnalyzer(
        stage=ClockedStage(smile, 100.0, fps=source_fps), options=VideoOptions(episodes="single")
    ).analyze(
        cheap_frames(int(3.6 * source_fps)),
        source_fps=source_fps,
        fps=fps,
        prefetch=0,
        callback=lambda frame, _: times.append(frame.time),
    )
    step = 1 / result.fps
    assert np.allclose(np.diff(times), step), np.unique(np.round(np.diff(times), 4))
    assert f"{result.fps:.4g} frames/s" in result.sampling
    (episode,) = result.episodes
    markers = episode.dmarker_dict()
    rise, fall = _true_lip_speeds(smile)
    for phase, seconds, speed in (("onset", smile.onset, rise), ("offset", smile.offset, fall)):
        a, b = getattr(episode, phase)
        assert b - a == pytest.approx(seconds, abs=step + 1e-6), phase
        assert markers[f"{phase}.lip.duration"] == pytest.approx(seconds, abs=step + 1e-6)
        # a ramp's end misplaced by one frame changes its speed by step / duration
        key = "speed_max_pos" if phase == "onset" else "speed_max_neg"
        assert markers[f"{phase}.lip.{key}"] == pytest.approx(speed, rel=step / seconds), phase


class TimedStage(SmilingStage):
    """The model-free face stage at each frame's real time, however uneven the frames
    (:func:`_timed_frames`: frame k, its pixel, is at ``times[k]``); ``hidden`` is a range
    of seconds (the stage runs at 1 "frame" per second on the frame's time)."""

    def __init__(self, profile: SmileProfile, times: np.ndarray, **kwargs) -> None:
        super().__init__(profile, np.inf, fps=1.0, **kwargs)
        self.times = times

    def __call__(self, image: np.ndarray):
        self.i = float(self.times[int(image[0, 0, 0])])
        return super().__call__(image)


def _timed_frames(times: np.ndarray):
    """Tiny frames at ``times`` (seconds), each carrying its position for TimedStage."""
    from duchenne.io.frames import Frame

    assert len(times) <= 256
    for k, t in enumerate(times):
        image = np.zeros((48, 64, 3), np.uint8)
        image[0, 0, 0] = k
        yield Frame(k, float(t), image)


def _timed_run(smile: SmileProfile, times: np.ndarray, options: VideoOptions, **stage):
    """The video result of frames at ``times``, at their header's average rate."""
    rate = (len(times) - 1) / (times[-1] - times[0])
    stage_ = TimedStage(smile, times, **stage)
    analyzer = VideoAnalyzer(stage=stage_, options=options)
    return analyzer.analyze(_timed_frames(times), source_fps=rate, prefetch=0)


#: 30 frames/s, then 15 from 1.4 s (a phone in low light), and the reverse
_VFR = {
    "30-then-15": np.concatenate([np.arange(42) / 30, 1.4 + np.arange(27) / 15]),
    "15-then-30": np.concatenate([np.arange(21) / 15, 1.4 + np.arange(54) / 30]),
}


@pytest.mark.parametrize("times", list(_VFR.values()), ids=list(_VFR))
def test_a_variable_frame_rate_keeps_the_dynamics_true(times) -> None:
    """Frames of a variable-frame-rate video were taken as 1/fps apart at the header's
    average rate (21.6 frames/s for 30 -> 15): an onset of 0.5 s at 30 frames/s measured
    0.70 s and 28 % too slow, the offset at 15 frames/s 0.60 s instead of 0.8. The signals
    are resampled onto an even grid now: phase durations (reported and D-Markers) and
    speeds are those of the same smile at an even 30 frames/s, within a frame at 15."""
    smile = SmileProfile(start=0.6, onset=0.5, apex=0.6, offset=0.8)  # offset 1.7-2.5 s
    single = VideoOptions(episodes="single")
    (even,) = _timed_run(smile, np.arange(96) / 30, single).episodes
    (vfr,) = _timed_run(smile, times, single).episodes
    truth, measured = even.dmarker_dict(), vfr.dmarker_dict()
    for phase, seconds, speed in (
        ("onset", 0.5, "speed_max_pos"),
        ("offset", 0.8, "speed_max_neg"),
    ):
        a, b = getattr(vfr, phase)
        assert b - a == pytest.approx(seconds, abs=1 / 15), phase
        assert truth[f"{phase}.lip.duration"] == pytest.approx(seconds, abs=1e-6), phase
        assert measured[f"{phase}.lip.duration"] == pytest.approx(seconds, abs=1 / 15), phase
        key = f"{phase}.lip.{speed}"
        assert measured[key] == pytest.approx(truth[key], rel=0.05), phase
    assert vfr.genuineness.cues["onset_duration"] == pytest.approx(0.5, abs=1 / 15)


def test_a_face_hidden_in_a_variable_frame_rate_video_keeps_its_smile() -> None:
    """Resampling keeps a hidden stretch a gap: the face hidden 0.6 s at the apex, at
    15 frames/s, still gives one smile from the smiling rows, with the times, onset and
    D-Markers of the face seen throughout."""
    smile = SmileProfile(start=0.5, onset=0.3, apex=1.5, offset=0.4)
    times = np.concatenate([np.arange(30) / 30, 1.0 + np.arange(46) / 15])
    (seen,) = _timed_run(smile, times, VideoOptions()).episodes
    (episode,) = _timed_run(smile, times, VideoOptions(), hidden=(1.2, 1.8)).episodes
    assert (episode.start_time, episode.end_time) == (seen.start_time, seen.end_time)
    assert episode.start_time == pytest.approx(0.6, abs=1 / 30)  # the first smiling row
    assert episode.end_time in times and not episode.truncated
    assert episode.onset == pytest.approx(seen.onset)
    assert episode.dmarker_dict()["onset.lip.duration"] == pytest.approx(0.3, abs=1 / 30)


@pytest.mark.parametrize("mode", ["lip", "auto", "single"])
@pytest.mark.parametrize("times", list(_VFR.values()), ids=list(_VFR))
def test_a_face_hidden_across_a_rate_change_keeps_real_frame_times(times, mode) -> None:
    """The frames where a face was hidden were placed evenly between its neighbours: in
    a variable-frame-rate video, hidden from 1.0 s to 1.8 s across the change of rate,
    the peak of its smile fell on one of them and was reported at 1.0117 s as frame 30,
    which is at 1.0 s (30 -> 15 frames/s; 0.9783 s for frame 15 at 1.0 s the other way
    round). Every reported time is now the time of the frame reported with it."""
    smile = SmileProfile(start=0.5, onset=0.3, apex=1.5, offset=0.4)
    options = VideoOptions(episodes=mode)
    (track,) = _timed_run(smile, times, options, hidden=(1.0, 1.8)).tracks
    (episode,) = track.episodes
    for name in ("start", "end", "peak"):
        frame, time = getattr(episode, f"{name}_frame"), getattr(episode, f"{name}_time")
        assert time == pytest.approx(times[frame], abs=1e-9), (name, frame, time)
    assert episode.peak_time == pytest.approx(1.0)  # a flat apex: its first frame


def test_outputs_list_only_what_was_written(tmp_path) -> None:
    """Without a face the summary listed the plot and best-frame folders, which were never
    created, and an annotated video path that already existed though nothing was written
    to it; only what was written is listed now."""
    from duchenne.faces import Faces

    class NoFace:
        with_smile = False

        def __call__(self, image: np.ndarray) -> Faces:
            return Faces.empty()

    plots, best, stale = tmp_path / "plots", tmp_path / "best", tmp_path / "old.mp4"
    stale.write_bytes(b"an earlier run")
    sides = {"plot_dir": plots, "best_dir": best, "prefetch": 0}
    empty = VideoAnalyzer(stage=NoFace()).analyze(cheap_frames(10), source_fps=25, **sides)
    assert empty.outputs == {} and not plots.exists() and not best.exists()
    nothing = VideoAnalyzer(stage=NoFace()).analyze([], source_fps=25, draw=stale, prefetch=0)
    assert "video" not in nothing.outputs
    stage = SyntheticFaceStage(REPEATED, 2.0)
    seen = VideoAnalyzer(stage=stage).analyze(cheap_frames(10), source_fps=25, best_dir=best)
    assert seen.outputs == {"best": str(best)} and (best / "face_0.jpg").exists()


def test_a_smile_already_on_when_the_face_appears_has_no_duchenne_marker() -> None:
    """The face appears at 0.8 s, in the apex: the AU6 baseline was the smile itself and
    the marker "no (AU6 0.00)"; it is unknown (null) now, and so is the face's marker,
    as its other smile (lip corners only) shows none."""
    from duchenne.cli.video import format_summary

    stage = SmilingStage(REPEATED, 2.0, visible=(20, 100))
    result = VideoAnalyzer(stage=stage).analyze(cheap_frames(100), source_fps=25, prefetch=0)
    (track,) = result.tracks
    cut, whole = track.episodes
    assert cut.truncated_by == ("track_start",) and cut.has_dynamics
    assert cut.duchenne_marker is None and cut.duchenne.au6_index is None
    assert cut.genuineness.contributions["au6"] == 0.0
    assert whole.duchenne_marker is False and whole.duchenne.au6_index is not None
    assert track.duchenne_marker is None  # not False: the first smile's is unknown
    doc = json.loads(json.dumps(result.to_dict()))
    first = doc["tracks"][0]["episodes"][0]
    assert first["duchenne_marker"] is None and first["duchenne"]["au6_index"] is None
    assert first["genuineness_detail"]["cues"]["au6_index"] is None
    assert doc["tracks"][0]["duchenne_marker"] is None
    smile_1, smile_2 = format_summary(result).splitlines()[2:4]
    assert "Duchenne marker: not measurable" in smile_1 and "AU6" not in smile_1
    assert "Duchenne marker: no (AU6 0.00)" in smile_2


def _summary_of(stage) -> tuple[VideoResult, str]:
    from duchenne.cli.video import format_summary

    result = VideoAnalyzer(stage=stage).analyze(cheap_frames(100), source_fps=25, prefetch=0)
    return result, format_summary(result)


def test_truncation_by_the_face_track_is_not_blamed_on_the_clip() -> None:
    """The text said "cut by the clip's start/end" for a smile cut by a face appearing
    and disappearing mid-clip; it says which now."""
    always = SmileProfile(start=-1.0, onset=0.04, apex=100.0, offset=0.4)  # smiling throughout
    result, text = _summary_of(SmilingStage(always, 20.0, visible=(25, 60)))
    (episode,) = result.episodes
    assert episode.truncated and episode.truncated_by == ("track_start", "track_end")
    assert "already smiling when the face is first seen at 1.00 s" in text
    assert "still smiling when the face is lost after 2.36 s" in text
    assert "clip" not in text.split("\n", 1)[1]
    result, text = _summary_of(SmilingStage(always, 20.0))
    (episode,) = result.episodes
    assert episode.truncated_by == ("track_start", "track_end")
    assert "already smiling when the clip starts" in text
    assert "still smiling when the clip ends" in text
    assert "first seen" not in text and "lost" not in text


def test_summary_times_are_rounded_as_in_the_rows(tmp_path) -> None:
    """Times such as 0.1 x 3 printed as 0.30000000000000004; they have the rows' 4
    decimals, so a summary time can be looked up in the table."""
    from duchenne.io.frames import Frame

    image = np.zeros((48, 64, 3), np.uint8)
    frames = [Frame(i, 0.1 * i, image) for i in range(60)]
    assert any(repr(f.time) != repr(round(f.time, 4)) for f in frames)  # the hazard exists
    stage = SmilingStage(SmileProfile(start=0.5, onset=0.5, apex=0.5, offset=0.5), 3.0, fps=10)
    path = tmp_path / "rows.jsonl"
    result = VideoAnalyzer(stage=stage).analyze(frames, source_fps=10, output=path, prefetch=0)
    doc = result.to_dict()
    track = doc["tracks"][0]
    times = [*doc["time_range"], track["first_time"], track["last_time"], track["best_time"]]
    assert len(track["episodes"]) == 2
    for ep in track["episodes"]:
        times += [ep["start_time"], ep["end_time"], ep["duration"], ep["peak_time"]]
        times += [*ep["onset"], *ep["apex"], *ep["offset"]]
        times += [ep["onset_duration"], ep["apex_duration"], ep["offset_duration"]]
    assert all(t == round(t, 4) for t in times), times
    assert doc["time_range"] == [0.0, 5.9] and track["last_time"] == 5.9
    assert json.dumps(doc).count("0000000") == 0
    row_times = {json.loads(line)["time"] for line in path.read_text().splitlines()}
    assert {ep["peak_time"] for ep in track["episodes"]} <= row_times
    assert track["best_time"] in row_times


def test_annotated_video_plays_in_real_time_at_a_variable_rate(tmp_path) -> None:
    """The annotated video was written at one constant rate (here the given 30 fps), so
    after 1 s at 30 fps the 2 s at 5 fps played in 0.33 s; its frames now keep the
    source's times (from the first frame on)."""
    av = pytest.importorskip("av", reason="frame timestamps need the 'video' extra (PyAV)")
    from duchenne.io.frames import Frame

    times = [3 + i / 30 for i in range(30)] + [4 + 0.2 * i for i in range(10)]
    image = np.zeros((240, 320, 3), np.uint8)
    frames = [Frame(i, t, image.copy()) for i, t in enumerate(times)]
    stage = SyntheticFaceStage(SmileProfile(start=0.5, onset=0.5, apex=0.5, offset=0.5), 3.0)
    path = tmp_path / "annotated.mp4"
    VideoAnalyzer(stage=stage).analyze(frames, source_fps=30, draw=path, prefetch=0)
    with av.open(str(path)) as container:
        written = [float(f.time) for f in container.decode(video=0)]
    assert written == pytest.approx([t - 3 for t in times], abs=1e-3)


@pytest.fixture(scope="module")
def all_stages() -> Analyzer:
    from duchenne.analysis.config import ALL_STAGES

    return Analyzer(threads=1, stages=ALL_STAGES)


@pytest.mark.parametrize(
    "stages",
    [
        ("detect", "landmarks", "geometry", "smile"),  # the default
        ("detect", "smile"),
        ("detect",),
        ("detect", "landmarks", "geometry", "blendshapes", "smile"),
    ],
    ids=lambda s: "+".join(s),
)
def test_a_video_without_a_face_still_gets_the_table_columns(all_stages, tmp_path, stages):
    """No face in any frame gave a 0-byte CSV (pandas: EmptyDataError) and a Parquet
    without columns; both now have the columns a video with faces gets."""
    pd = pytest.importorskip("pandas")
    pq = pytest.importorskip("pyarrow.parquet")
    from tests.video_factory import write_video

    analyzer = all_stages.with_options(stages=stages)
    wall = write_video(tmp_path / "wall.avi", cheap_frames(6, (160, 120)), 10.0)
    clip = one_face_clip().path
    for suffix in ("csv", "parquet"):
        faces = analyze_video(analyzer, clip, output=tmp_path / f"faces.{suffix}", every=15)
        empty = analyze_video(analyzer, wall, output=tmp_path / f"empty.{suffix}")
        assert faces.rows_written == 5 and empty.rows_written == 0 and not empty.tracks
    with_faces = pd.read_csv(tmp_path / "faces.csv")
    without = pd.read_csv(tmp_path / "empty.csv")
    assert len(with_faces) == 5 and len(without) == 0
    assert list(without.columns) == list(with_faces.columns)
    assert list(with_faces.columns[:4]) == ["time", "frame", "face", "detected"]
    assert ("smile" in with_faces.columns) is ("smile" in stages)
    assert ("geometry.yaw" in with_faces.columns) is ("geometry" in stages)
    assert any(c.startswith("blendshapes.") for c in with_faces.columns) is (
        "blendshapes" in stages
    )
    schema = pq.read_schema(tmp_path / "empty.parquet")
    assert schema == pq.read_schema(tmp_path / "faces.parquet")
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_a_face_hidden_across_its_onset_leaves_the_onset_unmeasured() -> None:
    """Hidden on frames 14-18 (0.56-0.76 s) of a 0.5-0.8 s onset: the gap was filled by a
    straight line and the onset, its D-Markers and its genuineness terms measured on it.
    The episode now names the phases it did not see; their durations, D-Markers and
    terms are null and no classifier reads them. The next smile, seen whole, is measured
    exactly as without the gap."""
    run = {
        hidden: VideoAnalyzer(stage=SmilingStage(REPEATED, 2.0, hidden=hidden)).analyze(
            cheap_frames(100), source_fps=25, prefetch=0
        )
        for hidden in (None, (14, 19))
    }
    (whole, next_whole), (episode, next_seen) = run[None].episodes, run[(14, 19)].episodes
    assert whole.unobserved == () and "onset" in episode.unobserved
    assert episode.onset is not None and episode.has_dynamics  # the span, for the plot
    doc = json.loads(json.dumps(run[(14, 19)].to_dict(dmarkers=True)))
    first = doc["tracks"][0]["episodes"][0]
    assert first["unobserved"] == list(episode.unobserved) and first["onset_duration"] is None
    from duchenne.cli.video import format_summary  # the text summary says so too

    text = format_summary(run[(14, 19)])
    assert "[face hidden during the onset" in text and "not measured]" in text
    assert "face hidden" not in format_summary(run[None])
    assert first["offset_duration"] == pytest.approx(whole.offset[1] - whole.offset[0])
    assert {v for k, v in first["dmarkers"].items() if k.startswith("onset.")} == {None}
    assert first["genuineness_detail"]["cues"]["onset_duration"] is None
    assert first["genuineness_detail"]["contributions"]["onset"] == 0.0
    assert episode.classifier_probability is None
    assert next_seen.unobserved == () and next_seen.onset == next_whole.onset
    assert np.array_equal(next_seen.dmarkers, next_whole.dmarkers)
    assert next_seen.genuineness.score == next_whole.genuineness.score


def test_a_face_without_landmarks_on_its_first_frames_has_no_rest_before_its_smile() -> None:
    """Face Mesh gave nothing on frames 0-15 (0-0.6 s, into the 0.5-0.8 s onset): the gap
    was held at the first value seen, part way up, which read as a face at rest; the AU6
    baseline was taken there ("no", AU6 index about 0). It is not measurable now."""

    class LateLandmarks(SmilingStage):
        def __call__(self, image: np.ndarray):
            i = self.i
            faces = super().__call__(image)
            if i < 16 and len(faces):
                faces.landmarks = np.full_like(faces.landmarks, np.nan)
            return faces

    result = VideoAnalyzer(stage=LateLandmarks(REPEATED, 2.0)).analyze(
        cheap_frames(100), source_fps=25, prefetch=0
    )
    first, second = result.episodes
    assert first.has_dynamics and "onset" in first.unobserved
    assert first.duchenne_marker is None and first.duchenne.au6_index is None
    assert first.genuineness.contributions["au6"] == 0.0
    assert first.genuineness.cues["symmetry"] is None
    assert second.unobserved == () and second.duchenne_marker is False


# -- scene cuts ------------------------------------------------------------------------


def _portrait(analyzer: Analyzer, image: np.ndarray) -> np.ndarray:
    """A 320 x 240 frame with the photo's face, 90 px wide, at its centre."""
    import cv2

    box = analyzer.detect(image).xyxy[0]
    scale = 90.0 / float(box[2] - box[0])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    warp = np.array([[scale, 0, 160 - cx * scale], [0, scale, 120 - cy * scale]])
    return cv2.warpAffine(image, warp, (320, 240), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def portraits(analyzer) -> tuple[np.ndarray, np.ndarray]:
    from duchenne import data
    from duchenne.io.image import load_image

    hopper = load_image(Path(__file__).parents[1] / "data" / "grace_hopper.jpg")
    return _portrait(analyzer, data.astronaut()), _portrait(analyzer, hopper)


@pytest.mark.parametrize("detect_every", [10, 1])
def test_a_hard_cut_to_another_person_ends_the_track(analyzer, portraits, detect_every) -> None:
    """Two portraits cut together, the faces at the same place: the landmark ROI of the
    first face found the second one and the track went on, one "face" for two people
    (its smile signals measured against the other's neutral face)."""
    first, second = portraits
    frames = [first] * 12 + [second] * 12
    result = analyze_video(
        analyzer, frames, source_fps=25, options=VideoOptions(detect_every=detect_every)
    )
    assert result.scene_cuts == 1
    assert [(t.first_frame, t.last_frame) for t in result.tracks] == [(0, 11), (12, 23)]
    assert result.to_dict()["scene_cuts"] == 1
    off = VideoOptions(detect_every=detect_every, scene_cuts=False)
    kept = analyze_video(analyzer, frames, source_fps=25, options=off)
    assert kept.scene_cuts == 0 and len(kept.tracks) == 1  # what it did before


def test_camera_motion_and_light_changes_are_not_cuts(portraits) -> None:
    import cv2

    from duchenne.analysis.video.cuts import CutDetector

    first, second = portraits
    turn = cv2.getRotationMatrix2D((160, 120), 5, 1.1)  # a shake: 5 degrees, 10 % zoom
    shaken = cv2.warpAffine(first, turn, (320, 240), borderMode=cv2.BORDER_REFLECT)
    moved = [
        np.roll(first, 32, axis=1),  # a pan of a tenth of the frame in one frame
        shaken,
        np.clip(first * 1.6 + 20, 0, 255).astype(np.uint8),  # a flash
        (first * 0.4).astype(np.uint8),  # the light goes down
    ]
    for image in moved:
        cuts = CutDetector()
        assert [cuts(first), cuts(image), cuts(first)] == [False, False, False]
    cuts = CutDetector()
    assert [cuts(first), cuts(second), cuts(second), cuts(first)] == [False, True, False, True]
    cuts.reset()
    assert not cuts(second)  # the first frame of a video is no cut


def test_video_frames_under_1400_px_are_not_tiled(monkeypatch) -> None:
    """Photos are tiled at any size (small far faces), video frames only from
    ``VIDEO_TILE_MIN_SIDE``: the detector runs every few frames, and tiles made a
    1280x720 detection about 10x slower."""
    from duchenne.analysis.video.face_stage import VIDEO_TILE_MIN_SIDE

    analyzer = Analyzer(stages=("detect",), threads=1)
    real = analyzer.detector.tiles
    seen: list[int] = []

    def counted(w: int, h: int, min_side: int | None = None) -> list:
        windows = real(w, h, min_side)
        seen.append(len(windows))
        return windows

    monkeypatch.setattr(analyzer.detector, "tiles", counted)
    frames = [np.zeros((480, 640, 3), np.uint8)] * 3
    VideoAnalyzer(analyzer).analyze(frames, source_fps=25, prefetch=0)
    assert seen and not any(seen)
    assert real(640, 480) and not real(640, 480, VIDEO_TILE_MIN_SIDE)
    assert real(1920, 1080, VIDEO_TILE_MIN_SIDE)
