"""The per-face timeline PNG (``duchenne video --plot``)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")  # the optional ``plot`` extra
from matplotlib.axes import Axes  # noqa: E402

from duchenne.analysis.timeline_plot import plot_track  # noqa: E402
from duchenne.analysis.video import EpisodeResult  # noqa: E402


def _episode_without_landmarks(start: float, end: float) -> EpisodeResult:
    """An episode as ``--stages detect,smile`` finds it: a smiling run, nothing measured."""
    return EpisodeResult(
        track_id=0, index=0, start_time=start, end_time=end, onset=None, apex=None,
        offset=None, start_frame=int(start * 10), end_frame=int(end * 10),
        peak_time=(start + end) / 2, peak_frame=int(5 * (start + end)), peak_amplitude=None,
        peak_smile_score=9.0, truncated=False, duchenne=None, genuineness=None, dmarkers=None,
    )  # fmt: skip


def test_episodes_without_phases_are_shaded_whole_and_labelled(tmp_path, monkeypatch) -> None:
    """With ``--stages detect,smile`` the plot showed no episode at all: only phased
    episodes were shaded (and labelling one without phases would have failed)."""
    spans: list[tuple[float, float, str]] = []
    notes: list[str] = []
    axvspan, annotate = Axes.axvspan, Axes.annotate

    def spy_span(self: Axes, a: float, b: float, **kw: Any) -> Any:
        spans.append((a, b, kw["color"]))
        return axvspan(self, a, b, **kw)

    def spy_note(self: Axes, text: str, *args: Any, **kw: Any) -> Any:
        notes.append(text)
        return annotate(self, text, *args, **kw)

    monkeypatch.setattr(Axes, "axvspan", spy_span)
    monkeypatch.setattr(Axes, "annotate", spy_note)
    t = np.arange(0, 4, 0.1)
    timeline = np.full((len(t), 6), np.nan)
    timeline[:, 0], timeline[:, 1] = t, np.where((t >= 1) & (t <= 3), 9.0, 2.0)
    summary = SimpleNamespace(
        track_id=0, n_frames=len(t), best_time=2.0, episodes=[_episode_without_landmarks(1, 3)]
    )
    path = plot_track(timeline, summary, tmp_path / "face_0.png", fps=10)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert len(spans) == 2  # one grey span on each panel (score, signals)
    assert {(a, b) for a, b, _ in spans} == {(1, 3)}
    assert not {c for *_, c in spans} & {"#9ad19a", "#3c9b4a", "#f2b774"}  # no phase colours
    assert notes == ["smile\n(no phase data)"]  # no "heuristic" note either


def test_an_unmeasurable_duchenne_marker_is_not_labelled_no_au6(tmp_path, monkeypatch) -> None:
    """A smile with no face at rest before it has an unknown AU6 marker (None); the plot
    labelled it "no AU6", as if measured."""
    from duchenne.analysis.authenticity import DuchenneResult, GenuinenessResult

    notes: list[str] = []
    annotate = Axes.annotate

    def spy_note(self: Axes, text: str, *args: Any, **kw: Any) -> Any:
        notes.append(text)
        return annotate(self, text, *args, **kw)

    monkeypatch.setattr(Axes, "annotate", spy_note)
    unknown = DuchenneResult(None, None, None, None, None, None)
    measured = DuchenneResult(False, 0.1, 0.02, 0.01, 0.25, 1.17)
    episodes = [
        replace(
            _episode_without_landmarks(start, start + 1),
            index=k,
            onset=(start, start + 0.3),
            apex=(start + 0.3, start + 0.6),
            offset=(start + 0.6, start + 1),
            peak_amplitude=0.1,
            duchenne=duchenne,
            genuineness=GenuinenessResult(0.5, {}, {}),
        )
        for k, (start, duchenne) in enumerate(((0.0, unknown), (2.0, measured)))
    ]
    t = np.arange(0, 4, 0.1)
    timeline = np.full((len(t), 6), np.nan)
    timeline[:, 0], timeline[:, 3] = t, 0.5
    summary = SimpleNamespace(track_id=0, n_frames=len(t), best_time=2.0, episodes=episodes)
    plot_track(timeline, summary, tmp_path / "face_0.png", fps=10)
    labels = [n for n in notes if "genuine*" in n]
    assert labels == ["AU6 unknown\ngenuine* 0.50", "no AU6\ngenuine* 0.50"]
