"""The arithmetic of benchmark scripts whose numbers go into the model card."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_audit_extrapolates_by_stratum_shares() -> None:
    audit = _load("audit_mtfl_labels")
    # 10 faces: 8 where the model agrees with the label, 2 where it does not
    decisions = {f"a{i}": (1, 1) for i in range(8)} | {"w0": (1, 0), "w1": (0, 1)}
    # the rater sides with the model everywhere, and is unsure of one agreed face
    doc = {
        "files": ["a0", "a1", "a2", "w0", "w1"],
        "smiling": [1, 1, None, 0, 1],
    }
    text = audit.audit_table(doc, decisions)
    assert "| model disagrees | 20.0% | 2 | 0 | 0 | 2 |" in text
    assert "| model agrees with label | 80.0% | 3 | 1 | 2 | 2 |" in text
    # labels: right on the agreed stratum only (0.8); the model: everywhere (1.0)
    assert "labels agree with the rater on 0.800 [0.800, 0.800]" in text
    assert "decisions agree with the rater on 1.000 [1.000, 1.000]" in text


def test_crop_format_checkpoints_are_reused_only_for_the_same_recipe() -> None:
    pytest.importorskip("torch")
    bench = _load("bench_crop_format")
    args = type("Args", (), {"net": "smile_n", "epochs": 3, "seed": 0, "threads": 1})()
    cfg = bench.recipe(args, "48-grey", "cache/a")
    import dataclasses
    import json

    saved = json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert bench.same_recipe(dict(saved, cache_dir="elsewhere", run_name="x"), cfg)
    assert not bench.same_recipe(dict(saved, epochs=4), cfg)


def test_crop_format_names_each_arms_framing() -> None:
    bench = _load("bench_crop_format")
    assert bench.framing_name({"iod_fraction": 0.52, "eye_y": 0.10}) == "lower framing"
    assert bench.framing_name({"iod_fraction": 0.36, "eye_y": 0.33}) == "face framing"
    assert bench.framing_name({"iod_fraction": 0.4, "eye_y": 0.3}) == "framing (0.4, 0.3)"


def _card_script():
    spec = importlib.util.spec_from_file_location(
        "make_model_card", BENCHMARKS.parent / "scripts" / "make_model_card.py"
    )
    card_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card_script)
    return card_script


def test_model_card_training_table_is_rewritten_alone(tmp_path: Path, monkeypatch) -> None:
    """``make_model_card.py --training-only``: a new run summary, no re-scoring of the models."""
    card_script = _card_script()
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(
        "# card\n<!-- card-metrics:start -->\nkept\n<!-- card-metrics:end -->\n"
        "<!-- card-training:start -->\nold\n<!-- card-training:end -->\n"
    )
    run = {
        "name": "smile_n_kd", "device": "cpu:x86_64 x2 threads", "epochs_run": 20,
        "best_epoch": 17, "stopped": "epochs", "train_seconds": 600.0,
        "config": {"threads": 2, "valid_set": "ferplus_valid+mtfl_calib"},
        "valid_metrics": {"emotion_acc": 0.7512, "smile_f1": 0.8801},
    }  # fmt: skip
    summary = tmp_path / "smile_n_kd.json"
    summary.write_text(json.dumps(run))
    monkeypatch.setattr(card_script, "CARD", card)
    monkeypatch.setattr(
        sys, "argv", ["make_model_card.py", "--training-only", "--runs", str(summary)]
    )
    card_script.main()
    text = card.read_text()
    assert "old" not in text and "kept" in text
    row = "| smile_n_kd | cpu:x86_64 x2 threads | 2 | 20 (17) | epochs | 10.0 | ferplus_valid+mtfl_calib | 0.751 | 0.880 |"
    assert row in text


def test_model_card_paired_rows_are_new_minus_old_on_the_same_faces() -> None:
    """``--pair NEW=OLD``: accuracies, the paired difference and McNemar's p come from the
    two models' probabilities on the same faces; unlabelled faces (-1) are left out."""
    import numpy as np

    card_script = _card_script()
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, -1, -1])
    new = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4, 0.9, 0.9])  # all 8 right
    old = np.array([0.9, 0.8, 0.4, 0.3, 0.1, 0.2, 0.6, 0.7, 0.1, 0.1])  # 4 of 8 right
    ece = {"smile": {"ece": {"value": 0.05}}}
    results = {
        "set A": {"_y": y, "_smile": {"n": new, "o": old}, "n": ece, "o": ece, "_detected_rate": 1},
    }
    text = card_script.paired_table(results, [("n", "o")], n_boot=200)
    row = text.splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["n", "o", "set A", "0.500 -> 1.000"]
    assert cells[4].startswith("+0.500 [")
    # McNemar on 4 discordant faces, all won by the new model
    from duchenne.evaluation.metrics import mcnemar_test

    right = (y[:8] == 1).astype(int)
    p = mcnemar_test(y[:8], right, (old[:8] >= 0.5).astype(int))["p_value"]
    assert cells[5] == f"{p:.3g}"
    assert cells[6].startswith("+0.") and cells[7] == "0.050 -> 0.050"


def _scored(bench, n: int, shift: float, seed: int):
    """Logits whose true smile probability is sigmoid(logit - shift)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(0.0, 2.5, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-(logit - shift)))).astype(int)
    return bench.Scored(logit, label)


def test_calibration_mix_scores_the_held_set_out_of_fold_and_fits_its_shift() -> None:
    bench = _load("bench_calibration_mix")
    mix = {"a": _scored(bench, 4000, 0.0, 1), "b": _scored(bench, 4000, 0.0, 2)}
    tests = {"a test": _scored(bench, 4000, 0.0, 3), "held": _scored(bench, 4000, 1.5, 4)}
    result = bench.compare_mixes(mix, tests, "held", seed=0)
    shipped, joint = result[bench.SHIPPED_ARM], result[bench.WITH_HELD_ARM]
    ece = bench.expected_calibration_error
    held = tests["held"]
    # the held domain's offset is learnt only when it joins the mix
    assert (
        ece(held.label, joint["probs"]["held"]) < ece(held.label, shipped["probs"]["held"]) - 0.03
    )
    assert joint["cal"][1] < shipped["cal"][1] - 0.2
    # out of fold: flipping one half's labels leaves that half's probabilities unchanged
    mask = bench.halves(len(held.label), 0)
    flipped = bench.Scored(held.logit, np.where(mask, 1 - held.label, held.label))
    again = bench.compare_mixes(mix, {**tests, "held": flipped}, "held", seed=0)
    moved = again[bench.WITH_HELD_ARM]["probs"]["held"]
    np.testing.assert_allclose(moved[mask], joint["probs"]["held"][mask])
    assert not np.allclose(moved[~mask], joint["probs"]["held"][~mask])
    # the table's last column is the worst of the per-domain ECEs
    row = bench.rows_for("m", result, tests)[0]
    assert row[-1] == max(row[5], row[7])


def test_train_ladder_predicts_the_run_names_train_fit_gives() -> None:
    """The GPU script collects each job's files by name: it must use fit's naming rule."""
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location(
        "train_ladder", BENCHMARKS.parent / "scripts" / "train_ladder.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.job_name("smile_s:10") == "smile_s"
    assert script.job_name("smile_n:5:fer") == "smile_n_ferplus"
    assert script.job_name("smile_s@train-sets=ferplus_train+mtfl_train") == "smile_s_ferplus+mtfl"
    assert script.job_name("smile_s@run-name=x@train-sets=mtfl_train") == "x"
    assert script.job_name("smile_s@limit=64") == "smile_s_limit64"  # a smoke run


def _lodo_row(net: str, left: str, recipe: str, acc: float) -> dict:
    est = {"value": acc, "ci": [acc - 0.01, acc + 0.01]}
    return {
        "net": net, "left_out": left, "scored_on": left.upper(), "recipe": recipe,
        "file": {"path": f"{net}_lodo_{left}.onnx", "sha256": None},
        "accuracy": est, "roc_auc": est, "all3": {"file": {}, "accuracy": est, "roc_auc": est},
    }  # fmt: skip


def test_lodo_record_keeps_rows_it_cannot_score_again_and_replaces_rescored_ones() -> None:
    """A LODO file is trained for the card's table alone: scoring new files must not drop
    the rows of runs whose files were not kept (the H200 call), and scoring the same net,
    left-out set and recipe again replaces its row."""
    card_script = _card_script()
    old = [_lodo_row("smile_s", "mtfl", "H200", 0.848), _lodo_row("smile_n", "mtfl", "CPU", 0.80)]
    new = [_lodo_row("smile_n", "mtfl", "CPU", 0.83), _lodo_row("smile_n", "ferplus", "CPU", 0.9)]
    record = card_script.update_lodo_record(old, new)
    assert len(record) == 3 and old[0] in record and old[1] not in record
    table = card_script.lodo_table(record).splitlines()
    rows = [line for line in table if line.startswith("| smile_")]
    # by left-out set in card order (ferplus first), then the ladder's small nets first
    assert [r.split("|")[1].strip() + " " + r.split("|")[3].strip() for r in rows] == [
        "smile_n ferplus", "smile_n mtfl", "smile_s mtfl"
    ]  # fmt: skip
    assert "0.830 [0.820, 0.840]" in rows[1] and "0.848 [0.838, 0.858]" in rows[2]


@pytest.mark.parametrize("script", ["make_model_card", "bench_crop_format"])
def test_card_scripts_refuse_too_few_bootstrap_resamples(script, monkeypatch, capsys) -> None:
    """``--n-boot 1`` wrote intervals of one resample into the card (``duchenne evaluate``
    already refused fewer than 40)."""
    module = _card_script() if script == "make_model_card" else _load(script)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--n-boot", "39"])
    with pytest.raises(SystemExit) as exc:
        module.main()
    assert exc.value.code == 2 and "must be >= 40" in capsys.readouterr().err
