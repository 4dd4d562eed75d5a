"""The aligned-crops cache the ladder trains on (crops made by ``duchenne.analysis.crops``).

Cache files ``<cache_dir>/<dataset>_<split>.npz`` hold the crops, the targets and per-split
metadata (face-pipeline failure rate, canvas, template eyes), printed by ``failure_table``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.crops import (  # noqa: F401  (re-exported: the crop API lives there)
    CROP_SIZE,
    DEFAULT_CANVAS,
    DEFAULT_FORMAT,
    MODES,
    CanvasConfig,
    CropFormat,
    CropResult,
    FaceFinder,
    PipelineFinder,
    aligned_crop,
    aligned_gray,
    build_crops,
    build_photo_crops,
    default_finder,
    load_gray,
    load_rgb,
    make_canvas,
    photo_finder,
    plausible_eyes,
    resize_crop,
    template_eyes,
)
from duchenne.datasets import GROUP_ATTRIBUTES, labelled_eyes
from duchenne.errors import DatasetError

log = logging.getLogger(__name__)

DATASET_SPLITS: dict[str, tuple[str, ...]] = {
    "ferplus": ("train", "valid", "test"),
    "smilesmiled": ("train", "test"),
    "mtfl": ("train", "calib", "valid"),
}
PHOTO_DATASETS = frozenset({"mtfl"})
"""Datasets of full-resolution photos: cropped as at inference, not on an upscaled canvas."""


def read_split(dataset: str, split: str, root: str | Path) -> list[Any]:
    """Samples of one dataset split through ``duchenne.datasets`` (FER+ splits any case).

    Raises:
        DatasetError: the split has no samples (an empty ``label.csv`` or ``training.txt``,
            or every listed image missing): its cache was written with 0 rows, exit 0,
            and a run then trained or selected on nothing.
    """
    from duchenne import datasets

    if dataset == "ferplus":
        samples = list(datasets.read_ferplus(Path(root) / "ferplus", split.capitalize()))
    elif dataset == "smilesmiled":
        samples = list(
            datasets.read_smilesmiled(Path(root) / "smilesmiled", split, seed=0, test_fraction=0.2)
        )
    elif dataset == "mtfl":
        samples = list(datasets.read_mtfl(Path(root) / "mtfl", split))
    else:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASET_SPLITS)}")
    if not samples:
        raise DatasetError(f"{dataset} {split} under {root}: no samples to crop")
    return samples


def targets_from_samples(samples: Sequence[Any]) -> dict[str, np.ndarray]:
    """Label, normalised vote distribution, vote mask and intensity arrays from ``Sample``s."""
    n = len(samples)
    votes = np.zeros((n, 8), np.float32)
    has = np.zeros(n, bool)
    intensity = np.zeros(n, np.float32)
    for i, s in enumerate(samples):
        if s.votes is not None and np.sum(s.votes) > 0:
            v = np.asarray(s.votes, np.float32)[:8]
            votes[i], has[i] = v / v.sum(), True
            intensity[i] = float(s.intensity or 0.0)
    label = np.array([float(s.label or 0) for s in samples], np.float32)
    return {"label": label, "votes": votes, "has_votes": has, "intensity": intensity}


def build_cache(
    dataset: str,
    split: str,
    *,
    data_root: str | Path,
    cache_dir: str | Path,
    mode: str = "pipeline",
    processes: int = 2,
    limit: int | None = None,
    canvas: CanvasConfig | None = None,
    finder_factory: Callable[[CanvasConfig], FaceFinder] = default_finder,
    fmt: CropFormat = DEFAULT_FORMAT,
) -> dict[str, Any]:
    """Build ``<cache_dir>/<dataset>_<split>.npz`` of ``fmt`` crops (48 px grey by default;
    keep one format per cache dir); returns its metadata (failure rate etc.)."""
    from duchenne.train.data import CropSet, cache_path, save_cache

    samples = read_split(dataset, split, data_root)[:limit]
    canvas = canvas or DEFAULT_CANVAS.get(dataset, CanvasConfig())
    if dataset in PHOTO_DATASETS and mode == "pipeline":
        canvas = CanvasConfig(detector="auto")  # the Analyzer default
        result = build_photo_crops(
            [s.path for s in samples],
            labelled_eyes(samples),
            detector=canvas.detector,
            processes=processes,
            finder_factory=photo_finder if finder_factory is default_finder else finder_factory,
            fmt=fmt,
        )
    else:
        result = build_crops(
            [s.path for s in samples],
            mode=mode,
            canvas=canvas,
            processes=processes,
            finder_factory=finder_factory,
            fmt=fmt,
        )
    root = Path(data_root).resolve()
    files = np.array([_relative(s.path, root) for s in samples], dtype=str)
    name = f"{dataset}_{split.lower()}"
    meta = {**_meta(name, mode, canvas, result, fmt), "limit": limit}
    crops = CropSet(
        images=result.images,
        detected=result.detected,
        source=np.full(len(samples), name),
        files=files,
        meta=[meta],
        **targets_from_samples(samples),
    )
    extra = {
        **sample_attributes(samples),
        "eyes": result.eyes,
        "found": result.found if result.found is not None else result.detected,
    }
    save_cache(cache_path(cache_dir, name), crops, extra=extra)
    log.info(
        "%s: %d crops, %.1f%% not detected, %.0fs",
        name,
        meta["n"],
        100 * meta["failure_rate"],
        result.seconds,
    )
    return meta


def recut_cache(
    name: str,
    *,
    source_dir: str | Path,
    cache_dir: str | Path,
    data_root: str | Path,
    fmt: CropFormat,
) -> dict[str, Any]:
    """Cut the faces of ``<source_dir>/<name>.npz`` again in ``fmt``, from the eye centres
    that cache stored, into ``<cache_dir>/<name>.npz``; returns the new metadata.

    Why: comparing or training another crop format (a closer framing, a larger side)
    should change the pixels only. Re-cutting from the stored eyes keeps the same faces in
    the same rows, with their labels, attributes and teacher outputs (which describe the
    face, not the crop), and skips the face pipeline; ``build_cache`` with the same
    ``fmt`` detects the same eyes and gives the same crops, but no teacher outputs.

    Raises:
        ValueError: the source cache stores no eyes (``resize`` mode, cut before the eyes
            were stored, or packed before ``train pack`` kept them), or ``cache_dir`` is
            ``source_dir`` (the re-cut would replace the crops it was asked to keep).
    """
    from duchenne.train.data import cache_path, write_npz

    source, target = cache_path(source_dir, name), cache_path(cache_dir, name)
    if target.resolve() == source.resolve():
        raise ValueError(
            f"{source}: re-cutting into the cache it reads would replace it;"
            " give --cache-dir another folder"
        )
    with np.load(source, allow_pickle=True) as z:
        cache = {k: z[k] for k in z.files if k not in ("images_webp", "images_shape")}
    meta = json.loads(str(cache["meta"]))
    if meta[0].get("mode") != "pipeline":
        raise ValueError(f"{source}: no stored eyes to re-cut from (cut it with --mode pipeline)")
    if "extra_eyes" not in cache:  # the pipeline found eyes, the file lost them
        raise ValueError(
            f"{source}: no stored eyes to re-cut from (written before caches kept them, or"
            " packed before `train pack` did): re-cut from the caches `train crops` wrote"
        )
    root = Path(data_root)
    photo = meta[0]["name"].split("_")[0] in PHOTO_DATASETS
    canvas = CanvasConfig(**meta[0]["canvas"])
    images = np.empty((len(cache["files"]), *fmt.shape), np.uint8)
    for i, (file, eyes) in enumerate(zip(cache["files"], cache["extra_eyes"], strict=True)):
        path = root / str(file)
        image = load_rgb(path) if photo else make_canvas(load_gray(path), canvas, for_align=True)
        images[i] = aligned_crop(image, eyes, fmt)
    cache["images"] = images
    format_keys = {"crop_size": fmt.size, "colour": fmt.colour, **fmt.framing}
    # raw pixels now, whatever the source was: a packed source's quality no longer applies
    meta = [
        {**{k: v for k, v in m.items() if k != "packed_webp_quality"}, **format_keys} for m in meta
    ]
    cache["meta"] = np.array(json.dumps(meta))
    write_npz(target, cache)
    log.info("%s: %d crops re-cut from %s", name, len(images), source)
    return meta[0]


def sample_attributes(samples: Sequence[Any]) -> dict[str, np.ndarray]:
    """Per-sample string attributes (MTFL pose, gender, ...) for breakdowns, when present."""
    present = [k for k in GROUP_ATTRIBUTES if samples and all(k in s.meta for s in samples)]
    return {k: np.array([str(s.meta[k]) for s in samples], dtype=str) for k in present}


def _relative(path: str | Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _meta(
    name: str, mode: str, canvas: CanvasConfig, result: CropResult, fmt: CropFormat
) -> dict[str, Any]:
    n = len(result.images)
    failed = int(n - result.detected.sum()) if mode == "pipeline" else n
    return {
        "name": name,
        "mode": mode,
        "n": n,
        "detected": n - failed if mode == "pipeline" else 0,
        "failed": failed,
        "rejected": result.rejected,
        "failure_rate": failed / n if n else 0.0,
        "canvas": asdict(canvas) if mode == "pipeline" else None,
        "template_eyes": result.template_eyes,
        "seconds": round(result.seconds, 1),
        "crop_size": fmt.size,
        "colour": fmt.colour,
        **fmt.framing,
    }


def tune_canvas(
    paths: Sequence[str | Path],
    candidates: Iterable[CanvasConfig],
    *,
    processes: int = 2,
    finder_factory: Callable[[CanvasConfig], FaceFinder] = default_finder,
) -> list[dict[str, Any]]:
    """Detection rate of each canvas candidate on ``paths`` (pick the best per dataset)."""
    rows = []
    for cand in candidates:
        res = build_crops(paths, canvas=cand, processes=processes, finder_factory=finder_factory)
        rows.append(
            {**asdict(cand), "detection_rate": float(res.detected.mean()), "seconds": res.seconds}
        )
        log.info("canvas %s: %.1f%% detected", cand, 100 * rows[-1]["detection_rate"])
    return rows


def failure_table(metas: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of detection failures per cache (printed by the CLI)."""
    lines = [f"{'cache':<20} {'mode':<9} {'n':>7} {'failed':>7} {'rejected':>8} {'failed %':>8}"]
    for m in metas:
        lines.append(
            f"{m['name']:<20} {m['mode']:<9} {m['n']:>7} {m['failed']:>7} {m.get('rejected', 0):>8}"
            f" {100 * m['failure_rate']:>7.2f}%"
        )
    return "\n".join(lines)
