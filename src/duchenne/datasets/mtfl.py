"""MTFL training part: in-the-wild colour photos with a smile attribute, landmarks and pose."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from duchenne.datasets.base import (
    ReadStats,
    Sample,
    SampleList,
    _finish,
    read_split_file,
)
from duchenne.errors import DatasetError

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
    gender, smile, glasses, pose = attrs
    if not (gender in (1, 2) and smile in (1, 2) and glasses in (1, 2) and 1 <= pose <= 5):
        # a 0 or 3 used to read as "not smiling" (and female, no glasses): a wrong label
        raise DatasetError(
            f"{where}: gender, smile and glasses must be 1 or 2 and pose 1-5, got {attrs}"
        )
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
    recorded ``split_file`` (paths relative to ``root``) is used. The split is dealt over
    every photo ``training.txt`` lists, present or not, so a missing photo (dropped, counted
    in ``stats.dropped["missing_file"]``) moves no other photo to another split.

    Raises:
        DatasetError: ``training.txt`` missing or malformed, bad split name, or files
            missing from ``split_file``.
    """
    if split not in MTFL_SPLITS + ("all",):
        raise DatasetError(f"MTFL split must be one of {MTFL_SPLITS} or 'all', got {split!r}")
    root = Path(root)
    index = root / "training.txt"
    try:
        lines = index.read_text(encoding="utf-8-sig").splitlines()  # a BOM is no path
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
        rows.append((name, points, gender, smile, glasses, pose))
    # the split is made over every listed photo, before missing files are dropped: made
    # over the photos present, one missing file re-dealt the whole permutation (other
    # photos changed split, and a model's training photos could land in valid)
    labels = {r[0]: 1 if r[3] == 1 else 0 for r in rows}
    if check_files:
        present = [r for r in rows if (root / r[0]).is_file()]
        if len(present) < len(rows):
            stats.drop("missing_file", len(rows) - len(present))
        rows = present
    if split_file is not None:
        assignment = read_split_file(split_file)
        missing = [r[0] for r in rows if r[0] not in assignment]
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
            "pose": MTFL_POSES[pose - 1],
            "source": name.partition("/")[0],
        }
        samples.append(Sample(root / name, label=labels[name], split=assignment[name], meta=meta))
    return _finish(samples, stats)
