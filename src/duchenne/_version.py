"""The installed version, in a module of its own so any layer can read it without
importing the package's public face (``duchenne/__init__``, which imports the pipeline)."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("duchenne")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "development"
