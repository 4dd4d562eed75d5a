"""The model registry: every model duchenne ships, by name, with its config.

Why a registry: the smile size ladder (and the face models) are chosen by name in the
API, CLI and server; the registry is the one place that knows which file a name means,
its sha256 (checked before the file is trusted), its input size and its measured
accuracy/latency. Configs come from two manifests shipped beside the files:
``assets/manifest.json`` (MediaPipe face models, written by ``scripts/convert_mediapipe.py``)
and ``assets/models.json`` (our smile/emotion ladder, written by the training pipeline).
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duchenne.errors import ModelIntegrityError, UnknownModelError
from duchenne.models.session import OnnxModel

ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class ModelCfg:
    """What duchenne knows about one shipped model.

    Args:
        name: registry name (e.g. ``face_detection_short_range``, ``smile_s``).
        task: ``face_detection``, ``face_landmarks`` or ``smile_emotion``.
        file: file name inside ``duchenne/models/assets``.
        sha256: expected digest of the file.
        input_size: square input side in pixels.
        input_shape: the input tensor's shape (symbolic dimensions as names), when recorded.
        params: trainable parameters (ladder models).
        arch: one-line architecture (ladder models).
        accuracy: the one-line measured accuracy summary (ladder models).
        latency_ms: measured batch-1 latency on one CPU thread (ladder models).
        graph_options: MediaPipe's graph options the model was converted with (decode
            settings such as BlazeFace's anchors and thresholds; empty for ladder models):
            the one source of those constants.
    """

    name: str
    task: str
    file: str
    sha256: str = ""
    input_size: int | None = None
    input_shape: list[Any] | None = field(default=None, compare=False, hash=False)
    params: int | None = None
    arch: str = ""
    accuracy: str | None = None
    latency_ms: float | None = None
    graph_options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_entry(cls, entry: dict[str, Any], task: str) -> ModelCfg:
        """The config of one manifest entry (``manifest.json`` or ``models.json``)."""
        return cls(
            name=entry["name"],
            task=entry.get("task", task),
            file=entry["file"],
            sha256=entry.get("sha256", ""),
            input_size=entry.get("input_size"),
            params=entry.get("params"),
            arch=entry.get("arch_summary") or entry.get("arch", ""),
            accuracy=entry.get("metrics", {}).get("summary"),
            input_shape=entry.get("input", {}).get("shape"),
            latency_ms=entry.get("latency", {}).get("cpu_1thread_batch1_ms"),
            graph_options=entry.get("mediapipe_graph_options", {}),
        )

    @property
    def path(self) -> Path:
        return ASSETS / self.file


def _read_json(name: str) -> dict[str, Any]:
    """A shipped manifest (``{}`` when absent: an install without smile models).

    Raises:
        ModelIntegrityError: the manifest cannot be read or is not JSON (a file edited by
            hand or a broken install), one line naming it instead of a traceback from every
            command that names a model.
    """
    path = ASSETS / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(
            f"{name}: the shipped model manifest cannot be read ({exc}: {path}); reinstall duchenne"
        ) from None


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, ModelCfg]:
    cfgs: dict[str, ModelCfg] = {}
    for name, entry in _read_json("manifest.json").get("models", {}).items():
        cfgs[name] = ModelCfg.from_entry({"name": name, **entry}, "face")
    for entry in _read_json("models.json").get("models", []):
        cfgs[entry["name"]] = ModelCfg.from_entry({**entry, "task": "smile_emotion"}, "")
    return cfgs


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered model names matching a glob ``pattern`` (and ``task`` if given), sorted.

    Example:
        >>> "face_landmark" in list_models("face_*")
        True
    """
    return sorted(
        name
        for name, cfg in _registry().items()
        if fnmatch.fnmatch(name, pattern) and (task is None or cfg.task == task)
    )


def default_smile_model() -> str | None:
    """The ladder variant marked default in ``models.json`` (None if no smile model ships)."""
    default = _read_json("models.json").get("default")
    return default if default in _registry() else None


def get_model_cfg(name: str, task: str | None = None) -> ModelCfg:
    """The config of ``name``, among the models of ``task`` when given.

    ``task`` is for a caller that takes only one kind of model (the smile ``--model``
    flags): its message then lists and suggests only those, not names it would refuse.

    Raises:
        UnknownModelError: ``name`` is not registered (or is a model of another task);
            the message lists the close matches and the known names.

    Example:
        >>> get_model_cfg("smile_n").task
        'smile_emotion'
    """
    cfg = _registry().get(name)
    if cfg is not None and task in (None, cfg.task):
        return cfg
    kind = f"{task} model" if task else "model"
    known = ", ".join(list_models(task=task))
    if cfg is not None:
        raise UnknownModelError(f"{name!r} is a {cfg.task} model, not a {kind} (known: {known})")
    close = _close_names(name, task)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown {kind} {name!r}{hint} (known: {known})")


def _close_names(name: str, task: str | None = None, n: int = 3) -> list[str]:
    """Registered names (of ``task`` when given) close to ``name``, compared without case
    (``SMILE_S`` had no suggestion: difflib scores ``S`` against ``s`` as a mismatch)."""
    by_lower: dict[str, str] = {known.lower(): known for known in list_models(task=task)}
    matches = difflib.get_close_matches(str(name).lower(), list(by_lower), n=n)
    return [by_lower[m] for m in matches]


def _is_path(name: str) -> bool:
    """``name`` is meant as a file (no registry name ends in ``.onnx`` or holds a separator)."""
    return name.lower().endswith(".onnx") or any(sep in name for sep in (os.sep, os.altsep) if sep)


def _check_file(path: Path, sha256: str) -> bool:
    """The sha256 check of a shipped file (``_verified`` caches it per process).

    Raises:
        ModelIntegrityError: the file is missing, unreadable or has another digest.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:  # a missing or unreadable shipped file is a broken install
        reason = exc.strerror or type(exc).__name__
        raise ModelIntegrityError(
            f"{path.name}: the shipped model file cannot be read ({reason}: {path}); "
            "reinstall duchenne"
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if sha256 and digest != sha256:
        raise ModelIntegrityError(f"{path.name}: sha256 {digest} does not match manifest {sha256}")
    return True


_verified = functools.lru_cache(maxsize=32)(_check_file)
"""``_check_file`` once per file and digest: every ``Analyzer`` opens the same files."""


def create_model(
    name_or_path: str | Path,
    *,
    threads: int | None = None,
    verify: bool = True,
    device: str = "cpu",
    task: str | None = None,
) -> OnnxModel:
    """Open a registered model by name (sha256-checked) or any ``.onnx`` file by path.

    A registered name wins over a file of that name in the current folder; any other
    existing file is opened as a model whatever its suffix (``.ort``, ``.ONNX``, none),
    so a file that is no model says so instead of being looked up as a name. ``task``
    limits the names to the models of that task (see :func:`get_model_cfg`); a file is
    opened whatever it holds, its caller checks its metadata.

    Raises:
        UnknownModelError: ``name_or_path`` is neither a registered name (of ``task``)
            nor a model file; a path (it ends in ``.onnx`` or holds a path separator)
            that is no file is reported as ``no such model file``, not as an unknown
            registry name.
        UnrecognizedModelError: an existing file onnxruntime cannot load.
        ModelIntegrityError: a registered model's file is missing, unreadable or does
            not match the sha256 of its manifest (``verify``).

    Example:
        >>> model = create_model("face_landmark", threads=1)
    """
    text = str(name_or_path)
    path = Path(name_or_path)
    if path.is_file() and (_is_path(text) or text not in _registry()):
        return OnnxModel(path, threads=threads, device=device)
    if _is_path(text):
        raise UnknownModelError(f"no such model file: {name_or_path}")
    cfg = get_model_cfg(text, task)
    if verify:
        _verified(cfg.path, cfg.sha256)
    return OnnxModel(cfg.path, threads=threads, device=device)


def verify_model(name: str) -> None:
    """Check one registered model now: its file against the manifest's sha256 (read
    afresh, not the answer cached for ``create_model``) and that onnxruntime loads it.

    Why: ``duchenne models --verify`` tells a broken install (a corrupted wheel, a file
    edited by hand) without running an analysis.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ModelIntegrityError: the manifest records no sha256 for it, or its file is
            missing, unreadable or has another digest.
        UnrecognizedModelError: onnxruntime cannot load the file.
    """
    cfg = get_model_cfg(name)
    if not cfg.sha256:
        raise ModelIntegrityError(f"{cfg.file}: the manifest records no sha256 to check it by")
    _check_file(cfg.path, cfg.sha256)
    create_model(name, threads=1, verify=False)  # just checked, and not from the cache
