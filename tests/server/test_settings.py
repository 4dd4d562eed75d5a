"""``Settings``: a ``DUCHENNE_*`` variable no setting reads is named at startup, not ignored."""

from __future__ import annotations

import logging

from .conftest import SlowAnalyzer, require_server_deps

require_server_deps()

from duchenne.server.settings import Settings, unknown_variables  # noqa: E402


def test_a_misspelt_variable_is_named_with_the_closest_setting():
    (message,) = unknown_variables({"DUCHENNE_THREDS": "4"})
    assert message.startswith("DUCHENNE_THREDS ") and "did you mean DUCHENNE_THREADS?" in message


def test_known_and_foreign_variables_pass():
    """Every field's variable (any case, as Settings reads them), others' variables too."""
    environ = {f"DUCHENNE_{name.upper()}": "x" for name in Settings.model_fields}
    environ |= {"duchenne_port": "80", "HOME": "/root", "NOT_DUCHENNE_X": "1"}
    assert unknown_variables(environ) == []


def test_a_name_like_no_setting_still_warns_without_a_guess():
    """Only the part after the prefix is compared (the prefix alone made FOO look like DOCS)."""
    (message,) = unknown_variables({"DUCHENNE_FOO": "1"})
    assert "DUCHENNE_FOO" in message and "serve --help" in message and "mean" not in message


def test_the_service_warns_at_startup(make_client, monkeypatch, caplog):
    monkeypatch.setenv("DUCHENNE_THREDS", "4")
    with caplog.at_level(logging.WARNING, logger="duchenne.server.app"):
        make_client(SlowAnalyzer())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DUCHENNE_THREDS" in m and "DUCHENNE_THREADS" in m for m in warned)
