"""Evaluate smile/emotion models on any supported dataset layout.

Why crops are computed here once per dataset: every model of the ladder shares the same
48x48 aligned crop, so a comparison runs both models on identical inputs (a paired test
needs that) and a ladder evaluation pays for detection once. Small face crops (FER2013,
SMILEsmileD: long side <= ``SMALL_IMAGE``) go through the training crop pipeline
(upscaled canvas -> detector -> Face Mesh -> aligner); photos go through the ordinary
``Analyzer`` and its most confident face, exactly as at inference.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.checks import whole_number
from duchenne.analysis.crop_format import CropFormat
from duchenne.datasets import (
    FERPLUS_EMOTIONS,
    GROUP_ATTRIBUTES,
    Sample,
    labelled_eyes,
    read_dataset,
)
from duchenne.errors import DatasetError
from duchenne.evaluation.metrics import binary_report, compare_report, multiclass_report
from duchenne.face.align import align_face, crop_as_aligned
from duchenne.io.image import load_image
from duchenne.io.progress import ProgressBar
from duchenne.models.smile import SmileModel, SmileOutputs

logger = logging.getLogger(__name__)

SMALL_IMAGE = 128
CROP_MODES = ("auto", "canvas", "photo", "resize")
MIN_BOOT = 40
"""Fewest bootstrap resamples ``evaluate`` takes: the 95% interval cuts 2.5% off each
tail, which needs 1 / 0.025 = 40 resamples to hold one; with fewer its ends were single
resamples, an "interval" that need not contain the value (``duchenne evaluate --n-boot``
refuses the same)."""


def boot_count(n_boot: Any) -> int:
    """``n_boot`` as an int if it is a whole number >= ``MIN_BOOT``, else ``ValueError``.

    Why one check: the CLI refused ``--n-boot 1`` while ``evaluate(n_boot=1)`` reported an
    interval missing its own value. One message whatever is wrong with the value (``n_boot
    must be a whole number >= 40, got 39``), the CLI's rule in the API's words.

    Example:
        >>> boot_count(200.0)
        200
    """
    try:
        count = whole_number("n_boot", n_boot)
    except ValueError:  # not whole, or < 1: the same message as too few
        count = 0
    if count < MIN_BOOT:
        raise ValueError(f"n_boot must be a whole number >= {MIN_BOOT}, got {n_boot!r}")
    return count


def limited_samples(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """``limit`` samples drawn at random (seeded), in their reading order; all if None.

    Why not the first ``limit``: readers list a set in a fixed order, often by class
    (SMILEsmileD: 2,000+ smiles first), so a quick ``--limit 200`` held one class and its
    ROC-AUC could not be computed; a seeded draw keeps the classes' mix and is the same
    every run.
    """
    if limit is None or limit >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), limit, replace=False))
    return [samples[i] for i in keep]


@dataclass
class DatasetCrops:
    """Aligned crops of a dataset and how each was obtained."""

    crops: np.ndarray  # (n, S, S) gray or (n, S, S, 3)
    detected: np.ndarray  # (n,) bool: the face pipeline found the face (else fallback crop)
    mode: str
    seconds: float


def dataset_crops(
    samples: list[Sample],
    fmt: CropFormat,
    mode: str = "auto",
    processes: int = 2,
    eyes: str = "mesh",
) -> DatasetCrops:
    """Crops for every sample (see module docstring for the modes) in ``fmt``'s side and
    framing.

    ``eyes``: align on Face Mesh eye centres (``mesh``, the default pipeline) or on the
    detector's eye keypoints (``keypoints``, what ``stages=detect,smile`` does).
    ``fmt.colour``: RGB crops in the ``canvas`` and labelled-photo modes, which otherwise
    make grey ones like the training caches (the other modes always give RGB).
    """
    start = time.perf_counter()
    paths = [str(s.path) for s in samples]
    if mode == "auto":
        first = load_image(paths[0]) if paths else np.zeros((1, 1, 3), np.uint8)
        mode = "canvas" if max(first.shape[:2]) <= SMALL_IMAGE else "photo"
    if mode == "canvas":
        from duchenne.analysis.crops import CanvasConfig, build_crops

        canvas = CanvasConfig(eyes=eyes)
        result = build_crops(paths, mode="pipeline", canvas=canvas, processes=processes, fmt=fmt)
        return DatasetCrops(result.images, result.detected, mode, time.perf_counter() - start)
    cfg = fmt.align_config()
    if mode == "photo" and samples and all("landmarks" in s.meta for s in samples):
        return _labelled_photo_crops(samples, fmt, processes, eyes, start)
    if mode == "resize":
        crops = np.stack([crop_as_aligned(load_image(p), cfg) for p in paths])
        return DatasetCrops(crops, np.zeros(len(paths), bool), mode, time.perf_counter() - start)
    from duchenne.analysis.analyzer import Analyzer
    from duchenne.analysis.crops import stages_for_eyes

    # dataset images are upright: no turned search (it could only add false faces)
    analyzer = Analyzer(stages=stages_for_eyes(eyes), max_faces=1, rotations=False)
    crops, detected = [], []
    for path in ProgressBar(paths, desc="crops", unit="img", disable=len(paths) < 50):
        image = load_image(path)
        faces = analyzer.faces_in(image)
        found = len(faces) > 0
        crops.append(
            align_face(image, analyzer.face_eyes(faces)[0], cfg)
            if found
            else crop_as_aligned(image, cfg)
        )
        detected.append(found)
    return DatasetCrops(np.stack(crops), np.array(detected), mode, time.perf_counter() - start)


def _labelled_photo_crops(
    samples: list[Sample], fmt: CropFormat, processes: int, eyes: str, start: float
) -> DatasetCrops:
    """Photos whose labels say where the face is (MTFL): crop the matching detected face,
    the labelled eyes where the pipeline misses it, exactly as the training crops."""
    from duchenne.analysis.crops import build_photo_crops

    paths = [str(s.path) for s in samples]
    hints = labelled_eyes(samples)
    result = build_photo_crops(paths, hints, eyes=eyes, processes=processes, fmt=fmt)
    return DatasetCrops(result.images, result.detected, "photo", time.perf_counter() - start)


def crops_for_models(
    samples: list[Sample],
    models: list[SmileModel],
    mode: str = "auto",
    processes: int = 2,
    eyes: str = "mesh",
    cut: dict[CropFormat, DatasetCrops] | None = None,
) -> list[DatasetCrops]:
    """The crops each model takes (its input size, channels and framing), cut once per
    format: a 64 px colour model and a 48 px grey one are scored on the same faces.
    ``cut`` keeps the crops between calls on the same samples (format -> crops)."""
    cut = {} if cut is None else cut
    out = []
    for m in models:
        fmt = CropFormat.of_model(m)
        if fmt not in cut:
            cut[fmt] = dataset_crops(samples, fmt, mode, processes, eyes)
        out.append(cut[fmt])
    return out


def breakdowns(
    samples: list[Sample], out: SmileOutputs, labels: np.ndarray, n_boot: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Smile metrics per group of each attribute in ``GROUP_ATTRIBUTES`` the samples carry."""
    result: dict[str, dict[str, Any]] = {}
    for key in GROUP_ATTRIBUTES:
        if not samples or not all(key in s.meta for s in samples):
            continue
        values = np.array([str(s.meta[key]) for s in samples])
        result[key] = {}
        for group in sorted(set(values)):
            keep = (values == group) & (labels >= 0)
            result[key][group] = binary_report(
                labels[keep], out.smile[keep], n_boot=n_boot, seed=seed
            )
    return result


def _distinct_names(names: list[str], specs: list[str]) -> list[str]:
    """Report keys for the models: their names, or the given specs (paths) where two share a
    name (e.g. a retrained ``smile_s.onnx`` compared with the shipped ``smile_s``)."""
    return names if len(set(names)) == len(names) else [str(s) for s in specs]


CLEAR_AGREEMENT = 0.6
"""Share of the annotators' emotion votes the plurality needs for a face to count as a
*clear* expression (6 of FER+'s 10): the emotion report is repeated on those faces."""


def _targets(samples: list[Sample]) -> dict[str, np.ndarray | None]:
    labels = np.array([-1 if s.label is None else int(s.label) for s in samples])
    intensity = [s.intensity for s in samples]
    emotions = [s.emotion for s in samples]
    return {
        "label": labels,
        "graded": None if any(v is None for v in intensity) else np.array(intensity, float),
        "emotion": None if any(v is None for v in emotions) else np.array(emotions, int),
        "agreement": _vote_agreement(samples),
    }


def _vote_agreement(samples: list[Sample]) -> np.ndarray | None:
    """Plurality share of each face's emotion votes, or None when a sample has no votes."""
    if not samples or any(s.votes is None for s in samples):
        return None
    votes = np.array([s.votes for s in samples], float)
    total = votes.sum(axis=1)
    return np.divide(votes.max(axis=1), total, out=np.zeros(len(votes)), where=total > 0)


def model_report(
    out: SmileOutputs, targets: dict[str, Any], n_boot: int, seed: int
) -> dict[str, Any]:
    """Smile (binary, calibration, score-vs-graded) and emotion metrics of one model."""
    keep = targets["label"] >= 0
    graded = targets["graded"][keep] if targets["graded"] is not None else None
    report: dict[str, Any] = {
        "smile": binary_report(
            targets["label"][keep], out.smile[keep], graded=graded, n_boot=n_boot, seed=seed
        )
    }
    if graded is not None:  # the 1-10 score against the graded label (e.g. FER+ happiness votes)
        from duchenne.evaluation.metrics import bootstrap_ci, spearman

        est = bootstrap_ci(spearman, out.smile_score[keep], graded, n_boot=n_boot, seed=seed)
        report["smile_score_spearman"] = est.as_dict()
    if targets["emotion"] is not None:
        report["emotion"] = multiclass_report(
            targets["emotion"], out.emotion, labels=FERPLUS_EMOTIONS, n_boot=n_boot, seed=seed
        )
        if targets.get("agreement") is not None:
            report["emotion_clear"] = _clear_emotion_report(out, targets, n_boot, seed)
    return report


def _clear_emotion_report(
    out: SmileOutputs, targets: dict[str, Any], n_boot: int, seed: int
) -> dict[str, Any]:
    """The emotion report on faces most annotators agree on (``CLEAR_AGREEMENT``).

    Why: posed-expression sets hold prototypical faces, and none is in the shared data.
    The faces FER+'s annotators agree on are the closest stand-in: a class whose recall
    stays low even there is missed when shown plainly, not only when it is ambiguous.
    """
    keep = targets["agreement"] >= CLEAR_AGREEMENT
    report = multiclass_report(
        targets["emotion"][keep],
        out.emotion[keep],
        labels=FERPLUS_EMOTIONS,
        n_boot=n_boot,
        seed=seed,
    )
    return {"min_agreement": CLEAR_AGREEMENT, **report}


def evaluate(
    model: str,
    data: str | Path,
    *,
    split: str | None = None,
    compare: str | None = None,
    crop_mode: str = "auto",
    limit: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    plots: str | Path | None = None,
    processes: int = 2,
    eyes: str = "mesh",
    emotion_prior: str | tuple[float, ...] = "balanced",
) -> dict[str, Any]:
    """Evaluate ``model`` (and optionally ``compare`` against it, paired) on a dataset.

    ``eyes="keypoints"`` scores the crops ``stages=detect,smile`` makes (no Face Mesh).
    ``emotion_prior``: the class prior of the emotion outputs (``SmileModel``); the smile
    metrics do not depend on it.

    Returns:
        A JSON-safe report: dataset facts, crop detection rate, per-model metrics with 95%
        bootstrap CIs, and the paired comparison (McNemar, paired bootstrap of AUC).

    Raises:
        ValueError: ``limit`` or ``processes`` not a whole number >= 1, or ``n_boot`` not
            one >= ``MIN_BOOT`` (``2.0`` is fine; ``limit=None``: every sample).
        DatasetError: the dataset (split) has no samples, or an unknown layout.
    """
    # limit: 0 left nothing (the metrics of an empty set then failed with an IndexError)
    # and -1 silently dropped the last sample; None: every sample
    limit = None if limit is None else whole_number("limit", limit, or_none=True)
    n_boot = boot_count(n_boot)
    processes = whole_number("processes", processes)
    samples = limited_samples(list(read_dataset(data, split)), limit, seed)
    if not samples:
        where = f"{data} (split {split})" if split else str(data)
        raise DatasetError(f"{where}: no samples to evaluate")
    models = [SmileModel(spec, emotion_prior=emotion_prior) for spec in [model, compare] if spec]
    model_crops = crops_for_models(samples, models, crop_mode, processes, eyes)
    crops = model_crops[0]
    targets = _targets(samples)
    names = _distinct_names([m.name for m in models], [model] + ([compare] if compare else []))
    outputs = {name: m(c.crops) for name, m, c in zip(names, models, model_crops, strict=True)}
    report: dict[str, Any] = {
        "data": str(data),
        "split": split,
        "n": len(samples),
        "emotion_prior": emotion_prior,
        "crops": {
            "mode": crops.mode,
            "eyes": eyes,
            "detected_rate": float(crops.detected.mean()) if len(samples) else None,
        },
        "models": {name: model_report(out, targets, n_boot, seed) for name, out in outputs.items()},
    }
    for name, out in outputs.items():
        groups = breakdowns(samples, out, targets["label"], n_boot, seed)
        if groups:
            report["models"][name]["breakdowns"] = groups
    if compare:
        a, b = (outputs[name] for name in names)
        keep = targets["label"] >= 0
        report["compare"] = compare_report(
            targets["label"][keep],
            a.smile[keep],
            b.smile[keep],
            n_boot=n_boot,
            seed=seed,
            names=(names[0], names[1]),
        )
    if plots:
        report["plots"] = _plots(Path(plots), outputs, targets)
    return report


def _plots(folder: Path, outputs: dict[str, SmileOutputs], targets: dict[str, Any]) -> list[str]:
    from duchenne.evaluation import plots
    from duchenne.evaluation.metrics import confusion_matrix

    folder.mkdir(parents=True, exist_ok=True)
    keep = targets["label"] >= 0
    y = targets["label"][keep]
    paths = [plots.plot_roc(y, {n: o.smile[keep] for n, o in outputs.items()}, folder / "roc.png")]
    for name, out in outputs.items():
        stem = _file_stem(name)
        paths.append(plots.plot_reliability(y, out.smile[keep], folder / f"reliability_{stem}.png"))
        cm = confusion_matrix(y, (out.smile[keep] >= 0.5).astype(int), 2)
        paths.append(
            plots.plot_confusion_matrix(
                cm, folder / f"confusion_smile_{stem}.png", labels=["no smile", "smile"]
            )
        )
        if targets["emotion"] is not None:
            cm = confusion_matrix(targets["emotion"], out.emotion.argmax(1), len(FERPLUS_EMOTIONS))
            paths.append(
                plots.plot_confusion_matrix(
                    cm, folder / f"confusion_emotion_{stem}.png", labels=list(FERPLUS_EMOTIONS)
                )
            )
    return [str(p) for p in paths]


def _file_stem(name: str) -> str:
    """A model's report key as one file name: keys are model paths when two models share a
    name (``_distinct_names``), and ``reliability_/a/b.onnx.png`` made a folder tree under
    ``--plots`` (with ``..`` parts, outside it)."""
    return re.sub(r"[^\w.+-]+", "_", name).strip("._") or "model"


def summary_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per model: the headline numbers with their 95% CIs.

    With a comparison, the first model's row also carries it (``compare_columns``), so the
    CSV report stays one table: what the Markdown and JSON reports say, one row to read.
    """
    rows = []
    for name, r in report["models"].items():
        row: dict[str, Any] = {
            "model": name,
            "data": report["data"],
            "split": report["split"],
            "n": report["n"],
        }
        for key in ("accuracy", "f1", "roc_auc", "ece"):
            est = r["smile"][key]
            row[f"smile_{key}"], row[f"smile_{key}_ci"] = est["value"], est["ci"]
        if "smile_score_spearman" in r:
            est = r["smile_score_spearman"]
            row["score_spearman"], row["score_spearman_ci"] = est["value"], est["ci"]
        if "emotion" in r:
            est = r["emotion"]["accuracy"]
            row["emotion_accuracy"], row["emotion_accuracy_ci"] = est["value"], est["ci"]
        if "compare" in report and name == report["compare"]["names"][0]:
            row.update(compare_columns(report["compare"]))
        rows.append(row)
    return rows


def compare_columns(compare: dict[str, Any]) -> dict[str, Any]:
    """The paired comparison as columns of the first model's row: ``compared_with`` names
    the other model, and the differences are this row's model minus it (as in
    ``compare_report``); the other model's row leaves these cells empty."""
    acc, auc = compare["delta_accuracy"], compare["delta_roc_auc"]
    return {
        "compared_with": compare["names"][1],
        "delta_accuracy": acc["value"],
        "delta_accuracy_ci": acc["ci"],
        "mcnemar_p": compare["mcnemar"]["p_value"],
        "mcnemar_method": compare["mcnemar"]["method"],
        "delta_roc_auc": auc["value"],
        "delta_roc_auc_ci": auc["ci"],
    }
