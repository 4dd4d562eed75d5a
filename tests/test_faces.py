"""The Faces result model: validation, indexing, merging, serialisation."""

from __future__ import annotations

import json
from contextlib import ExitStack as DoesNotRaise

import numpy as np
import pytest

from duchenne.errors import InvalidFacesError
from duchenne.faces import EMOTION_LABELS, Faces, result_rows
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


def test_a_selection_keeps_each_faces_number_in_json_rows_and_views() -> None:
    """``id`` (and the drawn ``#N``) used to restart at 0 in a filtered ``Faces``."""
    faces = mock_faces(n=4, smile=[0.1, 0.9, 0.2, 0.7])
    smiling = faces[faces.smile >= 0.5]
    assert [f["id"] for f in smiling.to_dict()["faces"]] == [1, 3]
    assert [r["face"] for r in result_rows("x.jpg", smiling)] == [1, 3]
    assert smiling[1:].face(0).index == 3  # a selection of a selection
    assert faces.face(-1).index == 3 and smiling.face(-1).index == 3
    with pytest.raises(IndexError):
        faces.face(4)
    assert [f.index for f in faces] == [0, 1, 2, 3]  # unselected: the position


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


def test_reading_order_rows_then_left_to_right() -> None:
    from duchenne.faces import reading_order

    # two rows of 40 px faces, the second row 60 px lower; heads within a row jitter by 8 px
    boxes = np.array(
        [[300, 108, 340, 148], [0, 100, 40, 140], [150, 160, 190, 200], [60, 168, 100, 208],
         [160, 100, 200, 140]], np.float32,
    )  # fmt: skip
    assert reading_order(boxes).tolist() == [1, 4, 0, 3, 2]
    assert reading_order(np.zeros((0, 4))).tolist() == []


def _box_rows(*rows: tuple[int, float, float, float, float]) -> np.ndarray:
    """40 px boxes in reading order, one (count, x0, dx, y, stagger) per row: heads
    alternately ``stagger`` px above and below ``y``."""
    return np.array(
        [
            [x - 20, y - 20, x + 20, y + 20]
            for n, x0, dx, y0, stagger in rows
            for i in range(n)
            for x, y in [(x0 + dx * i, y0 + (stagger if i % 2 else -stagger))]
        ],
        np.float64,
    )


READING_LAYOUTS = {  # 40 px faces; each layout's boxes are in the order a person reads them
    "staggered rows (heads 0.6 faces apart)": _box_rows((8, 60, 70, 100, 12), (7, 95, 70, 170, 10)),
    "two clean rows": _box_rows((6, 60, 70, 100, 0), (6, 60, 70, 160, 0)),
    "two rows one face apart, interleaved": _box_rows((6, 60, 70, 100, 0), (6, 95, 70, 140, 0)),
    "one row": _box_rows((7, 60, 70, 100, 0)),
    "one staggered row": _box_rows((7, 60, 70, 100, 10)),
    "one column": _box_rows(*[(1, 100, 0, 60 + 50 * i, 0) for i in range(5)]),
    "three rows": _box_rows((5, 60, 70, 100, 6), (6, 25, 70, 145, 6), (5, 60, 70, 190, 6)),
}


@pytest.mark.parametrize("name", list(READING_LAYOUTS))
def test_reading_order_of_group_layouts_and_jittered_copies(name: str) -> None:
    """Rows top to bottom, left to right in a row, whatever order the boxes come in, and the
    same numbers when every coordinate moves by up to 2 px (the 0.45-face gap rule split
    staggered rows and renumbered them in 102 of 300 such copies)."""
    from duchenne.faces import reading_order

    boxes = READING_LAYOUTS[name]
    rng = np.random.default_rng(0)
    for _ in range(20):
        shuffled = rng.permutation(len(boxes))
        moved = boxes[shuffled] + rng.uniform(-2, 2, boxes.shape)
        np.testing.assert_array_equal(shuffled[reading_order(moved)], np.arange(len(boxes)))


def test_reading_order_of_the_solvay_photo_reads_the_back_row_as_one() -> None:
    """Hand-marked faces of ``solvay_1927.jpg``: the back row (people on steps, heads 86 px
    apart in height) is one row, the middle and front rows (24 px between their nearest
    heads, 48 px faces) are two, also with every coordinate moved by up to 2 px."""
    from duchenne.faces import reading_order
    from tests.helpers import TEST_DATA

    boxes = json.loads((TEST_DATA / "solvay_1927_faces.json").read_text())["boxes_xyxy"]
    boxes = np.array(boxes, np.float64)
    back = [16, 10, 7, 8, 28, 6, 22, 4, 15, 5, 17]
    middle = [14, 12, 19, 18, 3, 23, 0, 2, 11]
    front = [21, 24, 13, 25, 1, 26, 27, 9, 20]
    assert reading_order(boxes).tolist() == back + middle + front
    rng = np.random.default_rng(0)
    for _ in range(20):
        moved = boxes + rng.uniform(-2, 2, boxes.shape)
        assert reading_order(moved).tolist() == back + middle + front


def test_reading_order_puts_non_finite_boxes_last() -> None:
    from duchenne.faces import reading_order

    boxes = np.array([[np.nan, 0, 10, 10], [50, 0, 60, 10], [0, 0, 10, 10]], np.float64)
    assert reading_order(boxes).tolist() == [2, 1, 0]
    assert reading_order(boxes[:1]).tolist() == [0]
    same = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float64)
    assert reading_order(same[::-1]).tolist() == [1, 0]


def test_a_non_finite_smile_is_null_and_so_is_smiling() -> None:
    """``smile`` inf or NaN is written as null; ``smiling`` was true for inf beside it."""
    faces = Faces(xyxy=np.zeros((3, 4)), score=np.ones(3), smile=[np.inf, np.nan, 0.7])
    got = [(f["smile"], f["smiling"]) for f in faces.to_dict()["faces"]]
    assert got == [(None, None), (None, None), (0.7, True)]
    json.dumps(result_rows("a.jpg", faces), allow_nan=False)


def test_every_row_has_the_same_columns_error_last() -> None:
    from duchenne.faces import result_rows, row_columns

    faces = mock_faces(n=2)
    faces.meta.update(width=64, height=48, smile_threshold=0.5)
    rows = [
        *result_rows("bad.jpg", ValueError("broken")),
        *result_rows("a.jpg", faces),
        *result_rows("none.jpg", Faces.empty(width=10, height=20)),
    ]
    assert all(list(r) == row_columns() for r in rows)
    assert list(rows[0])[-1] == "error" and rows[0]["error"] == "ValueError: broken"
    assert rows[1]["face"] == 0 and rows[2]["face"] == 1 and rows[1]["height"] == 48
    assert rows[3]["face"] is None and rows[3]["height"] == 20 and rows[3]["smile"] is None
    assert not any(isinstance(v, (list, dict)) for r in rows for v in r.values())


def test_one_flattening_for_csv_and_parquet(tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from duchenne.faces import result_rows
    from duchenne.io.sinks import write_records

    faces = mock_faces(n=1)
    rows = result_rows("a.jpg", faces)
    write_records(rows, tmp_path / "t.csv")
    write_records(rows, tmp_path / "t.parquet")
    header = (tmp_path / "t.csv").read_text().splitlines()[0].split(",")
    assert pq.read_table(tmp_path / "t.parquet").column_names == header
    assert "keypoints.right_eye.0" in header


def test_smile_threshold_in_meta_decides_smiling() -> None:
    faces = mock_faces(n=1, smile=[0.7])
    assert faces.to_dict()["faces"][0]["smiling"] is True
    faces.meta["smile_threshold"] = 0.8
    assert faces.face(0).is_smiling is False
    assert faces.to_dict()["faces"][0]["smiling"] is False


def test_no_face_flag_in_json_and_rows() -> None:
    """Every document and table row says whether a face was found (None: input failed)."""
    assert Faces.empty(width=5).to_dict()["no_face"] is True
    assert mock_faces(n=1).to_dict()["no_face"] is False
    (empty,) = result_rows("a.jpg", Faces.empty(width=5))
    assert empty["no_face"] is True and empty["face"] is None
    assert [r["no_face"] for r in result_rows("b.jpg", mock_faces(n=2))] == [False, False]
    (error,) = result_rows("c.jpg", ValueError("bad"))
    assert error["no_face"] is None and error["error"]


@pytest.mark.parametrize(
    ("p", "threshold", "printed", "want"),
    [(0.99996, 1.0, 1.0, True), (0.49994, 0.5, 0.4999, False), (0.49996, 0.5, 0.5, True)],
)
def test_smiling_follows_the_printed_probability(p, threshold, printed, want) -> None:
    """``smiling`` and the printed ``smile`` never disagree at the threshold."""
    faces = mock_faces(1, smile=[p])
    faces.meta["smile_threshold"] = threshold
    out = faces.face(0).to_dict()
    assert out["smile"] == printed and out["smiling"] is want


def test_face_views_compare_without_numpy_truth_value_errors() -> None:
    """``Face.__eq__`` compared the landmark arrays: ``==`` and ``in`` raised ValueError."""
    faces = mock_faces(n=2)
    assert faces.face(0) == faces.face(0) and faces.face(0) != faces.face(1)
    assert faces.face(1) in list(faces)


@pytest.mark.parametrize("index", [True, False, np.True_, np.array(True)])
def test_a_single_bool_is_no_face_index(index) -> None:
    """``faces[True]`` used to return face #1 (a bool is an int) and ``faces[np.True_]``
    an ``InvalidFacesError`` about a keypoints shape; a mask of n bools still selects."""
    faces = mock_faces(n=3)
    with pytest.raises(TypeError, match="single bool"):
        faces[index]
    assert faces[np.array([True, False, True])].face_id.tolist() == [0, 2]


def test_face_views_hash_consistently_with_equality() -> None:
    """``hash(face)`` raised ``TypeError: unhashable type: 'list'`` (keypoints, dicts)."""
    faces = mock_faces(n=2)
    same = faces[[0, 1]].face(0)  # an equal view made another way
    assert faces.face(0) == same and hash(faces.face(0)) == hash(same)
    assert {faces.face(0), same, faces.face(1)} == {faces.face(0), faces.face(1)}
    assert len({faces.face(0), faces.face(1)}) == 2


def test_rotation_is_a_face_field_in_json_and_rows() -> None:
    """The turn a face was found in travels with the face: views, selections, JSON, rows;
    faces not detected in a photo (video frames) have none and write none."""
    from duchenne.faces import row_columns

    faces = mock_faces(n=2)
    faces.rotation = np.array([180, 180])
    assert faces.face(1).rotation == 180 and faces[[1]].rotation.tolist() == [180]
    assert faces.to_dict()["faces"][0]["rotation"] == 180
    assert "rotation" in row_columns()
    assert [r["rotation"] for r in result_rows("a.jpg", faces)] == [180, 180]
    faces.rotation = None
    assert "rotation" not in faces.to_dict()["faces"][0]
    assert result_rows("a.jpg", faces)[0]["rotation"] is None
