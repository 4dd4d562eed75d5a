"""Fold files of labelled smile-video datasets, and the videos they name.

Why a module of its own: the posed-vs-spontaneous literature evaluates on fixed,
subject-independent fold files (UvA-NEMO, MMI, SPOS, BBC), and results are only comparable
when exactly those folds are used; reading them (every layout, every label spelling, the
checks that keep one video out of both sides of a fold) is one concept, and extracting and
scoring features (:mod:`duchenne.analysis.authenticity_data`) another.

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
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from duchenne.errors import DatasetError
from duchenne.io.paths import VIDEO_EXTENSIONS, natural_key

__all__ = ["Fold", "FoldProtocol", "index_videos", "parse_label", "read_folds", "resolve_videos"]

logger = logging.getLogger(__name__)

_LABEL_WORDS = {
    **dict.fromkeys(("posed", "deliberate", "fake", "acted"), 0),
    **dict.fromkeys(("spontaneous", "genuine", "real", "felt"), 1),
}
_NAME_KEYS = ("video", "name", "file", "path", "id")


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
    """A fold file's JSON (a leading BOM allowed); a key repeated in one object is an
    error, because JSON parsers keep the last one silently and a video would then quietly
    take its second label."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except DatasetError as exc:  # a repeated key
        raise DatasetError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if repeated := sorted({k for k in keys if keys.count(k) > 1}):
        raise DatasetError(
            f"the key(s) {', '.join(map(repr, repeated))} appear twice in one object"
        )
    return dict(pairs)


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
