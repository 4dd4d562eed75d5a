"""The Faces result model: validation, indexing, merging, serialisation."""

from __future__ import annotations

import json
from contextlib import ExitStack as DoesNotRaise

import numpy as np
import pytest

from duchenne.errors import InvalidFacesError
from duchenne.faces import EMOTION_LABELS, Faces
from tests.helpers import mock_faces


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({"xyxy": [[0, 0, 10, 10]], "score": [0.9]}, DoesNotRaise()),
        ({"xyxy": [[0, 0, 10, 10]], "score": [0.9, 0.8]}, pytest.raises(InvalidFacesError)),
        (
            {"xyxy": [[0, 0, 10, 10]], "score": [0.9], "smile": [0.1, 0.2]},
            pytest.raises(InvalidFacesError),
        ),
        (
            {"xyxy": [[0, 0, 10, 10]], "score": [0.9], "emotion": np.ones((1, 7))},
            pytest.raises(InvalidFacesError),
        ),
        (
            {"xyxy": [[0, 0, 10, 10]], "score": [0.9], "keypoints": np.ones((1, 5, 2))},
            pytest.raises(InvalidFacesError),
        ),
        (
            {"xyxy": [[0, 0, 10, 10]], "score": [0.9], "data": {"x": np.ones(2)}},
            pytest.raises(InvalidFacesError),
        ),
    ],
)
def test_validation(kwargs, expectation) -> None:
    with expectation:
        Faces(**kwargs)


def test_error_message_names_expected_shape() -> None:
    with pytest.raises(
        InvalidFacesError, match=r"smile must have shape \(n\) with n=1, but got \(2,\)"
    ):
        Faces(xyxy=[[0, 0, 1, 1]], score=[1.0], smile=[0.1, 0.2])


def test_indexing_and_mask_keep_fields_aligned() -> None:
    faces = mock_faces(n=3, smile=[0.1, 0.9, 0.6])
    picked = faces[faces.smile > 0.5]
    assert len(picked) == 2
    np.testing.assert_allclose(picked.smile, [0.9, 0.6])
    np.testing.assert_allclose(picked.xyxy, faces.xyxy[[1, 2]])
    assert picked.data["mouth_width"].shape == (2,)
    assert len(faces[1]) == 1


def test_merge_and_empty() -> None:
    merged = Faces.merge([mock_faces(n=2), Faces.empty(), mock_faces(n=1)])
    assert len(merged) == 3
    assert merged.emotion.shape == (3, 8)
    assert len(Faces.empty(width=5)) == 0


def test_face_view_and_json_schema() -> None:
    faces = mock_faces(n=1, smile=[0.8])
    face = next(iter(faces))
    assert face.is_smiling is True
    assert face.top_emotion == "happiness"
    doc = json.loads(json.dumps(faces.to_dict()))
    f = doc["faces"][0]
    assert set(f["box"]) == {"x1", "y1", "x2", "y2"}
    assert set(f["emotions"]) == set(EMOTION_LABELS)
    assert f["smiling"] is True and 1 <= f["smile_score"] <= 10
    assert "landmarks" not in f
    assert len(faces.to_dict(landmarks=True)["faces"][0]["landmarks"]) == 468


def test_records_are_flat_and_nan_safe() -> None:
    faces = mock_faces(n=1)
    faces.data["mouth_width"][0] = np.nan
    rec = faces.to_records()[0]
    assert rec["box.x1"] == pytest.approx(float(faces.xyxy[0, 0]))
    assert "emotions.happiness" in rec
    assert rec["geometry.mouth_width"] is None
    assert all(
        not isinstance(v, (dict, list, np.generic))
        for k, v in rec.items()
        if not k.startswith("keypoints.")
    )
