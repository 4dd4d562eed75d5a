"""``duchenne video``: a video (or camera) in; per-face smile episodes, tables, plots out."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import STAGES
from duchenne.cli.options import (
    add_analyzer_args,
    config_from_args,
    output_dir,
    output_file,
    positive_int,
    positive_number,
    same_file,
)
from duchenne.errors import DuchenneError, require_extra
from duchenne.io.argtypes import finite_non_negative
from duchenne.io.atomic import atomic_write
from duchenne.io.jsonsafe import to_json_text
from duchenne.io.sinks import FORMATS
from duchenne.io.video_writer import SUFFIXES as VIDEO_SUFFIXES

SUMMARY_FORMATS = ("text", "json")

if TYPE_CHECKING:
    from duchenne.analysis.video import EpisodeResult, TrackSummary, VideoResult


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "video",
        help="smile episodes, Duchenne marker and genuineness per face in a video",
        description=(
            "Analyse a video file (or a camera: give its index, e.g. 0) frame by frame. "
            "Prints a per-face summary (smile episodes with onset/apex/offset, peak score, "
            "Duchenne marker, heuristic genuineness) and writes the requested outputs."
        ),
    )
    p.add_argument("source", help="video file, or a camera index such as 0")
    p.add_argument(
        "--output",
        "-o",
        type=output_file,
        help="per-frame table (.csv, .jsonl, .parquet, .json); a file, as stdout carries "
        "the summary",
    )
    p.add_argument(
        "--format",
        choices=(*SUMMARY_FORMATS, *FORMATS[1:]),
        default=None,
        help="with --output: the table's format (default: its suffix); without: how the "
        "summary is printed, text or json (default: text on a terminal, json when piped)",
    )
    p.add_argument(
        "--summary",
        type=output_file,
        help="write the per-face summary and episodes as JSON (to print it: --format json)",
    )
    p.add_argument(
        "--dmarkers", action="store_true", help="include the 225 D-Markers per episode in --summary"
    )
    p.add_argument(
        "--plot", type=output_dir, metavar="DIR", help="one timeline PNG per face into DIR"
    )
    p.add_argument(
        "--draw",
        type=video_file,
        metavar="OUT.mp4",
        help=f"write an annotated video ({', '.join(VIDEO_SUFFIXES)})",
    )
    p.add_argument("--best", type=output_dir, metavar="DIR", help="save each face's smiliest frame")
    sampling = p.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=positive_int, default=1, help="analyse every N-th frame")
    sampling.add_argument(
        "--fps",
        type=positive_number,
        default=None,
        help="analyse about F frames/s: every k-th frame, for the k whose rate is nearest F "
        "(evenly spaced; the summary states the rate used)",
    )
    p.add_argument("--start", type=finite_non_negative, default=None, help="start time (s)")
    p.add_argument("--end", type=positive_number, default=None, help="end time (s)")
    p.add_argument(
        "--max-frames", type=positive_int, default=None, help="stop after N analysed frames"
    )
    p.add_argument(
        "--detect-every",
        type=positive_int,
        default=10,
        help="run the face detector every N frames; faces are tracked in between (1 = always)",
    )
    p.add_argument(
        "--authenticity-model",
        type=Path,
        default=None,
        help="classifier JSON from `duchenne train-authenticity` (adds a trained P(spontaneous))",
    )
    add_analyzer_args(p)
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar, no 'no face found' notice"
    )
    p.set_defaults(func=run)


def video_file(text: str) -> Path:
    """argparse type of ``--draw``: an output file with a suffix the video writer knows,
    refused before the models load and the video opens (it was exit 1 from the writer)."""
    path = output_file(text)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text}: an annotated video must end in {', '.join(VIDEO_SUFFIXES)}"
        )
    return path


def _usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of arguments (a usage error, exit 2), or None.

    Single values are checked by their argparse types; these are the combinations.
    """
    if args.start is not None and args.end is not None and args.end <= args.start:
        return f"--end ({args.end:g} s) must be after --start ({args.start:g} s)"
    fmt = args.format
    if args.output is not None and fmt == "text":
        return "--format text is for the summary; --output takes csv, jsonl, json or parquet"
    if args.output is None and fmt is not None and fmt not in SUMMARY_FORMATS:
        return (
            f"--format {fmt} is a table format and needs --output FILE "
            "(the printed summary is text or json)"
        )
    if args.dmarkers and args.summary is None and _summary_format(args) != "json":
        return "--dmarkers goes into the JSON summary; give --summary FILE or --format json"
    for flag in ("draw", "output", "summary"):
        path = getattr(args, flag)
        if path is not None and same_file(path, args.source):
            # the output replaces its file when done: the video would be lost
            return f"--{flag} {path} is the source video; it would be overwritten"
    return None


def _summary_format(args: argparse.Namespace) -> str:
    """How the summary is printed; ``--format`` names the table's format when -o is given.

    With ``--output`` the table goes to the file and the printed summary is text (for the
    person who ran it; ``--summary FILE`` writes the JSON). Without, ``--format text|json``
    picks it, by default text on a terminal and JSON when piped.
    """
    if args.output is not None:
        return "text"
    return args.format or ("text" if sys.stdout.isatty() else "json")


def run(args: argparse.Namespace) -> int:
    """0 on success; 1 if the video could not be opened or stopped decoding part way; 2
    for arguments that do not go together."""
    from duchenne.analysis.video import VideoAnalyzer, VideoOptions

    problem = _usage_error(args)
    if problem is not None:
        print(f"duchenne video: {problem}", file=sys.stderr)
        return 2
    printed = _summary_format(args)
    if args.plot is not None:
        require_extra("matplotlib", "plot")
    if not args.verbose:  # FFmpeg's own decoder chatter; read when the first video opens
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    analyzer = Analyzer(config_from_args(args))
    video = VideoAnalyzer(
        analyzer,
        VideoOptions(detect_every=args.detect_every),
        classifier=args.authenticity_model,
    )
    try:
        result = video.analyze(
            args.source,
            output=args.output,
            format=args.format if args.output is not None else None,
            draw=args.draw,
            plot_dir=args.plot,
            best_dir=args.best,
            every=args.every,
            fps=args.fps,
            start=args.start,
            end=args.end,
            max_frames=args.max_frames,
            on_error="return",
            progress=not args.quiet,
        )
    except (DuchenneError, ValueError) as exc:
        print(f"duchenne video: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.summary is not None:
        with atomic_write(args.summary, "w") as fh:
            fh.write(to_json_text(result.to_dict(dmarkers=args.dmarkers), indent=2) + "\n")
        result.outputs["summary"] = str(args.summary)
    if printed == "json":
        print(to_json_text(result.to_dict(dmarkers=args.dmarkers), indent=2))
    else:
        print(format_summary(result, analyzer.stages))
    if not result.tracks and not result.short_tracks and not args.quiet:
        print(f"duchenne video: no face found in {args.source}", file=sys.stderr)
    if result.error is not None:
        kept = (
            f"{result.frames_analysed} frames analysed before it "
            f"({_t(result.first_time)}-{_t(result.last_time)} s) were kept"
        )
        print(f"duchenne video: {result.error}; {kept}", file=sys.stderr)
        return 1
    return 0


def _t(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def format_summary(result: VideoResult, stages: Sequence[str] = STAGES) -> str:
    """The human-readable per-face summary printed by ``duchenne video``.

    ``stages``: those the analyzer ran; a face without a smile score then says whether
    no smile model is installed or the smile stage was left out (``--stages``).
    """
    missing = "no smile model" if "smile" in stages else "smile stage not run"
    lines = [
        f"{result.source}: {result.frames_analysed} frames analysed "
        f"({_t(result.first_time)}-{_t(result.last_time)} s at {result.fps:.3g} fps, "
        f"{result.sampling or 'every frame'}), "
        f"{len(result.tracks)} face(s)"
        + _left_out(result.short_tracks)
        + ("" if result.complete else " [INCOMPLETE]")
    ]
    if result.smile_threshold is not None and "smile" in result.models:
        lines.append(f"smiling = P(smile) >= {result.smile_threshold:g}; smile episodes are "
                     "the runs of smiling frames")  # fmt: skip
    for track in result.tracks:
        peak = (
            f"peak smile {track.peak_smile_score:.1f}/10"
            if track.peak_smile_score is not None
            else missing
        )
        lines.append(
            f"face {track.track_id}: {_t(track.first_time)}-{_t(track.last_time)} s, "
            f"{track.n_frames} frames, {peak}, {len(track.episodes)} smile episode(s)"
        )
        for ep in track.episodes:
            lines.append("  " + _episode_line(ep, track, result))
        for key, label in (("best_image", "best frame"), ("plot", "plot")):
            value = getattr(track, key)
            if value:
                lines.append(f"  {label}: {value}")
    if any(e.has_dynamics for e in result.episodes):
        lines.append(
            "genuineness* = hand-set heuristic over AU6, onset/offset timing and symmetry; "
            "NOT validated on labelled data."
        )
    if result.classifier is not None:
        info = result.classifier
        lines.append(
            f"trained P(spontaneous) from {info.get('path', 'a classifier')}: "
            f"{info.get('reliability', 'no provenance recorded: reliability unknown')}"
        )
    for name, path in result.outputs.items():
        lines.append(f"{name}: {path}")
    return "\n".join(lines)


def _left_out(short_tracks: int) -> str:
    """The faces seen on too few frames to summarise, in words: a face in the last frame
    of a clip, or in a clip of 1-2 frames, has rows in the per-frame table, and the
    summary said only "0 face(s)" (the JSON has ``short_tracks_left_out``)."""
    if not short_tracks:
        return ""
    return f" (+{short_tracks} seen on too few frames to summarise)"


def _episode_line(ep: EpisodeResult, track: TrackSummary, result: VideoResult) -> str:
    score = f", peak smile {ep.peak_smile_score:.1f}/10" if ep.peak_smile_score is not None else ""
    cut = f" (cut: {_cut_reason(ep, track, result)})" if ep.truncated else ""
    head = f"smile {ep.index + 1}: {ep.start_time:.2f}-{ep.end_time:.2f} s{cut}"
    onset, apex, offset, rise = ep.onset, ep.apex, ep.offset, ep.peak_amplitude
    au6, genuine = ep.duchenne, ep.genuineness
    if None in (onset, apex, offset, rise, au6, genuine):
        return (
            f"{head}{score}; onset/apex/offset, Duchenne marker and genuineness not measured "
            "(they need the landmarks stage)"
        )
    if au6.measurable:
        duchenne = f"{'yes' if au6.duchenne_marker else 'no'} (AU6 {au6.au6_index:.2f})"
    else:  # no face at rest before the smile: "no (AU6 0.00)" would be a guess
        duchenne = "not measurable (no face at rest seen before the smile)"
    trained = (
        f", trained P(spontaneous) {ep.classifier_probability:.2f}"
        if ep.classifier_probability is not None
        else ""
    )
    # the spans of phases the face was hidden during are where the line across the gap put
    # them: said, so that they are not read as measured (the JSON has null durations)
    hidden = (
        f" [face hidden during the {' and '.join(ep.unobserved)}: not measured]"
        if ep.unobserved
        else ""
    )
    return (
        f"{head} "
        f"(onset {onset[0]:.2f}-{onset[1]:.2f}, apex to {apex[1]:.2f}, "
        f"offset to {offset[1]:.2f}){hidden}, lip-corner rise {rise:+.3f}{score}, "
        f"Duchenne marker: {duchenne}, "
        f"genuineness* {genuine.score:.2f}{trained}"
    )


def _cut_reason(ep: EpisodeResult, track: TrackSummary, result: VideoResult) -> str:
    """Why a truncated episode is cut, in words: the clip's start or end only when the
    face's track starts or ends there, else the face appearing or being lost."""
    reasons = []
    for cause in ep.truncated_by:
        if cause == "track_start":
            if track.first_time == result.first_time:
                reasons.append("already smiling when the clip starts")
            else:
                reasons.append(
                    f"already smiling when the face is first seen at {track.first_time:.2f} s"
                )
        elif cause == "track_end":
            if track.last_time != result.last_time:
                reasons.append(f"still smiling when the face is lost after {track.last_time:.2f} s")
            elif not result.complete:
                reasons.append("still smiling where decoding stopped")
            else:
                reasons.append("still smiling when the clip ends")
        elif cause == "window":
            reasons.append("a smile longer than the analysis window, split")
    return "; ".join(reasons) or "at the start or end of the face's track"
