"""Would SMILEsmileD in the smile calibration mix make one threshold hold better?

Why: issue 11 asks for the smile to be calibrated "on a validation mix of all sources", so
that 0.5 means the same on every domain. The shipped files are calibrated on FER+ Valid and
MTFL ``calib`` (``scripts/calibrate_shipped.py``); SMILEsmileD is left out because every
shipped net trained on its train split and its only held-out faces are the test split.
This benchmark measures what adding it would do, without a calibration ever scoring faces
it was fitted on: SMILEsmileD test is cut into two seeded halves and each half is scored
with the Platt scaling fitted on the shipped mix plus the *other* half (cross-fitting);
FER+ Test and MTFL valid are scored with the fit on the shipped mix plus the whole split
(the calibration that would ship). Both arms are fitted here by the same code
(``fit_platt`` with each domain weighted equally), on the same raw outputs.

Prints, per model and mix: the fitted temperature and bias, accuracy at 0.5 and ECE (15
bins) per test domain, and the worst per-domain ECE, the number that says whether one
threshold holds across domains.

    python benchmarks/bench_calibration_mix.py [--data ../shared/datasets]
        [--models smile_s smile_l] [--card]

``--card`` writes the table into MODEL_CARD.md's ``card-calib-mix`` block.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import markdown_table, update_readme  # noqa: E402
from duchenne.evaluation.metrics import (  # noqa: E402
    accuracy,
    expected_calibration_error,
    fit_platt,
    group_weights,
    sigmoid,
)

CARD = ROOT / "MODEL_CARD.md"
MIX = {"FER+ Valid": ("ferplus", "Valid", "canvas"), "MTFL calib": ("mtfl", "calib", "photo")}
HELD = "SMILEsmileD test"
TESTS = {
    "FER+ Test": ("ferplus", "Test", "canvas"),
    HELD: ("smilesmiled", "test", "canvas"),
    "MTFL valid": ("mtfl", "valid", "photo"),
}
SHIPPED_ARM, WITH_HELD_ARM = "FER+ Valid + MTFL calib (shipped)", "+ SMILEsmileD (cross-fitted)"


class Scored(NamedTuple):
    """One set's raw smile logits and 0/1 labels."""

    logit: np.ndarray
    label: np.ndarray


def platt(parts: dict[str, Scored]) -> tuple[float, float]:
    """Temperature and bias fitted on these sets, each weighted equally (as shipped)."""
    logit = np.concatenate([p.logit for p in parts.values()])
    label = np.concatenate([p.label for p in parts.values()]).astype(int)
    domain = np.concatenate([np.full(len(p.label), name) for name, p in parts.items()])
    return fit_platt(label, logit, sample_weight=group_weights(domain))


def calibrated(cal: tuple[float, float], logit: np.ndarray) -> np.ndarray:
    return sigmoid(logit / cal[0] + cal[1])


def halves(n: int, seed: int) -> np.ndarray:
    """A seeded boolean mask splitting ``n`` rows into two halves."""
    return np.random.default_rng(seed).permutation(n) < n // 2


def compare_mixes(
    mix: dict[str, Scored], tests: dict[str, Scored], held: str, seed: int = 0
) -> dict[str, dict]:
    """arm -> {"cal": (T, b), "probs": {test label: calibrated probabilities}}.

    The held-out set ``held`` (one of ``tests``) joins the mix in the second arm; its own
    probabilities there are out-of-fold (each half scored by the fit on the other half).
    """
    out = {SHIPPED_ARM: {"cal": platt(mix), "probs": {}}}
    out[SHIPPED_ARM]["probs"] = {
        k: calibrated(out[SHIPPED_ARM]["cal"], t.logit) for k, t in tests.items()
    }
    whole = platt({**mix, held: tests[held]})
    probs = {k: calibrated(whole, t.logit) for k, t in tests.items() if k != held}
    mask, oof = halves(len(tests[held].label), seed), np.empty(len(tests[held].label))
    for fit_rows in (mask, ~mask):
        part = Scored(tests[held].logit[fit_rows], tests[held].label[fit_rows])
        oof[~fit_rows] = calibrated(platt({**mix, held: part}), tests[held].logit[~fit_rows])
    probs[held] = oof
    out[WITH_HELD_ARM] = {"cal": whole, "probs": {k: probs[k] for k in tests}}
    return out


def rows_for(name: str, result: dict[str, dict], tests: dict[str, Scored]) -> list[list[object]]:
    rows = []
    for arm, r in result.items():
        cells: list[object] = [name, arm, f"{r['cal'][0]:.3f}", f"{r['cal'][1]:+.3f}"]
        eces = []
        for label, t in tests.items():
            p = r["probs"][label]
            eces.append(expected_calibration_error(t.label, p))
            cells += [f"{accuracy(t.label, p > 0.5):.4f}", f"{eces[-1]:.3f}"]
        rows.append([*cells, f"{max(eces):.3f}"])
    return rows


def table(results: dict[str, dict[str, dict]], tests: dict[str, dict[str, Scored]]) -> str:
    header = ["model", "calibration mix", "T", "b"]
    for label in TESTS:
        header += [f"{label} acc", f"{label} ECE"]
    header.append("worst ECE")
    rows = [row for name, r in results.items() for row in rows_for(name, r, tests[name])]
    return markdown_table(header, rows)


def scored_sets(data: Path, names: list[str], sets: dict) -> dict[str, dict[str, Scored]]:
    """model -> set label -> raw logits on that set's crops (cut once per crop format)."""
    from duchenne.datasets import read_dataset
    from duchenne.evaluation.runner import crops_for_models
    from duchenne.models.smile import SmileModel

    models = [SmileModel(n, threads=2) for n in names]
    out: dict[str, dict[str, Scored]] = {n: {} for n in names}
    for label, (folder, split, mode) in sets.items():
        samples = [s for s in read_dataset(data / folder, split) if s.label is not None]
        y = np.array([s.label for s in samples], int)
        for name, model, crops in zip(
            names, models, crops_for_models(samples, models, mode), strict=True
        ):
            out[name][label] = Scored(model.raw_outputs(crops.crops)["smile_logit"], y)
        print(f"{label}: {len(samples)} faces", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--models", nargs="*", default=None, help="default: every smile_* model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the SMILEsmileD halves")
    parser.add_argument("--card", action="store_true", help="write MODEL_CARD.md's block")
    args = parser.parse_args(argv)
    from duchenne.models.registry import list_models

    names = args.models or list_models("smile_*", task="smile_emotion")
    scored = scored_sets(args.data, names, {**MIX, **TESTS})
    mixes = {n: {k: scored[n][k] for k in MIX} for n in names}
    tests = {n: {k: scored[n][k] for k in TESTS} for n in names}
    results = {n: compare_mixes(mixes[n], tests[n], HELD, args.seed) for n in names}
    text = table(results, tests) + (
        f"\n\nSmile accuracy at 0.5 and ECE (15 bins); SMILEsmileD test halves seed {args.seed}; "
        "produced by `benchmarks/bench_calibration_mix.py`."
    )
    print(text)
    if args.card:
        update_readme("card-calib-mix", text, readme=CARD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
