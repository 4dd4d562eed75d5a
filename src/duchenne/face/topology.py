"""Face Mesh topology: the named points of MediaPipe's 468-point mesh the package uses.

Why one module: alignment, geometry, smile dynamics, tracking signatures, the video face
stage, enhance and drawing all pick points of the same mesh; naming each index once here
keeps them agreeing (and makes a wrong index a one-line fix). "Right" is the subject's
right, i.e. the image's left.
"""

from __future__ import annotations

NUM_LANDMARKS = 468

NOSE_TIP = 1
NOSE_BRIDGE = 168
FOREHEAD, CHIN = 10, 152
FACE_RIGHT, FACE_LEFT = 234, 454  # face sides at the cheekbones

RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_UPPER, RIGHT_EYE_LOWER = 33, 133, 159, 145
LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_EYE_UPPER, LEFT_EYE_LOWER = 263, 362, 386, 374
#: eye contours: the eye centre is their mean (stable when the eyes narrow in a smile)
RIGHT_EYE_CONTOUR = (33, 133, 159, 145, 160, 144, 158, 153)
LEFT_EYE_CONTOUR = (263, 362, 386, 374, 387, 373, 385, 380)

CHEEK_RIGHT, CHEEK_LEFT = 50, 280
MOUTH_RIGHT, MOUTH_LEFT = 61, 291  # outer lip corners
LIP_UPPER_INNER, LIP_LOWER_INNER = 13, 14
LIP_UPPER_OUTER, LIP_LOWER_OUTER = 0, 17

#: MediaPipe's face-oval contour (FACEMESH_FACE_OVAL), in order around the face.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
