"""Smile episodes from P(smile) runs (``smiling_episodes``); the ``D_lip`` segmentation
(``find_episodes``, ``split_phases``) is tested with the signals in test_dynamics.py."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.analysis.episodes import (
    onset_start_observed,
    single_episode,
    smiling_episodes,
    split_phases,
    unobserved_phases,
)


def _smile_with_gap(fps: float, gap_s: float, fill: float) -> np.ndarray:
    """P(smile) 0.9 for 2 s, ``fill`` for ``gap_s`` seconds from 1 s (rest 0.1 around)."""
    n = int(round(4 * fps))
    p = np.full(n, 0.1)
    p[int(round(0.5 * fps)) : int(round(2.5 * fps))] = 0.9
    a = int(round(1.0 * fps))
    p[a : a + int(round(gap_s * fps))] = fill
    return p


@pytest.mark.parametrize("fps", [25.0, 30.0, 50.0])
def test_a_gap_shorter_than_min_duration_is_bridged_at_any_frame_rate(fps: float) -> None:
    """A 0.24 s lapse of the classifier split the smile at 25 and 50 fps (gaps were
    compared with round(0.25 x fps) frames: 6 and 12 frames, which are 0.24 s) but not
    at 30 fps; a 0.32 s lapse splits it at every rate."""
    short = _smile_with_gap(fps, 0.24, 0.1)
    (episode,) = smiling_episodes(np.full(len(short), 0.5), short, fps, min_duration=0.25)
    assert episode.start_frame == round(0.5 * fps) and episode.end_frame == round(2.5 * fps) - 1
    long = _smile_with_gap(fps, 0.32, 0.1)
    assert len(smiling_episodes(np.full(len(long), 0.5), long, fps, min_duration=0.25)) == 2


def test_a_hidden_face_does_not_split_its_smile() -> None:
    """Frames where the face was hidden (NaN P(smile), 0.6 s here, longer than
    ``min_duration``) inside a smile counted as not smiling: one smile became two
    episodes, the first without an offset and the second without an onset."""
    fps = 25.0
    p = _smile_with_gap(fps, 0.6, np.nan)
    lip = 0.5 + 0.1 * (np.nan_to_num(p, nan=0.9) > 0.5)
    (episode,) = smiling_episodes(lip, p, fps)
    assert (episode.start_frame, episode.end_frame) == (12, 61)
    assert not episode.truncated


@pytest.mark.parametrize(
    ("where", "expected"),
    [("start", [(15, 61)]), ("end", [(12, 24)]), ("rest", [(12, 61)])],
)
def test_a_hidden_stretch_is_smiling_only_between_two_smiling_frames(where, expected) -> None:
    """Unknown frames next to a frame at rest, or at either end of the signal, are not
    smiling; between two smiling frames they are."""
    fps = 25.0
    p = _smile_with_gap(fps, 0.0, 0.9)
    if where == "start":
        p[10:15] = np.nan  # hidden from rest into the smile
    elif where == "end":
        p[25:] = np.nan  # hidden until the end
    else:
        p[:5] = np.nan  # hidden at the start, at rest before the smile
        p[70:] = np.nan  # and at the end
    episodes = smiling_episodes(np.full(len(p), 0.5), p, fps)
    assert [(e.start_frame, e.end_frame) for e in episodes] == expected


def test_phases_reach_the_feet_of_the_smile_around_the_smiling_run() -> None:
    """The classifier calls a face smiling part way up the rise (here from 35 % of it); the
    onset was cut at that frame (frames 37-50 of a rise over 30-50: shorter and steeper)
    and the offset likewise. The phases are those of ``D_lip``; the episode spans the
    smiling frames."""
    fps = 25.0
    level = np.interp(np.arange(150), [0, 30, 50, 80, 105, 149], [0, 0, 1, 1, 0, 0])
    d_lip = 0.5 + 0.1 * level
    p = np.where(level > 0.33, 0.9, 0.1)
    (episode,) = smiling_episodes(d_lip, p, fps)
    assert (episode.start_frame, episode.end_frame) == (37, 96)  # the smiling frames
    assert episode.onset == (30, 50) and episode.offset == (80, 105)
    assert episode.peak_amplitude == pytest.approx(0.1)


def test_the_phases_of_neighbouring_smiles_stop_at_the_valley_between_them() -> None:
    fps = 25.0
    level = np.interp(
        np.arange(120), [0, 10, 20, 35, 45, 55, 70, 80, 119], [0, 0, 1, 1, 0.4, 1, 1, 0, 0]
    )
    p = np.where(level > 0.7, 0.9, 0.1)
    first, second = smiling_episodes(0.5 + 0.1 * level, p, fps)
    assert first.offset[1] == 45 and second.onset[0] == 45
    assert first.onset == (10, 20) and second.offset == (70, 80)


def _ramp_smile() -> np.ndarray:
    """Rest 0-29, onset 30-50, apex 50-80, offset 80-105, rest (D_lip 0.5 -> 0.6)."""
    level = np.interp(np.arange(150), [0, 30, 50, 80, 105, 149], [0, 0, 1, 1, 0, 0])
    return 0.5 + 0.1 * level


@pytest.mark.parametrize(
    ("hidden", "unseen", "start_seen"),
    [
        ((), (), True),
        ((5, 20), (), True),  # at rest, clear of the phases
        ((29, 30), ("onset",), False),  # the frame before the onset: where did it start?
        ((40, 45), ("onset",), True),  # inside the onset: its start was seen
        ((50, 51), ("onset", "apex"), True),  # the onset's top is the apex's start
        ((60, 65), ("apex",), True),
        ((106, 107), ("offset",), True),  # the frame after the offset
        ((107, 120), (), True),
        ((0, 45), ("onset",), False),  # first frames hidden, into the rise
    ],
)
def test_phases_over_unobserved_frames_are_named(hidden, unseen, start_seen) -> None:
    """A phase is unobserved when a hidden frame lies in it, in the run its ends were
    searched on, or next to them; the onset's start is seen when the frames from the one
    before its run to its first frame are."""
    d = _ramp_smile()
    observed = np.ones(len(d), bool)
    if hidden:
        observed[hidden[0] : hidden[1]] = False
    ep = single_episode(d, 25.0)
    assert (ep.onset, ep.apex, ep.offset) == ((30, 50), (50, 80), (80, 105))
    assert unobserved_phases(ep, observed) == unseen
    assert onset_start_observed(ep, observed) is start_seen
    assert unobserved_phases(ep, None) == () and onset_start_observed(ep, None)


def test_a_phase_searched_over_hidden_frames_is_unobserved_though_its_span_is_not() -> None:
    """The onset's ends are refined inside the run they were found on (10-90 % crossings
    extrapolated): on a noisy floor the run starts frames before the refined onset, and a
    hidden frame there decided its 0 % level."""
    d = _ramp_smile()
    d[20:30] += np.r_[0.0, 0.004, 0.0, 0.003, 0.0, 0.002, 0.001, 0.0, 0.001, 0.0]
    ep = split_phases(d, 25.0, 0, len(d) - 1, 0.5)
    run_first, _ = ep.onset_run
    assert run_first < ep.onset[0]
    observed = np.ones(len(d), bool)
    observed[run_first] = False
    assert unobserved_phases(ep, observed) == ("onset",)
    assert ep.to_dict()["onset_run"] == list(ep.onset_run)
