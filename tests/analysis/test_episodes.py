"""Smile episodes from P(smile) runs (``smiling_episodes``); the ``D_lip`` segmentation
(``find_episodes``, ``split_phases``) is tested with the signals in test_dynamics.py."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.analysis.episodes import smiling_episodes


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
