"""Readers that turn labelled face datasets into one list of ``Sample`` records.

Why one record type: training, evaluation and the CLI should not care whether labels
came from FER+ crowd votes, SMILEsmileD folders, GENKI-4K's ``labels.txt``, a folder
tree or a user's CSV. Every reader returns a ``SampleList`` (a plain ``list`` of
``Sample`` with a ``stats`` attribute) so the rows a reader dropped, and why, are
never silent. Only numpy and the standard library are used: no torch, no pandas.

Supported layouts (``detect_layout`` names):

* ``"ferplus"``: a FER+ root holding ``FER2013Train/``, ``FER2013Valid/``,
  ``FER2013Test/``, each with a header-less ``label.csv``; ``"ferplus_split"``: one
  of those folders.
* ``"smilesmiled"``: ``SMILEs/positives/positives7`` and ``SMILEs/negatives/negatives7``.
* ``"genki4k"``: ``labels.txt`` plus ``files/file0001.jpg ...`` (or the images flat).
* ``"csv"``: a ``path,label[,intensity]`` CSV file with a header.
* ``"mtfl"``: MTFL's ``training.txt`` (path, 5 landmarks, gender, smile, glasses,
  pose) beside ``lfw_5590/`` and ``net_7876/``.
* ``"class_folders"``: ``root/<class>/**/<image>`` with smile/no-smile or FER+
  emotion folder names.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.errors import DatasetError
from duchenne.faces import EMOTION_LABELS
from duchenne.io.paths import IMAGE_EXTENSIONS as _IMAGE_EXTENSIONS
from duchenne.io.paths import natural_key

__all__ = [
    "FERPLUS_EMOTIONS",
    "FERPLUS_SPLITS",
    "IMAGE_EXTENSIONS",
    "ReadStats",
    "Sample",
    "SampleList",
    "detect_layout",
    "read_class_folders",
    "read_csv_labels",
    "read_dataset",
    "read_ferplus",
    "read_genki4k",
    "read_mtfl",
    "mtfl_split",
    "read_smilesmiled",
    "read_split_file",
    "smilesmiled_split",
    "write_split_file",
    "MTFL_POSES",
    "MTFL_SPLITS",
]

logger = logging.getLogger(__name__)

FERPLUS_EMOTIONS: tuple[str, ...] = EMOTION_LABELS
"""FER+ emotion order; every ``Sample.votes`` vector and model output uses it."""

FERPLUS_SPLITS: tuple[str, ...] = ("Train", "Valid", "Test")
IMAGE_EXTENSIONS: frozenset[str] = _IMAGE_EXTENSIONS | {".pgm", ".ppm"}  # + dataset greys
HAPPINESS = FERPLUS_EMOTIONS.index("happiness")

_EMOTION_ALIASES: dict[str, str] = {
    **{name: name for name in FERPLUS_EMOTIONS},
    "happy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
}
DEFAULT_POSITIVE: tuple[str, ...] = ("smile", "smiling", "positive", "positives", "1")
DEFAULT_NEGATIVE: tuple[str, ...] = (
    "no_smile",
    "nosmile",
    "not_smile",
    "non_smile",
    "nonsmile",
    "not_smiling",
    "non_smiling",
    "neutral",
    "negative",
    "negatives",
    "0",
)
_TRUE_LABELS = frozenset({"1", "1.0", "smile", "smiling", "true", "yes", "positive", "pos"})
_FALSE_LABELS = frozenset(
    {"0", "0.0", "no_smile", "nosmile", "not_smile", "non_smile", "false", "no", "negative", "neg"}
)


@dataclass(eq=False)
class Sample:
    """One labelled image.

    Attributes:
        path: Absolute path of the image file.
        label: Binary smile label (1 smiling, 0 not), or None when unknown.
        votes: Eight FER+ emotion vote counts (``FERPLUS_EMOTIONS`` order, int32), a
            one-hot vector for emotion-folder datasets, or None.
        intensity: Graded smile label in [0, 1] (FER+: happiness votes / all votes).
        box: Face box ``(x, y, w, h)`` in image pixels when the dataset gives one.
        split: Name of the split the sample belongs to, if any.
        meta: Reader-specific extras (e.g. FER+ ``unknown``/``nf`` votes, GENKI pose).
    """

    path: Path
    label: int | None = None
    votes: np.ndarray | None = None
    intensity: float | None = None
    box: tuple[int, int, int, int] | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def emotion(self) -> int | None:
        """Plurality emotion index (first index on ties, as ``np.argmax``), or None."""
        if self.votes is None or not np.any(self.votes):
            return None
        return int(np.argmax(self.votes))


@dataclass
class ReadStats:
    """What a reader saw: rows read, rows kept and rows dropped per reason.

    Why: dropped rows change the denominators of every reported metric, so the counts
    travel with the samples instead of only going to a log line.
    """

    reader: str
    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        """Count ``count`` rows dropped for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def merge(self, other: ReadStats) -> ReadStats:
        """Return the sum of two stats (used when several splits are read together)."""
        merged = ReadStats(self.reader, self.rows + other.rows, self.kept + other.kept)
        for source in (self.dropped, other.dropped):
            for reason, count in source.items():
                merged.drop(reason, count)
        merged.notes = {**self.notes, **other.notes}
        return merged


class SampleList(list[Sample]):
    """A ``list[Sample]`` that also carries the reader's ``ReadStats``."""

    def __init__(self, samples: Iterable[Sample] = (), stats: ReadStats | None = None) -> None:
        super().__init__(samples)
        self.stats = stats if stats is not None else ReadStats("unknown")

    def labels(self) -> np.ndarray:
        """Binary labels as an int array (-1 where a sample has no label)."""
        return np.array([-1 if s.label is None else s.label for s in self], dtype=np.int64)


def _finish(samples: list[Sample], stats: ReadStats) -> SampleList:
    """Wrap samples with their stats and log the drop counts once."""
    stats.kept = len(samples)
    if stats.dropped:
        logger.info(
            "%s: kept %d of %d rows, dropped %s",
            stats.reader,
            stats.kept,
            stats.rows,
            stats.dropped,
        )
    return SampleList(samples, stats)


def _list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """All image files under ``folder`` in a filesystem-independent (natural) order."""
    found: list[tuple[list[Any], Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk: no stat per file
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        base = Path(dirpath)
        rel = base.relative_to(folder).as_posix()
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append((natural_key(f"{rel}/{name}"), base / name))
    return [path for _, path in sorted(found, key=lambda item: item[0])]


# --------------------------------------------------------------------------- FER+


def _ferplus_folder(root: Path, split: str) -> tuple[Path, str]:
    """Resolve ``root/FER2013<split>``; accept any case of the split name."""
    canonical = {s.lower(): s for s in FERPLUS_SPLITS}.get(split.lower())
    if canonical is None:
        raise DatasetError(f"FER+ split must be one of {FERPLUS_SPLITS}, got {split!r}")
    folder = root / f"FER2013{canonical}"
    if not (folder / "label.csv").is_file():
        raise DatasetError(f"FER+ label file not found: {folder / 'label.csv'}")
    return folder, canonical


def _parse_box(text: str, where: str) -> tuple[int, int, int, int]:
    numbers = re.findall(r"-?\d+", text)
    if len(numbers) != 4:
        raise DatasetError(f"{where}: face box must be '(x, y, w, h)', got {text!r}")
    x, y, w, h = (int(n) for n in numbers)
    return x, y, w, h


def _parse_ferplus_rows(label_path: Path) -> tuple[list[str], list[tuple[int, ...]], np.ndarray]:
    """Read every label.csv row into filenames, boxes and an (n, 10) int32 vote matrix."""
    names: list[str] = []
    boxes: list[tuple[int, ...]] = []
    votes: list[list[int]] = []
    box_cache: dict[str, tuple[int, ...]] = {}  # nearly every FER+ box is "(0, 0, 48, 48)"
    with label_path.open(newline="", encoding="utf-8") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or not "".join(row).strip():
                continue
            where = f"{label_path}:{line_no}"
            if len(row) != 12:
                raise DatasetError(
                    f"{where}: expected 12 columns (file, box, 10 votes), got {len(row)}"
                )
            try:
                votes.append([int(v) for v in row[2:]])
            except ValueError as exc:
                raise DatasetError(f"{where}: vote counts must be integers: {row[2:]}") from exc
            names.append(row[0].strip())
            if row[1] not in box_cache:
                box_cache[row[1]] = _parse_box(row[1], where)
            boxes.append(box_cache[row[1]])
    matrix = np.array(votes, dtype=np.int32).reshape(-1, 10)
    if np.any(matrix < 0):
        raise DatasetError(
            f"{label_path}: negative vote count in row {int(np.argmax((matrix < 0).any(1))) + 1}"
        )
    return names, boxes, matrix


def _ferplus_drop_reasons(votes: np.ndarray) -> np.ndarray:
    """Why each FER+ row is unusable ("" to keep it), for an (n, 10) vote matrix.

    Rule (FER+ paper, Barsoum et al. 2016, majority mode): a face whose plurality
    vote is ``unknown`` or ``NF`` (not a face) carries no emotion label and is
    dropped; so is a row where all eight emotion votes are zero. ``unknown``/``NF``
    must *strictly* beat every emotion: a tie keeps the row. This reproduces the
    plurality counts published with the dataset (Test keeps 3,545 of 3,573).
    """
    emotions = votes[:, :8]
    reasons = np.full(len(votes), "", dtype=object)
    reasons[votes[:, 8:].max(axis=1, initial=0) > emotions.max(axis=1, initial=0)] = (
        "unknown_or_not_face"
    )
    reasons[~emotions.any(axis=1)] = "no_emotion_votes"
    return reasons


def _read_ferplus_folder(folder: Path, split: str | None, check_files: bool) -> SampleList:
    """Read one ``FER2013Xxx`` folder (see ``read_ferplus``)."""
    stats = ReadStats("ferplus", notes={"split": split})
    names, boxes, votes = _parse_ferplus_rows(folder / "label.csv")
    stats.rows = len(names)
    reasons = _ferplus_drop_reasons(votes)
    if check_files:
        present = {p.name for p in folder.iterdir()}
        missing = np.array([n not in present for n in names], dtype=bool)
        reasons[missing & (reasons == "")] = "missing_file"
    for reason in reasons[reasons != ""]:
        stats.drop(reason)
    keep = np.flatnonzero(reasons == "")
    samples = _ferplus_samples(
        folder, [names[i] for i in keep], [boxes[i] for i in keep], votes[keep], split
    )
    stats.notes["ties_kept"] = sum(int(s.meta["tie"]) for s in samples)
    if stats.dropped.get("missing_file"):
        logger.warning("%s: %d listed images are missing", folder, stats.dropped["missing_file"])
    return _finish(samples, stats)


def _ferplus_samples(
    folder: Path,
    names: list[str],
    boxes: list[tuple[int, ...]],
    votes: np.ndarray,
    split: str | None,
) -> list[Sample]:
    """Build FER+ samples: smile label from the plurality emotion, intensity from votes.

    Tie rule: the plurality emotion is the *first* tied emotion in FER+ order
    (``np.argmax``), the convention behind the dataset's published class counts. So a
    happiness/neutral tie is labelled neutral (not a smile) and a happiness tie with
    any later emotion is labelled happiness (a smile). Tied rows are flagged in
    ``meta["tie"]`` so training code can drop or down-weight them.
    """
    emotions = np.ascontiguousarray(votes[:, :8])
    plurality = emotions.argmax(axis=1)
    tie = (emotions == emotions.max(axis=1, keepdims=True)).sum(axis=1) > 1
    total = votes.sum(axis=1)
    intensity = np.divide(votes[:, HAPPINESS], total, out=np.zeros(len(votes)), where=total > 0)
    return [
        Sample(
            path=folder / names[i],
            label=int(plurality[i] == HAPPINESS),
            votes=emotions[i],
            intensity=float(intensity[i]),
            box=boxes[i],  # type: ignore[arg-type]
            split=split,
            meta={
                "emotion": int(plurality[i]),
                "tie": bool(tie[i]),
                "unknown": int(votes[i, 8]),
                "nf": int(votes[i, 9]),
            },
        )
        for i in range(len(names))
    ]


def read_ferplus(root: str | Path, split: str = "Train", *, check_files: bool = True) -> SampleList:
    """Read one FER+ split from ``root/FER2013<split>/label.csv``.

    Rows whose plurality is ``unknown``/``NF`` or with no emotion vote are dropped
    (counts in ``result.stats.dropped``; see ``_ferplus_drop_reasons``). ``label`` is 1
    when happiness is the plurality emotion (first-in-order tie rule, see
    ``_ferplus_samples``); ``intensity`` is happiness votes / all 10 votes; ``votes``
    holds the 8 emotion counts.

    Args:
        root: FER+ root holding the ``FER2013Train/Valid/Test`` folders.
        split: ``"Train"``, ``"Valid"`` or ``"Test"`` (any case).
        check_files: Drop (and count as ``missing_file``) rows whose PNG is absent.

    Raises:
        DatasetError: Unknown split, missing ``label.csv`` or a malformed row.
    """
    folder, canonical = _ferplus_folder(Path(root), split)
    return _read_ferplus_folder(folder, canonical, check_files)


# --------------------------------------------------------------------------- SMILEsmileD


def _smiles_dir(root: Path) -> Path:
    """Return the folder holding ``positives/`` and ``negatives/`` (root or root/SMILEs)."""
    for candidate in (root / "SMILEs", root):
        if (candidate / "positives").is_dir() and (candidate / "negatives").is_dir():
            return candidate
    raise DatasetError(
        f"SMILEsmileD layout not found under {root}: need SMILEs/positives and SMILEs/negatives"
    )


def _smiles_files(base: Path) -> dict[int, list[str]]:
    """Relative posix names of positives (1) and negatives (0), sorted by string."""
    files = {}
    for label, folder in ((1, "positives"), (0, "negatives")):
        names = sorted(p.relative_to(base).as_posix() for p in _list_images(base / folder))
        if not names:
            raise DatasetError(f"SMILEsmileD: no images under {base / folder}")
        files[label] = names
    return files


def smilesmiled_split(
    names_by_label: dict[int, Sequence[str]], *, seed: int = 0, test_fraction: float = 0.2
) -> dict[str, str]:
    """Assign every name to ``"train"`` or ``"test"``: stratified, seeded, deterministic.

    Why this recipe: it must not depend on filesystem listing order or on which class
    is processed first. Each class's names are sorted as strings, then permuted by
    ``np.random.default_rng([seed, label])`` (PCG64, stable across platforms), and the
    first ``round(test_fraction * n)`` (half up) names of the permutation form the test
    set. The result is also written to a split file so it survives numpy changes.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    assignment: dict[str, str] = {}
    for label in sorted(names_by_label):
        names = sorted(names_by_label[label])
        order = np.random.default_rng([seed, label]).permutation(len(names))
        n_test = int(math.floor(test_fraction * len(names) + 0.5))
        for rank, index in enumerate(order):
            assignment[names[index]] = "test" if rank < n_test else "train"
    return assignment


def read_split_file(path: str | Path) -> dict[str, str]:
    """Read a split file written by ``write_split_file``: relative path -> split name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read split file {path}: {exc}") from exc
    rows = csv.reader(line for line in lines if line.strip() and not line.startswith("#"))
    header = next(rows, None)
    if header is None or header[:3] != ["path", "label", "split"]:
        raise DatasetError(f"{path}: split file must start with the header 'path,label,split'")
    assignment = {}
    for line_no, row in enumerate(rows, start=2):
        if len(row) < 3:
            raise DatasetError(f"{path}: row {line_no} has {len(row)} columns, expected 3")
        assignment[row[0]] = row[2]
    return assignment


def write_split_file(
    samples: Iterable[Sample], path: str | Path, *, root: str | Path, comment: str = ""
) -> Path:
    """Write ``path,label,split`` rows (paths relative to ``root``) so a split can be committed.

    Why: the split is part of the experiment; recording the exact list keeps reported
    numbers reproducible even if the recipe or numpy's generator ever changes. The
    file is sorted by path so diffs stay small. ``comment`` lines go first, ``#``-prefixed.
    """
    root, path = Path(root).resolve(), Path(path)
    rows = sorted(
        (
            Path(s.path).resolve().relative_to(root).as_posix(),
            "" if s.label is None else str(s.label),
            s.split or "",
        )
        for s in samples
    )
    lines = [f"# {line}" for line in comment.splitlines() if line.strip()]
    lines.append("path,label,split")
    lines.extend(",".join(row) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_smilesmiled(
    root: str | Path,
    split: str = "all",
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    split_file: str | Path | None = None,
) -> SampleList:
    """Read SMILEsmileD (positives = smiling, negatives = not) with a fixed held-out split.

    There is no official split, so one is made by ``smilesmiled_split`` (stratified,
    seeded, sorted names) or taken from a recorded ``split_file`` (paths relative to
    the folder holding ``positives/``). Every sample's ``split`` is set either way.

    Args:
        root: ``smilesmiled/`` or its ``SMILEs/`` folder.
        split: ``"train"``, ``"test"`` or ``"all"``.
        seed: Seed of the split permutation.
        test_fraction: Share of each class held out for test.
        split_file: Recorded split to use instead of the recipe.

    Raises:
        DatasetError: Layout not found, bad split name, or files missing from ``split_file``.
    """
    if split not in ("train", "test", "all"):
        raise DatasetError(f"SMILEsmileD split must be 'train', 'test' or 'all', got {split!r}")
    base = _smiles_dir(Path(root))
    files = _smiles_files(base)
    if split_file is not None:
        assignment = read_split_file(split_file)
        missing = [n for names in files.values() for n in names if n not in assignment]
        if missing:
            raise DatasetError(
                f"{split_file}: {len(missing)} images have no split, e.g. {missing[0]}"
            )
    else:
        assignment = smilesmiled_split(files, seed=seed, test_fraction=test_fraction)
    stats = ReadStats("smilesmiled", notes={"seed": seed, "test_fraction": test_fraction})
    samples = []
    for label in (1, 0):
        for name in files[label]:
            stats.rows += 1
            if split in ("all", assignment[name]):
                samples.append(Sample(base / name, label=label, split=assignment[name]))
    return _finish(samples, stats)


# --------------------------------------------------------------------------- MTFL

MTFL_POSES: tuple[str, ...] = ("left_profile", "left", "frontal", "right", "right_profile")
"""MTFL head-pose classes 1..5, in file order."""
MTFL_SPLITS: tuple[str, ...] = ("train", "calib", "valid")


def _mtfl_group(name: str) -> str:
    """Split unit of an MTFL image: the person for LFW photos, the file otherwise.

    Why: ``lfw_5590`` holds several photos of some people; splitting by person keeps a
    face the model trained on out of the validation split.
    """
    folder, _, stem = name.partition("/")
    if folder == "lfw_5590":
        return folder + "/" + re.sub(r"_\d+\.\w+$", "", stem)
    return name


def mtfl_split(
    labels: dict[str, int],
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    calib_fraction: float = 0.1,
) -> dict[str, str]:
    """Assign every MTFL name to ``"train"``, ``"calib"`` or ``"valid"``: grouped, stratified, seeded.

    Groups (``_mtfl_group``) are ordered by name and permuted by
    ``np.random.default_rng([seed, label])`` within the label of their first photo; the
    first ``round(valid_fraction * n)`` groups of each permutation form ``valid`` (the
    reported split), the next ``round(calib_fraction * n)`` form ``calib`` (model
    selection and temperature fitting, so ``valid`` never tunes anything), the rest train.
    """
    if not (0.0 < valid_fraction < 1.0 and 0.0 <= calib_fraction < 1.0 - valid_fraction):
        raise DatasetError(
            f"need 0 < valid_fraction < 1 and 0 <= calib_fraction < 1 - valid_fraction, "
            f"got {valid_fraction}, {calib_fraction}"
        )
    groups: dict[str, list[str]] = {}
    for name in sorted(labels):
        groups.setdefault(_mtfl_group(name), []).append(name)
    by_label: dict[int, list[str]] = {}
    for group, names in sorted(groups.items()):
        by_label.setdefault(labels[names[0]], []).append(group)
    assignment: dict[str, str] = {}
    for label in sorted(by_label):
        keys = by_label[label]
        order = np.random.default_rng([seed, label]).permutation(len(keys))
        n_valid = int(math.floor(valid_fraction * len(keys) + 0.5))
        n_calib = int(math.floor(calib_fraction * len(keys) + 0.5))
        for rank, index in enumerate(order):
            split = "valid" if rank < n_valid else "calib" if rank < n_valid + n_calib else "train"
            for name in groups[keys[index]]:
                assignment[name] = split
    return assignment


def _parse_mtfl_line(line: str, where: str) -> tuple[str, np.ndarray, list[int]]:
    """``path x1..x5 y1..y5 gender smile glasses pose`` -> (posix path, (5, 2) points, attrs)."""
    parts = line.split()
    if len(parts) != 15:
        raise DatasetError(f"{where}: expected 15 fields, got {len(parts)}")
    try:
        coords = np.array([float(v) for v in parts[1:11]], np.float32)
        attrs = [int(v) for v in parts[11:15]]
    except ValueError as exc:
        raise DatasetError(f"{where}: {exc}") from exc
    points = np.stack([coords[:5], coords[5:]], axis=1)
    return parts[0].replace("\\", "/"), points, attrs


def read_mtfl(
    root: str | Path,
    split: str = "all",
    *,
    seed: int = 0,
    valid_fraction: float = 0.2,
    calib_fraction: float = 0.1,
    split_file: str | Path | None = None,
    check_files: bool = True,
) -> SampleList:
    """Read MTFL's ``training.txt``: in-the-wild colour photos with a smile attribute.

    ``label`` is 1 for MTFL smile 1 (smiling), 0 for 2. ``meta`` holds ``landmarks``
    ((5, 2) px: left eye, right eye, nose, left and right mouth corner), ``gender``
    (``male``/``female``), ``glasses`` (bool), ``pose`` (one of ``MTFL_POSES``) and
    ``source`` (``lfw_5590``/``net_7876``). There is no official validation split, so
    ``mtfl_split`` makes one (grouped by LFW person, stratified, seeded: ``train`` 70%,
    ``calib`` 10% for selection and calibration, ``valid`` 20% for reporting) or a
    recorded ``split_file`` (paths relative to ``root``) is used.

    Raises:
        DatasetError: ``training.txt`` missing or malformed, bad split name, or files
            missing from ``split_file``.
    """
    if split not in MTFL_SPLITS + ("all",):
        raise DatasetError(f"MTFL split must be one of {MTFL_SPLITS} or 'all', got {split!r}")
    root = Path(root)
    index = root / "training.txt"
    try:
        lines = index.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"MTFL: cannot read {index}: {exc}") from exc
    notes = {"seed": seed, "valid_fraction": valid_fraction, "calib_fraction": calib_fraction}
    stats = ReadStats("mtfl", notes=notes)
    rows = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        stats.rows += 1
        name, points, (gender, smile, glasses, pose) = _parse_mtfl_line(line, f"{index}:{line_no}")
        if check_files and not (root / name).is_file():
            stats.drop("missing_file")
            continue
        rows.append((name, points, gender, smile, glasses, pose))
    labels = {r[0]: 1 if r[3] == 1 else 0 for r in rows}
    if split_file is not None:
        assignment = read_split_file(split_file)
        missing = [n for n in labels if n not in assignment]
        if missing:
            raise DatasetError(
                f"{split_file}: {len(missing)} images have no split, e.g. {missing[0]}"
            )
    else:
        assignment = mtfl_split(
            labels, seed=seed, valid_fraction=valid_fraction, calib_fraction=calib_fraction
        )
    samples = []
    for name, points, gender, _, glasses, pose in rows:
        if split not in ("all", assignment[name]):
            continue
        meta = {
            "landmarks": points,
            "gender": "male" if gender == 1 else "female",
            "glasses": glasses == 1,
            "pose": MTFL_POSES[pose - 1] if 1 <= pose <= 5 else "unknown",
            "source": name.partition("/")[0],
        }
        samples.append(Sample(root / name, label=labels[name], split=assignment[name], meta=meta))
    return _finish(samples, stats)


# --------------------------------------------------------------------------- GENKI-4K


def _parse_genki_labels(path: Path) -> list[tuple[int, list[float]]]:
    """Parse ``labels.txt`` lines ``smile yaw pitch roll`` (pose optional)."""
    parsed = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            values = [float(t) for t in tokens]
        except ValueError as exc:
            raise DatasetError(
                f"{path}:{line_no}: expected numbers 'smile yaw pitch roll', got {line!r}"
            ) from exc
        if values[0] not in (0.0, 1.0):
            raise DatasetError(f"{path}:{line_no}: smile label must be 0 or 1, got {tokens[0]!r}")
        parsed.append((int(values[0]), values[1:4]))
    return parsed


def read_genki4k(root: str | Path) -> SampleList:
    """Read GENKI-4K: line i of ``labels.txt`` labels the i-th image in natural order.

    Images are taken from ``root/files/`` when it exists, else from ``root`` itself
    (``file0001.jpg ...`` sort naturally into label order). Head pose (yaw, pitch,
    roll, radians) goes to ``meta``.

    Raises:
        DatasetError: No ``labels.txt``, a malformed line, or label/image counts differ.
    """
    root = Path(root)
    labels_path = root / "labels.txt"
    if not labels_path.is_file():
        raise DatasetError(f"GENKI-4K labels.txt not found in {root}")
    labels = _parse_genki_labels(labels_path)
    image_dir = root / "files" if (root / "files").is_dir() else root
    images = _list_images(image_dir, recursive=False)
    if len(images) != len(labels):
        raise DatasetError(
            f"GENKI-4K: {len(labels)} labels in {labels_path} but {len(images)} images in {image_dir}"
        )
    stats = ReadStats("genki4k", rows=len(labels))
    samples = [
        Sample(path, label=label, meta=dict(zip(("yaw", "pitch", "roll"), pose, strict=False)))
        for path, (label, pose) in zip(images, labels, strict=True)
    ]
    return _finish(samples, stats)


# --------------------------------------------------------------------------- class folders


def _norm_class(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root}")
    dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not dirs:
        raise DatasetError(f"no class folders in {root}")
    return dirs


def _class_targets(
    names: list[str], positive: Sequence[str], negative: Sequence[str]
) -> tuple[str, dict[str, tuple[int, int | None]]]:
    """Map folder names to ``(smile label, emotion index or None)``; mode is emotion or binary."""
    normed = [_norm_class(n) for n in names]
    if all(n in _EMOTION_ALIASES for n in normed):
        emotions = {
            n: FERPLUS_EMOTIONS.index(_EMOTION_ALIASES[m])
            for n, m in zip(names, normed, strict=True)
        }
        return "emotion", {n: (int(e == HAPPINESS), e) for n, e in emotions.items()}
    pos, neg = {_norm_class(p) for p in positive}, {_norm_class(p) for p in negative}
    unknown = [n for n, m in zip(names, normed, strict=True) if m not in pos | neg]
    if unknown:
        raise DatasetError(
            f"class folders {unknown} are neither smile ({sorted(pos)}) nor no-smile ({sorted(neg)}) "
            f"names nor all FER+ emotions {list(FERPLUS_EMOTIONS)}"
        )
    return "binary", {n: (int(m in pos), None) for n, m in zip(names, normed, strict=True)}


def read_class_folders(
    root: str | Path,
    positive: Sequence[str] = DEFAULT_POSITIVE,
    negative: Sequence[str] = DEFAULT_NEGATIVE,
) -> SampleList:
    """Read ``root/<class>/**/<image>``; the class folder name gives the label.

    If every folder is a FER+ emotion (aliases such as ``happy``/``sad`` accepted),
    ``votes`` is the emotion one-hot and ``label`` is 1 for happiness; otherwise each
    folder must be a positive or negative name (case-, space- and dash-insensitive).

    Raises:
        DatasetError: Not a folder, an unrecognised class name, or no images at all.
    """
    root = Path(root)
    dirs = _class_dirs(root)
    mode, targets = _class_targets([d.name for d in dirs], positive, negative)
    stats = ReadStats("class_folders", notes={"mode": mode})
    samples = []
    for folder in dirs:
        label, emotion = targets[folder.name]
        votes = None if emotion is None else np.eye(8, dtype=np.int32)[emotion]
        for path in _list_images(folder):
            meta = (
                {"class": folder.name}
                if emotion is None
                else {"class": folder.name, "emotion": emotion}
            )
            samples.append(Sample(path, label=label, votes=votes, meta=meta))
    stats.rows = len(samples)
    if not samples:
        raise DatasetError(f"no images found under the class folders of {root}")
    return _finish(samples, stats)


# --------------------------------------------------------------------------- CSV


def _parse_label(text: str, where: str) -> int | None:
    value = _norm_class(text)
    if value == "":
        return None
    if value in _TRUE_LABELS:
        return 1
    if value in _FALSE_LABELS:
        return 0
    raise DatasetError(f"{where}: label must be 0/1, smile/no_smile or true/false, got {text!r}")


def _parse_intensity(text: str | None, where: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise DatasetError(f"{where}: intensity must be a number in [0, 1], got {text!r}") from exc
    if not 0.0 <= value <= 1.0:
        raise DatasetError(f"{where}: intensity must be in [0, 1], got {value}")
    return value


def _csv_columns(header: Sequence[str] | None, path: Path) -> tuple[str, str]:
    if not header:
        raise DatasetError(f"{path}: empty CSV (a header 'path,label[,intensity]' is required)")
    fields = {h.strip().lower(): h for h in header}
    path_col = next((fields[c] for c in ("path", "file", "filename", "image") if c in fields), None)
    label_col = next((fields[c] for c in ("label", "smile") if c in fields), None)
    if path_col is None or label_col is None:
        raise DatasetError(
            f"{path}: header must name a 'path' and a 'label' column, got {list(header)}"
        )
    return path_col, label_col


def read_csv_labels(path: str | Path, *, check_files: bool = True) -> SampleList:
    """Read a ``path,label[,intensity]`` CSV (header required, extra columns kept in meta).

    Relative image paths are resolved against the CSV's folder, so a labelled set can
    be moved as one folder. Labels: 0/1, smile/no_smile, true/false (empty = None).

    Raises:
        DatasetError: Missing file or header, bad label or intensity value.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CSV label file not found: {path}")
    stats = ReadStats("csv")
    samples = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        path_col, label_col = _csv_columns(reader.fieldnames, path)
        intensity_col = next(
            (f for f in reader.fieldnames or [] if f.strip().lower() == "intensity"), None
        )
        for line_no, row in enumerate(reader, start=2):
            stats.rows += 1
            where = f"{path}:{line_no}"
            image = Path((row.get(path_col) or "").strip())
            image = image if image.is_absolute() else path.parent / image
            if check_files and not image.is_file():
                stats.drop("missing_file")
                continue
            extras = {
                k: v for k, v in row.items() if k not in (path_col, label_col, intensity_col) and k
            }
            label = _parse_label(row.get(label_col) or "", where)
            intensity = _parse_intensity(row.get(intensity_col) if intensity_col else None, where)
            samples.append(Sample(image, label=label, intensity=intensity, meta=extras))
    if stats.dropped.get("missing_file"):
        logger.warning("%s: %d listed images are missing", path, stats.dropped["missing_file"])
    return _finish(samples, stats)


# --------------------------------------------------------------------------- auto-detection


def _is_smilesmiled(path: Path) -> bool:
    for base in (path / "SMILEs", path):
        if (base / "positives" / "positives7").is_dir() and (
            base / "negatives" / "negatives7"
        ).is_dir():
            return True
    return (path / "SMILEs" / "positives").is_dir() and (path / "SMILEs" / "negatives").is_dir()


def detect_layout(path: str | Path) -> str:
    """Name the layout of a dataset path (see the module docstring for the names).

    Raises:
        DatasetError: The path does not exist or matches no known layout.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        if path.name == "labels.txt":
            return "genki4k"
        raise DatasetError(
            f"{path}: a label file must be a .csv (path,label[,intensity]) or GENKI labels.txt"
        )
    if not path.is_dir():
        raise DatasetError(f"dataset path does not exist: {path}")
    if (path / "label.csv").is_file():
        return "ferplus_split"
    if any((path / f"FER2013{s}" / "label.csv").is_file() for s in FERPLUS_SPLITS):
        return "ferplus"
    if _is_smilesmiled(path):
        return "smilesmiled"
    if (path / "training.txt").is_file() and (path / "lfw_5590").is_dir():
        return "mtfl"
    if (path / "labels.txt").is_file():
        return "genki4k"
    if (path / "labels.csv").is_file():
        return "csv"
    return _detect_class_folders(path)


def _detect_class_folders(path: Path) -> str:
    names = [p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if names:
        try:
            _class_targets(names, DEFAULT_POSITIVE, DEFAULT_NEGATIVE)
            return "class_folders"
        except DatasetError as exc:
            raise DatasetError(f"unknown dataset layout at {path}: {exc}") from exc
    raise DatasetError(
        f"unknown dataset layout at {path}: expected a FER+ root or FER2013Xxx folder, SMILEsmileD, "
        "GENKI-4K labels.txt, a labels CSV or smile/no_smile class folders"
    )


def _read_ferplus_any(path: Path, layout: str, split: str | None) -> SampleList:
    if layout == "ferplus_split":
        name = path.name[len("FER2013") :] if path.name.startswith("FER2013") else None
        return _read_ferplus_folder(path, name or split, check_files=True)
    if split is not None:
        return read_ferplus(path, split)
    result = SampleList(stats=ReadStats("ferplus"))
    for name in FERPLUS_SPLITS:
        if (path / f"FER2013{name}" / "label.csv").is_file():
            part = read_ferplus(path, name)
            result.extend(part)
            result.stats = result.stats.merge(part.stats)
    return result


def read_dataset(path: str | Path, split: str | None = None) -> SampleList:
    """Read any supported dataset, choosing the reader with ``detect_layout``.

    ``split`` means: a sub-folder ``path/<split>`` when one exists (e.g. ``train/``
    and ``test/`` trees of class folders); else the FER+ split (None = all splits
    present) or the SMILEsmileD split (None = ``"all"``).

    Raises:
        DatasetError: Unknown layout, malformed labels, or a split the layout lacks.
    """
    path = Path(path)
    if split is not None and (path / split).is_dir():
        return read_dataset(path / split)
    layout = detect_layout(path)
    if layout in ("ferplus", "ferplus_split"):
        return _read_ferplus_any(path, layout, split)
    if layout == "smilesmiled":
        return read_smilesmiled(path, split or "all")
    if layout == "mtfl":
        return read_mtfl(path, split or "all")
    if split is not None:
        raise DatasetError(f"{path} ({layout}) has no split folder {split!r}")
    if layout == "csv":
        return read_csv_labels(path if path.is_file() else path / "labels.csv")
    if layout == "genki4k":
        return read_genki4k(path if path.is_dir() else path.parent)
    return read_class_folders(path)
