"""``misspelt_variables``: the one check for ``DUCHENNE_*`` typos, for the service and the CLI."""

from __future__ import annotations

import logging

from duchenne.cli.main import main
from duchenne.io.environment import PACKAGE_VARIABLES, misspelt_variables


def test_a_near_miss_of_a_package_variable_is_named():
    (message,) = misspelt_variables(PACKAGE_VARIABLES, {"DUCHENNE_THREDS": "4"}, near_only=True)
    assert message.startswith("DUCHENNE_THREDS ") and message.endswith("DUCHENNE_THREADS?")


def test_near_only_leaves_variables_meant_for_others_alone():
    """A command that knows only the package's variables must not call the service's
    ``DUCHENNE_PORT`` (or any name close to none of its own) unknown."""
    environ = {"DUCHENNE_PORT": "80", "DUCHENNE_MAX_JOBS": "2", "duchenne_threads": "1"}
    assert misspelt_variables(PACKAGE_VARIABLES, environ, near_only=True) == []
    # without near_only the same names are reported, pointing to where names are listed
    reported = misspelt_variables(PACKAGE_VARIABLES, environ)
    assert len(reported) == 2
    assert all("(`duchenne serve --help` lists them)" in m for m in reported)


def _warnings(caplog) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_the_cli_warns_about_a_misspelt_threads_variable(monkeypatch, caplog):
    monkeypatch.setenv("DUCHENNE_THREDS", "1")
    with caplog.at_level(logging.WARNING, logger="duchenne.cli.main"):
        assert main(["models", "--json"]) == 0
    assert "DUCHENNE_THREDS" in _warnings(caplog)
    assert "did you mean DUCHENNE_THREADS?" in _warnings(caplog)


def test_the_cli_is_quiet_about_the_services_variables(monkeypatch, caplog):
    monkeypatch.setenv("DUCHENNE_PORT", "8080")
    with caplog.at_level(logging.WARNING, logger="duchenne.cli.main"):
        assert main(["models", "--json"]) == 0
    assert "DUCHENNE_PORT" not in _warnings(caplog)
