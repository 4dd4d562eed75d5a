"""``duchenne train-authenticity``: bad option values are usage errors before any work."""

from __future__ import annotations

import pytest

from duchenne.cli.main import main
from duchenne.errors import DatasetError


@pytest.mark.parametrize(
    "flag",
    [["--every", "0"], ["--every", "-2"], ["--l2", "-1"], ["--l2", "nan"], ["--proj-dim", "0"]],
)
def test_bad_numbers_are_refused_before_the_videos_are_read(flag, tmp_path, capsys) -> None:
    """--l2/--proj-dim were only checked after every video's features were extracted
    (hours on a real dataset), and --l2 nan trained chance-level models without a word."""
    with pytest.raises(SystemExit) as info:
        main(["train-authenticity", "--videos", str(tmp_path), "--folds", str(tmp_path), *flag])
    assert info.value.code == 2 and f"argument {flag[0]}" in capsys.readouterr().err


def test_save_into_a_folder_is_refused_up_front(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train-authenticity", "--videos", "v", "--folds", "f", "--save", str(tmp_path)])
    assert info.value.code == 2 and "is a folder" in capsys.readouterr().err


def test_the_emotion_prior_is_part_of_the_feature_cache_key(tmp_path, monkeypatch) -> None:
    """--emotion-prior changes the 8 emotion features, but cached features of another
    prior were served as if they were this one's."""
    from duchenne.analysis import authenticity_data as ad

    (tmp_path / "folds.json").write_text('[{"train": {"a": 0, "b": 1}, "test": {"c": 1}}]')
    (tmp_path / "videos").mkdir()
    settings = []

    def stop(_protocol, _paths, _video, *, cache, **_kw):
        settings.append(cache.settings)
        raise DatasetError("stop")

    monkeypatch.setattr(ad, "build_features", stop)
    for prior in ("balanced", "natural"):
        args = ["train-authenticity", "--videos", str(tmp_path / "videos"), "--skip-missing"]
        args += ["--folds", str(tmp_path / "folds.json"), "--cache", str(tmp_path / "c.npz")]
        assert main([*args, "--emotion-prior", prior, "-q"]) == 1
    assert len(settings) == 2 and settings[0] != settings[1]
