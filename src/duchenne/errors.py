"""The typed errors every part of duchenne raises.

Why a hierarchy: callers (the CLI, the server, batch jobs) catch ``DuchenneError``
to report one bad input and carry on, and map each subclass to an exit status or an
HTTP code, without ever catching unrelated bugs. Each class also subclasses the
builtin it refines (``ValueError``, ``OSError`` ...) so generic handlers still work.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class DuchenneError(Exception):
    """Base class of every error duchenne raises on purpose."""


class ImageLoadError(DuchenneError, ValueError):
    """An input could not be decoded as an image (missing, empty, corrupt, truncated, not an image)."""


class UnsupportedFormatError(ImageLoadError):
    """The file is a valid file of a kind duchenne does not read (e.g. a PDF or an SVG)."""


class ImageTooLargeError(ImageLoadError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class VideoOpenError(DuchenneError, OSError):
    """A video file or device could not be opened or has no decodable frames."""


class VideoDecodeError(DuchenneError, OSError):
    """A video stopped decoding part way (truncated or corrupt); frames before it were analysed."""


class NoFaceDetectedError(DuchenneError):
    """Raised only where a face is required (e.g. ``enhance`` on a face index that does not exist)."""


class InvalidFacesError(DuchenneError, ValueError):
    """A ``Faces`` object was built with arrays of inconsistent shapes."""


class UnknownModelError(DuchenneError, KeyError):
    """A model name is not in the registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnrecognizedModelError(DuchenneError):
    """An ONNX file lacks the metadata duchenne needs to know how to run it."""


class ModelIntegrityError(DuchenneError):
    """A shipped model file does not match the sha256 in its manifest."""


class MissingExtraError(DuchenneError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class DeviceUnavailableError(DuchenneError, RuntimeError):
    """``device="cuda"`` was asked for but this onnxruntime cannot run on a CUDA GPU (no
    onnxruntime-gpu, no GPU, or CUDA libraries missing); the message says what to install."""


class DatasetError(DuchenneError, ValueError):
    """A dataset folder or label file does not have the expected layout."""


class BatchError(DuchenneError, ValueError):
    """A batch job cannot start or resume (e.g. its output holds results of other settings)."""


class OutputError(DuchenneError, OSError):
    """An output file or folder cannot be written (permission denied, no space left, a
    read-only file system ...). ``filename`` is the path the caller asked for, never the
    hidden temporary file an atomic write was filling, and ``errno`` / ``strerror`` are
    the system's, so ``except OSError`` handlers still see what failed.

    Example:
        >>> import errno
        >>> str(OutputError(errno.EACCES, "Permission denied", "ro/x.json"))
        'cannot write ro/x.json: Permission denied'
    """

    def __str__(self) -> str:
        if self.filename is None:
            return super().__str__()
        return f"cannot write {self.filename}: {self.strerror}"


class AnalysisError(DuchenneError, RuntimeError):
    """The face pipeline failed on one input for a reason that is not a known bad input
    (a bug): the message names the input, the traceback is logged, the other inputs of
    the call are still analysed."""


class ServiceError(DuchenneError, RuntimeError):
    """The service refuses or stops work (overloaded, shutting down, a job cancelled):
    nothing is wrong with the input, so it is never reported as one input's error."""


def error_text(error: BaseException | str, source: object) -> str:
    """``"ErrorType: reason"`` for a line that already names the failed input ``source``.

    Why: load errors start with the input they are about (``x.svg: SVG files are not
    supported``) so that they read alone; the CLI's per-input lines name the input first,
    and printed it twice. ``error`` is an exception or a batch error column (the same
    ``"ErrorType: message"`` text).
    """
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    kind, sep, message = text.partition(": ")
    name = str(source)
    if message.startswith(name) and message[len(name) : len(name) + 1] in (":", " "):
        message = message[len(name) :].removeprefix(":").lstrip()  # "x.jpg is empty" too
    return f"{kind}{sep}{message}"


def require_extra(module: str, extra: str):
    """Import ``module`` or raise ``MissingExtraError`` naming ``pip install 'duchenne[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"{module} is required for this feature: pip install 'duchenne[{extra}]'"
        ) from exc


def run_reporting_failure(
    command: str, func: Callable[[Any], int | None], args: Any, *, verbose: bool
) -> int:
    """Run a command's handler; a failure becomes one line on stderr and exit status 1.

    Shared by ``duchenne`` and the stand-alone ``python -m duchenne.train.cli`` (which GPU
    machines run without the inference stack), so both answer a bad argument the same way.
    An unexpected (non-``DuchenneError``) failure is re-raised under ``--verbose`` so a
    developer still gets the traceback.
    """
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last line of defence: one clear line, no traceback
        if not isinstance(exc, DuchenneError) and verbose:
            raise
        print(f"duchenne {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
