"""FER+ : FER2013 images with 10-annotator emotion votes (official Train/Valid/Test)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from duchenne.datasets.base import (
    FERPLUS_SPLITS,
    HAPPINESS,
    ReadStats,
    Sample,
    SampleList,
    _finish,
    logger,
)
from duchenne.errors import DatasetError


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
    # utf-8-sig: a label.csv saved by Excel starts with a BOM, which made the first file
    # name "\ufefffer0000000.png", a silent "missing_file" drop
    with label_path.open(newline="", encoding="utf-8-sig") as fh:
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
