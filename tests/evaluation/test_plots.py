"""Plot tests: each function writes a valid PNG atomically and leaves pyplot alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from duchenne.evaluation import metrics as M  # noqa: E402
from duchenne.evaluation import plots  # noqa: E402


def _data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    return y, M.sigmoid(2.0 * (y - 0.5) + rng.normal(0.0, 1.0, n))


def _assert_png(path: Path) -> None:
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_plot_roc(tmp_path: Path) -> None:
    y, prob = _data()
    out = plots.plot_roc(y, prob, tmp_path / "nested" / "roc.png")
    assert out == tmp_path / "nested" / "roc.png"
    _assert_png(out)
    _assert_png(plots.plot_roc(y, {"a": prob, "b": 1 - prob}, tmp_path / "roc2.png"))


def test_plot_reliability(tmp_path: Path) -> None:
    y, prob = _data()
    _assert_png(plots.plot_reliability(y, prob, tmp_path / "rel.png", n_bins=10))


def test_plot_confusion_matrix(tmp_path: Path) -> None:
    cm = M.confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1])
    out = plots.plot_confusion_matrix(cm, tmp_path / "cm.png", labels=["neutral", "happy", "sad"])
    _assert_png(out)
    with pytest.raises(ValueError):
        plots.plot_confusion_matrix(cm, tmp_path / "bad.png", labels=["x"])


def test_overwrite_is_atomic_replace(tmp_path: Path) -> None:
    y, prob = _data()
    path = tmp_path / "roc.png"
    path.write_bytes(b"old")
    _assert_png(plots.plot_roc(y, prob, path))


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, duchenne.evaluation; print('matplotlib' in sys.modules)"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "False"


def test_plots_leave_pyplot_and_backend_alone(tmp_path: Path) -> None:
    import matplotlib

    # Read the raw rcParam: matplotlib.get_backend() would itself import pyplot.
    backend = dict.__getitem__(matplotlib.rcParams, "backend")
    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    plots.plot_roc([0, 1, 1], [0.2, 0.7, 0.4], tmp_path / "r.png")
    assert dict.__getitem__(matplotlib.rcParams, "backend") is backend
    if not pyplot_loaded:  # another test may have imported pyplot already
        assert "matplotlib.pyplot" not in sys.modules
