"""Fold files, video lookup, feature cache and the fold protocol of train-authenticity."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from duchenne.analysis import authenticity_data as ad
from duchenne.analysis import authenticity_folds as af
from duchenne.analysis.authenticity_classifier import AuthenticityClassifier
from duchenne.analysis.dmarkers import DMARKER_VERSION
from duchenne.analysis.video import VideoAnalyzer, frame_feature_names
from duchenne.errors import DatasetError, DuchenneError, OutputError
from duchenne.io.jsonsafe import json_digest
from tests.video_factory import SmileProfile, SyntheticFaceStage

NAMES = [f"{s:03d}_{kind}_smile_1" for s in range(1, 5) for kind in ("deliberate", "spontaneous")]


def _label(name: str) -> int:
    return int("spontaneous" in name)


def _write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def fold_dirs(tmp_path: Path) -> Path:
    """The public fold-file layout: labels/<k>/train.json + test.json, {name: 0|1}."""
    for k in (1, 2):
        test = [n for i, n in enumerate(NAMES) if (i // 2) % 2 == k - 1]
        train = [n for n in NAMES if n not in test]
        _write(tmp_path / "labels" / str(k) / "train.json", {n: _label(n) for n in train})
        _write(tmp_path / "labels" / str(k) / "test.json", {n: _label(n) for n in test})
    return tmp_path / "labels"


def test_reads_the_fold_folder_layout(fold_dirs: Path) -> None:
    protocol = af.read_folds(fold_dirs)
    assert [f.name for f in protocol.folds] == ["1", "2"]
    assert sorted(protocol.names) == sorted(NAMES)
    assert protocol.labels["001_spontaneous_smile_1"] == 1
    assert protocol.labels["001_deliberate_smile_1"] == 0
    assert set(protocol.folds[0].test) | set(protocol.folds[1].test) == set(NAMES)
    assert "2 folds, 8 videos (4 spontaneous, 4 posed)" in protocol.describe()


def test_reads_fold_files_and_single_json_forms(tmp_path: Path) -> None:
    # one JSON file per fold, splits as lists of names (labels from the names)
    _write(tmp_path / "a" / "fold1.json", {"train": NAMES[:4], "test": NAMES[4:]})
    _write(tmp_path / "a" / "fold2.json", {"train": NAMES[4:], "test": NAMES[:4]})
    assert len(af.read_folds(tmp_path / "a").folds) == 2
    # one JSON: {"folds": [...]} with {"video", "label"} objects and label words
    split = [{"video": f"{n}.mp4", "label": "spontaneous" if _label(n) else "posed"} for n in NAMES]
    single = _write(tmp_path / "b.json", {"folds": [{"train": split[:6], "test": split[6:]}]})
    protocol = af.read_folds(single)
    assert protocol.labels["004_spontaneous_smile_1.mp4"] == 1 and len(protocol.folds) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"train": {"a": 0, "b": 1}, "test": {"a": 1}}], "in both train and test"),
        (
            [{"train": {"a": 0}, "test": {"b": 1}}, {"train": {"b": 0}, "test": {"a": 0}}],
            "labelled",
        ),
        ([{"train": {"a": "maybe"}, "test": {"b": 1}}], "label 'maybe'"),
        ([{"train": ["clip_a"], "test": ["clip_b"]}], "cannot tell the label"),
        ([{"test": {"a": 1}}], "needs 'train' and 'test'"),
        ("not folds", "expected a list of folds"),
        # one video given two labels inside one split (the list form kept the last)
        (
            [{"train": [{"video": "a", "label": 0}, {"video": "a", "label": 1}], "test": {}}],
            "'a' is given two labels",
        ),
    ],
)
def test_bad_fold_files_raise_dataset_errors(tmp_path: Path, content, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        af.read_folds(_write(tmp_path / "folds.json", content))


def test_missing_fold_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such"):
        af.read_folds(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no folds found"):
        af.read_folds(tmp_path)


def test_videos_are_found_by_name_or_stem_and_missing_ones_reported(
    fold_dirs: Path, tmp_path: Path
) -> None:
    videos = tmp_path / "videos" / "nested"
    videos.mkdir(parents=True)
    for name in NAMES[:-1]:
        (videos / f"{name}.mp4").write_bytes(b"x")
    protocol = af.read_folds(fold_dirs)
    with pytest.raises(DatasetError, match=r"1 of 8 videos .* missing, e\.g\. 004_spontaneous"):
        af.resolve_videos(protocol, tmp_path / "videos")
    found = af.resolve_videos(protocol, tmp_path / "videos", skip_missing=True)
    assert len(found) == 7 and found[NAMES[0]].name == f"{NAMES[0]}.mp4"


def test_a_video_named_twice_or_ambiguously_is_an_error(tmp_path: Path) -> None:
    """Two names of one file (with and without suffix) made it count twice, possibly in
    train and test of one fold; a name matching two files silently took the first."""
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    for rel in ("a.mp4", "b.mp4", "sub/b.mp4"):
        (videos / rel).write_bytes(b"x")
    leak = af.read_folds(_write(tmp_path / "f1.json", [{"train": {"a": 0}, "test": {"a.mp4": 0}}]))
    with pytest.raises(DatasetError, match="are one video"):
        af.resolve_videos(leak, videos)
    ambiguous = af.read_folds(_write(tmp_path / "f2.json", [{"train": {"b": 0}, "test": {}}]))
    with pytest.raises(DatasetError, match="'b' matches 2 files"):
        af.resolve_videos(ambiguous, videos, skip_missing=True)


def _table(protocol: af.FoldProtocol, seed: int = 0) -> ad.FeatureTable:
    """Separable synthetic features (20 columns stand in for the 225 D-Markers: the
    protocol works on any feature matrix, and small ones keep the fits fast)."""
    rng = np.random.default_rng(seed)
    y = np.array([protocol.labels[n] for n in protocol.names])
    X = rng.normal(0, 1, (len(y), 20))
    X[:, :8] += 3.0 * y[:, None]
    D = rng.normal(0, 1, (len(y), 8)) + 2.0 * y[:, None]
    return ad.FeatureTable(protocol.names, X, D, y, frame_feature_names(False))


def test_protocol_reports_per_fold_and_mean_accuracy(fold_dirs: Path) -> None:
    protocol = af.read_folds(fold_dirs)
    report = ad.evaluate_protocol(_table(protocol), protocol)
    assert list(report.accuracy) == ["dmarkers", "fusion"]
    assert report.accuracy["dmarkers"] == [1.0, 1.0] and report.mean("fusion") >= 0.75
    assert [f["n_test"] for f in report.folds] == [4, 4]
    assert "mean ± std" in report.markdown()
    json.dumps(report.to_dict())


def test_a_fold_without_both_classes_is_an_error(fold_dirs: Path) -> None:
    protocol = af.read_folds(fold_dirs)
    table = _table(protocol)
    keep = [i for i, n in enumerate(table.names) if "spontaneous" not in n or n.startswith("001")]
    small = ad.FeatureTable(
        [table.names[i] for i in keep], table.X[keep], table.D[keep], table.y[keep], ()
    )
    with pytest.raises(DatasetError, match="both classes"):
        ad.evaluate_protocol(small, protocol, ("dmarkers",))


def test_feature_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"abc")
    cache = ad.FeatureCache(tmp_path / "cache.npz", {"every": 1})
    cache.put(video, np.arange(225.0), np.ones(8))
    cache.save()
    again = ad.FeatureCache(tmp_path / "cache.npz", {"every": 1})
    dm, feats = again.get(video)
    assert np.array_equal(dm, np.arange(225.0)) and np.array_equal(feats, np.ones(8))
    assert ad.FeatureCache(tmp_path / "cache.npz", {"every": 2}).get(video) is None
    os.utime(video, ns=(1, 1))  # the file changed: features are recomputed
    assert again.get(video) is None


@pytest.mark.parametrize("cut", [0, 10, 0.5, "mismatch"])
def test_a_damaged_feature_cache_is_replaced_not_fatal(tmp_path: Path, cut, caplog) -> None:
    """Empty or truncated cache files (EOFError, BadZipFile) and arrays of other lengths
    (IndexError) stopped train-authenticity instead of starting a new cache."""
    path = tmp_path / "cache.npz"
    if cut == "mismatch":
        np.savez(
            path, keys=np.array(["a", "b"]), dmarkers=np.zeros((1, 225)), features=np.zeros((2, 8))
        )
    else:
        cache = ad.FeatureCache(path, {"every": 1})
        video = tmp_path / "clip.mp4"
        video.write_bytes(b"abc")
        cache.put(video, np.arange(225.0), np.ones(8))
        cache.save()
        data = path.read_bytes()
        path.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    assert ad.FeatureCache(path, {"every": 1}).entries == {}
    assert "unreadable feature cache" in caplog.text


def test_interrupted_extraction_keeps_the_features_already_extracted(
    tmp_path: Path, monkeypatch
) -> None:
    """The cache was only written after the last video: Ctrl-C lost all the work."""
    videos = {n: tmp_path / f"{n}.mp4" for n in ("a", "b")}
    for v in videos.values():
        v.write_bytes(v.name.encode())
    protocol = af.FoldProtocol([af.Fold("1", ("a",), ("b",))], {"a": 0, "b": 1}, "x")

    def fake(_analyzer, path, **_sampling):
        if path == videos["b"]:
            raise KeyboardInterrupt
        return ad.ClipFeatures(np.arange(225.0), np.ones(8), 10, 25.0, 10)

    monkeypatch.setattr(ad, "clip_features", fake)
    cache = ad.FeatureCache(tmp_path / "cache.npz", {})
    with pytest.raises(KeyboardInterrupt):
        ad.build_features(protocol, videos, object(), cache=cache)
    again = ad.FeatureCache(tmp_path / "cache.npz", {})
    assert again.get(videos["a"]) is not None and again.get(videos["b"]) is None


def test_feature_cache_key_changes_with_the_dmarker_version(tmp_path: Path, monkeypatch) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"abc")
    monkeypatch.setattr(ad, "DMARKER_VERSION", 1)
    old = ad.FeatureCache(tmp_path / "cache.npz", {"every": 1})
    old.put(video, np.arange(225.0), np.ones(8))
    old.save()
    monkeypatch.undo()
    # features of the old formulas are not reused, and keys from before the version
    # was part of the settings (the settings alone) do not match either
    new = ad.FeatureCache(tmp_path / "cache.npz", {"every": 1})
    assert new.get(video) is None
    assert new.settings not in (old.settings, json_digest({"every": 1}, length=16))


def test_saved_model_carries_its_provenance(fold_dirs: Path, tmp_path: Path) -> None:
    protocol = af.read_folds(fold_dirs)
    table = _table(protocol)
    report = ad.evaluate_protocol(table, protocol)
    clf = ad.train_final(table, "fusion")
    path = ad.save_model(clf, tmp_path / "model.json", report=report, table=table, extraction={})
    prov = json.loads(path.read_text())["provenance"]
    assert prov["cross_validation"]["mean_accuracy"] == pytest.approx(report.mean("fusion"))
    assert "this dataset only" in prov["reliability"] and prov["n_videos"] == 8
    loaded = AuthenticityClassifier.load(path)
    assert np.array_equal(loaded.predict(table.X, table.D), clf.predict(table.X, table.D))
    # the video analyzer reports the provenance of the model it applies
    stage = SyntheticFaceStage(SmileProfile(), 3.0)
    video = VideoAnalyzer(stage=stage, classifier=path)
    assert video.classifier_info["reliability"] == prov["reliability"]


def _saved_model(
    fold_dirs: Path, path: Path, kind: str, *, smile: bool = False, extraction=None
) -> Path:
    """A ``kind`` classifier trained on the synthetic table and saved as ``duchenne
    train-authenticity`` saves it; ``smile``: its per-frame features as if a smile model
    ran (the 10 smile and emotion columns added)."""
    protocol = af.read_folds(fold_dirs)
    table = _table(protocol)
    if smile:
        table.feature_names = frame_feature_names(True)
        table.D = np.hstack([table.D, np.zeros((len(table.D), 10))])
    report = ad.evaluate_protocol(table, protocol, (kind,))
    clf = ad.train_final(table, kind)
    return ad.save_model(clf, path, report=report, table=table, extraction=extraction or {})


def test_fusion_model_with_other_frame_features_is_refused(fold_dirs: Path, tmp_path) -> None:
    path = _saved_model(fold_dirs, tmp_path / "m.json", "fusion", smile=True)
    with pytest.raises(DuchenneError, match="trained on per-frame features"):
        VideoAnalyzer(stage=SyntheticFaceStage(SmileProfile(), 3.0), classifier=path)


def test_video_analyzer_refuses_a_model_of_other_dmarkers(fold_dirs: Path, tmp_path) -> None:
    path = _saved_model(fold_dirs, tmp_path / "m.json", "dmarkers")
    content = json.loads(path.read_text())
    assert content["dmarker_version"] == DMARKER_VERSION
    del content["dmarker_version"]  # as saved before D-Marker version 2
    path.write_text(json.dumps(content))
    with pytest.raises(DuchenneError, match="retrain it with `duchenne train-authenticity`"):
        VideoAnalyzer(stage=SyntheticFaceStage(SmileProfile(), 3.0), classifier=path)


def test_a_key_repeated_in_a_fold_file_is_an_error_and_a_bom_is_fine(tmp_path: Path) -> None:
    """JSON parsers keep the last of two equal keys, so a video silently took its second
    label; a byte-order mark (Windows editors) used to make the file unreadable."""
    twice = tmp_path / "twice.json"
    twice.write_text('[{"train": {"a": 0, "b": 1, "a": 1}, "test": {"c": 1}}]')
    with pytest.raises(DatasetError, match=r"twice.json: the key\(s\) 'a' appear twice"):
        af.read_folds(twice)
    bom = tmp_path / "bom.json"
    bom.write_text('\ufeff[{"train": {"a": 0}, "test": {"b": 1}}]', encoding="utf-8")
    assert af.read_folds(bom).labels == {"a": 0, "b": 1}


def test_fusion_model_of_another_emotion_prior_is_refused(fold_dirs: Path, tmp_path) -> None:
    """The fusion model reads emotion probabilities, which the prior moves."""
    from duchenne.analysis.analyzer import Analyzer

    path = _saved_model(
        fold_dirs,
        tmp_path / "m.json",
        "fusion",
        smile=True,
        extraction={"emotion_prior": "balanced"},
    )
    analyzer = Analyzer(stages="detect,landmarks,geometry,smile")
    VideoAnalyzer(analyzer, classifier=path)  # the prior it was trained with: fine
    with pytest.raises(DuchenneError, match="trained with emotion prior 'balanced'"):
        VideoAnalyzer(analyzer.with_options(emotion_prior="natural"), classifier=path)


@pytest.mark.parametrize(
    "content",
    [b"\x00\x00\x00\x18ftypmp42 a video", b'{"folds": []}', "zip archive"],
    ids=["video", "fold file", "zip archive"],
)
def test_a_file_that_is_not_a_feature_cache_is_refused_not_replaced(
    tmp_path: Path, content
) -> None:
    """Any unreadable file at the cache path was "replaced by a new cache" when the
    features were saved: a video, a fold file or a zip archive given as --cache was lost."""
    path = tmp_path / "given.bin"
    if content == "zip archive":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("clip_001.mp4", b"frames")
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="not a duchenne feature cache"):
        ad.FeatureCache(path, {"every": 1})
    with pytest.raises(OutputError, match="is a folder"):
        ad.FeatureCache(tmp_path, {"every": 1})
    assert path.read_bytes() == before
