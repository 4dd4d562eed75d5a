"""SmileModel plumbing on a hand-built ONNX with known outputs, and the shipped ladder."""

from __future__ import annotations

import numpy as np
import pytest

from duchenne.errors import UnknownModelError, UnrecognizedModelError
from duchenne.models.registry import default_smile_model, get_model_cfg, list_models
from duchenne.models.smile import SmileModel, intensity_to_score


def _crops(top: int, bottom: int, n: int = 1) -> np.ndarray:
    crops = np.zeros((n, 48, 48, 3), np.uint8)
    crops[:, :24] = top
    crops[:, 24:] = bottom
    return crops


def test_outputs_follow_the_graph(tiny_smile_onnx) -> None:
    model = SmileModel(tiny_smile_onnx)
    out = model(np.concatenate([_crops(0, 255), _crops(255, 0), _crops(128, 128)]))
    # logit = 8 * (mean_bottom - mean_top) on (x/255 - .5)/.5 normalised pixels = +-16 or 0
    np.testing.assert_allclose(
        out.smile, [1 / (1 + np.exp(-16)), 1 / (1 + np.exp(16)), 0.5], rtol=1e-3, atol=1e-9
    )
    np.testing.assert_allclose(out.smile_score, 1 + 9 * out.smile, rtol=1e-5)
    np.testing.assert_allclose(out.emotion.sum(1), 1.0, rtol=1e-6)
    assert out.emotion[0].argmax() == 1 and out.emotion[1].argmax() != 1


def test_batching_and_gray_input_agree(tiny_smile_onnx) -> None:
    model = SmileModel(tiny_smile_onnx)
    crops = np.random.default_rng(0).integers(0, 255, (70, 48, 48, 3), dtype=np.uint8)
    full = model(crops, batch_size=64)
    small = model(crops, batch_size=7)
    np.testing.assert_allclose(full.smile, small.smile, rtol=1e-5)
    gray = np.stack([c[..., 0] for c in crops])  # gray crops are accepted as is
    assert model(gray).smile.shape == (70,)
    assert model(crops[:0]).smile.shape == (0,)


def test_temperature_from_metadata_softens(tmp_path) -> None:
    from tests.conftest import make_tiny_smile_onnx

    hot = SmileModel(make_tiny_smile_onnx(tmp_path / "t4.onnx", temperature=4.0))
    out = hot(_crops(0, 255))
    np.testing.assert_allclose(out.smile, 1 / (1 + np.exp(-16 / 4)), rtol=1e-5)


def test_score_mapping_is_monotone_and_bounded() -> None:
    x = np.linspace(-0.5, 1.5, 50)
    s = intensity_to_score(x)
    assert s.min() == 1 and s.max() == 10 and np.all(np.diff(s) >= 0)


def test_non_smile_onnx_is_rejected(tmp_path) -> None:
    from duchenne.models.registry import get_model_cfg as cfg

    with pytest.raises(UnrecognizedModelError):
        SmileModel(cfg("face_landmark").path)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="did you mean"):
        get_model_cfg("face_landmarks")


@pytest.mark.skipif(default_smile_model() is None, reason="no smile model ships yet")
@pytest.mark.parametrize("name", list_models("smile_*"))
def test_every_shipped_variant_runs(name: str) -> None:
    model = SmileModel(name)
    out = model(
        np.random.default_rng(1).integers(
            0, 255, (3, model.input_size, model.input_size, 3), dtype=np.uint8
        )
    )
    assert out.smile.shape == (3,) and np.all((out.smile >= 0) & (out.smile <= 1))
    assert np.all((out.smile_score >= 1) & (out.smile_score <= 10))


BIAS = np.array([-1.0, 0.5, 0.0, 0.0, 0.2, 0.1, 0.1, 0.1])
PRIOR = np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.02, 0.02, 0.01])


def _with_prior(tmp_path, **meta: str):
    from tests.conftest import make_tiny_smile_onnx

    return make_tiny_smile_onnx(tmp_path / "prior.onnx", extra_meta=meta)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_emotion_prior_from_metadata(tmp_path) -> None:
    path = _with_prior(
        tmp_path,
        **{
            "duchenne.emotion_bias": ",".join(map(str, BIAS)),
            "duchenne.emotion_prior": ",".join(map(str, PRIOR)),
        },
    )
    crop = _crops(0, 255)  # happiness logit 16, others 0
    raw = np.zeros(8)
    raw[1] = 16.0
    balanced = SmileModel(path)(crop).emotion[0]
    np.testing.assert_allclose(balanced, _softmax(raw + BIAS), rtol=1e-4, atol=1e-7)
    natural = SmileModel(path, emotion_prior="natural")(crop).emotion[0]
    np.testing.assert_allclose(natural, _softmax(raw + BIAS + np.log(PRIOR)), rtol=1e-4, atol=1e-7)
    mine = (1, 1, 1, 1, 4, 1, 1, 1)  # "anger is four times as common here"
    custom = SmileModel(path, emotion_prior=",".join(map(str, mine)))(_crops(128, 128))
    want = _softmax(BIAS + np.log(np.array(mine) / 8))
    np.testing.assert_allclose(custom.emotion[0], want, rtol=1e-4)
    assert custom.emotion[0].argmax() == 4
    # the prior moves emotions only
    np.testing.assert_allclose(
        SmileModel(path)(crop).smile, SmileModel(path, emotion_prior="natural")(crop).smile
    )


def test_files_without_prior_metadata_keep_the_raw_softmax(tiny_smile_onnx) -> None:
    crop = _crops(40, 200)
    outs = [
        SmileModel(tiny_smile_onnx, emotion_prior=p)(crop).emotion for p in ("balanced", "natural")
    ]
    np.testing.assert_allclose(outs[0], outs[1])


def test_bad_emotion_priors_are_refused(tmp_path, tiny_smile_onnx) -> None:
    for bad in ("uniform", "1,2,3", [1, 1, 1, 1, 1, 1, 1, -1], [0] * 8, "a,b,c,d,e,f,g,h"):
        with pytest.raises(ValueError, match="emotion prior"):
            SmileModel(tiny_smile_onnx, emotion_prior=bad)
    broken = _with_prior(tmp_path, **{"duchenne.emotion_bias": "0,1"})
    with pytest.raises(UnrecognizedModelError, match="emotion_bias"):
        SmileModel(broken)


@pytest.mark.skipif(default_smile_model() is None, reason="no smile model ships yet")
@pytest.mark.parametrize("name", list_models("smile_*"))
def test_shipped_variants_carry_a_fitted_prior(name: str) -> None:
    model = SmileModel(name)
    # fitted on FER+ Valid (scripts/calibrate_shipped.py): the rare classes gain on neutral
    assert model.training_prior.sum() == pytest.approx(1.0, abs=1e-4)
    assert model.training_prior.argmax() == 0  # FER+: neutral is the most common class
    rare = [5, 7]  # disgust, contempt: about 2% of FER+ each
    assert np.all(model.emotion_bias[rare] > model.emotion_bias[0])


def test_smile_bias_from_metadata_moves_the_decision_point(tmp_path) -> None:
    from tests.conftest import make_tiny_smile_onnx

    path = make_tiny_smile_onnx(
        tmp_path / "b.onnx", temperature=4.0, extra_meta={"duchenne.smile_bias": "-1.5"}
    )
    model = SmileModel(path)
    out = model(np.concatenate([_crops(0, 255), _crops(128, 128)]))
    np.testing.assert_allclose(
        out.smile, 1 / (1 + np.exp(-np.array([16 / 4 - 1.5, -1.5]))), rtol=1e-5
    )
    raw = model.raw_outputs(_crops(0, 255))  # what calibration is fitted on
    np.testing.assert_allclose(raw["smile_logit"], [16.0], rtol=1e-4)


def test_colour_model_sees_the_channels(tmp_path) -> None:
    """A ``duchenne.channels`` 3 model gets RGB NCHW input (grey crops repeated), and its
    crop size comes from the metadata, so the Analyzer cuts 64 px crops for a 64 px model."""
    from duchenne import Analyzer, data
    from tests.conftest import make_tiny_smile_onnx

    path = make_tiny_smile_onnx(tmp_path / "rgb64.onnx", size=64, channels=3)
    model = SmileModel(path, flip=False)
    assert (model.input_size, model.channels) == (64, 3)
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    crops[0, 32:, :, 0] = 255  # bottom half red only: a third of the brightness
    crops[1, 32:] = 255
    x = model.preprocess(crops)
    assert x.shape == (2, 3, 64, 64)
    assert x[0, 0, 40, 0] == pytest.approx(1.0) and x[0, 1, 40, 0] == pytest.approx(-1.0)
    logit = model.raw_outputs(crops)["smile_logit"]
    np.testing.assert_allclose(logit, [16 / 3, 16], rtol=1e-4)  # R alone: a third of the effect
    np.testing.assert_allclose(
        model.raw_outputs(crops[:, :, :, 1])["smile_logit"], [0, 16], rtol=1e-4, atol=1e-4
    )
    faces = Analyzer(smile_model=str(path), stages="detect,smile").analyze(data.astronaut())
    assert len(faces) == 1 and 0.0 <= faces.face(0).smile <= 1.0


def test_bad_channel_count_is_refused(tmp_path) -> None:
    from tests.conftest import make_tiny_smile_onnx

    path = make_tiny_smile_onnx(tmp_path / "m.onnx", extra_meta={"duchenne.channels": "2"})
    with pytest.raises(UnrecognizedModelError, match="channels"):
        SmileModel(path)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("duchenne.input_size", "abc"),
        ("duchenne.input_size", "0"),
        ("duchenne.channels", "x"),
        ("duchenne.temperature", "0"),
        ("duchenne.temperature", "-1"),
        ("duchenne.temperature", "nan"),
        ("duchenne.std", "0"),
        ("duchenne.mean", "nan"),
        ("duchenne.smile_bias", "inf"),
        ("duchenne.emotion_bias", "1,2,3"),
        ("duchenne.emotion_bias", "0,0,0,0,0,0,0,nan"),
        ("duchenne.emotion_bias", "a,b,c,d,e,f,g,h"),
        ("duchenne.emotion_prior", "-1,0,0,0,0,0,0,2"),
        ("duchenne.iod_fraction", "0"),
        ("duchenne.iod_fraction", "5"),
        ("duchenne.iod_fraction", "wide"),
        ("duchenne.eye_y", "9"),
        ("duchenne.eye_y", "nan"),
    ],
)
def test_bad_metadata_is_refused_at_load(tmp_path, key: str, value: str) -> None:
    """A value that would only fail later (a numpy error, NaN probabilities, a degenerate
    crop) is refused when the file is opened, naming the file and the key."""
    from tests.conftest import make_tiny_smile_onnx

    path = make_tiny_smile_onnx(tmp_path / "bad_meta.onnx", extra_meta={key: value})
    with pytest.raises(UnrecognizedModelError, match=rf"bad_meta\.onnx: .*{key}"):
        SmileModel(path)


def test_framing_metadata_in_range_loads(tmp_path) -> None:
    from tests.conftest import make_tiny_smile_onnx

    meta = {"duchenne.iod_fraction": "0.9", "duchenne.eye_y": "-0.2"}  # the closed bounds
    model = SmileModel(make_tiny_smile_onnx(tmp_path / "edge.onnx", extra_meta=meta))
    assert model.framing == {"iod_fraction": 0.9, "eye_y": -0.2}


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"duchenne.input_size": "64"}, "input shape"),  # graph takes 48 px
        ({"duchenne.channels": "3"}, "input shape"),  # graph takes grey
    ],
)
def test_metadata_disagreeing_with_the_graph_is_refused(tmp_path, meta, match: str) -> None:
    from tests.conftest import make_tiny_smile_onnx

    path = make_tiny_smile_onnx(tmp_path / "mismatch.onnx", extra_meta=meta)
    with pytest.raises(UnrecognizedModelError, match=rf"mismatch\.onnx: .*{match}"):
        SmileModel(path)


def _edited(tmp_path, edit) -> str:
    """The tiny model with ``edit(onnx_model)`` applied, saved as ``edited.onnx``."""
    import onnx

    from tests.conftest import make_tiny_smile_onnx

    model = onnx.load(str(make_tiny_smile_onnx(tmp_path / "tiny.onnx")))
    edit(model)
    path = tmp_path / "edited.onnx"
    onnx.save(model, str(path))
    return str(path)


def _rename_emotion_output(model) -> None:
    model.graph.node[-1].output[0] = model.graph.output[2].name = "emotions"


def _drop_emotion_output(model) -> None:
    del model.graph.output[2]


def _seven_emotions(model) -> None:
    """A 7-class head (its softmax failed in numpy on the first face)."""
    import onnx

    emo = next(i for i in model.graph.initializer if i.name == "emo")
    emo.CopyFrom(onnx.numpy_helper.from_array(np.ones((1, 7), np.float32), "emo"))
    model.graph.output[2].type.tensor_type.shape.dim[-1].dim_value = 7


def _drop_input_size(model) -> None:
    keep = [p for p in model.metadata_props if p.key != "duchenne.input_size"]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_rename_emotion_output, "outputs"),
        (_drop_emotion_output, "outputs"),
        (_seven_emotions, "emotion_logits has 7 classes"),
        (_drop_input_size, "duchenne.input_size"),
    ],
)
def test_graph_off_the_contract_is_refused(tmp_path, edit, match: str) -> None:
    with pytest.raises(UnrecognizedModelError, match=rf"edited\.onnx: .*{match}"):
        SmileModel(_edited(tmp_path, edit))


@pytest.mark.parametrize("name", ["smile_x", "face_landmrk", "face_detection_full_rang"])
def test_a_smile_model_name_is_looked_up_among_smile_models(name: str) -> None:
    """``--model smile_x`` listed (and ``face_landmrk`` suggested) face models, names the
    smile flags then refuse as "not a duchenne smile model"."""
    from duchenne.analysis.analyzer import Analyzer

    smile_names = ", ".join(list_models(task="smile_emotion"))
    for build in (SmileModel, lambda n: Analyzer(stages="detect,smile", smile_model=n)):
        with pytest.raises(UnknownModelError) as excinfo:
            build(name)
        message = str(excinfo.value)
        assert message.endswith(f"(known: {smile_names})")
        assert "face_" not in message.replace(name, "")
    with pytest.raises(UnknownModelError) as excinfo:  # the generic lookup keeps them all
        get_model_cfg(name)
    assert str(excinfo.value).endswith(f"(known: {', '.join(list_models())})")


def test_a_face_model_name_for_a_smile_flag_says_what_it_is() -> None:
    with pytest.raises(UnknownModelError, match="'face_landmark' is a face_landmarks model"):
        SmileModel("face_landmark")


def test_smile_suggestions_still_come_for_smile_names() -> None:
    with pytest.raises(UnknownModelError, match=r"did you mean smile_s\b"):
        SmileModel("SMILE_S")
