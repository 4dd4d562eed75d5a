"""``duchenne serve``: flags become ``Settings``; bad values fail with one line, no traceback."""

from __future__ import annotations

import pytest

from duchenne.cli.main import build_parser, main
from duchenne.cli.serve import settings_from

from .conftest import require_server_deps

require_server_deps()

from duchenne.server.settings import Settings  # noqa: E402


def parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("DUCHENNE_PORT", "9001")
    monkeypatch.setenv("DUCHENNE_MAX_QUEUE", "7")
    settings = settings_from(parse("--host", "0.0.0.0", "--workers", "3", "--no-batching"))
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9001, 3)
    assert settings.batching is False and settings.max_queue == 7
    assert settings_from(parse("--port", "8123")).port == 8123


def test_defaults_are_safe():
    settings = Settings()
    assert settings.host == "127.0.0.1"  # not reachable from other machines by default
    assert settings.api_key_value is None and settings.cors_origin_list == []
    assert settings.max_body_bytes < settings.max_video_bytes


def test_api_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("DUCHENNE_API_KEY", "k1")
    monkeypatch.setenv("DUCHENNE_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()
    assert settings.api_key_value == "k1" and "k1" not in repr(settings)
    assert settings.cors_origin_list == ["https://a.example", "https://b.example"]


def test_invalid_values_fail_cleanly(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("duchenne serve: invalid workers") and "Traceback" not in err


def test_unknown_model_fails_before_serving(capsys):
    assert main(["serve", "--model", "no_such_model", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "UnknownModelError" in err and "Traceback" not in err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--workers", "--model", "--no-batching"):
        assert flag in out
