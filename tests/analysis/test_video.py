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
