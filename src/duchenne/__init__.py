"""duchenne: measure smiles in photos and video on onnxruntime.

The public API: ``Analyzer`` (photos; its options are an ``AnalyzerConfig``),
``analyze_video`` / ``VideoAnalyzer`` (streaming video: tracks, smile episodes, Duchenne
marker), ``enhance`` (make faces smile more), ``FaceAnnotator`` (draw results),
``load_image``, the model registry and the typed errors (all ``DuchenneError``).

Example:
    >>> from duchenne import Analyzer
    >>> faces = Analyzer().analyze("photo.jpg")      # doctest: +SKIP
    >>> faces.smile_score                             # doctest: +SKIP
"""

from __future__ import annotations

from duchenne._version import __version__ as __version__
from duchenne.analysis.analyzer import Analyzer as Analyzer
from duchenne.analysis.config import AnalyzerConfig as AnalyzerConfig
from duchenne.analysis.enhance import EnhanceResult as EnhanceResult
from duchenne.analysis.enhance import enhance as enhance
from duchenne.analysis.video import VideoAnalyzer as VideoAnalyzer
from duchenne.analysis.video import VideoOptions as VideoOptions
from duchenne.analysis.video import VideoResult as VideoResult
from duchenne.analysis.video import analyze_video as analyze_video
from duchenne.annotate import FaceAnnotator as FaceAnnotator
from duchenne.errors import AnalysisError as AnalysisError
from duchenne.errors import BatchError as BatchError
from duchenne.errors import DatasetError as DatasetError
from duchenne.errors import DeviceUnavailableError as DeviceUnavailableError
from duchenne.errors import DuchenneError as DuchenneError
from duchenne.errors import ImageLoadError as ImageLoadError
from duchenne.errors import ImageTooLargeError as ImageTooLargeError
from duchenne.errors import InvalidFacesError as InvalidFacesError
from duchenne.errors import MissingExtraError as MissingExtraError
from duchenne.errors import ModelIntegrityError as ModelIntegrityError
from duchenne.errors import NoFaceDetectedError as NoFaceDetectedError
from duchenne.errors import OutputError as OutputError
from duchenne.errors import ServiceError as ServiceError
from duchenne.errors import UnknownModelError as UnknownModelError
from duchenne.errors import UnrecognizedModelError as UnrecognizedModelError
from duchenne.errors import UnsupportedFormatError as UnsupportedFormatError
from duchenne.errors import VideoDecodeError as VideoDecodeError
from duchenne.errors import VideoOpenError as VideoOpenError
from duchenne.faces import BLENDSHAPE_NAMES as BLENDSHAPE_NAMES
from duchenne.faces import EMOTION_LABELS as EMOTION_LABELS
from duchenne.faces import Face as Face
from duchenne.faces import Faces as Faces
from duchenne.io.image import load_image as load_image
from duchenne.models.registry import create_model as create_model
from duchenne.models.registry import list_models as list_models

__all__ = [
    "BLENDSHAPE_NAMES",
    "EMOTION_LABELS",
    "AnalysisError",
    "Analyzer",
    "AnalyzerConfig",
    "BatchError",
    "DatasetError",
    "DeviceUnavailableError",
    "DuchenneError",
    "EnhanceResult",
    "Face",
    "FaceAnnotator",
    "Faces",
    "ImageLoadError",
    "ImageTooLargeError",
    "InvalidFacesError",
    "MissingExtraError",
    "ModelIntegrityError",
    "NoFaceDetectedError",
    "OutputError",
    "ServiceError",
    "UnknownModelError",
    "UnrecognizedModelError",
    "UnsupportedFormatError",
    "VideoAnalyzer",
    "VideoDecodeError",
    "VideoOpenError",
    "VideoOptions",
    "VideoResult",
    "__version__",
    "analyze_video",
    "create_model",
    "enhance",
    "list_models",
    "load_image",
]
