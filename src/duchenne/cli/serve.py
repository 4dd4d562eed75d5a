"""``duchenne serve``: run the REST service and web dashboard (extra ``[server]``)."""

from __future__ import annotations

import argparse
import sys

DEFAULT_HOST = "127.0.0.1"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the REST API and web dashboard",
        description="Serve the REST API (/docs) and the dashboard (/). Every option can also "
        "be set as DUCHENNE_<NAME> in the environment (e.g. DUCHENNE_API_KEY).",
    )
    p.add_argument("--host", default=None, help=f"interface to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="inference threads (default: one per CPU core); the service is one process",
    )
    p.add_argument("--model", default=None, help="smile model name or .onnx path")
    p.add_argument("--detector", choices=("full", "short"), default=None)
    p.add_argument(
        "--no-batching", action="store_true", help="run each image alone (no micro-batching)"
    )
    p.add_argument("--log-level", default=None, choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace):  # -> duchenne.server.Settings
    """Environment settings overridden by the flags that were given."""
    from duchenne.server.settings import Settings

    overrides = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "model": args.model,
        "detector": args.detector,
        "log_level": args.log_level,
    }
    if args.no_batching:
        overrides["batching"] = False
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from duchenne.errors import require_extra

    require_extra("fastapi", "server")
    uvicorn = require_extra("uvicorn", "server")
    from pydantic import ValidationError

    try:
        settings = settings_from(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        print(f"duchenne serve: invalid {where}: {first.get('msg')}", file=sys.stderr)
        return 2
    from duchenne.server.app import create_app
    from duchenne.server.engine import build_analyzer

    app = create_app(settings, analyzer=build_analyzer(settings))  # bad --model fails here
    print(
        f"duchenne: dashboard http://{settings.host}:{settings.port}/  "
        f"API docs http://{settings.host}:{settings.port}/docs",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_timeout_s or None,
        access_log=settings.log_level == "debug",
        server_header=False,
    )
    return 0
