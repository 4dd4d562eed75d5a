"""Recalibrate shipped smile models on their validation mix and write it into the files.

For each model: run it as inference does (flip averaging included) on FER+ Valid (48 px
crops) and MTFL ``calib`` (colour photos cropped at full resolution), then fit
(``duchenne.train.calibrate.fit_calibration``):
- the smile's Platt scaling, ``sigmoid(logit / T + b)``, with each domain weighted equally;
- the emotion prior: the class bias that makes ``softmax(logits + bias)`` the posterior
  under equal class frequencies (balanced weights against FER+ Valid's vote distributions),
  with Valid's class frequencies.
The ONNX metadata (``duchenne.temperature``, ``duchenne.smile_bias``,
``duchenne.emotion_bias``, ``duchenne.emotion_prior``) and ``models.json`` (sha256, size,
the fitted values) are updated; the graph is untouched. New training runs fit the same on
their own Valid mix (``duchenne.train.ladder.calibrate_on_valid``). Test splits stay for
reporting.

    python scripts/calibrate_shipped.py [--data ../shared/datasets] [--models smile_s ...]
        [--emotion-only smile_m ...]

``--emotion-only``: refit only the emotion prior of these models and keep their smile
temperature (``smile_m`` is still the v1 file, trained without MTFL: one Platt scaling
cannot serve its three domains; MODEL_CARD.md gives the numbers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from duchenne.datasets import read_dataset
from duchenne.evaluation.runner import crops_for_models
from duchenne.io.atomic import atomic_write
from duchenne.models.registry import ASSETS, get_model_cfg, list_models
from duchenne.models.smile import SmileModel
from duchenne.train.calibrate import Calibration, fit_calibration
from duchenne.train.export import update_metadata

REPO = Path(__file__).resolve().parents[1]
CALIBRATION_SETS = {
    "ferplus_valid": ("ferplus", "Valid", "canvas"),
    "mtfl_calib": ("mtfl", "calib", "photo"),
}


def calibration_mix(data: Path, model: SmileModel, cuts: dict) -> dict[str, np.ndarray]:
    """Crops in ``model``'s format, smile labels, domains and emotion votes (zeros where
    none) of the mix; ``cuts`` keeps each domain's crops per format between models."""
    parts: dict[str, list[np.ndarray]] = {"crops": [], "label": [], "domain": [], "votes": []}
    for domain, (folder, split, mode) in CALIBRATION_SETS.items():
        samples = [s for s in read_dataset(data / folder, split) if s.label is not None]
        cut = cuts.setdefault(domain, {})
        parts["crops"].append(crops_for_models(samples, [model], mode, cut=cut)[0].crops)
        parts["label"].append(np.array([s.label for s in samples], int))
        parts["domain"].append(np.full(len(samples), domain))
        parts["votes"].append(
            np.stack([np.zeros(8) if s.votes is None else s.votes for s in samples]).astype(float)
        )
        print(f"{domain}: {len(samples)} rows")
    return {k: np.concatenate(v) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--models", nargs="*", default=None, help="default: every smile_* model")
    parser.add_argument(
        "--emotion-only",
        nargs="*",
        default=[],
        help="models whose smile temperature and bias are kept (emotion prior refit only)",
    )
    args = parser.parse_args()
    names = args.models or list_models("smile_*", task="smile_emotion")
    cuts: dict = {}
    doc_path = ASSETS / "models.json"
    doc = json.loads(doc_path.read_text())
    for name in names:
        model = SmileModel(name, threads=1)
        mix = calibration_mix(args.data, model, cuts)
        raw = model.raw_outputs(mix["crops"])
        cal = fit_calibration(
            mix["label"], raw["smile_logit"], mix["domain"], mix["votes"], raw["emotion_logits"]
        )
        if name in args.emotion_only:
            cal = Calibration(
                model.temperature, model.smile_bias, cal.emotion_bias, cal.emotion_prior
            )
        info = update_metadata(get_model_cfg(name).path, cal.metadata())
        entry = next(e for e in doc["models"] if e["name"] == name)
        entry.update(info)
        entry["temperature"] = round(cal.temperature, 6)
        entry["smile_bias"] = round(cal.smile_bias, 6)
        if cal.emotion_bias is not None:
            entry["emotion_bias"] = [round(float(b), 6) for b in cal.emotion_bias]
        print(
            f"{name}: T {cal.temperature:.4f}, smile bias {cal.smile_bias:+.4f}, emotion bias "
            f"{np.round(cal.emotion_bias, 3).tolist()}, sha256 {info['sha256'][:12]}"
        )
    with atomic_write(doc_path, mode="w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
