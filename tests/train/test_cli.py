"""``duchenne train crops``: which (dataset, split) caches are built; bad names are usage errors.

No dataset is read: the validation runs before anything is built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from duchenne.train.cli import crop_jobs, main
from duchenne.train.crops import DATASET_SPLITS


def test_every_split_by_default_and_splits_in_any_case() -> None:
    assert crop_jobs(["ferplus"], None, DATASET_SPLITS) == [
        ("ferplus", "train"),
        ("ferplus", "valid"),
        ("ferplus", "test"),
    ]
    # evaluate spells FER+ splits Train/Valid/Test: the same caches
    assert crop_jobs(["ferplus"], ["Test"], DATASET_SPLITS) == [("ferplus", "test")]
    assert crop_jobs(["FERPlus"], ["VALID", "valid"], DATASET_SPLITS) == [("ferplus", "valid")]


def test_a_split_applies_to_the_datasets_that_have_it() -> None:
    jobs = crop_jobs(["ferplus", "mtfl"], ["valid", "calib"], DATASET_SPLITS)
    assert jobs == [("ferplus", "valid"), ("mtfl", "valid"), ("mtfl", "calib")]


@pytest.mark.parametrize(
    ("datasets", "splits", "message"),
    [
        (["bogus"], None, "unknown dataset 'bogus'; the datasets are: ferplus, smilesmiled, mtfl"),
        (
            ["ferplus"],
            ["calib"],
            "unknown split 'calib'; the splits of ferplus are: train, valid, test",
        ),
        (
            ["ferplus", "smilesmiled"],
            ["Tset"],
            "unknown split 'Tset'; the splits of ferplus, smilesmiled",
        ),
    ],
)
def test_unknown_names_list_the_valid_ones(datasets, splits, message) -> None:
    with pytest.raises(ValueError) as err:
        crop_jobs(datasets, splits, DATASET_SPLITS)
    assert str(err.value).startswith(message)


def test_case_insensitive_only_where_unambiguous() -> None:
    known = {"d": ("Test", "TEST", "train")}
    assert crop_jobs(["d"], ["TEST"], known) == [("d", "TEST")]  # exact match first
    assert crop_jobs(["d"], ["TRAIN"], known) == [("d", "train")]
    with pytest.raises(ValueError, match="split 'test' matches several splits of d: Test, TEST"):
        crop_jobs(["d"], ["test"], known)


def test_cli_refuses_bad_names_before_building_anything(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    for argv in (["--datasets", "bogus"], ["--datasets", "ferplus", "--splits", "Test", "nope"]):
        code = main(
            ["train", "crops", *argv, "--cache-dir", str(cache), "--data-root", str(tmp_path)]
        )
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("duchenne train crops: unknown ") and err.count("\n") == 1
        assert "KeyError" not in err
    assert not cache.exists()
