"""Labelled smile-video datasets for ``duchenne train-authenticity``: folds, videos, features.

Why a module of its own: the posed-vs-spontaneous literature evaluates on fixed,
subject-independent fold files (UvA-NEMO, MMI, SPOS, BBC), and results are only comparable
when exactly those folds are used. This module reads the fold files, finds the videos,
extracts one feature vector per video (cached, since each video appears in every fold) and
runs the fold protocol for the D-Marker baseline and the Hadamard fusion model of
:mod:`duchenne.analysis.authenticity`.

Fold layouts read by :func:`read_folds`:

* a folder of fold folders, each with ``train.json`` and ``test.json`` (the layout of the
  public UvA-NEMO/MMI/SPOS/BBC fold files, e.g. ``labels/1/train.json``);
* a folder of JSON files, one per fold, each ``{"train": ..., "test": ...}``;
* one JSON file: a list of such folds, or ``{"folds": [...]}``, or ``{"1": {...}, ...}``.

A split is ``{"video_name": label, ...}``, a list of ``{"video": name, "label": label}``,
or a list of names whose label is read from the name (``deliberate``/``posed`` -> 0,
``spontaneous``/``genuine`` -> 1). Labels: 0 = posed, 1 = spontaneous (ints, bools or the
words above). Video names are file names with or without their suffix, looked up
(recursively) in the videos folder.

Per video, the D-Marker protocol of the datasets is used: each clip is one pre-cut smile,
so the face seen longest is analysed with ``episodes="single"`` (onset/apex/offset split
over the whole clip; the first frame is the neutral reference), giving the 225 D-Markers
and the mean per-frame feature vector (:func:`~duchenne.analysis.video.frame_feature_names`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duchenne.analysis.authenticity_classifier import AuthenticityClassifier
from duchenne.analysis.dmarkers import DMARKER_VERSION, FEATURE_NAMES
from duchenne.errors import DatasetError, DuchenneError
from duchenne.io.atomic import atomic_write
from duchenne.io.jsonsafe import json_digest
from duchenne.io.paths import VIDEO_EXTENSIONS, natural_key

__all__ = [
    "ClipFeatures",
    "FeatureCache",
    "FeatureTable",
    "Fold",
    "FoldProtocol",
    "ProtocolReport",
    "build_features",
    "clip_features",
    "evaluate_protocol",
    "index_videos",
    "parse_label",
    "read_folds",
    "resolve_videos",
    "save_model",
    "train_final",
]

logger = logging.getLogger(__name__)

_LABEL_WORDS = {
    **dict.fromkeys(("posed", "deliberate", "fake", "acted"), 0),
    **dict.fromkeys(("spontaneous", "genuine", "real", "felt"), 1),
}
_NAME_KEYS = ("video", "name", "file", "path", "id")


# --------------------------------------------------------------------------- folds


@dataclass(frozen=True)
class Fold:
    """One train/test split (video names)."""

    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


@dataclass
class FoldProtocol:
    """All folds of a dataset and the label of every video they mention."""

    folds: list[Fold]
    labels: dict[str, int]
    source: str

    @property
    def names(self) -> list[str]:
        """Every video named by any fold, sorted."""
        return sorted(self.labels)

    def describe(self) -> str:
        n_sp = sum(self.labels.values())
        return (
            f"{len(self.folds)} folds, {len(self.labels)} videos "
            f"({n_sp} spontaneous, {len(self.labels) - n_sp} posed) from {self.source}"
        )


def parse_label(value: Any, where: str) -> int:
    """0 (posed) or 1 (spontaneous) from an int, bool or word; ``DatasetError`` otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("0", "1"):
            return int(word)
        if word in _LABEL_WORDS:
            return _LABEL_WORDS[word]
    raise DatasetError(
        f"{where}: label {value!r} is not 0/1 or one of {sorted(_LABEL_WORDS)} "
        "(0 = posed, 1 = spontaneous)"
    )


def _label_from_name(name: str, where: str) -> int:
    words = set(re.split(r"[^a-z]+", name.lower()))
    found = {_LABEL_WORDS[w] for w in words if w in _LABEL_WORDS}
    if len(found) != 1:
        raise DatasetError(
            f"{where}: cannot tell the label of {name!r} from its name; "
            'give {"name": label} pairs instead of a list of names'
        )
    return found.pop()


def _parse_split(obj: Any, where: str) -> dict[str, int]:
    """``{name: label}`` from any accepted split form."""
    if isinstance(obj, Mapping):
        return {str(k): parse_label(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str):
        out: dict[str, int] = {}
        for i, item in enumerate(obj):
            if isinstance(item, str):
                out[item] = _label_from_name(item, where)
            elif isinstance(item, Mapping):
                key = next((k for k in _NAME_KEYS if k in item), None)
                if key is None or "label" not in item:
                    raise DatasetError(
                        f"{where}[{i}]: needs a name ({'/'.join(_NAME_KEYS)}) and a label"
                    )
                video, label = str(item[key]), parse_label(item["label"], f"{where}[{i}]")
                if out.setdefault(video, label) != label:
                    raise DatasetError(f"{where}[{i}]: {video!r} is given two labels")
            else:
                raise DatasetError(f"{where}[{i}]: expected a name or an object, got {item!r}")
        return out
    raise DatasetError(f"{where}: a split must be an object or a list, got {type(obj).__name__}")


def _fold_from(obj: Any, name: str, where: str) -> tuple[Fold, dict[str, int]]:
    if not isinstance(obj, Mapping) or "train" not in obj or "test" not in obj:
        raise DatasetError(f"{where}: a fold needs 'train' and 'test'")
    train = _parse_split(obj["train"], f"{where}.train")
    test = _parse_split(obj["test"], f"{where}.test")
    overlap = set(train) & set(test)
    if overlap:
        raise DatasetError(
            f"{where}: {len(overlap)} video(s) in both train and test, e.g. {sorted(overlap)[0]!r}"
        )
    return Fold(name, tuple(train), tuple(test)), {**train, **test}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from None


def read_folds(path: str | os.PathLike[str]) -> FoldProtocol:
    """Read a fold protocol in any layout of the module docstring.

    Raises:
        DatasetError: missing files, bad JSON, bad labels, a video in both train and test
            of a fold, or one video given two different labels.

    Example:
        >>> protocol = read_folds("uva-nemo/labels")  # doctest: +SKIP
        >>> protocol.describe()  # doctest: +SKIP
        '10 folds, 1240 videos (597 spontaneous, 643 posed) from uva-nemo/labels'
    """
    root = Path(path)
    entries: list[tuple[str, Any, str]] = []
    if root.is_dir():
        sub = sorted(
            (d for d in root.iterdir() if d.is_dir() and (d / "test.json").exists()),
            key=lambda p: natural_key(p.name),
        )
        if sub:
            for d in sub:
                obj = {"train": _read_json(d / "train.json"), "test": _read_json(d / "test.json")}
                entries.append((d.name, obj, str(d)))
        else:
            for f in sorted(root.glob("*.json"), key=lambda p: natural_key(p.name)):
                entries.append((f.stem, _read_json(f), str(f)))
    elif root.is_file():
        obj = _read_json(root)
        if isinstance(obj, Mapping) and "folds" in obj:
            obj = obj["folds"]
        if isinstance(obj, Mapping):
            entries = [(str(k), v, f"{root}[{k!r}]") for k, v in obj.items()]
        elif isinstance(obj, list):
            entries = [(str(i + 1), v, f"{root}[{i}]") for i, v in enumerate(obj)]
        else:
            raise DatasetError(f"{root}: expected a list of folds or an object of folds")
    else:
        raise DatasetError(f"{root}: no such fold file or folder")
    if not entries:
        raise DatasetError(
            f"{root}: no folds found (expected <fold>/train.json + test.json or fold JSON files)"
        )
    folds, labels = [], {}
    for name, obj, where in entries:
        fold, fold_labels = _fold_from(obj, name, where)
        for video, label in fold_labels.items():
            if labels.setdefault(video, label) != label:
                raise DatasetError(
                    f"{where}: {video!r} is labelled {label} here and {labels[video]} elsewhere"
                )
        folds.append(fold)
    return FoldProtocol(folds, labels, str(root))


# --------------------------------------------------------------------------- videos


def index_videos(videos_dir: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Video files under ``videos_dir`` (recursive) by file name and by stem (every match:
    files of one name in two subfolders, or ``a.mp4`` and ``a.avi``, share a key).

    Raises:
        DatasetError: the folder does not exist.
    """
    root = Path(videos_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such videos folder")
    out: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and path.suffix.lower() in VIDEO_EXTENSIONS
            and not path.name.startswith(".")
        ):
            out.setdefault(path.name, []).append(path)
            out.setdefault(path.stem, []).append(path)
    return out


def resolve_videos(
    protocol: FoldProtocol, videos_dir: str | os.PathLike[str], *, skip_missing: bool = False
) -> dict[str, Path]:
    """The file of every video of the protocol.

    Raises:
        DatasetError: videos are missing (unless ``skip_missing``, which logs them); a name
            matches several files, or two names one file (it would count twice).
    """
    index = index_videos(videos_dir)
    found = {n: index[n][0] for n in protocol.names if n in index}
    by_file: dict[Path, str] = {}
    for name, path in found.items():
        if len(index[name]) > 1:
            raise DatasetError(f"{name!r} matches {len(index[name])} files in {videos_dir}")
        if (other := by_file.setdefault(path, name)) != name:
            raise DatasetError(f"{name!r} and {other!r} in the fold files are one video: {path}")
    missing = [n for n in protocol.names if n not in found]
    if missing and not skip_missing:
        raise DatasetError(
            f"{videos_dir}: {len(missing)} of {len(protocol.names)} videos named by the folds "
            f"are missing, e.g. {', '.join(missing[:3])} (use --skip-missing to go on without them)"
        )
    if missing:
        logger.warning("%d videos named by the folds are missing; skipped", len(missing))
    return found


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
        DatasetError: no face, or no usable smile signal in the clip.
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
    """

    def __init__(self, path: str | os.PathLike[str], settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json_digest({**settings, "dmarker_version": DMARKER_VERSION}, length=16)
        self.entries: dict[str, dict[str, np.ndarray]] = {}
        if self.path.exists():
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
