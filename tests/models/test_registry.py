"""The model registry: names and paths resolved to model files, with clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from duchenne.analysis.analyzer import Analyzer
from duchenne.errors import ModelIntegrityError, UnknownModelError, UnrecognizedModelError
from duchenne.models.registry import create_model


@pytest.mark.parametrize("name", ["missing.onnx", "sub/smile_s"])
def test_a_path_that_is_no_file_says_so(tmp_path, name) -> None:
    """A missing ``.onnx`` path used to be looked up as a registry name: ``unknown model``
    with a list of names, not that the file does not exist."""
    path = str(tmp_path / name)
    with pytest.raises(UnknownModelError, match="no such model file: .*" + name):
        create_model(path)
    with pytest.raises(UnknownModelError, match="no such model file"):
        Analyzer(stages="detect,smile", smile_model=path, threads=1)


def test_an_unknown_name_is_still_an_unknown_model() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'smile_x'"):
        create_model("smile_x")


def _assets_copy(tmp_path, monkeypatch, name: str) -> Path:
    """A copy of the shipped assets folder holding only ``name``'s file, put where the
    registry looks (the shipped files are never touched)."""
    from duchenne.models import registry

    registry._registry()  # the manifests are read from the real folder first
    cfg = registry.get_model_cfg(name)
    target = tmp_path / cfg.file
    shutil.copyfile(cfg.path, target)
    monkeypatch.setattr(registry, "ASSETS", tmp_path)
    return target


def test_a_corrupted_shipped_model_fails_its_sha256(tmp_path, monkeypatch) -> None:
    target = _assets_copy(tmp_path, monkeypatch, "smile_n")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: onnxruntime may still load it
    target.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"smile_n\.onnx: sha256 .* does not match"):
        create_model("smile_n")
    create_model("smile_n", verify=False)  # the check is what refuses it, not onnxruntime


def test_a_missing_shipped_model_is_an_integrity_error(tmp_path, monkeypatch) -> None:
    """A registered model whose file is gone (a partial install) raised a bare
    ``FileNotFoundError`` from the sha256 check, a traceback rather than a typed error."""
    target = _assets_copy(tmp_path, monkeypatch, "smile_n")
    target.unlink()
    with pytest.raises(ModelIntegrityError, match=r"smile_n\.onnx: .*cannot be read.*reinstall"):
        create_model("smile_n")


@pytest.mark.parametrize("name", ["model.bin", "model.ONNX", "model"])
def test_an_existing_file_is_opened_whatever_its_suffix(tmp_path, tiny_smile_onnx, name) -> None:
    """An existing file not ending in ``.onnx`` was looked up as a registry name:
    ``unknown model '/path/photo.jpg' (known: face_blendshapes, ...)`` for a file that is
    there, and a model saved as ``.ONNX`` or ``.ort`` could not be used at all."""
    path = tmp_path / name
    shutil.copyfile(tiny_smile_onnx, path)
    assert create_model(str(path)).path == path
    junk = tmp_path / f"junk_{name}"
    junk.write_bytes(b"not a model")
    with pytest.raises(UnrecognizedModelError, match="junk_"):
        create_model(str(junk))


def test_a_registered_name_wins_over_a_file_of_that_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smile_n").write_bytes(b"a stray file, not the model")
    assert create_model("smile_n").path.name == "smile_n.onnx"


@pytest.mark.parametrize("name", ["SMILE_S", "Smile_S", "smile-s"])
def test_a_misspelt_name_gets_the_right_suggestion(name) -> None:
    """Case was a full mismatch to difflib: ``SMILE_S`` got no "did you mean" at all."""
    with pytest.raises(UnknownModelError, match=r"did you mean smile_s\b"):
        create_model(name)


def test_verify_model_checks_the_digest_and_the_session(tmp_path, monkeypatch) -> None:
    from duchenne.models.registry import verify_model

    target = _assets_copy(tmp_path, monkeypatch, "smile_n")
    verify_model("smile_n")
    target.write_bytes(target.read_bytes()[:-1])
    with pytest.raises(ModelIntegrityError, match=r"smile_n\.onnx: sha256"):
        verify_model("smile_n")
