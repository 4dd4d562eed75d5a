"""Evaluate every shipped smile variant and write MODEL_CARD.md tables, models.json metrics and
the README metrics block, so every number there comes from this script.

Numbers are exactly what ``duchenne evaluate`` prints for the same model, data and split
(both call ``duchenne.evaluation.runner``); crops are computed once per dataset and shared.

    python scripts/make_model_card.py [--data ../shared/datasets] [--fer-only artifacts/.../smile_x_feronly.onnx]
        [--extra 'LABEL=path.onnx' ...] [--pair 'MODEL=LABEL' ...]

The default variant is also scored on crops aligned on the detector's eye keypoints (the
``stages=detect,smile`` path, no Face Mesh), so that faster path's accuracy is published.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_models import measure  # noqa: E402
from common import update_readme  # noqa: E402
from duchenne.datasets import read_dataset  # noqa: E402
from duchenne.evaluation.metrics import compare_report, recall_cells  # noqa: E402
from duchenne.evaluation.runner import (  # noqa: E402
    MIN_BOOT,
    _targets,
    breakdowns,
    crops_for_models,
    model_report,
)
from duchenne.io.argtypes import int_range  # noqa: E402
from duchenne.io.sinks import atomic_write  # noqa: E402
from duchenne.models.registry import ASSETS, default_smile_model, list_models  # noqa: E402
from duchenne.models.smile import SmileModel  # noqa: E402

CARD = REPO / "MODEL_CARD.md"


KEYPOINT_ROW = "{} (keypoint eyes: `stages=detect,smile`)"
FER, SMILES, MTFL = "FER+ Test", "SMILEsmileD test (seed 0, 20%)", "MTFL valid (seed 0, 20%)"
LODO_SETS = {"ferplus": FER, "smilesmiled": SMILES, "mtfl": MTFL}
"""Leave-one-dataset-out run suffix (``<net>_lodo_<dataset>``) -> the set it is scored on."""
LODO_RECORD = REPO / "benchmarks" / "data" / "lodo_results.json"
"""Every leave-one-dataset-out row the card shows. Kept beside the scripts, not only in the
card, because a LODO file is trained for this table alone: a regeneration that scores new
files adds or replaces their rows and keeps the others as scored."""


def dataset_sets(data: Path) -> dict[str, tuple[Path, str, str]]:
    """Reported sets: label -> (path, split, crop mode). MTFL photos are cropped as at
    inference (full resolution, the labelled face matched); the small crops on a canvas."""
    return {
        FER: (data / "ferplus", "Test", "canvas"),
        SMILES: (data / "smilesmiled", "test", "canvas"),
        MTFL: (data / "mtfl", "valid", "photo"),
    }


def evaluate_sets(
    data: Path,
    models: dict[str, SmileModel],
    n_boot: int,
    keypoints: SmileModel | None = None,
    natural: dict[str, SmileModel] | None = None,
) -> dict[str, dict[str, dict]]:
    """{dataset: {model: report}} on FER+ Test, the SMILEsmileD and MTFL held-out splits.

    ``keypoints``: also score this model on crops aligned on the detector's eye keypoints
    (no Face Mesh), the crops of the faster ``stages=detect,smile`` path. ``natural``:
    the same models under the ``natural`` emotion prior, scored on the sets with emotion
    labels, kept under ``_natural`` (only the recall table shows them).
    """
    out: dict[str, dict[str, dict]] = {}
    for label, (path, split, mode) in dataset_sets(data).items():
        samples = list(read_dataset(path, split))
        cut: dict = {}  # crops per model input format, cut once
        targets = _targets(samples)
        chosen = dict(models)
        out[label] = {}
        crops = crops_for_models(samples, list(chosen.values()), mode, cut=cut)
        out[label]["_y"] = targets["label"]
        out[label]["_smile"] = {}
        for (name, m), c in zip(chosen.items(), crops, strict=True):
            pred = m(c.crops)
            out[label][name] = model_report(pred, targets, n_boot, 0)
            out[label]["_smile"][name] = pred.smile
            groups = breakdowns(samples, pred, targets["label"], n_boot, 0)
            if groups:
                out[label][name]["breakdowns"] = groups
        out[label]["_detected_rate"] = float(crops[0].detected.mean())
        if natural and targets["emotion"] is not None:
            crops = crops_for_models(samples, list(natural.values()), mode, cut=cut)
            out[label]["_natural"] = {
                name: model_report(m(c.crops), targets, n_boot, 0)
                for (name, m), c in zip(natural.items(), crops, strict=True)
            }
        if keypoints is not None:
            fast = crops_for_models(samples, [keypoints], mode, eyes="keypoints")[0]
            row = KEYPOINT_ROW.format(keypoints.name)
            out[label][row] = model_report(keypoints(fast.crops), targets, n_boot, 0)
    return out


def _rows(results: dict[str, dict[str, dict]], data: str) -> dict[str, dict]:
    return {n: r for n, r in results[data].items() if not n.startswith("_")}


def recall_table(results: dict[str, dict[str, dict]]) -> str:
    """Per-class emotion recall on FER+ Test under each emotion prior: does any class
    collapse into ``neutral``, and what does the balanced prior cost in accuracy?"""
    rows = {(n, "balanced (default)"): r for n, r in _rows(results, FER).items() if "emotion" in r}
    rows.update({(n, "natural"): r for n, r in results[FER].get("_natural", {}).items()})
    names = next(iter(rows.values()))["emotion"]["labels"] if rows else []
    lines = [
        "| model | emotion prior | " + " | ".join(names) + " | macro F1 | accuracy |",
        "|---" * (len(names) + 4) + "|",
    ]
    for (model, prior), r in sorted(rows.items(), key=lambda kv: kv[0]):
        cells = recall_cells(r["emotion"], names)
        lines.append(
            f"| {model} | {prior} | "
            + " | ".join(cells)
            + f" | {_ci(r['emotion']['macro_f1'])} | {_ci(r['emotion']['accuracy'])} |"
        )
    return "\n".join(lines)


def clear_recall_table(results: dict[str, dict[str, dict]]) -> str:
    """Per-class recall on the FER+ Test faces most annotators agree on (the stand-in for a
    posed-expression set), with each class's face count."""
    rows = {n: r["emotion_clear"] for n, r in _rows(results, FER).items() if "emotion_clear" in r}
    if not rows:
        return ""
    first = next(iter(rows.values()))
    names, support = first["labels"], first["per_class_support"]
    lines = [
        "| model | " + " | ".join(f"{c} (n={support[c]})" for c in names) + " | accuracy |",
        "|---" * (len(names) + 2) + "|",
    ]
    for model, r in rows.items():
        cells = recall_cells(r, names)
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_ci(r['accuracy'])} |")
    share = round(100 * first["min_agreement"])
    lines += [
        "",
        f"FER+ Test faces whose plurality emotion has at least {share}% of the annotators' "
        f"votes ({first['n']} of the split); default prior `balanced`; produced by "
        "`scripts/make_model_card.py` (`duchenne evaluate` prints the same rows).",
    ]
    return "\n".join(lines)


def breakdown_table(results: dict[str, dict[str, dict]], data: str = MTFL) -> str:
    """Smile accuracy and ROC-AUC per head pose, per gender and per source (LFW photos,
    which SMILEsmileD's training crops may share, or web photos) on MTFL valid."""
    lines = ["| model | attribute | group | n | smile acc | ROC-AUC |", "|---|---|---|---|---|---|"]
    for model, r in _rows(results, data).items():
        for key in ("pose", "gender", "source"):
            for group, g in r.get("breakdowns", {}).get(key, {}).items():
                lines.append(
                    f"| {model} | {key} | {group} | {g['n']} | {_ci(g['accuracy'])} | {_ci(g['roc_auc'])} |"
                )
    return "\n".join(lines)


def score_lodo(
    data: Path,
    lodo: list[Path],
    references: dict[str, Path],
    recipe: str,
    n_boot: int,
) -> list[dict]:
    """Leave-one-dataset-out rows: each ``<net>_lodo_<dataset>.onnx`` scored on the set it
    never saw, beside its all-three-sources reference scored on the same faces.

    ``references``: net -> the same recipe trained on all three sources (default: the
    shipped file of that net). ``recipe`` names how the files were trained.
    """
    rows = []
    for path in lodo:
        net, _, left = path.stem.partition("_lodo_")
        if left not in LODO_SETS:
            raise SystemExit(f"{path.name}: not named <net>_lodo_<{'|'.join(LODO_SETS)}>.onnx")
        label = LODO_SETS[left]
        where, split, mode = dataset_sets(data)[label]
        samples = list(read_dataset(where, split))
        targets = _targets(samples)
        ref_path = references.get(net)
        pair = [SmileModel(path, threads=1), SmileModel(ref_path or net, threads=1)]
        crops = crops_for_models(samples, pair, mode, cut={})
        own, full = (
            model_report(m(c.crops), targets, n_boot, 0)["smile"]
            for m, c in zip(pair, crops, strict=True)
        )
        rows.append(
            {
                "net": net,
                "left_out": left,
                "scored_on": label,
                "recipe": recipe,
                "file": _file_record(path),
                "accuracy": own["accuracy"],
                "roc_auc": own["roc_auc"],
                "all3": {
                    "file": _file_record(ref_path or pair[1].model.path),
                    "accuracy": full["accuracy"],
                    "roc_auc": full["roc_auc"],
                },
            }
        )
    return rows


def _file_record(path: Path) -> dict[str, str]:
    """A scored file's name (relative to the repository when inside it) and sha256."""
    path = Path(path).resolve()
    name = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    return {"path": name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def update_lodo_record(record: list[dict], rows: list[dict]) -> list[dict]:
    """The record with ``rows`` added, replacing any row of the same net, left-out set and
    recipe; other rows stay as they were scored (the H200 runs' files were not kept, so
    their rows cannot be scored again)."""
    key = lambda r: (r["net"], r["left_out"], r["recipe"])  # noqa: E731
    new = {key(r) for r in rows}
    return [r for r in record if key(r) not in new] + rows


def lodo_table(record: list[dict]) -> str:
    """Each leave-one-dataset-out run on the set it never saw, beside the same net trained
    on all three sources (the gap is what that source adds)."""
    lines = [
        "| net | recipe | left out | scored on | smile acc (left out) | ROC-AUC (left out) | smile acc (all 3) | ROC-AUC (all 3) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sets, nets = list(LODO_SETS), ["smile_n", "smile_s", "smile_m", "smile_l"]  # small first
    rank = lambda r: (sets.index(r["left_out"]), nets.index(r["net"]), r["recipe"])  # noqa: E731
    for r in sorted(record, key=rank):
        full = r["all3"]
        lines.append(
            f"| {r['net']} | {r['recipe']} | {r['left_out']} | {r['scored_on']} | {_ci(r['accuracy'])} "
            f"| {_ci(r['roc_auc'])} | {_ci(full['accuracy'])} | {_ci(full['roc_auc'])} |"
        )
    lines.append("")
    lines.append(
        f"Rows kept in `{LODO_RECORD.relative_to(REPO)}` (each with its files' sha256); "
        "produced by `scripts/make_model_card.py --lodo FILES --lodo-recipe TEXT`."
    )
    return "\n".join(lines)


def write_lodo_block(card: str, args: argparse.Namespace) -> str:
    """Score ``--lodo`` files into the kept record and rewrite the card's LODO block."""
    refs = dict(spec.split("=", 1) for spec in args.lodo_reference)
    rows = score_lodo(
        args.data, args.lodo, {n: Path(p) for n, p in refs.items()}, args.lodo_recipe, args.n_boot
    )
    record = json.loads(LODO_RECORD.read_text()) if LODO_RECORD.exists() else []
    record = update_lodo_record(record, rows)
    with atomic_write(LODO_RECORD, mode="w") as fh:
        fh.write(json.dumps(record, indent=2) + "\n")
    return replace_block(card, "card-lodo", lodo_table(record))


def paired_table(
    results: dict[str, dict[str, dict]], pairs: list[tuple[str, str]], n_boot: int
) -> str:
    """Each (new, old) pair scored on the same faces of every set: the paired comparison
    ``duchenne evaluate --model NEW --compare OLD`` prints (McNemar on the decisions at 0.5,
    paired bootstrap of the accuracy and ROC-AUC differences, new minus old)."""
    lines = [
        "| model | against | data | accuracy (against -> model) | accuracy difference "
        "| McNemar p | ROC-AUC difference | ECE (against -> model) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for new, old in pairs:
        for data, per_model in results.items():
            y, smile = per_model["_y"], per_model["_smile"]
            keep = y >= 0
            c = compare_report(
                y[keep], smile[new][keep], smile[old][keep], n_boot=n_boot, seed=0, names=(new, old)
            )
            acc, auc = c["delta_accuracy"], c["delta_roc_auc"]
            ece = per_model[old]["smile"]["ece"]["value"], per_model[new]["smile"]["ece"]["value"]
            lines.append(
                f"| {new} | {old} | {data} | {acc['value_b']:.3f} -> {acc['value_a']:.3f} "
                f"| {_signed_ci(acc)} | {c['mcnemar']['p_value']:.3g} | {_signed_ci(auc)} "
                f"| {ece[0]:.3f} -> {ece[1]:.3f} |"
            )
    return "\n".join(lines)


def _signed_ci(est: dict) -> str:
    lo, hi = est["ci"]
    return f"{est['value']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _ci(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "-"
    lo, hi = est["ci"]
    return f"{est['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def metrics_table(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| model | data | smile acc | smile F1 | ROC-AUC | ECE | score Spearman | emotion acc (8 cl.) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data, per_model in results.items():
        for name, r in per_model.items():
            if name.startswith("_"):
                continue
            s = r["smile"]
            lines.append(
                f"| {name} | {data} | {_ci(s['accuracy'])} | {_ci(s['f1'])} | {_ci(s['roc_auc'])} | {_ci(s['ece'])} "
                f"| {_ci(r.get('smile_score_spearman'))} | {_ci(r.get('emotion', {}).get('accuracy'))} |"
            )
    rates = ", ".join(f"{d}: {100 * r['_detected_rate']:.1f}%" for d, r in results.items())
    lines += [
        "",
        f"Face found by the crop pipeline (else fixed-template fallback crop): {rates}. 95% percentile-bootstrap CIs.",
    ]
    return "\n".join(lines)


def latency_table(names: list[str]) -> str:
    from common import markdown_table

    rows = [measure(n, 200) for n in names]
    return markdown_table(list(rows[0]), [list(r.values()) for r in rows])


def training_table(summaries: list[Path]) -> str:
    """One row per training-run summary (``<run>.json`` written by ``duchenne train fit``)."""
    lines = [
        "| run | device | torch threads | epochs run (best) | stopped | train minutes "
        "| selection set | valid 8-class acc | valid smile F1 | summary file |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in summaries:
        run = json.loads(path.read_text())
        cfg, valid = run["config"], run["valid_metrics"]
        emotion = f"{valid['emotion_acc']:.3f}" if "emotion_acc" in valid else "- (no FER+)"
        lines.append(
            f"| {run['name']} | {run['device']} | {cfg.get('threads') or '-'} "
            f"| {run['epochs_run']} ({run['best_epoch']}) | {run['stopped']} "
            f"| {run['train_seconds'] / 60:.1f} | {cfg.get('valid_set', '-')} | {emotion} "
            f"| {valid['smile_f1']:.3f} | `{path.relative_to(REPO) if path.is_relative_to(REPO) else path}` |"
        )
    return "\n".join(lines)


def with_training_table(card: str, runs: list[Path]) -> str:
    """The card text with its training-runs block rebuilt from these run summaries (none: as is)."""
    if not runs:
        return card
    return replace_block(card, "card-training", training_table([p.resolve() for p in runs]))


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return re.sub(
        re.escape(start) + r".*?" + re.escape(end),
        lambda _: f"{start}\n{body}\n{end}",
        text,
        flags=re.S,
    )


def update_models_json(results: dict[str, dict[str, dict]]) -> None:
    path = ASSETS / "models.json"
    doc = json.loads(path.read_text())
    fer, smile, mtfl = results[FER], results[SMILES], results[MTFL]
    for entry in doc["models"]:
        name = entry["name"]
        if name not in fer:
            continue
        f1 = fer[name]["smile"]["f1"]["value"]
        acc = smile[name]["smile"]["accuracy"]["value"]
        wild = mtfl[name]["smile"]["accuracy"]["value"]
        emo = fer[name].get("emotion", {}).get("accuracy", {}).get("value")
        entry.setdefault("metrics", {})["test"] = {
            "ferplus_test": fer[name],
            "smilesmiled_test": smile[name],
            "mtfl_valid": {k: v for k, v in mtfl[name].items() if k != "breakdowns"},
        }
        entry["metrics"]["summary"] = (
            f"FER+ F1 {f1:.3f}, emo {emo:.3f}; SMILEs acc {acc:.3f}; MTFL acc {wild:.3f}"
        )
    with atomic_write(path, mode="w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument(
        "--fer-only", type=Path, help="ONNX of the variant trained on FER+ only (cross-dataset row)"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="LABEL=ONNX",
        help="another model to score, e.g. 'smile_s (CPU-trained)=artifacts/models/smile_s.onnx'",
    )
    parser.add_argument(
        "--runs",
        nargs="*",
        type=Path,
        default=[],
        help="training-run summaries (<run>.json) for the training table",
    )
    parser.add_argument(
        "--lodo",
        nargs="*",
        type=Path,
        default=[],
        help="leave-one-dataset-out ONNX files named <net>_lodo_<ferplus|smilesmiled|mtfl>.onnx,"
        " scored into benchmarks/data/lodo_results.json and the card's LODO block",
    )
    parser.add_argument(
        "--lodo-recipe",
        default=None,
        help="how the --lodo files were trained (the table's recipe column; required with --lodo)",
    )
    parser.add_argument(
        "--lodo-reference",
        action="append",
        default=[],
        metavar="NET=ONNX",
        help="the same recipe trained on all three sources (default: the shipped NET)",
    )
    parser.add_argument(
        "--lodo-only",
        action="store_true",
        help="score only the --lodo files and rewrite only the LODO block",
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="MODEL=AGAINST",
        help="a paired comparison for the card's paired block, e.g. a shipped variant against"
        " the --extra label of the file it replaced: 'smile_s=smile_s v2 (H200 run)'",
    )
    parser.add_argument(
        "--n-boot",
        type=int_range(MIN_BOOT),
        default=1000,
        help=f"bootstrap resamples (at least {MIN_BOOT}, as duchenne evaluate; default 1000)",
    )
    parser.add_argument(
        "--training-only",
        action="store_true",
        help="rewrite only the training-runs table from --runs (no evaluation): a new run"
        " summary that ships nothing need not re-score every model",
    )
    args = parser.parse_args()
    if args.lodo and not args.lodo_recipe:
        parser.error("--lodo needs --lodo-recipe")
    if args.lodo_only:
        if not args.lodo:
            parser.error("--lodo-only needs --lodo files")
        card = write_lodo_block(CARD.read_text(), args)
        with atomic_write(CARD, mode="w") as fh:
            fh.write(card)
        return
    if args.training_only:
        with atomic_write(CARD, mode="w") as fh:
            fh.write(with_training_table(CARD.read_text(), args.runs))
        return
    card = with_training_table(CARD.read_text(), args.runs)  # before the long evaluation
    names = list_models("smile_*", task="smile_emotion")
    models = {n: SmileModel(n, threads=1) for n in names}
    if args.fer_only:
        models[f"{args.fer_only.stem} (FER+ only)"] = SmileModel(args.fer_only, threads=1)
    for spec in args.extra:
        label, _, path = spec.rpartition("=")
        models[label or Path(path).stem] = SmileModel(Path(path), threads=1)
    pairs = [tuple(spec.split("=", 1)) for spec in args.pair]
    unknown = sorted({n for pair in pairs for n in pair} - set(models))
    if unknown or any(len(p) != 2 for p in pairs):
        parser.error(f"--pair needs MODEL=AGAINST, both scored models; unknown: {unknown}")
    default = default_smile_model()
    keypoints = models.get(default) if default else None
    natural = {n: SmileModel(n, threads=1, emotion_prior="natural") for n in names}
    results = evaluate_sets(args.data, models, args.n_boot, keypoints, natural)
    metrics = metrics_table(results)
    latency = latency_table(names)
    update_models_json(results)
    card = replace_block(card, "card-metrics", metrics)
    card = replace_block(card, "card-latency", latency)
    card = replace_block(card, "card-recall", recall_table(results))
    card = replace_block(card, "card-recall-clear", clear_recall_table(results))
    card = replace_block(card, "card-breakdowns", breakdown_table(results))
    if args.lodo:
        card = write_lodo_block(card, args)
    if pairs:
        card = replace_block(card, "card-paired", paired_table(results, pairs, args.n_boot))
    with atomic_write(CARD, mode="w") as fh:
        fh.write(card)
    update_readme(
        "metrics",
        metrics + f"\n\nDefault variant: `{default_smile_model()}`. Details in MODEL_CARD.md.",
    )
    print(metrics)
    print()
    print(latency)


if __name__ == "__main__":
    main()
