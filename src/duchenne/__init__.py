"""duchenne: measure smiles in photos and video on onnxruntime.

Example:
    >>> from duchenne import Analyzer
    >>> faces = Analyzer().analyze("photo.jpg")      # doctest: +SKIP
    >>> faces.smile_score                             # doctest: +SKIP
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("duchenne")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "development"

from duchenne.analysis.analyzer import Analyzer as Analyzer
from duchenne.analysis.config import AnalyzerConfig as AnalyzerConfig
from duchenne.analysis.enhance import EnhanceResult as EnhanceResult
from duchenne.analysis.enhance import enhance as enhance
from duchenne.analysis.video import VideoAnalyzer as VideoAnalyzer
from duchenne.analysis.video import VideoOptions as VideoOptions
from duchenne.analysis.video import VideoResult as VideoResult
from duchenne.analysis.video import analyze_video as analyze_video
from duchenne.errors import DuchenneError as DuchenneError
from duchenne.face.align import AlignConfig as AlignConfig
from duchenne.faces import EMOTION_LABELS as EMOTION_LABELS
from duchenne.faces import Face as Face
from duchenne.faces import Faces as Faces
from duchenne.io.image import load_image as load_image
from duchenne.models.registry import create_model as create_model
from duchenne.models.registry import list_models as list_models

__all__ = [
    "EMOTION_LABELS",
    "AlignConfig",
    "Analyzer",
    "AnalyzerConfig",
    "EnhanceResult",
    "VideoAnalyzer",
    "VideoOptions",
    "VideoResult",
    "analyze_video",
    "enhance",
    "DuchenneError",
    "Face",
    "Faces",
    "__version__",
    "create_model",
    "list_models",
    "load_image",
]
