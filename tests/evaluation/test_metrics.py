"""Metric tests against small hand-computed answers (no scipy/sklearn needed)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from duchenne.evaluation import metrics as M


def test_accuracy_precision_recall_f1_by_hand() -> None:
    y = [1, 1, 1, 0, 0]
    pred = [1, 1, 0, 1, 0]  # tp=2 fp=1 fn=1 tn=1
    assert M.accuracy(y, pred) == pytest.approx(3 / 5)
    assert M.precision_recall_f1(y, pred) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert M.precision(y, [0] * 5) == 0.0  # zero_division=0 convention
    assert M.recall([0] * 5, pred) == 0.0


def test_confusion_matrix_and_macro_f1() -> None:
    y = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    cm = M.confusion_matrix(y, pred)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert M.per_class_f1(y, pred) == pytest.approx([0.5, 0.8, 2 / 3])
    assert M.macro_f1(y, pred) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A class absent from both truth and predictions does not enter the mean.
    assert M.macro_f1(y, pred, n_classes=8) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert M.confusion_matrix([0, 1], [1, 1], n_classes=3).shape == (3, 3)


def test_rankdata_average_ties() -> None:
    assert M.rankdata([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert M.rankdata([3, 1, 2]).tolist() == [3.0, 1.0, 2.0]


def test_roc_auc_known_ranking() -> None:
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered.
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert M.roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0


def test_roc_auc_ties_count_half() -> None:
    assert M.roc_auc([0, 1, 0, 1, 1], [0.7] * 5) == 0.5
    # pos 0.5 ties neg 0.5 (1/2) and beats 0.2; pos 0.9 beats both: 3.5 / 4.
    assert M.roc_auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.875)
    assert math.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_roc_auc_equals_mann_whitney_and_trapezoid() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 6, 60).astype(float)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    u = sum((p > q) + 0.5 * (p == q) for p, q in itertools.product(pos, neg))
    auc = M.roc_auc(y, s)
    assert auc == pytest.approx(u / (len(pos) * len(neg)))
    fpr, tpr, thr = M.roc_curve(y, s)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.isinf(thr[0]) and np.all(np.diff(thr[1:]) < 0)


def test_spearman() -> None:
    x = np.arange(1, 6)
    assert M.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert M.spearman(x, -(x**3)) == pytest.approx(-1.0)
    # d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert M.spearman(x, [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # With ties (average ranks 1, 2.5, 2.5, 4): rho = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert M.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
    assert math.isnan(M.spearman([1, 1, 1], [1, 2, 3]))


def test_ece_and_reliability() -> None:
    # Bin at 0.3 with 30% positives and bin at 0.8 with 80% positives: perfectly calibrated.
    prob = [0.3] * 10 + [0.8] * 5
    y = [1, 1, 1] + [0] * 7 + [1, 1, 1, 1, 0]
    assert M.expected_calibration_error(y, prob) == pytest.approx(0.0, abs=1e-12)
    curve = M.reliability_curve(y, prob, n_bins=10)
    assert curve["count"].sum() == 15 and curve["count"][3] == 10 and curve["count"][8] == 5
    assert curve["frequency"][3] == pytest.approx(0.3)
    assert np.isnan(curve["confidence"][0])
    # Always 0.9 confident but right half the time: ECE = 0.4.
    assert M.expected_calibration_error([1, 0, 1, 0], [0.9] * 4) == pytest.approx(0.4)
    # p == 1.0 lands in the last (closed) bin.
    assert M.reliability_curve([1], [1.0], n_bins=5)["count"].tolist() == [0, 0, 0, 0, 1]


def test_multiclass_ece_uses_top_confidence() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7]])
    assert M.expected_calibration_error([0, 1, 1], probs) == pytest.approx(abs(2 / 3 - 0.7))


def test_brier_and_log_loss() -> None:
    assert M.brier_score([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert M.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


@pytest.mark.parametrize("true_t", [0.6, 2.5])
def test_fit_temperature_recovers_known_t(true_t: float) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 20_000)
    y = (rng.random(z.size) < M.sigmoid(z)).astype(int)
    fitted = M.fit_temperature(y, z * true_t)  # logits scaled by T: dividing by T recovers z
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert M.binary_nll(y, z * true_t, fitted) <= M.binary_nll(y, z * true_t, 1.0)


def test_fit_temperature_softmax() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 2.0, (5_000, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = (rng.random((len(z), 1)) > p.cumsum(axis=1)).sum(axis=1)
    assert M.fit_temperature(y, z * 1.8) == pytest.approx(1.8, rel=0.05)


def test_mcnemar_exact_small_table() -> None:
    # b=2, c=8: p = 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * 56 / 1024.
    result = M.mcnemar(2, 8)
    assert result["method"] == "exact"
    assert result["p_value"] == pytest.approx(112 / 1024)
    assert M.mcnemar(5, 5)["p_value"] == 1.0
    assert M.mcnemar(0, 0)["p_value"] == 1.0


def test_mcnemar_chi2_textbook_table() -> None:
    # Agresti (2002), presidential approval: discordant 150 vs 86.
    result = M.mcnemar(150, 86)
    assert result["method"] == "chi2"
    assert result["statistic"] == pytest.approx(63**2 / 236)  # = 16.82 with continuity correction
    assert result["p_value"] == pytest.approx(4.11e-5, rel=0.01)


def test_chi2_sf_1dof_critical_values() -> None:
    assert M.chi2_sf_1dof(3.841458820694124) == pytest.approx(0.05, rel=1e-9)
    assert M.chi2_sf_1dof(6.634896601021214) == pytest.approx(0.01, rel=1e-9)
    assert M.chi2_sf_1dof(1.0) == pytest.approx(0.31731050786291415)
    assert M.chi2_sf_1dof(0.0) == 1.0


def test_mcnemar_from_predictions() -> None:
    y = [1, 1, 1, 0, 0, 0]
    a = [1, 1, 1, 0, 0, 1]  # wrong on the last
    b = [0, 0, 1, 0, 0, 1]  # wrong on the first two and the last
    result = M.mcnemar_test(y, a, b)
    assert (result["b"], result["c"]) == (2, 0)


def _noisy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, y + rng.normal(0.0, 1.0, n)


def test_bootstrap_ci_contains_point_and_narrows_with_n() -> None:
    widths = []
    for n in (100, 2_000):
        y, s = _noisy(n)
        est = M.bootstrap_ci(M.roc_auc, y, s, n_boot=300, seed=0)
        assert est.low <= est.value <= est.high
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(n): 4.5x narrower expected


def test_bootstrap_is_seeded_and_fast_path_matches_generic() -> None:
    y, s = _noisy(300)
    pred = (s > 0.5).astype(int)
    for metric, arg in ((M.roc_auc, s), (M.accuracy, pred), (M.f1_score, pred)):
        fast = M.bootstrap_ci(metric, y, arg, n_boot=200, seed=7)
        generic = M.bootstrap_ci(lambda a, b, m=metric: m(a, b), y, arg, n_boot=200, seed=7)
        assert fast == pytest.approx(generic)
        assert fast == M.bootstrap_ci(metric, y, arg, n_boot=200, seed=7)


def test_paired_bootstrap() -> None:
    y, s = _noisy(400)
    same = M.paired_bootstrap_auc(y, s, s, n_boot=200)
    assert same["value"] == 0.0 and same["p_value"] == 1.0
    rng = np.random.default_rng(5)
    worse = s + rng.normal(0.0, 3.0, len(s))
    better = M.paired_bootstrap_auc(y, s, worse, n_boot=200)
    assert better["value"] > 0 and better["ci"][0] > 0 and better["p_value"] < 0.01
    acc = M.paired_bootstrap_accuracy(
        y, (s > 0.5).astype(int), (worse > 0.5).astype(int), n_boot=200
    )
    assert acc["value"] == pytest.approx(acc["value_a"] - acc["value_b"])


def test_binary_report_is_json_safe_and_complete() -> None:
    y, s = _noisy(300)
    prob = M.sigmoid(2 * s - 1)
    graded = prob + np.random.default_rng(2).normal(0, 0.1, len(prob))
    report = M.binary_report(y, prob, graded=graded, n_boot=100)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    for key in (
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "brier",
        "ece",
        "spearman_graded",
    ):
        value, (low, high) = report[key]["value"], report[key]["ci"]
        assert low <= value <= high, key
    assert report["n"] == 300 and report["n_positive"] + report["n_negative"] == 300
    assert sum(map(sum, report["confusion_matrix"])) == 300
    assert len(report["reliability"]["count"]) == 15
    assert report["roc_auc"]["value"] == pytest.approx(M.roc_auc(y, prob))


def test_binary_report_one_class_gives_null_not_nan() -> None:
    report = M.binary_report([1, 1, 1], [0.9, 0.8, 0.7], n_boot=20)
    assert report["roc_auc"]["value"] is None
    json.dumps(report, allow_nan=False)


def test_binary_report_undefined_f1_is_null_not_zero() -> None:
    """One negative face, rightly called negative: precision, recall and F1 are 0/0.

    They were reported as 0.000 [0.000, 0.000] (``duchenne evaluate --limit 1``), a
    perfect classifier scored as one that misses every smile, while ROC-AUC said "-".
    """
    report = M.binary_report([0, 0], [0.1, 0.2], n_boot=40)
    assert report["accuracy"]["value"] == 1.0
    for key in ("precision", "recall", "f1"):
        assert report[key] == {"value": None, "ci": [None, None]}, key
    json.dumps(report, allow_nan=False)
    # recall with positives but none predicted is defined (0); precision is not
    missed = M.binary_report([1, 0], [0.1, 0.2], n_boot=40)
    assert missed["recall"]["value"] == 0.0 and missed["precision"]["value"] is None


def test_binary_report_ci_leaves_out_resamples_where_f1_is_undefined() -> None:
    """One positive and one negative, both right: F1 is 1 on every resample that holds
    the positive; a resample of the negative twice has no F1 at all. It was counted as
    0, giving the CI [0, 1] around a value of 1 (`evaluate --data ferplus --limit 2`)."""
    report = M.binary_report([1, 0], [0.9, 0.1], n_boot=200, seed=0)
    assert report["f1"] == {"value": 1.0, "ci": [1.0, 1.0]}
    assert report["recall"] == {"value": 1.0, "ci": [1.0, 1.0]}
    assert report["precision"] == {"value": 1.0, "ci": [1.0, 1.0]}


def test_zero_division_option_and_its_fast_bootstrap() -> None:
    from functools import partial

    assert M.f1_score([0, 0], [0, 0]) == 0.0  # the default (training's model selection)
    assert math.isnan(M.f1_score([0, 0], [0, 0], zero_division=math.nan))
    assert math.isnan(M.precision([1, 0], [0, 0], zero_division=math.nan))
    assert M.recall([0, 0], [1, 0], zero_division=1.0) == 1.0
    assert np.isnan(M.per_class_f1([0, 1], [0, 1], 3, zero_division=math.nan)[2])
    y, s = _noisy(40)
    pred = (s > 0.5).astype(int)
    for metric in (M.precision, M.recall, M.f1_score):
        nan_metric = partial(metric, zero_division=math.nan)
        fast = M.bootstrap_ci(nan_metric, y[:6], pred[:6], n_boot=300, seed=3)
        generic = M.bootstrap_ci(
            lambda a, b, m=nan_metric: m(a, b), y[:6], pred[:6], n_boot=300, seed=3
        )
        assert fast == pytest.approx(generic, nan_ok=True)


def test_multiclass_report_per_class_f1_of_an_absent_class_is_null() -> None:
    from duchenne.evaluation.metrics import multiclass_report

    rep = multiclass_report([0, 1, 1], [0, 1, 0], labels=["a", "b", "c"], n_boot=40)
    assert rep["per_class_f1"]["c"] is None  # neither true nor predicted: undefined
    assert rep["per_class_f1"]["a"] == pytest.approx(2 / 3)


def test_compare_and_multiclass_reports() -> None:
    y, s = _noisy(300)
    report = M.compare_report(
        y, M.sigmoid(s - 0.5), M.sigmoid(-s), n_boot=100, names=("good", "bad")
    )
    json.dumps(report, allow_nan=False)
    assert report["delta_roc_auc"]["value"] > 0.5
    assert report["mcnemar"]["p_value"] < 1e-6
    assert set(report["models"]) == {"good", "bad"}
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 60)
    labels = probs.argmax(axis=1)
    multi = M.multiclass_report(labels, probs, labels=["a", "b", "c"], n_boot=50)
    json.dumps(multi, allow_nan=False)
    assert multi["accuracy"]["value"] == 1.0 and multi["macro_f1"]["value"] == 1.0


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        M.roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        M.roc_auc([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError):
        M.accuracy([0, 1], [0])
    with pytest.raises(ValueError):
        M.brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError):
        M.fit_temperature([0, 1], [0.1, 0.2], bounds=(2.0, 1.0))


def test_per_class_recall_shows_collapse_into_one_class() -> None:
    from duchenne.evaluation.metrics import multiclass_report, per_class_recall

    t = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 0, 0, 1, 0])  # class 2 always called 0
    assert per_class_recall(t, p, 4) == [1.0, 0.5, 0.0, None]
    rep = multiclass_report(t, p, labels=["a", "b", "c", "d"], n_boot=10)
    assert rep["per_class_recall"] == {"a": 1.0, "b": 0.5, "c": 0.0, "d": None}
    labels = ["a", "b", "c", "d"]
    assert M.recall_cells(rep, labels) == ["1.00", "0.50", "0.00", "-"]
    assert M.recall_cells(rep, labels, support=True) == [
        "1.00 (n=3)",
        "0.50 (n=2)",
        "0.00 (n=1)",
        "-",
    ]


def _draw(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """One label per row drawn from softmax(logits)."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (rng.random((len(p), 1)) > p.cumsum(axis=1)).sum(axis=1)


def test_fit_class_bias_recovers_a_known_offset() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(0.0, 1.5, (20_000, 4))
    y = _draw(rng, z)
    shift = np.array([0.8, -0.5, 0.2, -0.5])
    b = M.fit_class_bias(y, z - shift, class_weight=None)  # refit to the labels' own prior
    np.testing.assert_allclose(b, shift - shift.mean(), atol=0.06)
    assert b.sum() == pytest.approx(0.0, abs=1e-9)


def test_balanced_bias_undoes_a_skewed_prior() -> None:
    # Weighting each label by 1 / its frequency f makes the weighted P(y | x) proportional
    # to P(y | x) / f_y: for a calibrated model the balanced fit must be -log f (centred).
    rng = np.random.default_rng(3)
    skewed = rng.normal(0.0, 1.5, (40_000, 4)) + np.log([0.6, 0.25, 0.1, 0.05])
    y = _draw(rng, skewed)  # the model's logits are the true ones: calibrated
    freq = M.class_prior(y, 4)
    assert freq == pytest.approx(np.bincount(y, minlength=4) / len(y))
    b = M.fit_class_bias(y, skewed)
    np.testing.assert_allclose(b, -np.log(freq) + np.log(freq).mean(), atol=0.08)
    balanced = np.argmax(skewed + b, axis=1)  # rare classes now get called
    assert np.bincount(balanced, minlength=4)[3] > 3 * np.bincount(skewed.argmax(1), minlength=4)[3]


def test_fit_class_bias_soft_targets_and_bad_input() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(0.0, 1.0, (3_000, 3))
    y = _draw(rng, z + [0.5, 0.0, -0.5])
    one_hot = np.eye(3)[y] * 10  # vote counts: rows are normalised
    np.testing.assert_allclose(M.fit_class_bias(one_hot, z), M.fit_class_bias(y, z), atol=1e-9)
    with pytest.raises(ValueError, match="every class"):
        M.fit_class_bias(np.zeros(10, int), z[:10])
    with pytest.raises(ValueError, match="finite"):
        M.fit_class_bias(y[:2], np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="class_weight"):
        M.fit_class_bias(y, z, class_weight="uniform")
    with pytest.raises(ValueError, match="lie in"):
        M.fit_class_bias(y + 5, z)


def test_fit_platt_recovers_temperature_and_bias() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(0.0, 2.0, 30_000)
    y = (rng.random(z.size) < M.sigmoid(z)).astype(int)
    # the model's logits are 2x too confident and shifted by -0.7: z' = 2 (z - 0.7)
    t, b = M.fit_platt(y, 2.0 * (z - 0.7))
    assert t == pytest.approx(2.0, rel=0.05) and b == pytest.approx(0.7, abs=0.05)
    assert M.binary_nll(y, 2.0 * (z - 0.7) + 2 * b * t, t) < M.binary_nll(y, 2.0 * (z - 0.7), t)


def test_group_weights_make_each_group_count_the_same() -> None:
    w = M.group_weights(["a"] * 30 + ["b"] * 10)
    assert w.mean() == pytest.approx(1.0)
    assert w[:30].sum() == pytest.approx(w[30:].sum())
    # a small shifted domain pulls the fitted bias as hard as a large one
    rng = np.random.default_rng(6)
    z = rng.normal(0.0, 2.0, 8_000)
    y = (rng.random(z.size) < M.sigmoid(z)).astype(int)
    logits = np.where(np.arange(z.size) < 6_000, z, z + 2.0)  # 2,000 rows lean "smiling"
    groups = np.arange(z.size) < 6_000
    _, pooled = M.fit_platt(y, logits)
    _, balanced = M.fit_platt(y, logits, sample_weight=M.group_weights(groups))
    assert balanced < pooled < 0  # the balanced fit corrects more towards the small domain


def test_fit_platt_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match="both classes"):
        M.fit_platt([1, 1, 1], [0.1, 0.5, 2.0])
    with pytest.raises(ValueError, match="wrong way round"):
        M.fit_platt([0, 0, 1, 1] * 50, [3.0, 2.0, -2.0, -3.0] * 50)
