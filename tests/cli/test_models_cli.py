"""``duchenne models``: the table and its JSON."""

from __future__ import annotations

import json

from duchenne.cli.main import main
from duchenne.models.registry import default_smile_model, list_models


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
