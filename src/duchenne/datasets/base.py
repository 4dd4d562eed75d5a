"""The one record type every reader returns (``Sample`` in a ``SampleList`` with its
``ReadStats``), the shared constants, and recorded split files."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.errors import DatasetError
from duchenne.faces import EMOTION_LABELS
from duchenne.io.atomic import atomic_write
from duchenne.io.paths import IMAGE_EXTENSIONS as _IMAGE_EXTENSIONS
from duchenne.io.paths import natural_key, walk_files

logger = logging.getLogger("duchenne.datasets")

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
    """All image files under ``folder`` in a filesystem-independent (natural) order
    (symlinked sub-folders followed, each folder read once: ``io.paths.walk_files``)."""
    found = walk_files(folder, recursive, IMAGE_EXTENSIONS)
    return sorted(
        found, key=lambda p: natural_key(f"{p.parent.relative_to(folder).as_posix()}/{p.name}")
    )


def read_split_file(path: str | Path) -> dict[str, str]:
    """Read a split file written by ``write_split_file``: relative path -> split name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM from Excel
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
    path = Path(path)
    rows = sorted(
        (
            _relative_name(s.path, root),
            "" if s.label is None else str(s.label),
            s.split or "",
        )
        for s in samples
    )
    lines = [f"# {line}" for line in comment.splitlines() if line.strip()]
    lines.append("path,label,split")
    lines.extend(",".join(row) for row in rows)
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _relative_name(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` as the readers name it (posix).

    Why links are not resolved first: the readers name a file by the path they walked, so a
    file under a symlinked folder (``positives7 -> /elsewhere``) resolves outside ``root``
    and ``relative_to`` failed; the resolved paths are the fallback (``root`` given through
    a link the samples were not read through).
    """
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        pass
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        raise DatasetError(f"{path} is not under the split file's root {root}") from None


GROUP_ATTRIBUTES: tuple[str, ...] = ("pose", "gender", "source")
"""``Sample.meta`` attributes that split a set into groups for their own metrics and cache
columns (MTFL has all three)."""


def labelled_eyes(samples: Sequence[Sample]) -> np.ndarray:
    """(n, 2, 2) labelled eye points (subject's right eye first) from ``meta["landmarks"]``,
    the first two of the reader's landmarks (MTFL: left eye, right eye in image order)."""
    if not samples:
        return np.zeros((0, 2, 2), np.float32)
    return np.stack([np.asarray(s.meta["landmarks"], np.float32)[:2] for s in samples])
