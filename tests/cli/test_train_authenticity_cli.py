"""``duchenne train-authenticity``: bad option values are usage errors before any work."""

from __future__ import annotations

import pytest

from duchenne.cli.main import main


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
