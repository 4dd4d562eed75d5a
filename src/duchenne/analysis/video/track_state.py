"""Compact running state of one face track: signal window, episodes, timeline, best frame.

A :class:`TrackState` knows its video only through a :class:`TrackContext` (settings, rate,
the episode classifier), so it never imports the session that owns it; the session writes
a finished track's side outputs (plot, best frame) itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from duchenne.analysis.authenticity import assess_episode
from duchenne.analysis.authenticity_classifier import episode_deep_features
from duchenne.analysis.dmarkers import dmarker_vector
from duchenne.analysis.dynamics import LANDMARKS, SmileSignals, compute_signals, resample_even
from duchenne.analysis.episodes import (
    SmileEpisode,
    find_episodes,
    single_episode,
    smiling_episodes,
    unobserved_phases,
)
from duchenne.analysis.video.buffers import _Column, _Decimator
from duchenne.analysis.video.options import VideoOptions, frame_feature_names, frame_features
from duchenne.analysis.video.outputs import _crop
from duchenne.analysis.video.results import EpisodeResult, TrackSummary
from duchenne.face.blendshapes import TIMELINE_CHANNELS, timeline_channels
from duchenne.faces import DEFAULT_SMILE_THRESHOLD, Faces
from duchenne.io.frames import Frame

SIGNAL_FIELDS: tuple[str, ...] = SmileSignals.SIGNALS  # the per-frame signal columns


# column layout of the per-track buffer: time, frame, smile score, smile, the blendshape
# timeline channels (TIMELINE_CHANNELS; NaN without the stage), then x, y of the Face Mesh
# points the smile signals use
_USED = np.array(sorted(set(LANDMARKS.values())), dtype=np.intp)
_T, _F, _SCORE, _SMILE, _BS = 0, 1, 2, 3, 4
_PTS = _BS + len(TIMELINE_CHANNELS)
_WIDTH = _PTS + 2 * len(_USED)
#: timeline columns: time, smile score, smile, D lip, D eyelid, D cheek, blendshape channels
TIMELINE_WIDTH = 6 + len(TIMELINE_CHANNELS)
_CHUNK = 64  # frames per compute_signals call (bounds its temporary arrays to ~2 MB)
#: seconds kept before a pending smile's onset at a window cut: the AU6 baseline (0.1 s)
#: and the smoothing kernel (3 sigma = 0.15 s) reach that far back
_LEAD_S = 0.25


def _argmax(values: np.ndarray) -> int:
    """Index of the largest finite value (0 if none is finite)."""
    finite = np.isfinite(values)
    return int(np.argmax(np.where(finite, values, -np.inf))) if finite.any() else 0


def _first_row(episode: SmileEpisode, lead: int) -> int:
    """The first buffer row a smile still going on at a window cut needs.

    ``lead`` rows before its onset's foot, which lies before its first smiling frame when
    the episodes are the smiling runs (``smiling_episodes``), so that the next window
    measures the whole rise with the frames before it (the smoothing, the derivatives and
    the AU6 baseline reach back over them); but never the buffer's first row: a rise as
    long as the window would leave nothing to cut, and the smile is then cut at its first
    smiling frame, as before.
    """
    first = episode.onset[0] - lead
    return first if 0 < first < episode.start_frame else episode.start_frame


def _on_rows(episode: SmileEpisode, rows: np.ndarray) -> SmileEpisode:
    """``episode`` found on the even time grid, with its frames mapped through ``rows``
    (grid index -> nearest buffer row)."""

    def phase(p: tuple[int, int]) -> tuple[int, int]:
        return int(rows[p[0]]), int(rows[p[1]])

    return replace(
        episode,
        start_frame=int(rows[episode.start_frame]),
        end_frame=int(rows[episode.end_frame]),
        onset=phase(episode.onset),
        apex=phase(episode.apex),
        offset=phase(episode.offset),
        peak_frame=int(rows[episode.peak_frame]),
        onset_run=None if episode.onset_run is None else phase(episode.onset_run),
        offset_run=None if episode.offset_run is None else phase(episode.offset_run),
    )


def _nearest_rows(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index of the frame time nearest each grid time (``times`` increasing)."""
    right = np.clip(np.searchsorted(times, grid), 1, len(times) - 1)
    left = right - 1
    return np.where(grid - times[left] <= times[right] - grid, left, right)


def _signals_of(points: np.ndarray, reference: np.ndarray | None) -> SmileSignals:
    """Raw D signals of (T, len(_USED), 2) points against the reference frame's points.

    ``compute_signals`` takes full Face Mesh arrays; the points it does not use are NaN,
    and it runs on chunks with the reference frame prepended (frame 0 of each call).
    """
    n = len(points)
    out = {name: np.full(n, np.nan) for name in SIGNAL_FIELDS}
    if reference is None or n == 0:
        return SmileSignals(**out)
    for a in range(0, n, _CHUNK):
        chunk = points[a : a + _CHUNK]
        full = np.full((len(chunk) + 1, 468, 2), np.nan)
        full[0, _USED] = reference
        full[1:, _USED] = chunk
        try:
            sig = compute_signals(full, reference_frame=0)
        except ValueError:  # degenerate reference: no signal
            return SmileSignals(**out)
        for name in SIGNAL_FIELDS:
            out[name][a : a + len(chunk)] = getattr(sig, name)[1:]
    return SmileSignals(**out)


@dataclass(frozen=True)
class TrackContext:
    """What every track of one video shares.

    Attributes:
        options: the video's :class:`VideoOptions`.
        fps: rate of the analysed frames.
        with_smile: a smile model runs (decides the per-frame feature vector).
        keep_best: keep the smiliest frame's crop (a best-frame folder was asked for).
        classify: the trained classifier's P(spontaneous) of an episode from its
            D-Markers and deep features (None without a classifier).
        smile_threshold: P(smile) from which a frame is smiling (episodes ``auto``).
    """

    options: VideoOptions
    fps: float
    with_smile: bool = False
    keep_best: bool = False
    classify: Callable[[np.ndarray, np.ndarray | None], float | None] = lambda dm, f: None
    smile_threshold: float = DEFAULT_SMILE_THRESHOLD


class TrackState:
    """Compact running state of one face track (see the module docstring)."""

    def __init__(self, track_id: int, context: TrackContext) -> None:
        self.id = track_id
        self.s = context
        opts = context.options
        self.buffer = _Column(_WIDTH)
        width = len(frame_feature_names(context.with_smile))
        self.features = _Column(width) if opts.collect_features else None
        self.timeline = _Decimator(opts.timeline_points, TIMELINE_WIDTH)
        self._fed = 0  # leading buffer rows already added to the timeline
        self.reference: np.ndarray | None = None
        # (time, frame number) of the analysed frames since the last row where this face
        # was not found (:meth:`miss`); bounded: the tracker ends a face missing too long
        self._missed: list[tuple[float, int]] = []
        self.first_time = self.last_time = math.nan
        self.first_frame = self.last_frame = -1
        self.n_frames = 0
        self.smile_sum = 0.0
        self.smile_n = 0
        self.peak_smile: float | None = None
        self.best: tuple[float, float, int] | None = None  # value, time, frame
        self.best_crop: np.ndarray | None = None
        self.episodes: list[EpisodeResult] = []
        # what the buffer's first row is: the track's first frame ("track"), a frame at
        # rest or a pending smile's first frame after a window cut ("rest"), or a frame
        # in the middle of a smile longer than the window ("window")
        self._head = "track"

    # -- per frame ---------------------------------------------------------------------

    def add(self, frame: Frame, faces: Faces, i: int, raw: np.ndarray | None) -> None:
        """Record face ``i`` of ``faces`` on ``frame``.

        ``raw``: the face's unfiltered landmarks, used for the signals when
        ``signal_landmarks="raw"``.
        """
        self._fill_gap()
        use_raw = self.s.options.signal_landmarks == "raw" and raw is not None
        lm = raw if use_raw else (None if faces.landmarks is None else faces.landmarks[i])
        row = np.full(_WIDTH, np.nan)
        row[_T], row[_F] = frame.time, frame.index
        score = None if faces.smile_score is None else float(faces.smile_score[i])
        if score is not None:
            row[_SCORE] = score
        if faces.smile is not None:
            row[_SMILE] = float(faces.smile[i])
        if faces.blendshapes is not None:
            row[_BS:_PTS] = timeline_channels(faces.blendshapes[i])
        if lm is not None and len(lm) > _USED[-1]:
            pts = np.asarray(lm[_USED, :2], np.float64)
            if np.all(np.isfinite(pts)):
                row[_PTS:] = pts.ravel()
                if self.reference is None:
                    self.reference = pts
        self.buffer.append(row)
        if self.features is not None:
            self.features.append(frame_features(faces, i, self.s.with_smile))
        self._count(frame, score)
        if score is not None:
            self._maybe_best(frame, faces, i, score)
        elif "lip_corner_elevation" in faces.data:
            self._maybe_best(frame, faces, i, float(faces.data["lip_corner_elevation"][i]))
        windowed = self.s.options.episodes in ("auto", "lip", "none")
        if windowed and self._span() >= self.s.options.window_s:
            self.flush(final=False)

    def miss(self, frame: Frame) -> None:
        """Note an analysed ``frame`` on which this face, still tracked, was not found."""
        self._missed.append((frame.time, frame.index))

    def _fill_gap(self) -> None:
        """NaN rows for the analysed frames where this face was missing, at their times
        and frame numbers.

        Why the real ones: the rows were spaced evenly between their neighbours, which is
        right only at a constant rate. In a variable-frame-rate video (or one whose lost
        frames left a jump in the numbers) an episode boundary or peak that fell on such
        a row was reported at a time no frame had, with a frame number of another time,
        and the even grid of the dynamics took its P(smile) from the wrong rows.
        """
        missed, self._missed = self._missed, []
        if not self.buffer.n:  # nothing before the gap to bridge from
            return
        for time, index in missed:
            row = np.full(_WIDTH, np.nan)
            row[_T], row[_F] = time, index
            self.buffer.append(row)
            if self.features is not None:
                self.features.append(np.full(self.features.data.shape[1], np.nan))

    def _count(self, frame: Frame, score: float | None) -> None:
        if self.n_frames == 0:
            self.first_time, self.first_frame = frame.time, frame.index
        self.last_time, self.last_frame = frame.time, frame.index
        self.n_frames += 1
        if score is not None and math.isfinite(score):
            self.smile_sum += score
            self.smile_n += 1
            self.peak_smile = score if self.peak_smile is None else max(self.peak_smile, score)

    def _maybe_best(self, frame: Frame, faces: Faces, i: int, value: float) -> None:
        if not math.isfinite(value) or (self.best is not None and value <= self.best[0]):
            return
        self.best = (value, frame.time, frame.index)
        if self.s.keep_best:
            self.best_crop = _crop(frame.image, faces.xyxy[i], self.s.options.best_margin)

    def _span(self) -> float:
        view = self.buffer.view()
        return float(view[-1, _T] - view[0, _T]) if len(view) > 1 else 0.0

    # -- episodes ----------------------------------------------------------------------

    def flush(self, final: bool) -> None:
        """Segment and measure the smiles in the buffer; cut it (or empty it if ``final``).

        With a smile model (``episodes="auto"``) the episodes are the runs of smiling
        frames whatever stages ran; without landmarks (no ``D_lip``) they are cut the same
        way but their landmark measurements (phases, D-Markers, AU6, genuineness) are None.
        """
        data = self.buffer.view()
        n = len(data)
        if n == 0:
            return
        fps = self.s.fps
        raw = _signals_of(data[:, _PTS:].reshape(n, -1, 2), self.reference)
        # the dynamics run on samples 1/fps apart: the rows, or their even grid
        series, smile, grid, rows = self._even(data, raw)
        m = len(series)
        usable = m >= 3 and bool(np.isfinite(series.lip).any())
        signals = series.smoothed(fps) if usable else series
        mode = self.s.options.episodes
        by_smile = mode == "auto" and bool(np.isfinite(smile).any())
        episodes: list[SmileEpisode] = []
        if usable and mode == "single":
            episodes = [single_episode(signals.lip, fps)]
        elif by_smile:
            # without a usable D_lip the runs are cut on a flat stand-in (the runs do not
            # depend on it; the phases found on it are dropped in _measure)
            episodes = smiling_episodes(
                signals.lip if usable else np.zeros(m),
                smile,
                fps,
                threshold=self.s.smile_threshold,
                min_duration=self.s.options.min_episode_s,
            )
        elif usable and mode in ("auto", "lip"):
            episodes = find_episodes(
                signals.lip,
                fps,
                threshold=self.s.options.episode_threshold,
                min_duration=self.s.options.min_episode_s,
            )
        cut, forced = m, None
        if not final:
            episodes, cut, forced = self._finished(episodes, m)
        for ep in episodes:
            causes = self._truncation(ep, m, final, forced=ep is forced)
            self.episodes.append(self._measure(ep, signals, data, usable, causes, grid, rows))
        if rows is not None:  # grid samples before the cut -> the rows they were taken from
            cut = n if cut == m else 0 if cut == 0 else int(rows[cut - 1]) + 1
        self._feed_timeline(data, raw, cut)
        self._cut(cut)
        if cut > 0 and not final:
            split = forced is not None and forced.end_frame == m - 1
            self._head = "window" if split else "rest"

    def _even(
        self, data: np.ndarray, raw: SmileSignals
    ) -> tuple[SmileSignals, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The D signals and P(smile) 1/fps apart, the grid times and each grid time's
        nearest row; the rows themselves (grid and rows None) when their times already
        are 1/fps apart (:func:`resample_even`).

        P(smile) is the nearest row's, not interpolated: a grid sample is smiling when
        its frame is, so the episodes stay runs of smiling rows (a hidden row stays
        unknown).
        """
        columns = np.column_stack([getattr(raw, name) for name in SIGNAL_FIELDS])
        even = resample_even(data[:, _T], columns, self.s.fps)
        if even is None:
            return raw, data[:, _SMILE], None, None
        grid, values = even
        rows = _nearest_rows(data[:, _T], grid)
        series = SmileSignals(**{name: values[:, k] for k, name in enumerate(SIGNAL_FIELDS)})
        return series, data[rows, _SMILE], grid, rows

    def _truncation(
        self, ep: SmileEpisode, n: int, final: bool, forced: bool = False
    ) -> tuple[str, ...]:
        """Why ``ep``, found in a buffer of ``n`` rows, is cut short (``TRUNCATION_CAUSES``).

        The segmenters flag a smile that touches the first or last row of the buffer
        (``SmileEpisode.truncated``). The last row is the track's last frame in the final
        flush; the first row is the track's first frame, or, after a window cut, a frame
        at rest or the first frame of a smile still going on at the cut (the buffer is cut
        at its start): neither of these two cuts a smile. ``forced``: a smile as long as
        the window, reported at a window cut (:meth:`_finished`).
        """
        causes: list[str] = []
        if ep.truncated and ep.start_frame == 0 and self._head != "rest":
            causes.append("track_start" if self._head == "track" else "window")
        if ep.end_frame == n - 1 and (ep.truncated or forced):
            causes.append("track_end" if final else "window")
        return tuple(causes)

    def _feed_timeline(self, data: np.ndarray, raw: SmileSignals, upto: int) -> None:
        """Add rows ``[_fed, upto)`` to the decimated timeline (raw signals)."""
        for k in range(self._fed, upto):
            self.timeline.add(
                np.array(
                    [
                        data[k, _T],
                        data[k, _SCORE],
                        data[k, _SMILE],
                        raw.lip[k],
                        raw.eyelid[k],
                        raw.cheek[k],
                        *data[k, _BS:_PTS],
                    ]
                )  # fmt: skip
            )
        self._fed = max(self._fed, upto)

    def _finished(
        self, episodes: list[SmileEpisode], n: int
    ) -> tuple[list[SmileEpisode], int, SmileEpisode | None]:
        """Episodes that ended before the last ``context_s``, where to cut the buffer, and
        the smile as long as the window reported now (cut short if still going on)."""
        keep = self._context_rows()
        done = [e for e in episodes if e.end_frame < n - keep]
        pending = [e for e in episodes if e.end_frame >= n - keep]
        lead = int(round(_LEAD_S * self.s.fps))
        cut = n - keep if not pending else min(n - keep, _first_row(pending[0], lead))
        forced = None
        if cut <= 0 and pending:  # one smile longer than the window: report it now
            forced = pending[0]
            done.append(forced)
            cut = forced.end_frame + 1
        return done, max(cut, 0), forced

    def _context_rows(self) -> int:
        return max(1, int(round(self.s.options.context_s * self.s.fps)))

    def _cut(self, k: int) -> None:
        self.buffer.drop_first(k)
        if self.features is not None:
            self.features.drop_first(k)
        self._fed = max(0, self._fed - k)

    def _measure(
        self,
        ep: SmileEpisode,
        signals: SmileSignals,
        data: np.ndarray,
        dynamics: bool = True,
        truncated_by: tuple[str, ...] = (),
        grid: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> EpisodeResult:
        """The result of one episode; ``dynamics=False`` (no usable landmark signal): only
        what the smile model gives (times, peak smile score, deep features).

        ``grid``, ``rows``: the even times ``ep`` and ``signals`` are sampled at and each
        one's nearest buffer row (None: the buffer rows themselves). Phases are reported
        at their grid times; the first, last and peak frames are the nearest rows.

        ``signals`` are smoothed, their gaps (rows where the face was hidden or had no
        landmarks: NaN in the buffer) filled; their ``observed`` frames say which phases
        were seen (``EpisodeResult.unobserved``: their durations, D-Markers and
        genuineness terms are unknown, see :func:`unobserved_phases`).
        """
        fps = self.s.fps
        t, frames = data[:, _T], data[:, _F]
        at = ep if rows is None else _on_rows(ep, rows)  # ep on the buffer rows
        phase_times = t if grid is None else grid
        scores = data[at.start_frame : at.end_frame + 1, _SCORE]
        peak_score = float(np.nanmax(scores)) if np.isfinite(scores).any() else None
        feats = None
        if self.features is not None:
            try:
                feats = episode_deep_features(self.features.view(), at).astype(np.float32)
            except ValueError:
                feats = None

        def span(phase: tuple[int, int]) -> tuple[float, float]:
            return float(phase_times[phase[0]]), float(phase_times[phase[1]])

        unseen: tuple[str, ...] = ()
        if dynamics:
            assessed = assess_episode(signals, ep, fps)
            dm = dmarker_vector(signals, ep, fps).astype(np.float32)
            duchenne, genuineness = assessed.duchenne, assessed.genuineness
            onset, apex, offset = span(ep.onset), span(ep.apex), span(ep.offset)
            peak, amplitude = at.peak_frame, float(ep.peak_amplitude)
            unseen = unobserved_phases(ep, signals.observed_frames())
            # a classifier reads all 225 D-Markers: with a phase unseen it has no input
            prob = self.s.classify(dm, feats) if not unseen else None
        else:
            dm = duchenne = genuineness = onset = apex = offset = amplitude = prob = None
            smiles = data[at.start_frame : at.end_frame + 1, _SMILE]
            peak = at.start_frame + _argmax(scores if peak_score is not None else smiles)
        return EpisodeResult(
            track_id=self.id,
            index=len(self.episodes),
            start_time=float(t[at.start_frame]),
            end_time=float(t[at.end_frame]),
            onset=onset,
            apex=apex,
            offset=offset,
            start_frame=int(frames[at.start_frame]),
            end_frame=int(frames[at.end_frame]),
            peak_time=float(t[peak]),
            peak_frame=int(frames[peak]),
            peak_amplitude=amplitude,
            peak_smile_score=peak_score,
            truncated=bool(truncated_by),
            duchenne=duchenne,
            genuineness=genuineness,
            dmarkers=dm,
            features=feats,
            classifier_probability=prob,
            truncated_by=truncated_by,
            unobserved=unseen,
        )

    # -- end ---------------------------------------------------------------------------

    def finish(self) -> TrackSummary:
        """Flush the last smiles; the summary of the track (call :meth:`release` after
        writing its side outputs)."""
        self.flush(final=True)
        summary = TrackSummary(
            track_id=self.id,
            first_time=self.first_time,
            last_time=self.last_time,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            n_frames=self.n_frames,
            peak_smile_score=self.peak_smile,
            mean_smile_score=self.smile_sum / self.smile_n if self.smile_n else None,
            best_time=None if self.best is None else self.best[1],
            best_frame=None if self.best is None else self.best[2],
            best_value=None if self.best is None else self.best[0],
            episodes=self.episodes,
        )
        return summary

    def release(self) -> None:
        """Free the best-frame crop and the timeline (the track has ended)."""
        self.best_crop = None
        self.timeline = _Decimator(16, TIMELINE_WIDTH)
