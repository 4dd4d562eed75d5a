"""SMILEsmileD: LFW crops in positives/negatives folders, with a seeded held-out split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from duchenne.datasets.base import (
    ReadStats,
    Sample,
    SampleList,
    _finish,
    _list_images,
    read_split_file,
)
from duchenne.errors import DatasetError


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


RECORDED_SPLIT = "smilesmiled_split_seed0.csv"
"""The seed-0, 20% split the model card reports on, bundled in ``duchenne/data``."""


def _recorded_split(names: list[str]) -> dict[str, str] | None:
    """The bundled seed-0 split when it names every image found, else None.

    Why the record before the recipe: the recipe deals the images it finds, so a copy
    missing one image re-dealt the whole permutation and the "test" split then held photos
    the shipped models trained on. The record keeps each found image's split; images it
    does not list mean another version of the set, which only the recipe can split.
    """
    from duchenne.data import path as data_path

    recorded = read_split_file(data_path(RECORDED_SPLIT))
    return recorded if all(n in recorded for n in names) else None


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
    the folder holding ``positives/``). Every sample's ``split`` is set either way. With
    the default seed and fraction, the bundled record of that split (``RECORDED_SPLIT``)
    is used whenever it lists every image found, so a copy missing images keeps the
    others' splits; ``stats.notes["split_source"]`` says which was used.

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
        source = str(split_file)
    else:
        recorded = None
        if (seed, test_fraction) == (0, 0.2):
            recorded = _recorded_split([n for names in files.values() for n in names])
        assignment = recorded or smilesmiled_split(files, seed=seed, test_fraction=test_fraction)
        source = RECORDED_SPLIT if recorded else "recipe"
    notes = {"seed": seed, "test_fraction": test_fraction, "split_source": source}
    stats = ReadStats("smilesmiled", notes=notes)
    samples = []
    for label in (1, 0):
        for name in files[label]:
            stats.rows += 1
            if split in ("all", assignment[name]):
                samples.append(Sample(base / name, label=label, split=assignment[name]))
    return _finish(samples, stats)
