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


def _measured(start: float, end: float, k: int = 0, trained: float | None = None) -> EpisodeResult:
    """A fully measured episode (phases, AU6 marker, genuineness)."""
    from duchenne.analysis.authenticity import DuchenneResult, GenuinenessResult

    return replace(
        _episode_without_landmarks(start, end),
        index=k,
        onset=(start, start + 0.3 * (end - start)),
        apex=(start + 0.3 * (end - start), start + 0.6 * (end - start)),
        offset=(start + 0.6 * (end - start), end),
        peak_amplitude=0.1,
        duchenne=DuchenneResult(True, 0.6, 0.2, 0.05, 0.25, 1.17),
        genuineness=GenuinenessResult(0.7, {}, {}),
        classifier_probability=trained,
    )


def _spy_annotations(monkeypatch) -> list[Any]:
    made: list[Any] = []
    annotate = Axes.annotate

    def spy(self: Axes, *args: Any, **kw: Any) -> Any:
        made.append(annotate(self, *args, **kw))
        return made[-1]

    monkeypatch.setattr(Axes, "annotate", spy)
    return made


def test_episode_labels_never_print_over_one_another(tmp_path, monkeypatch) -> None:
    """Twenty smiles in 10 s (or hundreds in a long video) printed their labels on top
    of one another, an unreadable band; the ones that would overlap are now hidden, and
    the note says how many."""
    made = _spy_annotations(monkeypatch)
    t = np.arange(0, 10, 1 / 30)
    timeline = np.column_stack([t, 5 + np.sin(t), np.full_like(t, 0.5), 0.5 + 0.02 * np.sin(t),
                                np.full_like(t, 0.3), np.full_like(t, 1.0)])  # fmt: skip
    episodes = [_measured(k * 0.5, k * 0.5 + 0.45, k) for k in range(20)]
    summary = SimpleNamespace(track_id=0, n_frames=len(t), best_time=None, episodes=episodes)
    plot_track(timeline, summary, tmp_path / "face_0.png", fps=30)
    labels = [a for a in made if "genuine*" in a.get_text()]
    assert len(labels) == 20
    renderer = labels[0].figure.canvas.get_renderer()
    shown = sorted(
        (a.get_window_extent(renderer) for a in labels if a.get_visible()), key=lambda b: b.x0
    )
    assert 2 <= len(shown) < 20
    assert all(left.x1 <= right.x0 for left, right in zip(shown, shown[1:], strict=False))
    note = next(a for a in made if "heuristic" in a.get_text())
    assert f"{20 - len(shown)} of 20 smile labels hidden" in note.get_text()


def test_far_apart_labels_are_all_shown_with_the_trained_probability(tmp_path, monkeypatch) -> None:
    """The summary prints the trained classifier's P(spontaneous) beside the heuristic;
    the plot showed only the unvalidated heuristic."""
    made = _spy_annotations(monkeypatch)
    t = np.arange(0, 20, 0.1)
    timeline = np.full((len(t), 6), np.nan)
    timeline[:, 0], timeline[:, 3] = t, 0.5
    episodes = [_measured(2, 4, 0, trained=0.91), _measured(12, 14, 1)]
    summary = SimpleNamespace(track_id=0, n_frames=len(t), best_time=None, episodes=episodes)
    plot_track(timeline, summary, tmp_path / "face_0.png", fps=10)
    labels = [a for a in made if "genuine*" in a.get_text()]
    assert [a.get_text() for a in labels] == [
        "Duchenne\ngenuine* 0.70\ntrained P 0.91",
        "Duchenne\ngenuine* 0.70",
    ]
    assert all(a.get_visible() for a in labels)
    assert not any("hidden" in a.get_text() for a in made)


@pytest.mark.parametrize("n", [1, 50])
def test_the_time_axis_spans_the_track_even_with_nothing_to_draw(tmp_path, monkeypatch, n) -> None:
    """A track without landmarks or smile score (every value NaN) had a time axis of
    -0.04 to 0.04 s instead of its 0-1.6 s, and a lone sample (a one-frame track) was not
    drawn at all: a line needs two points."""
    axes: list[Axes] = []
    plot = Axes.plot

    def spy(self: Axes, *args: Any, **kw: Any) -> Any:
        axes.append(self)
        return plot(self, *args, **kw)

    monkeypatch.setattr(Axes, "plot", spy)
    timeline = np.full((n, 6), np.nan)
    timeline[:, 0] = 2.0 + np.arange(n) / 30
    if n == 1:
        timeline[0, 1:] = (5.0, 0.4, 0.5, 0.3, 1.0)
    summary = SimpleNamespace(track_id=0, n_frames=n, best_time=None, episodes=[])
    plot_track(timeline, summary, tmp_path / "face_0.png", fps=30)
    lo, hi = axes[-1].get_xlim()
    assert lo <= 2.0 and hi >= timeline[-1, 0] and hi - lo < 2.0
    if n == 1:  # the lone sample is drawn as a marker on both panels
        marked = [ln for ax in set(axes) for ln in ax.lines if ln.get_marker() == "o"]
        assert len(marked) == 4  # score + lip, eyelid, cheek
