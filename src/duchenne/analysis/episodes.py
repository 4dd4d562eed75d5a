"""Smile episodes on the ``D_lip`` signal: where smiles start and end, and their
onset / apex / offset phases.

Why apart from the signals (:mod:`duchenne.analysis.dynamics`): segmentation works on any
1-D amplitude signal and has its own rules (hysteresis thresholds, minimum duration,
runs of smiling frames); the signals need none of it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from duchenne.analysis.dynamics import smooth_signal
from duchenne.faces import smiling

__all__ = [
    "PHASE_NAMES",
    "SmileEpisode",
    "find_episodes",
    "onset_start_observed",
    "single_episode",
    "smiling_episodes",
    "split_phases",
    "unobserved_phases",
]

logger = logging.getLogger(__name__)

Phase = tuple[int, int]
#: The phases of an episode, in time order.
PHASE_NAMES: tuple[str, ...] = ("onset", "apex", "offset")


# --------------------------------------------------------------------------- episodes


@dataclass
class SmileEpisode:
    """One smile, found on ``D_lip``; frame ranges are inclusive ``(first, last)``.

    Phases share their boundary frames: ``onset = (start, a)``, ``apex = (a, b)``,
    ``offset = (b, end)`` where ``a`` is the top of the onset rise and ``b`` the top of the
    offset fall (``a == b`` when the smile has no plateau). A phase ``(i, i)`` is empty
    (no frame interval); ``truncated`` says the smile was cut by the clip's start or end.
    Episodes cut on P(smile) (:func:`smiling_episodes`) span the smiling frames; their
    onset may start before ``start_frame`` and their offset end after ``end_frame``.

    ``onset_run`` / ``offset_run``: the continuous rise / fall the onset / offset was
    refined from (:func:`split_phases`; they contain the phase), i.e. the frames its ends
    were searched on; None: the phase itself. With the frames where the face was observed
    they say which phases were measured (:func:`unobserved_phases`).
    """

    start_frame: int
    end_frame: int
    onset: Phase
    apex: Phase
    offset: Phase
    peak_frame: int
    peak_amplitude: float
    baseline: float
    fps: float
    truncated: bool = False
    onset_run: Phase | None = None
    offset_run: Phase | None = None

    @property
    def start_time(self) -> float:
        """Start in seconds from the first frame of the signal."""
        return self.start_frame / self.fps

    @property
    def end_time(self) -> float:
        """End in seconds from the first frame of the signal."""
        return self.end_frame / self.fps

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame of the episode."""
        return (self.end_frame - self.start_frame) / self.fps

    def phase(self, name: str) -> Phase:
        """Frame range of ``"onset"``, ``"apex"`` or ``"offset"``."""
        if name not in PHASE_NAMES:
            raise ValueError(f"unknown phase {name!r}")
        return getattr(self, name)

    def search_span(self, name: str) -> Phase:
        """The frames the ends of phase ``name`` were decided on: the onset's and the
        offset's runs (:attr:`onset_run`, :attr:`offset_run`), the apex itself (its ends
        are theirs), each with the phase it contains."""
        first, last = self.phase(name)
        run = {"onset": self.onset_run, "offset": self.offset_run}.get(name)
        return (first, last) if run is None else (min(first, run[0]), max(last, run[1]))

    def phase_duration(self, name: str) -> float:
        """Duration of a phase in seconds."""
        first, last = self.phase(name)
        return (last - first) / self.fps

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dict, with times and phase durations in seconds."""
        out: dict[str, object] = asdict(self)
        for name in PHASE_NAMES:
            out[name] = list(getattr(self, name))
            out[f"{name}_duration"] = self.phase_duration(name)
        for name in ("onset_run", "offset_run"):
            run = getattr(self, name)
            out[name] = None if run is None else list(run)
        out.update(start_time=self.start_time, end_time=self.end_time, duration=self.duration)
        return out


def find_episodes(
    d_lip: np.ndarray,
    fps: float,
    threshold: float = 0.03,
    min_duration: float = 0.25,
    hysteresis: float = 0.5,
    baseline: float | None = None,
    sigma_s: float = 0.0,
    phase_tolerance: float = 0.1,
) -> list[SmileEpisode]:
    """Segment smile episodes in a ``D_lip`` signal and split each into phases.

    Steps:

    1. ``baseline`` = the 5th percentile of the signal unless given (robust to the smiles
       themselves as long as the face is at rest at least ~5 % of the time; for clips
       that start neutral, pass ``baseline=d_lip[0]``).
    2. Candidates: runs where ``D_lip`` exceeds ``baseline + threshold`` and stays above
       ``baseline + hysteresis * threshold`` (hysteresis: noise near the threshold neither
       splits a smile nor creates new ones). Runs shorter than ``min_duration`` are dropped.
    3. Each run is extended outwards to the feet of the smile: first down to
       ``baseline + hysteresis * threshold``, then while the signal keeps falling
       (the first local minimum). Two neighbouring smiles that never return to rest are
       split at the lowest frame between them.
    4. Phases inside ``[start, end]`` (:func:`split_phases`).

    The default ``threshold`` of 0.03 is 3 % of the neutral mouth width in corner
    displacement (``D_lip`` is 0.5 at rest and typically 0.55-0.7 at a smile apex), about
    4x the frame-to-frame noise of Face Mesh lip corners on a 100-pixel face.

    Args:
        d_lip: (T,) ``D_lip`` signal (ideally smoothed, see :func:`smooth_signal`).
        fps: frame rate (frames per second) for times and ``min_duration``.
        threshold: rise above the baseline that starts a smile (``D_lip`` units).
        min_duration: minimum time (s) above the exit level for a run to count.
        hysteresis: exit level as a fraction of ``threshold`` (0..1).
        baseline: rest level of ``D_lip``; ``None`` = 5th percentile.
        sigma_s: optional extra Gaussian smoothing (s) used only for the segmentation.
        phase_tolerance: dips smaller than this fraction of the episode's range do not
            break a "continuous" increase or decrease (noise tolerance).

    Returns:
        Episodes in time order (possibly empty).

    Example:
        >>> eps = find_episodes(signals.lip, fps=30)  # doctest: +SKIP
        >>> [(e.onset, e.apex, e.offset) for e in eps]  # doctest: +SKIP
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    if not 0.0 <= hysteresis <= 1.0:
        raise ValueError("hysteresis must be in [0, 1]")
    d = smooth_signal(d_lip, fps, sigma_s, "gaussian" if sigma_s > 0 else "none")
    if len(d) < 2 or not np.all(np.isfinite(d)):
        return []
    base = float(np.percentile(d, 5)) if baseline is None else float(baseline)
    exit_level = base + hysteresis * threshold
    runs = _hysteresis_runs(d, base + threshold, exit_level)
    runs = [(a, b) for a, b in runs if (b - a + 1) / fps >= min_duration]
    bounds = _extend_runs(d, runs, exit_level)
    episodes = []
    for start, end in bounds:
        ep = split_phases(d, fps, start, end, base, phase_tolerance)
        ep.truncated = _is_truncated(d, start, end, exit_level)
        episodes.append(ep)
    logger.debug("found %d smile episodes in %d frames", len(episodes), len(d))
    return episodes


def smiling_episodes(
    d_lip: np.ndarray,
    smile: np.ndarray,
    fps: float,
    threshold: float = 0.5,
    min_duration: float = 0.25,
    phase_tolerance: float = 0.1,
) -> list[SmileEpisode]:
    """Smile episodes = the runs of frames whose P(smile) is at least ``threshold``.

    Why: the per-frame table says ``smiling`` where ``smile >= threshold``; episodes cut
    the same way make the table and the summary agree (a face smiling through a whole
    clip is one long episode, not the one bump of ``D_lip`` above its smiling baseline).
    Gaps shorter than ``min_duration`` (a blink of the classifier; a gap of ``k`` frames
    lasts ``k / fps``, as a run of ``k`` frames) do not split a smile; runs shorter than
    ``min_duration`` are dropped. Onset, apex and offset are then the phases of ``D_lip``
    (:func:`split_phases`, baseline = its 5th percentile over the whole signal) between
    the feet of the smile around each run: the onset can start before the run's first
    frame and the offset end after its last, where ``D_lip`` still rises towards, or
    falls from, the smiling frames.

    Args:
        d_lip: (T,) ``D_lip`` signal (smoothed), for the phases.
        smile: (T,) P(smile) per frame; NaN where unknown (the face was hidden): smiling
            when the known frames on both sides of the unknown stretch are smiling, else
            not smiling (:func:`_bridge_unknown`).
        fps, min_duration, phase_tolerance: as :func:`find_episodes`.
        threshold: the smiling threshold.
    """
    if fps <= 0:
        raise ValueError("fps must be > 0")
    p = np.asarray(smile, np.float64)
    known = np.isfinite(p)
    on = _bridge_unknown(smiling(np.where(known, p, -1.0), threshold), known)
    runs = _runs_of(on)
    merged: list[Phase] = []
    for a, b in runs:
        # in seconds, not rounded frames: round(0.25 * 25) = 6 kept a 0.24 s gap (6
        # frames) at 25 fps while 7 frames (0.233 s) were bridged at 30 fps
        if merged and (a - merged[-1][1] - 1) / fps < min_duration:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    runs = [(a, b) for a, b in merged if (b - a + 1) / fps >= min_duration]
    d = np.asarray(d_lip, np.float64)
    finite = np.isfinite(d)
    if not runs or not finite.any():
        return []
    d = np.where(finite, d, np.nanmedian(d))
    base = float(np.percentile(d, 5))
    episodes = []
    # the phases are searched out to the feet of the smile (downhill from the run's ends,
    # never past the lowest frame before a neighbouring run): the classifier calls a face
    # smiling part way up the rise, and phases cut at the run measured a shorter, steeper
    # onset and offset, and an AU6 baseline taken on the rise
    for (a, b), (lo, hi) in zip(runs, _extend_runs(d, runs, np.inf), strict=True):
        ep = split_phases(d, fps, lo, hi, base, phase_tolerance)
        ep.start_frame, ep.end_frame = a, b
        ep.truncated = a == 0 or b == len(d) - 1
        episodes.append(ep)
    return episodes


def _bridge_unknown(on: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``on`` with each stretch of unknown frames smiling when the known frames just before
    and just after it are both smiling.

    Why: a face hidden for a moment (a hand, a turned head; its track keeps it for up to
    ``VideoOptions.occlusion_s``) has no P(smile) on those frames. Counting them as not
    smiling split one smile into two episodes, neither called truncated, the first
    measured without its offset and the second without its onset; the lip-corner signal
    is interpolated over the same frames (:func:`~duchenne.analysis.dynamics.smooth_signal`).
    """
    n = len(on)
    idx = np.arange(n)
    before = np.maximum.accumulate(np.where(known, idx, -1))
    after = np.minimum.accumulate(np.where(known, idx, n)[::-1])[::-1]
    inside = ~known & (before >= 0) & (after < n)
    out = on.copy()
    out[inside] = on[before[inside]] & on[after[inside]]
    return out


def _runs_of(mask: np.ndarray) -> list[Phase]:
    """Inclusive ``(first, last)`` runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def single_episode(
    d_lip: np.ndarray, fps: float, baseline: float | None = None, phase_tolerance: float = 0.1
) -> SmileEpisode:
    """Treat the whole signal as one smile (the D-Marker protocol for pre-cut smile clips).

    Args:
        d_lip: (T,) ``D_lip`` signal, T >= 1.
        fps: frame rate.
        baseline: rest level; ``None`` = the first frame (the clip starts neutral).
        phase_tolerance: see :func:`find_episodes`.

    Example:
        >>> ep = single_episode(signals.lip, fps=50)  # doctest: +SKIP
    """
    d = smooth_signal(d_lip, fps, method="none")
    if len(d) == 0 or not np.all(np.isfinite(d)):
        raise ValueError("d_lip must contain at least one finite value")
    base = float(d[0]) if baseline is None else float(baseline)
    return split_phases(d, fps, 0, len(d) - 1, base, phase_tolerance)


def split_phases(
    d: np.ndarray,
    fps: float,
    start: int,
    end: int,
    baseline: float,
    phase_tolerance: float = 0.1,
    levels: tuple[float, float] = (0.1, 0.9),
) -> SmileEpisode:
    """Onset, apex and offset of the smile ``d[start:end + 1]``.

    - onset: the largest continuous increase (largest rise in amplitude; a rise is
      "continuous" while no dip exceeds ``phase_tolerance`` x the episode range). Rise
      size rather than frame count is used so that a long, tiny drift cannot win over the
      smile itself; on a clean smile the two agree.
    - offset: the largest continuous decrease that starts at or after the onset's end.
    - apex: the frames between them (shared boundary frames).

    Both runs are then refined (:func:`_refine_run`): their ends are where the straight
    line through the ``levels`` crossings (10 % and 90 % of the rise by default) reaches
    0 % and 100 %. With noise, the raw ends of a tolerant run would sit on the lowest /
    highest noise wiggle anywhere on the floor or the apex plateau; on a linear ramp the
    refinement is exact, on an S-shaped rise it gives the duration of its main slope.

    When no decrease follows (the clip ends smiling) the offset is the empty phase
    ``(end, end)`` and the apex runs to ``end``.
    """
    seg = np.asarray(d[start : end + 1], dtype=np.float64)
    tol = phase_tolerance * float(np.ptp(seg)) if len(seg) else 0.0
    on_run = _largest_run(seg, _monotone_runs(seg, tol), default=0)
    on_a, on_b = _refine_run(seg, *on_run, levels)
    falls = [(max(a, on_b), b) for a, b in _monotone_runs(-seg, tol) if b > on_b]
    off_run = _largest_run(-seg, falls, default=len(seg) - 1)
    off_a, off_b = _refine_run(-seg, *off_run, levels)
    peak = int(np.argmax(seg))
    return SmileEpisode(
        start_frame=start,
        end_frame=end,
        onset=(start + on_a, start + on_b),
        apex=(start + on_b, start + off_a),
        offset=(start + off_a, start + off_b),
        peak_frame=start + peak,
        peak_amplitude=float(seg[peak] - baseline),
        baseline=float(baseline),
        fps=float(fps),
        onset_run=(start + on_run[0], start + on_run[1]),
        offset_run=(start + off_run[0], start + off_run[1]),
    )


def unobserved_phases(episode: SmileEpisode, observed: np.ndarray | None) -> tuple[str, ...]:
    """The phases of ``episode`` that were not measured: a frame the face was not observed
    on lies among the frames their ends were searched on (:meth:`SmileEpisode.search_span`)
    or next to them.

    Why: hidden frames are filled by straight lines before the phases are searched
    (:func:`~duchenne.analysis.dynamics.smooth_signal`), so a phase across them has the
    duration, speeds and accelerations of the line, not of the face: a 0.5 s onset hidden
    in its middle measured 0.9 s. The frame on each side counts because a phase ends where
    its neighbour stops rising or falling, and speeds are central differences over it.
    An empty phase ``(i, i)`` is unobserved when frame ``i`` or a neighbour is.

    Args:
        episode: the smile (frame indices into ``observed``).
        observed: (T,) bool, the frames where the face was measured
            (:meth:`~duchenne.analysis.dynamics.SmileSignals.observed_frames`); None = all.

    Returns:
        Names from :data:`PHASE_NAMES`, in time order (empty when all were observed).
    """
    if observed is None:
        return ()
    seen = np.asarray(observed, dtype=bool)
    return tuple(
        name for name in PHASE_NAMES if not _all_observed(seen, *episode.search_span(name))
    )


def onset_start_observed(episode: SmileEpisode, observed: np.ndarray | None) -> bool:
    """Whether the start of the onset was seen: the frames from the one before its run to
    its first frame were all observed.

    Why: where a rise starts is decided against the frames before it. Hidden frames before
    the first one seen are held at its value, so a face first seen mid-rise looked like a
    face at rest rising from there, and the AU6 baseline before that "onset" was taken on
    the smile. A gap later in the onset leaves its start known (the phase is still not
    measured: :func:`unobserved_phases`).
    """
    if observed is None:
        return True
    first = episode.onset[0]
    run = episode.search_span("onset")
    return _all_observed(np.asarray(observed, dtype=bool), run[0], first, beyond=False)


def _all_observed(seen: np.ndarray, first: int, last: int, beyond: bool = True) -> bool:
    """Whether frames ``first - 1 .. last`` (and ``last + 1`` when ``beyond``) within the
    signal are all observed."""
    lo = max(first - 1, 0)
    hi = min(last + 1 if beyond else last, len(seen) - 1)
    return bool(seen[lo : hi + 1].all())


def _largest_run(x: np.ndarray, runs: list[Phase], default: int) -> Phase:
    """The run with the largest rise of ``x``; ``(default, default)`` if none rises."""
    runs = [r for r in runs if x[r[1]] > x[r[0]]]
    if not runs:
        return default, default
    return max(runs, key=lambda r: (x[r[1]] - x[r[0]], r[1] - r[0]))


def _refine_run(x: np.ndarray, a: int, b: int, levels: tuple[float, float]) -> Phase:
    """Start and end of a rise from its ``lo``-``hi`` crossings, extrapolated to 0 and 100 %.

    The crossing times of, e.g., 10 % and 90 % of the rise are robust to noise on the
    floor and the plateau, unlike the exact lowest and highest frames; extrapolating the
    straight line through them to 0 % and 100 % recovers a linear ramp exactly. An empty
    run ``(a, a)`` (nothing rose) stays as it is.
    """
    if b <= a:
        return a, b
    lo, hi = levels
    rise = float(x[b] - x[a])
    t_lo = _crossing(x, a, b, x[a] + lo * rise)
    t_hi = _crossing(x, a, b, x[a] + hi * rise)
    per_level = (t_hi - t_lo) / (hi - lo)
    first = int(np.clip(round(t_lo - lo * per_level), a, b - 1))
    last = int(np.clip(round(t_hi + (1.0 - hi) * per_level), first + 1, b))
    return first, last


def _crossing(x: np.ndarray, a: int, b: int, level: float) -> float:
    """Sub-frame time at which ``x`` first reaches ``level`` within ``(a, b]``."""
    i = a + int(np.argmax(x[a : b + 1] >= level))
    if i == a:
        return float(a)
    step = x[i] - x[i - 1]
    return i - 1 + (float((level - x[i - 1]) / step) if step > 0 else 1.0)


def _monotone_runs(x: np.ndarray, tol: float) -> list[Phase]:
    """Maximal increasing runs ``(first, top)`` allowing dips up to ``tol`` below the top.

    A run ends when the signal falls more than ``tol`` below its running maximum, or
    below its own starting value; the next run starts from the following low point. Before
    a run has risen, its start follows flat stretches, so a rise starts at the *last*
    frame of a plateau and tops out at the *first* frame of the next one.
    """
    runs: list[Phase] = []
    a = top = 0
    for i in range(1, len(x)):
        if x[i] > x[top]:
            top = i
        elif (top == a and x[i] <= x[a]) or x[i] < x[a] or x[i] < x[top] - tol:
            if top > a:
                runs.append((a, top))
            a = top = i
    if top > a:
        runs.append((a, top))
    return runs


def _hysteresis_runs(d: np.ndarray, enter: float, exit_level: float) -> list[Phase]:
    """Inclusive runs that rise above ``enter`` and last until ``d`` drops to ``exit_level``."""
    runs: list[Phase] = []
    above_exit = d > exit_level
    i, n = 0, len(d)
    while i < n:
        if d[i] > enter:
            a = i
            while a > 0 and above_exit[a - 1]:
                a -= 1
            b = i
            while b + 1 < n and above_exit[b + 1]:
                b += 1
            runs.append((a, b))
            i = b + 1
        else:
            i += 1
    return runs


def _extend_runs(d: np.ndarray, runs: list[Phase], exit_level: float) -> list[Phase]:
    """Extend each run to the feet of its smile, never past the valley to a neighbour."""
    out: list[Phase] = []
    for k, (a, b) in enumerate(runs):
        lo = 0 if k == 0 else _valley(d, runs[k - 1][1], a)
        hi = len(d) - 1 if k == len(runs) - 1 else _valley(d, b, runs[k + 1][0])
        out.append((_walk(d, a, -1, lo, exit_level), _walk(d, b, +1, hi, exit_level)))
    return out


def _valley(d: np.ndarray, left: int, right: int) -> int:
    """Index of the lowest frame in ``[left, right]``."""
    return left + int(np.argmin(d[left : right + 1]))


def _walk(d: np.ndarray, i: int, step: int, limit: int, level: float) -> int:
    """Walk from ``i`` towards ``limit`` down to ``level``, then on while still falling."""
    while i != limit and d[i] > level:
        i += step
    while i != limit and d[i + step] < d[i]:
        i += step
    return i


def _is_truncated(d: np.ndarray, start: int, end: int, level: float) -> bool:
    """Whether the smile touches the start or end of the signal above rest level."""
    return (start == 0 and d[0] > level) or (end == len(d) - 1 and d[-1] > level)
