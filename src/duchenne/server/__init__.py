"""The duchenne REST service and web dashboard (extra ``[server]``).

Example:
    >>> from duchenne.server import Settings, create_app   # doctest: +SKIP
    >>> app = create_app(Settings(port=8000))               # doctest: +SKIP

Run it with ``duchenne serve`` (see ``docs/server.md``). ``create_app`` and ``Settings``
are imported on first use, so this package imports without the extra installed and a
missing dependency is reported as ``MissingExtraError`` naming ``duchenne[server]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duchenne.server.app import create_app as create_app
    from duchenne.server.settings import Settings as Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'duchenne.server' has no attribute {name!r}")
    from duchenne.errors import require_extra

    require_extra("fastapi", "server")
    require_extra("pydantic_settings", "server")
    if name == "create_app":
        from duchenne.server.app import create_app

        return create_app
    from duchenne.server.settings import Settings

    return Settings
