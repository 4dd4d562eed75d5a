"""``duchenne.evaluation.runner``: dataset crops (Face Mesh or keypoint eyes) and the report.

The dataset is built here: 48x48 grey face crops cut from the bundled public-domain
astronaut photo (FER+ layout), so the real detector, Face Mesh and aligner run.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from duchenne import data
from duchenne.analysis.analyzer import Analyzer
from duchenne.analysis.crop_format import CropFormat
from duchenne.analysis.crops import PipelineFinder
from duchenne.cli.main import main
from duchenne.datasets import Sample, read_dataset
from duchenne.errors import DatasetError
from duchenne.evaluation.runner import MIN_BOOT, dataset_crops, evaluate
from tests.helpers import SHARED_DATASETS


def make_ferplus_test(root: Path, n: int = 6) -> Path:
    """FER+ ``FER2013Test`` with ``n`` shifted/flipped face crops, happy votes on even rows."""
    photo = data.astronaut()
    x0, y0, x1, y1 = Analyzer(stages=("detect",)).analyze(photo).xyxy[0]
    side = 1.3 * max(x1 - x0, y1 - y0)
    folder = root / "FER2013Test"
    folder.mkdir(parents=True)
    rows = []
    for i in range(n):
        cx, cy = (x0 + x1) / 2 + 4 * (i - n / 2), (y0 + y1) / 2
        box = [int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)]
        face = cv2.cvtColor(photo[box[1] : box[3], box[0] : box[2]], cv2.COLOR_RGB2GRAY)
        face = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"fer{i:07d}.png"), face[:, ::-1] if i % 3 == 2 else face)
        votes = [0] * 10
        votes[1 if i % 2 == 0 else 0] = 8 if i < n - 1 else 5  # the last face: ambiguous
        votes[3] = 10 - votes[1 if i % 2 == 0 else 0]
        rows.append(f'fer{i:07d}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (folder / "label.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def ferplus(tmp_path_factory) -> Path:
    return make_ferplus_test(tmp_path_factory.mktemp("data") / "ferplus")


def test_keypoint_eyes_frame_faces_like_face_mesh_eyes(ferplus: Path) -> None:
    samples = list(read_dataset(ferplus, "Test"))
    mesh = dataset_crops(samples, CropFormat(), "canvas", processes=1, eyes="mesh")
    keypoints = dataset_crops(samples, CropFormat(), "canvas", processes=1, eyes="keypoints")
    assert mesh.detected.all() and keypoints.detected.all()
    for a, b in zip(mesh.crops, keypoints.crops, strict=True):
        assert not np.array_equal(a, b)  # different eye sources ...
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.85  # ... the same framing


def test_report_records_the_eye_source(ferplus: Path, tiny_smile_onnx: Path) -> None:
    report = evaluate(str(tiny_smile_onnx), ferplus, split="Test", n_boot=40, processes=1)
    fast = evaluate(
        str(tiny_smile_onnx), ferplus, split="Test", n_boot=40, processes=1, eyes="keypoints"
    )
    assert report["crops"]["eyes"] == "mesh" and fast["crops"]["eyes"] == "keypoints"
    assert report["n"] == fast["n"] == 6
    for r in (report, fast):
        smile = r["models"]["tiny_smile"]["smile"]
        assert 0.0 <= smile["accuracy"]["value"] <= 1.0


def test_cli_eyes_flag(ferplus: Path, tiny_smile_onnx: Path, capsys) -> None:
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--data", str(ferplus), "--split"]
    assert main([*argv, "Test", "--eyes", "keypoints", "--format", "json", "--n-boot", "40"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["crops"]["eyes"] == "keypoints"
    with pytest.raises(SystemExit):
        main([*argv, "Test", "--eyes", "nose"])


def test_unknown_eye_source_is_refused() -> None:
    with pytest.raises(ValueError, match="eyes"):
        PipelineFinder(eyes="nose")


def test_breakdowns_score_each_group_of_each_attribute() -> None:
    from duchenne.datasets import Sample
    from duchenne.evaluation.runner import breakdowns
    from duchenne.models.smile import SmileOutputs

    samples = [
        Sample(Path(f"{i}.jpg"), label=i % 2, meta={"pose": "frontal" if i < 6 else "left"})
        for i in range(10)
    ]
    labels = np.array([s.label for s in samples])
    prob = np.where(labels == 1, 0.9, 0.1).astype(np.float32)
    prob[7] = 0.2  # one left-pose smile missed
    out = SmileOutputs(prob, prob, np.zeros((10, 8), np.float32))
    groups = breakdowns(samples, out, labels, n_boot=10, seed=0)
    assert set(groups) == {"pose"}
    assert groups["pose"]["frontal"]["accuracy"]["value"] == 1.0
    assert groups["pose"]["left"]["accuracy"]["value"] == pytest.approx(0.75)
    assert groups["pose"]["left"]["n"] == 4


def test_models_with_one_name_get_distinct_report_keys() -> None:
    from duchenne.evaluation.runner import _distinct_names

    assert _distinct_names(["smile_s", "smile_l"], ["smile_s", "smile_l"]) == ["smile_s", "smile_l"]
    keys = _distinct_names(["smile_s", "smile_s"], ["new/smile_s.onnx", "smile_s"])
    assert keys == ["new/smile_s.onnx", "smile_s"]


def test_plots_of_models_keyed_by_path_stay_in_the_plots_folder(
    ferplus: Path, tiny_smile_onnx: Path, tmp_path: Path
) -> None:
    """Two models of one name are keyed by their paths; their plots were written to
    ``plots/reliability_/abs/path/model.onnx.png``, a folder tree under ``--plots``."""
    from tests.conftest import make_tiny_smile_onnx

    (tmp_path / "retrained").mkdir()
    other = make_tiny_smile_onnx(tmp_path / "retrained" / tiny_smile_onnx.name)
    plots = tmp_path / "plots"
    report = evaluate(
        str(tiny_smile_onnx),
        ferplus,
        split="Test",
        compare=str(other),
        n_boot=40,
        processes=1,
        plots=plots,
    )
    assert list(report["models"]) == [str(tiny_smile_onnx), str(other)]
    written = sorted(p for p in plots.rglob("*") if p.is_file())
    assert [Path(p) for p in sorted(report["plots"])] == written
    assert all(p.parent == plots for p in written) and len(written) == 7


def test_cli_emotion_prior_is_reported_with_per_class_recall(
    ferplus: Path, tiny_smile_onnx: Path, capsys
) -> None:
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--data", str(ferplus), "--split", "Test"]
    assert main([*argv, "--n-boot", "40", "--emotion-prior", "natural"]) == 0
    text = capsys.readouterr().out
    assert "Emotion recall per class (prior: natural)" in text and "| contempt |" in text
    assert "clear faces (>= 60% of votes agree)" in text
    assert main([*argv, "--n-boot", "40", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["emotion_prior"] == "balanced"
    (model,) = report["models"].values()
    # the clear faces: all but the last, whose votes split 5/5
    assert model["emotion"]["n"] == 6 and model["emotion_clear"]["n"] == 5
    assert sum(model["emotion_clear"]["per_class_support"].values()) == 5


FERPLUS = SHARED_DATASETS / "ferplus"


@pytest.mark.skipif(
    not (FERPLUS / "FER2013Test" / "label.csv").is_file(),
    reason="needs ../shared/datasets/ferplus (FER+ Test labels)",
)
def test_balanced_prior_stops_rare_emotions_collapsing_on_ferplus_test() -> None:
    """The shipped default on real FER+ Test faces: under its FER+ (natural) prior disgust
    and contempt are almost never called; the balanced prior fitted on Valid recovers them
    without losing the common classes."""
    from duchenne.models.registry import default_smile_model

    name = default_smile_model()
    recall = {}
    for prior in ("natural", "balanced"):
        report = evaluate(name, FERPLUS, split="Test", n_boot=40, emotion_prior=prior)
        recall[prior] = report["models"][name]["emotion"]["per_class_recall"]
    rare = ("disgust", "fear", "contempt")
    assert all(recall["balanced"][c] > recall["natural"][c] + 0.2 for c in rare)
    posed = ("surprise", "sadness", "anger", "disgust", "fear")  # "most of the time"
    assert all(recall["balanced"][c] >= 0.5 for c in posed)
    assert min(recall["balanced"].values()) >= 0.3
    assert recall["balanced"]["happiness"] >= 0.8 and recall["natural"]["neutral"] >= 0.8


def test_models_of_different_crop_formats_are_scored_on_the_same_faces(
    ferplus: Path, tiny_smile_onnx: Path, tmp_path: Path
) -> None:
    """A 64 px colour model compared with a 48 px grey one: each gets crops in its own
    format, cut from the same detected eyes (the tiny models compute the same function of
    brightness, so their scores agree)."""
    from tests.conftest import make_tiny_smile_onnx

    rgb = make_tiny_smile_onnx(tmp_path / "rgb64.onnx", size=64, channels=3)
    samples = list(read_dataset(ferplus, "Test"))
    crops = dataset_crops(samples, CropFormat(64, colour=True), "canvas", processes=1)
    assert crops.crops.shape == (6, 64, 64, 3) and crops.detected.all()
    report = evaluate(
        str(rgb), ferplus, split="Test", compare=str(tiny_smile_onnx), n_boot=40, processes=1
    )
    a = report["models"]["rgb64"]["smile"]["roc_auc"]["value"]
    b = report["models"]["tiny_smile"]["smile"]["roc_auc"]["value"]
    # 3 x 3 smiling/non-smiling pairs: a crop a pixel off swaps one or two of them
    assert report["n"] == 6 and a == pytest.approx(b, abs=2 / 9 + 1e-9)


@pytest.mark.parametrize(
    "option",
    [
        ["--limit", "0"],
        ["--limit", "-1"],
        ["--processes", "-1"],
    ],
)
def test_cli_counts_below_one_are_usage_errors(
    option: list[str], ferplus: Path, tiny_smile_onnx: Path, capsys
) -> None:
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--data", str(ferplus), *option]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {option[0]}: must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("n_boot", ["-5", "0", "1", "39"])
def test_cli_too_few_resamples_are_a_usage_error(
    n_boot: str, ferplus: Path, tiny_smile_onnx: Path, capsys
) -> None:
    """``--n-boot 1`` printed ``0.867 [0.800, 0.800]``: both ends were the one resample."""
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--data", str(ferplus)]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--n-boot", n_boot])
    assert exit_.value.code == 2
    assert "argument --n-boot: must be >= 40" in capsys.readouterr().err


@pytest.mark.parametrize(
    "counts",
    [
        {"limit": 0},
        {"limit": -1},
        {"processes": -1},
        {"limit": 1.5},
        {"processes": True},
    ],
)
def test_api_counts_below_one_raise_value_error(
    counts: dict, ferplus: Path, tiny_smile_onnx: Path
) -> None:
    with pytest.raises(ValueError, match=f"{next(iter(counts))} must be a whole number >= 1"):
        evaluate(str(tiny_smile_onnx), ferplus, split="Test", **counts)


@pytest.mark.parametrize("n_boot", [-5, 0, 1, 39, 39.0, 40.5, "40", True])
def test_api_too_few_resamples_raise_value_error_as_the_cli_refuses_them(
    n_boot: object, ferplus: Path, tiny_smile_onnx: Path
) -> None:
    """``evaluate(n_boot=1)`` reported an interval whose ends were the one resample; the CLI
    already refused it (``--n-boot``: ``MIN_BOOT``), the API now does too."""
    assert MIN_BOOT == 40
    with pytest.raises(ValueError, match=r"n_boot must be a whole number >= 40, got "):
        evaluate(str(tiny_smile_onnx), ferplus, split="Test", n_boot=n_boot, processes=1)


def test_api_whole_valued_float_counts_are_accepted(ferplus: Path, tiny_smile_onnx: Path) -> None:
    """As for every other count (``analysis.checks.whole_number``): 2.0 from JSON is 2."""
    report = evaluate(
        str(tiny_smile_onnx), ferplus, split="Test", limit=2.0, n_boot=40.0, processes=1.0
    )
    assert report["n"] == 2


def test_limit_keeps_n_samples_and_an_empty_split_is_a_dataset_error(
    ferplus: Path, tiny_smile_onnx: Path, tmp_path: Path
) -> None:
    report = evaluate(str(tiny_smile_onnx), ferplus, split="Test", limit=2, n_boot=40, processes=1)
    assert report["n"] == 2
    empty = tmp_path / "empty" / "FER2013Test"
    empty.mkdir(parents=True)
    (empty / "label.csv").write_text("")
    with pytest.raises(DatasetError, match="no samples to evaluate"):
        evaluate(str(tiny_smile_onnx), empty.parent, split="Test", n_boot=40, processes=1)


def test_output_suffix_picks_the_report_format(
    ferplus: Path, tiny_smile_onnx: Path, tmp_path: Path, capsys
) -> None:
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--data", str(ferplus), "--split", "Test"]
    argv += ["--limit", "3", "--n-boot", "40", "--processes", "1"]
    for name in ("r.json", "r.csv", "r.md", "forced.json"):
        extra = ["--format", "md"] if name == "forced.json" else []
        assert main([*argv, "--output", str(tmp_path / name), *extra]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["n"] == 3
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["model", "data", "split", "n"]
    assert (tmp_path / "r.md").read_text().startswith(f"Dataset `{ferplus}` split `Test`: n = 3")
    assert (tmp_path / "forced.json").read_text().startswith("Dataset ")  # --format wins
    capsys.readouterr()
    assert main([*argv, "--output", str(tmp_path / "r.xlsx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("duchenne evaluate: cannot tell the report format from 'r.xlsx'")
    assert err.count("\n") == 1 and not (tmp_path / "r.xlsx").exists()


def test_csv_report_carries_the_paired_comparison_on_the_first_models_row(
    ferplus: Path, tiny_smile_onnx: Path, tmp_path: Path
) -> None:
    import csv
    import shutil

    other = shutil.copy(tiny_smile_onnx, tmp_path / "other.onnx")
    argv = ["evaluate", "--model", str(tiny_smile_onnx), "--compare", str(other)]
    argv += ["--data", str(ferplus), "--split", "Test", "--limit", "3", "--n-boot", "40"]
    assert main([*argv, "--processes", "1", "--output", str(tmp_path / "r.csv")]) == 0
    first, second = csv.DictReader((tmp_path / "r.csv").open())
    assert (first["model"], first["compared_with"]) == ("tiny_smile", "other")
    assert float(first["delta_accuracy"]) == 0.0 and float(first["mcnemar_p"]) == 1.0
    for key in ("delta_accuracy_ci.0", "delta_roc_auc", "delta_roc_auc_ci.1", "mcnemar_method"):
        assert first[key] != "" and second[key] == ""


def test_corrupt_model_file_is_one_clean_line(ferplus: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf")
    argv = ["evaluate", "--model", str(bad), "--data", str(ferplus), "--split", "Test"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"duchenne evaluate: UnrecognizedModelError: {bad}: ")
    assert err.count("\n") == 1 and "[ONNXRuntimeError]" not in err


def test_limit_draws_a_seeded_sample_that_keeps_both_classes() -> None:
    """``--limit 200`` on SMILEsmileD (its 2,000+ smiles listed first) held smiles only, so
    ROC-AUC printed "-"; the draw is seeded (the same every run) and keeps reading order."""
    from duchenne.evaluation.runner import limited_samples

    samples = [Sample(Path(f"{i}.jpg"), label=int(i < 500)) for i in range(1000)]
    kept = limited_samples(samples, 50, seed=0)
    assert len(kept) == 50 and {s.label for s in kept} == {0, 1}
    order = [int(s.path.stem) for s in kept]
    assert order == sorted(order) and kept == limited_samples(samples, 50, seed=0)
    assert limited_samples(samples, 5000, seed=0) is samples
