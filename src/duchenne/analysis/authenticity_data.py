"""Features and the fold protocol of ``duchenne train-authenticity``.

Given the folds and videos that :mod:`duchenne.analysis.authenticity_folds` reads and finds,
this module extracts one feature vector per video (cached, since each video appears in
every fold) and runs the fold protocol for the D-Marker baseline and the Hadamard fusion model of
:mod:`duchenne.analysis.authenticity`.

Per video, the D-Marker protocol of the datasets is used: each clip is one pre-cut smile,
so the face seen longest is analysed with ``episodes="single"`` (onset/apex/offset split
over the whole clip; the first frame is the neutral reference), giving the 225 D-Markers
and the mean per-frame feature vector (:func:`~duchenne.analysis.video.frame_feature_names`).
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.authenticity_classifier import AuthenticityClassifier
from duchenne.analysis.authenticity_folds import FoldProtocol
from duchenne.analysis.dmarkers import DMARKER_VERSION, FEATURE_NAMES
from duchenne.errors import DatasetError, DuchenneError, OutputError
from duchenne.io.atomic import atomic_write
from duchenne.io.jsonsafe import json_digest

__all__ = [
    "ClipFeatures",
    "FeatureCache",
    "FeatureTable",
    "ProtocolReport",
    "build_features",
    "clip_features",
    "evaluate_protocol",
    "save_model",
    "train_final",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- features


@dataclass
class ClipFeatures:
    """Features of one smile clip."""

    dmarkers: np.ndarray
    features: np.ndarray
    n_frames: int
    fps: float
    track_frames: int
    episode: dict[str, Any] = field(default_factory=dict)


def clip_features(
    video_analyzer: Any, path: str | os.PathLike[str], **sampling: Any
) -> ClipFeatures:
    """D-Markers and mean per-frame features of the longest-seen face of one clip.

    Args:
        video_analyzer: a :class:`~duchenne.analysis.video.VideoAnalyzer` built with
            ``VideoOptions(episodes="single", collect_features=True)``.
        path: the clip.
        **sampling: ``every``, ``fps``, ``start``, ``end`` for the analysis.

    Raises:
        DatasetError: no face, or no usable smile signal in the clip, or a phase of its
            smile the face was hidden during (its D-Markers are unknown).
        VideoOpenError, VideoDecodeError: unreadable video.
    """
    result = video_analyzer.analyze(path, **sampling)
    tracks = [t for t in result.tracks if t.episodes]
    if not tracks:
        raise DatasetError(f"{path}: no face with a usable smile signal")
    track = max(tracks, key=lambda t: t.n_frames)
    episode = track.episodes[0]
    if episode.features is None:
        raise DatasetError(f"{path}: no per-frame features inside the smile")
    if episode.unobserved:
        raise DatasetError(
            f"{path}: face hidden during the smile's {', '.join(episode.unobserved)}"
        )
    return ClipFeatures(
        dmarkers=episode.dmarkers.astype(np.float64),
        features=episode.features.astype(np.float64),
        n_frames=result.frames_analysed,
        fps=result.fps,
        track_frames=track.n_frames,
        episode=episode.to_dict(),
    )


class FeatureCache:
    """Per-video features in one ``.npz`` file, keyed by path, size, mtime and settings.

    Why: every video is in every fold, and decoding a dataset takes far longer than the
    classifiers; re-running with other classifier settings should not decode it again.
    The settings include :data:`~duchenne.analysis.dmarkers.DMARKER_VERSION`, so features
    cached by other D-Marker formulas are recomputed rather than mixed with new ones.

    A damaged cache (empty, truncated, arrays of other lengths) is replaced by a new one;
    any other file at ``path`` is refused (:class:`~duchenne.errors.OutputError`), because
    :meth:`save` would replace it: ``--cache`` naming a video, a fold file or a zip
    archive by mistake destroyed it.

    Raises:
        OutputError: ``path`` is a folder, or a file that is not a feature cache.
    """

    def __init__(self, path: str | os.PathLike[str], settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json_digest({**settings, "dmarker_version": DMARKER_VERSION}, length=16)
        self.entries: dict[str, dict[str, np.ndarray]] = {}
        if self.path.is_dir():
            raise OutputError(errno.EISDIR, "is a folder; name a .npz file", str(self.path))
        if self.path.exists():
            if not _looks_like_cache(self.path):
                raise OutputError(
                    errno.EEXIST,
                    "exists and is not a duchenne feature cache, which would replace it; "
                    "name a new .npz file",
                    str(self.path),
                )
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                # each array decompressed once; rows of other lengths: ValueError
                rows = list(zip(keys, data["dmarkers"], data["features"], strict=True))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            logger.warning("%s: unreadable feature cache (%s); starting a new one", self.path, exc)
            return
        self.entries = {k: {"dmarkers": d, "features": f} for k, d, f in rows}

    def key(self, video: Path) -> str:
        st = video.stat()
        return f"{video.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.settings}"

    def get(self, video: Path) -> tuple[np.ndarray, np.ndarray] | None:
        entry = self.entries.get(self.key(video))
        return None if entry is None else (entry["dmarkers"], entry["features"])

    def put(self, video: Path, dmarkers: np.ndarray, features: np.ndarray) -> None:
        self.entries[self.key(video)] = {"dmarkers": dmarkers, "features": features}

    def save(self) -> None:
        """Write the cache atomically (only entries of one feature width are kept)."""
        if not self.entries:
            return
        keys = list(self.entries)
        width = {len(e["features"]) for e in self.entries.values()}
        if len(width) > 1:
            last = len(self.entries[keys[-1]]["features"])
            keys = [k for k in keys if len(self.entries[k]["features"]) == last]
        import io

        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            keys=np.array(keys),
            dmarkers=np.stack([self.entries[k]["dmarkers"] for k in keys]),
            features=np.stack([self.entries[k]["features"] for k in keys]),
        )
        with atomic_write(self.path) as fh:
            fh.write(buf.getvalue())


#: The members :meth:`FeatureCache.save` writes, in order (``keys.npy`` first).
_CACHE_MEMBERS = ("keys.npy", "dmarkers.npy", "features.npy")
_ZIP_HEADER = b"PK\x03\x04"


def _looks_like_cache(path: Path) -> bool:
    """Whether the file at ``path`` is a feature cache, or what a failed write left of one.

    Read from the first bytes rather than by loading it, so that a truncated cache (whose
    zip directory, at the end, is gone) is still recognised: empty, or a zip whose first
    member is one that :meth:`FeatureCache.save` writes (its name cut off counts too).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False
    if not head:
        return True
    if not head.startswith(_ZIP_HEADER[: len(head)]):
        return False
    if len(head) < 30:  # a cut local header: nothing else begins with the zip signature
        return True
    size = int.from_bytes(head[26:28], "little")
    name = head[30 : 30 + size].decode("ascii", "replace")
    if len(name) < size:  # the name itself was cut
        return any(m.startswith(name) for m in _CACHE_MEMBERS)
    return name in _CACHE_MEMBERS


@dataclass
class FeatureTable:
    """One row per usable video."""

    names: list[str]
    X: np.ndarray
    D: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)

    def rows(self, names: Iterable[str]) -> np.ndarray:
        """Row indices of the given video names that have features."""
        where = {n: i for i, n in enumerate(self.names)}
        return np.array([where[n] for n in names if n in where], dtype=np.intp)


def build_features(
    protocol: FoldProtocol,
    paths: Mapping[str, Path],
    video_analyzer: Any,
    *,
    cache: FeatureCache | None = None,
    progress: bool = False,
    **sampling: Any,
) -> FeatureTable:
    """Features of every resolved video; failures are recorded, not fatal.

    Raises:
        DatasetError: no video at all gave features.
    """
    from duchenne.io.progress import ProgressBar

    names, X, D, y, failed = [], [], [], [], {}
    feature_names = tuple(getattr(video_analyzer, "feature_names", ()))
    try:
        for name in ProgressBar(protocol.names, disable=not progress, desc="videos", unit="video"):
            path = paths.get(name)
            if path is None:
                failed[name] = "missing"
                continue
            hit = cache.get(path) if cache is not None else None
            if hit is None:
                try:
                    clip = clip_features(video_analyzer, path, **sampling)
                except DuchenneError as exc:
                    logger.warning("%s", exc)
                    failed[name] = f"{type(exc).__name__}: {exc}"
                    continue
                hit = (clip.dmarkers, clip.features)
                if cache is not None:
                    cache.put(path, *hit)
            names.append(name)
            X.append(hit[0])
            D.append(hit[1])
            y.append(protocol.labels[name])
    finally:  # an interrupted run (Ctrl-C, a crash) keeps the features it has extracted
        if cache is not None:
            cache.save()
    if not names:
        raise DatasetError("no video gave features (see the warnings above)")
    return FeatureTable(
        names, np.stack(X), np.stack(D), np.array(y, np.int64), feature_names, failed
    )


# --------------------------------------------------------------------------- protocol


@dataclass
class ProtocolReport:
    """Per-fold test accuracy of each model kind, on the protocol's own folds."""

    folds: list[dict[str, Any]]
    accuracy: dict[str, list[float]]
    describe: str
    failed: dict[str, str]

    def mean(self, kind: str) -> float:
        return float(np.mean(self.accuracy[kind]))

    def std(self, kind: str) -> float:
        return float(np.std(self.accuracy[kind]))

    def markdown(self) -> str:
        """Per-fold table and the mean row."""
        kinds = list(self.accuracy)
        head = "| fold | train | test | " + " | ".join(f"accuracy {k}" for k in kinds) + " |"
        lines = [head, "|" + "---|" * (3 + len(kinds))]
        for i, f in enumerate(self.folds):
            accs = " | ".join(f"{self.accuracy[k][i]:.3f}" for k in kinds)
            lines.append(f"| {f['fold']} | {f['n_train']} | {f['n_test']} | {accs} |")
        means = " | ".join(f"**{self.mean(k):.3f} ± {self.std(k):.3f}**" for k in kinds)
        lines.append(f"| mean ± std | | | {means} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.describe,
            "folds": self.folds,
            "accuracy": self.accuracy,
            "mean_accuracy": {k: self.mean(k) for k in self.accuracy},
            "std_accuracy": {k: self.std(k) for k in self.accuracy},
            "failed_videos": self.failed,
        }


def evaluate_protocol(
    table: FeatureTable,
    protocol: FoldProtocol,
    kinds: Sequence[str] = ("dmarkers", "fusion"),
    **classifier_args: Any,
) -> ProtocolReport:
    """Train on each fold's train list and score on its test list (videos without
    features are left out of both, and counted).

    Raises:
        DatasetError: a fold's training set has no usable video of one class, or its
            test set has no usable video.
    """
    folds, accuracy = [], {k: [] for k in kinds}
    for fold in protocol.folds:
        train, test = table.rows(fold.train), table.rows(fold.test)
        if len(test) == 0 or len(np.unique(table.y[train])) < 2:
            raise DatasetError(
                f"fold {fold.name}: needs both classes in train and at least one test video "
                f"with features (train {len(train)}, test {len(test)})"
            )
        folds.append(
            {
                "fold": fold.name,
                "n_train": int(len(train)),
                "n_test": int(len(test)),
                "left_out": len(fold.train) + len(fold.test) - len(train) - len(test),
            }
        )
        for kind in kinds:
            clf = AuthenticityClassifier(kind, **classifier_args)
            clf.fit(table.X[train], table.y[train], table.D[train] if kind == "fusion" else None)
            acc = clf.score(
                table.X[test], table.y[test], table.D[test] if kind == "fusion" else None
            )
            accuracy[kind].append(float(acc))
    return ProtocolReport(folds, accuracy, protocol.describe(), dict(table.failed))


def train_final(table: FeatureTable, kind: str, **classifier_args: Any) -> AuthenticityClassifier:
    """A classifier trained on every usable video (the model that is saved)."""
    clf = AuthenticityClassifier(kind, **classifier_args)
    return clf.fit(table.X, table.y, table.D if kind == "fusion" else None)


def save_model(
    clf: AuthenticityClassifier,
    path: str | os.PathLike[str],
    *,
    report: ProtocolReport,
    table: FeatureTable,
    extraction: Mapping[str, Any],
) -> Path:
    """Write the classifier JSON with its provenance: data, protocol, measured accuracy.

    The provenance travels with the model, and ``duchenne video --authenticity-model``
    prints it, so a score is never shown without how it was obtained.
    """
    from duchenne._version import __version__

    kind = clf.kind
    provenance = {
        "trained_on": report.describe,
        "n_videos": len(table.names),
        "n_spontaneous": int(table.y.sum()),
        "n_posed": int(len(table.y) - table.y.sum()),
        "cross_validation": {
            "kind": kind,
            "fold_accuracy": report.accuracy[kind],
            "mean_accuracy": report.mean(kind),
            "std_accuracy": report.std(kind),
            "n_folds": len(report.folds),
        },
        "reliability": (
            f"mean accuracy {report.mean(kind):.3f} ± {report.std(kind):.3f} over "
            f"{len(report.folds)} folds of this dataset only; not validated elsewhere"
        ),
        "dmarkers": (
            f"{len(FEATURE_NAMES)} D-Markers (formula version {DMARKER_VERSION}) in "
            "duchenne.analysis.dmarkers.FEATURE_NAMES order"
        ),
        "frame_features": list(table.feature_names),
        "extraction": dict(extraction),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duchenne_version": __version__,
    }
    content = {**clf.to_dict(), "provenance": provenance}
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(content))
    return Path(path)
