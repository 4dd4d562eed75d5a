"""The package's ``DUCHENNE_*`` environment variables and the one check for misspelt ones.

Why a module of its own, in the lowest layer: every command reads ``DUCHENNE_THREADS``
(``models/session.py``) and the service reads its settings from ``DUCHENNE_*`` variables,
and a typo such as ``DUCHENNE_THREDS=4`` was ignored without a word. The service knows
every name it reads and names any other ``DUCHENNE_*`` variable
(``duchenne.server.settings.unknown_variables``); the other commands know only the
package's own variables and name near misses of those, since a ``DUCHENNE_PORT`` meant for
the service is none of their business. Both use :func:`misspelt_variables`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping

ENV_PREFIX = "DUCHENNE_"

THREADS_VARIABLE = "DUCHENNE_THREADS"
"""The default onnxruntime thread count of every session (``models.session``)."""

PACKAGE_VARIABLES = frozenset({THREADS_VARIABLE})
"""``DUCHENNE_*`` variables the package reads outside the service's settings."""


def misspelt_variables(
    known: Iterable[str],
    environ: Mapping[str, str] | None = None,
    *,
    near_only: bool = False,
) -> list[str]:
    """One message per ``DUCHENNE_*`` variable of ``environ`` that is not ``known``.

    Names compare case-insensitively (as the service's settings read them), and only the
    part after the prefix is matched (the shared prefix made any two names look alike).

    Args:
        known: the variables read, full names (``"DUCHENNE_THREADS"``).
        environ: the environment to check (default ``os.environ``).
        near_only: name only variables close to a known one (a command that does not
            know every variable of the package); else one close to none is pointed to
            ``duchenne serve --help``, which lists them all.

    Returns:
        Messages such as ``"DUCHENNE_THREDS is not a duchenne setting and is ignored; did
        you mean DUCHENNE_THREADS?"``, sorted by variable name.

    Example:
        >>> misspelt_variables(PACKAGE_VARIABLES, {"DUCHENNE_THREDS": "4"})[0].split("; ")[1]
        'did you mean DUCHENNE_THREADS?'
    """
    environ = os.environ if environ is None else environ
    known = {name.upper() for name in known}
    suffixes = sorted(name.removeprefix(ENV_PREFIX) for name in known)
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX), suffixes, n=1)
        if close:
            hint = f"; did you mean {ENV_PREFIX}{close[0]}?"
        elif near_only:
            continue
        else:
            hint = " (`duchenne serve --help` lists them)"
        messages.append(f"{name} is not a duchenne setting and is ignored{hint}")
    return messages
