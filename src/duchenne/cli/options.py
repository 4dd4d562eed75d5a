"""The Analyzer flags every CLI command shares, declared once.

Why: ``analyze``, ``video``, ``batch``, ``enhance`` and ``train-authenticity`` all build an
``Analyzer``; declaring ``--stages``/``--detector``/``--model``/limits/``--threads`` in
each of them let their names, defaults and help drift apart. A command calls
:func:`add_analyzer_args` with the groups it offers and :func:`config_from_args` to get
the :class:`~duchenne.analysis.config.AnalyzerConfig`; a new Analyzer option gets its flag
here once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duchenne.analysis.config import ALL_STAGES, STAGES, AnalyzerConfig, normalize_stages
from duchenne.face.detector import DETECTORS
from duchenne.faces import DEFAULT_SMILE_THRESHOLD
from duchenne.io.argtypes import (  # noqa: F401  (the flags of every command use them)
    non_negative,
    non_negative_int,
    positive_int,
    positive_number,
    unit_interval,
)
from duchenne.models.session import DEVICES
from duchenne.models.smile import EmotionPrior, parse_emotion_prior


def add_analyzer_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    stages: bool = True,
    limits: bool = True,
    model_flags: Sequence[str] = ("--model",),
    threads_default: int | None = None,
    threads_help: str = "onnxruntime threads",
    rotations: bool = False,
) -> None:
    """Declare the shared Analyzer flags on ``parser`` (a parser or an argument group).

    Args:
        stages: offer ``--stages`` (commands that need fixed stages leave it out).
        limits: offer ``--max-faces`` and ``--min-face-size``.
        model_flags: the smile model flag name(s); ``train-authenticity`` spells it
            ``--smile-model`` because its ``--model`` picks the classifier.
        threads_default: ``--threads`` default (None = onnxruntime's own).
        threads_help: ``--threads`` help text.
        rotations: offer ``--rotations/--no-rotations`` (commands that analyse photos;
            video frames are never turned).
    """
    if stages:
        parser.add_argument(
            "--stages",
            type=stage_list,
            default=None,  # None: not given (analyze --demo then runs every stage)
            help=f"comma-separated stages from {','.join(ALL_STAGES)} (default: "
            f"{','.join(STAGES)}; blendshapes adds MediaPipe's 52 coefficients per face)",
        )
    parser.add_argument(
        "--detector",
        choices=DETECTORS,
        default="auto",
        help="BlazeFace: auto (both models merged, default), full or short",
    )
    parser.add_argument(
        "--tiles",
        choices=TILE_CHOICES,
        default="auto",
        help="also scan overlapping tiles for faces under a tenth of the image's long side: "
        "auto (default: photos over 427 px, video frames from 1400 px), on or off (about "
        "3x faster on a 640x480 photo, small faces missed)",
    )
    parser.add_argument(
        *model_flags,
        dest="smile_model",
        default=None,
        help="smile model name (see `duchenne models`) or .onnx path",
    )
    if limits:
        parser.add_argument(
            "--max-faces", type=positive_int, default=None, help="keep at most N faces"
        )
        parser.add_argument(
            "--min-face-size",
            type=non_negative,
            default=0.0,
            help="minimum face box side in pixels",
        )
    if rotations:
        parser.add_argument(
            "--rotations",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="when a photo shows no upright face (or, with the landmarks stage, Face Mesh "
            "is unsure of its upright faces), also look in it turned by 180, 90 and 270 "
            "degrees; faces found so are reported in the photo's pixels with their "
            "'rotation' (default: on; it costs up to 3 more detector passes, only on such "
            "photos)",
        )
    parser.add_argument("--threads", type=positive_int, default=threads_default, help=threads_help)
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="run the models on the CPU (default) or an NVIDIA GPU (needs duchenne[gpu])",
    )
    parser.add_argument(
        "--smile-threshold",
        type=unit_interval,
        default=DEFAULT_SMILE_THRESHOLD,
        metavar="P",
        help="a face counts as smiling when P(smile) >= P, in every output "
        f"(default {DEFAULT_SMILE_THRESHOLD})",
    )
    parser.add_argument(
        "--emotion-prior",
        type=emotion_prior,
        default="balanced",
        metavar="PRIOR",
        help="class prior of the emotion probabilities: balanced (default: every expression "
        "equally likely a priori, for posed-expression sets), natural (FER+'s frequencies, "
        "mostly neutral and happy: highest accuracy on everyday photos) or 8 comma-separated "
        "weights in FER+ order (neutral,happiness,surprise,sadness,anger,disgust,fear,contempt)",
    )


TILE_CHOICES: dict[str, bool | str] = {"auto": "auto", "on": True, "off": False}
"""``--tiles`` words and the ``AnalyzerConfig.tile`` value each gives."""


def stage_list(text: str) -> str:
    """argparse type: comma-separated stage names, checked here so a typo is a usage
    error (exit 2) rather than a failure after the models have loaded."""
    try:
        normalize_stages(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


STDOUT = "-"
"""The usual spelling of stdout as an output file name."""


def output_or_stdout(text: str) -> Path | None:
    """argparse type of an ``--output`` that may be stdout: ``-`` is stdout (None, as if
    the flag were not given) rather than a file named ``-`` in the current folder."""
    return None if text == STDOUT else output_file(text)


def output_file(text: str) -> Path:
    """argparse type of an output file, refused up front (a usage error) rather than after
    the work: a folder (or a name ending in a separator, which can only be one), an empty
    name, and ``-`` where stdout cannot take the output or already carries another one."""
    if text == STDOUT:
        raise argparse.ArgumentTypeError("'-' (stdout) is not offered here; name a file")
    if not text:
        raise argparse.ArgumentTypeError("empty file name")
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file (e.g. faces.csv)")
    _refuse_file_in_the_way(Path(text).parents)
    return Path(text)


def output_dir(text: str) -> Path:
    """argparse type of a folder a command writes files into (``--draw``, ``--plot`` ...).

    An existing file at that path (or at one of its parent folders) is refused up front:
    it used to fail at the first file written, after the work (``analyze``: exit 1 with
    half a JSON array on stdout; ``video``: only a warning, exit 0, and the folder listed
    among the outputs).
    """
    if not text:
        raise argparse.ArgumentTypeError("empty folder name")
    _refuse_file_in_the_way([Path(text), *Path(text).parents])
    return Path(text)


def _refuse_file_in_the_way(folders: Sequence[Path]) -> None:
    """A usage error if the nearest of ``folders`` (a path and its parents, nearest first)
    that exists is not a folder: nothing could be created below it."""
    existing = next((f for f in folders if os.path.exists(f)), None)  # False on any OSError
    if existing is not None and not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(f"{existing} is a file, not a folder")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one existing file (a link, a hard link or another spelling
    included): an output that is an input would replace it when the command ends."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either one missing, or not a path (a camera index)
        return False


def emotion_prior(text: str) -> EmotionPrior:
    """argparse type: ``balanced``, ``natural`` or 8 comma-separated class weights."""
    try:
        return parse_emotion_prior(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_from_args(args: argparse.Namespace, **overrides: Any) -> AnalyzerConfig:
    """The ``AnalyzerConfig`` the flags of :func:`add_analyzer_args` ask for.

    Flags a command did not declare keep the config's defaults; ``overrides`` (config
    fields) win over the flags.

    Raises:
        ValueError: ``--stages`` names an unknown stage.
    """
    options: dict[str, Any] = {
        "detector": args.detector,
        "tile": TILE_CHOICES[getattr(args, "tiles", "auto")],
        "smile_model": args.smile_model,
        "threads": args.threads,
        "device": args.device,
    }
    for name in (
        "stages",
        "max_faces",
        "min_face_size",
        "smile_threshold",
        "emotion_prior",
        "rotations",
    ):
        if getattr(args, name, None) is not None:  # None: not declared or not given
            options[name] = getattr(args, name)
    options.update(overrides)
    return AnalyzerConfig.build(**options)
