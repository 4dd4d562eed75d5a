"""``duchenne serve``: run the REST service and web dashboard (extra ``[server]``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

from duchenne.face.detector import DETECTORS
from duchenne.io.argtypes import int_range
from duchenne.models.session import DEVICES

DEFAULT_HOST = "127.0.0.1"
STARTUP_FAILURE = 3  # uvicorn's exit status when the server never started
LISTEN_BACKLOG = 2048  # uvicorn's default


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the REST API and web dashboard",
        description="Serve the REST API (/docs) and the dashboard (/). Every option can also "
        "be set as DUCHENNE_<NAME> in the environment (e.g. DUCHENNE_API_KEY).",
        epilog=limits_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default=None, help=f"interface to bind (default {DEFAULT_HOST})")
    p.add_argument(
        "--port",
        type=int_range(0, 65535),
        default=None,
        help="TCP port (default 8000; 0: any free)",
    )
    p.add_argument(
        "--workers",
        type=int_range(1, 64),
        default=None,
        help="inference threads (default: one per CPU core), in the one service process "
        "unless --processes is given",
    )
    p.add_argument(
        "--processes",
        type=int_range(0, 64),
        default=None,
        help="analyse images in N worker processes instead of threads (default 0: threads). "
        "GIL-free, for machines with many cores; on 2 cores threads were faster (README)",
    )
    p.add_argument("--model", default=None, help="smile model name or .onnx path")
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        default=None,
        help="BlazeFace: auto (both models merged, default), full or short",
    )
    p.add_argument(
        "--emotion-prior",
        default=None,
        metavar="PRIOR",
        help="emotion class prior: balanced (default), natural or 8 comma-separated weights "
        "(as for `duchenne analyze`)",
    )
    p.add_argument(
        "--device",
        choices=DEVICES,
        default=None,
        help="run the models on the CPU (default) or an NVIDIA GPU (needs duchenne[gpu])",
    )
    p.add_argument(
        "--no-batching", action="store_true", help="run each image alone (no micro-batching)"
    )
    p.add_argument(
        "--log-level",
        default=None,
        choices=("debug", "info", "warning", "error"),
        help="server log level (default info; debug adds an access log)",
    )
    p.set_defaults(func=run)


def limits_help() -> str:
    """Every setting with its variable, default and meaning, read from ``Settings`` (so
    ``--help`` cannot drift from the code); see docs/server.md."""
    try:
        from duchenne.server.settings import Settings
    except ImportError:  # pragma: no cover - without the [server] extra
        return ""
    lines = [
        "settings (environment variable=default: meaning; flags win; "
        "a limit's answer follows the colon, e.g. 413):"
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default is None or isinstance(default, bool):
            shown = "unset" if default is None else str(default).lower()
        else:
            shown = default if default != "" else "''"
        lines.append(f"  DUCHENNE_{name.upper()}={shown}: {field.description or ''}".rstrip())
    return "\n".join(lines)


def settings_from(args: argparse.Namespace):  # -> duchenne.server.Settings
    """Environment settings overridden by the flags that were given."""
    from duchenne.server.settings import Settings

    overrides = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "processes": args.processes,
        "model": args.model,
        "detector": args.detector,
        "emotion_prior": args.emotion_prior,
        "device": args.device,
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
        given = f" ({_source(args, where)}={first.get('input')!r})" if "input" in first else ""
        print(f"duchenne serve: invalid {where}{given}: {first.get('msg')}", file=sys.stderr)
        return 2
    try:  # before the models load: a port in use is one line, not a late failure
        sock = listen_socket(settings.host, settings.port)
    except OSError as exc:
        where = _url_host(settings.host) + f":{settings.port}"
        reason = exc.strerror or str(exc)
        print(f"duchenne serve: cannot listen on {where}: {reason}", file=sys.stderr)
        return STARTUP_FAILURE
    with sock:
        from duchenne.server.app import create_app
        from duchenne.server.engine import build_analyzer

        app = create_app(settings, analyzer=build_analyzer(settings))  # bad --model fails here
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=sock.getsockname()[1],
            log_level=settings.log_level,
            **transport_options(settings, app.state.metrics),
            limit_concurrency=settings.max_connections,
            timeout_graceful_shutdown=settings.shutdown_timeout_s or None,
            access_log=settings.log_level == "debug",
            server_header=False,
        )
        server = _server_class()(config)
        server.banner = banner(settings, sock.getsockname()[1])
        server.run(sockets=[sock])  # returns after a graceful stop (SIGTERM, Ctrl-C)
    return 0 if server.started else STARTUP_FAILURE


def _source(args: argparse.Namespace, field: str) -> str:
    """Where a setting's value came from: its flag if given, else ``DUCHENNE_<FIELD>``."""
    if getattr(args, field, None) is not None:
        return "--" + field.replace("_", "-")
    return f"DUCHENNE_{field.upper()}"


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (``port`` 0: a free one).

    Bound here, before the models load, so that a port in use fails at once and the
    banner can show the port actually bound; uvicorn serves on it (``sockets=``).

    Raises:
        OSError: the address is in use, not local, or the host is unknown.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # as asyncio does: restart without waiting for TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def banner(settings, port: int) -> str:  # settings: duchenne.server.Settings
    """The line printed once the service answers: where the dashboard and docs are."""
    base = f"http://{_url_host(settings.host)}:{port}"
    docs = f"  API docs {base}/docs" if settings.docs else ""
    return f"duchenne: dashboard {base}/{docs}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def transport_options(settings, metrics=None) -> dict:
    """uvicorn options for the header size/time limits (``duchenne.server.transport``):
    the guarded httptools protocol, else h11 with its own header size limit (400, not 431).
    With ``metrics`` (the app's ``Metrics``), its refusals count in ``duchenne_rejected_total``.
    """
    options = {"timeout_keep_alive": settings.keep_alive_timeout_s}
    try:
        from duchenne.server.transport import guarded_protocol

        on_refuse = None
        if metrics is not None:

            def on_refuse(reason: str) -> None:
                metrics.rejected.inc(reason=reason, route="unmatched")

        options["http"] = guarded_protocol(
            settings.max_header_bytes, settings.header_timeout_s, on_refuse
        )
    except ImportError:  # pragma: no cover - httptools comes with duchenne[server]
        options.update(http="h11", h11_max_incomplete_event_size=settings.max_header_bytes)
    return options


def _server_class():  # -> type[uvicorn.Server]
    """``uvicorn.Server`` that does not raise SIGTERM/SIGINT again after a graceful stop.

    uvicorn (>= 0.29) catches both signals while it serves (stop accepting, finish open
    requests, run the lifespan shutdown, which closes the engine), then puts back the
    previous handlers and raises the signal again, so a clean stop ends as "killed by
    SIGTERM" (exit status 143). Here ``capture_signals`` does the same minus that last
    step: ``run()`` returns and ``duchenne serve`` exits 0. It also prints ``banner`` once
    started.
    """
    import uvicorn
    from uvicorn.server import HANDLED_SIGNALS

    class Server(uvicorn.Server):
        #: printed once the service answers (uvicorn logs no address when given a socket)
        banner: str | None = None

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and self.banner:
                print(self.banner, file=sys.stderr, flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield  # only the main thread can set signal handlers
                return
            # SIGINT, SIGTERM (and SIGBREAK on Windows), as uvicorn's own method
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server
