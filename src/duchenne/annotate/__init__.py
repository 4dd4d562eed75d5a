"""Drawing results on images (boxes, key landmarks, smile labels)."""

from duchenne.annotate.draw import FaceAnnotator, draw_caption, label_box, label_boxes

__all__ = ["FaceAnnotator", "draw_caption", "label_box", "label_boxes"]
