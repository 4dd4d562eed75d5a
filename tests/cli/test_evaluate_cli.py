"""``duchenne evaluate``: the printed report (the evaluation itself: tests/evaluation)."""

from __future__ import annotations

from duchenne.cli.evaluate import markdown


def test_markdown_names_every_split_when_none_was_given() -> None:
    """No --split reads every split; the headline said "split `None`"."""
    report = {
        "data": "mtfl",
        "split": None,
        "n": 3,
        "crops": {"mode": "photo", "detected_rate": 1.0},
        "models": {},
    }
    head = markdown(report).splitlines()[0]
    assert "split `all`" in head and "None" not in head
    assert "split `Test`" in markdown({**report, "split": "Test"})
