"""``duchenne train crops``: which (dataset, split) caches are built; bad names are usage errors.

No dataset is read: the validation runs before anything is built.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from duchenne.train.arguments import add_train_parser
from duchenne.train.cli import main
from duchenne.train.crops import DATASET_SPLITS
from duchenne.train.options import crop_jobs


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
        (["--epochs", "-1"], "argument --epochs: must be >= 0, got -1"),
        (["--lr", "nan"], "argument --lr: must be > 0, got nan"),
        (["--limit", "-3"], "argument --limit: must be >= 1, got -3"),
        (["--epochs", "0"], "--epochs 0 (as many as fit the time) needs --time-budget"),
        (["--oversample", "mtfl_train"], "--oversample 'mtfl_train': give CACHE=N"),
        (["--oversample", "mtfl_trian=2"], "--oversample mtfl_trian: not a training cache"),
        (["--fer-only", "--oversample", "mtfl_train=2"], "not a training cache of this run"),
        (["--init-resize"], "--init-resize needs --init"),
        (["--augment-skip", "jpeg+blurr"], "--augment-skip blurr: not an augmentation step"),
        (["--init", "runs/smile_n.json"], "give a checkpoint (.pt), an ONNX file or a model"),
        (["--ema-decay", "1"], "argument --ema-decay: must be in [0, 1), got 1.0"),
        (["--ema-decay", "nan"], "argument --ema-decay: must be in [0, 1), got nan"),
        (["--warmup-epochs", "-1"], "argument --warmup-epochs: must be finite and >= 0, got -1"),
        (["--warmup-epochs", "inf"], "argument --warmup-epochs: must be finite and >= 0"),
        (["--emotion-balance", "nan"], "argument --emotion-balance: must be finite and >= 0"),
        (["--distill-weight", "-0.5"], "argument --distill-weight: must be finite and >= 0"),
        ([], "no cache "),  # every other option is fine: the caches are missing
    ],
)
def test_fit_refuses_bad_options_before_loading_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Usage errors exit 2 with one line naming the option, before any cache is read (the
    cache folder does not exist: reading it would be a FileNotFoundError, exit 1). They
    used to be a ZeroDivisionError, 2 wasted epochs, ``invalid literal for int()`` or,
    for a misspelt --oversample cache, nothing at all."""
    pytest.importorskip("torch")
    cache = ["--cache-dir", str(tmp_path / "none")]
    for command in (["fit", "--net", "smile_n"], ["ladder", "--nets", "smile_n"]):
        try:
            code = main(["train", *command, *cache, *argv])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        assert code == 2
        err = capsys.readouterr().err
        assert message in err and "Error:" not in err


def _usage_exit(argv: list[str]) -> int:
    """``main``'s exit status, argparse's own usage errors (SystemExit) included."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_an_unknown_net_is_a_usage_error_before_any_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to load every cache and then fail as ``KeyError: unknown net`` (exit 1)."""
    cache = ["--cache-dir", str(tmp_path / "none")]
    for command in (
        ["fit", "--net", "bogus"],
        ["ladder", "--nets", "smile_n", "bogus"],
        ["ladder", "--fer-only-net", "bogus"],
    ):
        assert _usage_exit(["train", *command, *cache]) == 2
        err = capsys.readouterr().err
        assert "invalid choice: 'bogus'" in err and "smile_n" in err


def test_missing_caches_are_named_with_the_command_that_makes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing --valid-set or --train-sets cache was a FileNotFoundError after the
    others were loaded; now one line names them all and the ``train crops`` to run (the
    present caches are empty files: nothing is read)."""
    pytest.importorskip("torch")
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("ferplus_train", "smilesmiled_train", "mtfl_train", "mtfl_calib"):
        (cache / f"{name}.npz").touch()
    fit = ["train", "fit", "--net", "smile_n", "--cache-dir", str(cache)]
    assert main(fit) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Error" not in err
    assert f"no cache {cache / 'ferplus_valid.npz'}: make it with" in err
    assert f"`duchenne train crops --cache-dir {cache} --datasets ferplus --splits valid`" in err
    assert (
        main([*fit, "--valid-set", "mtfl_calib", "--train-sets", "ferplus_trian+mtfl_valid"]) == 2
    )
    err = capsys.readouterr().err
    assert "ferplus_trian.npz, " in err and "mtfl_valid.npz:" in err
    assert "--datasets ferplus mtfl --splits trian valid`" in err


def test_crops_refuses_a_bad_side_and_checks_recut_sources_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--crop-size 50 was a ValueError line (exit 1); --recut-from a folder lacking a split
    re-cut the others, then failed as a FileNotFoundError; --limit was ignored by it."""
    out, source = tmp_path / "out", tmp_path / "face"
    source.mkdir()
    (source / "ferplus_train.npz").touch()
    crops = ["train", "crops", "--datasets", "ferplus", "--cache-dir", str(out)]
    for side, message in (
        ("50", "a cache's crop size must be a multiple of 8, got 50"),
        ("8", "crop size must be >= 16, got 8"),
        ("x", "not an integer: 'x'"),
    ):
        assert _usage_exit([*crops, "--crop-size", side]) == 2
        assert f"argument --crop-size: {message}" in capsys.readouterr().err
    recut = [*crops, "--recut-from", str(source), "--splits", "train", "valid"]
    assert main(recut) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"duchenne train crops: no cache {source / 'ferplus_valid.npz'}:")
    assert f"--cache-dir {source} --datasets ferplus --splits valid`" in err
    assert main([*recut[:-1], "--limit", "3"]) == 2
    assert "--limit does not apply to --recut-from" in capsys.readouterr().err
    assert not out.exists()


def test_crops_refuses_a_framing_of_resize_crops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mode resize cuts the whole image (no eyes to frame by); with --framing lower the
    cache recorded that framing, so its model told the Analyzer to cut crops it never saw."""
    out = tmp_path / "out"
    argv = ["train", "crops", "--datasets", "ferplus", "--cache-dir", str(out)]
    assert main([*argv, "--mode", "resize", "--framing", "lower"]) == 2
    err = capsys.readouterr().err
    assert err == "duchenne train crops: --framing needs --mode pipeline (resize has no eyes)\n"
    assert not out.exists()


def test_pack_and_teach_name_missing_caches_and_check_their_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like fit: a missing cache is one line naming it (was a FileNotFoundError, exit 1),
    and --quality / --threads out of range are usage errors."""
    cache = str(tmp_path / "cache")
    for argv in (
        ["pack", "--cache-dir", cache, "--sets", "mtfl_calib", "--out", str(tmp_path / "p")],
        ["teach", "--cache-dir", cache, "--sets", "mtfl_calib", "--teacher", "smile_n"],
    ):
        assert main(["train", *argv]) == 2
        err = capsys.readouterr().err
        assert "mtfl_calib.npz" in err and "FileNotFoundError" not in err
    for argv in (["pack", "--quality", "500"], ["teach", "--teacher", "x", "--threads", "-3"]):
        with pytest.raises(SystemExit) as exc:
            main(["train", *argv])
        assert exc.value.code == 2
    assert not (tmp_path / "p").exists()


def test_pack_refuses_to_replace_the_caches_it_packs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pack --out` = `--cache-dir` replaced each raw cache by its lossy WebP copy."""
    np = pytest.importorskip("numpy")
    from duchenne.train.data import CropSet, cache_path, save_cache

    n = 4
    crops = CropSet(
        images=np.zeros((n, 48, 48), np.uint8),
        label=np.zeros(n, np.float32),
        votes=np.zeros((n, 8), np.float32),
        has_votes=np.zeros(n, bool),
        intensity=np.zeros(n, np.float32),
        detected=np.ones(n, bool),
        source=np.full(n, "mtfl_calib"),
        files=np.array([f"{i}.jpg" for i in range(n)]),
        meta=[{"name": "mtfl_calib"}],
    )
    cache = tmp_path / "cache"
    path = save_cache(cache_path(cache, "mtfl_calib"), crops)
    before = path.read_bytes()
    argv = ["train", "pack", "--cache-dir", str(cache), "--sets", "mtfl_calib"]
    assert main([*argv, "--out", str(tmp_path / "." / "cache")]) == 2
    assert "--out needs another folder" in capsys.readouterr().err
    assert path.read_bytes() == before


def _train_actions() -> list[tuple[str, argparse.Action]]:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = next(
        a for a in train.choices["train"]._actions if isinstance(a, argparse._SubParsersAction)
    )
    return [
        (name, action)
        for name, p in sub.choices.items()
        for action in p._actions
        if not isinstance(action, argparse._HelpAction)
    ]


def test_every_train_flag_says_what_it_does_and_its_default() -> None:
    """``duchenne train <cmd> --help`` is where a user looks: ``--data-root``,
    ``--cache-dir``, ``--out``, ``--mode``, ``--batch-size``, ``--lr``, ``--patience`` and
    export's flags had no help, or did not say their default."""
    for command, action in _train_actions():
        flag = (action.option_strings or [action.dest])[-1]
        assert action.help, f"train {command} {flag} has no help"
        if action.required or action.default in (None, False, argparse.SUPPRESS, []):
            continue
        assert "default" in action.help, f"train {command} {flag}: default unstated"


def test_fit_help_states_the_defaults_the_run_uses() -> None:
    """Flags left unset take ``TrainConfig``'s values: the help must name those, not
    numbers of its own."""
    pytest.importorskip("torch")
    from duchenne.train.loop import TrainConfig

    cfg = TrainConfig()
    fit = {a.dest: a.help for c, a in _train_actions() if c == "fit"}
    for dest in ("epochs", "batch_size", "lr", "patience", "emotion_balance", "warmup_epochs"):
        stated = re.search(r"default ([0-9.]+)", fit[dest])
        assert stated and float(stated.group(1)) == float(getattr(cfg, dest)), dest
    assert f"default {cfg.ema_decay}" in fit["ema_decay"]
    assert f"default {cfg.valid_set}" in fit["valid_set"]
    assert "default mtfl_train=2" in fit["oversample"] and cfg.oversample == (("mtfl_train", 2),)


def test_a_limited_crops_run_never_replaces_a_full_cache(tmp_path: Path, capsys) -> None:
    """``train crops --limit 8`` wrote its 8 rows under the full cache's name (in the
    default ``cache/crops``, the hours-long ``ferplus_train``); a cache a limited run made
    says so in its metadata and may be replaced by another."""
    import json

    import numpy as np

    cache = tmp_path / "crops"
    cache.mkdir()
    full = cache / "ferplus_train.npz"
    np.savez(full, meta=json.dumps([{"name": "ferplus_train", "n": 28000}]))
    argv = ["train", "crops", "--datasets", "ferplus", "--splits", "train"]
    argv += ["--cache-dir", str(cache), "--data-root", str(tmp_path / "none"), "--limit", "8"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--limit 8 would replace the full cache {full}" in err
    np.savez(full, meta=json.dumps([{"name": "ferplus_train", "n": 8, "limit": 8}]))
    main(argv)  # goes on to the data (missing here): no refusal
    assert "would replace" not in capsys.readouterr().err
