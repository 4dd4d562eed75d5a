"""``duchenne models``: the table and its JSON, and ``--verify``."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from duchenne.cli.main import main
from duchenne.models.registry import create_model, default_smile_model, list_models


def test_json_names_are_usable_model_names_and_the_default_is_a_field(capsys) -> None:
    """Every JSON name can be passed back to --model as it is (the default's name used to
    carry a " (default)" suffix); the table still marks the default after its name."""
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(list_models())
    assert [r["name"] for r in rows if r["default"]] == [default_smile_model()]
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert f"{default_smile_model()} (default)" in table


@pytest.fixture
def assets_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the shipped assets folder, put where the registry looks (the shipped
    files are never touched); the registry is read again from it, and again from the
    real folder afterwards."""
    from duchenne.models import registry

    target = tmp_path / "assets"
    shutil.copytree(registry.ASSETS, target)
    monkeypatch.setattr(registry, "ASSETS", target)
    registry._registry.cache_clear()
    yield target
    registry._registry.cache_clear()


def _verify(capsys, *flags: str) -> tuple[int, str, str]:
    status = main(["models", "--verify", *flags])
    out, err = capsys.readouterr()
    return status, out, err


def test_verify_passes_the_shipped_install(capsys) -> None:
    """There was no way to check an install short of running an analysis."""
    status, out, err = _verify(capsys)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list_models()
    assert all(line.split()[1:] == ["ok"] for line in lines)
    status, out, _ = _verify(capsys, "--json")
    assert status == 0
    assert json.loads(out) == [{"name": n, "ok": True, "problem": None} for n in list_models()]


def test_verify_names_each_broken_file_and_fails(capsys, assets_copy) -> None:
    """A flipped byte (onnxruntime may still load it), a missing file and a file that
    matches its manifest but is no model are each reported on their model's line."""
    smile_n = assets_copy / "smile_n.onnx"
    data = bytearray(smile_n.read_bytes())
    data[len(data) // 2] ^= 0xFF
    smile_n.write_bytes(bytes(data))
    (assets_copy / "face_landmark.onnx").unlink()
    junk = b"not an onnx model"
    (assets_copy / "smile_m.onnx").write_bytes(junk)
    manifest = json.loads((assets_copy / "models.json").read_text(encoding="utf-8"))
    for entry in manifest["models"]:
        if entry["name"] == "smile_m":
            entry["sha256"] = hashlib.sha256(junk).hexdigest()
    (assets_copy / "models.json").write_text(json.dumps(manifest), encoding="utf-8")

    status, out, err = _verify(capsys)
    assert status == 1 and f"3 of {len(list_models())} models failed" in err
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == list_models()
    assert re.search(r"smile_n\.onnx: sha256 \w+ does not match manifest", lines["smile_n"])
    assert "face_landmark.onnx: the shipped model file cannot be read" in lines["face_landmark"]
    assert "smile_m.onnx" in lines["smile_m"] and "sha256" not in lines["smile_m"]
    broken = {"smile_n", "face_landmark", "smile_m"}
    assert all(line.split()[1:] == ["ok"] for n, line in lines.items() if n not in broken)

    status, out, _ = _verify(capsys, "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert status == 1
    assert {n for n, row in rows.items() if not row["ok"]} == broken
    assert all(rows[n]["problem"] in lines[n] for n in broken)


def test_verify_reads_the_file_again(capsys, assets_copy) -> None:
    """A file opened (and its check cached) earlier in the process, then damaged, fails."""
    create_model("smile_n")
    (assets_copy / "smile_n.onnx").write_bytes(b"damaged")
    status, out, _ = _verify(capsys)
    assert status == 1 and re.search(r"^smile_n +smile_n\.onnx: sha256", out, re.M)


def test_a_broken_manifest_is_one_line(capsys, assets_copy) -> None:
    """A hand-edited manifest that is no JSON said only ``JSONDecodeError: Expecting
    value: line 1 column 13 (char 12)``, not which file nor what to do."""
    (assets_copy / "models.json").write_text('{"models": [', encoding="utf-8")
    for flags in ([], ["--verify"]):
        assert main(["models", *flags]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert "ModelIntegrityError: models.json: the shipped model manifest cannot be read" in err
