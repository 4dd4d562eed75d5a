"""Generic layouts: GENKI-4K ``labels.txt``, class folders and ``path,label`` CSV files."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from duchenne.datasets.base import (
    _EMOTION_ALIASES,
    _FALSE_LABELS,
    _TRUE_LABELS,
    DEFAULT_NEGATIVE,
    DEFAULT_POSITIVE,
    FERPLUS_EMOTIONS,
    HAPPINESS,
    ReadStats,
    Sample,
    SampleList,
    _finish,
    _list_images,
    logger,
)
from duchenne.errors import DatasetError


def _parse_genki_labels(path: Path) -> list[tuple[int, list[float]]]:
    """Parse ``labels.txt`` lines ``smile yaw pitch roll`` (pose optional)."""
    parsed = []
    lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM is not a number
    for line_no, line in enumerate(lines, start=1):
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
