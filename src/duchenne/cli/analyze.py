"""``duchenne analyze``: photos in, per-face results out (JSON, JSONL, CSV or Parquet)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duchenne import data
from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import ALL_STAGES
from duchenne.annotate import FaceAnnotator
from duchenne.cli.options import (
    add_analyzer_args,
    config_from_args,
    output_dir,
    output_or_stdout,
)
from duchenne.errors import DuchenneError, error_text
from duchenne.face.align import AlignConfig, align_batch
from duchenne.faces import SMILE_DECIMALS, Faces, result_rows, row_columns
from duchenne.io.atomic import atomic_write
from duchenne.io.image import iter_image_paths, load_image, save_image_atomic
from duchenne.io.jsonsafe import to_json_text
from duchenne.io.progress import ProgressBar
from duchenne.io.sinks import RecordWriter, infer_format, records_to_text

DEMO_IMAGE = "astronaut.jpg"
FORMATS = ("text", "json", "jsonl", "csv", "parquet")
CROP_SIZE = 224
CHUNK = 4  # photos decoded and analysed together (a 12 MP photo is ~36 MB decoded)


def demo_image_path() -> Path:
    """The bundled demo photo (NASA astronaut Eileen Collins, public domain; via scikit-image)."""
    return data.path(DEMO_IMAGE)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="find faces and measure smiles in photos")
    p.add_argument("inputs", nargs="*", help="image files, folders (recursive) or glob patterns")
    p.add_argument(
        "--demo",
        action="store_true",
        help="also run on the bundled public-domain example photo, with every stage "
        "(blendshapes included) unless --stages is given",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format: text (a short summary per face; inputs that failed are "
        "reported on stderr only), json, jsonl, csv, parquet (these also hold an error "
        "record per failed input) (default: from the --output suffix; else text on a "
        "terminal, json when piped)",
    )
    p.add_argument(
        "--output",
        "-o",
        type=output_or_stdout,
        help="write results to this file (atomically) instead of stdout ('-': stdout)",
    )
    p.add_argument(
        "--draw",
        type=output_dir,
        metavar="DIR",
        help="save annotated images into DIR, keeping each input's path relative to the "
        "inputs' common folder (a.jpg, a.png and sub/a.jpg stay three files; inputs with "
        "no common folder but the root keep their file name, -2 ... added on a clash)",
    )
    p.add_argument(
        "--crops",
        type=output_dir,
        metavar="DIR",
        help=f"save each face's eye-aligned {CROP_SIZE}x{CROP_SIZE} crop into DIR, named "
        "like --draw's files with _face<N> added (N = the face number)",
    )
    add_analyzer_args(p, rotations=True)
    p.add_argument(
        "--crop", action="store_true", help="inputs are face crops: no detection (head-crop mode)"
    )
    p.add_argument(
        "--landmarks",
        action="store_true",
        help="include the 468 landmarks: JSON 'landmarks', table columns landmarks.<i>.<0|1|2>",
    )
    p.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bar, no 'no face found' notices"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Analyse every input; return 0 if all succeeded, 1 if some failed, 2 if none were given.

    Photos stream through in chunks of ``CHUNK`` images: decode, analyse, write the
    results, draw, release. Memory stays that of one chunk however many photos are given
    (it used to hold every decoded photo, ~35 MB per 12 MP image, until the end), and
    ``--draw`` annotates the decoded image it already has instead of decoding it again.
    """
    # --demo adds the example photo; it must not silently drop the inputs given with it
    inputs = [*args.inputs, *([str(demo_image_path())] if args.demo else [])]
    if args.demo and args.stages is None:  # --stages not given: show everything
        args.stages = ",".join(ALL_STAGES)
    paths = iter_image_paths(inputs) if inputs else []
    if not paths:
        print(
            "duchenne analyze: no input images (give files, folders or globs, or --demo)",
            file=sys.stderr,
        )
        return 2
    try:
        fmt = args.format or _format_from(args.output)
        drawer = _Drawer(args.draw, paths) if args.draw else None
        cropper = _Cropper(args.crops, paths) if args.crops else None
    except ValueError as exc:
        print(f"duchenne analyze: {exc}", file=sys.stderr)
        return 2
    if fmt == "parquet" and not args.output:
        print("duchenne analyze: --format parquet needs --output FILE", file=sys.stderr)
        return 2
    if args.crops and args.crop:
        print("duchenne analyze: --crops saves detected faces; with --crop the inputs are "
              "crops already", file=sys.stderr)  # fmt: skip
        return 2
    if args.landmarks and fmt == "text":
        print("duchenne analyze: --landmarks adds the 468 points to json/jsonl/csv/parquet "
              "output, not to the text summary", file=sys.stderr)  # fmt: skip
        return 2
    analyzer = Analyzer(config_from_args(args))
    failed = 0
    columns = row_columns(landmarks=args.landmarks, blendshapes="blendshapes" in analyzer.stages)
    bar = ProgressBar(total=len(paths), disable=len(paths) < 2 or args.quiet, unit="img")
    with bar, _open_sink(fmt, args.output, columns) as sink:  # the bar ends its line on error
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            failed += _process_chunk(analyzer, chunk, args, sink, drawer, cropper)
            bar.update(len(chunk))
    if failed:
        print(f"{failed} of {len(paths)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _process_chunk(
    analyzer: Analyzer,
    chunk: Sequence[Path],
    args: argparse.Namespace,
    sink: _Sink,
    drawer: _Drawer | None,
    cropper: _Cropper | None = None,
) -> int:
    """Analyse, write and draw one chunk; its images are released on return. Returns
    how many of its inputs failed (each reported on stderr)."""
    images, results = _analyse_chunk(analyzer, chunk, args.crop)
    failed = 0
    for path, image, result in zip(chunk, images, results, strict=True):
        sink.add(path, result, args.landmarks)
        if drawer is not None and image is not None:
            drawer.draw(path, image, result)
        if cropper is not None and image is not None:
            cropper.save(path, image, result)
        if isinstance(result, DuchenneError):
            failed += 1
            print(f"error: {path}: {error_text(result, path)}", file=sys.stderr)
        elif result.no_face and not (args.quiet or args.crop):
            text = _no_face_text(path, result, args.min_face_size)
            ProgressBar.write(f"duchenne analyze: {text}", file=sys.stderr)
    return failed


def _no_face_text(path: Path, result: Faces, min_face_size: float) -> str:
    """Why ``path`` has no face: none found, or all smaller than ``--min-face-size`` (a
    limit that drops every face must not read as a photo without faces)."""
    small = result.meta.get("faces_below_min_size", 0)
    if not small:
        return f"no face found in {path}"
    return f"{small} face(s) found in {path}, all smaller than --min-face-size {min_face_size:g}"


def _analyse_chunk(
    analyzer: Analyzer, paths: Sequence[Path], crop: bool
) -> tuple[list[np.ndarray | None], list[Faces | DuchenneError]]:
    """Decode ``paths`` (errors kept in their slots) and analyse the decoded images in one
    ``analyze_batch`` call, so their smile crops share a model batch."""
    images: list[np.ndarray | None] = []
    results: list[Faces | DuchenneError] = []
    for path in paths:
        try:
            images.append(load_image(path, max_pixels=analyzer.max_pixels))
            results.append(Faces.empty())  # placeholder, replaced below
        except DuchenneError as exc:
            images.append(None)
            results.append(exc)
    good = [i for i, im in enumerate(images) if im is not None]
    analysed = analyzer.analyze_batch([images[i] for i in good], crop=crop)
    for i, result in zip(good, analysed, strict=True):
        if isinstance(result, Faces):  # the source goes where a path input puts it
            size = {k: result.meta.pop(k) for k in ("width", "height") if k in result.meta}
            result.meta = {**size, "source": str(paths[i]), **result.meta}
        results[i] = result
    return images, results


def _format_from(output: Path | None) -> str:
    """Format from the output suffix (the suffix table ``video`` and ``batch`` use, plus
    ``.txt`` for the text summary); on stdout text for a person, JSON for a program.

    Raises:
        ValueError: a suffix that names no format (``--format`` then says which).
    """
    if output is None:
        return "text" if sys.stdout.isatty() else "json"
    if output.suffix.lower() == ".txt":
        return "text"
    try:
        return infer_format(output)
    except ValueError:
        raise ValueError(
            f"cannot tell the format from {output.name!r}; give --format "
            f"({', '.join(FORMATS)}) or a .json/.jsonl/.ndjson/.csv/.parquet/.pq/.txt name"
        ) from None


def _document(path: Path, result: Faces | DuchenneError, landmarks: bool) -> dict[str, Any]:
    """The JSON document of one input: its faces, or its error."""
    if isinstance(result, DuchenneError):
        return {
            "image": {"source": str(path)},
            "error": {"type": type(result).__name__, "message": str(result)},
        }
    return result.to_dict(landmarks=landmarks)


class _Sink:
    """Where results go as they are made: a ``RecordWriter`` for ``--output`` (atomic at
    the end), JSON Lines and JSON streamed to stdout, CSV on stdout kept as rows (small)
    until the end because its header is the union of every row's columns."""

    def __init__(self, fmt: str, writer: Any, columns: Sequence[str] | None = None) -> None:
        self.fmt, self.writer = fmt, writer
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self.columns = list(columns) if columns is not None else None
        self.footnote = ""

    def add(self, path: Path, result: Faces | DuchenneError, landmarks: bool) -> None:
        if self.fmt == "text":
            if isinstance(result, DuchenneError):
                # reported once, on stderr (``_process_chunk``): the summary is results,
                # and at a terminal both streams reach the same screen, where it was
                # printed twice. The machine formats keep the error record: a program
                # reading the pipe needs it.
                return
            text = format_text([path], [result], footnote=False)
            if self.writer is not None:
                self.writer.write(text)
            else:
                sys.stdout.write(text)
            self.footnote = self.footnote or _footnote(result)
            self.count += 1
            return
        records = (
            [_document(path, result, landmarks)]
            if self.fmt == "json"
            else result_rows(path, result, landmarks=landmarks, columns=self.columns)
        )
        if self.writer is not None:
            self.writer.write_many(records)
        elif self.fmt == "json":
            text = to_json_text(records[0], indent=2).replace("\n", "\n  ")
            sys.stdout.write(("[\n  " if self.count == 0 else ",\n  ") + text)
        elif self.fmt == "jsonl":
            sys.stdout.write(records_to_text(records, "jsonl"))
        else:
            self.rows.extend(records)
        self.count += 1

    def finish(self) -> None:
        if self.fmt == "text" and self.footnote:
            (self.writer or sys.stdout).write(self.footnote + "\n")
        if self.writer is not None:
            self.writer.close()
        elif self.fmt == "json":
            sys.stdout.write("\n]\n" if self.count else "[]\n")
        elif self.fmt == "csv":
            sys.stdout.write(records_to_text(self.rows, "csv"))
        sys.stdout.flush()


@contextlib.contextmanager
def _open_sink(
    fmt: str, output: Path | None, columns: Sequence[str] | None = None
) -> Iterator[_Sink]:
    """A ``_Sink``; on an exception the output file is not replaced (``RecordWriter``)."""
    writer: Any = None
    if output:
        writer = _TextFile(output) if fmt == "text" else RecordWriter(output, fmt)
    sink = _Sink(fmt, writer, columns)
    try:
        yield sink
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    sink.finish()


class _TextFile:
    """The text summary for ``--output x.txt``: kept in memory (a few lines per photo) and
    written atomically on close."""

    def __init__(self, path: Path) -> None:
        self.path, self.parts = path, []

    def write(self, text: str) -> None:
        self.parts.append(text)

    def close(self) -> None:
        with atomic_write(self.path, "w") as fh:
            fh.write("".join(self.parts))

    def abort(self) -> None:
        self.parts = []


def format_text(
    paths: Sequence[Path], results: Sequence[Faces | DuchenneError], footnote: bool = True
) -> str:
    """A few lines per image for a person at a terminal (``--format text``).

    One line per face, numbered as in every other output (reading order, from 0):
    smiling or not at the threshold, the 1-10 smile score, P(smile), the top emotion,
    the AU6/AU12 proxies and the box. ``det`` is the face detector's confidence. An
    error is one line (``analyze`` passes none: it reports them on stderr).
    """
    lines = []
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, DuchenneError):
            lines.append(f"{path}: error: {error_text(result, path)}")
            continue
        size = f"{result.meta.get('width')}x{result.meta.get('height')}"
        lines.append(f"{path} ({size}): {len(result)} face(s)")
        lines.extend("  " + _face_line(face) for face in result)
    if footnote:
        lines.extend(n for n in (_footnote(r) for r in results) if n)
    return "\n".join(lines) + "\n"


def _footnote(result: Faces | DuchenneError) -> str:
    """What the columns of the text summary mean ("" when nothing needs saying).

    Only the columns ``_face_line`` shows: ``--stages detect,smile`` has no AU6/AU12.
    """
    if not isinstance(result, Faces) or not len(result) or result.smile is None:
        return ""
    notes = [f"smiling = P(smile) >= {result.meta.get('smile_threshold')}; score 1-10"]
    if "au6" in result.data:
        notes.append("AU6 / AU12 = cheek raise + eye narrowing / lip-corner pull proxies (0-1)")
    notes.append("det = face detector confidence")
    return "; ".join(notes)


def _face_line(face: Any) -> str:
    """One face of the text summary. P(smile) is shown to ``SMILE_DECIMALS``, the value
    ``smiling`` is decided on (and JSON/CSV print): at two decimals a P(smile) of 0.4996
    read ``not smiling ... P(smile) 0.50`` under the footnote ``smiling = P(smile) >= 0.5``."""
    parts = [f"#{face.index}"]
    if face.smile is not None:
        parts.append("smiling    " if face.is_smiling else "not smiling")
        p_smile = f"{face.smile:.{SMILE_DECIMALS}f}"
        parts.append(f"score {face.smile_score:4.1f}/10  P(smile) {p_smile}")
    if face.top_emotion:
        parts.append(face.top_emotion)
    if "au6" in face.geometry:
        parts.append(f"AU6 {face.geometry['au6']:.2f} AU12 {face.geometry['au12']:.2f}")
    x1, y1, x2, y2 = (round(v) for v in face.box)
    parts.append(f"box {x1},{y1}-{x2},{y2}  det {face.score:.2f}")
    if face.rotation:  # found in the photo turned: it is sideways or upside down
        parts.append(f"found turned {face.rotation} deg")
    return "  ".join(parts)


class _Drawer:
    """Saves annotated images under ``folder``, keeping each input's path relative to the
    inputs' common folder, so ``a.jpg``, ``a.png`` and ``sub/a.jpg`` stay three files.
    Inputs whose only common folder is the file system's root (``photo.jpg --demo``: the
    demo photo lives in the installed package) or a drive apart are named by their file
    name instead: their paths from the root would nest every output under deep copies of
    absolute folders (``d/home/me/...``, ``d/usr/lib/...``).

    JPEG and PNG inputs keep their name (and format); other formats get ``.jpg`` appended
    (``a.webp`` -> ``a.webp.jpg``). Two inputs that would still share a name (a
    case-insensitive file system, or ``a.webp.jpg`` beside ``a.webp``) get ``-2``, ``-3``
    ... and a warning: nothing is overwritten silently. Every target is named before the
    first photo is analysed, so a folder that would overwrite an input (``--draw`` given
    the photos' own folder) is refused up front instead of replacing the originals.

    Raises:
        ValueError: a target is one of the input files.
    """

    def __init__(self, folder: Path, paths: Sequence[Path]) -> None:
        self.root = _common_folder(paths)
        self.annotator = FaceAnnotator()
        used: set[str] = set()
        self.targets = {p: folder / self._unique(p, used) for p in paths}
        inputs = {os.path.realpath(p) for p in paths}
        for target in self.targets.values():
            if os.path.realpath(target) in inputs:
                raise ValueError(
                    f"{folder}: writing {target} would overwrite an input photo; "
                    "choose a folder outside the inputs"
                )

    def _name(self, path: Path) -> Path:
        """The target's path relative to the folder, before making it unique."""
        rel = (
            Path(os.path.relpath(os.path.abspath(path), self.root))
            if self.root is not None
            else Path(path.name)  # made unique by _unique, as a.jpg beside a.png is
        )
        return (
            rel
            if rel.suffix.lower() in (".jpg", ".jpeg", ".png")
            else rel.with_name(rel.name + ".jpg")
        )

    def _unique(self, path: Path, used: set[str]) -> Path:
        rel = self._name(path)
        candidate, n = rel, 1
        while str(candidate).casefold() in used:
            n += 1
            candidate = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
        if n > 1:
            print(f"warning: {path}: saved as {candidate} ({rel} is taken)", file=sys.stderr)
        used.add(str(candidate).casefold())
        return candidate

    def draw(self, path: Path, image: np.ndarray, result: Faces | DuchenneError) -> None:
        if isinstance(result, Faces):
            save_image_atomic(self.annotator.annotate(image, result), self.targets[path])


def _common_folder(paths: Sequence[Path]) -> str | None:
    """The inputs' deepest common folder, or None when they share none but the file
    system's root (or are on different drives, where ``commonpath`` raises)."""
    try:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    except ValueError:
        return None
    return None if os.path.dirname(root) == root else root


class _Cropper(_Drawer):
    """Saves each face's eye-aligned crop (the canonical forehead-to-chin framing at
    ``CROP_SIZE`` pixels, for people to look at, whatever framing the smile model cuts) as ``<name>_face<N>.jpg``, ``<name>`` being ``--draw``'s file name of the photo
    without its suffix; photos that share it (``a.jpg`` and ``a.png``) get ``-2`` ... as
    ``--draw`` does, so one photo's crops never replace another's."""

    def __init__(self, folder: Path, paths: Sequence[Path]) -> None:
        super().__init__(folder, paths)
        self.cfg = AlignConfig(size=CROP_SIZE)

    def _name(self, path: Path) -> Path:
        return super()._name(path).with_suffix("")

    def save(self, path: Path, image: np.ndarray, result: Faces | DuchenneError) -> None:
        if not isinstance(result, Faces) or not len(result):
            return
        eyes = Analyzer.face_eyes(result)
        if not len(eyes):
            return
        target = self.targets[path]
        for i, crop in enumerate(align_batch(image, eyes, self.cfg)):
            save_image_atomic(crop, target.with_name(f"{target.name}_face{i}.jpg"))
