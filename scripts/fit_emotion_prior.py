"""Fit the emotion prior of shipped smile models on FER+ Valid and write it into the files.

For each model: run it (as at inference, flip averaging included) on the FER+ Valid crops,
fit the class bias that makes ``softmax(logits + bias)`` the posterior under equal class
frequencies (``duchenne.evaluation.metrics.fit_class_bias``, balanced weights against the
annotators' vote distributions), and store it with Valid's class frequencies as the ONNX
metadata ``duchenne.emotion_bias`` / ``duchenne.emotion_prior``; ``models.json`` gets the
file's new sha256 and size. New training runs fit the same on their own Valid set
(``duchenne.train.ladder.calibrate_on_valid``); this script brings already-exported files
up to date without retraining. Only FER+ Valid is used: Test stays for reporting.

    python scripts/fit_emotion_prior.py [--data ../shared/datasets] [--models smile_s ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from duchenne.datasets import read_dataset
from duchenne.evaluation.metrics import class_prior, fit_class_bias
from duchenne.evaluation.runner import dataset_crops
from duchenne.io.atomic import atomic_write
from duchenne.models.registry import ASSETS, get_model_cfg, list_models
from duchenne.models.smile import SmileModel
from duchenne.train.export import emotion_prior_metadata, update_metadata

REPO = Path(__file__).resolve().parents[1]


def raw_log_probs(model: SmileModel, crops: np.ndarray) -> np.ndarray:
    """The model's emotion log-probabilities without any stored prior (log-softmax of the
    raw logits, up to a per-row constant that the fit ignores)."""
    probs = model(crops).emotion.astype(np.float64)
    return np.log(np.clip(probs, 1e-12, None)) - model.emotion_offset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--models", nargs="*", default=None, help="default: every smile_* model")
    args = parser.parse_args()
    names = args.models or list_models("smile_*", task="smile_emotion")
    samples = list(read_dataset(args.data / "ferplus", "Valid"))
    votes = np.stack([s.votes for s in samples]).astype(np.float64)
    prior = class_prior(votes, votes.shape[1])
    crops = dataset_crops(samples, 48, "canvas").crops
    doc_path = ASSETS / "models.json"
    doc = json.loads(doc_path.read_text())
    for name in names:
        bias = fit_class_bias(votes, raw_log_probs(SmileModel(name, threads=1), crops))
        info = update_metadata(get_model_cfg(name).path, emotion_prior_metadata(bias, prior))
        entry = next(e for e in doc["models"] if e["name"] == name)
        entry.update(info)
        entry["emotion_bias"] = [round(float(b), 6) for b in bias]
        print(f"{name}: bias {np.round(bias, 3).tolist()}, sha256 {info['sha256'][:12]}")
    print(f"FER+ Valid prior ({len(samples)} rows): {np.round(prior, 4).tolist()}")
    with atomic_write(doc_path, mode="w") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
