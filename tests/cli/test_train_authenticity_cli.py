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


def _dataset(tmp_path):
    """A fold file and two (fake) videos: enough to reach the output checks."""
    folds = tmp_path / "folds.json"
    folds.write_text('[{"train": {"a": 0}, "test": {"b": 1}}]')
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        (videos / f"{name}.mp4").write_bytes(b"video " + name.encode())
    return ["train-authenticity", "--videos", str(videos), "--folds", str(folds), "-q"]


@pytest.mark.parametrize(
    ("flag", "target"),
    [("--cache", "videos/a.mp4"), ("--save", "videos/b.mp4"), ("--report", "folds.json")],
)
def test_an_output_naming_an_input_is_refused_and_the_input_kept(
    flag, target, tmp_path, capsys
) -> None:
    """``--cache videos/a.mp4`` replaced the video with a .npz once its features were
    extracted ("unreadable feature cache; starting a new one"), and --save/--report
    replaced a video or the fold file the same way."""
    args = _dataset(tmp_path)
    before = (tmp_path / target).read_bytes()
    assert main([*args, flag, str(tmp_path / target)]) == 1
    err = capsys.readouterr().err
    assert "OutputError" in err and "which it would replace" in err
    assert (tmp_path / target).read_bytes() == before


def test_two_outputs_naming_one_file_are_refused(tmp_path, capsys) -> None:
    """--save and --report to one path kept only the report (written last)."""
    out = str(tmp_path / "out.json")
    assert main([*_dataset(tmp_path), "--save", out, "--report", out]) == 1
    assert "--save and --report name one file" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
