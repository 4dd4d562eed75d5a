"""AnalyzerConfig: one options object for the API, CLI, batch workers and the server."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest

from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.config import AnalyzerConfig
from duchenne.batch.worker import WorkerConfig
from duchenne.cli.main import build_parser
from duchenne.cli.options import config_from_args


def test_stages_are_normalised_from_lists_and_comma_strings() -> None:
    assert AnalyzerConfig(stages="smile,detect").stages == ("detect", "smile")
    assert AnalyzerConfig(stages=["geometry"]).stages == ("detect", "landmarks", "geometry")
    assert dataclasses.replace(AnalyzerConfig(), stages=("detect",)).stages == ("detect",)
    with pytest.raises(ValueError, match="unknown stage"):
        AnalyzerConfig(stages=("detect", "smiles"))


def test_build_replaces_fields_and_names_unknown_options() -> None:
    base = AnalyzerConfig(detector="short", threads=2)
    cfg = AnalyzerConfig.build(base, max_faces=3)
    assert (cfg.detector, cfg.threads, cfg.max_faces) == ("short", 2, 3)
    assert AnalyzerConfig.build(base) is base
    with pytest.raises(TypeError, match="max_face"):
        AnalyzerConfig.build(max_face=3)


def test_config_is_frozen_hashable_picklable_and_round_trips_as_a_dict() -> None:
    cfg = AnalyzerConfig(stages="detect,smile", smile_model=Path("m.onnx"), max_faces=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_faces = 3  # type: ignore[misc]
    assert {cfg: 1}[dataclasses.replace(cfg)] == 1
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    d = cfg.to_dict()
    assert d["stages"] == ["detect", "smile"] and d["smile_model"] == "m.onnx"
    assert AnalyzerConfig.from_dict({**d, "not_a_field": 1}) == dataclasses.replace(
        cfg, smile_model="m.onnx"
    )


def test_worker_config_flattens_for_manifests_and_defaults_to_one_thread() -> None:
    wc = WorkerConfig(AnalyzerConfig(stages=("detect",), max_faces=4), video_fps=2.0)
    assert wc.threads == 1 and wc.analyzer.threads == 1
    assert WorkerConfig.from_dict(wc.to_dict()) == wc
    key = wc.results_key()
    assert "threads" not in key and key["max_faces"] == 4 and key["video_fps"] == 2.0


def _args(*argv: str):
    return build_parser().parse_args(list(argv))


def test_every_cli_command_builds_its_analyzer_from_the_same_flags() -> None:
    common = ("--detector", "short", "--threads", "2")
    limits = ("--stages", "detect,smile", "--max-faces", "3", "--min-face-size", "20")
    want = AnalyzerConfig(
        stages=("detect", "smile"), detector="short", max_faces=3, min_face_size=20.0, threads=2
    )
    assert config_from_args(_args("analyze", "x.jpg", *common, *limits, "--model", "m")) == (
        dataclasses.replace(want, smile_model="m")
    )
    assert config_from_args(_args("video", "x.mp4", *common, *limits)) == want
    assert config_from_args(_args("batch", "x", "--out", "o.csv", *common, *limits)) == want
    plain = AnalyzerConfig(detector="short", threads=2, smile_model="m")
    assert config_from_args(_args("enhance", "a.jpg", "b.jpg", *common, "--model", "m")) == plain
    assert (
        config_from_args(
            _args(
                "train-authenticity",
                "--videos",
                "v",
                "--folds",
                "f",
                *common,
                "--smile-model",
                "m",
                "--model",
                "fusion",
            )  # fmt: skip
        )
        == plain
    )
    assert _args("batch", "x", "--out", "o.csv").threads == 1  # per worker


def test_photos_are_searched_turned_unless_told_not_to_and_video_frames_never() -> None:
    """``rotations`` is on by default; ``analyze --no-rotations`` turns it off, and
    ``video`` offers no such flag (its frames are never turned)."""
    assert AnalyzerConfig().rotations is True
    assert config_from_args(_args("analyze", "x.jpg")).rotations is True
    assert config_from_args(_args("analyze", "x.jpg", "--no-rotations")).rotations is False
    with pytest.raises(SystemExit):
        _args("video", "x.mp4", "--no-rotations")
    off = AnalyzerConfig(rotations=False)
    assert AnalyzerConfig.from_dict(off.to_dict()) == off
    assert off.sessions() == AnalyzerConfig().sessions()  # a per-request view may change it


def test_view_shares_sessions_and_refuses_other_models() -> None:
    analyzer = Analyzer(stages=("detect", "landmarks"), threads=1)
    view = analyzer.view(dataclasses.replace(analyzer.config, stages=("detect",), max_faces=1))
    assert view.detector is analyzer.detector and view.mesh is None
    assert (view.stages, view.max_faces) == (("detect",), 1)
    assert analyzer.stages == ("detect", "landmarks")  # the original is untouched
    with pytest.raises(ValueError, match="models"):
        analyzer.view(dataclasses.replace(analyzer.config, detector="short"))


def test_emotion_prior_is_validated_normalised_and_round_trips() -> None:
    assert AnalyzerConfig().emotion_prior == "balanced"
    cfg = AnalyzerConfig(emotion_prior=[2, 2, 1, 1, 1, 1, 1, 1])
    assert cfg.emotion_prior == pytest.approx((0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1))
    assert AnalyzerConfig.from_dict(cfg.to_dict()) == cfg and hash(cfg)
    assert cfg.sessions() == AnalyzerConfig().sessions()  # a prior is not a new session
    with pytest.raises(ValueError, match="emotion prior"):
        AnalyzerConfig(emotion_prior="posed")
    args = _args("analyze", "x.jpg", "--emotion-prior", "natural")
    assert config_from_args(args).emotion_prior == "natural"
    with pytest.raises(SystemExit):
        _args("analyze", "x.jpg", "--emotion-prior", "1,2")


def test_a_view_under_another_emotion_prior_shares_the_smile_session() -> None:
    analyzer = Analyzer(stages=("detect", "smile"), threads=1)
    if analyzer.smile_model is None:
        pytest.skip("no smile model ships")
    natural = analyzer.with_options(emotion_prior="natural")
    assert natural.smile_model.model is analyzer.smile_model.model  # same ONNX session
    assert analyzer.smile_model.emotion_prior == "balanced"  # the original is untouched
    from duchenne import data

    a, b = analyzer.analyze(data.astronaut()), natural.analyze(data.astronaut())
    assert a.smile[0] == b.smile[0]
    assert not np.allclose(a.emotion[0], b.emotion[0])
    assert b.meta["emotion_prior"] == "natural"


@pytest.mark.parametrize(
    "option", [{"max_faces": 0}, {"max_faces": -1}, {"min_face_size": -5}, {"threads": -2}]
)
def test_counts_that_would_silently_drop_faces_are_refused(option) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        AnalyzerConfig(**option)


@pytest.mark.parametrize(
    "options",
    [
        {"max_faces": 1.5},
        {"max_faces": "3"},
        {"max_faces": True},
        {"threads": 2.5},
        {"threads": "2"},
        {"max_pixels": 0},
        {"max_pixels": "1000"},
        {"min_score": 2.0},
        {"min_score": float("nan")},
        {"tile": "yes"},
        {"detector": "long"},
        {"rotations": "no"},
    ],
)
def test_bad_options_are_refused_when_built_not_in_a_later_analysis(options: dict) -> None:
    """These used to be stored as given and fail (or silently find nothing) only inside an
    analysis, as an ``AnalysisError`` asking for a bug report."""
    with pytest.raises(ValueError, match=next(iter(options))):
        AnalyzerConfig(**options)


def test_whole_number_options_accept_numpy_and_whole_floats() -> None:
    cfg = AnalyzerConfig(max_faces=np.int64(3), threads=2.0, max_pixels=1000, min_score=1)
    assert (cfg.max_faces, cfg.threads, cfg.max_pixels, cfg.min_score) == (3, 2, 1000, 1.0)
    assert type(cfg.max_faces) is int and type(cfg.threads) is int


@pytest.mark.parametrize("config", ["detect", ("detect",), {"stages": "detect"}])
def test_a_first_argument_that_is_no_config_says_options_are_keywords(config) -> None:
    """``Analyzer("detect")`` used to raise ``AttributeError: 'str' object has no attribute
    'threads'``; it is refused before any model loads, naming what to pass instead."""
    with pytest.raises(TypeError, match="AnalyzerConfig.*keywords"):
        Analyzer(config)
    with pytest.raises(TypeError, match="AnalyzerConfig"):
        AnalyzerConfig.build(config, threads=1)
