"""Drawing results on images (boxes, key landmarks, smile labels)."""

from duchenne.annotate.draw import FaceAnnotator

__all__ = ["FaceAnnotator"]
