"""The model registry: names and paths resolved to model files, with clear errors."""

from __future__ import annotations

import pytest

from duchenne.analysis.analyzer import Analyzer
from duchenne.errors import UnknownModelError
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
