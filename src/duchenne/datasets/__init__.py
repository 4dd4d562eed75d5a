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

from pathlib import Path

from duchenne.datasets.base import (
    DEFAULT_NEGATIVE,
    DEFAULT_POSITIVE,
    FERPLUS_EMOTIONS,
    FERPLUS_SPLITS,
    GROUP_ATTRIBUTES,
    IMAGE_EXTENSIONS,
    ReadStats,
    Sample,
    SampleList,
    labelled_eyes,
    read_split_file,
    write_split_file,
)
from duchenne.datasets.ferplus import _read_ferplus_folder, read_ferplus
from duchenne.datasets.folders import (
    _class_targets,
    read_class_folders,
    read_csv_labels,
    read_genki4k,
)
from duchenne.datasets.mtfl import MTFL_POSES, MTFL_SPLITS, mtfl_split, read_mtfl
from duchenne.datasets.smilesmiled import read_smilesmiled, smilesmiled_split
from duchenne.errors import DatasetError

__all__ = [
    "GROUP_ATTRIBUTES",
    "labelled_eyes",
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
