"""How often are MTFL's smile labels wrong? A blind second opinion on a stratified sample.

MTFL's smile attribute is one binary judgement per photo, and the model card's MTFL
numbers are measured against it. Where the model disagrees with the label, who is right?
This script answers with a second rater who sees neither the label nor the model:

1. ``--sheets DIR``: picks (seed 0) ``--n`` MTFL valid faces where the model's decision at
   0.5 disagrees with the label and ``--n`` where it agrees, shuffles them and writes
   numbered contact sheets plus ``picks.json`` (the files in sheet order). A rater marks
   each face 1 (smiling), 0 (not) or null (unsure) in a copy of ``picks.json`` under
   ``"smiling"``.
2. ``--judgements FILE``: scores a marked file against the labels and the model's
   decisions, per stratum, and extrapolates to the whole valid split by the strata's
   shares (a stratified estimate; 95% stratified-bootstrap intervals). Faces marked
   unsure are left out.

``benchmarks/data/mtfl_label_audit.json`` holds one rater's marks (80 faces); with
``--card`` the table goes into MODEL_CARD.md's ``card-label-audit`` block.

    python benchmarks/audit_mtfl_labels.py --judgements benchmarks/data/mtfl_label_audit.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, update_readme  # noqa: E402

CARD = ROOT / "MODEL_CARD.md"
DEFAULT_JUDGEMENTS = Path(__file__).resolve().parent / "data" / "mtfl_label_audit.json"


def valid_decisions(data: Path, model: str | None) -> dict[str, tuple[int, int]]:
    """{file relative to ``data``: (label, model decision at 0.5)} on MTFL valid, with the
    crops ``duchenne evaluate`` scores."""
    from duchenne.datasets import read_mtfl
    from duchenne.evaluation.runner import crops_for_models
    from duchenne.faces import smiling
    from duchenne.models.smile import SmileModel

    samples = list(read_mtfl(data / "mtfl", "valid"))
    smile_model = SmileModel(model)
    crops = crops_for_models(samples, [smile_model], "photo")[0]
    decided = smiling(smile_model(crops.crops).smile, 0.5)
    return {
        Path(s.path).resolve().relative_to(data.resolve()).as_posix(): (int(s.label), int(d))
        for s, d in zip(samples, decided, strict=True)
    }


def make_sheets(
    decisions: dict[str, tuple[int, int]],
    data: Path,
    out: Path,
    n: int,
    seed: int = 0,
    exclude: set[str] | None = None,
) -> None:
    """Seeded, shuffled sample of n disagreements and n agreements as numbered sheets
    (faces in ``exclude``, e.g. those already marked, are never picked)."""
    import cv2

    files = np.array(sorted(set(decisions) - (exclude or set())))
    wrong = np.array([decisions[f][0] != decisions[f][1] for f in files])
    rng = np.random.default_rng(seed)
    pick = np.r_[
        rng.choice(np.flatnonzero(wrong), n, False), rng.choice(np.flatnonzero(~wrong), n, False)
    ]
    rng.shuffle(pick)
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for k, f in enumerate(files[pick]):
        tile = cv2.resize(cv2.imread(str(data / f)), (150, 150))
        cv2.putText(tile, str(k), (3, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
        tiles.append(tile)
    for s in range(0, len(tiles), 40):
        page = tiles[s : s + 40] + [np.zeros_like(tiles[0])] * (-len(tiles[s : s + 40]) % 8)
        rows = [np.hstack(page[r : r + 8]) for r in range(0, len(page), 8)]
        cv2.imwrite(str(out / f"sheet{s // 40}.png"), np.vstack(rows))
    picks = {"files": files[pick].tolist(), "smiling": [None] * len(pick)}
    (out / "picks.json").write_text(json.dumps(picks, indent=1) + "\n", encoding="utf-8")
    print(f"{len(pick)} faces in {out}; mark 'smiling' in a copy of picks.json")


def stratified(
    judged: list[dict[str, np.ndarray]], share: np.ndarray, key: str, n_boot: int = 2000
) -> tuple[float, float, float]:
    """Share-weighted agreement of ``key`` with the rater over the strata, with a 95%
    stratified-bootstrap interval (each stratum resampled on its own)."""
    rng = np.random.default_rng(0)
    point = sum(w * np.mean(s[key] == s["rater"]) for w, s in zip(share, judged, strict=True))
    boots = np.zeros(n_boot)
    for w, s in zip(share, judged, strict=True):
        hits = (s[key] == s["rater"]).astype(float)
        boots += w * hits[rng.integers(0, len(hits), (n_boot, len(hits)))].mean(1)
    return float(point), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def audit_table(doc: dict, decisions: dict[str, tuple[int, int]]) -> str:
    """Per-stratum agreement counts and the stratified whole-split estimates."""
    rows, judged = [], []
    wrong_all = np.array([lab != dec for lab, dec in decisions.values()])
    share = np.array([1 - wrong_all.mean(), wrong_all.mean()])
    marks = dict(zip(doc["files"], doc["smiling"], strict=True))
    for name, want_wrong in (("model agrees with label", False), ("model disagrees", True)):
        files = [f for f in marks if (decisions[f][0] != decisions[f][1]) == want_wrong]
        sure = [f for f in files if marks[f] is not None]
        s = {
            "rater": np.array([marks[f] for f in sure]),
            "label": np.array([decisions[f][0] for f in sure]),
            "model": np.array([decisions[f][1] for f in sure]),
        }
        judged.append(s)
        rows.append(
            [
                name,
                f"{100 * (share[1] if want_wrong else share[0]):.1f}%",
                len(files),
                len(files) - len(sure),
                int(np.sum(s["rater"] == s["label"])),
                int(np.sum(s["rater"] == s["model"])),
            ]
        )
    table = markdown_table(
        [
            "stratum",
            "share of MTFL valid",
            "sampled",
            "rater unsure",
            "rater = label",
            "rater = model",
        ],
        rows,
    )
    est = {k: stratified(judged, share, k) for k in ("label", "model")}
    lines = [
        f"- {who} agree with the rater on {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}] of MTFL valid "
        "faces the rater was sure of (stratified estimate, 95% bootstrap interval)"
        for who, v in (("MTFL's labels", est["label"]), ("The model's decisions", est["model"]))
    ]
    return "\n".join(
        [table, "", *lines, "", f"Rater: {doc.get('rater', '?')}. Model: {doc.get('model', '?')}."]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--model", default=None, help="smile model (default: the default variant)")
    parser.add_argument("--sheets", type=Path, default=None, help="write blind sheets here")
    parser.add_argument("--n", type=int, default=40, help="faces per stratum in the sheets")
    parser.add_argument("--seed", type=int, default=0, help="of the sheets' sample")
    parser.add_argument("--judgements", type=Path, default=DEFAULT_JUDGEMENTS)
    parser.add_argument("--card", action="store_true", help="write MODEL_CARD.md's block")
    args = parser.parse_args(argv)
    decisions = valid_decisions(args.data, args.model)
    if args.sheets:
        marked = set()
        if args.judgements.is_file():  # a further sample never repeats marked faces
            marked = set(json.loads(args.judgements.read_text(encoding="utf-8"))["files"])
        make_sheets(decisions, args.data, args.sheets, args.n, args.seed, marked)
        return 0
    text = audit_table(json.loads(args.judgements.read_text(encoding="utf-8")), decisions)
    print(text)
    if args.card:
        update_readme("card-label-audit", text, readme=CARD)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
